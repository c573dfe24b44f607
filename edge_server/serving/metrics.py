"""Prometheus metrics of one app instance (its own registry, so apps in one process don't clash)."""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

if TYPE_CHECKING:
    from ..core.engine import Engine

STAGES = ("queue", "decode", "preprocess", "inference", "postprocess", "total")

# Seconds; spans a 2 ms invoke on a desktop to a multi-second 12 MP decode on a Pi Zero 2.
# The label values known up front (the code that counts them uses these same words).
CONNECT_FAILURES = ("auth", "refused", "tls", "network", "lost")
RECEIVED_KINDS = ("classify", "frigate", "birth")
PUBLISHED_KINDS = ("result", "error", "event", "response", "discovery", "status")
DROPPED = (
    ("classify", "queue_full"),
    ("classify", "overloaded"),
    ("classify", "disconnected"),
    ("frigate", "queue_full"),
    ("frigate", "disconnected"),
)
MQTT_ERROR_STATUSES = (400, 413, 415, 500, 503, 504)
LEARNED_REFUSALS = ("bad_name", "bad_label", "limit", "bad_image", "bad_file", "unusable")
LEARNED_STATUSES = ("ready", "unusable")
# Why a face request was refused (never who: names and photos stay out of the metrics).
FACE_REFUSALS = ("no_userid", "no_image", "no_face", "image_count")
FRIGATE_OUTCOMES = ("classified", "unchanged", "ignored", "ended", "invalid", "failed")

