"""What a camera reader is, and the ways reading a camera fails.

A reader connects to one camera and yields decoded pictures until the stream ends or fails;
the `Feed` above it owns the thread, the retries and the latest frame. The failures are
typed by what the feed should do next, so each reader only says what happened:

- `Unreachable`: the camera did not answer, the stream ended or stalled; try again soon
  (the back-off grows);
- `Unauthorized`: the camera wants other credentials; retrying soon will not help;
- `NotAStream`: the URL answers, but not with video (a web page, garbage bytes, an
  unsupported codec); retrying soon will not help either.

Every message says what a user can change, and never carries a password (URLs are redacted).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image


class FeedError(Exception):
    """Reading a camera failed; the message is for the camera's status and the log."""


class Unreachable(FeedError):
    """The camera cannot be reached, or its stream ended or stalled: worth retrying soon."""


class Unauthorized(FeedError):
    """The camera refused the credentials (401), or asked for some and none were given."""


class NotAStream(FeedError):
    """The URL answers with something that is not a camera stream this service reads."""


@dataclass(frozen=True, slots=True)
class Picture:
    """A decoded picture as a reader hands it over: grey now, colours on demand."""

    luma: npt.NDArray[np.uint8]
    rgb: Callable[[], npt.NDArray[np.uint8]]
    encoded: bytes | None = None  # the camera's JPEG, when it sent one


def jpeg_picture(data: bytes) -> Picture:
    """A camera's JPEG, decoded to grey now (PIL's `draft("L")` has the JPEG decoder skip the
    colour planes), to RGB only when asked. ValueError when the bytes are not a whole JPEG."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG":
                raise ValueError(f"a {image.format} image, not a JPEG")
            image.draft("L", image.size)
            luma = np.asarray(image.convert("L"))
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        # UnidentifiedImageError and "image file is truncated" are OSErrors
        raise ValueError(f"not a whole JPEG ({exc})") from None

    def rgb() -> npt.NDArray[np.uint8]:
        with Image.open(io.BytesIO(data)) as colour:
            return np.asarray(colour.convert("RGB"))

    return Picture(luma, rgb, data)


class Session(Protocol):
    """One connection to a camera."""

    codec: str | None  # e.g. "h264", "mjpeg", "jpeg snapshots"

    def pictures(self) -> Iterator[Picture]:
        """Pictures as they come; returns when the stream ends, raises `FeedError`."""
        ...

    def close(self) -> None:
        """Release the connection (safe to call twice)."""
        ...


class Reader(Protocol):
    """Connects to one camera, as often as the feed asks."""

    def connect(self) -> Session:
        """A new session; raises `FeedError` when the camera cannot be read."""
        ...
