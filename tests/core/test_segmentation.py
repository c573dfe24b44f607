"""Segmentation: reading a class map into an answer (pure functions on hand-made maps), and the
real DeepLab models against an independent reference and PASCAL VOC's ground truth."""

from __future__ import annotations

import io
import os
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw

from edge_server.core import segmentation
from edge_server.core.detection import Task
from edge_server.core.engine import Engine, LoadOptions
from edge_server.core.errors import BadRequest, StartupError
from edge_server.core.imaging import LETTERBOX_GREY, ResizeMode, fit
from edge_server.core.region import Region
from edge_server.core.runtime import RuntimeChoice
from edge_server.core.segmentation import ClassMap, Polygon
from edge_server.serving.catalog import catalog_labels, load_catalog, lookup

from support import variants
from support.reference import (
    SEGMENTER,
    SMALL_SEGMENTER,
    reference_class_map,
    reference_interpreter,
    upright,
)

Photo = Callable[[str], bytes]
Map = npt.NDArray[np.unsignedinteger[Any]]

VOC = ["background", "aeroplane", "bicycle", "bird"]


def _map(ids: list[list[int]]) -> Map:
    return np.array(ids, dtype=np.uint8)


def _read(ids: Map, image: tuple[int, int], region: Region | None = None) -> ClassMap:
    """A hand-made square model output read for an image of (width, height), squashed."""
    side = ids.shape[0]
    return segmentation.read(
        ids[np.newaxis].astype(np.int64),
        image_size=image,
        input_size=(side, side),
        fit=ResizeMode.squash,
        region=region,
    )


def _brute_areas(full: Map, left: int = 0, top: int = 0) -> dict[int, tuple[int, tuple[int, ...]]]:
    """Pixel count and box of every class, counted pixel by pixel on a full-size map."""
    found = {}
    for index in np.unique(full):
        ys, xs = np.nonzero(full == index)
        box = (left + xs.min(), top + ys.min(), left + xs.max() + 1, top + ys.max() + 1)
        found[int(index)] = (len(xs), tuple(int(v) for v in box))
    return found


# --- which models are segmenters, and the catalog ----------------------------------------


def _detail(shape: list[int], dtype: Any) -> dict[str, Any]:
    return {"shape": np.array(shape), "dtype": dtype}


def test_a_class_map_output_is_told_from_other_outputs() -> None:
    """Ids [1,H,W] or scores [1,H,W,C] are class maps; a classifier's [1,C] or [1,1,1,C] not."""
    assert segmentation.is_class_map([_detail([1, 513, 513], np.int64)])
    assert segmentation.is_class_map([_detail([1, 65, 65, 21], np.float32)])
    assert not segmentation.is_class_map([_detail([1, 1001], np.uint8)])
    assert not segmentation.is_class_map([_detail([1, 1, 1, 1001], np.float32)])
    assert not segmentation.is_class_map([_detail([1, 513, 513], np.float32)])
    assert not segmentation.is_class_map([_detail([1, 9, 9], np.int64)] * 2)


def test_class_ids_are_the_argmax_of_scores_in_the_smallest_type() -> None:
    """Scores become their argmax; int64 ids become uint8, or uint16 past 255 classes."""
    scores = np.zeros((1, 2, 2, 3), dtype=np.float32)
    scores[0, 0, 0, 2] = scores[0, 1, 1, 1] = 1.0
    assert segmentation.class_ids(scores).tolist() == [[2, 0], [0, 1]]
    ids = segmentation.class_ids(np.array([[[0, 20], [15, 3]]], dtype=np.int64))
    assert ids.dtype == np.uint8 and ids.tolist() == [[0, 20], [15, 3]]
    assert segmentation.class_ids(np.array([[[0, 300]]], dtype=np.int64)).dtype == np.uint16


def test_the_catalog_knows_both_segmenters() -> None:
    """Both DeepLab models: segmentation, letterbox, VOC labels pulled beside them; one alias."""
    catalog = load_catalog()
    for name in (SEGMENTER, SMALL_SEGMENTER):
        entry = catalog[name]
        assert entry.task == Task.segmentation.value and entry.resize == "letterbox"
        assert entry.label_file == "pascal_voc_segmentation_labels.txt"
        assert entry.input_size == 513
        assert entry.url.startswith(
            "https://github.com/google-coral/test_data/raw/104342d2d3480b3e66203073dac24f4e2dbb4c41/"
        )
    segmenter = lookup("segmenter")
    assert segmenter is not None and segmenter.name == SEGMENTER