# What became of the faces the service found (never who they are: names are not labels).
FACE_OUTCOMES = ("found", "recognised", "unknown", "registered")

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The service's metrics and the registry that exposes them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "edge_http_requests",
            "HTTP requests by route template, method and status code.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "edge_http_request_duration_seconds",
            "HTTP request duration by route template and status code (so refusals and answers "
            "can be told apart).",
            ("route", "status"),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "edge_http_requests_in_flight",
            "HTTP requests being handled now.",
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "edge_classify_stage_seconds",
            "Time per request stage (queue, decode, preprocess, inference, postprocess, total), "
            "by model and task (classification, detection).",
            ("stage", "model", "task"),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._stage_series: dict[tuple[str, str], dict[str, Any]] = {}
        self.admitted = Gauge(
            "edge_classify_admitted",
            "Classify requests admitted and not yet answered (bounded by EDGE_MAX_QUEUE).",
            registry=self.registry,
        )
        # The limit beside the count, so a fleet's dashboards and alerts can tell how full each
        # instance's queue is whatever its EDGE_MAX_QUEUE.
        self.queue_limit = Gauge(
            "edge_classify_queue_limit",
            "Classify requests that may be admitted at once (EDGE_MAX_QUEUE).",
            registry=self.registry,
        )
        self.rejected = Counter(
            "edge_classify_rejected",
            "Classify requests refused with 503 because the admission queue was full.",
            registry=self.registry,
        )
        self.abandoned = Counter(
            "edge_classify_abandoned",
            "Classify requests dropped because the client disconnected first.",
            registry=self.registry,
        )
        self.timeouts = Counter(
            "edge_classify_timeouts",
            "Classify requests over EDGE_REQUEST_TIMEOUT, by phase (upload, processing).",
            ("phase",),
            registry=self.registry,
        )
        self.invokes = Counter(
            "edge_model_invokes",
            "Model invocations run by the interpreter, by model.",
            ("model",),
            registry=self.registry,
        )
        self.faces = Counter(
            "edge_faces",
            "Faces found (detection), recognised as a registered person or unknown, and "
            "registered.",
            ("outcome",),
            registry=self.registry,
        )
        _zero(self.faces, *((o,) for o in FACE_OUTCOMES))
        self.reloads = Counter(
            "edge_model_reloads",
            "Model loads and reloads after start-up, by model and result (ok, failed).",
            ("model", "result"),
            registry=self.registry,
        )
        self.detections = Counter(
            "edge_detections",
            "Objects found and answered by detectors, by model and label.",
            ("model", "label"),
            registry=self.registry,
        )
        self.model = Info(
            "edge_model",
            "The loaded models and their runtime, one series per model.",
            ("model",),
            registry=self.registry,
        )

        # The MQTT surface (zero while EDGE_MQTT_URL is unset).
        self.mqtt_connected = Gauge(
            "edge_mqtt_connected",
            "1 while connected to the MQTT broker, else 0.",
            registry=self.registry,
        )
        self.mqtt_connect_failures = Counter(
            "edge_mqtt_connect_failures",
            "Failed or lost MQTT connections by reason (auth, refused, tls, network, lost).",
            ("reason",),
            registry=self.registry,
        )
        self.mqtt_received = Counter(
            "edge_mqtt_messages_received",
            "MQTT messages received by kind (classify, frigate, birth).",
            ("kind",),
            registry=self.registry,
        )
        self.mqtt_published = Counter(
            "edge_mqtt_messages_published",
            "MQTT messages published by kind (result, error, event, response, discovery, status).",
            ("kind",),
            registry=self.registry,
        )
        self.mqtt_dropped = Counter(
            "edge_mqtt_messages_dropped",
            "MQTT messages not handled, by kind and reason (queue_full: over "
            "EDGE_MQTT_MAX_PENDING; overloaded: EDGE_MAX_QUEUE reached).",
            ("kind", "reason"),
            registry=self.registry,
        )
        self.mqtt_errors = Counter(
            "edge_mqtt_classify_errors",
            "Images received by MQTT that could not be classified, by status (as HTTP would "
            "answer: 400 bad image, 413 too large...).",
            ("status",),
            registry=self.registry,
        )
        self.frigate_events = Counter(
            "edge_frigate_events",
            "Frigate events by outcome (classified, unchanged, ignored, failed).",
            ("outcome",),
            registry=self.registry,
        )
        self.frigate_sub_labels = Counter(
            "edge_frigate_sub_labels",
            "Sub labels written back to Frigate, by result (ok, failed).",
            ("result",),
            registry=self.registry,
        )

        # Every series whose label values are known up front starts at zero, so an alert on
        # the first failure has a series to fire on (`increase()` needs a previous sample).
        _zero(self.timeouts, ("upload",), ("processing",))
        _zero(self.mqtt_connect_failures, *((r,) for r in CONNECT_FAILURES))
        _zero(self.mqtt_received, *((k,) for k in RECEIVED_KINDS))
        _zero(self.mqtt_published, *((k,) for k in PUBLISHED_KINDS))
        _zero(self.mqtt_dropped, *DROPPED)
        _zero(self.mqtt_errors, *((str(s),) for s in MQTT_ERROR_STATUSES))
        _zero(self.frigate_events, *((o,) for o in FRIGATE_OUTCOMES))
        _zero(self.frigate_sub_labels, ("ok",), ("failed",))
        self.learned_examples = Gauge(
            "edge_learned_examples",
            "Examples stored in each learned model.",
            ("model",),
            registry=self.registry,
        )
        self.learned_models = Gauge(
            "edge_learned_models",
            "Learned models by status: ready (served) or unusable (a damaged file, or learned "
            "with another embedding model; GET /v1/learned says why).",
            ("status",),
            registry=self.registry,
        )
        self.learned_refused = Counter(
            "edge_learned_refused",
            "Changes to learned models refused, by reason (bad_name, bad_label, limit, "
            "bad_image, bad_file, unusable).",
            ("reason",),
            registry=self.registry,
        )
        _zero(self.learned_refused, *((r,) for r in LEARNED_REFUSALS))
        self.faces_refused = Counter(
            "edge_faces_refused",
            "Face requests refused, by reason (no_userid, no_image, no_face, image_count); bad "
            "images and keys are counted by route and status in edge_http_requests.",
            ("reason",),
            registry=self.registry,
        )
        _zero(self.faces_refused, *((r,) for r in FACE_REFUSALS))
        for status in LEARNED_STATUSES:
            self.learned_models.labels(status).set(0)

    def observe_stages(self, timing_ms: dict[str, float], model: str, task: str) -> None:
        """Record one request's stage times."""
        series = self._stage_series.get((model, task))
        if series is None:
            # labels() hashes and looks up its arguments on every call: six times a request.
            series = {stage: self.stage_seconds.labels(stage, model, task) for stage in timing_ms}
            self._stage_series[(model, task)] = series
        for stage, ms in timing_ms.items():
            series[stage].observe(ms / 1000)

    def set_model(self, classifier: Engine) -> None:
        """Describe a serving model, count its invokes, and start its reload counts at zero."""
        info = classifier.info
        _zero(self.reloads, (info.name, "ok"), (info.name, "failed"))
        self.model.labels(info.name).info(
            {
                "task": info.task.value,
                "file": info.path.name,
                "sha256": info.sha256,
                "backend": info.backend.name,
                "backend_version": info.backend.version,
                "num_threads": str(info.num_threads),
                "xnnpack": str(info.xnnpack).lower(),
            }
        )
        classifier.on_invoke = self.invokes.labels(info.name).inc

    def forget_model(self, name: str) -> None:
        """A model no longer served has no info series (its counters keep their history)."""
        with suppress(KeyError):  # never described
            self.model.remove(name)


def _zero(counter: Counter, *label_sets: tuple[str, ...]) -> None:
    """Create each labelled series at zero."""
    for values in label_sets:
        counter.labels(*values)
