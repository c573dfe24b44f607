"""One camera's analysis: the latest frame, motion, the detector where it matters, tracking,
events.

A thread per camera (`edge-watch-<name>`) takes the feed's latest frame at most `fps` times a
second (frames in between are never queued: they are counted as skipped) and finds motion on
its luma. The detector runs only on regions: a square around each cluster of motion and
around each tracked object (Frigate's regions: 1.35 times the box, at least the detector's
input, so the detector sees the object at the scale it was trained on), or on the whole frame
when the regions would cover most of it. A stationary object is looked at again every
`stationary_interval` seconds, not on every frame. Detector invokes go through the Service on
the event loop (`detect_picture`): they share the process's owners and core budget with the
HTTP requests, one invoke of this camera at a time. With faces on (face_names), a confirmed
person's face is recognised in their box about once a second until they are named (beside the
analysis, one try in flight at a time); the name is their sub label. Events go to the store
and, on the event loop, to the listeners (MQTT, webhooks, the page).

With nothing moving and nothing tracked, a frame costs its motion check (about half a
millisecond at 640x360) and the detector never runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import weakref
from collections import Counter as Tally
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge

from ..config.cameras import CameraConfig
from ..core.detection import Task
from ..core.errors import ServiceError
from ..core.motion import Motion, MotionOptions
from ..core.region import Region
from ..core.tracking import Observation, Track, Tracker, iou
from ..core.zones import Box, masked, square_around
from ..serving.schemas import DetectResponse, PixelBox
from ..serving.service import Service
from . import snapshots
from .event_store import EventStore
from .events import CameraEvent, Lifecycle
from .face_names import PERSON, FaceTries, faces_on
from .frames import Frame

log = logging.getLogger("edge_server")

MOTION_OFF_DELAY = 5.0  # seconds without motion before a camera's motion is OFF
WHOLE_FRAME_SHARE = 0.6  # regions covering more than this of the frame: search it whole
REGION_SCALE = 1.35  # Frigate's region around a box
DEFAULT_INPUT = 300  # the detector's input side when it cannot be read
DUPLICATE_IOU = 0.5  # one object found in two overlapping regions
DETECT_TIMEOUT = 30.0  # a hung invoke must not stop the camera for good
FPS_WINDOW = 5.0  # seconds the analysed rate is measured over


class CameraMetrics:
    """The watchers' metrics (`edge_camera_*`, label `camera`: the configured name), one set
    per registry that every camera of the app shares."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.analysed = Counter(
            "edge_camera_frames_analysed",
            "Camera frames analysed (motion checked), by camera.",
            ("camera",),
            registry=registry,
        )
        self.skipped = Counter(
            "edge_camera_frames_skipped",
            "Camera frames read but never analysed (only the latest frame is), by camera.",
            ("camera",),
            registry=registry,
        )
        self.detector_runs = Counter(
            "edge_camera_detector_runs",
            "Analysed frames the detector ran on (on regions with motion or tracked objects), "
            "by camera.",
            ("camera",),
            registry=registry,
        )
        self.events = Counter(
            "edge_camera_events",
            "Camera events told, by camera and type (new, update, end).",
            ("camera", "type"),
            registry=registry,
        )
        self.motion = Gauge(
            "edge_camera_motion",
            "1 while the camera sees motion, else 0.",
            ("camera",),
            registry=registry,
        )
        self.objects = Gauge(
            "edge_camera_objects",
            "Objects the camera tracks now, confirmed or not.",
            ("camera",),
            registry=registry,
        )
        self.face_tries = Counter(
            "edge_camera_face_tries",
            "Faces looked for in a camera's confirmed people, by camera and outcome "
            "(recognised; unrecognised: no face, or nobody registered; failed).",
            ("camera", "outcome"),
            registry=registry,
        )
        self.errors = Counter(
            "edge_camera_analysis_errors",
            "Frames whose analysis failed (the detector refused or failed), by camera.",
            ("camera",),
            registry=registry,
        )

    def forget(self, camera: str) -> None:
        """Drop a removed camera's series."""
        for metric in (
            self.analysed,
            self.skipped,
            self.detector_runs,
            self.motion,
            self.objects,
            self.errors,
        ):
            with contextlib.suppress(KeyError):
                metric.remove(camera)
        for kind in ("new", "update", "end"):
            with contextlib.suppress(KeyError):
                self.events.remove(camera, kind)
        for outcome in ("recognised", "unrecognised", "failed"):
            with contextlib.suppress(KeyError):
                self.face_tries.remove(camera, outcome)


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, CameraMetrics] = weakref.WeakKeyDictionary()
_METRICS_LOCK = threading.Lock()


