"""`POST /classify/batch`: several images in one multipart request, answered item by item.

Each image goes through the same pipeline as `/classify`; the images decode in parallel and
queue for the interpreter in the order sent. A bad image becomes that item's problem details
instead of failing the request.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..core.detection import Task
from ..core.errors import ServiceError, UnsupportedMediaType
from ..core.imaging import ResizeMode
from ..core.region import Region
from ..serving.schemas import BatchItem, BatchResponse
from ..serving.service import Service
from . import problems
from .deps import (
    Authorized,
    ModelQuery,
    RegionDep,
    ResizeDep,
    ServiceDep,
    ThresholdQuery,
    TopKQuery,
)
from .exchange import exchange
from .upload import BINARY, batch_form, files_from_form, form_content, media_type, openapi_body

BATCH_FIELD = "images"

router = APIRouter(dependencies=[Authorized], responses=problems.openapi_responses(401))

_BATCH_BODY = openapi_body(
    form_content({BATCH_FIELD: {"type": "array", "items": BINARY}}, [BATCH_FIELD])
)


@router.post(
    "/classify/batch",
    response_model=BatchResponse,
    responses=problems.openapi_responses(400, 404, 408, 413, 415, 422, 503, 504),
    openapi_extra=_BATCH_BODY,
    summary="Classify several images in one request",
)
async def classify_batch(
    request: Request,
    service: ServiceDep,
    region: RegionDep,
    resize: ResizeDep,
    top_k_: TopKQuery = None,
    threshold: ThresholdQuery = 0.0,
    model: ModelQuery = None,
) -> JSONResponse:
    """Classify each file of the repeated multipart field `images`; answers in the same order."""
    # 503, 404 or 400 before the body; resolved again when the work starts, so a reload that
    # serves the default under a new name meanwhile is no 404.
    service.model_for(Task.classification, model)
    if media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType(
            f"send the images as multipart form data, one '{BATCH_FIELD}' field per image "
            f"(curl -F {BATCH_FIELD}=@a.jpg -F {BATCH_FIELD}=@b.jpg)"
        )
    settings = service.settings

    async def read() -> list[tuple[str, bytes]]:
        async with batch_form(request, settings) as form:
            return await files_from_form(form, BATCH_FIELD)

    async def classify_all(files: list[tuple[str, bytes]]) -> list[BatchItem]:
        return list(
            await asyncio.gather(
                *(
                    _classify_one(
                        request, service, name, data, top_k_, threshold, region, model, resize
                    )
                    for name, data in files
                )
            )
        )

    # One admission place, deadline and disconnect watch for the whole batch.
    items = await exchange(service, request, read, classify_all)
    return JSONResponse(BatchResponse(items=items).model_dump(exclude_none=True))


async def _classify_one(
    request: Request,
    service: Service,
    name: str,
    data: bytes,
    top_k: int | None,
    threshold: float,
    region: Region | None,
    model: str | None,
    resize: ResizeMode | None,
) -> BatchItem:
    try:
        answer = await service.classify(
            data,
            top_k=top_k,
            threshold=threshold,
            started=request.state.request_started,
            region=region,
            model=model,
            resize=resize,
        )
    except ServiceError as exc:
        status = int(exc.status)
        return BatchItem(
            file=name, status=status, problem=problems.problem(request, status, exc.detail)
        )
    return BatchItem(file=name, status=HTTPStatus.OK, result=answer)
