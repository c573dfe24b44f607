"""The recent events of every camera and their snapshots, bounded in count and in bytes.

What Frigate's `/api/events` and `/api/events/<id>/snapshot.jpg` read (Double Take fetches the
snapshot of each event it hears of). Not a recording: the oldest events go when there are more
than `max_events`, or when their snapshots would hold more than `max_bytes`; an event still
active is never the one that goes while an ended one could.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ..core.zones import Box, square_around
from . import snapshots
from .events import CameraEvent

MAX_EVENTS = 200
MAX_BYTES = 32 * 2**20


@dataclass
class StoredEvent:
    """An event's last state and its best snapshot."""

    id: str
    camera: str
    label: str
    after: dict[str, Any]
    snapshot: bytes | None = None  # the best frame with the box drawn (JPEG)
    frame: bytes | None = None  # the same frame without it
    box: Box | None = None  # the box in the snapshot
    region: Box | None = None

    @property
    def size(self) -> int:
        """Bytes of JPEG held."""
        return len(self.snapshot or b"") + len(self.frame or b"")

    def picture(
        self, *, crop: bool = False, boxes: bool = True, height: int | None = None
    ) -> bytes | None:
        """The snapshot JPEG: with the box drawn (`boxes`) or clean, cropped to a square
        around the object (`crop`, as Frigate's `crop=1`), scaled to `height`; None without
        a snapshot."""
        data = self.snapshot if boxes else self.frame
        if data is None:
            return None
        if crop and self.box is not None:
            width, frame_height = _size(data)
            region = square_around(self.box, width, frame_height, scale=1.2)
            return snapshots.cropped_jpeg(data, region, height=height)
        return snapshots.scaled_jpeg(data, height)


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as picture:
        return picture.width, picture.height


class EventStore:
    """Recent events by id, oldest first, within a count and a byte bound."""

    def __init__(self, max_events: int = MAX_EVENTS, max_bytes: int = MAX_BYTES) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: OrderedDict[str, StoredEvent] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, event: CameraEvent) -> StoredEvent:
        """Record an event (a `new` adds it, an `update` or `end` changes it in place)."""
        after = event.after
        with self._lock:
            stored = self._events.get(after["id"])
            if stored is None:
                stored = StoredEvent(after["id"], event.camera, event.label, after)
                self._events[stored.id] = stored
            else:
                self._bytes -= stored.size
            stored.after = after
            if event.snapshot is not None and event.best is not None:
                stored.snapshot, stored.frame = event.snapshot, event.frame
                stored.box, stored.region = event.best.box, event.best.region
            self._bytes += stored.size
            self._trim()
            return stored

    def get(self, event_id: str) -> StoredEvent | None:
        """An event by id, if still held."""
        with self._lock:
            return self._events.get(event_id)

    def recent(
        self, *, camera: str | None = None, label: str | None = None, limit: int = 100
    ) -> list[StoredEvent]:
        """The newest events first, of one camera and one label if given."""
        with self._lock:
            events = list(self._events.values())
        chosen = [
            e
            for e in reversed(events)
            if (camera is None or e.camera == camera) and (label is None or e.label == label)
        ]
        chosen.sort(key=lambda e: -float(e.after.get("start_time") or 0.0))
        return chosen[: max(0, limit)]

    @property
    def bytes_held(self) -> int:
        """JPEG bytes held by every event."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._events)

    def _trim(self) -> None:
        while len(self._events) > self.max_events or (
            self._bytes > self.max_bytes and len(self._events) > 1
        ):
            victim = next(
                (e for e in self._events.values() if not e.after.get("active", False)),
                next(iter(self._events.values())),
            )
            del self._events[victim.id]
            self._bytes -= victim.size
