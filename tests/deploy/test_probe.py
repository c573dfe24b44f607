"""The deployment probe (deploy/probe.py) against a real server process."""

from __future__ import annotations

from pathlib import Path

import pytest

import probe
from conftest import DEFAULT_MODEL, ServerProcess, free_port


def test_probe_passes_on_the_expected_label(server: ServerProcess, images_dir: Path) -> None:
    """A ready server that names the expected label and model passes."""
    image = images_dir / "grace_hopper.jpg"
    assert probe.main([server.url, str(image), "military uniform", "--model", DEFAULT_MODEL]) == 0


@pytest.mark.parametrize(
    ("label", "model"),
    [("tabby, tabby cat", DEFAULT_MODEL), ("military uniform", "another_model")],
)
def test_probe_fails_on_another_label_or_model(
    server: ServerProcess, images_dir: Path, label: str, model: str
) -> None:
    """A different top label or model name fails the probe."""
    image = images_dir / "grace_hopper.jpg"
    assert probe.main([server.url, str(image), label, "--model", model]) == 1


def test_probe_fails_when_nothing_answers(images_dir: Path) -> None:
    """No server on the port fails once the timeout is over."""
    url = f"http://127.0.0.1:{free_port()}"
    assert probe.main([url, str(images_dir / "grace_hopper.jpg"), "x", "--timeout", "1"]) == 1
