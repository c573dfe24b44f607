"""The cameras on MQTT: events, snapshots, counts and motion as Frigate publishes them.

A listener of `Cameras`: the watchers call it on the event loop, and it only puts messages on
one bounded queue that a task of the connection publishes in order (a full queue drops and
counts, `edge_mqtt_messages_dropped{kind="camera"}`), so a slow broker never holds a watcher.
Events go to the events topic as Frigate's `{"type", "before", "after"}` JSON; each event's
snapshot to the retained `<base>/<camera>/<label>/snapshot` (and our `<prefix>/<camera>/
snapshot` for Home Assistant's image entity); counts per label (and `all`) and motion ON/OFF,
retained. A person named by their face: Frigate's `tracked_object_update` (type `face`) and
the camera's retained last recognised face. The cameras' states and frame rates are published
every DIAGNOSTICS_INTERVAL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..cameras.event_messages import event_message
from ..cameras.events import CameraEvent
from ..cameras.face_names import faces_on
from ..cameras.registry import Cameras
from ..config.cameras import CameraConfig
from ..core.errors import StartupError
from . import camera_discovery, payloads
from .camera_topics import CameraTopics
from .homeassistant import Identity

if TYPE_CHECKING:
    from .connection import MqttConnection

log = logging.getLogger("edge_server.mqtt")

QUEUE = 256  # messages waiting for the broker at most (a snapshot is tens of kilobytes)
DIAGNOSTICS_INTERVAL = 30.0  # seconds between the cameras' diagnostics messages
CONNECTED_STATES = frozenset({"streaming"})

Message = tuple[str, bytes, str, bool]  # topic, payload, kind (for the metrics), retained


class CameraEvents:
    """Publishes what the cameras see; announces their Home Assistant entities."""

    def __init__(self, connection: MqttConnection, cameras: Cameras) -> None:
        settings = connection.settings
        if settings.camera_events == "frigate" and settings.frigate_url:
            # The bridge reads frigate/events: it would take our events for Frigate's.
            raise StartupError(
                "EDGE_CAMERA_EVENTS=frigate publishes the cameras' events on "
                f"{settings.frigate_topic_prefix}/events, where the Frigate bridge "
                "(EDGE_FRIGATE_URL) reads a real Frigate's",
                fix="keep EDGE_CAMERA_EVENTS=edge while a Frigate is bridged",
            )
        self.connection = connection
        self.cameras = cameras
        self.topics = CameraTopics.of(
            connection.topics, settings.camera_events, settings.frigate_topic_prefix
        )
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=QUEUE)
        self._counts: dict[str, dict[str, int]] = {}  # camera: the counts last published
        self._snapshots: dict[str, float | None] = {}  # event id: snapshot_time last sent
        self._faces: dict[str, str] = {}  # camera: the name its retained last face holds

    def start(self) -> None:
        """Publish from now on (tasks of the connection: cancelled when it stops)."""
        self.connection.add_announcer(self.announce)
        self.connection.spawn(self._publish_all())
        self.connection.spawn(self._diagnose())
        self.cameras.add_state_listener(self._diagnose_one)
        self.cameras.add_reload_listener(self._reloaded)
        faces = self.cameras.service.faces
        if faces is not None:
            faces.add_forget_listener(self._forget)

    # --- WatcherListener ------------------------------------------------------------------

    def on_event(self, event: CameraEvent) -> None:
        self._put(self.topics.events, event_message(event), "event")
        snapshot, event_id = event.snapshot, event.after["id"]
        taken = event.after.get("snapshot_time")
        ended = event.type == "end"
        told = (self._snapshots.pop if ended else self._snapshots.get)(event_id, -1.0)
        if snapshot is not None and told != taken:
            # Retained pictures of tens of kilobytes: sent when the best view changes only.
            if not ended:
                self._snapshots[event_id] = taken
            self._put(self.topics.snapshot(event.camera, event.label), snapshot, "image", True)
            self._put(self.topics.latest_snapshot(event.camera), snapshot, "image", True)
        face = event.face
        if face is not None:
            # Frigate's message for its tools, and the retained state of the camera's "last
            # recognised face" sensor.
            self._put(self.topics.tracked_object_update, payloads.dumps(face.payload()), "event")
            last = {
                "name": face.name,
                "score": face.score,
                "time": face.timestamp,
                "event_id": face.id,
            }
            self._put(self.topics.face(face.camera), payloads.dumps(last), "result", True)
            self._faces[face.camera] = face.name
        if event.type in camera_discovery.EVENT_TYPES:
            after = event.after
            body = {
                "event_type": event.type,
                "id": after.get("id"),
                "label": event.label,
                "sub_label": after.get("sub_label"),
                "score": after.get("top_score"),
                "zones": after.get("entered_zones", []),
            }
            self._put(self.topics.event(event.camera), payloads.dumps(body), "event")

    def on_motion(self, camera: str, moving: bool) -> None:
        self._put(self.topics.motion(camera), b"ON" if moving else b"OFF", "result", True)

    def on_counts(self, camera: str, counts: Mapping[str, int]) -> None:
        config = self.cameras.config(camera)
        labels = list(config.labels) if config is not None else []
        now = {label: int(counts.get(label, 0)) for label in dict.fromkeys([*labels, *counts])}
        now["all"] = sum(counts.values())
        before = self._counts.get(camera, {})
        for label, count in now.items():
            if before.get(label) != count:  # retained: only changes need sending
                self._put(self.topics.count(camera, label), str(count).encode(), "result", True)
        self._counts[camera] = now

    # --- publishing -----------------------------------------------------------------------

    def _forget(self, name: str) -> None:
        """A person deleted: clear each camera's retained last face that may name them (an
        empty retained message clears a topic). A camera that named nobody since this start may
        hold a name from before it, so it is cleared too."""
        for camera in self.cameras.names():
            if self._faces.get(camera, name) == name:
                self._faces.pop(camera, None)
                self._put(self.topics.face(camera), b"", "result", True)

    def _put(self, topic: str, payload: bytes, kind: str, retain: bool = False) -> None:
        try:
            self._queue.put_nowait((topic, payload, kind, retain))
        except asyncio.QueueFull:
            self.connection.metrics.mqtt_dropped.labels("camera", "queue_full").inc()

    async def _publish_all(self) -> None:
        while True:
            topic, payload, kind, retain = await self._queue.get()
            await self.connection.publish(topic, payload, kind, retain=retain)

    async def _diagnose(self) -> None:
        while True:
            for status in self.cameras.status():
                self._put_diagnostics(status.as_dict())
            await asyncio.sleep(DIAGNOSTICS_INTERVAL)

    def _diagnose_one(self, camera: str) -> None:
        """A camera's feed changed state: its diagnostics now, not at the next interval."""
        for status in self.cameras.status():
            if status.name == camera:
                self._put_diagnostics(status.as_dict())

    def _put_diagnostics(self, camera: dict[str, Any]) -> None:
        body = payloads.dumps(diagnostics(camera))
        self._put(self.topics.diagnostics(camera["name"]), body, "status", True)

    def _reloaded(
        self, before: Mapping[str, CameraConfig], after: Mapping[str, CameraConfig]
    ) -> None:
        """After a reload: clear what a removed camera (or a dropped label) left retained,
        retire the entities no camera has any more, announce the rest."""
        for name in before.keys() - after.keys():
            self._counts.pop(name, None)
        self.connection.spawn(self._reannounce(before, after))

    async def _reannounce(
        self, before: Mapping[str, CameraConfig], after: Mapping[str, CameraConfig]
    ) -> None:
        for topic in sorted(self._retained(before) - self._retained(after)):
            # An empty retained message clears the topic. Queued behind the stopped watcher's
            # last motion OFF and counts, so none of those lands after it.
            await self._queue.put((topic, b"", "result", True))
        if not self.connection.settings.mqtt_discovery:
            return
        identity = self.connection.identity()
        old = {t for name, c in before.items() for t, _ in self._configs(identity, name, c)}
        new = {t for name, c in after.items() for t, _ in self._configs(identity, name, c)}
        for topic in sorted(old - new):  # an empty retained config removes the entity
            await self.connection.publish(topic, b"", "discovery", retain=True)
        await self.announce()

    def _retained(self, configs: Mapping[str, CameraConfig]) -> set[str]:
        """The retained topics the cameras publish: counts, snapshots, motion, diagnostics."""
        topics = self.topics
        retained = set()
        for name, config in configs.items():
            labels = list(config.labels)
            retained |= {topics.count(name, label) for label in [*labels, "all"]}
            retained |= {topics.snapshot(name, label) for label in labels}
            retained |= {topics.motion(name), topics.latest_snapshot(name)}
            retained.add(topics.diagnostics(name))
        return retained

    def _configs(
        self, identity: Identity, name: str, config: CameraConfig
    ) -> list[tuple[str, dict[str, Any]]]:
        return camera_discovery.configs(
            self.topics,
            identity,
            name,
            list(config.labels),
            faces=faces_on(config, self.cameras.service),
        )

    async def announce(self) -> None:
        """Every camera's Home Assistant configs (on connect and when Home Assistant starts)."""
        if not self.connection.settings.mqtt_discovery:
            return
        identity = self.connection.identity()
        for name, config in self.cameras.configs.items():
            for topic, body in self._configs(identity, name, config):
                await self.connection.publish(topic, payloads.dumps(body), "discovery", retain=True)


def diagnostics(camera: dict[str, Any]) -> dict[str, Any]:
    """A camera's diagnostics message: connected or not, why not, and its rates."""
    return {
        "state": camera["state"],
        "connected": camera["state"] in CONNECTED_STATES,
        "fps_read": camera["fps"]["read"],
        "fps_analysed": camera["fps"]["analysed"],
        "frames_dropped": camera["frames"]["dropped"],
        "last_error": camera["last_error"],
        "url": camera["url"],
    }
