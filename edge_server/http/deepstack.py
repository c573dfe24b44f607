"""The DeepStack / CodeProject.AI scene API: `POST /v1/vision/scene`.

Home Assistant integrations, NVR tools and scripts written for DeepStack post a multipart field
`image` with the form fields `min_confidence` and `api_key` (the `deepstack-python` client sends
both on every call, `api_key` empty when none is set) and read `success`, `label` and
`confidence`; CodeProject.AI added `inferenceMs` and `processMs`. Errors are
`{success: false, error, code}` with the same HTTP status.
"""

from __future__ import annotations

import math

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ..core.errors import BadRequest, UnsupportedMediaType
from ..serving.schemas import ClassifyResponse
from .deps import ServiceDep
from .dialect import error_dialect
from .exchange import exchange
from .upload import BINARY, form_content, image_from_form, media_type, multipart_form, openapi_body

# What the answer's label is when the best score is below the client's min_confidence.
UNKNOWN_LABEL = "unknown"


class SceneAnswer(BaseModel):
    """A DeepStack scene answer."""

    success: bool = True
    label: str = Field(description=f"The best label, or '{UNKNOWN_LABEL}' below min_confidence.")
    confidence: float = Field(description="The best label's score (0..1).")
    inferenceMs: int = Field(description="Time running the model, in whole milliseconds.")  # noqa: N815  (the wire name)
    processMs: int = Field(  # noqa: N815  (the wire name)
        description="Time decoding, preparing, running and ranking, in whole milliseconds."
    )


class SceneError(BaseModel):
    """A DeepStack error answer."""

    success: bool = False
    error: str
    code: int


def _render_error(request: Request, status: int, detail: str, headers: dict[str, str]) -> Response:
    body = SceneError(error=detail, code=status)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


router = APIRouter(
    prefix="/v1/vision", tags=["DeepStack"], route_class=error_dialect(_render_error)
)

_SCENE_BODY = openapi_body(
    form_content(
        {
            "image": BINARY,
            "min_confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "api_key": {"type": "string"},
        },
        ["image"],
    )
)


@router.post(
    "/scene",
    response_model=SceneAnswer,
    responses={
        status: {"model": SceneError} for status in (400, 401, 408, 413, 415, 422, 503, 504)
    },
    openapi_extra=_SCENE_BODY,
    summary="Classify an image (DeepStack / CodeProject.AI scene API)",
)
async def scene(request: Request, service: ServiceDep) -> SceneAnswer:
    """The best label of the multipart field `image`, in DeepStack's answer shape."""
    service.ready_classifier()
    if media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType(
            "send the image as multipart form field 'image' (curl -F image=@photo.jpg)"
        )

    async def read() -> tuple[bytes, float]:
        async with multipart_form(request, service.settings.max_upload_bytes) as form:
            # DeepStack clients send the key as the form field `api_key`; headers work too.
            form_key = form.get("api_key")
            service.keys.check(
                request.headers.get("authorization"),
                request.headers.get("x-api-key")
                or (form_key if isinstance(form_key, str) else None),
            )
            return await image_from_form(form), parse_min_confidence(form.get("min_confidence"))

    async def classify(upload: tuple[bytes, float]) -> tuple[ClassifyResponse, float]:
        answer = await service.classify(
            upload[0], top_k=1, threshold=0.0, started=request.state.request_started
        )
        return answer, upload[1]

    answer, min_confidence = await exchange(service, request, read, classify)
    best, timing = answer.predictions[0], answer.timing_ms
    process_ms = timing.decode + timing.preprocess + timing.inference + timing.postprocess
    return scene_answer(best.label, best.score, min_confidence, timing.inference, process_ms)


def parse_min_confidence(value: object) -> float:
    """The form's min_confidence as a number in 0..1 (0 when absent or empty)."""
    if value is None or value == "":
        return 0.0
    if not isinstance(value, str):
        raise BadRequest("min_confidence must be a form field holding a number, not a file")
    try:
        number = float(value)
    except ValueError as exc:
        raise BadRequest(f"min_confidence {value!r} is not a number; use 0..1") from exc
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise BadRequest(f"min_confidence {value!r} is outside 0..1")
    return number


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
