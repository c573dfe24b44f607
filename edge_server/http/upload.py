"""Reading uploaded images from a request: multipart, JSON with base64, or raw, size-limited.

The limit is enforced while the body streams in, so a huge upload is refused after at most
`limit` bytes have been read, whatever its Content-Length says.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from ..config.settings import Settings
from ..core.errors import BadRequest, TooLarge, UnsupportedMediaType

IMAGE_FIELDS = ("image", "file")
_RAW_TYPES = ("application/octet-stream",)
_JSON_TYPES = ("application/json",)
_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)


# OpenAPI documentation of bodies the routes read themselves (FastAPI cannot infer them).
BINARY: dict[str, Any] = {"type": "string", "format": "binary"}


def form_content(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """The `content` entry of a multipart form with these fields."""
    schema = {"type": "object", "required": required, "properties": properties}
    return {"multipart/form-data": {"schema": schema}}


def openapi_body(content: dict[str, Any]) -> dict[str, Any]:
    """A route's `openapi_extra` documenting its required request body."""
    return {"requestBody": {"required": True, "content": content}}


# The image body every image route takes, as its OpenAPI documentation.
IMAGE_BODY = openapi_body(
    {
        **form_content(
            {
                "image": {
                    **BINARY,
                    "description": "The image file (the field may also be named `file`). "
                    "One image per request.",
                }
            },
            ["image"],
        ),
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {"image": {"type": "string", "format": "byte"}},
            }
        },
        "image/*": {"schema": BINARY},
        "application/octet-stream": {"schema": BINARY},
    }
)


def media_type(request: Request) -> str:
    """The request's media type, lowercase, without parameters ('' when there is none)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_image(request: Request, limit: int) -> bytes:
    """The image bytes of a classify request: multipart, JSON with base64, or a raw body."""
    kind = media_type(request)
    _check_declared_length(request, limit)
    if kind == "multipart/form-data":
        async with multipart_form(request, limit) as form:
            return await image_from_form(form)
    if kind in _JSON_TYPES:
        return image_from_json(await read_body(request, limit))
    if kind.startswith("image/") or kind in _RAW_TYPES:
        return await read_body(request, limit)
    if not kind:
        raise UnsupportedMediaType(
            "the request has no Content-Type; send multipart form data "
            '(curl -F image=@photo.jpg), JSON {"image": "<base64>"} or the raw image '
            "with Content-Type: image/jpeg"
        )
    raise UnsupportedMediaType(
        f"Content-Type {kind} is not accepted; send multipart form data with an "
        "'image' field (curl -F image=@photo.jpg), application/json with "
        '{"image": "<base64>"}, or the raw image with an image/* type '
        "(curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg')"
    )


class TooManyFiles(TooLarge):
    """A form with more files than its route takes (413, unless a route says otherwise)."""


def _too_large(limit: int) -> TooLarge:
    # The connection ends with the answer: the rest of the body is read and thrown away, up
    # to EDGE_LINGER_BYTES, so the client can read it, then closed (ops/connections.py).
    return TooLarge(
        f"the request body is larger than the {limit:,}-byte limit (EDGE_MAX_UPLOAD_BYTES)",
        headers={"Connection": "close"},
    )


def _check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        yield chunk


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it passes `limit` bytes."""
    _check_declared_length(request, limit)
    body = bytearray()
    async for chunk in _limited(request, limit):
        body += chunk
    return bytes(body)


