"""A camera's tracked objects as events, in Frigate's shape: `new`, `update`, `end`.

The tracker follows boxes; this decides what is worth telling. A track is a false positive
until the median of its recent scores (the last ten frames, a miss counting 0) reaches the
camera's `threshold`: then `new`, with the snapshot of its best frame so far. While it lives,
`update` on what changed (its box moved, a better score and snapshot, zones, a sub label, it
stopped or moved again), at most once every `update_interval` seconds except on entering a
zone, which is told at once (Frigate's notifications key on it). `end` when it is gone. A
track that never passed the threshold ends silently: false positives are never published.

`TrackedObject.frigate()` is the dict Frigate publishes as an event's `before` and `after` (its
docs/docs/integrations/mqtt.md): `id`, `camera`, `frame_time`, `snapshot_time`, `label`,
`sub_label` ([name, score] or null, as Frigate 0.13+), `score`, `top_score`, `box`, `area`,
`ratio`, `region`, `current_zones`, `entered_zones`, `start_time`, `end_time`,
`has_snapshot`, `has_clip`, `thumbnail`, `stationary`, `motionless_count`,
`position_changes`, `active`, `false_positive`, `attributes`, `current_attributes`.
"""

from __future__ import annotations

import secrets
import string
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..core.tracking import Track, iou
from ..core.zones import Box, Polygon, zones_of
from . import snapshots

EventType = Literal["new", "update", "end"]
MOVED_IOU = 0.9  # a box overlapping its last published one less than this has moved
_ID_CHARACTERS = string.ascii_lowercase + string.digits


def event_id(start: float) -> str:
    """Frigate's id form: the start time, a dash, six random characters."""
    return f"{start:.6f}-{''.join(secrets.choice(_ID_CHARACTERS) for _ in range(6))}"


@dataclass
class TrackedObject:
    """One object of one camera, as its events describe it."""

    id: str
    camera: str
    label: str
    start_time: float
    frame_time: float
    box: Box
    region: Box
    score: float
    top_score: float
    sub_label: tuple[str, float | None] | None = None
    current_zones: list[str] = field(default_factory=list)
    entered_zones: list[str] = field(default_factory=list)
    end_time: float | None = None
    has_snapshot: bool = False
    snapshot_time: float | None = None
    snapshot_score: float = 0.0
    snapshot_box: Box | None = None
    stationary: bool = False
    motionless_count: int = 0
    position_changes: int = 0
    active: bool = True
    false_positive: bool = True

    @property
    def area(self) -> int:
        """The box's area in pixels."""
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    def frigate(self) -> dict[str, Any]:
        """The object as Frigate's event `before`/`after` dict (JSON-ready)."""
        width, height = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return {
            "id": self.id,
            "camera": self.camera,
            "frame_time": self.frame_time,
            "snapshot_time": self.snapshot_time,
            "label": self.label,
            "sub_label": list(self.sub_label) if self.sub_label else None,
            "top_score": round(self.top_score, 6),
            "false_positive": self.false_positive,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "score": round(self.score, 6),
            "box": list(self.box),
            "area": self.area,
            "ratio": round(width / height, 6) if height else 0.0,
            "region": list(self.region),
            "current_zones": list(self.current_zones),
            "entered_zones": list(self.entered_zones),
            "thumbnail": None,
            "has_snapshot": self.has_snapshot,
            "has_clip": False,  # no recording: this is not an NVR
            "stationary": self.stationary,
            "motionless_count": self.motionless_count,
            "position_changes": self.position_changes,
            "active": self.active,
            "attributes": {},
            "current_attributes": [],
        }


@dataclass(frozen=True)
class Snapshot:
    """An object's best frame: with its box drawn, and clean (for other crops)."""

    boxed: bytes
    frame: bytes
    box: Box
    region: Box
    time: float


