"""Durable file changes under real failures: a full disk mid-append, a second holder of the
folder lock, temporaries left by a crash."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from edge_server.serving import storage

# Run in a child: RLIMIT_FSIZE makes the kernel refuse writes past a size (EFBIG, with SIGXFSZ
# ignored), the same failure a full disk gives a writer, without filling a disk.
_APPEND_PAST_LIMIT = textwrap.dedent(
    """
    import os, resource, signal, sys
    from edge_server.serving import storage

    path, limit = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    size = os.path.getsize(path)
    try:
        storage.append_durably(path, b"R" * 100 + b"\\n", size)
    except OSError as exc:
        print("refused", exc.errno)
    """
)


def test_an_append_that_runs_out_of_room_is_cut_back(tmp_path: Path) -> None:
    """A write refused half-way (EFBIG) leaves the file exactly as it was, so the next
    record is not glued to half of this one; the error reaches the caller."""
    path = tmp_path / "model.learned"
    path.write_bytes(b"header\n")
    child = subprocess.run(
        [sys.executable, "-c", _APPEND_PAST_LIMIT, str(path), "40"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert child.stdout.startswith("refused"), child.stdout + child.stderr
    assert path.read_bytes() == b"header\n"
    assert storage.append_durably(path, b"next\n", 7) == 12
    assert path.read_bytes() == b"header\nnext\n"


def test_an_append_never_creates_a_file(tmp_path: Path) -> None:
    """A file deleted meanwhile is an error, not a new file without its header."""
    try:
        storage.append_durably(tmp_path / "gone.learned", b"record\n", 0)
    except FileNotFoundError:
        pass
    else:
        raise AssertionError("append created a file")
    assert not (tmp_path / "gone.learned").exists()


def test_one_process_at_a_time_holds_the_folder(tmp_path: Path) -> None:
    """A second holder is refused while the first holds the lock, and may take it after."""
    first = storage.hold_lock(tmp_path)
    assert first is not None
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from edge_server.serving import storage; "
            "print(storage.hold_lock(Path(sys.argv[1])))",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert child.stdout.strip() == "None"
    os.close(first)
    again = storage.hold_lock(tmp_path)
    assert again is not None
    os.close(again)


def test_temporaries_left_by_a_crash_are_swept(tmp_path: Path) -> None:
    """Only the temporary files go; the models stay."""
    fd, temp = storage.temp_file(tmp_path, "import-pets")
    os.close(fd)
    (tmp_path / "pets.learned").write_bytes(b"x")
    assert storage.sweep_temporaries(tmp_path) == [temp]
    assert [p.name for p in tmp_path.iterdir()] == ["pets.learned"]
