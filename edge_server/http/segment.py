"""`POST /segment`: which pixels of the picture are what (a segmenter's route)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from ..core.detection import Task
from ..core.errors import BadRequest
from ..serving import segmenting
from ..serving.invocation import Invocation
from ..serving.schemas import SegmentResponse
from . import problems
from .deps import Authorized, ModelQuery, RegionDep, ResizeDep, ServiceDep
from .exchange import exchange, json_answer, server_timing
from .upload import BINARY, IMAGE_BODY, read_image

T = TypeVar("T")

router = APIRouter(dependencies=[Authorized], responses=problems.openapi_responses(401))


async def _options(
    mask: Annotated[
        str | None,
        Query(
            description="`png`: add the class map at the picture's full size, a palette PNG "
            "of class ids (base64), with its legend.",
            examples=["png"],
            max_length=16,
        ),
    ] = None,
    regions: Annotated[
        str | None,
        Query(
            description="Named polygons, corners as fractions of the image's width and "
            'height, as JSON: {"driveway": [[0.1, 0.5], [0.6, 0.5], [0.6, 1], [0.1, 1]]}; '
            "the answer says what share of each region each class covers. At most 4,096 "
            "characters: a URL stays within what the server reads of a request line.",
            max_length=4096,
        ),
    ] = None,
) -> segmenting.SegmentOptions:
    # Parsed before the body is read, so a bad value costs no upload (400 problem+json).
    return segmenting.SegmentOptions(
        mask=segmenting.mask_option(mask), regions=segmenting.parse_regions(regions)
    )


SegmentOptionsDep = Annotated[segmenting.SegmentOptions, Depends(_options)]

FormatQuery = Annotated[
    str | None,
    Query(
        alias="format",
        description="A picture instead of JSON: `overlay` (JPEG: the classes tinted over the "
        "photo), `cutout` (PNG: the `labels` classes, every other pixel transparent), `blur` "
        "or `fill` (JPEG: the `labels` classes blurred or filled grey, for privacy). Without "
        "it, `Accept: image/jpeg` gives the overlay and `Accept: image/png` the cut-out.",
        max_length=32,
    ),
]
LabelsQuery = Annotated[
    str | None,
    Query(
        description="Comma-separated labels a `cutout` keeps (default: every class but "
        "background) or `blur`/`fill` hides (default: person).",
        examples=["person,dog"],
        max_length=512,
    ),
]
_PICTURES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The answer, or with `format=` (or an image Accept header) a picture.",
        "content": {"image/jpeg": {"schema": BINARY}, "image/png": {"schema": BINARY}},
    }
}


@router.post(
    "/segment",
    response_model=SegmentResponse,
    response_model_exclude_none=True,
    responses={
        **_PICTURES,
        **problems.openapi_responses(400, 404, 408, 413, 415, 422, 500, 503, 504),
    },
    openapi_extra=IMAGE_BODY,
    summary="Which pixels are what",
)
async def segment(
    request: Request,
    service: ServiceDep,
    region: RegionDep,
    resize: ResizeDep,
    options: SegmentOptionsDep,
    model: ModelQuery = None,
    format_: FormatQuery = None,
    labels: LabelsQuery = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Segment one image sent as multipart field `image` (or `file`), as JSON
    `{"image": "<base64>"}` or as a raw image body: every class present with its share of the
    picture and the box of its pixels; with `regions=`, what covers each named region; with
    `mask=png`, the class map itself; with `format=`, a picture instead."""
    name = service.model_for(Task.segmentation, model)  # 503, 404 or 400 before the body

    async def answered(read: Callable[[Invocation], Awaitable[T]]) -> T:
        """The upload read and answered by the segmenter through `read`."""
        return await exchange(
            service,
            request,
            lambda: read_image(request, service.settings.max_upload_bytes),
            lambda data: service.answer(
                Task.segmentation,
                data,
                read,
                started=request.state.request_started,
                model=model,
                region=region,
                resize=resize,
            ),
        )

    segmenting.check_fit(resize)
    kind = segmenting.picture_kind(format_, accept)
    if kind is not None and (options.mask or options.regions):
        raise BadRequest(
            f"a picture answer ({kind.value}) carries no mask or regions; leave out format= "
            "(and an image Accept header) for JSON with mask=png and regions="
        )
    if kind is not None:
        wanted = segmenting.PictureRequest(
            kind,
            segmenting.picture_classes(kind, labels, service.ready_model(name).info.labels),
        )
        picture = await answered(segmenting.pictured(wanted))
        return Response(
            picture.data,
            media_type=picture.media_type,
            headers={"Server-Timing": server_timing(picture.timing.model_dump())},
        )
    answer = await answered(segmenting.segmented(options))
    return json_answer(answer)
