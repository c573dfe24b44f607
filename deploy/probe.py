"""Probe a running edge-server: wait for /readyz, classify one photo, check the top label.

    python3 deploy/probe.py URL IMAGE LABEL [--model NAME] [--timeout SECONDS] [--api-key-file F]

Standard library only, so it runs with any Python 3.10+: on the host, or inside the image with
the image's own interpreter. Exit status 0 when the top label (and model) are as expected.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def wait_ready(url: str, timeout: float) -> float:
    """Seconds until `url`/readyz answered 200; TimeoutError after `timeout` seconds."""
    start = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as answer:
                if answer.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, OSError):
            pass  # not listening yet, or 503 while the model loads
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{url}/readyz did not answer 200 within {timeout:.0f} s")
        time.sleep(0.5)


def classify(
    url: str, image: Path, timeout: float = 120.0, api_key: str | None = None
) -> dict[str, Any]:
    """POST the image as a raw body to /classify and return the decoded answer."""
    headers = {"Content-Type": mimetypes.guess_type(image.name)[0] or "application/octet-stream"}
    if api_key:
        headers["X-API-Key"] = api_key
    request = urllib.request.Request(
        url + "/classify?top_k=3", data=image.read_bytes(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        result: dict[str, Any] = json.load(answer)
        return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the probe; print one line; 0 when the answer is as expected."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("image", type=Path)
    parser.add_argument("label", help="the expected top label")
    parser.add_argument("--model", help="the expected model name")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for ready")
    parser.add_argument("--api-key-file", type=Path, help="file whose first line is the API key")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        parser.error(f"{url} is not an http(s) URL")
    api_key = None
    if args.api_key_file:
        api_key = args.api_key_file.read_text(encoding="utf-8").splitlines()[0].strip()
    try:
        waited = wait_ready(url, args.timeout)
        answer = classify(url, args.image, api_key=api_key)
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 1
    top = answer["predictions"][0]
    model = answer["model"]["name"]
    print(
        f"ready after {waited:.1f} s; {args.image.name}: {top['label']!r} ({top['score']:.3f})"
        f" by {model}; inference {answer['timing_ms']['inference']:.0f} ms,"
        f" total {answer['timing_ms']['total']:.0f} ms"
    )
    if top["label"] != args.label or (args.model and model != args.model):
        print(f"probe: expected {args.label!r} by {args.model or model}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
