"""Home Assistant MQTT discovery for the cameras: one device per camera, under the service's.

Per camera: a motion `binary_sensor`, for each tracked label an occupancy `binary_sensor` and
a count `sensor` (both read the retained count, as Frigate's integration does), an `image`
entity showing the latest event snapshot, an `event` entity firing on each object's `new` and
`end`, a "last recognised face" sensor when the camera names people, and two diagnostics: the
analysed frame rate and whether the camera is connected.
Each camera is its own device (`via_device` the service's), so a camera's entities sit
together on its own page; the service's availability topic covers them all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .camera_topics import CameraTopics
from .homeassistant import Identity, device, origin, unique_id

EVENT_TYPES = ["new", "end"]  # `update`s are too many for an automation's trigger
_SAFE = re.compile(r"[^A-Za-z0-9_]+")


def camera_device(identity: Identity, camera: str) -> dict[str, Any]:
    """A camera's device block, linked to the service's device."""
    service = device(identity)
    return {
        "identifiers": [f"edge-server-{identity.node}-camera-{camera}"],
        "name": camera,
        "manufacturer": "edge-server",
        "model": "camera",
        "via_device": service["identifiers"][0],
        "configuration_url": service["configuration_url"],
    }


def configs(
    topics: CameraTopics,
    identity: Identity,
    camera: str,
    labels: Sequence[str],
    *,
    faces: bool = False,
) -> list[tuple[str, dict[str, Any]]]:
    """(config topic, payload) of every entity of one camera (`faces`: it names people)."""
    common = {
        "availability": [
            {
                "topic": topics.topics.status,
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        "device": camera_device(identity, camera),
        "origin": origin(identity),
        "qos": 1,
    }

    def entity(component: str, key: str, config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        entity_id = unique_id(identity, f"camera_{camera}", key)
        return topics.topics.discovery(component, entity_id), {
            "unique_id": entity_id,
            **config,
            **common,
        }

    entities = [
        entity(
            "binary_sensor",
            "motion",
            {
                "name": "motion",
                "state_topic": topics.motion(camera),
                "payload_on": "ON",
                "payload_off": "OFF",
                "device_class": "motion",
            },
        )
    ]
    for label in labels:
        safe = _SAFE.sub("_", label)
        entities.append(
            entity(
                "binary_sensor",
                f"{safe}_occupancy",
                {
                    "name": f"{label} occupancy",
                    "state_topic": topics.count(camera, label),
                    "value_template": "{{ 'ON' if (value | int(0)) > 0 else 'OFF' }}",
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "device_class": "occupancy",
                },
            )
        )
        entities.append(
            entity(
                "sensor",
                f"{safe}_count",
                {
                    "name": f"{label} count",
                    "state_topic": topics.count(camera, label),
                    "state_class": "measurement",
                    "icon": "mdi:counter",
                },
            )
        )
    entities += [
        entity(
            "image",
            "snapshot",
            {
                "name": "snapshot",
                "image_topic": topics.latest_snapshot(camera),
                "content_type": "image/jpeg",
                "icon": "mdi:cctv",
            },
        ),
        entity(
            "event",
            "object",
            {
                "name": "object",
                "state_topic": topics.event(camera),
                "event_types": EVENT_TYPES,
                "icon": "mdi:motion-sensor",
            },
        ),
    ]
    if faces:
        entities.append(
            entity(
                "sensor",
                "face",
                {
                    "name": "last recognised face",
                    "state_topic": topics.face(camera),
                    "value_template": "{{ value_json.name }}",
                    "json_attributes_topic": topics.face(camera),
                    "json_attributes_template": "{{ {'score': value_json.score, 'time': "
                    "value_json.time, 'event_id': value_json.event_id} | tojson }}",
                    "icon": "mdi:face-recognition",
                },
            )
        )
    entities += [
        entity(
            "sensor",
            "fps",
            {
                "name": "detection fps",
                "state_topic": topics.diagnostics(camera),
                "value_template": "{{ value_json.fps_analysed }}",
                "unit_of_measurement": "fps",
                "state_class": "measurement",
                "entity_category": "diagnostic",
                "suggested_display_precision": 1,
            },
        ),
        entity(
            "binary_sensor",
            "connected",
            {
                "name": "connected",
                "state_topic": topics.diagnostics(camera),
                "value_template": "{{ 'ON' if value_json.connected else 'OFF' }}",
                "payload_on": "ON",
                "payload_off": "OFF",
                "device_class": "connectivity",
                "entity_category": "diagnostic",
                "json_attributes_topic": topics.diagnostics(camera),
            },
        ),
    ]
    return entities
