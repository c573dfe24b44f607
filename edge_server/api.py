"""The HTTP API: an app factory and its routes."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from . import __version__, batch, deepstack, kserve, page, problems
from .auth import ApiKeys
from .board import BoardCollector, read_board
from .classifier import Classifier, ModelInfo, TensorSpec
from .deps import (
    Authorized,
    RegionDep,
    ServiceDep,
    ThresholdQuery,
    TopKQuery,
    require_key_for_metrics,
)
from .errors import Forbidden, ReloadFailed
from .metrics import STAGES, Metrics
from .middleware import RequestContext
from .schemas import (
    ClassifyResponse,
    Health,
    ModelDescription,
    ModelList,
    QuantizationInfo,
    ReloadRequest,
    TensorInfo,
)
from .service import Service
from .settings import Settings
from .upload import BINARY, form_content, openapi_body, read_image

log = logging.getLogger("edge_server")


router = APIRouter()
protected = APIRouter(dependencies=[Authorized], responses=problems.openapi_responses(401))

_IMAGE_BODY = openapi_body(
    {
        **form_content(
            {
                "image": {
                    **BINARY,
                    "description": "The image file (the field may also be named `file`). "
                    "One image per request.",
                }
            },
            ["image"],
        ),
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {"image": {"type": "string", "format": "byte"}},
            }
        },
        "image/*": {"schema": BINARY},
        "application/octet-stream": {"schema": BINARY},
    }
)


@protected.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=problems.openapi_responses(400, 408, 413, 415, 422, 500, 503, 504),
    openapi_extra=_IMAGE_BODY,
    summary="Classify an image",
)
async def classify(
    request: Request,
    service: ServiceDep,
    region: RegionDep,
    top_k_: TopKQuery = None,
    threshold: ThresholdQuery = 0.0,
) -> JSONResponse:
    """Classify one image sent as multipart field `image` (or `file`), as JSON
    `{"image": "<base64>"}` or as a raw image body."""
    service.ready_classifier()  # 503 before reading a body that could not be used
    answer = await service.guarded(
        request,
        lambda: read_image(request, service.settings.max_upload_bytes),
        lambda data: service.classify(
            data,
            top_k=top_k_,
            threshold=threshold,
            started=request.state.request_started,
            region=region,
        ),
    )
    timing = answer.timing_ms.model_dump()
    return JSONResponse(answer.model_dump(), headers={"Server-Timing": server_timing(timing)})


def server_timing(timing_ms: dict[str, float]) -> str:
    """The stages as a Server-Timing header value."""
    return ", ".join(f"{stage};dur={timing_ms[stage]:.3f}" for stage in STAGES)


@router.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,
    summary="Liveness (never runs the model)",
)
def healthz(service: ServiceDep) -> Health:
    """The process is up and serving HTTP; on a Raspberry Pi, with the board's health."""
    board = read_board(service.settings.sysfs_root)
    return Health(status="ok", board=None if board is None else board.as_dict())


@router.get(
    "/readyz",
    response_model=Health,
    response_model_exclude_none=True,
    responses=problems.openapi_responses(503),
    summary="Readiness: the model is loaded and warmed up",
)
async def readyz(service: ServiceDep) -> Health:
    """200 once the model is loaded and warmed up, 503 before and while shutting down."""
    service.ready_classifier()
    return Health(status="ready")


@protected.get("/v1/models", response_model=ModelList, responses=problems.openapi_responses(503))
async def models(service: ServiceDep) -> ModelList:
    """The loaded model, its tensors and how it runs."""
    classifier = service.ready_classifier()
    return ModelList(models=[describe(classifier.info, service.settings)])


@protected.post(
    "/v1/models/reload",
    response_model=ModelList,
    responses=problems.openapi_responses(400, 403, 422, 503),
    summary="Load a model beside the current one and swap without downtime",
)
async def reload(
    service: ServiceDep, body: Annotated[ReloadRequest | None, Body()] = None
) -> ModelList:
    """Reload the configured model file, or switch to `model` (a catalog name or a file name
    in EDGE_MODELS_DIR). In-flight requests finish on the old model; a model that fails to
    load leaves the old one serving and the answer says why."""
    if not service.keys.enabled:
        raise Forbidden(
            "reloading over HTTP needs EDGE_API_KEY; without keys, send SIGHUP to the process"
        )
    new = await service.reload(body.model if body else None)
    return ModelList(models=[describe(new.info, service.settings)])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[Depends(require_key_for_metrics)],
)
async def metrics(service: ServiceDep) -> Response:
    """Metrics in the Prometheus text format."""
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _tensor_info(spec: TensorSpec) -> TensorInfo:
    return TensorInfo(
        shape=list(spec.shape),
        dtype=np.dtype(spec.dtype).name,
        quantization=QuantizationInfo(
            scale=spec.quantization.scale, zero_point=spec.quantization.zero_point
        ),
    )


def describe(info: ModelInfo, settings: Settings) -> ModelDescription:
    """The public description of a loaded model."""
    return ModelDescription(
        name=info.name,
        file=info.path.name,
        sha256=info.sha256,
        input=_tensor_info(info.input),
        output=_tensor_info(info.output),
        output_kind=info.output_kind.value,
        labels=len(info.labels),
        backend=info.backend.name,
        backend_version=info.backend.version,
        num_threads=info.num_threads,
        xnnpack=info.xnnpack,
        resize=settings.resize.value,
    )


def create_app(settings: Settings, *, classifier: Classifier | None = None) -> FastAPI:
    """Build the app; it owns the classifier (loaded by the lifespan when not given)."""
    metrics = Metrics()
    service = Service(settings, metrics, ApiKeys.from_settings(settings))
    metrics.registry.register(BoardCollector(settings.sysfs_root))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        if classifier is not None:
            service.install(classifier)
        else:
            service.install(await run_in_threadpool(Classifier.load, settings))
        with _reload_on_sighup(service):
            try:
                yield {"service": service}
            finally:
                await service.shutdown()

    # FastAPIOffline: /docs with its assets served from the package, not a CDN. No ReDoc: its
    # page still loads a logo from the vendor's CDN.
    app = FastAPIOffline(
        redoc_url=None,
        title="edge-server",
        version=__version__,
        description="On-device image classification with a quantized TFLite model.",
        lifespan=lifespan,
    )
    app.include_router(router)
    app.include_router(protected)
    app.include_router(batch.router)
    app.include_router(deepstack.router)
    app.include_router(kserve.router)
    app.include_router(page.router)
    problems.install(app)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["Server-Timing", "X-Request-ID"],
        )
    app.add_middleware(RequestContext, metrics=metrics)
    app.state.metrics = metrics  # the server adds its connection and log metrics to these
    return app


@contextmanager
def _reload_on_sighup(service: Service) -> Iterator[None]:
    """SIGHUP reloads the model (the usual daemon convention), where signals can be handled."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        with suppress(ReloadFailed):  # already logged; the old model keeps serving
            await service.reload()

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
