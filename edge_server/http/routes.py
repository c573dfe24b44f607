"""The native HTTP routes: classify, detect, health, readiness, models, reload and metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..core.detection import Task
from ..core.errors import Forbidden
from ..ops.board import read_board
from ..serving.description import describe
from ..serving.schemas import (
    ClassifyResponse,
    DetectResponse,
    Health,
    ModelDescription,
    ModelList,
    ReloadRequest,
)
from . import problems
from .deps import (
    Authorized,
    DetectionDep,
    ModelQuery,
    RegionDep,
    ResizeDep,
    ServiceDep,
    ThresholdQuery,
    TopKQuery,
    require_key_for_metrics,
)
from .exchange import exchange, json_answer
from .upload import IMAGE_BODY, read_image

router = APIRouter()
protected = APIRouter(dependencies=[Authorized], responses=problems.openapi_responses(401))


@protected.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=problems.openapi_responses(400, 404, 408, 413, 415, 422, 500, 503, 504),
    openapi_extra=IMAGE_BODY,
    summary="Classify an image",
)
async def classify(
    request: Request,
    service: ServiceDep,
    region: RegionDep,
    resize: ResizeDep,
    top_k_: TopKQuery = None,
    threshold: ThresholdQuery = 0.0,
    model: ModelQuery = None,
) -> Response:
    """Classify one image sent as multipart field `image` (or `file`), as JSON
    `{"image": "<base64>"}` or as a raw image body."""
    # 503, 404 or 400 before the body; resolved again when the work starts, so a reload that
    # serves the default under a new name meanwhile is no 404.
    service.model_for(Task.classification, model)
    answer = await exchange(
        service,
        request,
        lambda: read_image(request, service.settings.max_upload_bytes),
        lambda data: service.classify(
            data,
            top_k=top_k_,
            threshold=threshold,
            started=request.state.request_started,
            region=region,
            model=model,
            resize=resize,
        ),
    )
    return json_answer(answer)


@protected.post(
    "/detect",
    response_model=DetectResponse,
    responses=problems.openapi_responses(400, 404, 408, 413, 415, 422, 500, 503, 504),
    openapi_extra=IMAGE_BODY,
    summary="Detect objects in an image",
)
async def detect(
    request: Request,
    service: ServiceDep,
    region: RegionDep,
    resize: ResizeDep,
    options: DetectionDep,
    model: ModelQuery = None,
    classify: Annotated[
        str | None,
        Query(
            description="A classifier or learned model that classifies each object's box: "
            "its top label and score are added as `sub_label` and `sub_score`.",
            examples=["our_cats"],
        ),
    ] = None,
    faces: Annotated[
        bool,
        Query(
            description="Name each person: the registered person whose face is in a person "
            "box is its `sub_label`, the recognition's confidence its `sub_score`.",
        ),
    ] = False,
) -> Response:
    """The objects in one image (sent as `/classify` takes it), best first, with boxes in
    pixels of the upright original image; default model: the first served detector."""
    service.model_for(Task.detection, model)  # 503, 404 or 400 before the body, as above
    if classify is not None:
        service.model_for(Task.classification, classify)
    if faces:
        service.require_faces()
    answer = await exchange(
        service,
        request,
        lambda: read_image(request, service.settings.max_upload_bytes),
        lambda data: service.detect(
            data,
            min_score=options.min_score,
            max_results=options.max_results,
            wanted=options.labels,
            started=request.state.request_started,
            region=region,
            model=model,
            classify=classify,
            resize=resize,
            faces=faces,
        ),
    )
    return json_answer(answer)


@router.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,
    summary="Liveness (never runs the model)",
)
def healthz(request: Request, service: ServiceDep) -> Health:
    """The process is up and serving HTTP; on a Raspberry Pi, with the board's health; with
    MQTT configured, whether the broker is connected (HTTP serves either way); with faces,
    the people registered and the threshold in effect."""
    board = read_board(service.settings.sysfs_root)
    link = getattr(request.state, "mqtt", None)
    return Health(
        status="ok",
        board=None if board is None else board.as_dict(),
        mqtt=None if link is None else link.health(),
        faces=None if service.faces is None else service.faces.status(),
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
    service.ready_model()
    return Health(status="ready")


@protected.get("/v1/models", response_model=ModelList, responses=problems.openapi_responses(503))
async def models(service: ServiceDep) -> ModelList:
    """The loaded models (the default first), their tensors and how they run."""
    service.ready_model()
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
