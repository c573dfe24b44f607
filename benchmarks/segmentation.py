"""Segmentation side by side: both DeepLab models' invokes, the cost of reading their maps, and
their accuracy on PASCAL VOC's ground truth.

    python -m benchmarks.segmentation [--models-dir ../shared/models] [--images ../shared/images]

Prints, all measured in this one run:

1. Invoke p50 and p95 of both models at 1..CPUs interpreter threads, the interpreters taking
   turns one invoke each (so load that comes and goes falls on all alike), the ratio of depth
   1.0 to depth 0.5 at each thread count, and the default classifier (MobileNet v2 224) in the
   same turns: a Pi 4 estimate is that ratio times its published Pi 4 invoke (no Pi here).
2. Reading one real class map (kite_and_cold.jpg's) for a 1920x1080 and a 4032x3024 (12 MP)
   photo: the answer (`read` + `areas`), two named regions, the full-size map and the mask PNG
   (at the zlib level used and at Pillow's default 6), and what a picture answer (`format=`)
   adds: the photo decoded again at full size, then each picture drawn and encoded (the
   overlay and blur as JPEG, the cut-out as PNG), each as a share of one all-thread invoke of
   depth 1.0; the PNG's and pictures' sizes and the bytes the mask holds (`mask_bytes`).
3. IoU per class against the annotations in `segmentation/` (255 and the pet trimap's border
   left out), pooled over the photos as VOC's mIoU is, for each model and three letterboxes:
   the service's (centred, grey bands: 128, the models' zero input), centred with black bands
   and MANIFEST.md's reference (top-left, grey bands).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from benchmarks.flags import add_model_flags
from edge_server.core import imaging, overlay, segmentation
from edge_server.core.engine import Engine, LoadOptions
from edge_server.core.imaging import ResizeMode
from edge_server.core.labels import parse_labels
from edge_server.core.overlay import Picture
from edge_server.core.runtime import (
    Interpreter,
    RuntimeChoice,
    create_interpreter,
    load_backend,
    zeros_for,
)
from edge_server.core.segmentation import ClassMap, Polygon
from edge_server.core.threads import available_cpus

MODELS = ("deeplabv3_mnv2_pascal_quant", "deeplabv3_mnv2_dm05_pascal_quant")
# The Pi 4 estimate scales a published figure by the ratio measured here: quantized MobileNet v2
# 224 runs in 20-30 ms with 4 threads on a Pi 4 (docs/performance.md, "On a Raspberry Pi").
ANCHOR = "mobilenet_v2_1.0_224_quant"
PI4_ANCHOR_MS = (20, 30)
LABELS = "pascal_voc_segmentation_labels.txt"
SIDE = 513
INVOKES = 30
READS = 15
SIZES = {"1920x1080": (1920, 1080), "4032x3024": (4032, 3024)}
REGIONS = [
    Polygon("driveway", ((0.05, 0.6), (0.6, 0.55), (0.95, 0.98), (0.02, 0.98))),
    Polygon("pool", ((0.6, 0.1), (0.9, 0.1), (0.9, 0.4), (0.6, 0.4))),
]
ANNOTATED = {
    "voc_2007_000033.jpg": "000033",
    "voc_2007_000032.jpg": "000032",
    "dog_segmentation.bmp": "dog",
}
IGNORE = 255
# (name, centred, band grey level)
LETTERBOXES = (("service", True, 128), ("centred black", True, 0), ("manifest", False, 128))

Map = npt.NDArray[np.uint8]


def _p50_p95(samples: list[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(samples, [50, 95])
    return float(p50), float(p95)


def invokes(models_dir: Path, runtime: RuntimeChoice) -> float:
    """Part 1; returns depth 1.0's all-thread p50 (ms), what part 2 is compared with."""
    backend = load_backend(runtime)
    cpus = available_cpus()
    made: dict[tuple[str, int], Interpreter] = {}
    for model in (*MODELS, ANCHOR):
        for threads in range(1, cpus + 1):
            created = create_interpreter(backend, str(models_dir / f"{model}.tflite"), threads)
            detail = created.interpreter.get_input_details()[0]
            created.interpreter.set_tensor(int(detail["index"]), zeros_for(detail))
            created.interpreter.invoke()
            made[(model, threads)] = created.interpreter
    samples: dict[tuple[str, int], list[float]] = {key: [] for key in made}
    for _ in range(INVOKES):
        for key, interpreter in made.items():
            started = time.perf_counter()
            interpreter.invoke()
            samples[key].append((time.perf_counter() - started) * 1000)
    print(f"\n1. invoke ms ({backend.name} {backend.version}, {INVOKES} invokes each, in turns)")
    print(
        f"{'threads':>7}  {'depth 1.0 p50/p95':>18}  {'depth 0.5 p50/p95':>18}  {'1.0 / 0.5':>9}"
        f"  {'MobileNet v2 p50':>16}"
    )
    for threads in range(1, cpus + 1):
        full = _p50_p95(samples[(MODELS[0], threads)])
        half = _p50_p95(samples[(MODELS[1], threads)])
        classifier = _p50_p95(samples[(ANCHOR, threads)])[0]
        print(
            f"{threads:>7}  {full[0]:>8.1f} / {full[1]:>7.1f}  {half[0]:>8.1f} / {half[1]:>7.1f}"
            f"  {full[0] / half[0]:>9.2f}  {classifier:>16.1f}"
        )
    low, high = PI4_ANCHOR_MS
    print(f"Pi 4 estimate (4 threads there, where MobileNet v2 224 takes {low}-{high} ms):")
    for model in MODELS:
        ratios = [
            _p50_p95(samples[(model, n)])[0] / _p50_p95(samples[(ANCHOR, n)])[0]
            for n in range(1, cpus + 1)
        ]
        print(
            f"  {model}: {min(ratios):.1f}-{max(ratios):.1f}x MobileNet v2 here (1..{cpus} "
            f"threads) -> {min(ratios) * low:.0f}-{max(ratios) * high:.0f} ms an invoke"
        )
    return _p50_p95(samples[(MODELS[0], cpus)])[0]