def camera_metrics(registry: CollectorRegistry) -> CameraMetrics:
    """The registry's camera metrics, made on first use."""
    with _METRICS_LOCK:
        metrics = _METRICS.get(registry)
        if metrics is None:
            metrics = _METRICS[registry] = CameraMetrics(registry)
        return metrics


class FrameSource(Protocol):
    """What a watcher reads: a feed's latest frame."""

    def latest(self, after: int = 0, timeout: float = 1.0) -> Frame | None: ...


class WatcherListener(Protocol):
    """Told of a camera's events, motion and counts (called on the event loop)."""

    def on_event(self, event: CameraEvent) -> None: ...

    def on_motion(self, camera: str, moving: bool) -> None: ...

    def on_counts(self, camera: str, counts: Mapping[str, int]) -> None: ...


@dataclass(frozen=True)
class WatcherStatus:
    """A camera's analysis, for `/v1/cameras` and the page."""

    camera: str
    running: bool
    frames_analysed: int
    frames_skipped: int  # frames the feed read that were never analysed (latest-only)
    fps_analysed: float
    detector_runs: int  # frames the detector ran on (the rest: motion only)
    motion: bool
    calibrating: bool
    objects: int  # tracked now, confirmed or not
    counts: dict[str, int] = field(default_factory=dict)  # confirmed objects by label
    last_error: str | None = None
    last_frame_time: float | None = None
    faces: bool = False  # naming people by their faces now (on, and anybody registered)


@dataclass(frozen=True)
class _FaceTry:
    """A face try in flight: the objects' tracks and ids, the tried frame's time."""

    future: Future[list[tuple[str, float] | None]]
    due: list[tuple[Track, str]]
    time: float
    started: float  # time.monotonic()


