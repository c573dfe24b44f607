"""Which models to serve: EDGE_MODEL's list, aliases, the models config file, and its mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_server.config.settings import Settings
from edge_server.core.errors import StartupError
from edge_server.core.imaging import ResizeMode
from edge_server.core.threads import available_cpus
from edge_server.serving.catalog import load_catalog, lookup
from edge_server.serving.specs import (
    model_specs,
    read_config,
    source_classifiers,
    source_fits,
    source_models,
)

BIRDS = "mobilenet_v2_1.0_224_inat_bird_quant"
DEFAULT = "mobilenet_v2_1.0_224_quant"


def _settings(tmp_path: Path, config: str | None = None, **values: object) -> Settings:
    if config is not None:
        (tmp_path / "models.toml").write_text(config)
        values["models_config"] = tmp_path / "models.toml"
    return Settings(models_dir=tmp_path, **values)  # type: ignore[arg-type]  # checked by pydantic


def test_catalog_aliases_are_unique_and_name_no_other_model() -> None:
    """Every alias stands for one catalog model and is not another model's name."""
    catalog = load_catalog()
    aliases = [alias for entry in catalog.values() for alias in entry.aliases]
    assert len(aliases) == len(set(aliases))
    assert not set(aliases) & set(catalog)
    birds = lookup("birds")
    assert birds is not None and birds.name == BIRDS


def test_one_model_is_the_default_as_before(tmp_path: Path) -> None:
    """No list, no config: the one default model, with every CPU's thread setting."""
    (spec,) = model_specs(_settings(tmp_path))
    assert spec.name == DEFAULT and spec.options.num_threads == available_cpus()


def test_a_list_with_aliases_and_paths_keeps_its_order(tmp_path: Path) -> None:
    """EDGE_MODEL=birds,default,x.tflite: three models named by catalog name or file stem."""
    specs = model_specs(_settings(tmp_path, model=f"birds, {DEFAULT},{tmp_path}/mine.tflite"))
    assert [s.name for s in specs] == [BIRDS, DEFAULT, "mine"]
    assert specs[0].model == "birds"


def test_every_model_gets_every_cpu_however_many_are_served(tmp_path: Path) -> None:
    """Two models do not split the CPUs: each keeps all-core threads and auto replicas
    (which one an invoke takes is decided as it starts); EDGE_NUM_THREADS and EDGE_REPLICAS
    still apply to every model."""
    both = model_specs(_settings(tmp_path, model=f"birds,{DEFAULT}"))
    (alone,) = model_specs(_settings(tmp_path))
    assert {(s.options.num_threads, s.options.replicas) for s in both} == {
        (available_cpus(), "auto")
    }
    assert (alone.options.num_threads, alone.options.replicas) == (available_cpus(), "auto")
    fixed = model_specs(_settings(tmp_path, model=f"birds,{DEFAULT}", num_threads=3, replicas=2))
    assert {(s.options.num_threads, s.options.replicas) for s in fixed} == {(3, 2)}


def test_the_config_file_names_models_and_sets_their_options(tmp_path: Path) -> None:
    """Tables give names and options; `default` goes first; unset options follow EDGE_*."""
    config = f"""
default = "feeder"
[models.doorbell]
model = "{DEFAULT}"
[models.feeder]
model = "birds"
resize = "center-crop"
num_threads = 1
labels = "birds.txt"
"""
    specs = model_specs(_settings(tmp_path, config, resize="letterbox"))
    assert [s.name for s in specs] == ["feeder", "doorbell"]
    feeder_spec, doorbell_spec = specs
    feeder, doorbell = feeder_spec.options, doorbell_spec.options
    assert feeder_spec.model == "birds" and feeder.resize is ResizeMode.center_crop
    assert feeder.num_threads == 1 and feeder.labels == tmp_path / "birds.txt"
    assert doorbell.resize is ResizeMode.letterbox


def test_edge_model_picks_from_the_config_file(tmp_path: Path) -> None:
    """EDGE_MODEL lists config names, catalog names or both; the config sets their options."""
    config = '[models.feeder]\nmodel = "birds"\nresize = "center-crop"\n'
    specs = model_specs(_settings(tmp_path, config, model=f"{DEFAULT},feeder"))
    assert [s.name for s in specs] == [DEFAULT, "feeder"]
    assert specs[1].options.resize is ResizeMode.center_crop


