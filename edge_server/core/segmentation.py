"""Which pixels are what: a segmenter's class map read into an answer.

A semantic segmentation model (DeepLab v3 here) gives every pixel of its input a class: either
the ids themselves (an integer [1, H, W] map; Google's DeepLab releases end in an ArgMax) or a
score per class ([1, H, W, C], whose argmax is taken here). The map covers the model input, so
reading it undoes the fitting: the letterbox bands are cut off, and what is left stands for the
photo (or its crop) at its upright, full-resolution size, scaled up nearest-neighbour.

Memory: the answer never builds that full-size map. Nearest-neighbour scaling repeats each row
and column of the small map a known number of times (`ClassMap.row_repeats`, `col_repeats`), so
the full-size pixel counts, fractions and boxes are exact sums over the small map weighted by
those repeats: a 49 MP photo's answer costs what a 0.3 MP one does, and nothing is kept per
full-size row or column (a 50,000,000x1 image is as cheap). Only a mask picture needs every
pixel: `full_size` builds it at one byte a pixel (49 MB at 49 MP, never the model's int64),
`mask_bytes` says how much that is, so the caller charges it to the decode memory budget
(`memory.MemoryBudget`) before, and `png` encodes it without another copy. A named region is
drawn at full size in tiles of at most `TILE_PIXELS` of its bounding box, each tile's inside
pixels summed onto the small map's pixels they are copies of.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from .errors import BadRequest, StartupError
from .imaging import ResizeMode
from .region import Region

NO_CLASS = "???"
# Pixels of a region drawn at once, at most TILE_ROWS rows (wider when the region is flatter):
# a 0.5 MB polygon mask, 2 MB while it is summed.
TILE_PIXELS = 2048 * 256
TILE_ROWS = 256
# zlib level of the mask PNG: class maps are long runs of one byte, which level 1 already
# packs to a few per cent; higher levels cost time for little (benchmarks/segmentation.py).
PNG_COMPRESSION = 1

Ids = npt.NDArray[np.unsignedinteger[Any]]  # uint8, or uint16 past 256 classes


@dataclass(frozen=True)
class ClassMap:
    """The class ids of the part of the model's map that shows the picture, and where and how
    large that picture is in the whole upright image.

    At full size (nearest-neighbour) map row `r` is repeated `row_repeats[r]` times (0 when
    the picture is smaller than the map) and column `c` `col_repeats[c]` times.
    """

    ids: Ids  # (map rows, map columns) of the picture's part of the model's output
    row_repeats: npt.NDArray[np.int64]  # one per map row; they sum to the height
    col_repeats: npt.NDArray[np.int64]  # one per map column; they sum to the width
    left: int  # the picture (the crop, or the whole image) in whole-image pixels
    top: int
    image_width: int  # the whole upright image
    image_height: int

    @property
    def width(self) -> int:
        """Full-size width of the picture the map stands for (the crop's, with a crop)."""
        return int(self.col_repeats.sum())

    @property
    def height(self) -> int:
        """Full-size height of the picture the map stands for."""
        return int(self.row_repeats.sum())


@dataclass(frozen=True)
class ClassArea:
    """One class present in the picture: its pixels, their share and their bounding box.

    `box` is (x_min, y_min, x_max, y_max) in whole-image pixels, maxima exclusive (the edges
    of the pixels, as a detector's boxes are given), even when only a crop was segmented.
    """

    index: int
    label: str
    pixels: int
    fraction: float  # of the picture (the crop, with a crop)
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Polygon:
    """A named area of the image (the driveway, the pool): corners as fractions (0..1) of the
    whole upright image's width and height."""

    name: str
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.points) < 3:
            raise BadRequest(
                f"region {self.name!r} has {len(self.points)} corners; a polygon needs at least 3"
            )
        for x, y in self.points:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise BadRequest(
                    f"region {self.name!r} has a corner ({x:g}, {y:g}) outside the image; "
                    "corners are fractions of its width and height, 0 to 1"
                )


@dataclass(frozen=True)
class RegionShare:
    """What covers a named region: its pixels inside the segmented picture and, for each class
    present there, the fraction of those pixels it covers (largest first)."""

    name: str
    pixels: int
    classes: tuple[tuple[int, str, float], ...]  # (index, label, fraction)


