"""Which models to serve, under which names, with which options.

EDGE_MODEL names one model or several, comma-separated: catalog names, aliases such as `birds`,
`.tflite` paths, or names defined in the EDGE_MODELS_CONFIG file. The first is the default.
The config file (TOML) sets options per model where models need different ones:

    default = "doorbell"             # optional; else the first model listed

    [models.doorbell]                # the name requests use: /classify?model=doorbell
    model = "mobilenet_v2_1.0_224_quant"

    [models.feeder]
    model = "birds"                  # a catalog name, an alias or a .tflite path
    resize = "center-crop"
    num_threads = 1

    [sources.driveway]               # an MQTT source's own fit (docs: MQTT)
    resize = "squash"
    labels = ["car", "person"]       # a segmenting source's Home Assistant sensors
    regions = {parking = [[0.1, 0.5], [0.6, 0.5], [0.6, 1], [0.1, 1]]}

How a model fits images, highest first: a request's `resize=`; its MQTT source's `resize`; the
model's table; EDGE_RESIZE when set; the catalog's declared fit; squash for a .tflite file.
The first two are per image (`Service`), the rest resolved here into the model's LoadOptions.

Without EDGE_MODEL, the config file's models are served in the order written. Everything here is
checked before the first model loads, so a mistake stops the start with the fix.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from concurrent.futures import Executor
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config.cameras import CameraConfig, CameraTable, camera_configs
from ..config.mqtt import parse_sources
from ..config.settings import Settings
from ..core.engine import Engine, LoadOptions, OutputKind
from ..core.errors import BadRequest, StartupError
from ..core.imaging import ResizeMode
from ..core.segmentation import Polygon
from . import segmenting
from .catalog import catalog_labels, known_names, lookup, resolve_model
from .journal import MODEL_NAME

# Names travel in URL paths, query strings and MQTT topics: keep them plain.
log = logging.getLogger("edge_server")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ModelOptions(BaseModel):
    """One `[models.NAME]` table: what to load and how (unset options follow EDGE_*)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Catalog name, alias or .tflite path.")
    labels: Path | None = None
    num_threads: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] | None = None
    replicas: Annotated[int, Field(ge=1, le=16)] | Literal["auto"] | None = None
    resize: ResizeMode | None = None
    output: OutputKind | None = None
    input_mean: float | None = None
    input_std: Annotated[float, Field(gt=0)] | None = None
    sources: list[str] = Field(
        default_factory=list, description="MQTT sources this model answers (EDGE_MQTT_SOURCES)."
    )


class SourceOptions(BaseModel):
    """One `[sources.NAME]` table: how an MQTT source's images are treated."""

    model_config = ConfigDict(extra="forbid")

    resize: ResizeMode | None = Field(
        None, description="How the source's images fit its model (over the model's own fit)."
    )
    labels: list[str] | None = Field(
        None,
        description="A segmenting source's labels with a Home Assistant '% of frame' sensor "
        "(default: EDGE_MQTT_COUNT_LABELS).",
    )
    regions: dict[str, Any] | None = Field(
        None,
        description="A segmenting source's named polygons, corners as fractions of the "
        "frame, as /segment's regions= takes them: each result says what covers each.",
    )


# Home Assistant entities one segmenting source may announce: a sensor per label for the whole
# frame and for each region. 64 keeps a source's device page readable and its configs to a
# few kilobytes; 5 labels and 4 regions are 25.
MAX_SEGMENT_SENSORS = 64


@dataclass(frozen=True)
class SourceSegments:
    """What a segmenting MQTT source reports: the labels it has sensors for, its regions."""

    labels: tuple[str, ...]
    regions: tuple[Polygon, ...] = ()