# --- undoing the letterbox, scaling, counting -----------------------------------------------


@pytest.mark.parametrize(
    "picture", [(500, 366), (512, 600), (128, 128), (1352, 900), (37, 1000), (1000, 3), (514, 513)]
)
def test_the_picture_area_is_where_fit_put_the_picture(picture: tuple[int, int]) -> None:
    """For many shapes, the area without bands is exactly where imaging.fit letterboxed it."""
    fitted = fit(Image.new("RGB", picture, (255, 255, 255)), (513, 513), ResizeMode.letterbox)
    ys, xs = np.nonzero(np.asarray(fitted)[:, :, 0] > LETTERBOX_GREY[0])
    painted = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    area = segmentation.picture_area((513, 513), (513, 513), picture, ResizeMode.letterbox)
    assert area == painted
    squashed = segmentation.picture_area((513, 513), (513, 513), picture, ResizeMode.squash)
    assert squashed == (0, 0, 513, 513)


def test_a_lower_resolution_map_is_cut_in_proportion() -> None:
    """A 65x65 map of a 513x513 input: the bands scale with the map."""
    area = segmentation.picture_area((65, 65), (513, 513), (1000, 500), ResizeMode.letterbox)
    assert area == (0, 16, 65, 49)


@pytest.mark.parametrize("size", [(12, 9), (4, 4), (3, 2), (400, 700)])
def test_scaling_is_pillows_nearest_neighbour(size: tuple[int, int]) -> None:
    """The full-size map is what Pillow's NEAREST resize of the small map gives."""
    ids = np.arange(16, dtype=np.uint8).reshape(4, 4)
    full = segmentation.full_size(_read(ids, size))
    pillow = Image.fromarray(ids, "L").resize(size, Image.Resampling.NEAREST)
    assert np.array_equal(full, np.asarray(pillow))


@pytest.mark.parametrize("size", [(8, 6), (3, 3), (1000, 7)])
def test_areas_count_and_box_every_class_exactly(size: tuple[int, int]) -> None:
    """Pixels, fractions and boxes equal a pixel-by-pixel count of the full-size map; a class
    only in map rows that scaling down drops is absent."""
    ids = _map([[0, 0, 1, 1], [0, 3, 1, 1], [2, 2, 0, 0], [2, 2, 0, 1]])
    class_map = _read(ids, size)
    full = segmentation.full_size(class_map)
    expected = _brute_areas(full)
    found = segmentation.areas(class_map, VOC)
    assert {a.index: (a.pixels, a.box) for a in found} == expected
    assert [a.pixels for a in found] == sorted((a.pixels for a in found), reverse=True)
    assert sum(a.fraction for a in found) == pytest.approx(1.0)
    assert {a.label for a in found} <= set(VOC)


def test_an_id_without_a_label_is_named_as_such() -> None:
    """An id past the labels is reported as ??? rather than dropped or mislabelled."""
    found = segmentation.areas(_read(_map([[0, 9], [0, 0]]), (2, 2)), VOC)
    assert [(a.index, a.label) for a in found] == [(0, "background"), (9, "???")]


