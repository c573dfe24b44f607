"""Learned models over HTTP: teach classes from photos, list, delete, export and import them.

Changing a learned model needs an API key, as loading and unloading models does; reading them
needs one only when keys are configured (as every route).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response, StreamingResponse

from ..core.errors import BadRequest, Forbidden, UnsupportedMediaType
from ..core.region import parse_region
from ..serving.learned_models import check_name, describe
from ..serving.schemas import LearnedModelDescription, LearnedModelList, ThresholdChange
from ..serving.service import Service
from . import problems
from .deps import Authorized, RegionDep, ServiceDep
from .exchange import exchange
from .upload import BINARY, batch_form, form_content, media_type, openapi_body, photos_from_form

router = APIRouter(
    prefix="/v1/learned",
    tags=["Learned models"],
    dependencies=[Authorized],
    responses=problems.openapi_responses(401),
)

_EXAMPLES_BODY = openapi_body(
    form_content(
        {
            "label": {"type": "string", "description": "The class the photos show."},
            "image": {
                "type": "array",
                "items": BINARY,
                "description": "One or more photos (repeat the field).",
            },
            "crop": {
                "type": "string",
                "description": "Optional region `x0,y0,x1,y1` (fractions) of every photo.",
            },
        },
        ["label", "image"],
    )
)


def _check_change(service: Service, name: str) -> None:
    """403 without keys configured (as model load and unload), 409 with learning off, 400
    for a bad name: all before the body is read."""
    if not service.keys.enabled:
        raise Forbidden(
            "changing learned models over HTTP needs EDGE_API_KEY (anyone on the LAN could "
            "otherwise teach or delete classes); set a key and send it"
        )
    service.learned.require()
    try:
        check_name(name)
    except BadRequest:
        service.learned.refused("bad_name")
        raise


@router.get(
    "",
    response_model=LearnedModelList,
    responses=problems.openapi_responses(409),
    summary="The learned models",
)
async def learned_models(service: ServiceDep) -> LearnedModelList:
    """Every stored learned model, usable or not, with its classes and threshold."""
    service.learned.require()
    return LearnedModelList(models=[describe(m) for m in service.learned.models.values()])


@router.post(
    "/{name}/examples",
    response_model=LearnedModelDescription,
    status_code=201,
    responses=problems.openapi_responses(400, 403, 404, 409, 413, 415, 503, 504),
    openapi_extra=_EXAMPLES_BODY,
    summary="Teach a class from photos",
)
async def add_examples(
    request: Request, service: ServiceDep, name: str, region: RegionDep
) -> LearnedModelDescription:
    """Learn the photos (repeated `image` fields) as examples of the form field `label`; the
    model is created on first use. Answered once the examples are on disk; the next request
    uses them."""
    _check_change(service, name)
    if media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType(
            "send the photos as multipart form data: -F label=our_cat -F image=@a.jpg "
            "-F image=@b.jpg"
        )

    async def read() -> tuple[str, list[bytes], object]:
        async with batch_form(request, service.settings) as form:
            label = form.get("label")
            if not isinstance(label, str):
                service.learned.refused("bad_label")
                raise BadRequest("the form needs a text field 'label' naming the class")
            files = await photos_from_form(form)
            if not files:
                service.learned.refused("bad_image")
                raise BadRequest("the form has no 'image' file; add one or more photos")
            return label, files, form.get("crop")

    async def learn(upload: tuple[str, list[bytes], object]) -> LearnedModelDescription:
        label, files, crop = upload
        where = region
        if isinstance(crop, str) and crop:
            where = parse_region(crop)
        return describe(await service.learn(name, label, files, where))

    return await exchange(service, request, read, learn)


@router.get(
    "/{name}",
    response_model=LearnedModelDescription,
    responses=problems.openapi_responses(404, 409),
    summary="One learned model",
)
async def learned_model(service: ServiceDep, name: str) -> LearnedModelDescription:
    """Its classes and example counts, embedding model, threshold (and how it was chosen),
    status and size."""
    return describe(service.learned.get(name))


@router.patch(
    "/{name}",
    response_model=LearnedModelDescription,
    responses=problems.openapi_responses(400, 403, 404, 409, 422),
    summary="Set a learned model's threshold",
)
async def set_threshold(
    service: ServiceDep, name: str, change: Annotated[ThresholdChange, Body()]
) -> LearnedModelDescription:
    """`{"threshold": 0.6}` sets the cosine under which a photo is `unknown`; `null`
    calibrates it from the examples again."""
    _check_change(service, name)
    return describe(await service.learned.set_threshold(name, change.threshold))


@router.delete(
    "/{name}/classes/{label}",
    response_model=LearnedModelDescription,
    responses=problems.openapi_responses(403, 404, 409),
    summary="Delete one class",
)
async def delete_class(service: ServiceDep, name: str, label: str) -> LearnedModelDescription:
    """Forget a class and its examples; the model answers without it from the next request."""
    _check_change(service, name)
    return describe(await service.learned.forget(name, label))


@router.delete(
    "/{name}",
    status_code=204,
    responses=problems.openapi_responses(403, 404, 409),
    summary="Delete a learned model",
)
async def delete_model(service: ServiceDep, name: str) -> Response:
    """Delete the model and its file; requests already running finish on it."""
    _check_change(service, name)
    await service.learned.delete(name)
    return Response(status_code=204)


@router.get(
    "/{name}/export",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {"schema": BINARY}}},
        **problems.openapi_responses(403, 404, 409),
    },
    summary="Export a learned model",
)
async def export(service: ServiceDep, name: str) -> StreamingResponse:
    """One file holding everything needed to rebuild the model on another device: each
    example's embedding and a small thumbnail (to embed it anew with another embedding model),
    the classes and the threshold. `PUT /v1/learned/{name}` imports it."""
    if not service.keys.enabled:
        raise Forbidden(
            "exporting a learned model over HTTP needs EDGE_API_KEY: the file holds a "
            "thumbnail of every photo it was taught"
        )
    file = await service.learned.exported(name)  # 404 before the download starts

    async def chunks() -> AsyncIterator[bytes]:
        with file:
            while chunk := await asyncio.to_thread(file.read, 1 << 20):
                yield chunk

    return StreamingResponse(
        chunks(),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}.learned"'},
    )


@router.put(
    "/{name}",
    response_model=LearnedModelDescription,
    responses={
        201: {"model": LearnedModelDescription},
        **problems.openapi_responses(400, 403, 409, 413),
    },
    openapi_extra=openapi_body({"application/octet-stream": {"schema": BINARY}}),
    summary="Import a learned model",
)
async def import_model(request: Request, service: ServiceDep, name: str) -> Response:
    """Create or replace the model from an export file (the request body). The file is
    checked whole before anything changes: a refused import leaves everything as it was."""
    _check_change(service, name)
    model, created = await service.learned.import_file(name, request.stream())
    return Response(
        describe(model).model_dump_json(),
        status_code=201 if created else 200,
        media_type="application/json",
    )
