"""Memory for decoding: a budget images are charged against, and giving memory back after.

A 49 MP PNG (160 KB on the wire, under the pixel limit) takes about 200 MB once decoded
(Pillow keeps RGB as four bytes a pixel); four decoder threads at once would be 800 MB, past
a Pi 4's `MemoryMax`. Each decode is charged its decoded size (computed from the image's header
and the reduced-scale decode that will really be used) before a pixel is decoded, and waits
for room or is refused with 503 while the budget is spent.

The budget is a share of the memory the process may use: its cgroup's limit (systemd's
`MemoryMax`, a container's `--memory`) where there is one, else the RAM.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import platform
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from .errors import Overloaded, TooLarge

log = logging.getLogger("edge_server")

# The share of the memory limit that images being decoded may take: the rest is the runtime,
# the model, request bodies and the allocator's slack.
BUDGET_SHARE = 0.4
# What the process takes besides decoding: Python, the runtime, the model, request bodies.
RUNTIME_BYTES = 128 * 2**20
# How long a decode waits for room before its request is refused: short, since a waiting
# decode holds a decoder thread that small images queue behind.
WAIT_SECONDS = 1.0
# After a decode this large, with no other large one in progress, the heaps are trimmed.
TRIM_AFTER = 64 * 2**20
# glibc's mallopt parameter: allocations at least this large get their own mapping, returned
# to the system when freed (the default threshold grows to 32 MB after the first large free,
# and freed image buffers then stay in the heap). Pillow allocates large images in blocks of
# up to 16 MiB; 8 MiB maps those, and leaves a drafted 12 MP photo's few MB in the heap, where
# reusing them costs no page faults (a 1 MiB threshold cost 5% more CPU per photo).
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 8 << 20
# Fixing the mmap threshold also stops glibc from raising the trim threshold with it (128 KiB
# by default): the heap would then be shrunk and regrown around every photo. Twice the mmap
# threshold is what glibc's own rule would have set.
_M_TRIM_THRESHOLD = -1
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD


class MemoryBudget:
    """Bytes that decodes in progress may hold; a decode waits for its share or is refused."""

    def __init__(
        self, capacity: int, registry: CollectorRegistry, *, wait: float = WAIT_SECONDS
    ) -> None:
        self.capacity = capacity
        self.wait = wait
        self._used = 0
        self._room = threading.Condition()
        self.capacity_gauge = Gauge(
            "edge_decode_memory_budget_bytes",
            "Bytes images being decoded may take at once (EDGE_DECODE_MEMORY_MB).",
            registry=registry,
        )
        self.used_gauge = Gauge(
            "edge_decode_memory_used_bytes",
            "Bytes charged now to images being decoded.",
            registry=registry,
        )
        self.waits = Counter(
            "edge_decode_memory_waits",
            "Decodes that waited for room in the memory budget.",
            registry=registry,
        )
        self.refused = Counter(
            "edge_decode_memory_refused",
            "Images refused because the memory budget had no room in time (503) or could "
            "never hold them (413).",
            ("reason",),
            registry=registry,
        )
        self.refused.labels("busy")
        self.refused.labels("too_large")
        self.capacity_gauge.set(capacity)

    @property
    def used(self) -> int:
        """Bytes charged now."""
        return self._used

    @contextlib.contextmanager
    def charge(self) -> Iterator[Charge]:
        """A charge that decoding fills in; everything charged is given back on exit."""
        held = Charge(self)
        try:
            yield held
        finally:
            held.release()

    def acquire(self, nbytes: int) -> None:
        """Take `nbytes`, waiting up to `wait` seconds for room; Overloaded or TooLarge if not."""
        if nbytes > self.capacity:
            self.refused.labels("too_large").inc()
            raise TooLarge(
                f"decoding this image takes {nbytes / 2**20:.0f} MiB, more than the decode "
                f"memory budget of {self.capacity / 2**20:.0f} MiB (EDGE_DECODE_MEMORY_MB); "
                "send a smaller image"
            )
        deadline = time.monotonic() + self.wait
        with self._room:
            if self._used + nbytes > self.capacity:
                self.waits.inc()
            while self._used + nbytes > self.capacity:
                left = deadline - time.monotonic()
                if left <= 0 or not self._room.wait(left):
                    if self._used + nbytes <= self.capacity:
                        break
                    self.refused.labels("busy").inc()
                    raise Overloaded(
                        "the images being decoded fill the decode memory budget of "
                        f"{self.capacity / 2**20:.0f} MiB (EDGE_DECODE_MEMORY_MB); retry shortly",
                        headers={"Retry-After": "1"},
                    )
            self._used += nbytes
            self.used_gauge.set(self._used)

    def release(self, nbytes: int) -> None:
        """Give back `nbytes` taken by acquire."""
        with self._room:
            self._used -= nbytes
            self.used_gauge.set(self._used)
            self._room.notify_all()
            # No other large decode will reuse what this one freed (small ones may be running).
            large_left = self._used >= TRIM_AFTER
        if nbytes >= TRIM_AFTER and not large_left:
            trim()


class Charge:
    """What one decode holds in a budget (filled in once its size is known)."""

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self.held = 0

    def __call__(self, nbytes: int) -> None:
        """Hold `nbytes` more, waiting for room as the budget says."""
        self._budget.acquire(nbytes)
        self.held += nbytes

    def release(self) -> None:
        """Give back everything held."""
        if self.held:
            self._budget.release(self.held)
            self.held = 0


def memory_limit(root: Path = Path("/")) -> int | None:
    """Bytes this process may use: its cgroup's limit (v2 memory.max, v1), else the RAM."""
    limits = [v for v in (*_cgroup_limits(root), _ram(root)) if v is not None]
    return min(limits) if limits else None


