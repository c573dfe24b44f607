"""The MQTT surface's pure parts: broker URLs, topic names, routes and discovery payloads."""

from __future__ import annotations

import pytest
from aiomqtt import MqttError
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edge_server.config.mqtt import Broker, check_filter, parse_broker_url
from edge_server.mqtt import homeassistant
from edge_server.mqtt.connection import failure_reason
from edge_server.mqtt.topics import Kind, Route, Topics, source_name

pytestmark = pytest.mark.lan

TOPICS = Topics(prefix="edge-server/n1", discovery_prefix="homeassistant", frigate_prefix="frigate")


@pytest.mark.parametrize(  # the passwords are examples, not secrets
    ("url", "broker"),
    [
        ("mqtt://192.168.1.10", Broker("192.168.1.10", 1883, tls=False)),
        ("mqtts://broker.lan", Broker("broker.lan", 8883, tls=True)),
        ("mqtt://u:p@h:1884", Broker("h", 1884, tls=False, username="u", password="p")),  # noqa: S106
        ("mqtt://u:p%40ss%3Aw@h", Broker("h", 1883, tls=False, username="u", password="p@ss:w")),  # noqa: S106
        ("mqtt://[::1]:1883", Broker("::1", 1883, tls=False)),
    ],
)
def test_broker_urls_are_parsed(url: str, broker: Broker) -> None:
    """Scheme default ports, percent-encoded credentials, IPv6 hosts."""
    assert parse_broker_url(url) == broker


def test_a_broker_never_shows_its_password() -> None:
    """str() and repr() name the user and host, never the password."""
    broker = parse_broker_url("mqtt://edge:hunter2@h")
    assert str(broker) == "mqtt://edge@h:1883"
    assert "hunter2" not in repr(broker)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("door", "door"), ("Front_Door-2", "Front_Door-2")],
)
def test_safe_source_names_are_kept(text: str, expected: str) -> None:
    """Names Home Assistant accepts as they are stay as they are."""
    assert source_name(text) == expected


def test_other_source_names_are_cleaned_and_kept_distinct() -> None:
    """Topics with '/' or spaces become safe names; `a/b` and `a_b` do not collide."""
    cleaned = source_name("cameras/porch/snapshot")
    assert cleaned.startswith("cameras_porch_snapshot-") and len(cleaned) <= 64
    assert source_name("a/b") != source_name("a_b")
    assert source_name("a/b") == source_name("a/b")
    assert source_name("///").startswith("source-")


@pytest.mark.parametrize("pattern", ["a/+/c", "a/#", "#", "+", "a//b"])
def test_valid_topic_filters_pass(pattern: str) -> None:
    """MQTT's wildcard rules: whole-level `+`, a final `#`."""
    check_filter(pattern)


@pytest.mark.parametrize("pattern", ["", "a/#/c", "a/b#", "a/x+/c"])
def test_invalid_topic_filters_are_refused(pattern: str) -> None:
    """Empty filters, a `#` not last or not whole, a `+` inside a level."""
    with pytest.raises(ValueError, match=r"topic filter|whole level"):
        check_filter(pattern)


@pytest.mark.parametrize(
    ("topic", "route"),
    [
        ("edge-server/n1/classify/door", Route(Kind.classify, "door")),
        ("homeassistant/status", Route(Kind.birth)),
        ("frigate/events", Route(Kind.frigate)),
        ("edge-server/n1/result/door", Route(Kind.own)),
        ("homeassistant/sensor/x/config", Route(Kind.own)),
        ("cameras/porch/snapshot", Route(Kind.classify, source_name("cameras/porch/snapshot"))),
    ],
)
def test_messages_are_routed_by_topic(topic: str, route: Route) -> None:
    """Classify topics and extra patterns are images; our own output never is (no loops)."""
    assert TOPICS.route(topic) == route


def test_each_source_gets_a_label_sensor_a_score_sensor_and_an_event() -> None:
    """Three configs whose topics are <prefix>/<component>/<unique id>/config, one device."""
    identity = homeassistant.Identity("n1", "1.2.3", "mobilenet", "http://pi.local:8080/")
    configs = homeassistant.configs(TOPICS, identity, "door")
    assert [topic for topic, _ in configs] == [
        "homeassistant/sensor/edge_server_n1_door_label/config",
        "homeassistant/sensor/edge_server_n1_door_score/config",
        "homeassistant/event/edge_server_n1_door_classified/config",
    ]
    for topic, config in configs:
        assert topic.split("/")[2] == config["unique_id"]
        assert config["device"] == {
            "identifiers": ["edge-server-n1"],
            "name": "edge-server n1",
            "manufacturer": "edge-server",
            "model": "mobilenet",
            "sw_version": "1.2.3",
            "configuration_url": "http://pi.local:8080/",
        }
        assert config["origin"] == {"name": "edge-server", "sw_version": "1.2.3"}


@pytest.mark.parametrize(
    ("error", "connected", "reason"),
    [
        (MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=135)), False, "auth"),
        (MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=134)), False, "auth"),
        (MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=136)), False, "refused"),
        (MqttError("[Errno 111] Connection refused"), False, "network"),
        (MqttError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), False, "tls"),
        (MqttError("Disconnected during message iteration"), True, "lost"),
    ],
)
def test_connection_failures_are_told_apart(error: MqttError, connected: bool, reason: str) -> None:
    """A refused login, another refusal, no broker, an untrusted certificate, a lost link."""
    found, explained = failure_reason(error, was_connected=connected)
    assert found == reason
    if reason == "auth":
        assert "EDGE_MQTT_URL" in explained
    if reason == "tls":
        assert "EDGE_MQTT_CA_FILE" in explained
