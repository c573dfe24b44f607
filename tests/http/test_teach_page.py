"""The page's Teach view in a real headless Chromium (Debian's, via Playwright): learned classes
taught from real photos, listed, tried and deleted, against a server with a data folder and a key.

The screenshot goes to test-artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Dialog, Page

from conftest import ServerProcess, free_port, server_env
from support.browser import chromium_context, requests_outside, screenshot

KEY = "teach-page-test-key-0123456789"


@pytest.fixture
def learning_server(models_dir: Path, runtime: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server process that learns (a data folder) and takes changes with an API key; not
    waited for here, so it starts while the browser does."""
    process = ServerProcess(
        server_env(models_dir, runtime, data_dir=str(tmp_path / "data"), api_key=KEY),
        free_port(),
    )
    yield process
    process.stop()


@pytest.fixture
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile (so no API key is remembered)."""
    with chromium_context(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


def _classes(tab: Page) -> dict[str, str]:
    """The listed classes of my_things and their example counts, as shown."""
    rows = tab.locator('#learned [data-model="my_things"] li.class')
    return {
        row.locator(".label").inner_text(): row.locator(".count").inner_text() for row in rows.all()
    }


def test_teach_view_learns_lists_tries_and_deletes_classes(
    learning_server: ServerProcess, browser: BrowserContext, images_dir: Path
) -> None:
    """The Teach view shows the 401, then teaches cat and hot dog, lists, tries, deletes."""
    server = learning_server
    server.wait_ready()
    tab = browser.new_page()
    outside = requests_outside(tab, server.url)
    questions: list[str] = []

    def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    photos = images_dir / "imprinting"
    try:
        tab.goto(server.url + "/#teach")
        assert tab.locator("#tab-teach").get_attribute("aria-selected") == "true"
        # No key sent yet: the server's own detail, and the Options holding the key open.
        tab.locator("#teach-error").filter(has_text="a valid API key is required").wait_for(
            timeout=30_000
        )
        assert tab.locator("#options").evaluate("e => e.open")
        key = tab.locator("#api-key")
        key.fill(KEY)
        key.blur()  # the change reads the list again, with the key
        tab.locator("#learned").filter(has_text="none yet").wait_for(timeout=30_000)
        assert tab.locator("#teach-error").inner_text() == ""
        assert tab.locator("#teach-model").input_value() == "my_things"

        # One shot from the camera input, then two photos picked at once from the gallery.
        tab.fill("#teach-label", "cat")
        tab.set_input_files("#teach-camera", photos / "cat_train_0.bmp")
        assert tab.locator("#teach-count").inner_text() == "1 photo to teach"
        tab.click("#teach-send")
        tab.locator("#teach-status").filter(has_text="learned 1 photo of “cat”").wait_for(
            timeout=30_000
        )
        tab.fill("#teach-label", "hot dog")
        tab.set_input_files(
            "#teach-gallery", [photos / "hotdog_train_0.bmp", photos / "hotdog_train_1.bmp"]
        )
        assert tab.locator("#thumbs img").count() == 2
        tab.click("#teach-send")
        tab.locator('#learned li.class[data-label="hot dog"]').wait_for(timeout=30_000)
        assert _classes(tab) == {"cat": "1 example", "hot dog": "2 examples"}
        assert tab.locator("#teach-photos").is_hidden()
        assert tab.locator("#teach-label").input_value() == ""

        # A cat it has not seen comes out cat; `unknown` is one of the labels.
        tab.set_input_files("#teach-try-file", photos / "cat_test_0.bmp")
        first = tab.locator("#teach-results li").first
        first.wait_for(timeout=30_000)
        assert first.locator(".label").inner_text() == "cat"
        labels = tab.locator("#teach-results .label").all_inner_texts()
        assert sorted(labels) == ["cat", "hot dog", "unknown"]
        # The Try view now offers the learned model too.
        tab.locator('#model-choice option[value="my_things"]').wait_for(
            state="attached", timeout=30_000
        )
        screenshot(tab, "page-teach.png")

        # Deleting a class asks first, then the list no longer holds it.
        tab.once("dialog", accept)
        tab.locator('#learned li.class[data-label="hot dog"] button.delete').click()
        tab.locator('#learned li.class[data-label="hot dog"]').wait_for(
            state="detached", timeout=30_000
        )
        assert _classes(tab) == {"cat": "1 example"}
        assert "hot dog" in tab.locator("#teach-status").inner_text()
    finally:
        tab.close()
    described = httpx.get(f"{server.url}/v1/learned/my_things", headers={"X-API-Key": KEY})
    assert described.json()["classes"] == [{"label": "cat", "examples": 1}]
    assert questions == ["Delete the class “hot dog” and its examples from my_things?"]
    assert outside == []


def test_teach_view_registers_lists_and_deletes_people(
    learning_server: ServerProcess, browser: BrowserContext, images_dir: Path
) -> None:
    """People on the Teach view: a photo with no face is refused with the server's reason;
    two photos of Obama register him, listed; deleting him asks first and empties the list."""
    server = learning_server
    server.wait_ready()
    tab = browser.new_page()
    outside = requests_outside(tab, server.url)
    questions: list[str] = []

    def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.accept()

    faces = images_dir / "faces" / "obama"
    try:
        tab.goto(server.url + "/#teach")
        tab.locator("#people-error").filter(has_text="a valid API key is required").wait_for(
            timeout=30_000
        )
        key = tab.locator("#api-key")
        key.fill(KEY)
        key.blur()
        tab.locator("#people").filter(has_text="nobody yet").wait_for(timeout=30_000)

        tab.fill("#person-name", "obama")
        tab.set_input_files("#person-gallery", images_dir / "coffee.png")
        tab.click("#person-send")
        tab.locator("#people-error").filter(has_text="no face").wait_for(timeout=60_000)

        tab.click("#person-clear")
        tab.set_input_files("#person-camera", faces / "obama.jpg")
        tab.set_input_files("#person-gallery", faces / "obama1.jpg")
        assert tab.locator("#person-count").inner_text() == "2 photos to register"
        tab.click("#person-send")
        tab.locator("#people-status").filter(has_text="added 2 photos of obama").wait_for(
            timeout=60_000
        )
        tab.locator('#people li.person[data-person="obama"]').wait_for(timeout=30_000)
        assert tab.locator("#person-photos").is_hidden()
        assert tab.locator("#people-error").inner_text() == ""
        screenshot(tab, "page-teach-people.png")

        tab.once("dialog", accept)
        tab.locator('#people li.person[data-person="obama"] button.delete').click()
        tab.locator("#people").filter(has_text="nobody yet").wait_for(timeout=30_000)
    finally:
        tab.close()
    listed = httpx.get(f"{server.url}/v1/faces", headers={"X-API-Key": KEY}).json()
    assert listed["people"] == []
    assert questions == ["Delete obama and every photo's description of their face?"]
    assert outside == []
