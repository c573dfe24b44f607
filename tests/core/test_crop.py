"""Regions of interest: parsing, pixel boxes, reduced decoding, and `crop=` over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from edge_server.core import imaging
from edge_server.core.errors import BadRequest
from edge_server.core.region import Region, parse_region

from support import variants

Photo = Callable[[str], bytes]


def test_parse_region_reads_four_fractions() -> None:
    """`x0,y0,x1,y1` (spaces allowed) becomes a Region."""
    assert parse_region("0.25, 0,0.75,1") == Region(0.25, 0.0, 0.75, 1.0)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.5,0,0.5,1", "empty box"),
        ("0,0.8,1,0.2", "empty box"),
        ("0,0,1.5,1", "outside the picture"),
        ("-0.1,0,1,1", "outside the picture"),
        ("nan,0,1,1", "outside the picture"),
        ("0,0,1", "four numbers"),
        ("a,b,c,d", "not a number"),
    ],
)
def test_parse_region_refuses_bad_boxes(text: str, reason: str) -> None:
    """Empty, out-of-range or malformed boxes are 400s that say why and show the format."""
    with pytest.raises(BadRequest, match=reason) as raised:
        parse_region(text)
    assert "crop=x0,y0,x1,y1" in raised.value.detail


def test_pixel_box_is_never_empty() -> None:
    """A sliver at the picture's edge still covers at least one pixel."""
    assert Region(0.999, 0.999, 1.0, 1.0).pixel_box(10, 10) == (9, 9, 10, 10)
    assert Region(0.0, 0.0, 0.5, 1.0).pixel_box(640, 320) == (0, 0, 320, 320)


def test_a_small_region_of_a_large_jpeg_keeps_enough_pixels(photo: Photo) -> None:
    """The reduced JPEG decode accounts for the crop: a 10% region still fills a 224 input."""
    large = variants.upscaled_jpeg(photo("grace_hopper.jpg"), 2400, 2800)
    region = Region(0.45, 0.45, 0.55, 0.55)
    decoded = imaging.decode(large, min_size=224, max_pixels=50_000_000, region=region)
    assert min(decoded.picture.size) >= 224
    assert (decoded.width, decoded.height) == (2400, 2800)


@pytest.fixture(scope="module")
def parrot_and_coffee(photo: Photo) -> bytes:
    """A macaw on the left half, an espresso on the right half."""
    return variants.side_by_side(photo("parrot.jpg"), photo("coffee.png"))


@pytest.mark.parametrize(("crop", "label"), [("0,0,0.5,1", "macaw"), ("0.5,0,1,1", "espresso")])
def test_crop_picks_the_half_that_is_classified(
    http: httpx.Client, parrot_and_coffee: bytes, crop: str, label: str
) -> None:
    """Each half of a two-photo picture classifies as its own photo."""
    response = http.post(
        "/classify", files={"image": parrot_and_coffee}, params={"crop": crop, "top_k": 1}
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["label"] == label


def test_crop_applies_to_the_upright_picture(http: httpx.Client, parrot_and_coffee: bytes) -> None:
    """With the picture stored turned and an EXIF orientation, the left half is still the macaw."""
    turned = variants.exif_rotated(parrot_and_coffee, 6)
    answer = http.post(
        "/classify", files={"image": turned}, params={"crop": "0,0,0.5,1", "top_k": 1}
    ).json()
    assert answer["image"]["orientation_applied"] is True
    assert answer["predictions"][0]["label"] == "macaw"


@pytest.mark.parametrize("crop", ["0.5,0,0.5,1", "0,0,2,1", "left-half"])
def test_bad_crop_is_400_problem_json(http: httpx.Client, photo: Photo, crop: str) -> None:
    """A bad crop is a 400 problem+json naming crop, on /classify and /classify/batch."""
    for path, field in (("/classify", "image"), ("/classify/batch", "images")):
        response = http.post(path, files={field: photo("coffee.png")}, params={"crop": crop})
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"].startswith(f"crop {crop!r}")
