"""The Frigate bridge: name the birds (or whatever the model knows) in Frigate's events.

Frigate publishes each tracked object's changes on `frigate/events`; for the configured cameras
and labels this fetches the event's snapshot from Frigate's HTTP API, classifies it, keeps the
best result per event (a snapshot is fetched and classified again only when Frigate says it
changed), publishes it like any other source, and can write the species back as the event's
sub label. It is what WhosAtMyFeeder and its forks do by hand, on the service's own pipeline.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

import httpx
from pydantic import BaseModel, Field, ValidationError

from ..core.errors import ServiceError
from ..core.imprinting import UNKNOWN
from ..serving.schemas import ClassifyResponse
from ..serving.service import Service
from .topics import source_name

log = logging.getLogger("edge_server.mqtt.frigate")

SUB_LABEL_MAX = 100  # Frigate refuses longer sub labels
QUEUE = 32  # events waiting for the bridge at most; more are dropped and counted
REMEMBERED = 256  # events whose best result is kept (ended events are forgotten at once)


# --- Frigate's event message (documented shape; only what the bridge reads) --------------------


class _Snapshot(BaseModel):
    frame_time: float | None = None


class _TrackedObject(BaseModel):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,128}$")]  # goes into a URL path
    camera: str
    label: str
    snapshot: _Snapshot | None = None  # Frigate 0.13+
    snapshot_time: float | None = None  # earlier versions


class _EventMessage(BaseModel):
    type: Literal["new", "update", "end"]
    after: _TrackedObject


@dataclass(frozen=True)
class FrigateEvent:
    """One `frigate/events` message, as the bridge needs it."""

    type: str
    id: str
    camera: str
    label: str
    snapshot_key: float | None  # when the best snapshot was taken; None when not said


def parse_event(payload: bytes) -> FrigateEvent:
    """The event in a `frigate/events` payload; ValueError when it is not one."""
    try:
        message = _EventMessage.model_validate(json.loads(payload))
    except (ValueError, ValidationError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"not a Frigate event message: {exc}") from None
    after = message.after
    key = after.snapshot.frame_time if after.snapshot is not None else after.snapshot_time
    return FrigateEvent(message.type, after.id, after.camera, after.label, key)


def wanted(event: FrigateEvent, cameras: set[str], labels: set[str]) -> bool:
    """Whether the bridge handles this event: a configured camera (or any) and label."""
    return (not cameras or event.camera in cameras) and event.label in labels


@dataclass
class _Best:
    """What the bridge knows of one event: its last snapshot and best result so far."""

    snapshot_key: float | None = None
    digest: bytes = b""
    score: float = -1.0
    sub_label: str | None = None


class Publisher(Protocol):
    """Publishes a source's result (the MQTT connection's `publish_result`)."""

    async def __call__(
        self, source: str, answer: ClassifyResponse, topic: str, **extra: Any
    ) -> None: ...


class FrigateBridge:
    """Handles Frigate events one at a time, off the MQTT reader, in a bounded queue.

    It knows the connection only by what it is handed: the events topic (for log lines and the
    results' `topic`), how to publish a result, and how to run a task the connection owns.
    """

    def __init__(
        self,
        service: Service,
        *,
        events_topic: str,
        publish: Publisher,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
    ) -> None:
        settings = service.settings
        assert settings.frigate_url is not None
        self.service = service
        self.metrics = service.metrics
        self.settings = settings
        self.events_topic = events_topic
        self._publish = publish
        self._spawn = spawn
        self.base_url = settings.frigate_url.rstrip("/")
        self.cameras = set(settings.frigate_cameras)
        self.labels = set(settings.frigate_labels)
        self._queue: asyncio.Queue[FrigateEvent] = asyncio.Queue(maxsize=QUEUE)
        self._events: OrderedDict[str, _Best] = OrderedDict()
        self._http: httpx.AsyncClient | None = None

    def start(self) -> None:
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=self.settings.request_timeout
        )
        self._spawn(self._work())

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    def offer(self, payload: bytes) -> None:
        """Take a `frigate/events` message: queue it if it is one to handle."""
        try:
            event = parse_event(payload)
        except ValueError as exc:
            self.metrics.frigate_events.labels("invalid").inc()
            log.warning("ignored a message on %s: %s", self.events_topic, exc)
            return
        if not wanted(event, self.cameras, self.labels):
            self.metrics.frigate_events.labels("ignored").inc()
            return
        if event.type == "end":
            self._events.pop(event.id, None)
            self.metrics.frigate_events.labels("ended").inc()
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.metrics.mqtt_dropped.labels("frigate", "queue_full").inc()

    async def _work(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                outcome = await self._handle(event)
            except (ServiceError, httpx.HTTPError, SnapshotError) as exc:
                outcome = "failed"
                detail = exc.detail if isinstance(exc, ServiceError) else str(exc)
                log.warning("Frigate event %s (%s): %s", event.id, event.camera, detail)
            self.metrics.frigate_events.labels(outcome).inc()

    async def _handle(self, event: FrigateEvent) -> str:
        best = self._events.get(event.id)
        said = event.snapshot_key
        if best is not None and said is not None and said == best.snapshot_key:
            return "unchanged"  # Frigate says the snapshot is the same: nothing to fetch
        data = await self._snapshot(event.id)
        digest = hashlib.sha256(data).digest()
        if best is not None and digest == best.digest:
            best.snapshot_key = event.snapshot_key
            return "unchanged"
        answer = await self.service.classify_upload(data, model=self.settings.frigate_model)
        if best is None:
            best = self._remember(event.id)
        best.snapshot_key, best.digest = event.snapshot_key, digest
        top = answer.predictions[0]
        if top.label == UNKNOWN or top.score <= best.score:
            # Not better than what this event already has; or a learned model's `unknown`
            # (none of its classes), which is never a sub label.
            return "classified"
        best.score = top.score
        label = top.label[:SUB_LABEL_MAX]
        if (
            self.settings.frigate_sub_label
            and top.score >= self.settings.frigate_min_score
            and label != best.sub_label
            and await self._set_sub_label(event.id, label, top.score)
        ):
            best.sub_label = label
        await self._publish(
            source_name(event.camera),
            answer,
            self.events_topic,
            frigate={
                "event_id": event.id,
                "camera": event.camera,
                "label": event.label,
                "sub_label": best.sub_label,
            },
        )
        return "classified"

    def _remember(self, event_id: str) -> _Best:
        best = self._events[event_id] = _Best()
        while len(self._events) > REMEMBERED:  # events whose `end` never came
            self._events.popitem(last=False)
        return best

    async def _snapshot(self, event_id: str) -> bytes:
        """The event's current best snapshot, cropped to the object, at most the upload limit."""
        assert self._http is not None
        limit = self.settings.max_upload_bytes
        async with self._http.stream(
            "GET", f"/api/events/{event_id}/snapshot.jpg", params={"crop": 1, "quality": 95}
        ) as response:
            if response.status_code != 200:
                raise SnapshotError(f"Frigate answered {response.status_code} for the snapshot")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise SnapshotError(f"the snapshot is over EDGE_MAX_UPLOAD_BYTES={limit}")
                chunks.append(chunk)
        return b"".join(chunks)

    async def _set_sub_label(self, event_id: str, label: str, score: float) -> bool:
        assert self._http is not None
        try:
            response = await self._http.post(
                f"/api/events/{event_id}/sub_label",
                json={"subLabel": label, "subLabelScore": round(score, 4)},
            )
        except httpx.HTTPError as exc:
            problem = str(exc) or type(exc).__name__
        else:
            if response.is_success:
                self.metrics.frigate_sub_labels.labels("ok").inc()
                return True
            problem = f"Frigate answered {response.status_code}: {response.text[:200]}"
        self.metrics.frigate_sub_labels.labels("failed").inc()
        log.warning("could not set the sub label of Frigate event %s: %s", event_id, problem)
        return False


class SnapshotError(Exception):
    """Frigate had no usable snapshot for the event."""
