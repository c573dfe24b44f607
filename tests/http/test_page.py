"""The page at `/` and the docs at `/docs`, in a real headless Chromium (Debian's, via Playwright).

Screenshots go to test-artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import base64
import io
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from playwright.sync_api import BrowserContext, Page

from conftest import DEFAULT_MODEL, DETECTOR, ServerProcess, free_port, server_env
from support.browser import chromium_context, requests_outside, screenshot

BIRDS = "mobilenet_v2_1.0_224_inat_bird_quant"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile."""
    with chromium_context(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture
def page(browser: BrowserContext, server: ServerProcess) -> Iterator[tuple[Page, list[str]]]:
    """A new tab, and the list of every http(s) URL it requests outside the server."""
    tab = browser.new_page()
    yield tab, requests_outside(tab, server.url)
    tab.close()


def test_page_classifies_an_uploaded_photo(
    page: tuple[Page, list[str]], server: ServerProcess, images_dir: Path
) -> None:
    """Choosing grace_hopper.jpg shows `military uniform` first, its bar, timing and the model."""
    tab, outside = page
    tab.goto(server.url + "/")
    tab.set_input_files("#file", str(images_dir / "grace_hopper.jpg"))
    first = tab.locator("#results li").first
    first.wait_for(timeout=30_000)
    assert first.locator(".label").inner_text() == "military uniform"
    assert first.locator(".score").inner_text().endswith("%")
    # The bar is the score: 64.8 % with the model's own fit, its centre crop.
    assert float(first.locator(".bar").evaluate("e => parseFloat(e.style.width)")) > 60
    assert tab.locator("#results li").count() == 5
    assert "inference" in tab.locator("#timing").inner_text()
    assert DEFAULT_MODEL in tab.locator("#model").inner_text()
    assert tab.locator("#preview").evaluate("e => e.naturalWidth") == 512
    assert screenshot(tab, "page-grace_hopper.png").stat().st_size > 10_000
    assert outside == []


# Builds a File from base64 in the page and hands it over as a drop on the drop zone or as a
# paste on the document, the way a browser does for a dragged file or a copied image.
_HAND_OVER = """([how, data]) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], "coffee.png", { type: "image/png" }));
    if (how === "drop") {
        document.getElementById("drop").dispatchEvent(
            new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    } else {
        document.dispatchEvent(
            new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true }));
    }
}"""


@pytest.mark.parametrize("how", ["drop", "paste"])
def test_page_takes_a_dropped_or_pasted_image(
    page: tuple[Page, list[str]], server: ServerProcess, photo: Callable[[str], bytes], how: str
) -> None:
    """A dropped file and a pasted image are classified like a chosen one."""
    tab, outside = page
    tab.goto(server.url + "/")
    tab.evaluate(_HAND_OVER, [how, base64.b64encode(photo("coffee.png")).decode()])
    first = tab.locator("#results li").first
    first.wait_for(timeout=30_000)
    assert first.locator(".label").inner_text() == "espresso"
    assert outside == []


def test_page_shows_the_problem_for_a_non_image(
    page: tuple[Page, list[str]], server: ServerProcess, tmp_path: Path
) -> None:
    """A text file chosen by mistake shows the server's detail, and no results."""
    tab, _ = page
    notes = tmp_path / "notes.txt"
    notes.write_text("just some text\n")
    tab.goto(server.url + "/")
    tab.set_input_files("#file", str(notes))
    error = tab.locator("#error")
    error.filter(has_text="not an image").wait_for(timeout=30_000)
    assert tab.locator("#results li").count() == 0


def test_docs_render_without_the_internet(
    page: tuple[Page, list[str]], server: ServerProcess
) -> None:
    """Swagger UI at /docs loads its assets from the server and lists the routes."""
    tab, outside = page
    tab.goto(server.url + "/docs")
    tab.locator(".opblock").first.wait_for(timeout=30_000)
    paths = tab.locator(".opblock-summary-path").all_inner_texts()
    assert {"/classify", "/classify/batch", "/v1/vision/scene"} <= {p.strip() for p in paths}
    screenshot(tab, "docs.png")
    assert outside == []


@contextmanager
def _page_with_models(browser: BrowserContext, env: dict[str, str]) -> Iterator[Page]:
    """The page of a server serving two models, once its model choice lists both."""
    server = ServerProcess(env, free_port())
    server.wait_ready()
    tab = browser.new_page()
    try:
        tab.goto(server.url + "/")
        tab.locator("#model-choice option").nth(1).wait_for(state="attached", timeout=30_000)
        yield tab
    finally:
        tab.close()
        server.stop()


def test_page_offers_the_models_and_classifies_with_the_chosen_one(
    browser: BrowserContext, models_dir: Path, runtime: str, images_dir: Path
) -> None:
    """With two models served, the page lists both and the bird model names the macaw."""
    with _page_with_models(
        browser, server_env(models_dir, runtime, model=f"{DEFAULT_MODEL},birds")
    ) as tab:
        choice = tab.locator("#model-choice")
        assert tab.locator("#model-choice-label").is_visible()
        options = choice.locator("option").all_inner_texts()
        choice.select_option(BIRDS)
        tab.set_input_files("#file", str(images_dir / "parrot.jpg"))
        first = tab.locator("#results li").first
        first.wait_for(timeout=30_000)
        label = first.locator(".label").inner_text()
        screenshot(tab, "page-models.png")
    assert options == [f"{DEFAULT_MODEL} (default)", BIRDS]
    assert label == "Ara macao (Scarlet Macaw)"


def test_page_draws_the_boxes_of_a_chosen_detector(
    browser: BrowserContext, models_dir: Path, runtime: str, images_dir: Path
) -> None:
    """Choosing the detector posts to /detect and draws kite_and_cold's ten boxes on the photo."""
    with _page_with_models(
        browser, server_env(models_dir, runtime, model=f"{DEFAULT_MODEL},objects")
    ) as tab:
        tab.locator("#model-choice").select_option(DETECTOR)
        with tab.expect_response(lambda r: "/detect?" in r.url, timeout=30_000) as answer:
            tab.set_input_files("#file", str(images_dir / "kite_and_cold.jpg"))
        detections = answer.value.json()["detections"]
        boxes = tab.locator("#boxes .box")
        boxes.nth(9).wait_for(timeout=30_000)
        tags = boxes.all_inner_texts()
        listed = tab.locator("#results .label").all_inner_texts()
        photo = tab.locator("#preview").bounding_box()
        drawn = [box.bounding_box() for box in boxes.all()]
        screenshot(tab, "page-detections.png")
    assert len(tags) == 10 and all(re.fullmatch(r"(person|kite) \d+%", t) for t in tags), tags
    assert Counter(listed) == {"person": 7, "kite": 3}
    # The photo is shown scaled down, and each box sits where its fractions put it on it.
    assert photo is not None and photo["width"] < 1352
    for detection, rect in zip(detections, drawn, strict=True):
        assert rect is not None
        b = detection["box_normalized"]
        expected = (
            photo["x"] + b["x_min"] * photo["width"],
            photo["y"] + b["y_min"] * photo["height"],
            (b["x_max"] - b["x_min"]) * photo["width"],
            (b["y_max"] - b["y_min"]) * photo["height"],
        )
        got = (rect["x"], rect["y"], rect["width"], rect["height"])
        assert got == pytest.approx(expected, abs=1.5)


SEGMENTER = "deeplabv3_mnv2_pascal_quant"
PERSON, PERSON_COLOUR = 15, (192, 128, 128)
OPACITY = 0.55  # the overlay's, as the server's pictures have it


def _inside(
    ids: npt.NDArray[np.uint8], index: int, margin: int, near: tuple[float, float]
) -> tuple[int, int]:
    """A pixel of class `index` whose whole neighbourhood (2 x margin + 1 square) is that
    class, safe from the scaling at its edges: the nearest such to `near` (x, y fractions)."""
    centre = (near[1] * ids.shape[0], near[0] * ids.shape[1])
    best: tuple[float, tuple[int, int]] | None = None
    for y in range(margin, ids.shape[0] - margin, 8):
        for x in range(margin, ids.shape[1] - margin, 8):
            window = ids[y - margin : y + margin + 1, x - margin : x + margin + 1]
            if (window == index).all():
                distance = (y - centre[0]) ** 2 + (x - centre[1]) ** 2
                if best is None or distance < best[0]:
                    best = (distance, (x, y))
    assert best is not None, f"no pixel of class {index} with a {margin}-pixel margin"
    return best[1]


def test_page_segments_a_photo_with_an_overlay_and_a_legend(
    browser: BrowserContext, models_dir: Path, runtime: str, images_dir: Path
) -> None:
    """Choosing the segmenter posts to /segment?mask=png, lists person with its share of
    grace_hopper.jpg beside its VOC colour, and tints her pixels (only hers) toward that colour
    on the photo: the screenshot's pixels with the overlay against without it."""
    with _page_with_models(
        browser, server_env(models_dir, runtime, model=f"{DEFAULT_MODEL},segmenter")
    ) as tab:
        tab.locator("#model-choice").select_option(SEGMENTER)
        with tab.expect_response(lambda r: "/segment?" in r.url, timeout=30_000) as answer:
            tab.set_input_files("#file", str(images_dir / "grace_hopper.jpg"))
        body = answer.value.json()
        tab.locator("#overlay[data-drawn]").wait_for(timeout=30_000)
        rows = [
            (item.locator(".label").inner_text(), item.locator(".score").inner_text())
            for item in tab.locator("#results li").all()
        ]
        swatch = tab.locator("#results li .swatch").first.evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        frame = tab.locator("#preview").bounding_box()
        tinted = Image.open(screenshot(tab, "page-segmentation.png")).convert("RGB")
        tab.locator("#overlay-shown").uncheck()
        plain = Image.open(io.BytesIO(tab.screenshot(full_page=True))).convert("RGB")
    person = next(c for c in body["classes"] if c["label"] == "person")
    assert rows[0] == ("person", f"{person['fraction'] * 100:.1f}%")
    assert 40 < float(rows[0][1].rstrip("%")) < 90  # she fills most of the portrait
    assert [label for label, _ in rows] == [c["label"] for c in body["classes"]]
    assert swatch == "rgb(192, 128, 128)"
    ids = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask"]["data"]))))
    assert frame is not None and frame["width"] < ids.shape[1]  # shown scaled down

    def at(picture: Image.Image, point: tuple[int, int]) -> npt.NDArray[np.float64]:
        x = frame["x"] + (point[0] + 0.5) * frame["width"] / ids.shape[1]
        y = frame["y"] + (point[1] + 0.5) * frame["height"] / ids.shape[0]
        return np.array(picture.getpixel((int(x), int(y))), dtype=float)

    # Her dark uniform, low on the left, and the wall behind her shoulder, top left.
    her, behind = _inside(ids, PERSON, 24, (0.25, 0.8)), _inside(ids, 0, 24, (0.1, 0.1))
    shown, photo = at(tinted, her), at(plain, her)
    expected = (1 - OPACITY) * photo + OPACITY * np.array(PERSON_COLOUR)
    assert np.abs(shown - expected).max() < 8, (shown, expected, photo)
    assert np.linalg.norm(photo - PERSON_COLOUR) > 100  # navy: far from the tint before
    assert np.linalg.norm(shown - PERSON_COLOUR) < 0.5 * np.linalg.norm(photo - PERSON_COLOUR)
    assert np.abs(at(tinted, behind) - at(plain, behind)).max() <= 2
