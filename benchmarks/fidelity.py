"""Is the fast preprocessing accuracy-neutral? Compared with a full-size decode, on real photos.

For each photo size, variants of the source photos (flipped, rotated, cropped, re-encoded) are
classified three ways on the same interpreter:

- reference: decoded at full size (handed to the service as a lossless BMP), then the
  service's own fit (resize) and tensor;
- service: `Engine.prepare`, the reduced-scale decode the service runs;
- noise floor: the reference's model input with +-1 grey level of random noise per pixel
  (what a camera's next frame of the same scene differs by, at the least).

"Accuracy-neutral" means: the top-1 agrees with the reference wherever the reference's top-1
leads its top-2 by at least `MARGIN`, and no score moves further than the noise floor moves one.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from benchmarks import photos
from edge_server.core.engine import Engine
from edge_server.core.runtime import Interpreter

MARGIN = 0.05
NOISE_DRAWS = 8  # noise draws per variant: the floor is the largest change among them

Transform = Callable[[Image.Image], Image.Image]


def _crop(left: float, top: float, keep: float) -> Transform:
    def crop(picture: Image.Image) -> Image.Image:
        width, height = picture.size
        w, h = int(width * keep), int(height * keep)
        x, y = int((width - w) * left), int((height - h) * top)
        return picture.crop((x, y, x + w, y + h))

    return crop


# Name, transform, JPEG quality (None: the size's own).
VARIANTS: tuple[tuple[str, Transform, int | None], ...] = (
    ("as is", lambda p: p, None),
    ("mirrored", lambda p: p.transpose(Image.Transpose.FLIP_LEFT_RIGHT), None),
    ("rotated 90", lambda p: p.transpose(Image.Transpose.ROTATE_90), None),
    ("rotated 180", lambda p: p.transpose(Image.Transpose.ROTATE_180), None),
    ("centre 80 %", _crop(0.5, 0.5, 0.8), None),
    ("top-left 70 %", _crop(0.0, 0.0, 0.7), None),
    ("re-encoded q75", lambda p: p, 75),
    ("mirrored, q95 4:2:0", lambda p: p.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 95),
)


@dataclass(frozen=True)
class Agreement:
    """How one size's service preprocessing compares with the full-size reference."""

    variants: int
    decisive: int  # variants whose reference top-1 leads its top-2 by >= MARGIN
    top1_changed: int  # among the decisive ones
    max_change: float  # largest |score difference| of any class, service vs reference
    noise_max_change: float  # the same for +-1 grey level of noise on the reference input

    def as_dict(self) -> dict[str, float | int]:
        """For the JSON report."""
        return {
            "variants": self.variants,
            "decisive": self.decisive,
            "top1_changed": self.top1_changed,
            "max_score_change": round(self.max_change, 4),
            "noise_max_score_change": round(self.noise_max_change, 4),
        }


def variants(pictures: Sequence[Image.Image], size: photos.SizeSpec) -> list[bytes]:
    """len(VARIANTS) JPEGs per source picture, made at the size like the benchmark's photos."""
    made = []
    for seed, picture in enumerate(pictures):
        scene = photos.scene(picture, size.width, size.height, seed)
        for _, transform, quality in VARIANTS:
            varied = transform(scene)
            if quality is not None:
                made.append(photos.jpeg(varied, quality))
            elif size.quality is not None:
                made.append(photos.jpeg(varied, size.quality))
            else:
                assert size.target_bytes is not None
                made.append(photos.jpeg_near(varied, size.target_bytes))
    return made


def _scores(
    interpreter: Interpreter, classifier: Engine, tensor: npt.NDArray[np.generic]
) -> npt.NDArray[np.float32]:
    interpreter.set_tensor(classifier.info.input.index, tensor)
    interpreter.invoke()
    return classifier.scores(interpreter.get_tensor(classifier.info.output.index))


def _full_size(data: bytes) -> bytes:
    """The JPEG decoded at full size and stored losslessly (BMP): `prepare` then runs the
    service's own orientation, fit and tensor on it, without the reduced-scale decode."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        out = io.BytesIO()
        opened.convert("RGB").save(out, "BMP")
    return out.getvalue()


def _noisy(tensor: npt.NDArray[Any], rng: np.random.Generator) -> npt.NDArray[Any]:
    """The model input with +-1 grey level of uniform random noise on every value."""
    noise = rng.integers(-1, 2, tensor.shape)
    noisy: npt.NDArray[Any]
    if tensor.dtype == np.uint8:
        noisy = np.clip(tensor.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    elif tensor.dtype == np.int8:
        noisy = np.clip(tensor.astype(np.int16) + noise, -128, 127).astype(np.int8)
    else:  # float input, (pixel - mean) / std
        noisy = (tensor + noise / np.float32(127.5)).astype(tensor.dtype)
    return noisy


def compare(
    interpreter: Interpreter, classifier: Engine, jpegs: Sequence[bytes], max_pixels: int
) -> Agreement:
    """Service preprocessing against the full-size reference and the noise floor."""
    rng = np.random.default_rng(13)
    decisive = changed = 0
    max_change = noise_change = 0.0
    for data in jpegs:
        full = classifier.prepare(_full_size(data), max_pixels=max_pixels).tensor
        reference = _scores(interpreter, classifier, full)
        prepared = classifier.prepare(data, max_pixels=max_pixels)
        served = _scores(interpreter, classifier, prepared.tensor)
        max_change = max(max_change, float(np.abs(served - reference).max()))
        for _ in range(NOISE_DRAWS):
            scores = _scores(interpreter, classifier, _noisy(full, rng))
            noise_change = max(noise_change, float(np.abs(scores - reference).max()))
        second, first = np.argsort(reference)[-2:]
        if reference[first] - reference[second] >= MARGIN:
            decisive += 1
            changed += int(np.argmax(served) != first)
    return Agreement(len(jpegs), decisive, changed, max_change, noise_change)
