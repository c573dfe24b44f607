"""An object's events: confirmed by its median score, updates at most once a second except
on entering a zone, an end, false positives never told; the store's bounds."""

from __future__ import annotations

import io
import itertools

import numpy as np
import numpy.typing as npt
from PIL import Image

from edge_server.cameras.event_store import EventStore
from edge_server.cameras.events import CameraEvent, Lifecycle
from edge_server.core.tracking import Observation, Tracker

FRAME = np.full((360, 640, 3), 90, np.uint8)
DOORSTEP = [(0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)]


def _rgb() -> npt.NDArray[np.uint8]:
    return FRAME


def _run(
    lifecycle: Lifecycle, tracker: Tracker, frames: list[list[Observation]], fps: float = 5.0
) -> list[tuple[float, CameraEvent]]:
    told = []
    for n, found in enumerate(frames):
        now = 1000.0 + n / fps
        _, ended = tracker.update(found, now)
        seen = [t for t in tracker.tracks if t.last_seen == now]
        for event in lifecycle.observe(
            tracker.tracks, ended, frame_time=now, rgb=_rgb, regions={}, seen=seen
        ):
            told.append((now, event))
    return told


def _walker(x: int, score: float) -> list[Observation]:
    return [Observation("person", score, (x, 100, x + 60, 300))]


def test_a_person_is_told_once_confirmed_updated_and_ended() -> None:
    """Scores that pass the 0.7 median on the third frame give `new` then (moving) at most
    one `update` a second, then `end` after the misses; ids and snapshots carry through."""
    lifecycle = Lifecycle("front", width=640, height=360, threshold=0.7)
    tracker = Tracker(max_disappeared=3)
    frames = [_walker(10 * n, s) for n, s in enumerate([0.5, 0.8, 0.9] + [0.85] * 27)]
    told = _run(lifecycle, tracker, frames + [[]] * 5)
    kinds = [e.type for _, e in told]
    assert kinds[0] == "new" and kinds[-1] == "end" and set(kinds[1:-1]) == {"update"}
    assert told[0][0] == 1000.0 + 2 / 5  # the third frame
    updates = [t for t, e in told if e.type == "update"]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(updates))
    assert len(updates) >= 4
    ids = {e.after["id"] for _, e in told}
    assert len(ids) == 1
    new, end = told[0][1], told[-1][1]
    assert new.before == new.after and new.after["false_positive"] is False
    assert end.after["end_time"] is not None and end.after["active"] is False
    assert end.before["end_time"] is None
    assert new.snapshot is not None and Image.open(io.BytesIO(new.snapshot)).size == (640, 360)


def test_a_false_positive_is_never_told() -> None:
    """A track whose median stays under the threshold comes and goes without an event."""
    lifecycle = Lifecycle("front", width=640, height=360, threshold=0.7)
    tracker = Tracker(max_disappeared=2)
    frames = [_walker(5 * n, s) for n, s in enumerate([0.6, 0.75, 0.5, 0.6, 0.65, 0.55])]
    assert _run(lifecycle, tracker, frames + [[]] * 4) == []


def test_entering_a_zone_is_told_at_once() -> None:
    """The frame whose box's feet enter the doorstep gives an update with the zone, even
    within a second of the last event."""
    lifecycle = Lifecycle(
        "front", width=640, height=360, threshold=0.5, zones={"doorstep": DOORSTEP}
    )
    tracker = Tracker()
    frames = [_walker(200 + 20 * n, 0.9) for n in range(8)]
    told = _run(lifecycle, tracker, frames, fps=10.0)
    first_in = next(n for n in range(8) if (200 + 20 * n + 30) / 640 >= 0.5)
    entry = [(t, e) for t, e in told if e.after["current_zones"] == ["doorstep"]]
    assert entry and entry[0][1].type == "update"
    assert entry[0][0] == 1000.0 + first_in / 10
    assert entry[0][1].after["entered_zones"] == ["doorstep"]


def test_the_store_keeps_the_newest_within_its_bounds() -> None:
    """Past 3 events the oldest ended one goes; past the byte bound too; get and recent."""
    store = EventStore(max_events=3, max_bytes=10_000)

    def event(n: int, active: bool, size: int) -> CameraEvent:
        after = {"id": f"{n}.0-abcdef", "start_time": float(n), "active": active}
        return CameraEvent("new", after, after, "front", "person", b"x" * size, b"", None)

    for n in range(5):
        store.add(event(n, n == 0, 0))
    assert len(store) == 3
    assert store.get("0.0-abcdef") is not None  # active: the ended ones went first
    assert [e.id for e in store.recent(limit=2)] == ["4.0-abcdef", "3.0-abcdef"]
    assert store.recent(camera="back", limit=5) == []
