"""The front door's load driver (deploy/load.py) against a real server process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import load
from conftest import ServerProcess, free_port

# The head of HAProxy 2.6's `/stats;csv` page, cut to the columns read, plus one of the others.
STATS_CSV = """# pxname,svname,qcur,wretr,wredis,status
edge,FRONTEND,,,,OPEN
pis,pi1,0,3,2,UP
pis,pi2,0,0,0,DOWN
pis,BACKEND,0,3,2,UP
"""


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    status = load.main(list(argv))
    return status, json.loads(capsys.readouterr().out)


def test_counts_right_answers(
    server: ServerProcess, images_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every request answered 200 with the expected top label counts as ok, up to --requests."""
    image = str(images_dir / "grace_hopper.jpg")
    status, summary = _run(capsys, server.url, image, "military uniform", "--requests", "5")
    assert status == 0
    assert (summary["requests"], summary["ok"], summary["failed"]) == (5, 5, 0)
    assert summary["served_by"] == {"-": 5}  # no front door: no X-Served-By header


def test_counts_a_wrong_label_as_failed(
    server: ServerProcess, images_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 200 with another top label is a failure, named by the label it had."""
    image = str(images_dir / "grace_hopper.jpg")
    status, summary = _run(capsys, server.url, image, "tabby, tabby cat", "--requests", "2")
    assert status == 1
    assert summary["failures"] == {"label 'military uniform'": 2}


def test_counts_unanswered_requests(images_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listening: each request is a failure with the reason, and the run still ends."""
    url = f"http://127.0.0.1:{free_port()}"
    image = str(images_dir / "grace_hopper.jpg")
    status, summary = _run(capsys, url, image, "x", "--requests", "3", "--pause", "0")
    assert status == 1
    assert summary["failures"] == {"URLError": 3}


def test_stop_file_ends_the_run(
    server: ServerProcess, images_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stop file that exists stops the load before any request; no request is a failure."""
    stop = tmp_path / "stop"
    stop.touch()
    image = str(images_dir / "grace_hopper.jpg")
    status, summary = _run(capsys, server.url, image, "x", "--stop-file", str(stop))
    assert status == 1
    assert summary["requests"] == 0


def test_reads_retries_and_redispatches_per_server() -> None:
    """HAProxy's CSV statistics give each server's retries and redispatches."""
    assert load.server_counters(STATS_CSV) == {
        "pi1": {"wretr": 3, "wredis": 2},
        "pi2": {"wretr": 0, "wredis": 0},
    }
