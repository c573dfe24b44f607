"""The README and the docs stay true to the code."""

from __future__ import annotations

from edge_server.config import reference
from edge_server.config.settings import SECTIONS, Settings

from conftest import ROOT

SETTINGS_PAGE = ROOT / "docs" / "reference" / "settings.md"


def test_every_setting_belongs_to_a_section() -> None:
    """Settings is exactly its sections' fields: nothing outside a section, nothing twice."""
    fields = [name for section in SECTIONS for name in section.model_fields]
    assert len(fields) == len(set(fields))
    assert set(fields) == set(Settings.model_fields)


def test_every_setting_has_a_description() -> None:
    """Each field says what it sets; the generated reference page is made of these."""
    missing = [n for n, f in Settings.model_fields.items() if not (f.description or "").strip()]
    assert not missing


def test_settings_page_is_generated_and_current() -> None:
    """docs/reference/settings.md is what `make docs` writes now (run it after a change)."""
    assert SETTINGS_PAGE.read_text() == reference.markdown(), "stale: run `make docs`"
    for name in Settings.model_fields:
        assert f"| `EDGE_{name.upper()}` |" in SETTINGS_PAGE.read_text(), name


def test_readme_is_short_and_links_the_docs() -> None:
    """The README stays a summary (at most 200 lines) that points into the docs site."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "docs/reference/settings.md" in readme or "docs/configuration.md" in readme


def test_readme_test_command_is_the_ci_command() -> None:
    """The README's test command is what .ci/run runs."""
    assert "make test\n" in (ROOT / "README.md").read_text()
    assert "\nmake test\n" in (ROOT / ".ci" / "run").read_text()