def test_a_crop_gives_fractions_of_the_crop_and_boxes_on_the_whole_image() -> None:
    """With crop=0.5,0.25,1,0.75 of a 200x100 image the map stands for 100x50 pixels at
    (100, 25); boxes are in whole-image pixels, fractions of the crop."""
    ids = _map([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    class_map = _read(ids, (200, 100), Region(0.5, 0.25, 1.0, 0.75))
    assert (class_map.left, class_map.top, class_map.width, class_map.height) == (100, 25, 100, 50)
    found = {a.index: a for a in segmentation.areas(class_map, VOC)}
    assert found[1].box == (100, 25, 150, 50)
    assert found[1].fraction == pytest.approx(0.25) and found[1].pixels == 50 * 25
    assert _brute_areas(segmentation.full_size(class_map), 100, 25)[1][1] == found[1].box


def test_a_centre_cropped_map_is_refused() -> None:
    """Centre-cropping hides the photo's edges: reading refuses it, a load says how to fit."""
    with pytest.raises(ValueError, match="centre-cropped"):
        segmentation.read(
            np.zeros((1, 4, 4), np.int64),
            image_size=(8, 4),
            input_size=(4, 4),
            fit=ResizeMode.center_crop,
        )
    with pytest.raises(StartupError) as refused:
        segmentation.check_fit(ResizeMode.center_crop, "deeplab.tflite")
    assert "letterbox" in refused.value.fix


# --- regions ------------------------------------------------------------------------------


def _brute_share(class_map: ClassMap, polygon: Polygon) -> dict[int, float]:
    """Class fractions inside the polygon, drawn once over the whole full-size map."""
    canvas = Image.new("1", (class_map.image_width, class_map.image_height), 0)
    corners = [(x * class_map.image_width, y * class_map.image_height) for x, y in polygon.points]
    ImageDraw.Draw(canvas).polygon(corners, fill=1, outline=1)
    inside = np.asarray(canvas, dtype=bool)[
        class_map.top : class_map.top + class_map.height,
        class_map.left : class_map.left + class_map.width,
    ]
    values = segmentation.full_size(class_map)[inside]
    return {int(i): float(np.mean(values == i)) for i in np.unique(values)}


def test_a_region_says_what_covers_it() -> None:
    """Left half aeroplane, right half bird: a polygon over the left half is all aeroplane,
    one over everything half each, largest first."""
    ids = _map([[1, 1, 3, 3]] * 4)
    class_map = _read(ids, (400, 300))
    left = Polygon("left", ((0.0, 0.0), (0.49, 0.0), (0.49, 1.0), (0.0, 1.0)))
    whole = Polygon("all", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))
    shares = segmentation.region_shares(class_map, [left, whole], VOC)
    assert shares[0].name == "left" and shares[0].classes == ((1, "aeroplane", 1.0),)
    assert shares[1].pixels == 400 * 300
    assert [(i, round(f, 3)) for i, _, f in shares[1].classes] == [(1, 0.5), (3, 0.5)]


def test_region_tiles_add_up_to_one_polygon_drawn_whole() -> None:
    """A triangle over a map taller than a tile, and one half outside a crop: the tiles give
    what one drawing over the whole picture gives."""
    ids = np.random.default_rng(7).integers(0, 4, size=(16, 16), dtype=np.uint8)
    triangle = Polygon("lawn", ((0.1, 0.05), (0.9, 0.4), (0.3, 0.97)))
    whole, crop = _read(ids, (2500, 700)), _read(ids, (2500, 700), Region(0.0, 0.5, 0.6, 1.0))
    assert whole.width * segmentation.TILE_ROWS > segmentation.TILE_PIXELS
    assert whole.height > segmentation.TILE_ROWS
    for class_map in (whole, crop):
        (share,) = segmentation.region_shares(class_map, [triangle], VOC)
        assert {i: round(f, 9) for i, _, f in share.classes} == {
            i: round(f, 9) for i, f in _brute_share(class_map, triangle).items()
        }


def test_a_region_outside_the_crop_covers_nothing() -> None:
    """A region the crop does not show has no pixels and no classes."""
    class_map = _read(_map([[1, 1], [1, 1]]), (100, 100), Region(0.0, 0.0, 0.5, 0.5))
    pool = Polygon("pool", ((0.7, 0.7), (0.9, 0.7), (0.9, 0.9)))
    assert segmentation.region_shares(class_map, [pool], VOC)[0].pixels == 0


@pytest.mark.parametrize(
    ("points", "message"),
    [
        (((0.1, 0.1), (0.5, 0.5)), "at least 3"),
        (((0.1, 0.1), (0.5, 1.5), (0.2, 0.9)), "outside the image"),
        (((0.1, 0.1), (float("nan"), 0.5), (0.2, 0.9)), "outside the image"),
    ],
)
def test_a_bad_polygon_is_a_bad_request(
    points: tuple[tuple[float, float], ...], message: str
) -> None:
    """Too few corners or a corner outside 0..1 is a 400 naming the region."""
    with pytest.raises(BadRequest, match=message) as refused:
        Polygon("driveway", points)
    assert "driveway" in refused.value.detail


# --- the mask picture and memory ---------------------------------------------------------------


def test_the_png_mask_holds_the_class_ids_in_voc_colours() -> None:
    """The PNG decodes (mode P) to the full-size ids, its palette is PASCAL VOC's."""
    class_map = _read(_map([[0, 1, 15, 20], [0, 0, 15, 15], [2, 2, 0, 0], [2, 2, 0, 1]]), (30, 20))
    with Image.open(io.BytesIO(segmentation.png(class_map))) as decoded:
        assert decoded.format == "PNG" and decoded.mode == "P" and decoded.size == (30, 20)
        assert np.array_equal(np.asarray(decoded), segmentation.full_size(class_map))
        palette = decoded.getpalette()
    assert palette is not None
    assert [tuple(palette[3 * i : 3 * i + 3]) for i in (0, 1, 15, 20)] == [
        (0, 0, 0),
        (128, 0, 0),
        (192, 128, 128),
        (0, 64, 128),
    ]
    assert segmentation.legend(VOC)[1] == (1, "aeroplane", (128, 0, 0))


def _answer_peak(class_map: ClassMap) -> int:
    """Bytes allocated at the peak of reading the areas and a whole-image region."""
    whole = Polygon("all", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))
    tracemalloc.start()
    try:
        found = segmentation.areas(class_map, VOC)
        (share,) = segmentation.region_shares(class_map, [whole], VOC)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(a.pixels for a in found) == share.pixels == class_map.width * class_map.height
    return peak