def _timed(work: Callable[[], object]) -> float:
    work()  # the first run pays for allocations a steady service has made already
    samples = []
    for _ in range(READS):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def reading(engine: Engine, photo: bytes, invoke_ms: float) -> None:
    """Part 2: the post-processing of one real map at two photo sizes."""
    prepared = engine.prepare(photo, max_pixels=50_000_000)
    raw = engine.submit(prepared.tensor).result().raw
    print(f"\n2. reading a class map, ms (median of {READS}; share of a {invoke_ms:.0f} ms invoke)")
    print(f"{'photo':>10}  {'step':<30} {'ms':>8}  {'share':>6}")
    for name, size in SIZES.items():
        # The photo at this size, as a camera would send it (the pictures decode it again).
        upload = imaging.jpeg_thumbnail(
            imaging.to_rgb(Image.open(io.BytesIO(photo))).resize(size), max(size), quality=90
        )
        for step, work in [*_steps(engine, raw, size), *_pictures(engine, raw, size, upload)]:
            ms = _timed(work)
            print(f"{name:>10}  {step:<30} {ms:>8.1f}  {ms / invoke_ms:>6.0%}")
        class_map = _read(engine, raw, size)
        size_kb = len(segmentation.png(class_map)) / 1024
        held = segmentation.mask_bytes(class_map) / 2**20
        print(f"{name:>10}  mask PNG {size_kb:.0f} KB; the mask holds {held:.1f} MiB meanwhile")
        picture, ids = _full_size(upload, class_map)
        sizes = ", ".join(
            f"{kind.value} {len(overlay.encoded(_drawn(kind, picture, ids), kind)) / 1024:.0f} KB"
            for kind in Picture
        )
        drawn = class_map.width * class_map.height * overlay.PICTURE_BYTES_PER_PIXEL / 2**20
        print(f"{name:>10}  pictures: {sizes}; drawing holds {drawn:.0f} MiB beyond the decode")


def _read(engine: Engine, raw: npt.NDArray[np.int64], size: tuple[int, int]) -> ClassMap:
    return segmentation.read(
        raw, image_size=size, input_size=engine.info.input_size, fit=engine.resize
    )


def _steps(
    engine: Engine, raw: npt.NDArray[np.int64], size: tuple[int, int]
) -> list[tuple[str, Callable[[], object]]]:
    labels = engine.info.labels
    class_map = _read(engine, raw, size)
    return [
        ("answer (read + areas)", lambda: segmentation.areas(_read(engine, raw, size), labels)),
        ("two regions", lambda: segmentation.region_shares(class_map, REGIONS, labels)),
        ("full-size map", lambda: segmentation.full_size(class_map)),
        (f"mask PNG, zlib {segmentation.PNG_COMPRESSION}", lambda: segmentation.png(class_map)),
        ("mask PNG, zlib 6", lambda: segmentation.png(class_map, compression=6)),
    ]


def _decoded(upload: bytes, class_map: ClassMap) -> Image.Image:
    """The upload decoded again at full size, as a picture answer does."""
    side = max(class_map.width, class_map.height)
    return imaging.decode(upload, min_size=side, max_pixels=50_000_000).picture


def _full_size(upload: bytes, class_map: ClassMap) -> tuple[Image.Image, npt.NDArray[np.uint8]]:
    """What a picture is drawn from: the full-size photo and the full-size map."""
    ids = np.asarray(segmentation.full_size(class_map), dtype=np.uint8)
    return _decoded(upload, class_map), ids


# The people of kite_and_cold.jpg are what blur hides and the cut-out keeps (format=cutout's
# default keeps every class but background; this photo has only people).
PERSON = 15


def _drawn(kind: Picture, picture: Image.Image, ids: npt.NDArray[np.uint8]) -> Image.Image:
    if kind is Picture.overlay:
        return overlay.overlay(picture, ids)
    if kind is Picture.cutout:
        return overlay.cutout(picture, ids, [PERSON])
    return overlay.hidden(picture, ids, [PERSON], kind)


