"""A camera's watcher on decoded H.264 clips, with the real detector through the Service: one
`new` for the person who walks through, updates, one `end`; nothing on a noisy static scene."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from prometheus_client import generate_latest

from edge_server.cameras.event_store import EventStore
from edge_server.cameras.events import CameraEvent
from edge_server.cameras.frames import Frame, frame_of
from edge_server.cameras.streams import Picture
from edge_server.cameras.watcher import Watcher
from edge_server.config.cameras import CameraConfig
from edge_server.config.settings import Settings
from edge_server.serving.service import Service

from conftest import DETECTOR, SMALL_MODEL, metric
from support.cameras.clips import Clip
from support.decoded import Decoded, decoded
from support.services import running_service
from support.waiting import until

HANG = 60.0
MIDDLE = [(0.3, 0.7), (0.7, 0.7), (0.7, 1.0), (0.3, 1.0)]  # where the person stands


def _same(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return rgb


class ClipFeed:
    """A stand-in Feed over a clip's decoded frames, played in real time once: `latest`
    gives the frame of the current moment, as a camera's reader keeps only the newest."""

    def __init__(self, clip: Decoded) -> None:
        self.clip = clip
        self.started = time.time()
        self._lock = threading.Lock()

    def latest(self, after: int = 0, timeout: float = 1.0) -> Frame | None:
        deadline = time.monotonic() + timeout
        while True:
            now = time.time()
            number = min(int((now - self.started) * self.clip.fps) + 1, len(self.clip.luma))
            if number > after and now - self.started < len(self.clip.luma) / self.clip.fps:
                index = number - 1
                rgb = self.clip.rgb[index]
                return frame_of(
                    number,
                    Picture(self.clip.luma[index].copy(), partial(_same, rgb)),
                    at=self.started + index / self.clip.fps,
                )
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    @property
    def done(self) -> bool:
        """Whether the clip has played to its end."""
        return time.time() - self.started >= len(self.clip.luma) / self.clip.fps


@dataclass
class Heard:
    """What a listener was told, with when (time.time())."""

    events: list[tuple[float, CameraEvent]] = field(default_factory=list)
    motion: list[bool] = field(default_factory=list)
    counts: list[dict[str, int]] = field(default_factory=list)

    def on_event(self, event: CameraEvent) -> None:
        self.events.append((time.time(), event))

    def on_motion(self, camera: str, moving: bool) -> None:
        self.motion.append(moving)

    def on_counts(self, camera: str, counts: Mapping[str, int]) -> None:
        self.counts.append(dict(counts))


@pytest.fixture(scope="module")
def clips(walk_clip: Clip, still: Clip) -> dict[str, Decoded]:
    return {"walk": decoded(walk_clip), "static": decoded(still)}


@pytest.fixture(scope="module")
def served(models_dir: Path, runtime: str) -> Iterator[tuple[Service, asyncio.AbstractEventLoop]]:
    settings = Settings(model=[DETECTOR, SMALL_MODEL], models_dir=models_dir, runtime=runtime)
    with running_service(settings) as (service, loop):
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            yield service, loop
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()


def _watch(
    served: tuple[Service, asyncio.AbstractEventLoop],
    clip: Decoded,
    until_done: Callable[[ClipFeed, Heard], bool],
    **config: object,
) -> tuple[Heard, Watcher, EventStore, ClipFeed]:
    """One camera over `clip` until `until_done`."""
    [watched] = _watch_all(
        served, [(clip, config)], lambda feeds, heard: until_done(feeds[0], heard[0])
    )
    return watched


def _watch_all(
    served: tuple[Service, asyncio.AbstractEventLoop],
    cameras: list[tuple[Decoded, dict[str, object]]],
    until_done: Callable[[list[ClipFeed], list[Heard]], bool],
) -> list[tuple[Heard, Watcher, EventStore, ClipFeed]]:
    """Cameras over clips, side by side, until `until_done`."""
    service, loop = served
    watched = []
    for n, (clip, config) in enumerate(cameras):
        store = EventStore()
        feed = ClipFeed(clip)
        camera = CameraConfig(name=f"cam{n}", url="rtsp://127.0.0.1/clip", **config)
        watcher = Watcher(f"cam{n}", camera, feed, service, loop, store)
        heard = Heard()
        watcher.add_listener(heard)
        watched.append((heard, watcher, store, feed))
    for _, watcher, _, _ in watched:
        asyncio.run_coroutine_threadsafe(watcher.start(), loop).result(HANG)
    try:
        until(
            lambda: until_done([w[3] for w in watched], [w[0] for w in watched]),
            "the clips to play through",
            timeout=HANG,
        )
    finally:
        for _, watcher, _, _ in watched:
            asyncio.run_coroutine_threadsafe(watcher.stop(), loop).result(HANG)
    return watched


