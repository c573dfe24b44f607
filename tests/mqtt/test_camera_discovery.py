"""The cameras' MQTT topics and Home Assistant discovery configs (pure, no broker)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from edge_server.mqtt import camera_discovery, homeassistant
from edge_server.mqtt.camera_topics import CameraTopics
from edge_server.mqtt.topics import Kind, Topics

pytestmark = pytest.mark.lan

TOPICS = Topics(prefix="edge-server/n1", discovery_prefix="homeassistant")
IDENTITY = homeassistant.Identity("n1", "1.2.3", "mobilenet", "http://pi.local:8080/")


def _render(template: str, **values: Any) -> str:
    """A template as Home Assistant renders it (Jinja2's immutable sandbox)."""
    return ImmutableSandboxedEnvironment(autoescape=True).from_string(template).render(**values)


@pytest.mark.parametrize(
    ("mode", "events", "count", "snapshot", "motion"),
    [
        (
            "edge",
            "edge-server/n1/events",
            "edge-server/n1/front/person",
            "edge-server/n1/front/person/snapshot",
            "edge-server/n1/front/motion",
        ),
        (
            "frigate",
            "frigate/events",
            "frigate/front/person",
            "frigate/front/person/snapshot",
            "frigate/front/motion",
        ),
    ],
)
def test_camera_topics_follow_frigates_layout(
    mode: str, events: str, count: str, snapshot: str, motion: str
) -> None:
    """Events, counts, snapshots and motion under our prefix, or Frigate's with `frigate`."""
    topics = CameraTopics.of(TOPICS, mode, "frigate")
    assert topics.events == events
    assert topics.count("front", "person") == count
    assert topics.snapshot("front", "person") == snapshot
    assert topics.motion("front") == motion
    # Ours either way: Home Assistant's image, diagnostics and event entity.
    assert topics.latest_snapshot("front") == "edge-server/n1/front/snapshot"
    assert topics.diagnostics("front") == "edge-server/n1/front/diagnostics"
    assert topics.event("front") == "edge-server/n1/event/front"


def test_camera_messages_under_our_prefix_are_never_classified() -> None:
    """A broad EDGE_MQTT_TOPICS filter that matches our camera topics does not loop them back."""
    topics = CameraTopics.of(TOPICS, "edge", "frigate")
    for topic in (topics.count("front", "person"), topics.snapshot("front", "person")):
        assert TOPICS.route(topic).kind is Kind.own


def test_each_camera_is_a_device_with_motion_occupancy_counts_image_event_and_diagnostics() -> None:
    """One device per camera (via the service's), and each entity reads the topic it should."""
    topics = CameraTopics.of(TOPICS, "frigate", "frigate")
    configs = dict(camera_discovery.configs(topics, IDENTITY, "front", ["person", "traffic light"]))
    by_id = {config["unique_id"]: (topic, config) for topic, config in configs.items()}
    prefix = "edge_server_n1_camera_front_"
    assert sorted(key.removeprefix(prefix) for key in by_id) == sorted(
        [
            "motion",
            "person_occupancy",
            "person_count",
            "traffic_light_occupancy",
            "traffic_light_count",
            "snapshot",
            "object",
            "fps",
            "connected",
        ]
    )
    for topic, config in configs.items():
        assert topic == f"homeassistant/{topic.split('/')[1]}/{config['unique_id']}/config"
        assert config["device"]["identifiers"] == ["edge-server-n1-camera-front"]
        assert config["device"]["via_device"] == "edge-server-n1"
        assert config["availability"][0]["topic"] == "edge-server/n1/status"
    motion = by_id[prefix + "motion"][1]
    assert (motion["state_topic"], motion["device_class"]) == ("frigate/front/motion", "motion")
    occupancy = by_id[prefix + "person_occupancy"][1]
    assert occupancy["state_topic"] == "frigate/front/person"
    assert [_render(occupancy["value_template"], value=v) for v in ("0", "2", "")] == [
        "OFF",
        "ON",
        "OFF",
    ]
    assert by_id[prefix + "person_count"][1]["state_topic"] == "frigate/front/person"
    assert by_id[prefix + "snapshot"][0].startswith("homeassistant/image/")
    assert by_id[prefix + "snapshot"][1]["image_topic"] == "edge-server/n1/front/snapshot"
    assert by_id[prefix + "object"][1]["event_types"] == ["new", "end"]
    diagnostics = {"fps_analysed": 4.8, "connected": True}
    fps = by_id[prefix + "fps"][1]
    connected = by_id[prefix + "connected"][1]
    assert float(_render(fps["value_template"], value_json=diagnostics)) == 4.8
    assert _render(connected["value_template"], value_json=diagnostics) == "ON"
    assert _render(connected["value_template"], value_json={"connected": False}) == "OFF"
    assert json.dumps(configs)  # every config is JSON as published


@pytest.mark.parametrize("mode", ["edge", "frigate"])
def test_a_camera_naming_people_has_a_last_recognised_face_sensor(mode: str) -> None:
    """Face updates go to Frigate's tracked_object_update (under the mode's base); with faces
    on, a "last recognised face" sensor reads our retained face topic: the name its state,
    the score, time and event id its attributes. Without faces, no such sensor."""
    topics = CameraTopics.of(TOPICS, mode, "frigate")
    base = "frigate" if mode == "frigate" else "edge-server/n1"
    assert topics.tracked_object_update == f"{base}/tracked_object_update"
    assert topics.face("front") == "edge-server/n1/front/face"
    plain = dict(camera_discovery.configs(topics, IDENTITY, "front", ["person"]))
    assert not [c for c in plain.values() if c["unique_id"].endswith("_face")]
    configs = dict(camera_discovery.configs(topics, IDENTITY, "front", ["person"], faces=True))
    [(topic, face)] = [(t, c) for t, c in configs.items() if c["unique_id"].endswith("_face")]
    assert topic == f"homeassistant/sensor/{face['unique_id']}/config"
    assert face["name"] == "last recognised face"
    assert face["state_topic"] == face["json_attributes_topic"] == "edge-server/n1/front/face"
    last = {"name": "alice", "score": 0.83, "time": 1765070001.2, "event_id": "1765070000.1-ab"}
    assert _render(face["value_template"], value_json=last) == "alice"
    attributes = json.loads(_render(face["json_attributes_template"], value_json=last))
    assert attributes == {"score": 0.83, "time": 1765070001.2, "event_id": "1765070000.1-ab"}
