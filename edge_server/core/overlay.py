"""Pictures of a segmentation: the photo with its classes drawn on it, cut out, or hidden.

Each takes the segmented picture (the upright photo, or its crop, at full resolution) and its
full-size class ids (`segmentation.full_size`), and gives a new picture of the same size:

- `overlay`: every class but the background tinted with its PASCAL VOC colour (what the page
  and Home Assistant's image entity show);
- `cutout`: the pixels of the chosen classes on a transparent background (a PNG);
- `hidden`: the photo with the chosen classes blurred or filled (privacy masking: people
  blurred before a snapshot leaves the house).

All of it is Pillow's C code over whole images; the cost is a few bytes a pixel
(`PICTURE_BYTES_PER_PIXEL`), which the caller charges to the decode memory budget.
"""

from __future__ import annotations

import io
import math
from collections.abc import Collection
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

from .segmentation import colour

# What rendering holds beyond the decoded RGB picture (3 bytes a pixel, charged by decoding):
# the class ids and a selection mask (1 + 1), the result (3; a cut-out's RGBA, 4), and at
# most the whole picture's box cropped, tinted and blended (3 + 1 + 3 + 3 for the overlay,
# the most of the four), rounded up.
PICTURE_BYTES_PER_PIXEL = 16
OVERLAY_OPACITY = 0.55
JPEG_QUALITY = 85
FILL_GREY = 128  # the models' zero input, and a mid grey that JPEG codes exactly
BACKGROUND = 0


class Picture(StrEnum):
    """What `/segment` can answer with instead of JSON."""

    overlay = "overlay"  # JPEG: the classes tinted over the photo
    cutout = "cutout"  # PNG: the chosen classes, the rest transparent
    blur = "blur"  # JPEG: the chosen classes blurred
    fill = "fill"  # JPEG: the chosen classes filled with grey

    @property
    def media_type(self) -> str:
        """The picture's MIME type."""
        return "image/png" if self is Picture.cutout else "image/jpeg"


def _palette() -> list[int]:
    return [value for index in range(256) for value in colour(index)]


def _chosen(ids: npt.NDArray[Any], indices: Collection[int]) -> npt.NDArray[np.bool_]:
    """True where the class id is one of `indices` (a table lookup: ids are small unsigned
    integers, and indexing a table is several times faster than `np.isin` over a picture)."""
    table = np.zeros(int(ids.max(initial=0)) + 1, dtype=np.bool_)
    table[[index for index in indices if index < table.size]] = True
    chosen: npt.NDArray[np.bool_] = table[ids]
    return chosen


def _selection(ids: npt.NDArray[Any], indices: Collection[int]) -> Image.Image:
    """An "L" mask, 255 where the class id is one of `indices`."""
    return Image.fromarray(_chosen(ids, indices).astype(np.uint8) * 255, "L")


def overlay(
    picture: Image.Image, ids: npt.NDArray[Any], opacity: float = OVERLAY_OPACITY
) -> Image.Image:
    """The photo with every non-background pixel tinted with its class's colour.

    Only the box around the tinted pixels is blended: a camera's people and cars often
    cover a few per cent of the frame.
    """
    _check(picture, ids)
    selection = _selection_not(ids, BACKGROUND)
    result = picture.copy()
    box = selection.getbbox()
    if box is None:
        return result
    left, top, right, bottom = box
    tint = Image.fromarray(ids[top:bottom, left:right].astype(np.uint8), "P")
    tint.putpalette(_palette())
    tinted = Image.blend(picture.crop(box), tint.convert("RGB"), opacity)
    result.paste(tinted, box[:2], selection.crop(box))
    return result


def cutout(picture: Image.Image, ids: npt.NDArray[Any], keep: Collection[int]) -> Image.Image:
    """The pixels of the `keep` classes, everything else transparent black (RGBA).

    The transparent pixels hold no colour: a cut-out that kept the photo's colours under a
    zero alpha would hand the whole background to anyone who drops the alpha channel.
    """
    _check(picture, ids)
    selection = _selection(ids, keep)
    result = Image.new("RGBA", picture.size)
    box = selection.getbbox()
    if box is not None:
        result.paste(picture.crop(box).convert("RGBA"), box[:2], selection.crop(box))
    return result


def hidden(
    picture: Image.Image, ids: npt.NDArray[Any], hide: Collection[int], how: Picture
) -> Image.Image:
    """The photo with the `hide` classes blurred (`Picture.blur`) or filled grey (`fill`).

    The blur's radius grows with the picture (a 50th of its shorter side, at least 8 pixels),
    so a face is unreadable at any resolution. Only the box around the hidden pixels is
    covered, grown by three radii so that every hidden pixel is blurred with the photo's own
    neighbours.
    """
    _check(picture, ids)
    if how is Picture.blur:
        radius = max(8.0, min(picture.size) / 50)
        margin = math.ceil(3 * radius)
    elif how is Picture.fill:
        radius, margin = 0.0, 0
    else:
        raise ValueError(f"{how} does not hide classes")
    selection = _selection(ids, hide)
    result = picture.copy()
    box = _grown(selection.getbbox(), margin, picture.size)
    if box is None:
        return result
    part = picture.crop(box)
    if how is Picture.blur:
        cover = _blurred(part, radius)
    else:
        cover = Image.new("RGB", part.size, (FILL_GREY,) * 3)
    result.paste(cover, box[:2], selection.crop(box))
    return result


def _blurred(part: Image.Image, radius: float) -> Image.Image:
    """A Gaussian blur of `radius`, made at a reduced scale (a box average over `radius / 4`
    pixels, then the rest of the radius) and scaled back: a blur that wide keeps no detail a
    reduction loses, and a 12 MP photo's blur takes a fraction of the time at full scale.
    """
    factor = max(1, min(int(radius // 4), *part.size))
    small = part.reduce(factor) if factor > 1 else part
    blurred = small.filter(ImageFilter.GaussianBlur(radius / factor))
    return blurred.resize(part.size, Image.Resampling.BILINEAR) if factor > 1 else blurred


def _grown(
    box: tuple[int, int, int, int] | None, margin: int, size: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    if box is None:
        return None
    left, top, right, bottom = box
    width, height = size
    return (
        max(0, left - margin),
        max(0, top - margin),
        min(width, right + margin),
        min(height, bottom + margin),
    )


def encoded(picture: Image.Image, kind: Picture) -> bytes:
    """The picture in the format its kind is answered in, with none of the upload's
    metadata: Pillow writes a source JPEG's comment into a JPEG made from it unless told
    otherwise, and a privacy blur should carry its pixels and nothing more."""
    out = io.BytesIO()
    if kind.media_type == "image/png":
        picture.save(out, "PNG", compress_level=1)
    else:
        picture.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY, comment=b"")
    return out.getvalue()


def _selection_not(ids: npt.NDArray[Any], index: int) -> Image.Image:
    return Image.fromarray((ids != index).astype(np.uint8) * 255, "L")


def _check(picture: Image.Image, ids: npt.NDArray[Any]) -> None:
    if picture.mode != "RGB" or (ids.shape[1], ids.shape[0]) != picture.size:
        raise ValueError(
            f"a {picture.mode} picture of {picture.size} with a class map of {ids.shape[::-1]}"
        )