def test_a_person_walking_through_is_one_new_updates_and_one_end(
    served: tuple[Service, asyncio.AbstractEventLoop], clips: dict[str, Decoded]
) -> None:
    """The walk-in clip gives one `new` for a person soon after they appear, `update`s (one
    naming them with the classifier, one in the zone they stop in, one saying they stand
    still), one `end` after they leave; the snapshot shows them; the metrics count events."""
    clip = clips["walk"]

    service, _ = served
    exposed: list[str] = []

    def ended(feed: ClipFeed, heard: Heard) -> bool:
        if any(e.type == "end" for _, e in heard.events):
            exposed.append(generate_latest(service.metrics.registry).decode())
            return True
        return feed.done

    heard, watcher, store, feed = _watch(
        served, clip, ended, fps=5, classify=SMALL_MODEL, zones={"middle": MIDDLE}
    )
    person = [(t, e) for t, e in heard.events if e.label == "person"]
    kinds = [e.type for _, e in person]
    print(
        [
            (
                round(t - feed.started, 2),
                e.type,
                e.after["id"][-6:],
                e.after["box"],
                e.after["score"],
                e.after["stationary"],
            )
            for t, e in person
        ]
    )
    assert kinds.count("new") == 1, kinds
    assert kinds[0] == "new" and kinds[-1] == "end" and kinds.count("end") == 1
    assert "update" in kinds
    ids = {e.after["id"] for _, e in person}
    assert len(ids) == 1
    appears, leaves = clip.clip.person_in, clip.clip.person_out
    assert appears is not None and leaves is not None
    delay = person[0][0] - (feed.started + appears)
    end_delay = person[-1][0] - (feed.started + leaves)
    print(
        f"\nperson appeared at {appears:.1f} s: new after {delay:.2f} s; left at "
        f"{leaves:.1f} s: end after {end_delay:.2f} s; {len(person)} events; "
        f"status {watcher.status()}"
    )
    assert delay > 0  # never before the person was in view
    assert any(e.after["stationary"] for _, e in person), "standing still was never told"
    entered = [e for _, e in person if e.after["current_zones"] == ["middle"]]
    assert entered, "entering the middle zone was never told"
    assert person[-1][1].after["entered_zones"] == ["middle"]
    entered = [e for _, e in person if e.after["current_zones"] == ["middle"]]
    assert entered and entered[0].type in ("new", "update")
    assert person[-1][1].after["entered_zones"] == ["middle"]
    assert person[-1][1].after["position_changes"] >= 1  # moved off again
    new = person[0][1]
    assert new.after["false_positive"] is False and new.after["has_snapshot"] is True
    named = [e.after["sub_label"] for _, e in person if e.after["sub_label"]]
    assert named, "the classifier never named the person"
    stored = store.get(new.after["id"])
    assert stored is not None and stored.after["end_time"] is not None
    snapshot = stored.picture(crop=True, height=200)
    assert snapshot is not None
    assert Image.open(io.BytesIO(snapshot)).height == 200
    whole = stored.picture(boxes=False)
    assert whole is not None
    loop = served[1]
    answer = asyncio.run_coroutine_threadsafe(service.detect_upload(whole), loop).result(HANG)
    assert "person" in [d.label for d in answer.detections]  # the snapshot shows them
    assert True in heard.motion
    assert heard.counts and heard.counts[0].get("person") == 1
    assert heard.counts[-1].get("person") == 0
    assert watcher.status().frames_analysed > 0
    latest = watcher.latest_jpeg(boxes=True, height=180)
    assert latest is not None and Image.open(io.BytesIO(latest)).size == (320, 180)
    plain = watcher.latest_jpeg(boxes=False, height=None)
    assert plain is not None and Image.open(io.BytesIO(plain)).size == (640, 360)
    assert exposed, "no end event"
    text = exposed[0]
    assert metric(text, "edge_camera_events_total", camera="cam0", type="new") == 1
    assert metric(text, "edge_camera_events_total", camera="cam0", type="end") == 1
    assert metric(text, "edge_camera_detector_runs_total", camera="cam0") >= 5


def test_a_still_scene_and_a_masked_person_give_no_event(
    served: tuple[Service, asyncio.AbstractEventLoop], clips: dict[str, Decoded]
) -> None:
    """Side by side: the noisy still clip gives no event, motion never ON and no detector run;
    the walk-in clip with a mask over the lower half (where the person stands) gives motion
    and detector runs but no event."""
    lower_half = [[(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)]]
    (still, still_watcher, _, _), (masked, masked_watcher, _, _) = _watch_all(
        served,
        [(clips["static"], {"fps": 5}), (clips["walk"], {"fps": 5, "masks": lower_half})],
        lambda feeds, _: all(feed.done for feed in feeds),
    )
    status = still_watcher.status()
    print(f"\nstill: {status}\nmasked: {masked_watcher.status()}")
    assert still.events == []
    assert True not in still.motion
    assert status.frames_analysed >= 5 * 6
    assert status.detector_runs == 0
    assert masked.events == []
    assert True in masked.motion
    assert masked_watcher.status().detector_runs > 0
