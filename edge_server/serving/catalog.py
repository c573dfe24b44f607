"""The catalog of known models, where a model file lives, and pulling one with verification.

A model can be pulled from its official URL, from another base URL (a LAN mirror) or from a
local folder (a USB stick for an offline Pi); every copy is checked against the catalog's sha256
before it is moved into place.
"""

from __future__ import annotations

import bz2
import hashlib
import json
import os
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO

from ..core.digest import sha256_of
from ..core.errors import StartupError
from ..core.imaging import ResizeMode

_CHUNK = 1 << 20


@dataclass(frozen=True)
class CatalogEntry:
    """One known model."""

    name: str
    file: str
    sha256: str
    url: str
    license: str
    input_size: int
    # How a photo is fitted to the input, as the model was trained and evaluated (ImageNet
    # classifiers: the central crop; the SSD detector and Coral's embedder: squashed; the
    # segmenters: letterboxed, since a class for every pixel needs the whole photo undistorted).
    resize: ResizeMode
    labels: str
    description: str
    aliases: tuple[str, ...] = ()
    task: str = "classification"
    # A labels file beside the model (detectors' label maps are not embedded), pulled with it.
    label_file: str | None = None
    label_sha256: str | None = None
    label_url: str | None = None
    # Files the model works with beside it (faces: the other detector and dlib's two models).
    extra_files: tuple[tuple[str, str, str], ...] = ()

    def files(self) -> list[tuple[str, str, str]]:
        """(file name, sha256, official URL) of the model, of its labels file, if any, and of
        the files it works with."""
        files = [(self.file, self.sha256, self.url)]
        if self.label_file and self.label_sha256 and self.label_url:
            files.append((self.label_file, self.label_sha256, self.label_url))
        return files + list(self.extra_files)


def load_catalog() -> dict[str, CatalogEntry]:
    """The catalog shipped with the package (`models/catalog.json` in the source tree)."""
    text = resources.files("edge_server").joinpath("catalog.json").read_text(encoding="utf-8")
    return {
        m["name"]: CatalogEntry(
            **{
                **m,
                "aliases": tuple(m.get("aliases", ())),
                "resize": ResizeMode(m["resize"]),
                "extra_files": tuple(
                    (f["file"], f["sha256"], f["url"]) for f in m.get("extra_files", ())
                ),
            }
        )
        for m in json.loads(text)["models"]
    }


def lookup(name: str) -> CatalogEntry | None:
    """The catalog entry a name or a short alias (`birds`) stands for, or None."""
    catalog = load_catalog()
    entry = catalog.get(name)
    if entry is not None:
        return entry
    return next((e for e in catalog.values() if name in e.aliases), None)


def known_names() -> str:
    """The catalog's names with their aliases, for messages that ask for one of them."""
    return ", ".join(
        e.name + (f" ({', '.join(e.aliases)})" if e.aliases else "")
        for e in sorted(load_catalog().values(), key=lambda e: e.name)
    )


def catalog_labels(model: str, models_dir: Path) -> Path | None:
    """The labels file a catalog model keeps beside it, or None (embedded, or not a catalog
    model); a StartupError says how to get it when it is missing."""
    entry = lookup(model)
    if entry is None or entry.label_file is None:
        return None
    path = models_dir / entry.label_file
    if not path.is_file():
        raise StartupError(
            f"model {model!r} needs its labels file {path}, which is missing",
            fix=f"run `edge-server models pull {entry.name}` (add --from DIR for a local "
            "copy): it fetches the model and its labels",
        )
    return path


def resolve_model(model: str, models_dir: Path) -> Path:
    """The file behind a model setting: a catalog name or alias in models_dir, or a path."""
    entry = lookup(model)
    path = models_dir / entry.file if entry else Path(model)
    if path.is_file():
        return path
    if entry is not None:
        raise StartupError(
            f"model {model!r} is not in {models_dir} (no file {path})",
            fix=f"run `edge-server models pull {model}` (add --from DIR for a local copy), "
            "or set EDGE_MODELS_DIR to the folder that holds it",
        )
    raise StartupError(
        f"model file {path} does not exist",
        fix="set EDGE_MODEL (--model) to a .tflite file or one of the catalog names: "
        + known_names(),
    )


@dataclass(frozen=True)
class PullResult:
    """What `pull` did."""

    path: Path
    source: str
    already_present: bool


def pull(name: str, models_dir: Path, source: str | None = None) -> PullResult:
    """Fetch a catalog model (and its labels file and the files it works with) into
    models_dir and verify their sha256.

    `source` is a folder or a base URL holding the catalog's file names; None means the
    official URLs. A file already present with the right digest is left as it is.
    """
    entry = lookup(name)
    if entry is None:
        raise StartupError(
            f"{name!r} is not in the model catalog", fix="choose one of: " + known_names()
        )
    results = [_fetch(file, sha256, url, models_dir, source) for file, sha256, url in entry.files()]
    return results[0]


def _fetch(file: str, sha256: str, url: str, models_dir: Path, source: str | None) -> PullResult:
    target = models_dir / file
    if target.is_file() and sha256_of(target) == sha256:
        return PullResult(target, str(target), already_present=True)
    origin = _origin(file, url, source)
    models_dir.mkdir(parents=True, exist_ok=True)
    fd, partial_name = tempfile.mkstemp(prefix=f".{file}.", dir=models_dir)
    partial = Path(partial_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for chunk in _read(origin):  # .bz2 (dlib's downloads) arrive decompressed
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise StartupError(
                f"{origin} has sha256 {digest.hexdigest()}, the catalog expects {sha256}",
                fix="the copy is corrupt or a different file; fetch it again from the "
                "official source",
            )
        partial.chmod(0o644)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return PullResult(target, origin, already_present=False)


def _origin(file: str, url: str, source: str | None) -> str:
    if source is None:
        return url
    if source.startswith(("http://", "https://")):
        return source.rstrip("/") + "/" + file
    return str(Path(source) / file)


def _read(origin: str) -> Iterator[bytes]:
    try:
        stream: BinaryIO
        if origin.startswith(("http://", "https://")):
            stream = urllib.request.urlopen(origin, timeout=60)  # noqa: S310 - http(s) only
        else:
            stream = Path(origin).open("rb")  # noqa: SIM115 - closed by the `with` below
        with stream:
            if origin.endswith(".bz2"):
                # dlib publishes its models compressed; the catalog's sha256 is the file's.
                unpacking = bz2.BZ2Decompressor()
                for chunk in iter(lambda: stream.read(_CHUNK), b""):
                    yield unpacking.decompress(chunk)
            else:
                yield from iter(lambda: stream.read(_CHUNK), b"")
    except OSError as exc:
        raise StartupError(
            f"cannot read {origin}: {exc}",
            fix="check the network, or pull from a local copy with --from DIR "
            "(or EDGE_MODELS_FROM=DIR)",
        ) from exc