@pytest.mark.parametrize(
    ("model", "config", "values", "fit"),
    [
        (DEFAULT, None, {}, ResizeMode.center_crop),  # the catalog: an ImageNet classifier
        ("objects", None, {}, ResizeMode.squash),  # the SSD detector
        ("embedder", None, {}, ResizeMode.squash),  # Coral's imprinting feeds it squashed
        ("mine.tflite", None, {}, ResizeMode.squash),  # no catalog entry
        (DEFAULT, None, {"resize": "letterbox"}, ResizeMode.letterbox),  # EDGE_RESIZE set
        ("mine.tflite", None, {"resize": "center-crop"}, ResizeMode.center_crop),
        ("door", '[models.door]\nmodel = "imagenet"\n', {}, ResizeMode.center_crop),
        (
            "door",
            '[models.door]\nmodel = "imagenet"\nresize = "squash"\n',
            {"resize": "letterbox"},
            ResizeMode.squash,  # the table over EDGE_RESIZE
        ),
    ],
    ids=[
        "catalog",
        "detector",
        "embedder",
        "file",
        "setting",
        "file-setting",
        "table",
        "table-wins",
    ],
)
def test_a_models_fit_follows_the_precedence(
    tmp_path: Path, model: str, config: str | None, values: dict[str, object], fit: ResizeMode
) -> None:
    """The table's resize, then EDGE_RESIZE when set, then the catalog's fit, then squash."""
    (spec,) = model_specs(_settings(tmp_path, config, model=model, **values))
    assert spec.options.resize is fit


def test_every_catalog_model_declares_how_it_was_fed() -> None:
    """Each entry has a fit; the ImageNet classifiers the centre crop they were evaluated with,
    the detector and the embedder squash (as their training and Coral's imprinting feed them)."""
    catalog = load_catalog()
    fits = {entry.name: entry.resize for entry in catalog.values()}
    imagenet = {n for n, e in catalog.items() if e.labels.startswith("ImageNet")}
    assert len(imagenet) == 5
    assert {fits[n] for n in imagenet} == {ResizeMode.center_crop}
    assert fits["ssd_mobilenet_v1_coco_quant"] is ResizeMode.squash
    assert fits["mobilenet_v1_1.0_224_quant_embedding_extractor"] is ResizeMode.squash


def test_sources_may_have_their_own_fit(tmp_path: Path) -> None:
    """`[sources.NAME] resize` gives an MQTT source its fit; a source without one has none."""
    config = '[sources.driveway]\nresize = "squash"\n[sources.feeder]\n'
    fits = source_fits(read_config(_write(tmp_path, config)))
    assert fits == {"driveway": ResizeMode.squash}


