"""The page's Cameras view in a real headless Chromium (Debian's, via Playwright), against a
server process watching the walk-in clip over RTSP with the COCO detector."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from playwright.sync_api import BrowserContext

from conftest import DETECTOR, ServerProcess, free_port, server_env
from support.browser import chromium_context, requests_outside, screenshot
from support.cameras import LOGIN
from support.cameras.rtsp import RtspServer
from support.waiting import HANG

# Cameras' I/O: the same whatever runtime runs the models, so run once (under LiteRT).
pytestmark = pytest.mark.lan

KEY = "page-test-key-of-enough-length"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile."""
    with chromium_context(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture(scope="module")
def watching(models_dir: Path, runtime: str, rtsp_server: RtspServer) -> Iterator[ServerProcess]:
    """A server with an API key, watching the walk-in clip as camera `walk`."""
    env = server_env(
        models_dir, runtime, model=DETECTOR, cameras=f"walk={rtsp_server.url()}", api_key=KEY
    )
    server = ServerProcess(env, free_port())
    server.wait_ready()
    yield server
    server.stop()


def test_cameras_view_shows_the_latest_frame_and_the_event_snapshot(
    browser: BrowserContext, watching: ServerProcess
) -> None:
    """#cameras with the key entered: the camera's card (its state, its latest frame drawn by
    the server) and the person's event with its snapshot, nothing fetched from elsewhere."""
    tab = browser.new_page()
    outside = requests_outside(tab, watching.url)
    try:
        tab.goto(watching.url + "/")
        tab.locator("#options summary").click()
        tab.fill("#api-key", KEY)
        tab.dispatch_event("#api-key", "change")
        tab.locator("#tab-cameras").click()
        assert tab.url.endswith("#cameras")
        card = tab.locator("#camera-walk")
        card.locator("img").wait_for(timeout=HANG * 1000)
        tab.wait_for_function(
            "document.querySelector('#camera-walk img').naturalWidth > 0", timeout=HANG * 1000
        )
        facts = card.locator(".facts").inner_text()
        figure = tab.locator("#events figure").first
        figure.wait_for(timeout=HANG * 1000)
        tab.wait_for_function(
            "document.querySelector('#events figure img').naturalWidth > 0", timeout=HANG * 1000
        )
        caption = figure.locator("figcaption").inner_text()
        frame_width = card.locator("img").evaluate("e => e.naturalWidth")
        screenshot(tab, "page-cameras.png")
    finally:
        tab.close()
    assert "fps read" in facts and LOGIN[1] not in facts
    assert frame_width == 640  # h=480 asked; a 360-row stream is never enlarged
    assert caption.startswith("person") and "walk" in caption
    assert outside == []


def test_cameras_view_asks_for_the_key(browser: BrowserContext, watching: ServerProcess) -> None:
    """Without the key, the view shows the server's 401 message instead of frames."""
    tab = browser.new_page()
    try:
        tab.goto(watching.url + "/")
        tab.evaluate("localStorage.removeItem('edge-server-api-key')")  # kept from a test before
        tab.goto(watching.url + "/?again#cameras")  # a new document, read without a key
        error = tab.locator("#cameras-error")
        error.wait_for(timeout=HANG * 1000)
        tab.wait_for_function(
            "document.querySelector('#cameras-error').textContent.length > 0",
            timeout=HANG * 1000,
        )
        text = error.inner_text()
    finally:
        tab.close()
    assert "API key" in text


def test_latest_jpeg_route_with_the_key(watching: ServerProcess) -> None:
    """The frame the view shows, fetched as the page does: JPEG with the key, 401 without."""
    url = watching.url + "/v1/cameras/walk/latest.jpg?boxes=1&h=180"
    assert httpx.get(url, timeout=HANG).status_code == 401
    answer = httpx.get(url, headers={"Authorization": f"Bearer {KEY}"}, timeout=HANG)
    assert answer.status_code == 200
    with Image.open(io.BytesIO(answer.content)) as picture:
        assert picture.size == (320, 180)