class ModelsConfig(BaseModel):
    """The EDGE_MODELS_CONFIG file."""

    model_config = ConfigDict(extra="forbid")

    default: str | None = None
    models: dict[str, ModelOptions] = Field(default_factory=dict)
    sources: dict[str, SourceOptions] = Field(default_factory=dict)
    cameras: dict[str, CameraTable] = Field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """A model to serve: the name requests use, its file, and the options it loads with."""

    name: str
    model: str  # a catalog name or alias (looked up in models_dir), or a .tflite path
    models_dir: Path
    options: LoadOptions

    def path(self) -> Path:
        """The model file; a StartupError says how to get it when it is missing."""
        return resolve_model(self.model, self.models_dir)

    def load(self, decoders: Executor | None = None) -> Engine:
        """Load and warm up the model under its served name."""
        options = self.options
        entry = lookup(self.model)
        if entry is not None and entry.task == "embedding":
            options = replace(options, embedding=True)
        if options.labels is None and not options.embedding:
            labels = catalog_labels(self.model, self.models_dir)
            if labels is not None:
                options = replace(options, labels=labels)
        return Engine.load(self.path(), options, name=self.name, decoders=decoders)


# The settings every model loads with, unless its [models.NAME] table says otherwise.
_LOAD_FIELDS = tuple(f.name for f in fields(LoadOptions) if f.name != "embedding")


def serving_name(model: str) -> str:
    """The name a model is served under when nobody named it: catalog name or file stem."""
    entry = lookup(model)
    if entry is not None:
        return entry.name
    return Path(model).name.removesuffix(".tflite")


