"""Segmentation's room in the data plane: a segmenter's invoke read into "which pixels are what".

The maths is the core's (`core/segmentation.py`); here are the request's options, checked
before any work, and the answer: every class present with its share and box, what covers each
named region, and the full-size mask, built off the event loop and charged to the decode
memory budget like a decoded image (a 49 MP photo's mask holds 49 MB while it is encoded).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ..core import imaging, overlay, segmentation
from ..core.errors import BadRequest
from ..core.imaging import ResizeMode
from ..core.overlay import Picture
from .invocation import Invocation
from .schemas import (
    LegendEntry,
    Mask,
    PixelBox,
    RegionClass,
    RegionCover,
    SegmentClass,
    SegmentResponse,
    Timing,
)

MASK_FORMATS = ("png",)
# Bounds on `regions=`, so the cost of one request stays that of a few tiled polygon fills.
MAX_REGIONS = 16
MAX_CORNERS = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
REGIONS_HELP = (
    "regions= is a JSON object of named polygons, corners as fractions (0 to 1) of the image's "
    'width and height: {"driveway": [[0.1, 0.5], [0.6, 0.5], [0.6, 1], [0.1, 1]]}; at most '
    f"{MAX_REGIONS} regions of 3 to {MAX_CORNERS} corners, names of letters, digits, spaces, "
    "'.', '_' and '-'"
)


@dataclass(frozen=True)
class SegmentOptions:
    """What a segment request asks for beyond the classes present."""

    mask: bool = False
    regions: tuple[segmentation.Polygon, ...] = field(default_factory=tuple)


def mask_option(value: str | None) -> bool:
    """`mask=`: absent, or one of MASK_FORMATS (a 400 names them)."""
    if value is None or value == "":
        return False
    if value.lower() not in MASK_FORMATS:
        raise BadRequest(f"mask {value!r} is not one of {', '.join(MASK_FORMATS)}")
    return True


def parse_regions(text: str | None) -> tuple[segmentation.Polygon, ...]:
    """`regions=`'s JSON as polygons; anything else is a 400 that says what is allowed."""
    if text is None or not text.strip():
        return ()
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"regions is not valid JSON ({exc}); {REGIONS_HELP}") from None
    if not isinstance(document, dict) or not document:
        raise BadRequest(f"regions is not a JSON object of named polygons; {REGIONS_HELP}")
    if len(document) > MAX_REGIONS:
        raise BadRequest(f"regions names {len(document)} regions; {REGIONS_HELP}")
    polygons = []
    for name, corners in document.items():
        if not _NAME.fullmatch(name):
            raise BadRequest(f"region name {name[:80]!r} is not allowed; {REGIONS_HELP}")
        polygons.append(segmentation.Polygon(name, _corners(name, corners)))
    return tuple(polygons)


def _corners(name: str, corners: object) -> tuple[tuple[float, float], ...]:
    if not isinstance(corners, list) or not 3 <= len(corners) <= MAX_CORNERS:
        raise BadRequest(
            f"region {name!r} is not a list of 3 to {MAX_CORNERS} corners; {REGIONS_HELP}"
        )
    points = []
    for corner in corners:
        if (
            not isinstance(corner, list)
            or len(corner) != 2
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in corner
            )
        ):
            raise BadRequest(f"region {name!r} has a corner that is not [x, y]; {REGIONS_HELP}")
        points.append((float(corner[0]), float(corner[1])))
    return tuple(points)


# What a picture answer shows when the request lists no labels: every class for a cut-out,
# people for privacy masking.
DEFAULT_HIDDEN = ("person",)


@dataclass(frozen=True)
class PictureRequest:
    """A picture instead of JSON: which one, and the classes it cuts out or hides."""

    kind: Picture
    classes: tuple[int, ...] = ()  # ids; for a cut-out () means every class but background


@dataclass(frozen=True)
class RenderedPicture:
    """A picture answer: its bytes, their type and where the time went."""

    data: bytes
    media_type: str
    timing: Timing