def _write(tmp_path: Path, config: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(config)
    return path


@pytest.mark.parametrize(
    ("config", "values", "message"),
    [
        ("[models.a\n", {}, "is not valid TOML"),
        ('[models.a]\nmodel = "birds"\nthreads = 2\n', {}, "models.a.threads: Extra inputs"),
        ('[models.a]\nmodel = "birds"\nresize = "stretch"\n', {}, "models.a.resize"),
        ('default = "b"\n[models.a]\nmodel = "birds"\n', {}, "default 'b' is not one of"),
        ('[models.birds]\nmodel = "tiny"\n', {}, "'birds' is the catalog's name"),
        ('[models."my model"]\nmodel = "birds"\n', {}, "cannot be used in URLs"),
        (None, {"model": "birds," + BIRDS}, "both stand for the model named"),
        (None, {"model": "birds,resnet50"}, "unknown model 'resnet50'"),
        (None, {"model": "birds,tiny,imagenet", "max_models": 2}, "at most 2 may be loaded"),
        (None, {"model": "birds,tiny", "labels": "x.txt"}, "EDGE_LABELS is set but several"),
        (None, {"model": " , "}, "names no model"),
        ('[sources.porch]\nresize = "stretch"\n', {}, "sources.porch.resize"),
        ('[sources.porch]\nmodel = "birds"\n', {}, "sources.porch.model: Extra inputs"),
    ],
    ids=[
        "toml",
        "unknown-option",
        "bad-option",
        "default",
        "alias-clash",
        "bad-name",
        "duplicate",
        "unknown-name",
        "too-many",
        "labels",
        "empty",
        "bad-source-fit",
        "source-option",
    ],
)
def test_config_mistakes_stop_the_start_with_a_fix(
    tmp_path: Path, config: str | None, values: dict[str, object], message: str
) -> None:
    """Each mistake is a StartupError that names it and says how to fix it."""
    with pytest.raises(StartupError) as caught:
        model_specs(_settings(tmp_path, config, **values))
    assert message in caught.value.problem
    assert caught.value.fix


def test_a_missing_config_file_is_a_settings_error(tmp_path: Path) -> None:
    """EDGE_MODELS_CONFIG must name a file that exists (checked with the other settings)."""
    with pytest.raises(ValueError, match="models_config"):
        Settings(models_config=tmp_path / "missing.toml")


def test_unreadable_config_bytes_are_refused(tmp_path: Path) -> None:
    """A config that is not UTF-8 text is refused like any other bad TOML."""
    (tmp_path / "models.toml").write_bytes(b"\xff\xfe[models]")
    with pytest.raises(StartupError, match="not valid TOML"):
        read_config(tmp_path / "models.toml")


def test_mqtt_sources_come_from_the_config_and_the_environment(tmp_path: Path) -> None:
    """`sources` in a [models.NAME] table and EDGE_MQTT_SOURCES map sources to served names."""
    config = tmp_path / "models.toml"
    config.write_text(
        '[models.doorbell]\nmodel = "objects"\nsources = ["front_door", "porch"]\n'
        '[models.feeder]\nmodel = "birds"\n'
    )
    settings = Settings(models_config=config, mqtt_sources="porch:feeder,garden:feeder")
    assert source_models(settings) == {
        "front_door": "doorbell",
        "porch": "feeder",
        "garden": "feeder",
    }
    aliases = Settings(model="objects,birds", mqtt_sources="door:objects,feeder:birds")
    assert source_models(aliases) == {
        "door": "ssd_mobilenet_v1_coco_quant",
        "feeder": "mobilenet_v2_1.0_224_inat_bird_quant",
    }


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("front_door", "source:model"),
        ("a:objects,a:birds", "twice"),
        (":objects", "source:model"),
        ("cams/+/snapshot:objects", "topic filter"),
    ],
)
def test_malformed_mqtt_sources_are_a_settings_error(value: str, problem: str) -> None:
    """A pair without both halves, or a source given twice, is refused with the reason."""
    with pytest.raises(ValueError, match=problem):
        Settings(mqtt_sources=value)


def test_a_source_mapped_to_an_unserved_model_is_refused() -> None:
    """The start stops naming the source, the model and what is served."""
    with pytest.raises(StartupError, match="'garage' is mapped to 'garage_door'"):
        source_models(Settings(model="objects", mqtt_sources="garage:garage_door"))


def test_sources_may_name_learned_models_and_a_classifier_for_each_object(tmp_path: Path) -> None:
    """With a data folder, an unserved plain name is a learned model (taught now or later);
    `detector+classifier` gives the source its sub-label model."""
    settings = Settings(
        model="objects,tiny",
        data_dir=tmp_path,
        mqtt_sources="garage:garage_door,garden:objects+our_pets,hall:objects+tiny",
    )
    assert source_models(settings) == {
        "garage": "garage_door",
        "garden": "ssd_mobilenet_v1_coco_quant",
        "hall": "ssd_mobilenet_v1_coco_quant",
    }
    assert source_classifiers(settings) == {
        "garden": "our_pets",
        "hall": "mobilenet_v1_0.25_128_quant",
    }


@pytest.mark.parametrize(
    ("sources", "problem"),
    [
        ("door:birds", "not served"),  # a catalog model that is not loaded is no learned one
        ("door:tiny+objects", "not a detector"),
        ("door:objects+tiny+birds", "a detector and a classifier"),
        ("door:objects+", "a detector and a classifier"),
    ],
)
def test_source_mappings_that_cannot_work_stop_the_start(
    tmp_path: Path, sources: str, problem: str
) -> None:
    """Even with learning on, an unserved catalog model, a classifier before '+', or more
    than two models stop the start with the fix."""
    settings = Settings(model="objects,tiny", data_dir=tmp_path, mqtt_sources=sources)
    with pytest.raises(StartupError) as caught:
        source_models(settings)
    assert problem in f"{caught.value.problem} {caught.value.fix}"