def budget_bytes(setting_mb: int | None, largest: int, root: Path = Path("/")) -> int:
    """The decode budget: the setting, else a share of the memory limit (256 MiB if unknown).

    A derived budget holds the `largest` image allowed and a quarter more for small ones
    meanwhile: an image the limits accept must not be refused for ever.
    """
    if setting_mb is not None:
        return setting_mb * 2**20
    limit = memory_limit(root)
    share = 256 * 2**20 if limit is None else int(limit * BUDGET_SHARE)
    budget = max(share, largest + largest // 4)
    if limit is not None and budget + RUNTIME_BYTES > limit:
        log.warning(
            "decoding the largest image allowed takes %d MiB of the %d MiB this process may use; "
            "lower EDGE_MAX_IMAGE_PIXELS or raise the memory limit",
            largest // 2**20,
            limit // 2**20,
        )
    return budget


def _cgroup_limits(root: Path) -> list[int | None]:
    """The memory limits of this process's cgroup (v2 or v1); unlimited ones are None."""
    values: list[int | None] = []
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return values
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":  # cgroup v2: the unified hierarchy
            folder = root / "sys/fs/cgroup" / relative
            values.append(_read_limit(folder / "memory.max"))
        elif "memory" in controllers.split(","):
            for folder in (root / "sys/fs/cgroup/memory" / relative, root / "sys/fs/cgroup/memory"):
                if folder.is_dir():
                    values.append(_read_limit(folder / "memory.limit_in_bytes"))
                    break
    return values


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():  # "max"
        return None
    value = int(text)
    return value if value < 2**62 else None  # v1 writes a huge number for "no limit"


def _ram(root: Path) -> int | None:
    try:
        for line in (root / "proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def trim() -> None:
    """Return the free parts of glibc's heaps to the system (a no-op elsewhere).

    The mmap threshold returns the image buffers themselves; this returns the smaller blocks
    a large decode left scattered over the threads' heaps.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def return_freed_memory() -> bool:
    """Make glibc give large freed blocks back to the system at once (False elsewhere).

    Measured with twelve 49 MP PNG decodes on four threads (x86_64, glibc 2.36, baseline
    34 MB): RSS right after was 526 MB by default, 384 MB with MALLOC_ARENA_MAX=2, 36 MB with
    a fixed mmap threshold, and 34 MB after malloc_trim(0) (which took 310 ms then, so `trim`
    runs only after large decodes). Set in the process, it holds for pip, systemd and
    container installs alike.
    """
    libc = _glibc()
    if libc is None:
        return False
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return True  # the operator chose; keep it
    trimmed = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and trimmed)
