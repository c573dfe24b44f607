"""Service configuration: `EDGE_*` environment variables, mirrored by CLI flags."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, FilePath, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class Settings(BaseSettings):
    """Every knob of the service; each field is `EDGE_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="EDGE_", extra="forbid", validate_default=True)

    model: str = Field(
        DEFAULT_MODEL,
        description="Catalog name (looked up in models_dir) or path of a .tflite file.",
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
    node_id: str | None = Field(
        None,
        description="This instance's id on the LAN (MQTT topics, mDNS); default: derived from "
        "the machine id, stable across restarts.",
    )

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        levels = ("critical", "error", "warning", "info", "debug", "trace")
        if value.lower() not in levels:
            raise ValueError(f"must be one of {', '.join(levels)}")
        return value.lower()
