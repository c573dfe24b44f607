"""Decoding uploads into upright RGB pictures, and fitting them to the model input."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from edge_server.core import imaging
from edge_server.core.errors import BadImage, TooLarge, UnsupportedMediaType
from edge_server.core.imaging import ResizeMode

from support import variants

Photo = Callable[[str], bytes]
LIMIT = 50_000_000


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean())


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_makes_the_picture_upright(photo: Photo, orientation: int) -> None:
    """A photo stored turned, with the compensating EXIF tag, decodes to the upright pixels."""
    original = imaging.decode(photo("grace_hopper.jpg"), min_size=600, max_pixels=LIMIT)
    turned = variants.exif_rotated(photo("grace_hopper.jpg"), orientation)
    decoded = imaging.decode(turned, min_size=600, max_pixels=LIMIT)
    stored = variants.open_rgb(turned)
    assert decoded.orientation_applied
    assert (decoded.width, decoded.height) == (512, 600)
    assert decoded.picture.size == (512, 600)
    # Upright: close to the original (JPEG re-encoding noise only) ...
    assert _mean_abs_diff(decoded.picture, original.picture) < 3
    if stored.size == original.picture.size:
        # ... while the stored pixels, read naively, are far from it.
        assert _mean_abs_diff(stored, original.picture) > 20


@pytest.mark.parametrize(
    ("make", "fmt"),
    [
        (variants.cmyk_jpeg, "JPEG"),
        (variants.rgba_png, "PNG"),
        (variants.palette_png, "PNG"),
        (variants.palette_png_with_transparency, "PNG"),
        (variants.la_png, "PNG"),
        (variants.gray16_png, "PNG"),
        (variants.webp, "WEBP"),
        (variants.progressive_jpeg, "JPEG"),
        (variants.bmp, "BMP"),
        (variants.gif, "GIF"),
        (variants.tiff, "TIFF"),
    ],
)
def test_every_mode_and_format_decodes_to_rgb(
    photo: Photo, make: Callable[[bytes], bytes], fmt: str
) -> None:
    """Each accepted format and mode comes out as 8-bit RGB of the photo's size."""
    decoded = imaging.decode(make(photo("coffee.png")), min_size=224, max_pixels=LIMIT)
    assert decoded.picture.mode == "RGB"
    assert decoded.format == fmt
    assert (decoded.width, decoded.height) == (600, 400)
    assert not decoded.orientation_applied


def test_16_bit_gray_is_scaled_not_clipped(photo: Photo) -> None:
    """I;16 values are scaled to 8 bits (Pillow's convert would clip them all to white)."""
    sixteen = variants.gray16_png(photo("grace_hopper.jpg"))
    eight = variants.gray8_png(photo("grace_hopper.jpg"))
    naive = Image.open(io.BytesIO(sixteen)).convert("RGB")
    assert np.asarray(naive).mean() > 250  # the trap being avoided
    ours = imaging.decode(sixteen, min_size=224, max_pixels=LIMIT).picture
    reference = imaging.decode(eight, min_size=224, max_pixels=LIMIT).picture
    assert _mean_abs_diff(ours, reference) < 0.01


def test_transparency_is_composited_onto_white() -> None:
    """A fully transparent pixel becomes white whatever colour it stored."""
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert imaging.to_rgb(image).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("size", "decoded_size"),
    [
        ((4032, 3024), (504, 378)),  # 1/8 scale
        ((3024, 4032), (378, 504)),
        ((1920, 1080), (480, 270)),  # 1/4
        ((1280, 720), (1280, 720)),  # 1/4 would leave 180 < 224: full size, never 1/2
        ((640, 480), (640, 480)),
    ],
)
def test_large_jpeg_is_decoded_at_the_smallest_scale_covering_the_input(
    photo: Photo, size: tuple[int, int], decoded_size: tuple[int, int]
) -> None:
    """A JPEG is decoded at 1/8 or 1/4 scale when that keeps >= 224 on each side, else whole."""
    big = variants.upscaled_jpeg(photo("parrot.jpg"), *size)
    decoded = imaging.decode(big, min_size=224, max_pixels=LIMIT)
    assert (decoded.width, decoded.height) == size
    assert decoded.picture.size == decoded_size


def test_draft_sets_the_size_really_decoded_before_load(photo: Photo) -> None:
    """After draft_scale, the image's size is the size load() then decodes (memory budget)."""
    big = variants.upscaled_jpeg(photo("grace_hopper.jpg"), 4032, 3024)
    with Image.open(io.BytesIO(big)) as image:
        imaging.draft_scale(image, 224)
        announced = image.size
        image.load()
        assert image.im.size == announced == (504, 378)


