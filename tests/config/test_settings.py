"""Settings: every EDGE_* name and default as before the sections, lists parsed once."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from edge_server.config.mqtt import MqttSettings
from edge_server.config.settings import SECTIONS, Settings
from edge_server.core.threads import available_cpus

# Every setting and its default as the environment would spell it, from before the settings
# were split into sections: a name or a default that changes breaks someone's configuration.
DEFAULTS: dict[str, object] = {
    "model": "mobilenet_v2_1.0_224_quant",
    "models_config": None,
    "max_models": 4,
    "models_dir": "models",
    "models_from": None,
    "labels": None,
    "runtime": "auto",
    "replicas": "auto",
    "decode_threads": None,
    "resize": None,
    "output": "auto",
    "input_mean": 127.5,
    "input_std": 127.5,
    "host": "127.0.0.1",
    "port": 8080,
    "max_upload_bytes": 20971520,
    "max_image_pixels": 50000000,
    "min_image_side": 16,
    "max_batch_images": 16,
    "default_top_k": 5,
    "min_score": 0.4,
    "mqtt_sources": "",
    "mqtt_count_labels": "person,car,cat,dog,bird",
    "max_detections": 20,
    "max_queue": 64,
    "request_timeout": 30.0,
    "header_timeout": 10.0,
    "body_timeout": 10.0,
    "linger_bytes": 64 * 1024 * 1024,
    "linger_timeout": 30.0,
    "keep_alive_timeout": 5,
    "max_connections": 1000,
    "decode_memory_mb": None,
    "shutdown_timeout": 10.0,
    "api_key": None,
    "api_key_file": None,
    "metrics_require_key": False,
    "cors_origins": "",
    "sysfs_root": "/",
    "log_level": "info",
    "access_log": "off",
    "node_id": None,
    "mdns": "auto",
    "mdns_interfaces": "",
    "mdns_name": None,
    "public_url": None,
    "mqtt_url": None,
    "mqtt_ca_file": None,
    "mqtt_prefix": None,
    "mqtt_discovery_prefix": "homeassistant",
    "mqtt_discovery": True,
    "mqtt_client_id": None,
    "mqtt_protocol": "3.1.1",
    "mqtt_topics": "",
    "mqtt_max_pending": 8,
    "mqtt_reconnect_max": 30.0,
    "frigate_url": None,
    "frigate_topic_prefix": "frigate",
    "frigate_cameras": "",
    "frigate_labels": "bird",
    "frigate_model": "birds",
    "frigate_sub_label": True,
    "frigate_min_score": 0.7,
    "data_dir": None,
    "embedder": "embedder",
    "learned_max_models": 20,
    "learned_max_classes": 50,
    "learned_max_examples": 200,
    "learned_max_label": 64,
    "learned_max_import_bytes": 128 * 1024 * 1024,
    "cameras": None,
    "camera_events": "edge",
    "camera_webhooks": "",
    "faces": True,
    "face_models_dir": None,
    "face_detector": "full",
    "face_min_score": None,
    "face_embedder": None,
    "face_threshold": 0.6,
    "face_calibration": True,
    "face_calibration_margin": 0.05,
    "face_matching": "nearest",
    "face_min_confidence": 0.67,
    "face_workers": None,
    "face_max_people": 1000,
    "face_max_photos": 100,
    "face_max_import_bytes": 64 * 1024 * 1024,
}


def _spelled(value: object) -> object:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, SecretStr):
        return "***"
    if hasattr(value, "value"):  # an enum
        return value.value
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def test_every_name_and_default_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """The composed Settings has exactly these fields, each with its default."""
    for name in DEFAULTS:
        monkeypatch.delenv(f"EDGE_{name.upper()}", raising=False)
    settings = Settings()
    assert set(Settings.model_fields) == {*DEFAULTS, "num_threads"}
    assert {name: _spelled(getattr(settings, name)) for name in DEFAULTS} == DEFAULTS
    assert settings.num_threads == available_cpus()


def test_comma_lists_are_parsed_once_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """EDGE_MODEL, EDGE_CORS_ORIGINS, EDGE_MQTT_TOPICS... arrive as lists, blanks dropped."""
    monkeypatch.setenv("EDGE_MODEL", " birds , tiny,,")
    monkeypatch.setenv("EDGE_CORS_ORIGINS", "http://a.lan, http://b.lan")
    monkeypatch.setenv("EDGE_MQTT_TOPICS", "cams/+/snapshot,doorbell/image")
    monkeypatch.setenv("EDGE_MQTT_URL", "mqtt://broker")
    settings = Settings()
    assert settings.model == ["birds", "tiny"]
    assert settings.cors_origins == ["http://a.lan", "http://b.lan"]
    assert settings.mqtt_topics == ["cams/+/snapshot", "doorbell/image"]


def test_a_flag_value_is_split_like_the_environment() -> None:
    """A comma-separated string given directly (the CLI's flags) is split the same way."""
    assert Settings(frigate_cameras="feeder, garden").frigate_cameras == ["feeder", "garden"]
    assert Settings(mdns_interfaces="").mdns_interfaces == []


def test_a_section_is_its_own_model() -> None:
    """settings.section(MqttSettings) holds that section's values, and only those."""
    settings = Settings(mqtt_url="mqtt://broker", frigate_labels="bird,cat")
    section = settings.section(MqttSettings)
    assert type(section) is MqttSettings
    assert section.frigate_labels == ["bird", "cat"]
    assert not hasattr(section, "port")


def test_no_section_validator_is_shadowed_by_another() -> None:
    """Each section's validators run in the composed Settings (same-named ones would hide)."""
    names = [
        name for section in SECTIONS for name in section.__pydantic_decorators__.field_validators
    ]
    assert len(names) == len(set(names))
    assert set(names) <= set(Settings.__pydantic_decorators__.field_validators)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"public_url": "pi.local:8080"}, "public_url"),
        ({"mqtt_url": "mqtt://b", "frigate_url": "frigate:5000"}, "frigate_url"),
        ({"log_level": "loud"}, "log_level"),
        ({"mdns_name": "a.b"}, "mdns_name"),
    ],
)
def test_each_section_checks_its_fields_in_the_whole(values: dict[str, str], field: str) -> None:
    """A bad value in any section stops Settings, naming the field."""
    with pytest.raises(ValueError, match=field):
        Settings(**values)  # type: ignore[arg-type]  # strings, as the environment gives
