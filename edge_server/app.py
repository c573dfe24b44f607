"""The composition root: the service, its models and every surface, wired in one lifespan.

HTTP, MQTT and the LAN advertisement are siblings that never import each other; this module
(above them) builds the service they share and the cameras (whose events MQTT and webhooks
publish and HTTP shows), starts the LAN surfaces and the cameras in the HTTP app's lifespan
and stops them in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from . import mqtt
from .cameras.registry import Cameras, check_served
from .config.settings import Settings
from .core.engine import Engine
from .core.errors import StartupError
from .http.application import application
from .lan import advertisement
from .ops.board import BoardCollector
from .serving.auth import ApiKeys
from .serving.metrics import Metrics
from .serving.repository import load_models
from .serving.service import Service
from .serving.specs import ModelSpec, model_specs

if TYPE_CHECKING:
    from .cameras.webhooks import Webhooks

log = logging.getLogger("edge_server")


def create_app(
    settings: Settings,
    *,
    models: Sequence[tuple[ModelSpec, Engine]] | None = None,
    decoders: ThreadPoolExecutor | None = None,
) -> FastAPI:
    """Build the app; it owns the models (loaded by the lifespan when not given) and the
    decode pool they were loaded with.

    Settings that make the LAN advertisement impossible fail here, before the port opens.
    """
    metrics = Metrics()
    service = Service(settings, metrics, ApiKeys.from_settings(settings), decoders)
    metrics.registry.register(BoardCollector(settings.sysfs_root))
    advertised = advertisement.plan(settings)
    # Built now, so a missing `mqtt` extra stops the start (exit 2) before the port opens.
    link = mqtt.open_connection(service) if settings.mqtt_url is not None else None
    # The cameras' configuration is checked now too, and their models when already loaded.
    cameras = Cameras.from_settings(service)
    if models is not None:
        check_served(cameras.configs, models)
    camera_events = mqtt.camera_publisher(link, cameras) if link is not None and cameras else None
    webhooks = _webhooks(settings, metrics) if cameras else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        loaded = models
        if loaded is None:
            loaded = await asyncio.to_thread(
                load_models, model_specs(settings), service.models.decoders
            )
        for spec, classifier in loaded:
            service.models.install(spec, classifier)
        await service.learned.start()
        if service.faces is not None:
            await service.faces.start()
        if link is not None:
            await link.start()  # connects in the background; HTTP never waits for the broker
        if camera_events is not None:
            camera_events.start()
            cameras.add_listener(camera_events)
        if webhooks is not None:
            await webhooks.start()
            cameras.add_listener(webhooks)
        with _reload_on_sighup(service, cameras):
            announcer = None
            try:
                await cameras.start()  # a camera that fails says why in its state, never here
                announcer = advertisement.advertise(service, advertised)
                yield {"service": service, "mqtt": link, "cameras": cameras}
            finally:
                await cameras.stop()  # before the models and the broker they need go
                if webhooks is not None:
                    await webhooks.stop()
                if link is not None:
                    await link.stop()
                if announcer is not None:
                    await announcer.close()  # goodbye before the model goes
                await service.shutdown()

    app = application(
        lifespan,
        metrics=metrics,
        cors_origins=settings.cors_origins,
        access_log_rate=settings.access_log_rate,
    )
    app.state.metrics = metrics  # the server adds its connection and log metrics to these
    return app


def _webhooks(settings: Settings, metrics: Metrics) -> Webhooks | None:
    """The cameras' webhooks (EDGE_CAMERA_WEBHOOKS), or None; a missing httpx says the fix."""
    if not settings.camera_webhooks:
        return None
    try:
        from .cameras.webhooks import Webhooks
    except ModuleNotFoundError as exc:
        if exc.name != "httpx":
            raise
        raise StartupError(
            "EDGE_CAMERA_WEBHOOKS is set but httpx is not installed",
            fix="pip install 'edge-server[cameras]' (or unset EDGE_CAMERA_WEBHOOKS)",
        ) from None
    return Webhooks(settings.camera_webhooks, metrics.registry)


@contextmanager
def _reload_on_sighup(service: Service, cameras: Cameras) -> Iterator[None]:
    """SIGHUP reloads every model (the usual daemon convention), then the camera configuration
    (only the cameras that changed restart), where signals can be handled."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        await service.models.reload_all()  # a failure is logged; the old copy keeps serving
        await cameras.reload()  # likewise: a configuration that does not read changes nothing

    def on_sighup() -> None:
        task = loop.create_task(reload())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
    except (RuntimeError, ValueError, NotImplementedError):  # not the main thread, or Windows
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