@dataclass(frozen=True)
class FaceUpdate:
    """A person object named by their face: Frigate 0.16's `tracked_object_update` message of
    type `face` (its docs/docs/integrations/mqtt.md)."""

    id: str  # the object's event id
    camera: str
    name: str
    score: float  # the recognition's calibrated confidence
    timestamp: float  # the frame's time

    def payload(self) -> dict[str, Any]:
        """The JSON Frigate publishes on `frigate/tracked_object_update`."""
        return {
            "type": "face",
            "id": self.id,
            "name": self.name,
            "score": self.score,
            "camera": self.camera,
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True)
class CameraEvent:
    """One event of one object: what Frigate publishes on `frigate/events`, and its snapshot."""

    type: EventType
    before: dict[str, Any]
    after: dict[str, Any]
    camera: str
    label: str
    snapshot: bytes | None  # the best frame's JPEG with the object's box drawn
    frame: bytes | None = None  # the same frame without the box
    best: Snapshot | None = None
    face: FaceUpdate | None = None  # set on the `update` that names a person by their face

    def payload(self) -> dict[str, Any]:
        """The JSON Frigate publishes: type, before, after."""
        return {"type": self.type, "before": self.before, "after": self.after}


@dataclass
class _Life:
    """What the lifecycle keeps of an object between frames."""

    object: TrackedObject
    published: dict[str, Any] | None = None  # the `after` of the last event told
    published_at: float = 0.0
    best: Snapshot | None = None
    dirty: bool = False  # changed since the last event told
    was_stationary: bool = False


