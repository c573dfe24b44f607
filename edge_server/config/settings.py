"""Service configuration: `EDGE_*` environment variables, mirrored by CLI flags."""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, FilePath, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..mqtt.topics import check_filter, check_prefix, split_list
from .mqtt import parse_broker_url

DEFAULT_MODEL = "mobilenet_v2_1.0_224_quant"


def available_cpus() -> int:
    """The CPUs this process may run on (cgroup/affinity aware where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class ResizeMode(StrEnum):
    """How a photo is fitted to the model's square input."""

    squash = "squash"
    center_crop = "center-crop"
    letterbox = "letterbox"


class RuntimeChoice(StrEnum):
    """Which TFLite runtime package to load."""

    auto = "auto"
    litert = "litert"
    tflite = "tflite"


class OutputKind(StrEnum):
    """Whether the model's output is already probabilities or needs a softmax."""

    auto = "auto"
    probabilities = "probabilities"
    logits = "logits"


class MdnsMode(StrEnum):
    """Whether the service advertises itself on the LAN with mDNS/DNS-SD."""

    auto = "auto"  # when it listens on a LAN address, not when it listens on loopback only
    on = "on"  # as auto, but a failure to advertise stops the start
    off = "off"


class Settings(BaseSettings):
    """Every knob of the service; each field is `EDGE_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="EDGE_", extra="forbid", validate_default=True)

    model: str = Field(
        DEFAULT_MODEL,
        description="Model(s) to serve, comma-separated, the default first: catalog names or "
        "aliases (looked up in models_dir), .tflite paths, or names from models_config.",
    )
    models_config: FilePath | None = Field(
        None, description="TOML file with per-model names and options (README: Several models)."
    )
    max_models: Annotated[int, Field(ge=1, le=32)] = Field(
        4, description="Most models loaded at once; more are refused, not an out-of-memory kill."
    )
    models_dir: Path = Field(Path("models"), description="Folder holding pulled models.")
    models_from: str | None = Field(
        None, description="Where `models pull` fetches from: a folder or a base URL."
    )
    labels: Path | None = Field(
        None, description="Labels file; default: the labels file embedded in the model."
    )
    runtime: RuntimeChoice = Field(RuntimeChoice.auto, description="TFLite runtime package.")
    num_threads: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = Field(
        default_factory=available_cpus,
        description="Interpreter threads, or auto: the fastest count of a short sweep at start.",
    )
    replicas: Annotated[int, Field(ge=1, le=16)] | Literal["auto"] = Field(
        "auto",
        description="Interpreters of the model (each its own thread, invokes to the first free "
        "one): the first with num_threads threads, the others with one; auto: 2 with 2+ CPUs.",
    )
    decode_threads: Annotated[int, Field(ge=1, le=64)] | None = Field(
        None, description="Threads decoding uploads; default: one per CPU the service may use."
    )
    resize: ResizeMode = Field(ResizeMode.squash, description="How images fit the input.")
    output: OutputKind = Field(OutputKind.auto, description="Model output kind.")
    input_mean: float = Field(127.5, description="Mean subtracted for float-input models.")
    input_std: Annotated[float, Field(gt=0)] = Field(
        127.5, description="Std divided by for float-input models."
    )
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: Annotated[int, Field(ge=0, le=65535)] = Field(8080, description="TCP port.")
    max_upload_bytes: Annotated[int, Field(ge=1024)] = Field(
        20 * 1024 * 1024, description="Largest accepted request body."
    )
    max_image_pixels: Annotated[int, Field(ge=1)] = Field(
        50_000_000, description="Largest accepted image (width x height), read from its header."
    )
    min_image_side: Annotated[int, Field(ge=1)] = Field(
        16, description="Smallest accepted image side, in pixels."
    )
    max_batch_images: Annotated[int, Field(ge=1, le=256)] = Field(
        16, description="Most images in one POST /classify/batch request."
    )
    default_top_k: Annotated[int, Field(ge=1, le=100)] = Field(
        5, description="Predictions returned when the request names no top_k."
    )
    max_queue: Annotated[int, Field(ge=1, le=10_000)] = Field(
        64, description="Classify requests admitted at once; more get 503 + Retry-After."
    )
    request_timeout: Annotated[float, Field(gt=0, le=3600)] = Field(
        30.0, description="Seconds a classify request may take, upload included (504/408)."
    )
    header_timeout: Annotated[float, Field(gt=0, le=3600)] = Field(
        10.0,
        description="Seconds a client has to send a request's headers (from connecting, or "
        "from the end of the previous answer); slower connections are closed.",
    )
    body_timeout: Annotated[float, Field(gt=0, le=3600)] = Field(
        10.0,
        description="Seconds a request body may stall (no bytes arrive) before the connection "
        "is closed.",
    )
    keep_alive_timeout: Annotated[int, Field(ge=1, le=3600)] = Field(
        5, description="Seconds an idle keep-alive connection stays open between requests."
    )
    max_connections: Annotated[int, Field(ge=8, le=1_000_000)] = Field(
        1000,
        description="Open connections at most (lowered to fit the open-file limit); past it "
        "the connection waiting longest for its headers is closed, or the new one gets 503.",
    )
    decode_memory_mb: Annotated[int, Field(ge=16)] | None = Field(
        None,
        description="MiB that images being decoded may take at once; default: 40% of the "
        "memory limit (cgroup, else RAM), and room for the largest image allowed. Images wait "
        "a second for room, then get 503.",
    )
    shutdown_timeout: Annotated[float, Field(ge=0, le=3600)] = Field(
        10.0, description="Seconds in-flight requests get to finish after SIGTERM."
    )
    api_key: SecretStr | None = Field(
        None, description="API key(s), comma-separated; unset = no authentication."
    )
    api_key_file: FilePath | None = Field(
        None, description="File with one API key per line (combined with EDGE_API_KEY)."
    )
    metrics_require_key: bool = Field(False, description="Whether /metrics needs the API key too.")
    cors_origins: str = Field(
        "", description="Comma-separated origins allowed by CORS; empty = CORS off."
    )
    sysfs_root: Path = Field(
        Path("/"), description="Root of /sys and /proc for board health (tests use a fake)."
    )
    log_level: str = Field("info", description="uvicorn log level.")
    access_log: Literal["off", "on"] | Annotated[float, Field(ge=0, le=1)] = Field(
        "off",
        description="Access log lines for answered requests: off, on, or the fraction to log "
        "(0.01: one in a hundred). Errors (status >= 400) are always logged.",
    )
    node_id: str | None = Field(
        None,
        description="This instance's id on the LAN (MQTT topics, mDNS); default: derived from "
        "the machine id, stable across restarts.",
    )
    mdns: MdnsMode = Field(
        MdnsMode.auto,
        description="Advertise on the LAN with mDNS/DNS-SD: auto (when EDGE_HOST is not "
        "loopback), on (a failure to advertise stops the start), off.",
    )
    mdns_interfaces: str = Field(
        "",
        description="Comma-separated interface names or addresses to advertise on; empty = "
        "every non-loopback interface the service listens on.",
    )
    mdns_name: str | None = Field(
        None,
        description="Instance name that browsers show; default 'edge-server on <hostname>' "
        "(a number is appended when another instance has the name).",
    )

    public_url: str | None = Field(
        None,
        description="The service's address as LAN devices reach it (Home Assistant's link to "
        "the page); default: http://<host name>:<port>/.",
    )
    # MQTT (the `mqtt` extra): off unless a broker is configured.
    mqtt_url: SecretStr | None = Field(
        None,
        description="MQTT broker, mqtt://[user:password@]host[:1883] or mqtts://...[:8883]; "
        "unset = MQTT off.",
    )
    mqtt_ca_file: FilePath | None = Field(
        None, description="CA certificate(s) for an mqtts:// broker; default: the system's."
    )
    mqtt_prefix: str | None = Field(
        None, description="Topic prefix; default: edge-server/<node id>."
    )
    mqtt_discovery_prefix: str = Field(
        "homeassistant", description="Home Assistant's discovery prefix."
    )
    mqtt_discovery: bool = Field(True, description="Whether to announce Home Assistant entities.")
    mqtt_client_id: str | None = Field(
        None, description="MQTT client id; default: edge-server-<node id>."
    )
    mqtt_protocol: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT version: 3.1.1 or 5.")
    mqtt_topics: str = Field(
        "",
        description="More topic filters whose messages are images to classify, comma-separated "
        "(e.g. a camera's snapshot topic).",
    )
    mqtt_max_pending: Annotated[int, Field(ge=1, le=1000)] = Field(
        8,
        description="Image messages held at once (waiting or being classified); more are dropped.",
    )
    mqtt_reconnect_max: Annotated[float, Field(ge=0.1, le=3600)] = Field(
        30.0, description="Longest wait between reconnection attempts, in seconds."
    )
    # The Frigate bridge: on when frigate_url is set (needs MQTT).
    frigate_url: str | None = Field(
        None, description="Frigate's HTTP address (e.g. http://frigate:5000); unset = bridge off."
    )
    frigate_topic_prefix: str = Field("frigate", description="Frigate's MQTT topic prefix.")
    frigate_cameras: str = Field(
        "", description="Frigate cameras to follow, comma-separated; empty = all."
    )
    frigate_labels: str = Field(
        "bird", description="Frigate object labels to classify, comma-separated."
    )
    frigate_model: str = Field("birds", description="Model that classifies Frigate snapshots.")
    frigate_sub_label: bool = Field(
        True, description="Whether to write the species back as the event's sub label."
    )
    frigate_min_score: Annotated[float, Field(gt=0, le=1)] = Field(
        0.7, description="Lowest score written back as a sub label."
    )

    @field_validator("mqtt_url")
    @classmethod
    def _broker_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_broker_url(value.get_secret_value())  # ValueError names the problem
        return value

    @field_validator("mqtt_topics")
    @classmethod
    def _topic_filters(cls, value: str) -> str:
        for pattern in split_list(value):
            check_filter(pattern)
        return value

    @field_validator("mqtt_prefix", "mqtt_discovery_prefix", "frigate_topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str | None) -> str | None:
        if value is not None:
            check_prefix(value)
        return value

    @field_validator("frigate_url", "public_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("frigate_url")
    @classmethod
    def _frigate_needs_mqtt(cls, value: str | None, info: ValidationInfo) -> str | None:
        # (mqtt_url is absent from info.data when it failed its own check: no second error)
        if value is not None and "mqtt_url" in info.data and info.data["mqtt_url"] is None:
            raise ValueError("needs EDGE_MQTT_URL too: Frigate's events come by MQTT")
        return value

    @field_validator("mdns_name")
    @classmethod
    def _dns_sd_instance_name(cls, value: str | None) -> str | None:
        # RFC 6763 4.1.1: one DNS label of UTF-8, at most 63 bytes, no control characters.
        if value is None:
            return None
        value = value.strip()
        if not value or len(value.encode()) > 63:
            raise ValueError("must be 1 to 63 bytes of UTF-8")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise ValueError("must not contain control characters")
        if "." in value:  # python-zeroconf would split the label at the dot
            raise ValueError("must not contain a dot")
        return value

    @property
    def access_log_rate(self) -> float:
        """The fraction of successful requests given an access log line."""
        if isinstance(self.access_log, str):
            return 1.0 if self.access_log == "on" else 0.0
        return self.access_log

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        levels = ("critical", "error", "warning", "info", "debug", "trace")
        if value.lower() not in levels:
            raise ValueError(f"must be one of {', '.join(levels)}")
        return value.lower()