class Watcher:
    """The analysis loop of one camera."""

    def __init__(
        self,
        camera: str,
        config: CameraConfig,
        feed: FrameSource,
        service: Service,
        loop: asyncio.AbstractEventLoop,
        events: EventStore,
    ) -> None:
        self.camera = camera
        self.config = config
        self.feed = feed
        self.service = service
        self.loop = loop
        self.events = events
        self._listeners: list[WatcherListener] = []
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        # Per frame size (made on the first frame, and again if the stream's size changes).
        self._motion: Motion | None = None
        self._lifecycle: Lifecycle | None = None
        tracked = max(3, round(config.fps * 2))
        self._tracker = Tracker(max_disappeared=tracked, stationary_frames=tracked)
        self._checked: dict[int, float] = {}  # track number -> when the detector last saw it
        self._latest: Frame | None = None
        self._boxes: list[tuple[Box, str]] = []
        self._analysed = 0
        self._skipped = 0
        self._detector_runs = 0
        self._times: deque[float] = deque()
        self._moving = False
        self._moved_at = 0.0
        self._counts: dict[str, int] = {}
        self._last_error: str | None = None
        self._errors_logged_at = 0.0
        self.metrics = camera_metrics(service.metrics.registry)
        self.faces = faces_on(config, service)  # name people by their faces
        if config.faces and not self.faces:
            log.warning(
                "camera %s: faces = true, but faces are not served (EDGE_FACES is off or the "
                "face models are missing: edge-server models pull faces); people are not named",
                camera,
            )
        self._face_tries = FaceTries()
        self._face_try: _FaceTry | None = None  # the one face try in flight

    # --- the contract ---------------------------------------------------------------------

    def add_listener(self, listener: WatcherListener) -> None:
        """Tell `listener` of events, motion and counts, on the event loop."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Start the analysis thread (idempotent)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"edge-watch-{self.camera}", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Stop the thread, end the camera's open events and tell the listeners."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        await asyncio.to_thread(thread.join, DETECT_TIMEOUT + 5.0)
        self._drop_face_try()
        ended = self._lifecycle.close(time.time()) if self._lifecycle else []
        for event in ended:
            self.metrics.events.labels(self.camera, event.type).inc()
        self.metrics.forget(self.camera)
        self._tracker.clear()
        for event in ended:
            self.events.add(event)
            for listener in self._listeners:
                listener.on_event(event)
        if self._moving:
            self._moving = False
            for listener in self._listeners:
                listener.on_motion(self.camera, False)
        if self._counts:
            self._counts = dict.fromkeys(self._counts, 0)
            for listener in self._listeners:
                listener.on_counts(self.camera, dict(self._counts))

    def status(self) -> WatcherStatus:
        """How the analysis is doing now."""
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self._times if now - t <= FPS_WINDOW]
            span = (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
            return WatcherStatus(
                camera=self.camera,
                running=self._thread is not None,
                frames_analysed=self._analysed,
                frames_skipped=self._skipped,
                fps_analysed=(len(recent) - 1) / span if span > 0 else 0.0,
                detector_runs=self._detector_runs,
                motion=self._moving,
                calibrating=self._motion.calibrating if self._motion else True,
                objects=len(self._tracker.tracks),
                counts=dict(self._counts),
                last_error=self._last_error,
                last_frame_time=self._latest.time if self._latest else None,
                faces=self._naming_faces(),
            )

    def relabel(
        self, event_id: str, sub_label: str | None, score: float | None
    ) -> CameraEvent | None:
        """A live object's sub label set from outside (on the event loop): its `update`, kept
        and told as the watcher's own events are; None when no live object has that id."""
        lifecycle = self._lifecycle
        event = lifecycle.relabel(event_id, sub_label, score, time.time()) if lifecycle else None
        if event is not None:
            self.events.add(event)
            self.metrics.events.labels(self.camera, event.type).inc()
            self._tell([event], None, None)
        return event

    def latest_jpeg(self, *, boxes: bool, height: int | None) -> bytes | None:
        """The last analysed frame as JPEG, with the tracked objects' boxes if asked; None
        before the first frame."""
        with self._lock:
            frame, drawn = self._latest, list(self._boxes)
        if frame is None:
            return None
        if not boxes:
            return snapshots.scaled_jpeg(frame.jpeg(), height)
        return snapshots.encoded(snapshots.boxed(frame.rgb(), drawn), height=height)

    # --- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        interval = 1.0 / self.config.fps
        last_number = 0
        due = 0.0
        while not self._stopping.is_set():
            wait = due - time.monotonic()
            if wait > 0 and self._stopping.wait(wait):
                break
            try:
                frame = self.feed.latest(after=last_number, timeout=0.5)
            except Exception as exc:  # the feed's bug must not end the camera's analysis
                log.exception("camera %s: reading the latest frame failed", self.camera)
                self._failed(f"reading the latest frame failed: {exc}")
                self._stopping.wait(1.0)
                continue
            if frame is None:
                continue
            due = time.monotonic() + interval
            with self._lock:
                if last_number:
                    skipped = max(0, frame.number - last_number - 1)
                    self._skipped += skipped
                    self.metrics.skipped.labels(self.camera).inc(skipped)
            last_number = frame.number
            try:
                self._analyse(frame)
            except ServiceError as exc:
                self._failed(f"the detector failed: {exc.detail}")
            except Exception as exc:  # a bug must not stop the camera for good
                log.exception("camera %s: analysing a frame failed", self.camera)
                self._failed(f"analysing a frame failed: {exc}")

    def _failed(self, message: str) -> None:
        self.metrics.errors.labels(self.camera).inc()
        with self._lock:
            self._last_error = message
        now = time.monotonic()
        if now - self._errors_logged_at >= 60.0:  # one line a minute, not one a frame
            self._errors_logged_at = now
            log.warning("camera %s: %s", self.camera, message)

    def _analyse(self, frame: Frame) -> None:
        config = self.config
        width, height = frame.width, frame.height
        closed: list[CameraEvent] = []
        if self._motion is None or (self._motion.width, self._motion.height) != (width, height):
            # The first frame, or the stream came back at another size (a camera reconfigured):
            # objects of the old picture end, and motion learns the new one.
            if self._lifecycle is not None:
                closed = self._lifecycle.close(frame.time)
                self._checked.clear()
                self._drop_face_try()
            self._motion = Motion(
                width,
                height,
                MotionOptions(
                    threshold=config.motion_threshold, contour_area=config.motion_contour_area
                ),
                masks=[list(m) for m in config.masks],
            )
            self._lifecycle = Lifecycle(
                self.camera,
                width=width,
                height=height,
                threshold=config.threshold,
                zones={name: list(points) for name, points in config.zones.items()},
            )
            self._tracker.clear()
        lifecycle = self._lifecycle
        assert lifecycle is not None
        motion_boxes = self._motion.detect(frame.luma)
        now = frame.time
        regions, tracked_regions = self._regions(motion_boxes, width, height, now)
        found: list[tuple[Observation, DetectResponse | None, int]] = []
        looked: list[Box] | None = []
        if regions is not None and not regions:
            pass  # nothing moving, nothing to re-check: the detector does not run
        else:
            unnamed = bool(config.classify) and any(
                o.sub_label is None for o in lifecycle.confirmed()
            )
            looked = None if regions is None else regions
            found = self._detect(frame, regions, classify=config.classify if unnamed else None)
            with self._lock:
                self._detector_runs += 1
            self.metrics.detector_runs.labels(self.camera).inc()
        observations = [o for o, _, _ in found]
        _, ended = self._tracker.update(observations, now, looked)
        seen = [t for t in self._tracker.tracks if t.last_seen == now]
        for track in seen:
            self._checked[track.number] = now
        for track in ended:
            self._checked.pop(track.number, None)
        region_of = {
            t.number: tracked_regions.get(t.number)
            or square_around(t.box, width, height, scale=REGION_SCALE, least=self._input_side())
            for t in seen
        }
        events = closed + lifecycle.observe(
            self._tracker.tracks, ended, frame_time=now, rgb=frame.rgb, regions=region_of, seen=seen
        )
        events.extend(self._names(lifecycle, seen, found, now))
        events.extend(self._faces(lifecycle, seen, frame))
        self._finish(frame, motion_boxes, events, lifecycle)

    def _regions(
        self, motion: Sequence[Box], width: int, height: int, now: float
    ) -> tuple[list[Box] | None, dict[int, Box]]:
        """The regions to search (None: the whole frame) and each tracked object's region."""
        side = self._input_side()
        wanted: list[Box] = [
            square_around(box, width, height, scale=REGION_SCALE, least=side) for box in motion
        ]
        tracked: dict[int, Box] = {}
        for track in self._tracker.tracks:
            checked = self._checked.get(track.number, 0.0)
            if track.stationary and now - checked < self.config.stationary_interval:
                continue  # a still object is re-checked at the interval, not every frame
            tracked[track.number] = square_around(
                track.box, width, height, scale=REGION_SCALE, least=side
            )
        wanted.extend(tracked.values())
        merged = _merged(wanted, width, height, side)
        covered = sum((b[2] - b[0]) * (b[3] - b[1]) for b in merged)
        if covered > WHOLE_FRAME_SHARE * width * height:
            return None, tracked
        return merged, tracked

    def _input_side(self) -> int:
        try:
            engine = self.service.ready_model(
                self.service.model_for(Task.detection, self.config.detector)
            )
        except Exception:  # not loaded yet: the detector call answers for it
            return DEFAULT_INPUT
        return max(engine.info.input_size)

    def _detect(
        self, frame: Frame, regions: list[Box] | None, *, classify: str | None
    ) -> list[tuple[Observation, DetectResponse | None, int]]:
        """The detector on each region (in parallel through the Service), duplicates from
        overlapping regions dropped, masked objects left out."""
        rgb = frame.rgb()
        width, height = frame.width, frame.height
        parts: list[Region | None] = (
            [None]
            if regions is None
            else [Region(b[0] / width, b[1] / height, b[2] / width, b[3] / height) for b in regions]
        )
        futures: list[Future[DetectResponse]] = [
            asyncio.run_coroutine_threadsafe(self._detect_one(rgb, part, classify), self.loop)
            for part in parts
        ]
        answers = [future.result(timeout=DETECT_TIMEOUT) for future in futures]
        found: list[tuple[Observation, DetectResponse | None, int]] = []
        masks = [list(m) for m in self.config.masks]
        for answer in answers:
            for n, d in enumerate(answer.detections):
                box = (d.box.x_min, d.box.y_min, d.box.x_max, d.box.y_max)
                if masks and masked(box, masks, width, height):
                    continue
                seen = Observation(d.label, d.score, box)
                duplicate = next(
                    (
                        i
                        for i, (other, _, _) in enumerate(found)
                        if other.label == seen.label and iou(other.box, box) >= DUPLICATE_IOU
                    ),
                    None,
                )
                if duplicate is None:
                    found.append((seen, answer, n))
                elif found[duplicate][0].score < seen.score:
                    found[duplicate] = (seen, answer, n)
        return found

    async def _detect_one(
        self, rgb: npt.NDArray[np.uint8], region: Region | None, classify: str | None
    ) -> DetectResponse:
        return await self.service.detect_picture(
            rgb,
            region=region,
            model=self.config.detector,
            min_score=self.config.min_score,
            wanted=self.config.labels,
            classify=classify,
        )

    def _names(
        self,
        lifecycle: Lifecycle,
        seen: Sequence[Track],
        found: Sequence[tuple[Observation, DetectResponse | None, int]],
        now: float,
    ) -> list[CameraEvent]:
        """Sub labels for confirmed objects still unnamed, from the classifier's answer."""
        if not self.config.classify:
            return []
        events: list[CameraEvent] = []
        for track in seen:
            obj = lifecycle.object_of(track)
            if obj is None or obj.false_positive or obj.sub_label is not None:
                continue
            if obj.label == PERSON and self._naming_faces():
                continue  # a person is named by their face, not by the classifier
            for observation, answer, n in found:
                if answer is None or observation.box != track.box:
                    continue
                detection = answer.detections[n]
                if detection.sub_label is not None and detection.sub_score is not None:
                    events.extend(
                        lifecycle.name(track, detection.sub_label, detection.sub_score, now)
                    )
        return events

    def _naming_faces(self) -> bool:
        """Whether people are named by their faces now: faces on, and anybody registered."""
        faces = self.service.faces
        return self.faces and faces is not None and faces.anyone()

    def _faces(
        self, lifecycle: Lifecycle, seen: Sequence[Track], frame: Frame
    ) -> list[CameraEvent]:
        """Name the people of a finished face try, then start the next on the confirmed
        people of this frame that are due one (face_names says when). A try runs beside the
        analysis, one at a time per camera: a slow description (a Pi's dlib) never holds the
        camera's frames, it only spaces the tries."""
        events = self._face_answers(lifecycle, frame.time)
        faces = self.service.faces
        if self._face_try is not None or faces is None or not self._naming_faces():
            return events
        now = frame.time
        due: list[tuple[Track, str]] = []
        for track in seen:
            obj = lifecycle.object_of(track)
            if obj is None or obj.false_positive or obj.label != PERSON:
                continue
            named = obj.sub_label is not None
            if self._face_tries.due(obj.id, now, named=named):
                self._face_tries.tried(obj.id, now, named=named)
                due.append((track, obj.id))
        self._face_tries.keep({o.id for o in lifecycle.objects()})
        if due:
            boxes = [
                PixelBox(x_min=t.box[0], y_min=t.box[1], x_max=t.box[2], y_max=t.box[3])
                for t, _ in due
            ]
            future = asyncio.run_coroutine_threadsafe(
                faces.sub_labels_picture(frame.rgb(), boxes), self.loop
            )
            self._face_try = _FaceTry(future, due, now, time.monotonic())
        return events

    def _face_answers(self, lifecycle: Lifecycle, now: float) -> list[CameraEvent]:
        """The names a finished try found, as `update`s of the objects still alive (none while
        it runs; a try that fails or hangs is counted and dropped)."""
        pending = self._face_try
        if pending is None:
            return []
        tries = self.metrics.face_tries
        if not pending.future.done():
            if time.monotonic() - pending.started < DETECT_TIMEOUT:
                return []
            pending.future.cancel()
        self._face_try = None
        try:
            names = pending.future.result(timeout=0)
        except (Exception, CancelledError) as exc:
            tries.labels(self.camera, "failed").inc(len(pending.due))
            detail = exc.detail if isinstance(exc, ServiceError) else repr(exc)
            self._failed(f"recognising faces failed: {detail}")
            return []
        events: list[CameraEvent] = []
        for (track, object_id), name in zip(pending.due, names, strict=True):
            tries.labels(self.camera, "unrecognised" if name is None else "recognised").inc()
            obj = lifecycle.object_of(track)
            if name is not None and obj is not None and obj.id == object_id:
                events.extend(lifecycle.recognise(track, name[0], name[1], now, pending.time))
        return events

    def _drop_face_try(self) -> None:
        """Forget a try in flight (the camera stops, or its objects were ended)."""
        pending, self._face_try = self._face_try, None
        if pending is not None:
            pending.future.cancel()

    def _finish(
        self,
        frame: Frame,
        motion: Sequence[Box],
        events: list[CameraEvent],
        lifecycle: Lifecycle,
    ) -> None:
        """Record the frame's outcome and tell the listeners what changed."""
        now = time.monotonic()
        counts = Tally(o.label for o in lifecycle.confirmed())
        labels = set(self._counts) | set(counts)
        new_counts = {label: counts.get(label, 0) for label in labels}
        moving_now = bool(motion)
        if moving_now:
            self._moved_at = now
        moving = moving_now or (self._moving and now - self._moved_at < MOTION_OFF_DELAY)
        with self._lock:
            self._latest = frame
            self._boxes = [
                (t.box, f"{t.label} {t.score:.0%}") for t in self._tracker.tracks if t.missed == 0
            ]
            self._analysed += 1
            self._times.append(now)
            while self._times and now - self._times[0] > FPS_WINDOW:
                self._times.popleft()
            self._last_error = None
            motion_changed, self._moving = moving != self._moving, moving
            counts_changed = new_counts != self._counts
            self._counts = new_counts
        metrics = self.metrics
        metrics.analysed.labels(self.camera).inc()
        metrics.motion.labels(self.camera).set(1 if moving else 0)
        metrics.objects.labels(self.camera).set(len(self._tracker.tracks))
        for event in events:
            self.events.add(event)
            metrics.events.labels(self.camera, event.type).inc()
        if events or motion_changed or counts_changed:
            self.loop.call_soon_threadsafe(
                self._tell,
                events,
                moving if motion_changed else None,
                new_counts if counts_changed else None,
            )

    def _tell(
        self, events: list[CameraEvent], moving: bool | None, counts: dict[str, int] | None
    ) -> None:  # on the event loop
        for listener in self._listeners:
            try:
                for event in events:
                    listener.on_event(event)
                if moving is not None:
                    listener.on_motion(self.camera, moving)
                if counts is not None:
                    listener.on_counts(self.camera, counts)
            except Exception:  # one surface's bug must not silence the others
                log.exception("camera %s: a listener failed", self.camera)


def _merged(boxes: list[Box], width: int, height: int, side: int) -> list[Box]:
    """Overlapping regions joined into the square around both, until none overlap."""
    regions = list(boxes)
    joined = True
    while joined:
        joined = False
        for i in range(len(regions)):
            for j in range(i + 1, len(regions)):
                a, b = regions[i], regions[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    union = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    regions[i] = square_around(union, width, height, scale=1.0, least=side)
                    del regions[j]
                    joined = True
                    break
            if joined:
                break
    return regions
