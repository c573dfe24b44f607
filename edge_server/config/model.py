"""Which models to serve and how they run: the EDGE_MODEL* and interpreter settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, FilePath

from ..core.engine import OutputKind
from ..core.imaging import ResizeMode
from ..core.runtime import RuntimeChoice
from ..core.threads import available_cpus
from .lists import CommaList

DEFAULT_MODEL = "mobilenet_v2_1.0_224_quant"


class ModelSettings(BaseModel):
    """The models: which ones, where their files are, and how each interpreter runs."""

    model: CommaList = Field(
        [DEFAULT_MODEL],
        description="Model(s) to serve, comma-separated, the default first: catalog names or "
        "aliases (looked up in models_dir), .tflite paths, or names from models_config.",
    )
    models_config: FilePath | None = Field(
        None, description="TOML file with per-model names and options (docs: Several models)."
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
        description="Interpreters of each model (each its own thread): the first with "
        "num_threads threads, taken by an invoke that finds nothing else running, the others "
        "with one, taken while anything else runs; auto: one one-thread interpreter per CPU "
        "beside the first (one interpreter in all on one CPU).",
    )
    decode_threads: Annotated[int, Field(ge=1, le=64)] | None = Field(
        None, description="Threads decoding uploads; default: one per CPU the service may use."
    )
    resize: ResizeMode | None = Field(
        None,
        description="How images fit the input, for every model (squash, center-crop or "
        "letterbox); unset: each catalog model's own fit (docs: Models), squash for a .tflite "
        "file. A [models.NAME] table's resize and a request's resize= win over it.",
    )
    output: OutputKind = Field(OutputKind.auto, description="Model output kind.")
    input_mean: float = Field(127.5, description="Mean subtracted for float-input models.")
    input_std: Annotated[float, Field(gt=0)] = Field(
        127.5, description="Std divided by for float-input models."
    )
