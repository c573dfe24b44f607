"""The MQTT and Frigate settings, the broker URL and the topic grammar they are checked with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, FilePath, SecretStr, ValidationInfo, field_validator

from .lan import check_http_url
from .lists import CommaList

SCHEMES = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class Broker:
    """Where the broker is and how to log in; the password never appears in `str()`."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"

    def __repr__(self) -> str:
        return f"Broker({self})"


def parse_broker_url(url: str) -> Broker:
    """The broker of an `mqtt://` or `mqtts://` URL; ValueError says what is wrong.

    User and password may be percent-encoded (a `@` or `:` in a password is `%40`, `%3A`).
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:  # a port that is not a number, or out of range
        raise ValueError(f"not a valid broker URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(
            "must start with mqtt:// or mqtts:// (e.g. mqtt://user:password@192.168.1.10:1883)"
        )
    if not parts.hostname:
        raise ValueError("names no broker host (e.g. mqtt://192.168.1.10:1883)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be only scheme, user, password, host and port")
    return Broker(
        host=parts.hostname,
        port=port or SCHEMES[scheme],
        tls=scheme == "mqtts",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def check_filter(pattern: str) -> None:
    """Raise ValueError unless `pattern` is a valid MQTT topic filter."""
    if not pattern or "\0" in pattern:
        raise ValueError(f"{pattern!r} is not a topic filter")
    levels = pattern.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"{pattern!r}: '#' must be a whole level, and the last one")
        if "+" in level and level != "+":
            raise ValueError(f"{pattern!r}: '+' must be a whole level")


def check_prefix(prefix: str) -> None:
    """Raise ValueError unless `prefix` can start topic names (no wildcards, no outer '/')."""
    if not prefix or "+" in prefix or "#" in prefix or "\0" in prefix:
        raise ValueError(f"{prefix!r} cannot start topic names (empty, or with + or #)")
    if prefix.startswith("/") or prefix.endswith("/"):
        raise ValueError(f"{prefix!r}: no leading or trailing '/'")


def parse_sources(pairs: list[str]) -> dict[str, str]:
    """`source:model` pairs as a mapping; ValueError for a pair without both halves or a
    source given twice. The model is split off at the last ':' (a topic may hold one)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        source, _, model = pair.rpartition(":")
        source, model = source.strip(), model.strip()
        if not source or not model:
            raise ValueError(f"{pair!r} is not source:model (e.g. front_door:objects,feeder:birds)")
        if "+" in source or "#" in source:
            raise ValueError(
                f"{source!r} is a topic filter; map each source (or concrete topic) by name"
            )
        if source in mapping:
            raise ValueError(f"source {source!r} is given twice")
        mapping[source] = model
    return mapping


class MqttSettings(BaseModel):
    """The MQTT surface (the `mqtt` extra; off unless a broker is configured) and the Frigate
    bridge (on when frigate_url is set; needs MQTT)."""

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
    mqtt_topics: CommaList = Field(
        [],
        description="More topic filters whose messages are images to classify, comma-separated "
        "(e.g. a camera's snapshot topic).",
    )
    mqtt_sources: CommaList = Field(
        [],
        description="Which model answers each source, comma-separated source:model pairs "
        "(e.g. front_door:objects,feeder:birds); a source is the last level of "
        "<prefix>/classify/<source> or a topic an EDGE_MQTT_TOPICS filter matches (not the "
        "filter). Others get the default model.",
    )
    mqtt_count_labels: CommaList = Field(
        ["person", "car", "cat", "dog", "bird"],
        description="Labels a detecting source gets a Home Assistant count sensor for, and a "
        "segmenting source a '% of frame' sensor for (unless its [sources.NAME] labels says).",
    )
    mqtt_max_pending: Annotated[int, Field(ge=1, le=1000)] = Field(
        8,
        description="Image messages held at once (waiting or being classified); more are dropped.",
    )
    mqtt_reconnect_max: Annotated[float, Field(ge=0.1, le=3600)] = Field(
        30.0, description="Longest wait between reconnection attempts, in seconds."
    )
    frigate_url: str | None = Field(
        None, description="Frigate's HTTP address (e.g. http://frigate:5000); unset = bridge off."
    )
    frigate_topic_prefix: str = Field("frigate", description="Frigate's MQTT topic prefix.")
    frigate_cameras: CommaList = Field(
        [], description="Frigate cameras to follow, comma-separated; empty = all."
    )
    frigate_labels: CommaList = Field(
        ["bird"], description="Frigate object labels to classify, comma-separated."
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
    def _topic_filters(cls, value: list[str]) -> list[str]:
        for pattern in value:
            check_filter(pattern)
        return value

    @field_validator("mqtt_sources")
    @classmethod
    def _source_pairs(cls, value: list[str]) -> list[str]:
        parse_sources(value)  # ValueError names the bad pair
        return value

    @field_validator("mqtt_prefix", "mqtt_discovery_prefix", "frigate_topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str | None) -> str | None:
        if value is not None:
            check_prefix(value)
        return value

    @field_validator("frigate_url")
    @classmethod
    def _frigate_url_is_http(cls, value: str | None) -> str | None:
        return check_http_url(value)

    @field_validator("frigate_url")
    @classmethod
    def _frigate_needs_mqtt(cls, value: str | None, info: ValidationInfo) -> str | None:
        # (mqtt_url is absent from info.data when it failed its own check: no second error)
        if value is not None and "mqtt_url" in info.data and info.data["mqtt_url"] is None:
            raise ValueError("needs EDGE_MQTT_URL too: Frigate's events come by MQTT")
        return value
