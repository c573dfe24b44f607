"""Teach or list a running edge-server's learned classes, for the deployment proofs.

    python3 deploy/learned.py URL teach MODEL LABEL PHOTO --api-key-file F
    python3 deploy/learned.py URL classes MODEL --api-key-file F

Standard library only (it runs in a network namespace with the system's Python). `teach`
prints the model's classes after the example; `classes` prints them as `label:count,...`.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def call(url: str, key: str, method: str, body: bytes | None = None, kind: str = "") -> Any:
    """One request with the API key; the decoded JSON answer."""
    headers = {"X-API-Key": key, **({"Content-Type": kind} if kind else {})}
    # The scheme was checked to be http(s) in main (S310's concern).
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310
        return json.load(answer)


def teach(base: str, key: str, model: str, label: str, photo: Path) -> Any:
    """POST one photo as an example of `label` (multipart, as the page sends it)."""
    boundary = secrets.token_hex(16)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="label"\r\n\r\n{label}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="{photo.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + photo.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return call(
        f"{base}/v1/learned/{model}/examples",
        key,
        "POST",
        body,
        f"multipart/form-data; boundary={boundary}",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one action; print the classes; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("action", choices=["teach", "classes"])
    parser.add_argument("model")
    parser.add_argument("rest", nargs="*", help="teach: LABEL PHOTO")
    parser.add_argument("--api-key-file", type=Path, required=True)
    args = parser.parse_args(argv)
    key = args.api_key_file.read_text(encoding="utf-8").splitlines()[0].strip()
    base = args.url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        parser.error(f"{base} is not an http(s) URL")
    try:
        if args.action == "teach":
            label, photo = args.rest
            answer = teach(base, key, args.model, label, Path(photo))
        else:
            answer = call(f"{base}/v1/learned/{args.model}", key, "GET")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"learned: {exc}", file=sys.stderr)
        return 1
    print(",".join(f"{c['label']}:{c['examples']}" for c in answer["classes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
