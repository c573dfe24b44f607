"""The DeepStack / CodeProject.AI vision API: scene, detection and custom models.

- `POST /v1/vision/scene`: the best label of the whole image (`success`, `label`, `confidence`).
- `POST /v1/vision/detection`: objects (`predictions`, each `label`, `confidence`, `x_min`,
  `y_min`, `x_max`, `y_max` in pixels of the image sent), best first, from the first served
  detector. `min_confidence` defaults to 0.40, as DeepStack's server has it.
- `POST /v1/vision/custom/{model}`: the same answer from any served model; a classifier's top
  classes come back as boxes around the whole image, so clients that count targets by label
  (Home Assistant's DeepStack component) count them.
- `POST /v1/vision/custom/list`: the served models (CodeProject.AI's method for it).

Every 200 answer carries `predictions` (deepstack-python reads it without a check); errors are
`{success: false, error, code}` with the same HTTP status, and always JSON (Frigate parses every
answer). FastAPI answers with a Content-Length, never chunked, which Blue Iris needs.
Faces are in `face.py`. Plate recognition is not served: its routes answer 404 naming the ones
that are (`vision_errors`, an app-wide 404 and 405 handler, so a wrong method on a served route
stays a 405 with its Allow header).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...core.detection import Task
from ...serving.schemas import ClassifyResponse, DetectResponse, Timing
from ...serving.service import Service
from ..deps import ServiceDep
from ..dialect import error_dialect
from ..exchange import exchange
from ..upload import BINARY, form_content, openapi_body
from .forms import VisionForm, read_vision_form

ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]

# What the scene answer's label is when the best score is below the client's min_confidence.
UNKNOWN_LABEL = "unknown"
# DeepStack's server default (its docs say 0.45; its code and CodeProject.AI use 0.40).
DETECTION_MIN_CONFIDENCE = 0.40
MODULE_ID = "edge-server"


class SceneAnswer(BaseModel):
    """A DeepStack scene answer."""

    success: bool = True
    label: str = Field(description=f"The best label, or '{UNKNOWN_LABEL}' below min_confidence.")
    confidence: float = Field(description="The best label's score (0..1).")
    inferenceMs: int = Field(description="Time running the model, in whole milliseconds.")  # noqa: N815  (the wire name)
    processMs: int = Field(  # noqa: N815  (the wire name)
        description="Time decoding, preparing, running and ranking, in whole milliseconds."
    )


class VisionPrediction(BaseModel):
    """One object in DeepStack's shape: pixels of the image as sent (EXIF applied)."""

    label: str
    confidence: float
    x_min: int
    y_min: int
    x_max: int
    y_max: int


class DetectionAnswer(BaseModel):
    """A DeepStack / CodeProject.AI detection answer."""

    success: bool = True
    message: str = Field(description="'Found person, car...' or 'No objects found'.")
    count: int
    predictions: list[VisionPrediction] = Field(description="Best first.")
    inferenceMs: int = Field(description="Time running the model, in whole milliseconds.")  # noqa: N815  (the wire name)
    processMs: int = Field(  # noqa: N815  (the wire name)
        description="Time decoding, preparing, running and reading, in whole milliseconds."
    )
    analysisRoundTripMs: int = Field(  # noqa: N815  (the wire name)
        description="From the request's arrival to the answer, in whole milliseconds."
    )
    command: str = Field(description="detect, or custom for /v1/vision/custom/{model}.")
    moduleId: str = MODULE_ID  # noqa: N815  (the wire name)
    code: int = 200


class ModelsAnswer(BaseModel):
    """`/v1/vision/custom/list`: the models `/v1/vision/custom/{model}` serves."""

    success: bool = True
    models: list[str]


class VisionError(BaseModel):
    """A DeepStack error answer."""

    success: bool = False
    error: str
    code: int


def render_error(request: Request, status: int, detail: str, headers: dict[str, str]) -> Response:
    """An error in DeepStack's and CodeProject.AI's shape, with the same HTTP status."""
    body = VisionError(error=detail, code=status)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


router = APIRouter(prefix="/v1/vision", tags=["DeepStack"], route_class=error_dialect(render_error))

_FORM_BODY = openapi_body(
    form_content(
        {
            "image": BINARY,
            "min_confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "api_key": {"type": "string"},
        },
        ["image"],
    )
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": VisionError} for status in (400, 401, 404, 408, 413, 415, 503, 504)
}


@router.post(
    "/scene",
    response_model=SceneAnswer,
    responses=_ERRORS,
    openapi_extra=_FORM_BODY,
    summary="Classify an image (DeepStack / CodeProject.AI scene API)",
)
async def scene(request: Request, service: ServiceDep) -> SceneAnswer:
    """The best label of the multipart field `image`, in DeepStack's answer shape."""
    service.model_for(Task.classification)  # before the body; resolved again at the work

    async def classify(form: VisionForm) -> tuple[ClassifyResponse, float]:
        answer = await service.classify(
            form.image, top_k=1, threshold=0.0, started=request.state.request_started
        )
        return answer, form.min_confidence or 0.0

    answer, min_confidence = await exchange(
        service, request, lambda: read_vision_form(request, service), classify
    )
    best, timing = answer.predictions[0], answer.timing_ms
    return scene_answer(
        best.label, best.score, min_confidence, timing.inference, process_ms(timing)
    )


