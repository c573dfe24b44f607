"""Odd encodings of a real photo, made in memory (the same picture, other bytes)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image

# What ImageOps.exif_transpose applies for each orientation, and so how to store a photo
# for that orientation to come out upright.
_STORE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def open_rgb(data: bytes) -> Image.Image:
    """Decode bytes to RGB."""
    return Image.open(io.BytesIO(data)).convert("RGB")


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """Encode a Pillow image."""
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def exif_rotated(data: bytes, orientation: int) -> bytes:
    """A JPEG whose pixels are turned so that its EXIF orientation makes them upright."""
    stored = open_rgb(data).transpose(_STORE_FOR_ORIENTATION[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def cmyk_jpeg(data: bytes) -> bytes:
    return encode(open_rgb(data).convert("CMYK"), "JPEG", quality=95)


def rgba_png(data: bytes) -> bytes:
    """RGBA with a fully transparent 8-pixel frame and an opaque inside."""
    image = open_rgb(data).convert("RGBA")
    alpha = np.zeros((image.height, image.width), dtype=np.uint8)
    alpha[8:-8, 8:-8] = 255
    image.putalpha(Image.fromarray(alpha, "L"))
    return encode(image, "PNG")


def palette_png(data: bytes) -> bytes:
    image = open_rgb(data).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    return encode(image, "PNG")


def palette_png_with_transparency(data: bytes) -> bytes:
    image = open_rgb(data).convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
    return encode(image, "PNG", transparency=0)


def gray16_png(data: bytes) -> bytes:
    """A 16-bit grayscale PNG using the full 0..65535 range."""
    gray = np.asarray(open_rgb(data).convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(gray), "PNG")


def gray8_png(data: bytes) -> bytes:
    return encode(open_rgb(data).convert("L"), "PNG")


def la_png(data: bytes) -> bytes:
    return encode(open_rgb(data).convert("LA"), "PNG")


def webp(data: bytes) -> bytes:
    return encode(open_rgb(data), "WEBP", quality=90)


def progressive_jpeg(data: bytes) -> bytes:
    return encode(open_rgb(data), "JPEG", quality=95, progressive=True)


def bmp(data: bytes) -> bytes:
    return encode(open_rgb(data), "BMP")


def gif(data: bytes) -> bytes:
    return encode(open_rgb(data).convert("P", palette=Image.Palette.ADAPTIVE), "GIF")


def tiff(data: bytes) -> bytes:
    return encode(open_rgb(data), "TIFF")


def upscaled_jpeg(data: bytes, width: int, height: int) -> bytes:
    """The photo resized to a large size, as a phone camera would produce it."""
    return encode(
        open_rgb(data).resize((width, height), Image.Resampling.BICUBIC), "JPEG", quality=90
    )


# Same picture, other encodings: each must classify like the original.
SAME_PICTURE: dict[str, Callable[[bytes], bytes]] = {
    "cmyk-jpeg": cmyk_jpeg,
    "rgba-png": rgba_png,
    "palette-png": palette_png,
    "palette-png-transparency": palette_png_with_transparency,
    "webp": webp,
    "progressive-jpeg": progressive_jpeg,
    "bmp": bmp,
    "gif": gif,
    "tiff": tiff,
}


def side_by_side(left: bytes, right: bytes, size: int = 320) -> bytes:
    """Two photos squashed to size x size each, left and right in one JPEG."""
    canvas = Image.new("RGB", (2 * size, size))
    canvas.paste(open_rgb(left).resize((size, size), Image.Resampling.BICUBIC), (0, 0))
    canvas.paste(open_rgb(right).resize((size, size), Image.Resampling.BICUBIC), (size, 0))
    return encode(canvas, "JPEG", quality=95)
