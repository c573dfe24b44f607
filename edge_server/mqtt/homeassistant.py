"""Home Assistant MQTT discovery: the config payloads that make each source show up by itself.

Per classifying source, three entities of one device (this edge-server): a `sensor` whose state
is the top label, a `sensor` for its score, and an `event` entity for automations. Per detecting
source, a count `sensor` for each label the user lists (EDGE_MQTT_COUNT_LABELS), one for all
objects, and the `event` entity. Per segmenting source, a "% of frame" sensor for each label it
lists (its `[sources.NAME] labels`, else EDGE_MQTT_COUNT_LABELS), one per label for each of its
named regions (at most `specs.MAX_SEGMENT_SENSORS` in all, checked at start-up), an `image`
entity showing its latest picture, and the `event` entity. The device also has a diagnostic
connectivity sensor on the availability topic, so "offline" shows as a state rather than only
as unavailable. Single-component discovery (one retained config per entity) because sources
appear as images arrive; every config carries the full device and origin blocks and the
availability topic. No `object_id` (deprecated by Home Assistant 2025.10): entity ids follow
from the device and entity names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..core.detection import Task
from ..serving.segment_uploads import PICTURE_TYPE
from .payloads import DETECTED, EVENT_TYPE, SEGMENTED
from .topics import Topics

# Home Assistant refuses sensor states over 255 characters; the label is cut in the template
# so the published result stays the full `/classify` answer.
_LABEL = "{{ (value_json.predictions[0].label if value_json.predictions else 'none')[:255] }}"
_SCORE = "{{ (value_json.predictions[0].score * 100) | round(1) if value_json.predictions else 0 }}"
_ATTRIBUTES = (
    "{{ {'score': value_json.predictions[0].score if value_json.predictions else none, "
    "'top_k': value_json.predictions, 'model': value_json.model.name, "
    "'topic': value_json.topic} | tojson }}"
)


_SAFE = re.compile(r"[^A-Za-z0-9_]+")  # a label inside a unique id ("traffic light")


@dataclass(frozen=True)
class Identity:
    """Who announces: the node id, the software version, the model and the page's address."""

    node: str
    version: str
    model: str
    configuration_url: str


def device(identity: Identity) -> dict[str, Any]:
    """The one device block every entity of this edge-server shares."""
    return {
        "identifiers": [f"edge-server-{identity.node}"],
        "name": f"edge-server {identity.node}",
        "manufacturer": "edge-server",
        "model": identity.model,
        "sw_version": identity.version,
        "configuration_url": identity.configuration_url,
    }


def origin(identity: Identity) -> dict[str, Any]:
    """The software that publishes the configs (shown in Home Assistant's MQTT info)."""
    return {"name": "edge-server", "sw_version": identity.version}


def unique_id(identity: Identity, source: str, entity: str) -> str:
    return f"edge_server_{identity.node}_{source}_{entity}".replace("-", "_")