def picture_kind(format_: str | None, accept: str | None) -> Picture | None:
    """`format=` (overlay, cutout, blur, fill), else the Accept header's picture type
    (image/jpeg: the overlay; image/png: the cut-out); None for a JSON answer.

    The Accept header is read by its quality values (RFC 9110 12.5.1), the first listed
    winning a tie: `image/png;q=0.5, application/json` is JSON, `image/jpeg;q=0` is not a
    JPEG, and a header naming none of the three (a browser's `image/*` or `*/*`) is JSON.
    """
    if format_:
        try:
            return Picture(format_.strip().lower())
        except ValueError:
            choices = ", ".join(kind.value for kind in Picture)
            raise BadRequest(f"format {format_[:32]!r} is not one of {choices}") from None
    best: tuple[float, Picture | None] | None = None
    for part in (accept or "").split(","):
        media, *parameters = (piece.strip().lower() for piece in part.split(";"))
        if media not in _ANSWERS:
            continue
        quality = _quality(parameters)
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, _ANSWERS[media])
    return None if best is None else best[1]


# What each media type of an Accept header asks /segment for.
_ANSWERS: dict[str, Picture | None] = {
    "application/json": None,
    "*/*": None,
    "image/jpeg": Picture.overlay,
    "image/jpg": Picture.overlay,
    "image/png": Picture.cutout,
}


