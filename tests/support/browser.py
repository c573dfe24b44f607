"""Debian's headless Chromium through Playwright, for the page tests: a fresh profile, flags
that keep it off the network, the requests a tab makes outside the server, and screenshots
left in test-artifacts/ (git-ignored) for a person to look at."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Request, sync_playwright

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# Chromium must not phone home during the test: the page is meant for an offline LAN.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """The Chromium to drive (EDGE_TEST_CHROMIUM, else Debian's on PATH); fails without one."""
    path = os.environ.get("EDGE_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        # Fail, never skip: CI installs chromium, and a skipped browser test proves nothing.
        pytest.fail(
            "no chromium found; install Debian's (apt-get install chromium) or set "
            "EDGE_TEST_CHROMIUM",
            pytrace=False,
        )
    return path


@contextmanager
def chromium_context(profile: Path) -> Iterator[BrowserContext]:
    """A headless Chromium on a fresh profile folder, closed on exit."""
    executable = chromium()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield context
        finally:
            context.close()


def requests_outside(tab: Page, server_url: str) -> list[str]:
    """A list that fills with every http(s) URL the tab requests outside the server."""
    outside: list[str] = []

    def record(request: Request) -> None:
        if request.url.startswith(("http:", "https:")) and not request.url.startswith(server_url):
            outside.append(request.url)

    tab.on("request", record)
    return outside


def screenshot(tab: Page, name: str) -> Path:
    """A full-page screenshot in test-artifacts/; its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    tab.screenshot(path=str(path), full_page=True)
    return path
