"""The FastAPI application: every router, the problem+json handlers and the middleware.

The lifespan (what loads the models and starts the other surfaces) is the caller's: this
module knows only HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from .. import __version__
from ..serving.metrics import Metrics
from . import batch, camera_api, frigate_api, known_faces, learned, page, problems, routes, segment
from .deepstack import background, face, status, vision
from .kserve import endpoints, model_repository
from .middleware import RequestContext

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


def application(
    lifespan: Lifespan,
    *,
    metrics: Metrics,
    cors_origins: Sequence[str] = (),
    access_log_rate: float = 0.0,
) -> FastAPI:
    """The app with every route; `lifespan` puts the service in its state."""
    # FastAPIOffline: /docs with its assets served from the package, not a CDN. No ReDoc: its
    # page still loads a logo from the vendor's CDN.
    app = FastAPIOffline(
        redoc_url=None,
        title="edge-server",
        version=__version__,
        description="On-device image classification and object detection with quantized "
        "TFLite models.",
        lifespan=lifespan,
    )
    app.include_router(routes.router)
    app.include_router(routes.protected)
    app.include_router(batch.router)
    app.include_router(segment.router)
    app.include_router(vision.router)
    app.include_router(face.router)
    app.include_router(background.router)
    app.include_router(status.router)
    app.include_router(endpoints.router)
    app.include_router(model_repository.router)
    app.include_router(learned.router)
    app.include_router(camera_api.router)
    app.include_router(frigate_api.router)
    app.include_router(known_faces.router)
    app.include_router(page.router)
    problems.install(app)
    for code in (404, 405):
        app.add_exception_handler(code, vision.vision_errors(problems.http_error))
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["Server-Timing", "X-Request-ID"],
        )
    app.add_middleware(RequestContext, metrics=metrics, access_log_rate=access_log_rate)
    return app
