"""Image decoding and fitting: bytes in, an RGB picture of the model's input size out.

Pure functions over Pillow images. Large JPEGs are decoded at a reduced DCT scale (Pillow's
draft mode: libjpeg-turbo scales by 1/2, 1/4 or 1/8 while decoding) to the smallest size
that still covers the model's input, which is most of the cost saved on large photos; the
resize after it averages over the remaining pixels.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import BadImage, ServiceError, TooLarge, UnsupportedMediaType
from .region import Region, crop

# Formats a client may send (phones' MPO files open through the JPEG plugin). Anything else
# Pillow can open (EPS via Ghostscript, PSD, ICO...) is refused: fewer decoders reachable from
# the network is less attack surface.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")

# A JPEG is decoded at reduced scale only when the scale is 1/4 or 1/8: that is where the time
# goes (1080p and larger photos), while at 1/2 the saving is small and the resize after it has
# too few pixels left to average (a 1/2-scale decode of a 517x606 photo moves a score by 0.03).
# The fidelity benchmark (benchmarks/fidelity.py) compares the result with a full-size decode
# over real-photo variants, against the noise floor of +-1 grey level.
MIN_DRAFT_REDUCTION = 4
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class ImageFacts:
    """What an upload was: its upright size at full resolution, format, orientation."""

    width: int
    height: int
    format: str
    orientation_applied: bool


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB picture and what the upload was."""

    picture: Image.Image
    width: int  # of the upright image at full resolution
    height: int
    format: str
    orientation_applied: bool

    @property
    def facts(self) -> ImageFacts:
        """The facts without the pixels (which need not outlive preprocessing)."""
        return ImageFacts(self.width, self.height, self.format, self.orientation_applied)


def decode(
    data: bytes,
    *,
    min_size: int,
    max_pixels: int,
    min_side: int = 1,
    region: Region | None = None,
    charge: Callable[[int], None] | None = None,
) -> DecodedImage:
    """Decode an upload into an upright RGB image at least `min_size` on its short side.

    The pixel limit and the smallest side are checked from the header, before any pixel is
    decoded. With a region, the picture is the part of the upright image inside it (width
    and height stay those of the whole upright image), and the reduced JPEG decode keeps that
    part large enough. `charge` is called with the bytes decoding will hold (from the header
    and the reduced scale really decoded) before any pixel is decoded; it may wait or raise.
    """
    if not data:
        raise BadImage("the request body is empty; send the image bytes")
    try:
        with warnings.catch_warnings():
            # The pixel limit below is ours; Pillow's own bomb warning would only add noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as exc:
        # Pillow refuses twice its own limit while reading the header; same answer as ours.
        raise TooLarge(
            f"the image has more pixels than the limit of {max_pixels:,} (EDGE_MAX_IMAGE_PIXELS)"
        ) from exc
    except UnidentifiedImageError as exc:
        known = sniff_unsupported(data)
        if known is not None:
            raise UnsupportedMediaType(
                f"{known} images are not supported; send "
                f"{', '.join(sorted(ACCEPTED_FORMATS))} (convert it first)"
            ) from exc
        raise BadImage(
            "the body is not an image in a supported format "
            f"({', '.join(sorted(ACCEPTED_FORMATS))})"
        ) from exc
    except Exception as exc:  # Pillow's header parsers raise many types on corrupt input
        raise BadImage(f"the image header cannot be read: {exc}") from exc

    width, height = image.size
    if min(width, height) < max(1, min_side):
        raise BadImage(
            f"the image is {width}x{height} pixels; both sides must be at least {min_side} "
            "(EDGE_MIN_IMAGE_SIDE)"
        )
    if width * height > max_pixels:
        raise TooLarge(
            f"the image is {width}x{height} = {width * height:,} pixels; the limit is "
            f"{max_pixels:,} (EDGE_MAX_IMAGE_PIXELS)"
        )
    fmt = image.format or "unknown"
    try:
        if fmt in ("JPEG", "MPO"):
            draft_scale(image, min_size, region)
        # image.size is now the size really decoded, which the decode memory is charged for.
        if charge is not None:
            charge(decode_bytes(image.mode, image.size, transposed=False))
        image.load()
        # Read once the pixels are in: a PNG's EXIF may follow them, and reading it decodes
        # the whole image (which must be charged first).
        orientation = _orientation(image)
        if charge is not None and orientation != 1:
            turned = decode_bytes(image.mode, image.size, transposed=True)
            charge(turned - decode_bytes(image.mode, image.size, transposed=False))
        upright = ImageOps.exif_transpose(image) if orientation != 1 else image
        picture = to_rgb(upright)
        if region is not None:
            picture = crop(picture, region)
    except ServiceError:  # the memory budget's answer
        raise
    except Exception as exc:  # truncated data, bad CRCs, decoder errors of every kind
        raise BadImage(f"the {fmt} image is truncated or corrupt: {exc}") from exc
    if orientation in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return DecodedImage(picture, width, height, fmt, orientation != 1)


