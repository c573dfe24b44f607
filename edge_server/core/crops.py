"""An event's picture as Frigate's snapshot route serves it: the frame, cropped to the object
and scaled to a height on request.

Frigate (`frigate/api/media.py`, `calculate_region` in `frigate/util/image.py`) crops a square
around the box, 1.1 times its longer side, moved inside the frame, and scales to `h` keeping
the aspect ratio; Double Take asks `?h=500&crop=1` and sends the crop to its face recognisers.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

CROP_MARGIN = 1.1  # Frigate's multiplier around the box
MAX_HEIGHT = 4320  # an `h=` above 8K rows is refused by the routes, not scaled to


def square_around(
    box: Sequence[float], width: int, height: int, margin: float = CROP_MARGIN
) -> tuple[int, int, int, int]:
    """The square (x0, y0, x1, y1) around `box` (pixels), `margin` times its longer side,
    shifted to lie inside the frame (and cut to it when larger than the frame)."""
    x0, y0, x1, y1 = box
    side = int(max(x1 - x0, y1 - y0, 1) * margin)
    side = min(side, max(width, height))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(min(max(cx - side / 2, 0), max(width - side, 0)))
    top = int(min(max(cy - side / 2, 0), max(height - side, 0)))
    return left, top, min(left + side, width), min(top + side, height)


def scaled_jpeg(
    jpeg: bytes,
    *,
    box: Sequence[float] | None = None,
    height: int | None = None,
    quality: int = 85,
) -> bytes:
    """`jpeg` cropped to the square around `box` (when given) and scaled to `height` rows
    (when given), re-encoded; unchanged bytes when neither applies."""
    if box is None and height is None:
        return jpeg
    with Image.open(io.BytesIO(jpeg)) as opened:
        picture = opened.convert("RGB")
    if box is not None:
        picture = picture.crop(square_around(box, picture.width, picture.height))
    if height is not None and height != picture.height:
        width = max(1, round(picture.width * height / picture.height))
        picture = picture.resize((width, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality)
    return out.getvalue()