def read_config(path: Path) -> ModelsConfig:
    """The models config file, checked; a mistake is a StartupError naming the line or field."""
    fix = f"correct {path} (EDGE_MODELS_CONFIG); the docs' 'Several models' has an example"
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StartupError(
            f"cannot read the models config {path}: {exc.strerror}", fix=fix
        ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StartupError(f"{path} is not valid TOML: {exc}", fix=fix) from exc
    try:
        config = ModelsConfig.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise StartupError(f"{path} has invalid entries: {problems}", fix=fix) from exc
    base = path.parent
    for name, options in config.models.items():
        if options.labels is not None and not options.labels.is_absolute():
            config.models[name] = options.model_copy(update={"labels": base / options.labels})
    return config


def model_specs(settings: Settings, config: ModelsConfig | None = None) -> list[ModelSpec]:
    """Every model to serve, the default first, with its settings (`config`: the models
    config already read, else read here).

    The models do not split the CPUs between them: each has an all-core interpreter beside
    one-thread replicas, and which one an invoke takes is decided when it starts, by what
    else is running (`core.owners`).
    """
    if config is None:
        config = models_config(settings)
    if "model" in settings.model_fields_set or not config.models:
        names = list(settings.model)
    else:
        names = list(config.models)
        if config.default is not None:
            if config.default not in config.models:
                raise StartupError(
                    f"the models config's default {config.default!r} is not one of its models "
                    f"({', '.join(config.models)})",
                    fix="name one of the [models.NAME] tables as default",
                )
            names.remove(config.default)
            names.insert(0, config.default)
    if not names:
        raise StartupError("EDGE_MODEL names no model", fix="set EDGE_MODEL to a model name")
    if len(names) > settings.max_models:
        raise StartupError(
            f"{len(names)} models are configured ({', '.join(names)}); at most "
            f"{settings.max_models} may be loaded (EDGE_MAX_MODELS)",
            fix="serve fewer models, or raise EDGE_MAX_MODELS if the board has the memory "
            "(see the docs' 'Several models' for each model's cost)",
        )
    if len(names) > 1 and settings.labels is not None:
        raise StartupError(
            "EDGE_LABELS is set but several models are served; it would apply to all of them",
            fix="set `labels` per model in the EDGE_MODELS_CONFIG file instead",
        )
    specs = [spec_for(name, settings, config) for name in names]
    seen: dict[str, str] = {}
    for name, spec in zip(names, specs, strict=True):
        if spec.name in seen:
            raise StartupError(
                f"{name!r} and {seen[spec.name]!r} both stand for the model named {spec.name!r}",
                fix="list each model once in EDGE_MODEL",
            )
        seen[spec.name] = name
    return specs


def spec_for(name: str, settings: Settings, config: ModelsConfig) -> ModelSpec:
    """The spec of one name: a config table, a catalog name or alias, or a .tflite path."""
    options = config.models.get(name)
    if options is not None:
        _check_table_name(name, options)
        model = options.model or name
        overrides = options.model_dump(exclude_none=True, exclude={"model", "sources"})
        served = name
    elif lookup(name) is not None or name.endswith(".tflite"):
        model, overrides, served = name, {}, serving_name(name)
    else:
        defined = f"; the models config defines {', '.join(config.models)}" if config.models else ""
        raise StartupError(
            f"unknown model {name!r}: not a catalog name, an alias or a .tflite path{defined}",
            fix="use one of the catalog names: " + known_names(),
        )
    if not _NAME.fullmatch(served):
        raise StartupError(
            f"the model name {served!r} cannot be used in URLs and topics",
            fix="name it with letters, digits, '.', '_' and '-' (a [models.NAME] table "
            "can give a file a plain name)",
        )
    values = {field: getattr(settings, field) for field in _LOAD_FIELDS}
    if values["resize"] is None:  # EDGE_RESIZE unset: the model's declared fit
        values["resize"] = declared_fit(model)
    values.update(overrides)
    return ModelSpec(served, model, settings.models_dir, LoadOptions(**values))


def declared_fit(model: str) -> ResizeMode:
    """How a model fits images unless told otherwise: the catalog's declared fit (as it was
    trained and evaluated; benchmarks/accuracy.py measures it), squash for any other file."""
    entry = lookup(model)
    return entry.resize if entry is not None else ResizeMode.squash


def _check_table_name(name: str, options: ModelOptions) -> None:
    """A table named like a catalog model or alias must be that model, or names clash."""
    entry = lookup(name)
    if entry is None or options.model is None:
        return
    target = lookup(options.model)
    if target is None or target.name != entry.name:
        raise StartupError(
            f"[models.{name}] loads {options.model!r}, but {name!r} is the catalog's name "
            f"for {entry.name}",
            fix=f"give the table another name than {name!r}",
        )


def source_models(settings: Settings) -> dict[str, str]:
    """Which served model answers each MQTT source: the models config's `sources`, then
    EDGE_MQTT_SOURCES (which wins). A model that is not served stops the start, unless
    learning is on (EDGE_DATA_DIR): then it may be a learned model, taught now or later."""
    return {source: models[0] for source, models in source_mapping(settings).items()}


def source_classifiers(settings: Settings) -> dict[str, str]:
    """The classifier or learned model that gives each object a sub label, for the MQTT
    sources mapped as `source:detector+classifier`."""
    return {
        source: models[1] for source, models in source_mapping(settings).items() if len(models) > 1
    }


def cameras(settings: Settings, config: ModelsConfig | None = None) -> dict[str, CameraConfig]:
    """Every camera to watch: EDGE_CAMERAS and the models config's `[cameras.NAME]` tables (a
    table's fields win over EDGE_CAMERAS's URL and the defaults); a mistake is a StartupError."""
    config = models_config(settings) if config is None else config
    try:
        return camera_configs(settings.camera_urls(), config.cameras)
    except ValueError as exc:  # pydantic's ValidationError is one
        raise StartupError(
            f"a camera is misconfigured: {exc}",
            fix="correct EDGE_CAMERAS or the [cameras.NAME] table in EDGE_MODELS_CONFIG",
        ) from exc


def models_config(settings: Settings) -> ModelsConfig:
    """The EDGE_MODELS_CONFIG file, checked (an empty config when it is unset)."""
    return read_config(settings.models_config) if settings.models_config else ModelsConfig()


def source_fits(config: ModelsConfig) -> dict[str, ResizeMode]:
    """The MQTT sources given their own fit (`[sources.NAME] resize`), over their model's."""
    return {
        source: table.resize for source, table in config.sources.items() if table.resize is not None
    }


def source_segments(
    config: ModelsConfig, default_labels: tuple[str, ...]
) -> dict[str, SourceSegments]:
    """The MQTT sources given labels or regions of their own (`[sources.NAME] labels`,
    `regions`), checked as `/segment`'s regions= is; a mistake stops the start with the fix."""
    segments = {}
    for source, table in config.sources.items():
        if table.labels is None and table.regions is None:
            continue
        fix = (
            f"correct [sources.{source}] in the models config: regions = {{parking = [[0.1, "
            '0.5], [0.6, 0.5], [0.6, 1], [0.1, 1]]}, labels = ["car", "person"]'
        )
        labels = tuple(table.labels) if table.labels is not None else default_labels
        if any(not label.strip() for label in labels) or len(set(labels)) != len(labels):
            raise StartupError(
                f"[sources.{source}] labels {list(labels)} has an empty or repeated label",
                fix=fix,
            )
        try:
            regions = segmenting.parse_regions(json.dumps(table.regions)) if table.regions else ()
        except BadRequest as exc:
            raise StartupError(
                f"[sources.{source}] regions: {exc.detail.replace('regions=', 'regions')}",
                fix=fix,
            ) from None
        sensors = len(labels) * (1 + len(regions))
        if sensors > MAX_SEGMENT_SENSORS:
            raise StartupError(
                f"[sources.{source}] would announce {sensors} Home Assistant sensors "
                f"({len(labels)} labels for the frame and each of {len(regions)} regions); "
                f"at most {MAX_SEGMENT_SENSORS}",
                fix="list fewer labels or regions for the source",
            )
        segments[source] = SourceSegments(labels, regions)
    return segments


def source_mapping(settings: Settings, config: ModelsConfig | None = None) -> dict[str, list[str]]:
    """Each MQTT source's model, then its classifier if it has one (`source:detector+NAME`),
    checked as `source_models` says; the models config is read once for both (`config`: read
    already)."""
    if config is None:
        config = models_config(settings)
    specs = model_specs(settings, config)
    mapping = {source: name for name, table in config.models.items() for source in table.sources}
    mapping.update(parse_sources(settings.mqtt_sources))
    served = {spec.name: spec.name for spec in specs}
    for spec in specs:
        entry = lookup(spec.model)
        for alias in (spec.model, *(entry.aliases if entry else ())):
            served.setdefault(alias, spec.name)
    resolved: dict[str, list[str]] = {}
    for source, models in mapping.items():
        names = [m.strip() for m in models.split("+")]
        if len(names) > 2 or not all(names):
            raise StartupError(
                f"MQTT source {source!r} is mapped to {models!r}",
                fix="map a source to one model, or to a detector and a classifier joined by "
                "'+' (porch:objects+our_cats)",
            )
        for model in names:
            if model in served:
                continue
            # Not served: a learned model (taught already, or to be taught), never a catalog
            # model that is simply not loaded.
            learnable = MODEL_NAME.fullmatch(model) is not None and lookup(model) is None
            if settings.data_dir is None or not learnable:
                raise StartupError(
                    f"MQTT source {source!r} is mapped to {model!r}, which is not served "
                    f"(served: {', '.join(spec.name for spec in specs)})",
                    fix="map it to a served model in EDGE_MQTT_SOURCES, add the model to "
                    "EDGE_MODEL, or set EDGE_DATA_DIR if it is a learned model",
                )
            if not (settings.data_dir / "learned" / f"{model}.learned").is_file():
                log.warning(
                    "MQTT source %s is mapped to %r, which is neither served nor a learned "
                    "model yet: its images are answered 404 until it is taught",
                    source,
                    model,
                )
        if len(names) == 2 and _catalog_task(names[0]) not in (None, "detection"):
            raise StartupError(
                f"MQTT source {source!r} maps {models!r}: {names[0]!r} is not a detector",
                fix="name the detector first and the classifier after '+' (porch:objects+our_cats)",
            )
        resolved[source] = [served.get(model, model) for model in names]
    return resolved


def _catalog_task(name: str) -> str | None:
    entry = lookup(name)
    return entry.task if entry is not None else None
