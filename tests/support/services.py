"""A Service in the test process with real models installed, for code that calls the data
plane directly (camera watchers, pictures already decoded) rather than through a route."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from edge_server.config.settings import Settings
from edge_server.serving.auth import ApiKeys
from edge_server.serving.metrics import Metrics
from edge_server.serving.service import Service
from edge_server.serving.specs import model_specs


def loaded_service(settings: Settings) -> Service:
    """A Service with every model of `settings` loaded (the lifespan's work, without an app)."""
    service = Service(settings, Metrics(), ApiKeys.from_settings(settings))
    for spec in model_specs(settings):
        service.models.install(spec, spec.load())
    return service


@contextmanager
def running_service(settings: Settings) -> Iterator[tuple[Service, asyncio.AbstractEventLoop]]:
    """A loaded Service and an event loop of its own, shut down (models closed) on exit."""
    service = loaded_service(settings)
    loop = asyncio.new_event_loop()
    try:
        yield service, loop
    finally:
        loop.run_until_complete(service.shutdown())
        loop.close()