def draft_scale(image: Image.Image, min_size: int, region: Region | None = None) -> None:
    """Set a large JPEG to decode at the smallest DCT scale keeping `min_size` on both sides.

    With a region, the part inside it keeps `min_size`. Pillow picks the largest of 1/8 and
    1/4 (1/2 never happens here) whose result is at least that on both sides; afterwards
    `image.size` is the size that will be decoded.
    """
    wanted = math.ceil(min_size / (region.smallest_fraction if region else 1))
    if min(image.size) >= MIN_DRAFT_REDUCTION * wanted:
        image.draft("RGB", (wanted, wanted))


# Bytes a pixel takes in Pillow's memory, by mode: every multi-band mode is stored four bytes a
# pixel (RGB too), 32-bit modes four, 16-bit two, the rest one.
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# Working copies of the whole picture that decoding makes after the pixels are in, in units
# of the decoded RGB picture: converting (alpha is composited onto white through three RGBA
# copies; 16-bit and float go through float64 arrays), then the resize's intermediate.
_COPIES = {"RGB": 0.0, "RGBA": 4.0, "LA": 4.0, "PA": 5.0, "P": 5.0, "RGBa": 4.0, "La": 4.0}
_NUMERIC_COPIES = 7.0  # I, F, I;16*: float64 values, scaled, clipped, uint8, L, RGB


def decode_bytes(mode: str, size: tuple[int, int], *, transposed: bool) -> int:
    """Bytes held at the peak of decoding an image of this mode and (decoded) size to RGB.

    The decoded pixels, an upright copy when the EXIF orientation turns it, the conversions to
    RGB, and a margin for the resize (its intermediate is at most 256 pixels on one side).
    """
    width, height = size
    area = width * height
    decoded = area * _PIXEL_BYTES.get(mode, 4)
    rgb = area * 4
    if mode in _COPIES:
        copies = _COPIES[mode]
    elif mode in ("I", "F") or mode.startswith("I;16"):
        copies = _NUMERIC_COPIES
    else:
        copies = 1.0  # L, CMYK, YCbCr...: one convert("RGB")
    upright = decoded if transposed else 0
    return decoded + upright + int(copies * rgb) + max(width, height) * 256 * 4


# Signatures of image and document formats people send by mistake: they get 415 and a hint,
# not a generic "not an image".
_SIGNATURES: tuple[tuple[str, bytes, int], ...] = (
    ("PDF", b"%PDF-", 0),
    ("Photoshop", b"8BPS", 0),
    ("ICO", b"\x00\x00\x01\x00", 0),
    ("JPEG XL", b"\xff\x0a", 0),
    ("JPEG XL", b"\x00\x00\x00\x0cJXL ", 0),
    ("PostScript", b"%!PS", 0),
    ("JPEG 2000", b"\x00\x00\x00\x0cjP  ", 0),
)
_HEIF_BRANDS = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"hevc": "HEIC",
    b"avif": "AVIF",
    b"avis": "AVIF",
}


def sniff_unsupported(data: bytes) -> str | None:
    """The name of a recognisable format edge-server does not accept, else None."""
    for name, magic, offset in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return name
    if data[4:8] == b"ftyp":
        brand = _HEIF_BRANDS.get(data[8:12])
        if brand is not None:
            return brand
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "SVG"
    return None


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a broken EXIF block is not worth refusing the photo for
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to 8-bit RGB; transparency is composited onto white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # Pillow's convert() clips 16-bit values at 255 instead of scaling them.
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(values * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float64), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


LETTERBOX_GREY = (128, 128, 128)


class ResizeMode(StrEnum):
    """How a photo is fitted to the model's square input."""

    squash = "squash"
    center_crop = "center-crop"
    letterbox = "letterbox"


def fit(picture: Image.Image, size: tuple[int, int], mode: ResizeMode) -> Image.Image:
    """Fit an RGB picture to (width, height) by squashing, centre-cropping or letterboxing."""
    if picture.size == size:
        return picture
    if mode is ResizeMode.squash:
        return picture.resize(size, Image.Resampling.BILINEAR)
    if mode is ResizeMode.center_crop:
        return ImageOps.fit(picture, size, Image.Resampling.BILINEAR)
    # Grey bands: 128 is the zero of a uint8 model's input (mean 127.5), so a band says
    # nothing; black is a strong dark signal along the picture's edges. Measured on the
    # segmenters: pooled IoU 0.751 with black bands, 0.771 with grey (docs/segmentation.md).
    return ImageOps.pad(picture, size, Image.Resampling.BILINEAR, color=LETTERBOX_GREY)


def jpeg_thumbnail(picture: Image.Image, side: int, quality: int = 85) -> bytes:
    """A JPEG of the picture at most `side` pixels on its long side (aspect kept)."""
    small = picture.copy()
    small.thumbnail((side, side), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    small.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def pixels(picture: Image.Image) -> npt.NDArray[np.uint8]:
    """The picture as an HxWx3 uint8 array."""
    return np.asarray(picture, dtype=np.uint8)
