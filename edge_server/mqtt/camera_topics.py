"""Where the cameras' messages go: Frigate's topic layout, under our prefix or Frigate's.

Frigate publishes `frigate/events`, `frigate/<camera>/<label>` (a count),
`frigate/<camera>/<label>/snapshot` (a retained JPEG) and `frigate/<camera>/motion` (ON/OFF);
tools that read Frigate (Double Take subscribes `frigate/+/person/snapshot` and
`frigate/events`) find the same levels here. With EDGE_CAMERA_EVENTS=edge they sit under the
service's own prefix (`<prefix>/events`, `<prefix>/<camera>/...`); with `frigate`, under the
Frigate prefix (EDGE_FRIGATE_TOPIC_PREFIX, `frigate`). What is ours alone (the latest snapshot
of any label, the diagnostics, the last recognised face, Home Assistant's event entity) stays
under our prefix either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from .topics import Topics


@dataclass(frozen=True)
class CameraTopics:
    """The camera topics of one edge-server."""

    topics: Topics  # ours: the prefix, status and Home Assistant's discovery
    base: str  # `<prefix>` or `frigate`: where events, counts, snapshots and motion go

    @classmethod
    def of(cls, topics: Topics, mode: str, frigate_prefix: str) -> CameraTopics:
        return cls(topics, frigate_prefix if mode == "frigate" else topics.prefix)

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    def count(self, camera: str, label: str) -> str:
        """How many `label`s the camera sees now (`all`: every label), a retained number."""
        return f"{self.base}/{camera}/{label}"

    def snapshot(self, camera: str, label: str) -> str:
        """The latest event snapshot of `label` on the camera, a retained JPEG."""
        return f"{self.base}/{camera}/{label}/snapshot"

    @property
    def tracked_object_update(self) -> str:
        """Frigate 0.16's updates of a tracked object's metadata (a face recognised)."""
        return f"{self.base}/tracked_object_update"

    def face(self, camera: str) -> str:
        """The last face the camera recognised (name, score, time, event id), retained JSON:
        Home Assistant's "last recognised face" sensor."""
        return f"{self.topics.prefix}/{camera}/face"

    def motion(self, camera: str) -> str:
        """`ON` or `OFF`, retained."""
        return f"{self.base}/{camera}/motion"

    def latest_snapshot(self, camera: str) -> str:
        """The latest event snapshot of any label: Home Assistant's image entity."""
        return f"{self.topics.prefix}/{camera}/snapshot"

    def diagnostics(self, camera: str) -> str:
        """The camera's state and frame rates as JSON, retained."""
        return f"{self.topics.prefix}/{camera}/diagnostics"

    def event(self, camera: str) -> str:
        """Home Assistant's event entity of the camera (`new` and `end`)."""
        return self.topics.event(camera)
