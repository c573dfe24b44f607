"""A camera event as it leaves the service: the same JSON on MQTT and in webhooks."""

from __future__ import annotations

import json

from .events import CameraEvent


def event_message(event: CameraEvent) -> bytes:
    """Frigate's `frigate/events` message: `{"type", "before", "after"}`, compact JSON."""
    return json.dumps(event.payload(), separators=(",", ":")).encode()
