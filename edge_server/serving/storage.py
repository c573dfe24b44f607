"""Durable file changes: a file is either wholly written or not there, before anyone is told.

A write goes to a temporary file in the same folder, is flushed to the disk (fsync), renamed
over the target (atomic on POSIX when both are on one file system) and the folder is synced so
the rename itself survives a power cut; an append is synced before it returns. Only then is a
client answered, so every change a client saw acknowledged survives a crash or a SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
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


def make_writable(folder: Path) -> None:
    """Create `folder` if need be and prove a file can be written in it (OSError if not), so
    a folder the service may not write stops the start rather than the first change."""
    folder.mkdir(parents=True, exist_ok=True)
    probe_fd, probe = temp_file(folder, "probe")
    os.close(probe_fd)
    probe.unlink()


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
    """Rename a written and synced temporary file (`write_atomically`'s) over `path`, durably."""
    os.replace(temp, path)
    sync_folder(path.parent)


def append_durably(path: Path, data: bytes, size: int) -> int:
    """Append `data` to an existing file of `size` bytes and sync it; the file's new size.

    A failed write or sync (a full disk, an I/O error) cuts the file back to `size`, so a half
    record never sits before the next one; OSError is raised either way. The file is never
    created here: a file deleted meanwhile is an error, not a new file without its header.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        return os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        os.ftruncate(fd, size)  # may fail too: the caller then stops using the file
        os.fsync(fd)
        raise
    finally:
        os.close(fd)


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


def hold_lock(folder: Path) -> int | None:
    """An exclusive lock on `folder/.lock` held while the returned descriptor stays open
    (None: another process holds it). One process at a time changes the folder."""
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def sweep_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files a crash left in `folder`; the ones removed."""
    swept = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for path in swept:
        with contextlib.suppress(OSError):
            path.unlink()
    return swept
