"""`POST /segment`'s pictures (`format=`, an image Accept header) through the real app and the
real DeepLab model, checked pixel by pixel against the photo and an independent class map.

JPEG answers are compared with the photo re-encoded by Pillow at the answer's quality (85):
JPEG codes each 16x16 block (one MCU at 4:2:0) on its own, so a block that the picture left
untouched decodes to the same bytes as the re-encoded photo's. Only the blocks the hidden
class touches, and their neighbours (chroma is upsampled across block edges), may differ: the
comparisons leave out the reference's pixels of that class grown by 16 pixels.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageFilter

from edge_server.app import create_app
from edge_server.config.settings import Settings
from edge_server.core.overlay import JPEG_QUALITY, OVERLAY_OPACITY, PICTURE_BYTES_PER_PIXEL
from edge_server.core.runtime import RuntimeChoice
from edge_server.core.segmentation import colour

from conftest import DEFAULT_MODEL, metric
from support import variants
from support.inprocess import in_process
from support.reference import SEGMENTER, reference_class_map, reference_interpreter, upright

Photo = Callable[[str], bytes]
Pixels = npt.NDArray[np.int16]
Mask = npt.NDArray[np.bool_]
TFLITE = os.environ.get("EDGE_RUNTIME") == "tflite"
PERSON = 15
PORTRAIT = "grace_hopper.jpg"  # 512x600, a person on 42 % of it
MARGIN = 16  # one MCU: the blocks a changed pixel's block can reach in a JPEG
UNTOUCHED = 0.995  # of the pixels away from the hidden class, the share that must be identical


@pytest.fixture(scope="module")
def segmenting(models_dir: Path, runtime: str) -> Iterator[httpx.Client]:
    """The segmenter beside the default classifier, in process, with a 64 MiB decode budget
    (a 49 MP photo's picture does not fit, its JSON answer does)."""
    settings = Settings(
        model=["segmenter", DEFAULT_MODEL],
        models_dir=models_dir,
        runtime=RuntimeChoice(runtime),
        num_threads=1,
        decode_memory_mb=64,
    )
    with in_process(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def reference(models_dir: Path, runtime: str) -> Any:
    """The plain interpreter of the segmenter, which the reference reads it with."""
    return reference_interpreter(models_dir / f"{SEGMENTER}.tflite", runtime)


def _floor(runtime: str) -> float:
    return 0.98 if runtime == "tflite" else 0.99


def _picture(response: httpx.Response, media_type: str) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    return Image.open(io.BytesIO(response.content))


def _pixels(picture: Image.Image) -> Pixels:
    return np.asarray(picture.convert("RGB"), dtype=np.int16)


def _reencoded(picture: Image.Image) -> Pixels:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=JPEG_QUALITY)
    return _pixels(Image.open(out))


def _grown(mask: Mask, pixels: int) -> Mask:
    spread = Image.fromarray(mask.astype(np.uint8) * 255).filter(
        ImageFilter.MaxFilter(2 * pixels + 1)
    )
    return np.asarray(spread) > 0


def _inside(mask: Mask) -> Mask:
    """The pixels of `mask` at least MARGIN away from its edge."""
    return ~_grown(~mask, MARGIN)


def _roughness(pixels: Pixels, where: Mask) -> float:
    """Mean absolute step between vertically adjacent pixels inside `where` (grey levels)."""
    steps = np.abs(np.diff(pixels.mean(axis=2), axis=0))
    return float(steps[where[1:] & where[:-1]].mean())


def _segment(client: httpx.Client, data: bytes, **params: str) -> httpx.Response:
    return client.post("/segment", params=params, files={"image": data})


@pytest.mark.parametrize(
    ("name", "labels", "kept"),
    [
        (PORTRAIT, "person", (PERSON,)),
        (PORTRAIT, None, None),
        ("segmentation/voc_2007_000033.jpg", None, None),
        # Any case, said twice: still the person class.
        *([] if TFLITE else [("kite_and_cold.jpg", "Person, person", (PERSON,))]),
    ],
)
def test_a_cutout_is_opaque_where_the_reference_has_its_labels(
    segmenting: httpx.Client,
    reference: Any,
    runtime: str,
    photo: Photo,
    name: str,
    labels: str | None,
    kept: tuple[int, ...] | None,
) -> None:
    """format=cutout: a PNG opaque on the reference's pixels of the listed labels (every class
    but background without labels) on >= 99 % of pixels (98 % under tflite-runtime), the
    photo's colours exactly there, and transparent black everywhere else."""
    data = photo(name)
    params = {"format": "cutout"} | ({} if labels is None else {"labels": labels})
    picture = _picture(_segment(segmenting, data, **params), "image/png")
    upright_photo = upright(data)
    assert picture.mode == "RGBA" and picture.size == upright_photo.size
    pixels = np.asarray(picture)
    alpha = pixels[..., 3]
    assert set(np.unique(alpha)) <= {0, 255}
    expected = reference_class_map(reference, upright_photo)
    wanted: Mask = expected != 0 if kept is None else np.isin(expected, kept)
    opaque = alpha == 255
    assert opaque.any()
    assert np.mean(opaque == wanted) >= _floor(runtime)
    assert np.array_equal(pixels[opaque][:, :3], np.asarray(upright_photo)[opaque])
    assert not pixels[~opaque].any()  # no colour under the transparent pixels


@pytest.mark.parametrize("how", ["blur", "fill"])
def test_blur_and_fill_change_only_the_hidden_class(
    segmenting: httpx.Client, reference: Any, photo: Photo, how: str
) -> None:
    """format=blur/fill (people by default): away from the reference's person pixels the JPEG
    is the photo's own re-encoding; inside them fill is grey 128 and blur is the photo made
    smooth (its steps between neighbours under a quarter of the photo's)."""
    data = photo(PORTRAIT)
    picture = _picture(_segment(segmenting, data, format=how), "image/jpeg")
    upright_photo = upright(data)
    assert picture.size == upright_photo.size
    ours, photo_pixels = _pixels(picture), _pixels(upright_photo)
    person = reference_class_map(reference, upright_photo) == PERSON
    away = ~_grown(person, MARGIN)
    assert away.sum() > 0.2 * away.size
    same = np.all(ours == _reencoded(upright_photo), axis=2)
    assert np.mean(same[away]) >= UNTOUCHED
    inside = _inside(person)
    assert inside.sum() > 0.2 * inside.size
    if how == "fill":
        assert np.abs(ours[inside] - 128).max() <= 2  # JPEG codes a flat grey block exactly
    else:
        assert np.abs(ours[inside] - photo_pixels[inside]).mean() > 8
        assert _roughness(ours, inside) < _roughness(photo_pixels, inside) / 4


def test_labels_choose_what_is_hidden(
    segmenting: httpx.Client, reference: Any, photo: Photo
) -> None:
    """labels=dog hides no pixel of a portrait with no dog: the picture is the photo's own
    JPEG; labels=person,background fills the whole picture grey."""
    data = photo(PORTRAIT)
    upright_photo = upright(data)
    nothing = _pixels(
        _picture(_segment(segmenting, data, format="fill", labels="dog"), "image/jpeg")
    )
    assert np.array_equal(nothing, _reencoded(upright_photo))
    everything = _segment(segmenting, data, format="fill", labels="person,background")
    grey = _pixels(_picture(everything, "image/jpeg"))
    expected = reference_class_map(reference, upright_photo)
    covered = np.isin(expected, [0, PERSON])
    assert np.mean(np.all(np.abs(grey - 128) <= 2, axis=2) == covered) >= 0.99


def test_the_overlay_tints_people_and_leaves_the_background(
    segmenting: httpx.Client, reference: Any, photo: Photo
) -> None:
    """format=overlay: away from every class but background, the photo's own JPEG; inside the
    person, the photo blended with VOC's person colour at the overlay's opacity."""
    data = photo(PORTRAIT)
    picture = _picture(_segment(segmenting, data, format="overlay"), "image/jpeg")
    upright_photo = upright(data)
    ours, photo_pixels = _pixels(picture), _pixels(upright_photo)
    expected = reference_class_map(reference, upright_photo)
    away = ~_grown(expected != 0, MARGIN)
    same = np.all(ours == _reencoded(upright_photo), axis=2)
    assert np.mean(same[away]) >= UNTOUCHED
    inside = _inside(expected == PERSON)
    tint = np.array(colour(PERSON))
    blend = (1 - OVERLAY_OPACITY) * photo_pixels + OVERLAY_OPACITY * tint
    assert np.abs(ours[inside] - blend[inside]).mean() < 3  # JPEG error only
    assert np.abs(ours[inside] - photo_pixels[inside]).mean() > 30


def test_a_crop_gives_a_picture_of_the_crop(
    segmenting: httpx.Client, reference: Any, runtime: str, photo: Photo
) -> None:
    """crop= with format=cutout: a PNG of the crop's size, opaque where the reference run on
    the cropped picture sees a person, with the crop's pixels."""
    data = photo(PORTRAIT)
    response = _segment(segmenting, data, crop="0.25,0.1,1,0.9", format="cutout", labels="person")
    picture = _picture(response, "image/png")
    assert picture.size == (384, 480)
    cropped = upright(data).crop((128, 60, 512, 540))
    pixels = np.asarray(picture)
    opaque = pixels[..., 3] == 255
    expected = reference_class_map(reference, cropped) == PERSON
    assert np.mean(opaque == expected) >= _floor(runtime)
    assert np.array_equal(pixels[opaque][:, :3], np.asarray(cropped)[opaque])
    filled = _picture(
        _segment(segmenting, data, crop="0.25,0.1,1,0.9", format="fill"), "image/jpeg"
    )
    assert filled.size == (384, 480)


def test_an_exif_rotated_upload_gives_an_upright_picture(
    segmenting: httpx.Client, photo: Photo
) -> None:
    """A copy stored on its side (EXIF orientation 6) gives the upright photo's cut-out: the
    same size, the same opaque pixels on >= 98 % of them and nearly the same colours."""
    data = photo(PORTRAIT)
    straight = np.asarray(_picture(_segment(segmenting, data, format="cutout"), "image/png"))
    rotated = variants.exif_rotated(data, 6)
    turned = np.asarray(_picture(_segment(segmenting, rotated, format="cutout"), "image/png"))
    assert turned.shape == straight.shape == (600, 512, 4)
    both = (straight[..., 3] == 255) & (turned[..., 3] == 255)
    assert np.mean(straight[..., 3] == turned[..., 3]) >= 0.98
    difference = np.abs(straight[both][:, :3].astype(int) - turned[both][:, :3])
    assert difference.mean() < 3  # the copy was re-encoded at quality 95


@pytest.mark.parametrize(
    ("accept", "same_as"),
    [
        ("image/jpeg", "overlay"),
        ("image/png", "cutout"),
        ("image/png;q=0.2, image/jpeg;q=0.9", "overlay"),
        ("image/jpeg;q=0.5, application/json", None),
        ("image/jpeg;q=0, image/png", "cutout"),
        ("image/avif,image/webp,image/*,*/*;q=0.8", None),
    ],
)
def test_an_image_accept_header_asks_for_a_picture(
    segmenting: httpx.Client, photo: Photo, accept: str, same_as: str | None
) -> None:
    """Without format=, the Accept header's preferred type picks the answer: image/jpeg the
    overlay, image/png the cut-out (byte for byte what format= gives), anything else JSON."""
    data = photo(PORTRAIT)
    response = segmenting.post("/segment", headers={"Accept": accept}, files={"image": data})
    assert response.status_code == 200, response.text
    if same_as is None:
        assert response.headers["content-type"] == "application/json"
        assert response.json()["classes"]
        return
    asked = _segment(segmenting, data, format=same_as)
    assert response.headers["content-type"] == asked.headers["content-type"]
    assert response.content == asked.content
    assert "inference" in response.headers["server-timing"]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"format": "gif"}, "format 'gif' is not one of overlay, cutout, blur, fill"),
        ({"format": "cutout", "labels": "unicorn"}, "label 'unicorn' is not one of"),
        ({"format": "blur", "labels": "person,road"}, "background, aeroplane, bicycle"),
        ({"format": "overlay", "labels": "person"}, "labels apply to format=cutout"),
    ],
)
def test_bad_pictures_are_400s_that_say_what_is_allowed(
    segmenting: httpx.Client, photo: Photo, params: dict[str, str], says: str
) -> None:
    """A bad format or label is a 400 problem naming what is allowed, before any invoke."""
    before = metric(segmenting.get("/metrics").text, "edge_model_invokes_total", model=SEGMENTER)
    response = _segment(segmenting, photo(PORTRAIT), **params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert says in response.json()["detail"]
    after = metric(segmenting.get("/metrics").text, "edge_model_invokes_total", model=SEGMENTER)
    assert after == before


@pytest.mark.parametrize("how", ["cutout", "blur"])
def test_a_49_mp_photos_picture_is_charged_to_the_decode_budget(
    segmenting: httpx.Client, photo: Photo, how: str
) -> None:
    """A 7000x7000 JPEG's JSON answer fits a 64 MiB budget (decoded at reduced scale); its
    full-size picture (147 MB of pixels) does not: 413 naming the budget, nothing left held."""
    big = variants.upscaled_jpeg(photo(PORTRAIT), 7000, 7000)
    assert _segment(segmenting, big).status_code == 200
    refused = _segment(segmenting, big, format=how)
    assert refused.status_code == 413, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert "EDGE_DECODE_MEMORY_MB" in refused.json()["detail"]
    text = segmenting.get("/metrics").text
    assert metric(text, "edge_decode_memory_refused_total", reason="too_large") >= 1
    assert metric(text, "edge_decode_memory_used_bytes") == 0


def test_a_picture_that_fits_only_without_its_decode_is_a_413_at_once(
    segmenting: httpx.Client, photo: Photo
) -> None:
    """A 2000x2000 photo: its drawing (PICTURE_BYTES_PER_PIXEL a pixel) fits the 64 MiB
    budget and its full-size decode (3 bytes a pixel or more) does too, but not both: a 413
    naming the budget, not a 503 from waiting for room the request holds itself; nothing is
    left held."""
    side, budget = 2000, 64 * 2**20
    assert (
        side * side * PICTURE_BYTES_PER_PIXEL < budget < side * side * (PICTURE_BYTES_PER_PIXEL + 3)
    )
    square = variants.upscaled_jpeg(photo(PORTRAIT), side, side)
    assert _segment(segmenting, square).status_code == 200
    refused = _segment(segmenting, square, format="blur")
    assert refused.status_code == 413, refused.text
    assert "EDGE_DECODE_MEMORY_MB" in refused.json()["detail"]
    assert metric(segmenting.get("/metrics").text, "edge_decode_memory_used_bytes") == 0


@pytest.mark.parametrize("how", ["overlay", "cutout", "blur", "fill"])
def test_a_picture_carries_none_of_the_uploads_metadata(
    segmenting: httpx.Client, photo: Photo, how: str
) -> None:
    """The portrait's JPEG comment (its source) and a copy's EXIF block do not reach the
    picture: it carries its pixels only."""
    data = photo(PORTRAIT)
    assert Image.open(io.BytesIO(data)).info.get("comment")
    for upload in (data, variants.exif_rotated(data, 6)):
        picture = Image.open(io.BytesIO(_segment(segmenting, upload, format=how).content))
        assert "comment" not in picture.info and "exif" not in picture.info
        assert not picture.getexif()