def _common(topics: Topics, identity: Identity) -> dict[str, Any]:
    return {
        "availability": [
            {
                "topic": topics.status,
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        "device": device(identity),
        "origin": origin(identity),
        "qos": 1,
    }


def status_config(topics: Topics, identity: Identity) -> tuple[str, dict[str, Any]]:
    """The device's diagnostic connectivity sensor: `online` or `offline` (the Last Will)."""
    status_id = unique_id(identity, "service", "status")
    return topics.discovery("binary_sensor", status_id), {
        "name": "status",
        "unique_id": status_id,
        "state_topic": topics.status,
        "payload_on": "online",
        "payload_off": "offline",
        "device_class": "connectivity",
        "entity_category": "diagnostic",
        "device": device(identity),
        "origin": origin(identity),
        "qos": 1,
    }


def configs(
    topics: Topics,
    identity: Identity,
    source: str,
    task: Task = Task.classification,
    count_labels: tuple[str, ...] = (),
    regions: tuple[str, ...] = (),
) -> list[tuple[str, dict[str, Any]]]:
    """(config topic, payload) of the entities of one source: `count_labels` are a detecting
    or segmenting source's labels, `regions` the names of a segmenting source's regions."""
    common = _common(topics, identity)
    if task is Task.detection:
        return detection_configs(topics, identity, source, count_labels)
    if task is Task.segmentation:
        return segmentation_configs(topics, identity, source, count_labels, regions)
    label_id = unique_id(identity, source, "label")
    score_id = unique_id(identity, source, "score")
    event_id = unique_id(identity, source, "classified")
    return [
        (
            topics.discovery("sensor", label_id),
            {
                "name": f"{source} label",
                "unique_id": label_id,
                "state_topic": topics.result(source),
                "value_template": _LABEL,
                "json_attributes_topic": topics.result(source),
                "json_attributes_template": _ATTRIBUTES,
                "icon": "mdi:image-search-outline",
                **common,
            },
        ),
        (
            topics.discovery("sensor", score_id),
            {
                "name": f"{source} score",
                "unique_id": score_id,
                "state_topic": topics.result(source),
                "value_template": _SCORE,
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "suggested_display_precision": 1,
                "icon": "mdi:percent-outline",
                **common,
            },
        ),
        (
            topics.discovery("event", event_id),
            {
                "name": f"{source} classified",
                "unique_id": event_id,
                "state_topic": topics.event(source),
                "event_types": [EVENT_TYPE],
                "icon": "mdi:camera-iris",
                **common,
            },
        ),
    ]


def detection_configs(
    topics: Topics, identity: Identity, source: str, count_labels: tuple[str, ...]
) -> list[tuple[str, dict[str, Any]]]:
    """A count sensor per listed label and one of all objects, and the event entity."""
    common = _common(topics, identity)
    entities: list[tuple[str, dict[str, Any]]] = []
    for label in (*count_labels, None):
        name = label or "objects"
        entity_id = unique_id(identity, source, f"{_SAFE.sub('_', name)}_count")
        selected = (
            f"value_json.detections | selectattr('label', 'eq', {label!r}) | list"
            if label
            else "value_json.detections"
        )
        entities.append(
            (
                topics.discovery("sensor", entity_id),
                {
                    "name": f"{source} {name}",
                    "unique_id": entity_id,
                    "state_topic": topics.result(source),
                    "value_template": f"{{{{ {selected} | count }}}}",
                    "state_class": "measurement",
                    "icon": "mdi:counter",
                    **common,
                },
            )
        )
    event_id = unique_id(identity, source, DETECTED)
    entities.append(
        (
            topics.discovery("event", event_id),
            {
                "name": f"{source} detected",
                "unique_id": event_id,
                "state_topic": topics.event(source),
                "event_types": [DETECTED],
                "icon": "mdi:cctv",
                **common,
            },
        )
    )
    return entities


def _share(classes: str, label: str) -> str:
    """A label's fraction of a result's `classes` list as a percentage (0 when absent)."""
    fraction = (
        f"{classes} | selectattr('label', 'eq', {label!r}) | map(attribute='fraction') "
        "| first | default(0)"
    )
    return f"(({fraction}) * 100) | round(1)"


def segmentation_configs(
    topics: Topics,
    identity: Identity,
    source: str,
    labels: tuple[str, ...],
    regions: tuple[str, ...],
) -> list[tuple[str, dict[str, Any]]]:
    """A "% of frame" sensor per label, one per label and region, the picture and the event."""
    common = _common(topics, identity)
    entities: list[tuple[str, dict[str, Any]]] = []
    wanted: list[tuple[str, str | None]] = [(label, None) for label in labels]
    wanted += [(label, region) for region in regions for label in labels]
    for label, region in wanted:
        if region is None:
            entity_id = unique_id(identity, source, f"{_SAFE.sub('_', label)}_share")
            name = f"{source} {label} % of frame"
            template = f"{{{{ {_share('value_json.classes', label)} }}}}"
        else:
            entity_id = unique_id(
                identity, source, f"{_SAFE.sub('_', region)}_{_SAFE.sub('_', label)}_share"
            )
            name = f"{source} {label} % of {region}"
            found = (
                f"value_json.regions | default([]) | selectattr('name', 'eq', {region!r}) "
                "| first | default(none)"
            )
            template = (
                f"{{% set region = {found} %}}"
                f"{{{{ {_share('(region.classes if region else [])', label)} }}}}"
            )
        entities.append(
            (
                topics.discovery("sensor", entity_id),
                {
                    "name": name,
                    "unique_id": entity_id,
                    "state_topic": topics.result(source),
                    "value_template": template,
                    "unit_of_measurement": "%",
                    "state_class": "measurement",
                    "suggested_display_precision": 1,
                    "icon": "mdi:texture-box",
                    **common,
                },
            )
        )
    image_id = unique_id(identity, source, "picture")
    entities.append(
        (
            topics.discovery("image", image_id),
            {
                "name": f"{source} picture",
                "unique_id": image_id,
                "image_topic": topics.image(source),
                "content_type": PICTURE_TYPE,
                "icon": "mdi:image-filter-center-focus",
                **common,
            },
        )
    )
    event_id = unique_id(identity, source, SEGMENTED)
    entities.append(
        (
            topics.discovery("event", event_id),
            {
                "name": f"{source} segmented",
                "unique_id": event_id,
                "state_topic": topics.event(source),
                "event_types": [SEGMENTED],
                "icon": "mdi:select-group",
                **common,
            },
        )
    )
    return entities