def _pictures(
    engine: Engine, raw: npt.NDArray[np.int64], size: tuple[int, int], upload: bytes
) -> list[tuple[str, Callable[[], object]]]:
    """A picture answer's steps beyond the JSON answer's: the decode, then one picture each."""
    class_map = _read(engine, raw, size)
    picture, ids = _full_size(upload, class_map)

    def draw(kind: Picture) -> Callable[[], object]:
        return lambda: overlay.encoded(_drawn(kind, picture, ids), kind)

    return [
        ("picture: full-size decode", lambda: _decoded(upload, class_map)),
        *(
            (f"picture: {kind.value} (draw + {kind.media_type[6:]})", draw(kind))
            for kind in Picture
        ),
    ]


def _truth(folder: Path, name: str) -> Map:
    if name.endswith(".bmp"):  # Oxford-IIIT pet trimap: 0 pet (a dog, VOC 12), 1 background
        trimap = np.asarray(Image.open(folder / name.replace(".bmp", "_mask.bmp")))
        return np.select([trimap == 0, trimap == 1], [12, 0], IGNORE).astype(np.uint8)
    return np.asarray(Image.open(folder / name.replace(".jpg", "_mask.png")), dtype=np.uint8)


def _letterboxed(interpreter: Interpreter, picture: Image.Image, centred: bool, fill: int) -> Map:
    """The class map of the picture pasted, scaled to fit, on a `fill` square."""
    scale = SIDE / max(picture.size)
    width, height = round(picture.width * scale), round(picture.height * scale)
    left, top = (round((SIDE - width) / 2), round((SIDE - height) / 2)) if centred else (0, 0)
    square = Image.new("RGB", (SIDE, SIDE), (fill, fill, fill))
    square.paste(picture.resize((width, height), Image.Resampling.BILINEAR), (left, top))
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(int(detail["index"]), np.asarray(square, dtype=np.uint8)[np.newaxis])
    interpreter.invoke()
    ids = interpreter.get_tensor(int(interpreter.get_output_details()[0]["index"]))[0]
    shown = Image.fromarray(ids[top : top + height, left : left + width].astype(np.uint8), "L")
    return np.asarray(shown.resize(picture.size, Image.Resampling.NEAREST), dtype=np.uint8)


def accuracy(models_dir: Path, images: Path, runtime: RuntimeChoice) -> None:
    """Part 3: IoU per class and pooled, both models, three letterboxes."""
    backend = load_backend(runtime)
    labels = parse_labels((models_dir / LABELS).read_text(encoding="utf-8"))
    folder = images / "segmentation"
    print("\n3. IoU against the annotations (per photo and class; pooled mIoU over the photos)")
    for model in MODELS:
        interpreter = create_interpreter(
            backend, str(models_dir / f"{model}.tflite"), 2
        ).interpreter
        for letterbox, centred, fill in LETTERBOXES:
            intersection: dict[int, int] = {}
            union: dict[int, int] = {}
            cells, agreement = [], []
            for name, short in ANNOTATED.items():
                picture = ImageOps.exif_transpose(Image.open(folder / name)).convert("RGB")
                truth = _truth(folder, name)
                predicted = _letterboxed(interpreter, picture, centred, fill)
                service = (
                    predicted
                    if letterbox == "service"
                    else _letterboxed(interpreter, picture, True, 0)
                )
                agreement.append(float(np.mean(predicted == service)))
                valid = truth != IGNORE
                for index in np.unique(truth[valid]):
                    p, t = (predicted == index) & valid, (truth == index) & valid
                    both, either = int((p & t).sum()), int((p | t).sum())
                    intersection[int(index)] = intersection.get(int(index), 0) + both
                    union[int(index)] = union.get(int(index), 0) + either
                    cells.append(f"{short} {labels[int(index)]} {both / either:.3f}")
            pooled = {i: intersection[i] / union[i] for i in union}
            mean = sum(pooled.values()) / len(pooled)
            print(
                f"  {model:34} {letterbox:<13} mIoU {mean:.3f}, same class as the service's on "
                f"{min(agreement):.1%}-{max(agreement):.1%} of pixels: " + ", ".join(cells)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_flags(parser, images_help="folder of real photos (segmentation/ inside)")
    args = parser.parse_args()
    invoke_ms = invokes(args.models_dir, args.runtime)
    options = LoadOptions(
        runtime=args.runtime,
        num_threads=available_cpus(),
        replicas=1,
        labels=args.models_dir / LABELS,
        resize=ResizeMode.letterbox,
    )
    engine = Engine.load(args.models_dir / f"{MODELS[0]}.tflite", options)
    try:
        reading(engine, (args.images / "kite_and_cold.jpg").read_bytes(), invoke_ms)
    finally:
        engine.close()
    accuracy(args.models_dir, args.images, args.runtime)


if __name__ == "__main__":
    main()
