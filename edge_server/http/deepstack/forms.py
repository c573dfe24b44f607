"""The multipart form every DeepStack route reads: `image`, `min_confidence` and `api_key`
(CodeProject.AI's background remover: `image` and `use_alphamatting`).

Clients post the key as the form field `api_key`, empty when none is set (the
`deepstack-python` client and Frigate's plugin always send the field); headers work too.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.datastructures import FormData
from starlette.requests import Request

from ...core.errors import BadRequest, UnsupportedMediaType
from ...serving.service import Service
from ..upload import image_from_form, media_type, multipart_form


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


@asynccontextmanager
async def _checked_form(request: Request, service: Service) -> AsyncIterator[FormData]:
    """The multipart form (415 for any other body), its API key checked."""
    if media_type(request) != "multipart/form-data":
        raise UnsupportedMediaType(
            "send the image as multipart form field 'image' (curl -F image=@photo.jpg)"
        )
    async with multipart_form(request, service.settings.max_upload_bytes) as form:
        form_key = form.get("api_key")
        service.keys.check(
            request.headers.get("authorization"),
            request.headers.get("x-api-key")
            or (form_key if isinstance(form_key, str) and form_key else None),
        )
        yield form


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
