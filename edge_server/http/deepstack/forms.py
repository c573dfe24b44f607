"""The multipart form every DeepStack route reads: `image`, `min_confidence` and `api_key`
(CodeProject.AI's background remover: `image` and `use_alphamatting`; the face routes: any
number of files under any field names, and `userid`).

Clients post the key as the form field `api_key`, empty when none is set (the
`deepstack-python` client and Frigate's plugin always send the field); headers work too.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from ...core.errors import BadRequest, UnsupportedMediaType
from ...serving.service import Service
from ..upload import image_from_form, media_type, multipart_form, read_body

# The most a form of text fields only (/v1/vision/face/list and /delete) may weigh.
FIELDS_LIMIT = 64 * 1024


@dataclass(frozen=True)
class VisionForm:
    """What a DeepStack client sent: the image and its least confidence (None: not sent)."""

    image: bytes
    min_confidence: float | None


@dataclass(frozen=True)
class BackgroundForm:
    """What a background-remover client sent: the image, and whether it asked for alpha
    matting (read as CodeProject.AI reads it: the text "true"; accepted and not done)."""

    image: bytes
    use_alphamatting: bool


async def read_vision_form(request: Request, service: Service) -> VisionForm:
    """The form of a DeepStack request, the API key checked (401) before the image is kept."""
    async with _checked_form(request, service) as form:
        return VisionForm(
            await image_from_form(form), parse_min_confidence(form.get("min_confidence"))
        )


async def read_background_form(request: Request, service: Service) -> BackgroundForm:
    """The form of a background-remover request, the API key checked (401) first."""
    async with _checked_form(request, service) as form:
        matting = form.get("use_alphamatting")
        return BackgroundForm(
            await image_from_form(form),
            isinstance(matting, str) and matting.strip().lower() == "true",
        )


@dataclass(frozen=True)
class FaceForm:
    """What a DeepStack face client sent: every file of the form whatever its field name (as
    DeepStack reads /register and /match: `image`, `image1`, `image2`...), in order, the
    `userid` (None when absent or blank) and the least confidence (None: not sent)."""

    images: list[bytes]
    userid: str | None
    min_confidence: float | None


async def read_face_form(request: Request, service: Service, *, max_files: int) -> FaceForm:
    """The form of a DeepStack face request, the API key checked (401) before the photos
    are kept; more than `max_files` files is a 413 naming EDGE_MAX_BATCH_IMAGES. A form of
    text fields only (URL-encoded, or no body) holds no image: the route answers DeepStack's
    "No valid image file found"."""
    if media_type(request) != "multipart/form-data":
        fields = await read_fields(request, service)
        return FaceForm(
            [], _text(fields.get("userid")), parse_min_confidence(fields.get("min_confidence"))
        )
    async with _checked_form(request, service, max_files=max_files) as form:
        images = [
            await value.read() for _, value in form.multi_items() if isinstance(value, UploadFile)
        ]
        return FaceForm(
            images,
            _text(form.get("userid")),
            parse_min_confidence(form.get("min_confidence")),
        )


async def read_fields(request: Request, service: Service) -> dict[str, str]:
    """The text fields of a request that sends no image (/v1/vision/face/list, /delete):
    multipart, URL-encoded (deepstack-python posts `api_key` so) or no body at all, the API
    key checked (401)."""
    kind = media_type(request)
    if kind == "multipart/form-data":
        async with _checked_form(request, service) as form:
            return {k: v for k, v in form.multi_items() if isinstance(v, str)}
    if kind not in ("", "application/x-www-form-urlencoded"):
        raise UnsupportedMediaType(
            f"Content-Type {kind} is not accepted here; send the fields as a form "
            "(curl -F userid=alice, or -d userid=alice)"
        )
    body = await read_body(request, FIELDS_LIMIT)
    try:
        pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise BadRequest("the form is not UTF-8 text") from exc
    fields = dict(pairs)
    _check_key(request, service, fields.get("api_key"))
    return fields


@asynccontextmanager
async def _checked_form(
    request: Request, service: Service, *, max_files: int = 4
) -> AsyncIterator[FormData]:
    """The multipart form (415 for any other body), its API key checked."""
    if media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType(
            "send the image as multipart form field 'image' (curl -F image=@photo.jpg)"
        )
    async with multipart_form(
        request,
        service.settings.max_upload_bytes,
        max_files=max_files,
        files_setting="EDGE_MAX_BATCH_IMAGES" if max_files > 4 else "",
    ) as form:
        _check_key(request, service, form.get("api_key"))
        yield form


def _check_key(request: Request, service: Service, form_key: object) -> None:
    service.keys.check(
        request.headers.get("authorization"),
        request.headers.get("x-api-key")
        or (form_key if isinstance(form_key, str) and form_key else None),
    )


def _text(value: object) -> str | None:
    """A text field's value, stripped; None when absent, blank or a file."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def parse_min_confidence(value: object) -> float | None:
    """The form's min_confidence as a number in 0..1 (None when absent or empty)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest("min_confidence must be a form field holding a number, not a file")
    try:
        number = float(value)
    except ValueError as exc:
        raise BadRequest(f"min_confidence {value!r} is not a number; use 0..1") from exc
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise BadRequest(f"min_confidence {value!r} is outside 0..1")
    return number
