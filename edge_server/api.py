"""The HTTP API: an app factory and its routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from . import __version__, problems
from .classifier import Classifier, ModelInfo, TensorSpec
from .metrics import STAGES, Metrics
from .middleware import RequestContext
from .schemas import (
    ClassifyResponse,
    Health,
    ModelDescription,
    ModelList,
    QuantizationInfo,
    TensorInfo,
)
from .service import Service
from .settings import Settings
from .upload import read_image

log = logging.getLogger("edge_server")


async def _service(request: Request) -> Service:
    # async so FastAPI calls it on the event loop: a plain `def` dependency costs every
    # request a round trip through the threadpool.
    service: Service = request.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]

router = APIRouter()

_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "file": {"type": "string", "format": "binary"},
                    },
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=problems.openapi_responses(400, 413, 415, 422, 500, 503),
    openapi_extra=_IMAGE_BODY,
    summary="Classify an image",
)
async def classify(
    request: Request,
    service: ServiceDep,
    top_k_: Annotated[
        int | None, Query(alias="top_k", ge=1, le=10_000, description="How many predictions.")
    ] = None,
    threshold: Annotated[
        float, Query(ge=0.0, le=1.0, description="Minimum score of a prediction.")
    ] = 0.0,
) -> JSONResponse:
    """Classify one image sent as multipart field `image` (or `file`) or as a raw image body."""
    service.ready_classifier()  # 503 before reading a body that could not be used
    data = await read_image(request, service.settings.max_upload_bytes)
    answer = await service.classify(
        data, top_k=top_k_, threshold=threshold, started=request.state.request_started
    )
    timing = answer.timing_ms.model_dump()
    return JSONResponse(answer.model_dump(), headers={"Server-Timing": server_timing(timing)})


def server_timing(timing_ms: dict[str, float]) -> str:
    """The stages as a Server-Timing header value."""
    return ", ".join(f"{stage};dur={timing_ms[stage]:.3f}" for stage in STAGES)


@router.get("/healthz", response_model=Health, summary="Liveness (never runs the model)")
async def healthz() -> Health:
    """The process is up and serving HTTP."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses=problems.openapi_responses(503),
    summary="Readiness: the model is loaded and warmed up",
)
async def readyz(service: ServiceDep) -> Health:
    """200 once the model is loaded and warmed up, 503 before and while shutting down."""
    service.ready_classifier()
    return Health(status="ready")


@router.get("/v1/models", response_model=ModelList, responses=problems.openapi_responses(503))
async def models(service: ServiceDep) -> ModelList:
    """The loaded model, its tensors and how it runs."""
    classifier = service.ready_classifier()
    return ModelList(models=[describe(classifier.info, service.settings)])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
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
    """Build the app. Without a classifier, the model is loaded (and closed) by the lifespan."""
    service = Service(settings=settings, metrics=Metrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        owned = classifier is None
        loaded = (
            classifier
            if classifier is not None
            else await run_in_threadpool(Classifier.load, settings)
        )
        service.classifier = loaded
        service.metrics.model.info(_model_labels(loaded.info))
        try:
            yield {"service": service}
        finally:
            service.classifier = None
            if owned:
                loaded.close()

    app = FastAPI(
        title="edge-server",
        version=__version__,
        description="On-device image classification with a quantized TFLite model.",
        lifespan=lifespan,
    )
    app.include_router(router)
    problems.install(app)
    app.add_middleware(RequestContext, metrics=service.metrics)
    return app


def _model_labels(info: ModelInfo) -> dict[str, str]:
    return {
        "name": info.name,
        "sha256": info.sha256,
        "backend": info.backend.name,
        "backend_version": info.backend.version,
        "num_threads": str(info.num_threads),
        "xnnpack": str(info.xnnpack).lower(),
    }
