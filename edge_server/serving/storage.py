"""Durable file changes: a file is either wholly written or not there, before anyone is told.

A write goes to a temporary file in the same folder, is flushed to the disk (fsync), renamed
over the target (atomic on POSIX when both are on one file system) and the folder is synced so
the rename itself survives a power cut; an append is synced before it returns. Only then is a
client answered, so every change a client saw acknowledged survives a crash or a SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def sync_folder(folder: Path) -> None:
    """Make a folder's entries (a rename, a new or removed file) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_file(folder: Path, prefix: str) -> tuple[int, Path]:
    """A new temporary file in `folder` (swept at start-up if a crash leaves it)."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{prefix}-", suffix=TEMP_SUFFIX)
    return fd, Path(name)


def write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Replace `path` with `chunks`, all or nothing, durably."""
    fd, temp = temp_file(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    sync_folder(path.parent)


def install_file(temp: Path, path: Path) -> None:
    """Rename a written and synced temporary file over `path`, durably."""
    with open(temp, "rb") as written:
        os.fsync(written.fileno())
    os.replace(temp, path)
    sync_folder(path.parent)


def append_durably(path: Path, data: bytes) -> int:
    """Append `data` to an existing file in one write and sync it; the file's new size."""
    with open(path, "ab") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
        return out.tell()


def remove_durably(path: Path) -> None:
    """Delete a file, durably."""
    path.unlink()
    sync_folder(path.parent)


def truncate_durably(path: Path, size: int) -> None:
    """Cut a file to `size` bytes (a torn last record), durably."""
    with open(path, "r+b") as out:
        out.truncate(size)
        out.flush()
        os.fsync(out.fileno())


def sweep_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files a crash left in `folder`; the ones removed."""
    swept = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for path in swept:
        with contextlib.suppress(OSError):
            path.unlink()
    return swept
