"""Pictures of a camera's objects: a frame with boxes drawn, cropped around an object, scaled.

What an event's snapshot is (Frigate's `snapshot.jpg`: the frame at the object's best score
with its box drawn; `crop=1` the region around it; `h=` a height) and what a camera's latest
frame looks like with its tracked objects.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from ..core.zones import Box

BOX_COLOUR = (255, 64, 32)
QUALITY = 85


def boxed(rgb: npt.NDArray[np.uint8], boxes: Sequence[tuple[Box, str]]) -> Image.Image:
    """The frame with each (box, caption) drawn: a rectangle and its caption above it."""
    picture = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    draw = ImageDraw.Draw(picture)
    width = max(2, picture.height // 240)
    for (x0, y0, x1, y1), caption in boxes:
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=BOX_COLOUR, width=width)
        if caption:
            left, top, right, bottom = draw.textbbox((x0, y0), caption)
            lift = bottom - top + 4
            y = y0 - lift if y0 >= lift else y0
            draw.rectangle((x0, y, x0 + right - left + 4, y + lift), fill=BOX_COLOUR)
            draw.text((x0 + 2, y + 2), caption, fill=(255, 255, 255))
    return picture


def encoded(picture: Image.Image, *, height: int | None = None, quality: int = QUALITY) -> bytes:
    """The picture as JPEG, scaled to `height` pixels (aspect kept; never enlarged)."""
    if height is not None and 0 < height < picture.height:
        width = max(1, round(picture.width * height / picture.height))
        picture = picture.resize((width, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality)
    return out.getvalue()


def cropped_jpeg(data: bytes, region: Box, *, height: int | None = None) -> bytes:
    """A JPEG's part inside `region` (pixels, clipped to the picture), scaled to `height`."""
    with Image.open(io.BytesIO(data)) as picture:
        x0, y0, x1, y1 = region
        left, top = max(0, x0), max(0, y0)
        right, bottom = min(picture.width, max(x1, left + 1)), min(picture.height, max(y1, top + 1))
        return encoded(picture.convert("RGB").crop((left, top, right, bottom)), height=height)


def scaled_jpeg(data: bytes, height: int | None) -> bytes:
    """A JPEG at `height` pixels (the same bytes when no smaller height is asked for)."""
    if height is None:
        return data
    with Image.open(io.BytesIO(data)) as picture:
        if height >= picture.height or height <= 0:
            return data
        return encoded(picture.convert("RGB"), height=height)
