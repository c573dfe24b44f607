"""Decode memory: a budget from the cgroup limit, large images wait or get 503, RSS comes back."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image
from prometheus_client import CollectorRegistry

from edge_server.core.errors import Overloaded, TooLarge
from edge_server.core.imaging import decode_bytes
from edge_server.core.memory import MemoryBudget, budget_bytes, memory_limit

from conftest import ServerProcess, free_port, metric, server_env
from support.waiting import HANG, until

pytestmark = pytest.mark.lan

Photo = Callable[[str], bytes]
MiB = 2**20


def _fake_root(tmp_path: Path, cgroup: str, files: dict[str, str]) -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    (tmp_path / "proc/meminfo").write_text("MemTotal:        3884096 kB\n")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("cgroup", "files", "limit"),
    [
        (
            "0::/system.slice/edge-server.service\n",
            {"sys/fs/cgroup/system.slice/edge-server.service/memory.max": "536870912\n"},
            512 * MiB,
        ),
        (
            "0::/system.slice/edge-server.service\n",
            {"sys/fs/cgroup/system.slice/edge-server.service/memory.max": "max\n"},
            3884096 * 1024,
        ),
        (
            "12:cpu,cpuacct:/docker/abc\n9:memory:/docker/abc\n",
            {"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "268435456\n"},
            256 * MiB,
        ),
        (
            "9:memory:/\n",
            {"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"},
            3884096 * 1024,
        ),
    ],
    ids=["v2-unit-limit", "v2-unlimited", "v1-container", "v1-unlimited"],
)
def test_memory_limit_is_the_cgroup_limit_else_the_ram(
    tmp_path: Path, cgroup: str, files: dict[str, str], limit: int
) -> None:
    """The limit comes from cgroup v2 memory.max or v1 limit_in_bytes, else MemTotal."""
    assert memory_limit(_fake_root(tmp_path, cgroup, files)) == limit


def test_the_budget_under_the_units_memory_max_holds_the_largest_image(tmp_path: Path) -> None:
    """Under MemoryMax=512M the budget is 40% of it, raised to fit a 50 MP image and a quarter."""
    root = _fake_root(
        tmp_path, "0::/edge.service\n", {"sys/fs/cgroup/edge.service/memory.max": "536870912"}
    )
    largest = decode_bytes("RGB", (7071, 7071), transposed=False)
    assert budget_bytes(None, 10 * MiB, root) == int(512 * MiB * 0.4)
    assert budget_bytes(None, largest, root) == largest + largest // 4
    assert budget_bytes(300, largest, root) == 300 * MiB


@pytest.mark.parametrize(
    ("mode", "per_pixel"),
    [("RGB", 4), ("L", 1 + 4), ("RGBA", 4 + 16), ("I;16", 2 + 28), ("P", 1 + 20)],
)
def test_decode_bytes_counts_pillows_pixels_and_the_conversions(mode: str, per_pixel: int) -> None:
    """The charge is Pillow's decoded size (RGB is 4 bytes a pixel) plus the copies to RGB."""
    margin = 1000 * 256 * 4
    assert decode_bytes(mode, (1000, 500), transposed=False) == 500_000 * per_pixel + margin


