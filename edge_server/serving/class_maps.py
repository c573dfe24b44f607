"""A segmenter's class map handed over whole: the reader of surfaces that answer the map itself
as a tensor (KServe's `class_map` output) rather than as a picture.

The full-size map is one byte a pixel (`segmentation.full_size`), and whatever the surface
encodes it into costs more again (`bytes_per_pixel`): both are charged to the decode memory
budget while they are built, as the mask PNG is (`segmenting._mask_png`), so a 49 MP photo's map
waits for room or is refused with a 413 like a 49 MP decode instead of growing the process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..core import segmentation
from . import segmenting
from .invocation import Invocation
from .schemas import ModelRef, Timing

T = TypeVar("T")


@dataclass(frozen=True)
class MappedImage(Generic[T]):
    """One image's classes present and, when asked for, its full-size map as encoded."""

    model: ModelRef
    classes: list[segmentation.ClassArea]  # largest first
    width: int  # the picture's full upright size (the crop's, with a crop)
    height: int
    encoded: T | None  # `encode` of the full-size ids; None when no encoder was given
    timing: Timing


def mapped(
    encode: Callable[[segmentation.Ids], T] | None, bytes_per_pixel: int
) -> Callable[[Invocation], Awaitable[MappedImage[T]]]:
    """The reader of a segmenter's classes and, with `encode`, its full-size class map
    encoded by it (on the decode pool, with the map and `bytes_per_pixel` a pixel of what
    `encode` makes charged to the decode memory budget meanwhile)."""

    async def read(invocation: Invocation) -> MappedImage[T]:
        class_map = segmenting.class_map_of(invocation)
        classes = segmentation.areas(class_map, invocation.engine.info.labels)
        encoded = None
        if encode is not None:
            encoded = await invocation.offload(
                lambda: _encoded(invocation, class_map, encode, bytes_per_pixel)
            )
        return MappedImage(
            model=invocation.model,
            classes=classes,
            width=class_map.width,
            height=class_map.height,
            encoded=encoded,
            timing=invocation.timed(),
        )

    return read


def _encoded(
    invocation: Invocation,
    class_map: segmentation.ClassMap,
    encode: Callable[[segmentation.Ids], T],
    bytes_per_pixel: int,
) -> T:
    pixels = class_map.width * class_map.height
    with invocation.memory.charge() as charge:
        charge(segmentation.mask_bytes(class_map) + pixels * bytes_per_pixel)
        return encode(segmentation.full_size(class_map))
