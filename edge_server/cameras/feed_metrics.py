"""The feeds' metrics (`edge_camera_*`, label `camera`: the configured name), one set per
registry that every feed of the app shares. Frames skipped by the analysis are the watcher's
to count; these say what the camera delivered and how reading it went."""

from __future__ import annotations

from contextlib import suppress

from prometheus_client import CollectorRegistry, Counter, Gauge

# The kinds of failure, as the feed's states name them.
FAILURES = ("unreachable", "unauthorized", "not_a_stream")


class FeedMetrics:
    """Frames read, reconnects, failures by kind, and each feed's state."""

    def __init__(self, registry: CollectorRegistry, states: tuple[str, ...]) -> None:
        self.states = states
        self.read = Counter(
            "edge_camera_frames_read",
            "Frames read from the camera (decoded), by camera.",
            ("camera",),
            registry=registry,
        )
        self.reconnects = Counter(
            "edge_camera_reconnects",
            "Connections to the camera after the first, by camera.",
            ("camera",),
            registry=registry,
        )
        self.failures = Counter(
            "edge_camera_feed_failures",
            "Connections that failed or broke, by camera and kind (unreachable: refused, timed "
            "out, stalled or ended; unauthorized: 401/403; not_a_stream: a page, garbage).",
            ("camera", "kind"),
            registry=registry,
        )
        self.state = Gauge(
            "edge_camera_feed_state",
            "1 for the feed's current state (connecting, streaming, reconnecting, "
            "unauthorized, failed, ...), 0 for the others.",
            ("camera", "state"),
            registry=registry,
        )

    def set_state(self, camera: str, state: str) -> None:
        for known in self.states:
            self.state.labels(camera, known).set(1 if known == state else 0)

    def forget(self, camera: str) -> None:
        """Drop a removed camera's series (those it never had are no error)."""
        series: list[tuple[Counter | Gauge, tuple[str, ...]]]
        series = [(self.read, (camera,)), (self.reconnects, (camera,))]
        series += [(self.failures, (camera, kind)) for kind in FAILURES]
        series += [(self.state, (camera, state)) for state in self.states]
        for metric, labels in series:
            with suppress(KeyError):
                metric.remove(*labels)
