"""Topic names and source names: where each message goes and what it is.

The grammar of topic filters and prefixes is checked with the settings (config/mqtt.py).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum

# Home Assistant accepts only these characters in discovery topic levels and unique ids.
_SAFE_SOURCE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def source_name(text: str) -> str:
    """A source name safe in topics and Home Assistant ids; distinct texts stay distinct.

    A safe name is kept as it is; anything else (a topic with '/', spaces, accents) is cleaned
    and given a short hash of the original, so `a/b` and `a_b` do not share result topics.
    """
    if _SAFE_SOURCE.fullmatch(text):
        return text
    cleaned = _UNSAFE.sub("_", text).strip("_")[:48] or "source"
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{cleaned}-{digest}"


class Kind(StrEnum):
    """What an incoming message is, by its topic."""

    classify = "classify"  # an image to classify
    birth = "birth"  # Home Assistant's status
    frigate = "frigate"  # a Frigate event
    own = "own"  # one of our own topics matched by a broad filter: never classified


@dataclass(frozen=True)
class Route:
    """Where an incoming message goes: its kind and, for images, the source it came from."""

    kind: Kind
    source: str | None = None


@dataclass(frozen=True)
class Topics:
    """The topics of one edge-server: under its prefix, and Home Assistant's."""

    prefix: str
    discovery_prefix: str
    frigate_prefix: str | None = None  # set when the Frigate bridge is on

    @property
    def status(self) -> str:
        """Availability: a retained `online`, and `offline` by Last Will or on shutdown."""
        return f"{self.prefix}/status"

    @property
    def classify_filter(self) -> str:
        return f"{self.prefix}/classify/+"

    @property
    def birth(self) -> str:
        return f"{self.discovery_prefix}/status"

    @property
    def frigate_events(self) -> str | None:
        return None if self.frigate_prefix is None else f"{self.frigate_prefix}/events"

    def result(self, source: str) -> str:
        return f"{self.prefix}/result/{source}"

    def error(self, source: str) -> str:
        return f"{self.prefix}/error/{source}"

    def event(self, source: str) -> str:
        return f"{self.prefix}/event/{source}"

    def image(self, source: str) -> str:
        """A segmenting source's latest picture, raw image bytes (Home Assistant's image)."""
        return f"{self.prefix}/image/{source}"

    def discovery(self, component: str, unique_id: str) -> str:
        # Home Assistant's advice: the unique id as object id, and no node id level.
        return f"{self.discovery_prefix}/{component}/{unique_id}/config"

    def route(self, topic: str) -> Route:
        """What a message on `topic` is (the client subscribes only to what it handles)."""
        classify_level = f"{self.prefix}/classify/"
        if topic.startswith(classify_level) and "/" not in topic[len(classify_level) :]:
            return Route(Kind.classify, source_name(topic[len(classify_level) :]))
        if topic == self.birth:
            return Route(Kind.birth)
        if topic == self.frigate_events:
            return Route(Kind.frigate)
        if topic.startswith((f"{self.prefix}/", f"{self.discovery_prefix}/")):
            return Route(Kind.own)  # results, errors and configs would loop back forever
        return Route(Kind.classify, source_name(topic))