def _quality(parameters: Sequence[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "q":
            try:
                quality = float(value)
            except ValueError:
                return 1.0  # a malformed weight is ignored, as if absent
            return quality if 0.0 <= quality <= 1.0 else 1.0
    return 1.0


def picture_classes(kind: Picture, labels: str | None, known: Sequence[str]) -> tuple[int, ...]:
    """The ids of `labels=` (comma-separated, any case) a cut-out keeps or blur and fill
    hide; a 400 names the model's labels when one is not among them, and says that the
    overlay takes none (it tints every class)."""
    names = [n.strip() for n in (labels or "").split(",") if n.strip()]
    if kind is Picture.overlay:
        if names:
            raise BadRequest(
                "labels apply to format=cutout, blur and fill; the overlay tints every class"
            )
        return ()
    if not names:
        names = [] if kind is Picture.cutout else list(DEFAULT_HIDDEN)
    folded = [label.casefold() for label in known]
    ids = []
    for name in names:
        if name.casefold() not in folded:
            raise BadRequest(
                f"label {name[:64]!r} is not one of the segmenter's: {', '.join(known)}"
            )
        ids.append(folded.index(name.casefold()))
    if kind is Picture.cutout and not ids:
        ids = [index for index in range(len(known)) if index != overlay.BACKGROUND]
    return tuple(dict.fromkeys(ids))


def pictured(request: PictureRequest) -> Callable[[Invocation], Awaitable[RenderedPicture]]:
    """The reader of a picture answer: the photo (or crop) decoded again at full size, drawn
    on or cut by its class map, off the event loop and charged to the decode memory budget."""

    async def read(invocation: Invocation) -> RenderedPicture:
        data = await picture_of(invocation, request)
        return RenderedPicture(data, request.kind.media_type, invocation.timed())

    return read


async def picture_of(invocation: Invocation, request: PictureRequest) -> bytes:
    """The picture of one segmenter invoke, encoded (without timing it: a reader that also
    answers JSON times the request once)."""
    class_map = class_map_of(invocation)
    return await invocation.offload(lambda: _render(invocation, class_map, request))


def _render(
    invocation: Invocation, class_map: segmentation.ClassMap, request: PictureRequest
) -> bytes:
    image = invocation.prepared.image
    drawing = [class_map.width * class_map.height * overlay.PICTURE_BYTES_PER_PIXEL]
    with invocation.memory.charge() as charge:

        def charge_with_drawing(nbytes: int) -> None:
            # The drawing is charged with the decode, in one acquisition: charged in turn, two
            # amounts that each fit the budget but not together would wait for room this
            # request holds itself, and end in a 503 "retry" where the answer is a 413.
            charge(nbytes + (drawing.pop() if drawing else 0))

        decoded = imaging.decode(
            invocation.data,
            min_size=max(image.width, image.height),
            max_pixels=image.width * image.height,
            region=invocation.region,
            charge=charge_with_drawing,
        )
        if drawing:  # a decode that charged nothing
            charge(drawing.pop())
        picture = decoded.picture
        if picture.size != (class_map.width, class_map.height):  # a crop's rounding
            picture = picture.resize((class_map.width, class_map.height))
        ids = segmentation.full_size(class_map)
        kind = request.kind
        if kind is Picture.overlay:
            drawn = overlay.overlay(picture, ids)
        elif kind is Picture.cutout:
            drawn = overlay.cutout(picture, ids, request.classes)
        else:
            drawn = overlay.hidden(picture, ids, request.classes, kind)
        del picture, ids, decoded  # the pixels go before their charge does
        return overlay.encoded(drawn, kind)


def check_fit(resize: ResizeMode | None) -> None:
    """A segmenter sees the whole picture: a centre crop would leave its edges without a class."""
    if resize is ResizeMode.center_crop:
        raise BadRequest(
            "resize=center-crop would leave the picture's edges without a class; a segmenter "
            "takes letterbox (its own fit) or squash"
        )


def class_map_of(invocation: Invocation) -> segmentation.ClassMap:
    """A segmenter invoke's class map, placed on the upright image (or its crop) as fitted."""
    image = invocation.prepared.image
    return segmentation.read(
        invocation.inference.raw,
        image_size=(image.width, image.height),
        input_size=invocation.engine.info.input_size,
        fit=invocation.prepared.resize,
        region=invocation.region,
    )


def segmented(options: SegmentOptions) -> Callable[[Invocation], Awaitable[SegmentResponse]]:
    """The reader of a segment answer."""

    async def read(invocation: Invocation) -> SegmentResponse:
        labels = invocation.engine.info.labels
        class_map = class_map_of(invocation)
        classes = [_class(area) for area in segmentation.areas(class_map, labels)]
        regions = None
        if options.regions:
            shares = await invocation.offload(
                lambda: segmentation.region_shares(class_map, options.regions, labels)
            )
            regions = [_cover(share) for share in shares]
        mask = None
        if options.mask:
            data = await invocation.offload(lambda: _mask_png(invocation, class_map))
            mask = Mask(
                format="png",
                width=class_map.width,
                height=class_map.height,
                left=class_map.left,
                top=class_map.top,
                data=base64.b64encode(data).decode("ascii"),
                legend=_legend(labels),
            )
        return SegmentResponse(
            model=invocation.model,
            classes=classes,
            regions=regions,
            mask=mask,
            image=invocation.image,
            timing_ms=invocation.timed(),
        )

    return read


def _mask_png(invocation: Invocation, class_map: segmentation.ClassMap) -> bytes:
    """The mask's PNG, its full-size map held against the decode memory budget meanwhile."""
    with invocation.memory.charge() as charge:
        charge(segmentation.mask_bytes(class_map))
        return segmentation.png(class_map)


def _class(area: segmentation.ClassArea) -> SegmentClass:
    x_min, y_min, x_max, y_max = area.box
    return SegmentClass(
        label=area.label,
        index=area.index,
        fraction=round(area.fraction, 6),
        pixels=area.pixels,
        box=PixelBox(x_min=x_min, y_min=y_min, x_max=x_max, y_max=y_max),
    )


def _cover(share: segmentation.RegionShare) -> RegionCover:
    return RegionCover(
        name=share.name,
        pixels=share.pixels,
        classes=[
            RegionClass(label=label, index=index, fraction=round(fraction, 6))
            for index, label, fraction in share.classes
        ],
    )


def _legend(labels: Sequence[str]) -> list[LegendEntry]:
    return [
        LegendEntry(index=index, label=label, color=color)
        for index, label, color in segmentation.legend(labels)
    ]
