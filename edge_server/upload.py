"""Reading an uploaded image from a request: multipart field or raw body, size-limited.

The limit is enforced while the body streams in, so a huge upload is refused after at most
`limit` bytes have been read, whatever its Content-Length says.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from .errors import BadRequest, TooLarge, UnsupportedMediaType

IMAGE_FIELDS = ("image", "file")
_RAW_TYPES = ("application/octet-stream",)


async def read_image(request: Request, limit: int) -> bytes:
    """The image bytes of a classify request."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    _check_declared_length(request, limit)
    if media_type == "multipart/form-data":
        return await _from_multipart(request, limit)
    if media_type.startswith("image/") or media_type in _RAW_TYPES:
        return await _read_body(request, limit)
    if not media_type:
        raise UnsupportedMediaType(
            "the request has no Content-Type; send multipart form data "
            "(curl -F image=@photo.jpg) or the raw image with Content-Type: image/jpeg"
        )
    raise UnsupportedMediaType(
        f"Content-Type {media_type} is not accepted; send multipart form data with an "
        "'image' field (curl -F image=@photo.jpg) or the raw image with an image/* type "
        "(curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg')"
    )


def _too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"the request body is larger than the {limit:,}-byte limit (EDGE_MAX_UPLOAD_BYTES)"
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


async def _read_body(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in _limited(request, limit):
        body += chunk
    return bytes(body)


async def _from_multipart(request: Request, limit: int) -> bytes:
    parser = MultiPartParser(
        request.headers, _limited(request, limit), max_files=4, max_fields=16, max_part_size=limit
    )
    # Keep the file part in memory: it is read whole right after, and within the upload limit.
    # Starlette's default spills parts over 1 MiB to a temporary file, which costs a thread
    # hop and a disk write per chunk, then a disk read, for every phone photo.
    parser.spool_max_size = limit
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"the multipart body cannot be parsed: {exc.message}") from exc
    try:
        for field in IMAGE_FIELDS:
            value = form.get(field)
            if isinstance(value, UploadFile):
                return await value.read()
            if isinstance(value, str):
                raise BadRequest(
                    f"the form field '{field}' holds text, not a file; "
                    f"upload the file (curl -F {field}=@photo.jpg)"
                )
        fields = ", ".join(sorted(set(form.keys()))) or "none"
        raise BadRequest(
            f"the multipart form has no 'image' (or 'file') field; fields sent: {fields}"
        )
    finally:
        await form.close()
