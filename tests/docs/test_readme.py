"""The README stays true to the code."""

from __future__ import annotations

from edge_server.config.settings import Settings

from conftest import ROOT


def test_readme_documents_every_setting() -> None:
    """Each EDGE_* setting appears in the README's settings table."""
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"| `EDGE_{name.upper()}` |" in readme, name


def test_readme_test_command_is_the_ci_command() -> None:
    """The README's test command is what .ci/run runs."""
    assert "make test\n" in (ROOT / "README.md").read_text()
    assert "\nmake test\n" in (ROOT / ".ci" / "run").read_text()
