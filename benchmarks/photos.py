"""The benchmark's photos: real pictures re-encoded as the JPEGs cameras and phones send.

The source photos are small (about 512x600), so each one is cropped to the target's aspect
ratio, upscaled, given a little sensor-like noise (an upscaled photo is unrealistically smooth
and would compress, and so decode, faster than a real one) and re-encoded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

SOURCE_SUFFIXES = (".jpg", ".jpeg", ".png")
NOISE_SIGMA = 3.0  # grey levels; a phone photo's noise after its own denoising


@dataclass(frozen=True)
class SizeSpec:
    """One photo size of the benchmark."""

    name: str
    width: int
    height: int
    quality: int | None  # JPEG quality, or None to pick it for `target_bytes`
    target_bytes: int | None = None


# 1080p is encoded at about 200 KB: a camera snapshot, and the concurrency-1 target's photo.
SIZES = (
    SizeSpec("640x480", 640, 480, quality=90),
    SizeSpec("1920x1080", 1920, 1080, quality=None, target_bytes=200_000),
    SizeSpec("4032x3024", 4032, 3024, quality=92),
)


@dataclass(frozen=True)
class PhotoSet:
    """The JPEGs of one size, one per source photo."""

    size: SizeSpec
    jpegs: tuple[bytes, ...]

    @property
    def mean_bytes(self) -> int:
        """Average file size."""
        return sum(len(j) for j in self.jpegs) // len(self.jpegs)


def sources(folder: Path) -> list[Path]:
    """The source photos in a folder, in name order."""
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in SOURCE_SUFFIXES)
    if not found:
        raise FileNotFoundError(f"no .jpg or .png photos in {folder}")
    return found


def scene(picture: Image.Image, width: int, height: int, seed: int) -> Image.Image:
    """The picture cropped to width:height, upscaled to it, with a little noise."""
    fitted = ImageOps.fit(picture.convert("RGB"), (width, height), Image.Resampling.BICUBIC)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, NOISE_SIGMA, (height, width, 3)).astype(np.float32)
    noisy = np.asarray(fitted, dtype=np.float32) + noise
    return Image.fromarray(np.clip(noisy + 0.5, 0, 255).astype(np.uint8), "RGB")


def open_rgb(path: Path) -> Image.Image:
    """A source photo as RGB."""
    with Image.open(path) as opened:
        return opened.convert("RGB")


def jpeg(picture: Image.Image, quality: int) -> bytes:
    """Baseline JPEG with 4:2:0 chroma, as cameras write."""
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality, subsampling="4:2:0")
    return out.getvalue()


def jpeg_near(picture: Image.Image, target_bytes: int) -> bytes:
    """The JPEG whose size is closest to target_bytes, by bisecting the quality."""
    low, high = 30, 98
    best = jpeg(picture, high)
    while low <= high:
        quality = (low + high) // 2
        data = jpeg(picture, quality)
        if abs(len(data) - target_bytes) < abs(len(best) - target_bytes):
            best = data
        if len(data) > target_bytes:
            high = quality - 1
        else:
            low = quality + 1
    return best


def make_set(pictures: list[Image.Image], size: SizeSpec) -> PhotoSet:
    """One size's JPEGs from the source pictures."""
    jpegs = []
    for seed, picture in enumerate(pictures):
        made = scene(picture, size.width, size.height, seed)
        if size.quality is not None:
            jpegs.append(jpeg(made, size.quality))
        else:
            assert size.target_bytes is not None
            jpegs.append(jpeg_near(made, size.target_bytes))
    return PhotoSet(size, tuple(jpegs))


def photo_sets(folder: Path, sizes: tuple[SizeSpec, ...] = SIZES) -> list[PhotoSet]:
    """Every size's JPEGs from the photos in a folder."""
    pictures = []
    for path in sources(folder):
        with Image.open(path) as opened:
            pictures.append(opened.convert("RGB"))
    return [make_set(pictures, size) for size in sizes]
