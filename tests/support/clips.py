"""Camera clips made at test time from the shared photos, encoded to H.264 and decoded back
with PyAV, so motion, tracking and the watcher see what a camera's decoder hands over (the
codec's blocks and its noise), not clean arrays.

Two scenes at 640x360: a mountain view (the ImageNet sample's alp, where the detector finds
nothing) with sensor noise on every frame, and the same where a person (grace_hopper.jpg, head
and shoulders) slides in from the left edge at `enter` seconds, crosses and leaves on the
right 3 s before the end.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

WIDTH, HEIGHT, FPS = 640, 360, 10
NOISE = 4.0  # grey levels of sensor noise (standard deviation)
PERSON_HEIGHT = 220


@dataclass(frozen=True)
class Clip:
    """Decoded frames of a clip and, for the walk-in, when the person is in view."""

    luma: list[npt.NDArray[np.uint8]]
    rgb: list[npt.NDArray[np.uint8]]
    fps: int
    person_boxes: list[tuple[int, int, int, int] | None]  # where the person was pasted
    appears: float | None  # seconds: the first frame with half the person in view
    leaves: float | None  # seconds: the first frame with less than half in view


def _background(images: Path) -> npt.NDArray[np.float32]:
    view = Image.open(images / "imagenet-sample" / "n09193705_alp.JPEG").convert("RGB")
    return np.asarray(view.resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR), np.float32)


def _person(images: Path) -> npt.NDArray[np.uint8]:
    portrait = Image.open(images / "grace_hopper.jpg").convert("RGB")
    width = round(portrait.width * PERSON_HEIGHT / portrait.height)
    return np.asarray(portrait.resize((width, PERSON_HEIGHT), Image.Resampling.BILINEAR))


def make_clip(
    images: Path, *, seconds: float, person: bool, enter: float = 4.0, seed: int = 7
) -> Clip:
    """A clip of `seconds`; with `person`, the person slides in from `enter` seconds (after
    motion has calibrated, as a camera watched for a while has) and is gone by `seconds` - 3."""
    rng = np.random.default_rng(seed)
    background = _background(images)
    figure = _person(images)
    ph, pw = figure.shape[:2]
    top = HEIGHT - ph - 20
    count = round(seconds * FPS)
    leave = seconds - 3.0  # the person's left edge at -pw at `enter`, at WIDTH at `leave`
    frames: list[npt.NDArray[np.uint8]] = []
    boxes: list[tuple[int, int, int, int] | None] = []
    for n in range(count):
        t = n / FPS
        picture = background + rng.normal(0.0, NOISE, background.shape).astype(np.float32)
        frame = np.clip(picture, 0, 255).astype(np.uint8)
        box = None
        if person and enter <= t < leave:
            left = round(-pw + (t - enter) / (leave - enter) * (WIDTH + pw))
            x0, x1 = max(left, 0), min(left + pw, WIDTH)
            if x1 > x0:
                frame[top : top + ph, x0:x1] = figure[:, x0 - left : x1 - left]
                box = (x0, top, x1, top + ph)
        frames.append(frame)
        boxes.append(box)
    luma, rgb = _through_h264(frames)
    half = [b is not None and b[2] - b[0] >= pw / 2 for b in boxes]
    appears = half.index(True) / FPS if any(half) else None
    leaves = None
    if appears is not None:
        after = half[round(appears * FPS) :]
        leaves = (round(appears * FPS) + after.index(False)) / FPS if False in after else None
    return Clip(luma, rgb, FPS, boxes, appears, leaves)


def _through_h264(
    frames: list[npt.NDArray[np.uint8]],
) -> tuple[list[npt.NDArray[np.uint8]], list[npt.NDArray[np.uint8]]]:
    """The frames encoded as a camera would (H.264, yuv420p) and decoded back."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.time_base = Fraction(1, FPS)
        stream.options = {"preset": "veryfast", "crf": "23"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    buffer.seek(0)
    luma: list[npt.NDArray[np.uint8]] = []
    rgb: list[npt.NDArray[np.uint8]] = []
    with av.open(buffer, "r") as source:
        for decoded in source.decode(video=0):
            luma.append(np.asarray(decoded.to_ndarray(format="gray"), np.uint8))
            rgb.append(np.asarray(decoded.to_ndarray(format="rgb24"), np.uint8))
    return luma, rgb
