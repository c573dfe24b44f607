"""The MQTT surface: classify images that LAN devices publish, announce to Home Assistant, and
name what Frigate sees; and publish what the watched cameras see.

Only the pure modules (broker URL, topics, payloads, discovery) are imported without the
`mqtt` extra; `connection` and `frigate` need aiomqtt and httpx, and `open_connection` says how
to get them. The factories are not named after their modules: importing `mqtt.connection`
binds the module to that name in this package, over a function of the same name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import StartupError

if TYPE_CHECKING:
    from ..cameras.registry import Cameras
    from ..serving.service import Service
    from .camera_events import CameraEvents
    from .connection import MqttConnection


def open_connection(service: Service) -> MqttConnection:
    """The MQTT connection for these settings (not started), or a StartupError with the fix."""
    try:
        from .connection import MqttConnection
    except ModuleNotFoundError as exc:
        if exc.name not in {"aiomqtt", "paho", "httpx"} and not str(exc.name).startswith(
            ("paho.", "aiomqtt.")
        ):
            raise  # a broken install of something else: not this problem
        raise StartupError(
            f"EDGE_MQTT_URL is set but the MQTT extra is not installed ({exc.name} is missing)",
            fix="pip install 'edge-server[mqtt]' (or unset EDGE_MQTT_URL)",
        ) from None
    return MqttConnection(service)


def camera_publisher(connection: MqttConnection, cameras: Cameras) -> CameraEvents:
    """The cameras' publisher on this connection (not started)."""
    from .camera_events import CameraEvents

    return CameraEvents(connection, cameras)
