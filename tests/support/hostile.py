"""A corpus of bad requests: each is (name, request arguments, expected status, detail fragment)."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from support import variants


@dataclass(frozen=True)
class BadRequest:
    """One hostile or broken request and the answer it must get."""

    name: str
    status: int
    detail: str
    method: str = "POST"
    path: str = "/classify"
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    files: list[tuple[str, tuple[str, bytes]]] | None = None
    data: dict[str, str] | None = None


def _png(image: Image.Image) -> bytes:
    return variants.encode(image, "PNG")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims a size (no pixel data needed to test header checks)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )


def _bad_crc_png(photo: bytes) -> bytes:
    data = bytearray(_png(variants.open_rgb(photo)))
    data[29] ^= 0xFF  # the IHDR chunk's CRC
    return bytes(data)


def _multipart(boundary: str, parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = io.BytesIO()
    for name, filename, payload in parts:
        out.write(f"--{boundary}\r\n".encode())
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out.write(f"Content-Disposition: {disposition}\r\n\r\n".encode())
        out.write(payload + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


def corpus(images: Path, upload_limit: int) -> list[BadRequest]:
    """At least 30 distinct bad requests built from the real photos."""
    jpeg = (images / "grace_hopper.jpg").read_bytes()
    png = (images / "coffee.png").read_bytes()
    webp = variants.webp(jpeg)
    gif = variants.gif(jpeg)
    tiff = variants.tiff(jpeg)
    raw_jpeg = {"Content-Type": "image/jpeg"}
    multipart = {"Content-Type": "multipart/form-data; boundary=xyz"}
    return [
        BadRequest("empty raw body", 400, "empty", headers=raw_jpeg, content=b""),
        BadRequest("empty file", 400, "empty", files=[("image", ("e.jpg", b""))]),
        BadRequest(
            "text labelled jpeg",
            400,
            "not an image",
            headers=raw_jpeg,
            content=b"hello, world\n" * 20,
        ),
        BadRequest(
            "html labelled png",
            400,
            "not an image",
            headers={"Content-Type": "image/png"},
            content=b"<!doctype html><html><body>hi</body></html>",
        ),
        BadRequest(
            "random bytes", 400, "not an image", headers=raw_jpeg, content=bytes(range(256)) * 16
        ),
        BadRequest("nul bytes", 400, "not an image", headers=raw_jpeg, content=b"\x00" * 4096),
        BadRequest(
            "pdf",
            415,
            "PDF images are not supported",
            files=[("image", ("doc.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"))],
        ),
        BadRequest(
            "svg",
            415,
            "SVG images are not supported",
            files=[("image", ("a.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>'))],
        ),
        BadRequest(
            "heic",
            415,
            "HEIC images are not supported",
            files=[
                (
                    "image",
                    ("a.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64),
                )
            ],
        ),
        BadRequest(
            "avif",
            415,
            "AVIF images are not supported",
            files=[
                (
                    "image",
                    (
                        "a.avif",
                        b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x00" * 64,
                    ),
                )
            ],
        ),
        BadRequest(
            "truncated jpeg", 400, "truncated", headers=raw_jpeg, content=jpeg[: len(jpeg) // 3]
        ),
        BadRequest("jpeg header only", 400, "truncated", headers=raw_jpeg, content=jpeg[:700]),
        BadRequest(
            "truncated png", 400, "truncated", files=[("image", ("t.png", png[: len(png) // 2]))]
        ),
        BadRequest("png bad crc", 400, "", files=[("image", ("c.png", _bad_crc_png(png)))]),
        BadRequest(
            "truncated webp", 400, "", files=[("image", ("t.webp", webp[: len(webp) // 2]))]
        ),
        BadRequest("truncated gif", 400, "", files=[("image", ("t.gif", gif[: len(gif) // 2]))]),
        BadRequest("truncated tiff", 400, "", files=[("image", ("t.tif", tiff[: len(tiff) // 3]))]),
        BadRequest("zero-size png", 400, "", files=[("image", ("z.png", _png_with_size(0, 0)))]),
        BadRequest(
            "1x1 png",
            400,
            "EDGE_MIN_IMAGE_SIDE",
            files=[("image", ("1.png", _png(Image.new("RGB", (1, 1)))))],
        ),
        BadRequest(
            "100000x1 png",
            400,
            "EDGE_MIN_IMAGE_SIDE",
            files=[("image", ("w.png", _png(Image.new("L", (100_000, 1)))))],
        ),
        BadRequest(
            "1x100000 png",
            400,
            "EDGE_MIN_IMAGE_SIDE",
            files=[("image", ("h.png", _png(Image.new("L", (1, 100_000)))))],
        ),
        BadRequest(
            "decompression bomb",
            413,
            "EDGE_MAX_IMAGE_PIXELS",
            files=[("image", ("bomb.png", _png_with_size(12_000, 12_000)))],
        ),
        BadRequest(
            "giant bomb",
            413,
            "EDGE_MAX_IMAGE_PIXELS",
            files=[("image", ("giant.png", _png_with_size(65_000, 65_000)))],
        ),
        BadRequest(
            "body over the limit",
            413,
            "EDGE_MAX_UPLOAD_BYTES",
            headers=raw_jpeg,
            content=b"\xff" * (upload_limit + 1),
        ),
        BadRequest(
            "text/plain",
            415,
            "text/plain is not accepted",
            headers={"Content-Type": "text/plain"},
            content=jpeg,
        ),
        BadRequest(
            "application/xml",
            415,
            "application/xml is not accepted",
            headers={"Content-Type": "application/xml"},
            content=b"<image>1</image>",
        ),
        BadRequest(
            "json image not base64 text",
            400,
            "base64 string",
            headers={"Content-Type": "application/json"},
            content=b'{"image": 1}',
        ),
        BadRequest(
            "json base64 of text",
            400,
            "not an image",
            headers={"Content-Type": "application/json"},
            content=b'{"image": "aGVsbG8gd29ybGQ="}',
        ),
        BadRequest(
            "form-urlencoded (curl --data-binary)",
            415,
            "curl",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            content=jpeg,
        ),
        BadRequest("no content type", 415, "no Content-Type", content=jpeg),
        BadRequest(
            "multipart without boundary",
            400,
            "no boundary",
            headers={"Content-Type": "multipart/form-data"},
            content=b"--x\r\n",
        ),
        BadRequest(
            "multipart without image field", 400, "no 'image'", files=[("picture", ("p.jpg", jpeg))]
        ),
        BadRequest(
            "text in the image field",
            400,
            "holds text",
            data={"image": "grace.jpg"},
            files=[("note", ("n.txt", b"x"))],
        ),
        BadRequest(
            "two image files",
            400,
            "2 image files",
            files=[("image", ("a.jpg", jpeg)), ("image", ("b.jpg", jpeg))],
        ),
        BadRequest(
            "image and file fields",
            400,
            "2 image files",
            files=[("image", ("a.jpg", jpeg)), ("file", ("b.png", png))],
        ),
        BadRequest(
            "header-only multipart", 400, "no 'image'", headers=multipart, content=b"--xyz--\r\n"
        ),
        BadRequest(
            "unterminated multipart",
            400,
            "",
            headers=multipart,
            content=b'--xyz\r\nContent-Disposition: form-data; name="image"; '
            b'filename="a.jpg"\r\n\r\n' + jpeg[:100],
        ),
        BadRequest(
            "too many fields",
            400,
            "",
            headers={"Content-Type": "multipart/form-data; boundary=b"},
            content=_multipart("b", [(f"f{i}", None, b"v") for i in range(40)]),
        ),
        BadRequest(
            "non-numeric top_k",
            422,
            "top_k",
            params={"top_k": "five"},
            files=[("image", ("a.jpg", jpeg))],
        ),
        BadRequest(
            "zero top_k", 422, "top_k", params={"top_k": "0"}, files=[("image", ("a.jpg", jpeg))]
        ),
        BadRequest(
            "negative top_k",
            422,
            "top_k",
            params={"top_k": "-3"},
            files=[("image", ("a.jpg", jpeg))],
        ),
        BadRequest(
            "huge top_k",
            422,
            "top_k",
            params={"top_k": "99999999999999999999"},
            files=[("image", ("a.jpg", jpeg))],
        ),
        BadRequest(
            "threshold above 1",
            422,
            "threshold",
            params={"threshold": "1.5"},
            files=[("image", ("a.jpg", jpeg))],
        ),
        BadRequest(
            "threshold nan",
            422,
            "threshold",
            params={"threshold": "nan"},
            files=[("image", ("a.jpg", jpeg))],
        ),
        BadRequest("GET on classify", 405, "", method="GET"),
        BadRequest("unknown route", 404, "", path="/classify/../../etc/passwd"),
    ]