class Lifecycle:
    """Tracks in, events out, for one camera (the watcher's thread feeds it; a sub label set
    through the HTTP API comes from the event loop, hence the lock)."""

    def __init__(
        self,
        camera: str,
        *,
        width: int,
        height: int,
        threshold: float,
        zones: Mapping[str, Polygon] | None = None,
        update_interval: float = 1.0,
    ) -> None:
        self.camera = camera
        self.width, self.height = width, height
        self.threshold = threshold
        self.zones = dict(zones or {})
        self.update_interval = update_interval
        self._lives: dict[int, _Life] = {}
        self._lock = threading.RLock()

    def objects(self) -> list[TrackedObject]:
        """The objects alive now, confirmed or not."""
        return [life.object for life in self._lives.values()]

    def confirmed(self) -> list[TrackedObject]:
        """The objects alive now that have been told (`new`)."""
        return [life.object for life in self._lives.values() if not life.object.false_positive]

    def object_of(self, track: Track) -> TrackedObject | None:
        """The object a track is followed as."""
        life = self._lives.get(track.number)
        return life.object if life else None

    def observe(
        self,
        tracks: Sequence[Track],
        ended: Sequence[Track],
        *,
        frame_time: float,
        rgb: Callable[[], npt.NDArray[np.uint8]],
        regions: Mapping[int, Box],
        seen: Sequence[Track] = (),
    ) -> list[CameraEvent]:
        """One analysed frame: `tracks` alive after it, `ended` the tracks that ended with it,
        `seen` those detected in it (their score and box are this frame's), `regions` the
        region each was searched in; `rgb()` the frame (made only for a snapshot)."""
        with self._lock:
            events: list[CameraEvent] = []
            seen_numbers = {track.number for track in seen}
            for track in tracks:
                life = self._lives.get(track.number)
                if life is None:
                    life = self._lives[track.number] = _Life(self._started(track, regions))
                if track.number in seen_numbers:
                    events.extend(self._seen(life, track, frame_time, rgb, regions))
            for track in ended:
                life = self._lives.pop(track.number, None)
                if life is None or life.object.false_positive:
                    continue  # never told: a false positive ends silently
                events.append(self._ended(life, track.last_seen))
            return events

    def name(self, track: Track, sub_label: str, score: float, now: float) -> list[CameraEvent]:
        """Give a confirmed object its sub label (a classifier's name for it): an `update`."""
        with self._lock:
            life = self._lives.get(track.number)
            if life is None or life.object.sub_label is not None:
                return []
            life.object.sub_label = (sub_label, round(score, 6))
            life.dirty = True
            return self._maybe_update(life, now, force=True)

    def relabel(
        self, event_id: str, sub_label: str | None, score: float | None, now: float
    ) -> CameraEvent | None:
        """Set a live object's sub label from outside (Frigate's `POST /api/events/<id>/
        sub_label`, as Double Take names a face): its `update` at once; None when no object
        alive has that id (it ended)."""
        with self._lock:
            life = next((x for x in self._lives.values() if x.object.id == event_id), None)
            if life is None or life.object.false_positive:
                return None
            life.object.sub_label = None if not sub_label else (sub_label, score)
            life.dirty = True
            return self._told(life, "update", now)

    def recognise(
        self, track: Track, name: str, score: float, now: float, seen_at: float | None = None
    ) -> list[CameraEvent]:
        """A confirmed person's face recognised as `name` (in the frame of `seen_at`, else
        `now`): their sub label when they had none or this recognition is surer (the best is
        kept), told at once as an `update` that carries the face update. Nothing when a surer
        name is kept, or a name set from outside without a score (`relabel`)."""
        with self._lock:
            life = self._lives.get(track.number)
            if life is None or life.object.false_positive:
                return []
            obj = life.object
            if obj.sub_label is not None:
                kept = obj.sub_label[1]
                if kept is None or kept >= score:
                    return []
            obj.sub_label = (name, round(score, 6))
            life.dirty = True
            face = FaceUpdate(
                obj.id, self.camera, name, round(score, 6), now if seen_at is None else seen_at
            )
            return [replace(e, face=face) for e in self._maybe_update(life, now, force=True)]

    def close(self, now: float) -> list[CameraEvent]:
        """End every object (the camera stopped or was removed)."""
        with self._lock:
            events = [
                self._ended(life, now)
                for life in self._lives.values()
                if not life.object.false_positive
            ]
            self._lives.clear()
            return events

    def _started(self, track: Track, regions: Mapping[int, Box]) -> TrackedObject:
        return TrackedObject(
            id=event_id(track.first_seen),
            camera=self.camera,
            label=track.label,
            start_time=track.first_seen,
            frame_time=track.last_seen,
            box=track.box,
            region=regions.get(track.number, (0, 0, self.width, self.height)),
            score=track.score,
            top_score=track.score,
        )

    def _seen(
        self,
        life: _Life,
        track: Track,
        now: float,
        rgb: Callable[[], npt.NDArray[np.uint8]],
        regions: Mapping[int, Box],
    ) -> list[CameraEvent]:
        obj = life.object
        obj.frame_time = now
        obj.box, obj.score = track.box, track.score
        obj.region = regions.get(track.number, obj.region)
        obj.top_score = max(obj.top_score, track.score)
        obj.motionless_count = track.still
        if track.stationary != obj.stationary:
            if not track.stationary:
                obj.position_changes += 1
            obj.stationary = track.stationary
            life.dirty = True
        zones = zones_of(track.box, self.zones, self.width, self.height) if self.zones else []
        entered = [zone for zone in zones if zone not in obj.entered_zones]
        if zones != obj.current_zones:
            obj.current_zones = zones
            life.dirty = True
        obj.entered_zones.extend(entered)
        if obj.false_positive:
            if track.median_score < self.threshold:
                return []
            obj.false_positive = False
            self._snap(life, track, now, rgb)
            return [self._told(life, "new", now)]
        if track.score > obj.snapshot_score and now - life.published_at >= self.update_interval:
            self._snap(life, track, now, rgb)
            life.dirty = True
        published = life.published
        if published is not None and iou(tuple(published["box"]), track.box) < MOVED_IOU:
            life.dirty = True
        return self._maybe_update(life, now, force=bool(entered))

    def _maybe_update(self, life: _Life, now: float, *, force: bool) -> list[CameraEvent]:
        if life.object.false_positive or not life.dirty:
            return []
        if not force and now - life.published_at < self.update_interval:
            return []
        return [self._told(life, "update", now)]

    def _snap(
        self, life: _Life, track: Track, now: float, rgb: Callable[[], npt.NDArray[np.uint8]]
    ) -> None:
        """Keep this frame as the object's snapshot (its best score so far)."""
        obj = life.object
        picture = rgb()
        caption = f"{obj.label} {track.score:.0%}"
        life.best = Snapshot(
            boxed=snapshots.encoded(snapshots.boxed(picture, [(track.box, caption)])),
            frame=snapshots.encoded(snapshots.boxed(picture, [])),
            box=track.box,
            region=obj.region,
            time=now,
        )
        obj.has_snapshot = True
        obj.snapshot_time, obj.snapshot_score, obj.snapshot_box = now, track.score, track.box

    def _told(self, life: _Life, kind: EventType, now: float) -> CameraEvent:
        after = life.object.frigate()
        before = life.published if life.published is not None else after
        life.published, life.published_at, life.dirty = after, now, False
        best = life.best
        return CameraEvent(
            type=kind,
            before=before,
            after=after,
            camera=self.camera,
            label=life.object.label,
            snapshot=best.boxed if best else None,
            frame=best.frame if best else None,
            best=best,
        )

    def _ended(self, life: _Life, end: float) -> CameraEvent:
        life.object.end_time = end
        life.object.active = False
        return self._told(life, "end", end)