def test_a_49_mp_answer_never_builds_the_full_size_map() -> None:
    """The areas and a region of a 7000x7000 photo take what a 700x700 one's do plus one
    tile of the polygon, not the 49 MB full-size map (one byte a pixel, as mask_bytes says)."""
    ids = np.random.default_rng(1).integers(0, 21, size=(513, 513), dtype=np.uint8)
    large, small = _read(ids, (7000, 7000)), _read(ids, (700, 700))
    assert segmentation.mask_bytes(large) == 49_000_000
    assert _answer_peak(large) <= _answer_peak(small) + 5 * segmentation.TILE_PIXELS
    assert _answer_peak(large) < segmentation.mask_bytes(large) // 3
    assert segmentation.full_size(large).nbytes == segmentation.mask_bytes(large)


def test_a_flat_image_is_as_cheap_to_answer() -> None:
    """A 20,000,000x1 image (under the pixel limit) letterboxed to one map row: its areas and
    a region are exact and take less than half its 20 MB mask."""
    ids = np.zeros((1, 513, 513), dtype=np.int64)
    ids[0, 256, 300:] = 3
    flat = segmentation.read(
        ids, image_size=(20_000_000, 1), input_size=(513, 513), fit=ResizeMode.letterbox
    )
    assert flat.ids.shape == (1, 513)
    assert _answer_peak(flat) < segmentation.mask_bytes(flat) // 2


# --- the real models ------------------------------------------------------------------------


def _segmenter(models_dir: Path, runtime: str, model: str) -> Engine:
    entry = load_catalog()[model]
    options = LoadOptions(
        runtime=RuntimeChoice(runtime),
        num_threads=2,
        replicas=1,
        labels=catalog_labels(model, models_dir),
        resize=ResizeMode(str(entry.resize)),
    )
    return Engine.load(models_dir / entry.file, options)


@pytest.fixture(scope="module")
def segmenters(models_dir: Path, runtime: str) -> Iterator[dict[str, Engine]]:
    """Both DeepLab models (only depth 1.0 under the ten-times-slower tflite-runtime)."""
    names = [SEGMENTER] if runtime == "tflite" else [SEGMENTER, SMALL_SEGMENTER]
    loaded = {name: _segmenter(models_dir, runtime, name) for name in names}
    yield loaded
    for engine in loaded.values():
        engine.close()


@pytest.fixture(scope="module")
def references(models_dir: Path, runtime: str) -> dict[str, Any]:
    """The plain interpreters the reference reads the models with."""
    return {
        name: reference_interpreter(models_dir / f"{name}.tflite", runtime)
        for name in (SEGMENTER, SMALL_SEGMENTER)
    }


