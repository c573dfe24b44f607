"""Slow clients and many connections: a server limited to 1,024 open files keeps serving."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from edge_server.ops.filelimit import connection_cap

from conftest import ServerProcess, free_port, metric, server_env
from support.waiting import HANG, until

pytestmark = pytest.mark.lan

Photo = Callable[[str], bytes]

# More than the server's open-file limit, from this one client.
FILE_LIMIT = 1024
PER_KIND = 350
ATTACK_SECONDS = 12.0
SLOWLORIS = Path(__file__).parent.parent / "support" / "slowloris.py"


def _open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def _files_back(pid: int, baseline: int) -> int | None:
    """The process's count of open files once it is down to `baseline`, else None."""
    count = _open_files(pid)
    return count if count <= baseline else None


def _attack_and_probe(
    server: ServerProcess, image: bytes
) -> tuple[Counter[str], list[tuple[str, int, float]]]:
    """The attack in a child process; meanwhile another host's /readyz and /classify, each
    answer with how long it took (printed: how fast is not asserted, on a shared machine)."""
    attack = subprocess.Popen(
        [sys.executable, str(SLOWLORIS), str(server.port), str(ATTACK_SECONDS + 2), str(PER_KIND)],
        stdout=subprocess.PIPE,
        text=True,
    )
    answers: list[tuple[str, int, float]] = []
    try:
        assert attack.stdout is not None
        opened = attack.stdout.readline()  # every slow connection open (or refused)
        assert opened == "open\n", opened
        # A new connection each time, as cameras do (an idle keep-alive may be closed to make
        # room, which HTTP clients must expect anyway).
        fresh = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=server.url, timeout=HANG, limits=fresh) as client:
            deadline = time.monotonic() + ATTACK_SECONDS
            while time.monotonic() < deadline:
                started = time.monotonic()
                response = client.get("/readyz")
                answers.append(("readyz", response.status_code, time.monotonic() - started))
                started = time.monotonic()
                response = client.post("/classify", files={"image": image})
                answers.append(("classify", response.status_code, time.monotonic() - started))
                time.sleep(0.3)
        out, _ = attack.communicate(timeout=HANG)
    finally:
        if attack.poll() is None:
            attack.kill()
            attack.wait()
    assert attack.returncode == 0, out
    return Counter(json.loads(out)), answers


@pytest.mark.slow
def test_slow_connections_beyond_the_file_limit_do_not_stop_the_service(
    models_dir: Path, runtime: str, photo: Photo, tmp_path: Path
) -> None:
    """1,050 slow connections from one host (trickled headers, stalled bodies, idle keep-alives)
    against a 1,024-file server: another host's /readyz and /classify all answered 200, log
    < 1 MB, fds back after."""
    env = server_env(
        models_dir,
        runtime,
        log_level="info",
        header_timeout="5",
        body_timeout="5",
        keep_alive_timeout="5",
    )
    log = tmp_path / "server.log"
    server = ServerProcess(env, free_port(), open_files=FILE_LIMIT, log_path=log)
    try:
        server.wait_ready()
        image = photo("grace_hopper.jpg")
        assert httpx.post(server.url + "/classify", files={"image": image}).status_code == 200
        baseline = _open_files(server.process.pid)
        log_before = log.stat().st_size
        totals, answers = _attack_and_probe(server, image)
        log_growth = log.stat().st_size - log_before
        # The attackers hung up; what they left behind closes by the timeouts.
        after = until(
            lambda: _files_back(server.process.pid, baseline),
            f"the server's open files back to {baseline}",
        )
        text = httpx.get(server.url + "/metrics", timeout=HANG).text
    finally:
        server.stop()
    slowest = max(seconds for _, _, seconds in answers)
    print(totals, f"log +{log_growth} bytes, fds {baseline} -> {after}, slowest {slowest:.2f} s")
    assert totals["connected"] > FILE_LIMIT
    assert {status for name, status, _ in answers if name == "readyz"} == {200}
    assert {status for name, status, _ in answers if name == "classify"} == {200}
    assert log_growth < 1_000_000
    assert "Traceback" not in server.log
    closed = {
        reason: metric(text, "edge_connections_closed_total", reason=reason)
        for reason in ("header_timeout", "body_timeout", "evicted")
    }
    # Slow headers are closed by their deadline, or earlier to make room for a newcomer.
    assert closed["header_timeout"] + closed["evicted"] > 0, closed
    assert closed["body_timeout"] > 0, closed


@pytest.mark.parametrize(
    ("wanted", "file_limit", "in_use", "cap"),
    [
        (1000, 1024, 10, 1024 - 10 - 3 * 64 - 64),
        (1000, 8192, 10, 1000),
        (1000, resource.RLIM_INFINITY, 10, 1000),
        (1000, 300, 10, 300 - 10 - 3 * 64 - 64),
        (1000, 200, 10, 1),
    ],
)
def test_connections_are_capped_below_the_open_file_limit(
    wanted: int, file_limit: int, in_use: int, cap: int
) -> None:
    """The cap leaves room for files in use, three accept bursts and a reserve."""
    assert connection_cap(wanted, file_limit, in_use, backlog=64) == cap


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    """A process started with 1,024 soft and 4,096 hard runs with 4,096."""
    code = (
        "import resource; from edge_server.ops.filelimit import raise_open_files; "
        "print(raise_open_files(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))

    out = subprocess.run(
        [sys.executable, "-c", code], preexec_fn=limit, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["4096", "4096"]