@pytest.mark.parametrize("name", ["parrot.jpg", "grace_hopper.jpg"])
@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920), (4032, 3024)])
def test_reduced_scale_decode_fits_like_the_full_decode(
    photo: Photo, name: str, size: tuple[int, int]
) -> None:
    """The model input from a reduced-scale decode is within a grey level or so of the
    full-size decode's on average, and rarely more than a few levels anywhere."""
    big = variants.upscaled_jpeg(photo(name), *size)
    fast = imaging.fit(
        imaging.decode(big, min_size=224, max_pixels=LIMIT).picture, (224, 224), ResizeMode.squash
    )
    full = imaging.fit(variants.open_rgb(big), (224, 224), ResizeMode.squash)
    diff = np.abs(np.asarray(fast, np.int16) - np.asarray(full, np.int16))
    assert diff.mean() < 1.5
    assert np.percentile(diff, 99) <= 10


def test_non_jpeg_formats_are_decoded_at_full_size(photo: Photo) -> None:
    """A large PNG has no reduced-scale decode: its picture is the whole image."""
    big = variants.open_rgb(variants.upscaled_jpeg(photo("parrot.jpg"), 1920, 1080))
    decoded = imaging.decode(variants.encode(big, "PNG"), min_size=224, max_pixels=LIMIT)
    assert decoded.picture.size == (1920, 1080)


def test_pixel_limit_is_checked_from_the_header() -> None:
    """A tiny PNG claiming 20000x20000 pixels is refused as too large before decoding."""
    header = Image.new("1", (20000, 20000))
    bomb = variants.encode(header, "PNG")
    assert len(bomb) < 200_000
    with pytest.raises(TooLarge, match="EDGE_MAX_IMAGE_PIXELS"):
        imaging.decode(bomb, min_size=224, max_pixels=LIMIT)
    small_bomb = variants.encode(Image.new("1", (10000, 8000)), "PNG")
    with pytest.raises(TooLarge, match="10000x8000 = 80,000,000 pixels"):
        imaging.decode(small_bomb, min_size=224, max_pixels=LIMIT)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is text", "not an image"),
        (b"\x00" * 64, "not an image"),
    ],
)
def test_non_images_are_bad_images(data: bytes, message: str) -> None:
    """Empty, text and zero bodies are refused as bad images with a reason."""
    with pytest.raises(BadImage, match=message):
        imaging.decode(data, min_size=224, max_pixels=LIMIT)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "SVG"),
        (b"<?xml version='1.0'?>\n<svg xmlns='http://www.w3.org/2000/svg'/>", "SVG"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1", "AVIF"),
        (b"8BPS\x00\x01" + b"\x00" * 32, "Photoshop"),
    ],
)
def test_known_unsupported_formats_are_415(data: bytes, name: str) -> None:
    """Formats people send by mistake are named, with the accepted list, as 415."""
    with pytest.raises(UnsupportedMediaType, match=f"{name} images are not supported"):
        imaging.decode(data, min_size=224, max_pixels=LIMIT)


@pytest.mark.parametrize("size", [(1, 1), (100_000, 1), (1, 100_000), (15, 300)])
def test_images_with_a_tiny_side_are_refused(size: tuple[int, int]) -> None:
    """1x1, 100000x1 and 1x100000 images are refused from the header (EDGE_MIN_IMAGE_SIDE)."""
    data = variants.encode(Image.new("L", size), "PNG")
    with pytest.raises(BadImage, match="EDGE_MIN_IMAGE_SIDE"):
        imaging.decode(data, min_size=224, max_pixels=LIMIT, min_side=16)


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "coffee.png"])
def test_truncated_images_are_bad_images(photo: Photo, name: str) -> None:
    """An upload cut off halfway is refused as truncated, not half-classified."""
    data = photo(name)
    with pytest.raises(BadImage, match="truncated or corrupt"):
        imaging.decode(data[: len(data) // 2], min_size=224, max_pixels=LIMIT)


@pytest.mark.parametrize("mode", list(ResizeMode))
def test_fit_gives_the_model_size_in_every_mode(mode: ResizeMode) -> None:
    """squash, center-crop and letterbox all give exactly the requested size."""
    picture = Image.new("RGB", (640, 480), (10, 200, 30))
    assert imaging.fit(picture, (224, 224), mode).size == (224, 224)


def test_letterbox_pads_and_center_crop_does_not() -> None:
    """Letterbox keeps the whole picture with grey bars (the models' zero); center-crop fills
    the frame."""
    picture = Image.new("RGB", (400, 200), (255, 255, 255))
    boxed = np.asarray(imaging.fit(picture, (100, 100), ResizeMode.letterbox))
    cropped = np.asarray(imaging.fit(picture, (100, 100), ResizeMode.center_crop))
    assert boxed[0, 50].tolist() == [128, 128, 128] and boxed[50, 50].tolist() == [255] * 3
    assert cropped.min() == 255