def _segment(engine: Engine, data: bytes, region: Region | None = None) -> ClassMap:
    prepared = engine.prepare(data, max_pixels=50_000_000, region=region)
    raw = engine.submit(prepared.tensor).result().raw
    return segmentation.read(
        raw,
        image_size=(prepared.image.width, prepared.image.height),
        input_size=engine.info.input_size,
        fit=engine.resize,
        region=region,
    )


def _models(runtime: str) -> list[str]:
    return [SEGMENTER] if runtime == "tflite" else [SEGMENTER, SMALL_SEGMENTER]


def test_a_segmenter_loads_as_one(segmenters: dict[str, Engine]) -> None:
    """DeepLab loads as a segmentation model: 513x513 uint8 in, int64 map out, 21 labels."""
    info = segmenters[SEGMENTER].info
    assert info.task is Task.segmentation
    assert info.input.shape == (1, 513, 513, 3) and info.output.shape == (1, 513, 513)
    assert info.output.dtype == np.int64
    assert len(info.labels) == 21 and info.labels[15] == "person"


def test_a_segmenter_will_not_load_centre_cropped(models_dir: Path, runtime: str) -> None:
    """Loading a segmenter to centre-crop photos stops start-up with the fix."""
    options = LoadOptions(
        runtime=RuntimeChoice(runtime),
        labels=models_dir / "pascal_voc_segmentation_labels.txt",
        resize=ResizeMode.center_crop,
    )
    with pytest.raises(StartupError, match="segmentation model"):
        Engine.load(models_dir / f"{SMALL_SEGMENTER}.tflite", options)


PHOTOS = [
    "segmentation/voc_2007_000033.jpg",
    "segmentation/voc_2007_000032.jpg",
    "segmentation/dog_segmentation.bmp",
    "grace_hopper.jpg",
    "kite_and_cold.jpg",
]
# Under tflite-runtime (about a second an invoke) a lean matrix: one model, three photos.
LEAN = ["segmentation/voc_2007_000033.jpg", "grace_hopper.jpg", "kite_and_cold.jpg"]


@pytest.mark.slow
@pytest.mark.parametrize("name", LEAN if os.environ.get("EDGE_RUNTIME") == "tflite" else PHOTOS)
def test_the_class_map_matches_the_reference(
    segmenters: dict[str, Engine],
    references: dict[str, Any],
    runtime: str,
    photo: Photo,
    name: str,
) -> None:
    """Same class on >= 99 % of pixels (98 % under tflite-runtime) as the plain interpreter
    with a Pillow letterbox, for each model; fractions within a point of the reference's."""
    floor = 0.98 if runtime == "tflite" else 0.99
    data = photo(name)
    for model in _models(runtime):
        class_map = _segment(segmenters[model], data)
        ours = segmentation.full_size(class_map)
        expected = reference_class_map(references[model], upright(data))
        assert ours.shape == expected.shape
        assert np.mean(ours == expected) >= floor, model
        for area in segmentation.areas(class_map, segmenters[model].info.labels):
            assert area.fraction == pytest.approx(np.mean(expected == area.index), abs=0.01)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_an_exif_rotated_photo_gives_the_upright_mask(
    segmenters: dict[str, Engine], photo: Photo, orientation: int
) -> None:
    """A portrait stored turned with a compensating EXIF tag gives the upright photo's mask."""
    engine = segmenters[SEGMENTER]
    original = photo("grace_hopper.jpg")
    stored = variants.encode(variants.open_rgb(original), "JPEG", quality=95)  # as turned ones
    straight = segmentation.full_size(_segment(engine, stored))
    turned = segmentation.full_size(_segment(engine, variants.exif_rotated(original, orientation)))
    assert turned.shape == straight.shape == (600, 512)
    assert np.mean(turned == straight) >= 0.98
    assert np.mean(turned == 15) > 0.5  # the person, upright or not, covers most of it