@router.post(
    "/detection",
    response_model=DetectionAnswer,
    responses=_ERRORS,
    openapi_extra=_FORM_BODY,
    summary="Detect objects (DeepStack / CodeProject.AI detection API)",
)
async def detection(request: Request, service: ServiceDep) -> DetectionAnswer:
    """The objects in the multipart field `image`, from the first served detector."""
    service.model_for(Task.detection)  # before the body; resolved again at the work
    return await _vision(request, service, None, "detect")


# Before custom/{model}, which would otherwise take "list" as a model name.
@router.post(
    "/custom/list",
    response_model=ModelsAnswer,
    responses=_ERRORS,
    summary="The models /v1/vision/custom/{model} serves (CodeProject.AI)",
)
async def custom_list(service: ServiceDep) -> ModelsAnswer:
    """Every served model, detectors and classifiers. Open like the status routes: NVRs ask
    it with no key, and the names are in the mDNS announcement anyway."""
    service.ready_model()
    return ModelsAnswer(models=service.model_names())


@router.post(
    "/custom/{model}",
    response_model=DetectionAnswer,
    responses=_ERRORS,
    openapi_extra=_FORM_BODY,
    summary="Detect or classify with a named model (DeepStack custom models)",
)
async def custom(request: Request, service: ServiceDep, model: str) -> DetectionAnswer:
    """A detector's objects, or a classifier's top classes as boxes around the whole image."""
    service.ready_model(model)  # 404 naming the served models, before the body
    return await _vision(request, service, model, "custom")


# What each compatible prefix serves, for the 404 of a route it does not.
_SERVED = {
    "/v1/vision/": "plate recognition is not available; served: POST "
    "/v1/vision/detection, /v1/vision/scene, /v1/vision/custom/{model}, "
    "/v1/vision/custom/list and /v1/vision/face (recognize, register, list, delete, match)",
    "/v1/image/": "of CodeProject.AI's image modules only the background remover is; served: "
    "POST /v1/image/removebackground",
}


def vision_errors(fallback: ErrorHandler) -> ErrorHandler:
    """A 404 and 405 handler: under /v1/vision and /v1/image, DeepStack's error shape (a 404
    naming what is served: plate recognition and CodeProject.AI's other image modules are
    not); elsewhere, `fallback`'s answer."""

    async def handle(request: Request, exc: Exception) -> Response:
        path = request.url.path
        served = next((text for prefix, text in _SERVED.items() if path.startswith(prefix)), None)
        if served is None:
            return await fallback(request, exc)
        status = getattr(exc, "status_code", 404)
        if status != 404:
            headers = dict(getattr(exc, "headers", None) or {})
            return render_error(request, status, f"{request.method} is not allowed here", headers)
        return render_error(request, 404, f"{path} is not served here ({served})", {})

    return handle


async def _vision(
    request: Request, service: Service, name: str | None, command: str
) -> DetectionAnswer:
    """One detection-shaped answer from the served model `name` (None: the first detector),
    whatever its task."""
    started = request.state.request_started
    is_detector = name is None or service.ready_model(name).info.task is Task.detection

    async def work(form: VisionForm) -> DetectionAnswer:
        floor = DETECTION_MIN_CONFIDENCE if form.min_confidence is None else form.min_confidence
        if is_detector:
            found = await service.detect(
                form.image,
                min_score=floor,
                max_results=service.settings.max_detections,
                started=started,
                model=name,
            )
            return detection_answer(found, command)
        ranked = await service.classify(
            form.image,
            top_k=service.settings.default_top_k,
            threshold=floor,
            started=started,
            model=name,
        )
        return classes_as_boxes(ranked, command)

    return await exchange(service, request, lambda: read_vision_form(request, service), work)


def detection_answer(found: DetectResponse, command: str) -> DetectionAnswer:
    """A detection in DeepStack's shape: boxes in pixels of the image as sent."""
    predictions = [
        VisionPrediction(
            label=d.label,
            confidence=d.score,
            x_min=d.box.x_min,
            y_min=d.box.y_min,
            x_max=d.box.x_max,
            y_max=d.box.y_max,
        )
        for d in found.detections
    ]
    return _answer(predictions, found.timing_ms, command)


def classes_as_boxes(ranked: ClassifyResponse, command: str) -> DetectionAnswer:
    """A classifier's top classes, each a box around the whole image."""
    width, height = ranked.image.width, ranked.image.height
    predictions = [
        VisionPrediction(
            label=p.label, confidence=p.score, x_min=0, y_min=0, x_max=width, y_max=height
        )
        for p in ranked.predictions
    ]
    return _answer(predictions, ranked.timing_ms, command)


def _answer(predictions: list[VisionPrediction], timing: Timing, command: str) -> DetectionAnswer:
    labels = list(dict.fromkeys(p.label for p in predictions))
    return DetectionAnswer(
        message=f"Found {', '.join(labels)}" if labels else "No objects found",
        count=len(predictions),
        predictions=predictions,
        inferenceMs=round(timing.inference),
        processMs=round(process_ms(timing)),
        analysisRoundTripMs=round(timing.total),
        command=command,
    )


def process_ms(timing: Timing) -> float:
    """Decode, prepare, run and read: what DeepStack calls processing."""
    return timing.decode + timing.preprocess + timing.inference + timing.postprocess


def scene_answer(
    label: str, score: float, min_confidence: float, inference_ms: float, process_ms: float
) -> SceneAnswer:
    """The DeepStack answer for the best label and score."""
    return SceneAnswer(
        label=label if score >= min_confidence else UNKNOWN_LABEL,
        confidence=score,
        inferenceMs=round(inference_ms),
        processMs=round(process_ms),
    )