@asynccontextmanager
async def multipart_form(
    request: Request, limit: int, *, max_files: int = 4, files_setting: str = ""
) -> AsyncIterator[FormData]:
    """The parsed multipart form, size-limited while it streams; its files closed on exit.

    `files_setting` names the setting behind `max_files`, for the message when there are more.
    """
    _check_declared_length(request, limit)
    if "boundary=" not in request.headers.get("content-type", ""):
        raise BadRequest(
            "the multipart Content-Type has no boundary; let the client build the form "
            "(curl -F image=@photo.jpg) instead of setting the header by hand"
        )
    parser = MultiPartParser(
        request.headers,
        _limited(request, limit),
        max_files=max_files,
        max_fields=16,
        max_part_size=limit,
    )
    # Keep the file part in memory: it is read whole right after, and within the upload limit.
    # Starlette's default spills parts over 1 MiB to a temporary file, which costs a thread
    # hop and a disk write per chunk, then a disk read, for every phone photo.
    parser.spool_max_size = limit
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if exc.message.startswith("Too many files"):
            where = f" ({files_setting})" if files_setting else ""
            raise TooManyFiles(
                f"the form holds more than {max_files} files; send at most {max_files}{where}"
            ) from exc
        raise BadRequest(f"the multipart body cannot be parsed: {exc.message}") from exc
    # Starlette leaves the file of an unterminated last part open and out of the form; close
    # it now rather than whenever the collector finds it.
    kept = {id(v.file) for _, v in form.multi_items() if isinstance(v, UploadFile)}
    for spooled in getattr(parser, "_files_to_close_on_error", ()):
        if id(spooled) not in kept:
            spooled.close()
    try:
        yield form
    finally:
        await form.close()


@asynccontextmanager
async def batch_form(request: Request, settings: Settings) -> AsyncIterator[FormData]:
    """`multipart_form` for a request of several photos: up to EDGE_MAX_BATCH_IMAGES files."""
    async with multipart_form(
        request,
        settings.max_upload_bytes,
        max_files=settings.max_batch_images,
        files_setting="EDGE_MAX_BATCH_IMAGES",
    ) as form:
        yield form


async def photos_from_form(form: FormData) -> list[bytes]:
    """Every file of the form's `image` (or `file`) fields, in order; text values are passed
    over (the caller says what a form without a photo lacks)."""
    return [
        await value.read()
        for field in IMAGE_FIELDS
        for value in form.getlist(field)
        if not isinstance(value, str)
    ]


async def image_from_form(form: FormData) -> bytes:
    """The one file in the form's `image` (or `file`) field."""
    files = [
        value
        for field in IMAGE_FIELDS
        for value in form.getlist(field)
        if isinstance(value, UploadFile)
    ]
    if len(files) > 1:
        raise BadRequest(
            f"the form holds {len(files)} image files; send one per request "
            "(or several to /classify/batch)"
        )
    if files:
        return await files[0].read()
    for field in IMAGE_FIELDS:
        if isinstance(form.get(field), str):
            raise _text_not_file(field)
    fields = ", ".join(sorted(set(form.keys()))) or "none"
    raise BadRequest(f"the multipart form has no 'image' (or 'file') field; fields sent: {fields}")


async def files_from_form(form: FormData, field: str) -> list[tuple[str, bytes]]:
    """(file name, bytes) of each value of a repeated file field, in order.

    A text value where a file belongs makes the whole form malformed (400): it is a broken
    client, not one bad image among good ones.
    """
    values = form.getlist(field)
    if not values:
        fields = ", ".join(sorted(set(form.keys()))) or "none"
        raise BadRequest(
            f"the multipart form has no '{field}' field; repeat it once per image "
            f"(curl -F {field}=@a.jpg -F {field}=@b.jpg); fields sent: {fields}"
        )
    files: list[tuple[str, bytes]] = []
    for value in values:
        if not isinstance(value, UploadFile):
            raise _text_not_file(field)
        files.append((value.filename or "", await value.read()))
    return files


def _text_not_file(field: str) -> BadRequest:
    return BadRequest(
        f"the form field '{field}' holds text, not a file; "
        f"upload the file (curl -F {field}=@photo.jpg)"
    )


def image_from_json(body: bytes) -> bytes:
    """The image of a JSON body `{"image": "<base64>"}` (a `data:` URL prefix is allowed)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the JSON body cannot be parsed: {exc}") from exc
    if not isinstance(document, dict) or "image" not in document:
        raise BadRequest('the JSON body has no "image" member; send {"image": "<base64>"}')
    encoded = document["image"]
    if not isinstance(encoded, str):
        raise BadRequest('the JSON member "image" must be a base64 string')
    return decode_base64(encoded, what='the JSON member "image"')


def decode_base64(encoded: str, *, what: str) -> bytes:
    """Bytes from standard or URL-safe base64, with or without padding, line breaks or a
    `data:` URL prefix; BadRequest naming `what` otherwise."""
    text = "".join(_DATA_URL.sub("", encoded.strip(), count=1).split())
    text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"{what} is not valid base64: {exc}") from exc
