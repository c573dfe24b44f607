"""An event's picture as Frigate's snapshot route cuts it: the square around the object, scaled."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from PIL import Image

from edge_server.core.crops import scaled_jpeg, square_around


@pytest.mark.parametrize(
    ("box", "size", "square"),
    [
        ((100, 100, 200, 300), (640, 360), (40, 90, 260, 310)),  # 1.1 x 200 = 220, centred
        ((0, 0, 50, 50), (640, 360), (0, 0, 55, 55)),  # moved right and down into the frame
        ((600, 300, 640, 360), (640, 360), (574, 294, 640, 360)),  # moved left and up
        ((0, 0, 640, 360), (640, 360), (0, 0, 640, 360)),  # larger than the frame: the frame
    ],
)
def test_square_around_a_box_stays_in_the_frame(
    box: tuple[int, int, int, int],
    size: tuple[int, int],
    square: tuple[int, int, int, int],
) -> None:
    """The crop is 1.1 times the box's longer side, centred on it and shifted inside the frame."""
    assert square_around(box, *size) == square


def test_scaled_jpeg_crops_then_scales_to_the_height(photo: Callable[[str], bytes]) -> None:
    """crop + h: the square around the box, then `h` rows keeping the square's aspect."""
    with Image.open(io.BytesIO(photo("grace_hopper.jpg"))) as opened:
        original = io.BytesIO()
        opened.convert("RGB").save(original, "JPEG")
    cropped = scaled_jpeg(original.getvalue(), box=(100, 50, 300, 450), height=500)
    with Image.open(io.BytesIO(cropped)) as picture:
        assert picture.format == "JPEG"
        assert picture.size == (500, 500)
    whole = scaled_jpeg(original.getvalue(), height=300)
    with Image.open(io.BytesIO(whole)) as picture, Image.open(original) as source:
        assert picture.height == 300
        assert picture.width == round(source.width * 300 / source.height)


def test_scaled_jpeg_without_a_box_or_height_is_the_same_bytes(
    photo: Callable[[str], bytes],
) -> None:
    """Nothing asked, nothing re-encoded: the stored JPEG goes out as it is."""
    data = photo("grace_hopper.jpg")
    assert scaled_jpeg(data) is data
