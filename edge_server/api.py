"""The HTTP API: an app factory and its routes."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from . import (
    __version__,
    advertisement,
    batch,
    deepstack,
    kserve,
    kserve_repository,
    mqtt,
    page,
    problems,
)
from .auth import ApiKeys
from .board import BoardCollector, read_board
from .classifier import Classifier, TensorSpec
from .deps import (
    Authorized,
    ModelQuery,
    RegionDep,
    ServiceDep,
    ThresholdQuery,
    TopKQuery,
    require_key_for_metrics,
)
from .errors import Forbidden
from .metrics import STAGES, Metrics
from .middleware import RequestContext
from .repository import load_models
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
from .specs import ModelSpec, model_specs
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
    responses=problems.openapi_responses(400, 404, 408, 413, 415, 422, 500, 503, 504),
    openapi_extra=_IMAGE_BODY,
    summary="Classify an image",
)
async def classify(
    request: Request,
    service: ServiceDep,
    region: RegionDep,
    top_k_: TopKQuery = None,
    threshold: ThresholdQuery = 0.0,
    model: ModelQuery = None,
) -> JSONResponse:
    """Classify one image sent as multipart field `image` (or `file`), as JSON
    `{"image": "<base64>"}` or as a raw image body."""
    service.ready_classifier(model)  # 503 or 404 before reading a body that could not be used
    answer = await service.guarded(
        request,
        lambda: read_image(request, service.settings.max_upload_bytes),
        lambda data: service.classify(
            data,
            top_k=top_k_,
            threshold=threshold,
            started=request.state.request_started,
            region=region,
            model=model,
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
def healthz(request: Request, service: ServiceDep) -> Health:
    """The process is up and serving HTTP; on a Raspberry Pi, with the board's health; with
    MQTT configured, whether the broker is connected (HTTP serves either way)."""
    board = read_board(service.settings.sysfs_root)
    link = getattr(request.state, "mqtt", None)
    return Health(
        status="ok",
        board=None if board is None else board.as_dict(),
        mqtt=None if link is None else link.health(),
    )


@router.get(
    "/readyz",
    response_model=Health,
    response_model_exclude_none=True,
    responses=problems.openapi_responses(503),
    summary="Readiness: the model is loaded and warmed up",
)
async def readyz(service: ServiceDep) -> Health:
    """200 once the models are loaded and warmed up, 503 before and while shutting down."""
    service.ready_classifier()
    return Health(status="ready")


@protected.get("/v1/models", response_model=ModelList, responses=problems.openapi_responses(503))
async def models(service: ServiceDep) -> ModelList:
    """The loaded models (the default first), their tensors and how they run."""
    service.ready_classifier()
    return ModelList(models=[describe(service, name) for name in service.model_names()])


@protected.post(
    "/v1/models/reload",
    response_model=ModelList,
    responses=problems.openapi_responses(400, 403, 404, 422, 503),
    summary="Load a model beside the current one and swap without downtime",
)
async def reload(
    service: ServiceDep, body: Annotated[ReloadRequest | None, Body()] = None
) -> ModelList:
    """Reload a served model's file (`name`, default: the default model), or load `model` (a
    catalog name or a file name in EDGE_MODELS_DIR) in its place. In-flight requests finish on
    the old model; a model that fails to load leaves the old one serving and the answer says
    why."""
    if not service.keys.enabled:
        raise Forbidden(
            "reloading over HTTP needs EDGE_API_KEY; without keys, send SIGHUP to the process"
        )
    body = body or ReloadRequest()
    new = await service.reload(body.model, name=body.name)
    return ModelList(models=[describe(service, new.info.name)])


# After /v1/models/reload, so a wrong method there is answered with that route's Allow header.
@protected.get(
    "/v1/models/{name}",
    response_model=ModelDescription,
    responses=problems.openapi_responses(404, 503),
    summary="One loaded model",
)
async def model(service: ServiceDep, name: str) -> ModelDescription:
    """A loaded model by name or alias, its tensors and how it runs."""
    return describe(service, service.models.resolve(name))


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


def describe(service: Service, name: str) -> ModelDescription:
    """The public description of a loaded model."""
    return description(service.ready_classifier(name), default=name == service.default_model)


def description(classifier: Classifier, *, default: bool = True) -> ModelDescription:
    """The public description of a model, whether served or loaded by the CLI."""
    info = classifier.info
    return ModelDescription(
        default=default,
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
        replica_threads=list(info.replica_threads or (info.num_threads,)),
        xnnpack=info.xnnpack,
        resize=classifier.resize.value,
    )


def create_app(
    settings: Settings,
    *,
    models: Sequence[tuple[ModelSpec, Classifier]] | None = None,
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
    link = mqtt.connection(service) if settings.mqtt_url is not None else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        loaded = models
        if loaded is None:
            loaded = await run_in_threadpool(
                load_models, model_specs(settings), service.models.decoders
            )
        for spec, classifier in loaded:
            service.models.install(spec, classifier)
        if link is not None:
            await link.start()  # connects in the background; HTTP never waits for the broker
        with _reload_on_sighup(service):
            announcer = None
            try:
                announcer = advertisement.advertise(service, advertised)
                yield {"service": service, "mqtt": link}
            finally:
                if link is not None:
                    await link.stop()
                if announcer is not None:
                    await announcer.close()  # goodbye before the model goes
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
    app.include_router(kserve_repository.router)
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
    app.add_middleware(RequestContext, metrics=metrics, access_log_rate=settings.access_log_rate)
    app.state.metrics = metrics  # the server adds its connection and log metrics to these
    return app


@contextmanager
def _reload_on_sighup(service: Service) -> Iterator[None]:
    """SIGHUP reloads every model (the usual daemon convention), where signals can be handled."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        await service.models.reload_all()  # a failure is logged; the old copy keeps serving

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