def is_class_map(details: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a model's outputs are one class map: integer ids [1, H, W], or per-class
    scores [1, H, W, C], with H and W above 1 (a classifier's [1, C] or [1, 1, 1, C] is not)."""
    if len(details) != 1:
        return False
    shape = tuple(int(s) for s in details[0]["shape"])
    integer = np.issubdtype(np.dtype(details[0]["dtype"]), np.integer)
    if len(shape) == 3 and integer:
        return shape[0] == 1 and shape[1] > 1 and shape[2] > 1
    return len(shape) == 4 and shape[0] == 1 and shape[1] > 1 and shape[2] > 1 and shape[3] > 1


def check_fit(mode: ResizeMode, name: str) -> None:
    """A segmenter must see the whole photo: centre-cropping would leave its edges unlabelled."""
    if mode is ResizeMode.center_crop:
        raise StartupError(
            f"{name} is a segmentation model, which labels every pixel of the photo; "
            "centre-cropping hides the photo's edges from it",
            fix="fit its photos by letterbox (its catalog fit) or squash: resize = "
            '"letterbox" in its models config table, or EDGE_RESIZE=letterbox',
        )


def class_ids(raw: npt.NDArray[Any]) -> Ids:
    """The (H, W) class ids of one output: the ids as given, or the argmax of the scores,
    in the smallest unsigned type that holds them (negative ids, never written by an ArgMax,
    are clipped to 0)."""
    values = raw.reshape(raw.shape[1:]) if raw.ndim in (3, 4) and raw.shape[0] == 1 else raw
    if values.ndim == 3:
        values = np.argmax(values, axis=-1)
    if values.ndim != 2:
        raise ValueError(f"a class map has shape [1, H, W] or [1, H, W, C], not {raw.shape}")
    clipped: npt.NDArray[np.integer[Any]] = np.clip(values, 0, np.iinfo(np.uint16).max)
    if int(clipped.max(initial=0)) <= np.iinfo(np.uint8).max:
        return clipped.astype(np.uint8)
    return clipped.astype(np.uint16)


def picture_area(
    map_size: tuple[int, int],
    input_size: tuple[int, int],
    picture: tuple[int, int],
    mode: ResizeMode,
) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the model map showing the picture, bands cut off.

    `map_size`, `input_size` and `picture` are (width, height). Letterboxing follows
    `imaging.fit` (Pillow's `ImageOps.pad`: the picture scaled to fit, rounded, centred);
    a squashed picture fills the map. The area is in map pixels, which may be fewer than the
    input's (a map at a lower resolution is scaled with it).
    """
    map_width, map_height = map_size
    if mode is not ResizeMode.letterbox:
        return 0, 0, map_width, map_height
    target_width, target_height = input_size
    width, height = picture
    shown_width, shown_height = target_width, target_height
    if width * target_height > height * target_width:  # wider: bands above and below
        shown_height = max(1, round(height / width * target_width))
    elif width * target_height < height * target_width:  # taller: bands left and right
        shown_width = max(1, round(width / height * target_height))
    x = round((target_width - shown_width) * 0.5)
    y = round((target_height - shown_height) * 0.5)
    left = x * map_width // target_width
    top = y * map_height // target_height
    right = max(left + 1, -(-(x + shown_width) * map_width // target_width))
    bottom = max(top + 1, -(-(y + shown_height) * map_height // target_height))
    return left, top, right, bottom


def repeats(source: int, target: int) -> npt.NDArray[np.int64]:
    """How many of `target` pixels copy each of `source` pixels when scaling nearest-neighbour.

    Target pixel i copies source pixel floor((i + 1/2) * source / target), the one under its
    centre (Pillow's NEAREST); in integers, the copies of pixels 0..k are the i with
    (2i + 1) * source < 2 (k + 1) * target.
    """
    k = np.arange(1, source + 1, dtype=np.int64)
    ends = np.clip((2 * k * target - source + 2 * source - 1) // (2 * source), 0, target)
    return np.diff(ends, prepend=0)


def _runs(
    repeats: npt.NDArray[np.int64], start: int, stop: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]]:
    """The source pixels that target pixels start..stop copy, and where each one's run of
    copies begins (counted from start): arrays as long as the source, not the target."""
    ends = np.cumsum(repeats)
    first = int(np.searchsorted(ends, start, side="right"))
    last = int(np.searchsorted(ends, stop - 1, side="right"))
    sources = np.arange(first, last + 1)
    sources = sources[repeats[sources] > 0]
    return sources, np.maximum(ends[sources] - repeats[sources], start) - start


def read(
    raw: npt.NDArray[Any],
    *,
    image_size: tuple[int, int],
    input_size: tuple[int, int],
    fit: ResizeMode,
    region: Region | None = None,
) -> ClassMap:
    """The class map of one invoke, placed on the upright image.

    `image_size` is the whole upright image's (width, height) at full resolution, `input_size`
    the model input's, `fit` how the picture was fitted to it; with a `region`, the picture was
    that part of the image.
    """
    if fit is ResizeMode.center_crop:
        raise ValueError("a centre-cropped picture's edges have no classes (see check_fit)")
    ids = class_ids(raw)
    image_width, image_height = image_size
    if region is None:
        left, top, right, bottom = 0, 0, image_width, image_height
    else:
        left, top, right, bottom = region.pixel_box(image_width, image_height)
    width, height = right - left, bottom - top
    map_size = (ids.shape[1], ids.shape[0])
    x0, y0, x1, y1 = picture_area(map_size, input_size, (width, height), fit)
    shown = ids[y0:y1, x0:x1]
    return ClassMap(
        ids=shown,
        row_repeats=repeats(shown.shape[0], height),
        col_repeats=repeats(shown.shape[1], width),
        left=left,
        top=top,
        image_width=image_width,
        image_height=image_height,
    )


def areas(class_map: ClassMap, labels: Sequence[str]) -> list[ClassArea]:
    """Every class present at full size, the largest first: pixels, fraction and box.

    Exact for the full-size map without building it: each map pixel stands for as many
    full-size pixels as its row and column are repeated.
    """
    ids = class_map.ids
    row_repeats, col_repeats = class_map.row_repeats, class_map.col_repeats
    classes = int(ids.max(initial=0)) + 1
    weights = np.outer(row_repeats, col_repeats).ravel()
    counts = np.rint(np.bincount(ids.ravel(), weights=weights, minlength=classes)).astype(np.int64)
    # Boxes from the map rows and columns that appear at full size, and where each starts.
    kept_rows, kept_cols = np.flatnonzero(row_repeats), np.flatnonzero(col_repeats)
    row_start = (np.cumsum(row_repeats) - row_repeats)[kept_rows]
    col_start = (np.cumsum(col_repeats) - col_repeats)[kept_cols]
    kept = ids[np.ix_(kept_rows, kept_cols)]
    in_row = np.zeros((classes, len(kept_rows)), dtype=bool)
    in_row[kept, np.arange(len(kept_rows))[:, np.newaxis]] = True
    in_col = np.zeros((classes, len(kept_cols)), dtype=bool)
    in_col[kept, np.arange(len(kept_cols))[np.newaxis, :]] = True
    total = class_map.width * class_map.height
    found = []
    for index in np.flatnonzero(counts):
        r = np.flatnonzero(in_row[index])
        c = np.flatnonzero(in_col[index])
        box = (
            class_map.left + int(col_start[c[0]]),
            class_map.top + int(row_start[r[0]]),
            class_map.left + int(col_start[c[-1]] + col_repeats[kept_cols[c[-1]]]),
            class_map.top + int(row_start[r[-1]] + row_repeats[kept_rows[r[-1]]]),
        )
        pixels = int(counts[index])
        found.append(ClassArea(int(index), _label(labels, int(index)), pixels, pixels / total, box))
    found.sort(key=lambda a: (-a.pixels, a.index))
    return found


def full_size(class_map: ClassMap) -> Ids:
    """The class map at the picture's full upright size, one byte a pixel (`mask_bytes`)."""
    taller = np.repeat(class_map.ids, class_map.row_repeats, axis=0)
    return np.repeat(taller, class_map.col_repeats, axis=1)


def mask_bytes(class_map: ClassMap) -> int:
    """Bytes `full_size` holds: what a mask costs the decode memory budget."""
    return class_map.width * class_map.height * class_map.ids.itemsize


def region_shares(
    class_map: ClassMap, polygons: Sequence[Polygon], labels: Sequence[str]
) -> list[RegionShare]:
    """For each named polygon, its full-size pixels inside the picture and the fraction of
    them each class covers.

    A pixel is in a polygon when Pillow's polygon fill (`ImageDraw.polygon`, which includes
    the outline) paints it; a polygon partly outside a crop counts only what the crop shows.
    """
    return [_share(class_map, polygon, labels) for polygon in polygons]


def _share(class_map: ClassMap, polygon: Polygon, labels: Sequence[str]) -> RegionShare:
    # Corners in the picture's full-size pixels, and the part of the picture they span.
    corners = [
        (x * class_map.image_width - class_map.left, y * class_map.image_height - class_map.top)
        for x, y in polygon.points
    ]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    x0, x1 = max(0, int(np.floor(min(xs)))), min(class_map.width, int(np.ceil(max(xs))) + 1)
    y0, y1 = max(0, int(np.floor(min(ys)))), min(class_map.height, int(np.ceil(max(ys))) + 1)
    # Full-size pixels inside the polygon, summed per map pixel they are copies of: the class
    # counts are then a weighted count over the small map, and no full-size ids are made.
    inside_per_cell = np.zeros(class_map.ids.shape, dtype=np.int64)
    tile_height = max(1, min(TILE_ROWS, y1 - y0))
    tile_width = TILE_PIXELS // tile_height
    for top in range(y0, y1, tile_height):
        bottom = min(y1, top + tile_height)
        rows, row_runs = _runs(class_map.row_repeats, top, bottom)
        for left in range(x0, x1, tile_width):
            right = min(x1, left + tile_width)
            cols, col_runs = _runs(class_map.col_repeats, left, right)
            canvas = Image.new("1", (right - left, bottom - top), 0)
            tile_corners = [(x - left, y - top) for x, y in corners]
            ImageDraw.Draw(canvas).polygon(tile_corners, fill=1, outline=1)
            inside = np.asarray(canvas, dtype=bool)
            per_column = np.add.reduceat(inside, col_runs, axis=1, dtype=np.int32)
            per_cell = np.add.reduceat(per_column, row_runs, axis=0)
            inside_per_cell[np.ix_(rows, cols)] += per_cell
    counts = np.rint(
        np.bincount(
            class_map.ids.ravel(),
            weights=inside_per_cell.ravel(),
            minlength=int(class_map.ids.max(initial=0)) + 1,
        )
    ).astype(np.int64)
    pixels = int(counts.sum())
    shares = sorted(
        ((int(i), _label(labels, int(i)), int(counts[i]) / pixels) for i in np.flatnonzero(counts)),
        key=lambda s: (-s[2], s[0]),
    )
    return RegionShare(polygon.name, pixels, tuple(shares))


def colour(index: int) -> tuple[int, int, int]:
    """PASCAL VOC's colour for a class id (its devkit's bit-interleaved colour map:
    0 black, 1 dark red, 15 person pink-beige ...)."""
    red = green = blue = 0
    for shift in range(7, -1, -1):
        red |= ((index >> 0) & 1) << shift
        green |= ((index >> 1) & 1) << shift
        blue |= ((index >> 2) & 1) << shift
        index >>= 3
    return red, green, blue


def legend(labels: Sequence[str]) -> list[tuple[int, str, tuple[int, int, int]]]:
    """(id, label, colour) of every class, as a mask PNG draws them."""
    return [(index, label, colour(index)) for index, label in enumerate(labels)]


def png(class_map: ClassMap, *, compression: int = PNG_COMPRESSION) -> bytes:
    """The full-size class map as a palette PNG: each pixel's value is its class id (read it
    back with Pillow as mode "P"), drawn in PASCAL VOC's colours in an image viewer.

    Holds `mask_bytes` while it runs (Pillow encodes the ids in place, without a copy).
    """
    if class_map.ids.dtype != np.uint8:
        raise ValueError("a palette PNG holds at most 256 classes")
    ids = np.ascontiguousarray(full_size(class_map))
    picture = Image.frombuffer("P", (class_map.width, class_map.height), ids, "raw", "P", 0, 1)
    picture.putpalette([value for index in range(256) for value in colour(index)])
    out = io.BytesIO()
    picture.save(out, "PNG", compress_level=compression)
    return out.getvalue()


def _label(labels: Sequence[str], index: int) -> str:
    return labels[index] if 0 <= index < len(labels) else NO_CLASS