def test_a_crop_is_segmented_in_place(
    segmenters: dict[str, Engine], references: dict[str, Any], photo: Photo
) -> None:
    """crop= segments that part: fractions of the crop, boxes in whole-image pixels, the same
    map as the reference reading of the cropped picture."""
    engine = segmenters[SEGMENTER]
    data = photo("kite_and_cold.jpg")
    region = Region(0.05, 0.4, 0.55, 1.0)
    class_map = _segment(engine, data, region)
    left, top, right, bottom = region.pixel_box(1352, 900)
    assert (class_map.left, class_map.top) == (left, top)
    assert (class_map.width, class_map.height) == (right - left, bottom - top)
    found = segmentation.areas(class_map, engine.info.labels)
    assert sum(a.fraction for a in found) == pytest.approx(1.0)
    assert sum(a.pixels for a in found) == (right - left) * (bottom - top)
    expected = reference_class_map(
        references[SEGMENTER], upright(data).crop((left, top, right, bottom))
    )
    assert np.mean(segmentation.full_size(class_map) == expected) >= 0.99
    for area in found:
        if area.pixels >= 100:  # the people; a few stray pixels may differ
            assert area.box == _brute_areas(expected, left, top)[area.index][1]
        assert left <= area.box[0] < area.box[2] <= right
        assert top <= area.box[1] < area.box[3] <= bottom


# --- PASCAL VOC's ground truth --------------------------------------------------------------

IGNORE = 255


def ground_truth(images_dir: Path, name: str) -> Map:
    """The class of each pixel as annotated, 255 where the annotation does not count.

    VOC masks are palette PNGs of class ids with 255 on object borders; the Oxford-IIIT pet's
    trimap is 0 pet (a dog, VOC id 12), 1 background, 2 border (ignored, as VOC's)."""
    folder = images_dir / "segmentation"
    if name.endswith(".bmp"):
        trimap = np.asarray(Image.open(folder / name.replace(".bmp", "_mask.bmp")))
        return np.select([trimap == 0, trimap == 1], [12, 0], IGNORE).astype(np.uint8)
    return np.asarray(Image.open(folder / name.replace(".jpg", "_mask.png")), dtype=np.uint8)


def class_iou(predicted: Map, truth: Map) -> dict[int, float]:
    """IoU of each annotated class, the ignored pixels left out."""
    valid = truth != IGNORE
    scores = {}
    for index in np.unique(truth[valid]):
        p, t = (predicted == index) & valid, (truth == index) & valid
        scores[int(index)] = float((p & t).sum() / (p | t).sum())
    return scores


def foreground_iou(predicted: Map, truth: Map) -> float:
    """IoU of 'not background' against the annotation, the ignored pixels left out."""
    valid = truth != IGNORE
    p, t = (predicted != 0) & valid, (truth != 0) & valid
    return float((p & t).sum() / (p | t).sum())


# One annotated class each (three aeroplanes of one class; one dog): foreground is that class.
SINGLE_CLASS = ["voc_2007_000033.jpg", "dog_segmentation.bmp"]
GROUND_TRUTH = [*SINGLE_CLASS, "voc_2007_000032.jpg"]


@pytest.mark.slow
def test_the_models_reach_their_ground_truth_iou(
    segmenters: dict[str, Engine], images_dir: Path, runtime: str
) -> None:
    """Per-class IoU on the annotated photos (table printed); foreground IoU >= 0.85 for depth
    1.0 on the single-class photos, and every annotated class found on those."""
    rows = []
    for model in _models(runtime):
        engine = segmenters[model]
        for name in GROUND_TRUTH:
            if runtime == "tflite" and name not in SINGLE_CLASS:
                continue
            truth = ground_truth(images_dir, name)
            ours = segmentation.full_size(
                _segment(engine, (images_dir / "segmentation" / name).read_bytes())
            )
            assert ours.shape == truth.shape
            per_class = class_iou(ours, truth)
            foreground = foreground_iou(ours, truth)
            labels = engine.info.labels
            rows.append(
                f"{model:34} {name:22} foreground {foreground:.3f}  "
                + ", ".join(f"{labels[i]} {v:.3f}" for i, v in per_class.items())
            )
            if name in SINGLE_CLASS:
                assert min(per_class.values()) > 0.5, (model, name, per_class)
                if model == SEGMENTER:
                    assert foreground >= 0.85, (name, foreground)
    print("\n" + "\n".join(rows))