def _waits(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("edge_decode_memory_waits_total")


def test_a_budget_waits_for_room_then_refuses() -> None:
    """A charge waits while the budget is spent, gets room once released, else 503; too big 413."""
    registry = CollectorRegistry()
    budget = MemoryBudget(100, registry, wait=0.05)
    with budget.charge() as first:
        first(80)
        with pytest.raises(Overloaded), budget.charge() as second:
            second(30)
        assert _waits(registry) == 1  # it waited for room before it was refused
        assert registry.get_sample_value("edge_decode_memory_refused_total", {"reason": "busy"})
    assert budget.used == 0
    # Room given back while a charge waits (patiently: the release comes once it waits).
    registry = CollectorRegistry()
    budget = MemoryBudget(100, registry, wait=HANG)
    with budget.charge() as first:
        first(80)

        def release_once_waiting() -> None:
            until(lambda: _waits(registry) == 1, "the third charge waiting")
            first.release()

        releaser = threading.Thread(target=release_once_waiting)
        releaser.start()
        with budget.charge() as third:
            third(30)
            assert budget.used == 30
        releaser.join()
    assert budget.used == 0 and _waits(registry) == 1
    with pytest.raises(TooLarge):
        budget.acquire(101)


def _big_png(photo: Photo) -> bytes:
    """A 7000x7000 (49 MP) PNG of a real photo on a plain ground: about 200 KB."""
    canvas = Image.new("RGB", (7000, 7000), (250, 250, 250))
    canvas.paste(Image.open(io.BytesIO(photo("parrot.jpg"))).convert("RGB"), (3000, 3000))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_32_concurrent_49_mp_pngs_stay_in_the_budget_and_memory_comes_back(
    models_dir: Path, runtime: str, photo: Photo
) -> None:
    """Four decoder threads (a Pi 4), 32 uploads of a 49 MP PNG and normal traffic: peak RSS
    under 400 MB, only 200s and clean 503s, RSS back within 50 MB of its baseline after."""
    big, small = _big_png(photo), photo("grace_hopper.jpg")
    # The budget derived under the unit's MemoryMax=512M (see the test above).
    side_budget = decode_bytes("RGB", (7071, 7071), transposed=False) * 5 // 4 // MiB
    env = server_env(models_dir, runtime, decode_threads="4", decode_memory_mb=str(side_budget))
    server = ServerProcess(env, free_port())
    server.wait_ready()
    pid = server.process.pid
    try:
        for _ in range(3):
            httpx.post(server.url + "/classify", files={"image": small}, timeout=HANG)
        baseline = _rss(pid)
        peak = baseline
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _rss(pid))
                time.sleep(0.02)

        def post(body: bytes) -> httpx.Response:
            return httpx.post(server.url + "/classify", files={"image": body}, timeout=HANG)

        sampler = threading.Thread(target=sample)
        sampler.start()
        with ThreadPoolExecutor(36) as pool:
            bigs = [pool.submit(post, big) for _ in range(32)]
            normal = []
            while not all(f.done() for f in bigs):
                normal.append(pool.submit(post, small))
                time.sleep(0.25)
            responses = [f.result() for f in bigs], [f.result() for f in normal]
        done.set()
        sampler.join()

        # Every answer is in: what the decodes held goes back (the last release trims the heap).
        def given_back() -> int | None:
            rss = _rss(pid)
            return rss if rss - baseline < 50 * MiB else None

        after = until(given_back, f"RSS back within 50 MiB of {baseline / MiB:.0f} MiB")
        text = httpx.get(server.url + "/metrics", timeout=HANG).text
    finally:
        server.stop()
    big_statuses = [r.status_code for r in responses[0]]
    normal_statuses = [r.status_code for r in responses[1]]
    print(
        f"RSS baseline {baseline / MiB:.0f} MiB, peak {peak / MiB:.0f}, after {after / MiB:.0f}; "
        f"big {sorted(big_statuses)}, normal {sorted(normal_statuses)}"
    )
    assert set(big_statuses) <= {200, 503} and 200 in big_statuses, big_statuses
    assert set(normal_statuses) <= {200, 503} and 200 in normal_statuses, normal_statuses
    refused = [r for r in (*responses[0], *responses[1]) if r.status_code == 503]
    assert all(r.headers["retry-after"] == "1" for r in refused)
    assert all(r.headers["content-type"] == "application/problem+json" for r in refused)
    # Refused by the memory budget, or by the queue (one address leaves an eighth to others).
    budget = [r for r in refused if "EDGE_DECODE_MEMORY_MB" in r.json()["detail"]]
    assert budget
    assert all("EDGE_MAX_QUEUE" in r.json()["detail"] for r in refused if r not in budget)
    assert metric(text, "edge_decode_memory_refused_total", reason="busy") == len(budget)
    assert peak < 400 * MiB, peak / MiB
