"""CodeProject.AI's background remover: `POST /v1/image/removebackground`.

CodeProject.AI's "Background Remover" module (rembg's U^2-Net) takes the multipart fields
`image` and `use_alphamatting` ("true" for softer edges) and answers `{success, imageBase64,
inferenceMs, processMs, ...}`, `imageBase64` a PNG with the background transparent; its
explorer page and its clients show it as `data:image/png;base64,` + `imageBase64` once
`success` is true. Here the served segmenter answers it: the foreground is every PASCAL VOC
class but background (`segmenting.pictured` with a cut-out, as `/segment?format=cutout`).
`use_alphamatting` is accepted and not done: the edges are the segmenter's, at its 513x513
map's resolution.

Errors are DeepStack's shape (`{success: false, error, code}`, the HTTP status kept), as on
`/v1/vision`. With no segmenter served, CodeProject.AI's server answers 404 for a route no
module registered; here too, with a body saying what to add to `EDGE_MODEL`.
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ...core.detection import Task
from ...core.errors import NotFound
from ...core.overlay import Picture
from ...serving import segmenting
from ...serving.segmenting import RenderedPicture
from ..deps import ServiceDep
from ..dialect import error_dialect
from ..exchange import exchange
from ..upload import BINARY, form_content, openapi_body
from .forms import BackgroundForm, read_background_form
from .vision import MODULE_ID, VisionError, render_error

COMMAND = "removebackground"
MODULE_NAME = "Background Remover"  # CodeProject.AI's name for the module this stands in for


class BackgroundAnswer(BaseModel):
    """CodeProject.AI's background-remover answer."""

    success: bool = True
    imageBase64: str = Field(  # noqa: N815  (the wire name)
        description="A PNG of the photo (upright, full size) with every pixel the segmenter "
        "calls background transparent, base64."
    )
    inferenceMs: int = Field(description="Time running the model, in whole milliseconds.")  # noqa: N815  (the wire name)
    processMs: int = Field(  # noqa: N815  (the wire name)
        description="Time decoding, preparing, running and drawing, in whole milliseconds."
    )
    analysisRoundTripMs: int = Field(  # noqa: N815  (the wire name)
        description="From the request's arrival to the answer, in whole milliseconds."
    )
    moduleId: str = MODULE_ID  # noqa: N815  (the wire name)
    moduleName: str = MODULE_NAME  # noqa: N815  (the wire name)
    command: str = COMMAND
    executionProvider: str = "CPU"  # noqa: N815  (the wire name)
    canUseGPU: bool = False  # noqa: N815  (the wire name)
    code: int = 200


router = APIRouter(prefix="/v1/image", tags=["DeepStack"], route_class=error_dialect(render_error))

_FORM_BODY = openapi_body(
    form_content(
        {
            "image": BINARY,
            "use_alphamatting": {
                "type": "string",
                "enum": ["true", "false"],
                "description": "Accepted for CodeProject.AI's clients and not done: the edges "
                "are the segmenter's.",
            },
            "api_key": {"type": "string"},
        },
        ["image"],
    )
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": VisionError} for status in (400, 401, 404, 408, 413, 415, 503, 504)
}


@router.post(
    "/removebackground",
    response_model=BackgroundAnswer,
    responses=_ERRORS,
    openapi_extra=_FORM_BODY,
    summary="Remove the background (CodeProject.AI's Background Remover)",
)
async def remove_background(request: Request, service: ServiceDep) -> BackgroundAnswer:
    """The multipart field `image` as a PNG keeping every class the segmenter knows but
    background, in CodeProject.AI's answer shape."""
    try:
        name = service.model_for(Task.segmentation)  # before the body
    except NotFound as exc:
        raise NotFound(f"the background remover needs a segmenter: {exc.detail}") from None
    labels = service.ready_model(name).info.labels
    wanted = segmenting.PictureRequest(
        Picture.cutout, segmenting.picture_classes(Picture.cutout, None, labels)
    )

    async def cut(form: BackgroundForm) -> RenderedPicture:
        return await service.answer(
            Task.segmentation,
            form.image,
            segmenting.pictured(wanted),
            started=request.state.request_started,
            model=name,
        )

    picture = await exchange(service, request, lambda: read_background_form(request, service), cut)
    timing = picture.timing
    return BackgroundAnswer(
        imageBase64=base64.b64encode(picture.data).decode("ascii"),
        inferenceMs=round(timing.inference),
        processMs=round(timing.decode + timing.preprocess + timing.inference + timing.postprocess),
        analysisRoundTripMs=round(timing.total),
    )
