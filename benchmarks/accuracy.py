"""Top-1 and top-5 of the ImageNet classifiers on labelled photos, per resize mode.

For each ImageNet classifier of the catalog and each resize mode, the photos go through the
service's own pipeline (`Engine.prepare`: the reduced-scale decode, EXIF orientation, the fit,
the input tensor; then the invoke and the ranking the answers use). Beside them, a reference
that shares none of the service's preprocessing: the published evaluation protocol of these
models (TF-slim's `central_crop(0.875)` then a bilinear resize), written here with Pillow and
numpy on a full-size decode, invoked on the same interpreter. A model's default fit is only
changed with this table (docs: Models, Accuracy).

The photos are a folder with `LABELS.tsv` (file, model_index, synset): model_index is the
class's line in the models' 1001-class labels (0 is background).

    python -m benchmarks.accuracy --models-dir ../shared/models
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from benchmarks.flags import add_model_flags
from edge_server.config.settings import Settings
from edge_server.core.engine import Engine
from edge_server.core.imaging import ResizeMode
from edge_server.serving.catalog import load_catalog
from edge_server.serving.specs import ModelsConfig, spec_for

CENTRAL_FRACTION = 0.875  # of each side, as TF-slim's eval_image (and Keras' ImageNet eval)
TOP = 5
REFERENCE = "reference"  # the row of the published protocol
SAMPLE = "imagenet-sample"  # the labelled folder under --images, unless it is one itself
MAX_PIXELS = 50_000_000


@dataclass(frozen=True)
class Photo:
    """A labelled photo: its file and its class's index in the 1001-class output."""

    path: Path
    index: int


@dataclass(frozen=True)
class Score:
    """For each photo: whether its class came first, and whether among the first five."""

    top1: tuple[bool, ...]
    top5: tuple[bool, ...]

    @staticmethod
    def percent(hits: Sequence[bool]) -> str:
        """The share of photos hit, as a percentage."""
        return f"{100 * sum(hits) / len(hits):.1f} %"

    def against(self, other: Score) -> str:
        """Photos this one gets first that `other` misses, and the reverse (a paired count:
        on 100 photos it tells a real difference from a few photos going either way)."""
        gained = sum(a and not b for a, b in zip(self.top1, other.top1, strict=True))
        lost = sum(b and not a for a, b in zip(self.top1, other.top1, strict=True))
        return f"+{gained} / -{lost}"


def imagenet_models() -> list[str]:
    """The catalog's ImageNet classifiers (1001 classes, background first)."""
    return [
        e.name
        for e in load_catalog().values()
        if e.task == "classification" and e.labels.startswith("ImageNet")
    ]


def labelled_photos(folder: Path) -> list[Photo]:
    """The photos `LABELS.tsv` names, in its order."""
    if not (folder / "LABELS.tsv").is_file() and (folder / SAMPLE / "LABELS.tsv").is_file():
        folder = folder / SAMPLE
    with (folder / "LABELS.tsv").open(encoding="utf-8", newline="") as table:
        rows = list(csv.DictReader(table, delimiter="\t"))
    return [Photo(folder / row["file"], int(row["model_index"])) for row in rows]


def reference_input(
    data: bytes, size: tuple[int, int], dtype: type[np.generic]
) -> npt.NDArray[Any]:
    """The published protocol's model input: full-size decode, the central 87.5 % of each
    side, a bilinear resize to the input size, the model's 8-bit input."""
    with Image.open(io.BytesIO(data)) as opened:
        picture = opened.convert("RGB")
    width, height = picture.size
    keep_w, keep_h = round(width * CENTRAL_FRACTION), round(height * CENTRAL_FRACTION)
    left, top = (width - keep_w) // 2, (height - keep_h) // 2
    central = picture.crop((left, top, left + keep_w, top + keep_h))
    pixels = np.asarray(central.resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)
    if dtype is np.int8:  # an int8 interface takes the same pixels shifted by 128
        return (pixels.astype(np.int16) - 128).astype(np.int8)[np.newaxis]
    return pixels[np.newaxis]


def ranked(raw: npt.NDArray[Any]) -> list[int]:
    """Class indices best first (ties in the 8-bit output: the lower index first)."""
    values = raw.reshape(-1).astype(np.int32)
    return [int(i) for i in np.argsort(-values, kind="stable")[:TOP]]


def measure(engine: Engine, photos: Sequence[Photo]) -> dict[str, Score]:
    """Each resize mode through the service's pipeline, and the reference, on the photos."""
    rows = [mode.value for mode in ResizeMode] + [REFERENCE]
    firsts: dict[str, list[list[int]]] = {row: [] for row in rows}
    for photo in photos:
        data = photo.path.read_bytes()
        for mode in ResizeMode:
            prepared = engine.prepare(data, max_pixels=MAX_PIXELS, resize=mode)
            raw = engine.submit(prepared.tensor).result().raw
            firsts[mode.value].append([index for index, _, _ in engine.rank(raw, TOP)])
        tensor = reference_input(data, engine.info.input_size, engine.info.input.dtype)
        firsts[REFERENCE].append(ranked(engine.submit(tensor).result().raw))
    return {
        row: Score(
            tuple(best[:1] == [p.index] for best, p in zip(firsts[row], photos, strict=True)),
            tuple(p.index in best for best, p in zip(firsts[row], photos, strict=True)),
        )
        for row in rows
    }


def table(results: dict[str, tuple[ResizeMode, dict[str, Score]]]) -> str:
    """The markdown table: a row per model and mode, the default marked, then the reference;
    each row's top-1 photos gained and lost against the default's."""
    lines = [
        "| model | fit | top-1 | top-5 | top-1 vs the default |",
        "|---|---|---|---|---|",
    ]
    for name, (default, scores) in results.items():
        for row, score in scores.items():
            if row == REFERENCE:
                fit = "reference: central 87.5 % crop, full decode"
            else:
                fit = row + (" (default)" if row == default.value else "")
            paired = "" if row == default.value else score.against(scores[default.value])
            lines.append(
                f"| {name} | {fit} | {score.percent(score.top1)} | {score.percent(score.top5)} "
                f"| {paired} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__)
    add_model_flags(parser, images_help=f"a folder with LABELS.tsv (default: its {SAMPLE})")
    parser.add_argument(
        "--models",
        default=",".join(imagenet_models()),
        help="comma-separated catalog names (default: every ImageNet classifier)",
    )
    parser.add_argument("--threads", type=int, default=2, help="interpreter threads")
    args = parser.parse_args(argv)
    photos = labelled_photos(args.images)
    settings = Settings(
        models_dir=args.models_dir, runtime=args.runtime, num_threads=args.threads, replicas=1
    )
    started = time.perf_counter()
    results: dict[str, tuple[ResizeMode, dict[str, Score]]] = {}
    for name in (part.strip() for part in args.models.split(",") if part.strip()):
        engine = spec_for(name, settings, ModelsConfig()).load()
        try:
            results[engine.info.name] = (engine.resize, measure(engine, photos))
        finally:
            engine.close()
    print(f"{len(photos)} labelled photos ({photos[0].path.parent}), {args.runtime} runtime")
    print()
    print(table(results))
    print(f"\n({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
