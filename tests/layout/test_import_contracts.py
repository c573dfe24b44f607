"""The layers are a rule the build checks: import-linter's contracts hold, and break when broken."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_package_keeps_its_import_contracts() -> None:
    """Every contract in pyproject.toml is kept by the package as it is."""
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_http_import_from_the_core_breaks_the_contracts(tmp_path: Path) -> None:
    """A core module importing an http one fails both the layers and the no-web-framework rule."""
    shutil.copytree(ROOT / "edge_server", tmp_path / "edge_server", symlinks=True)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    region = tmp_path / "edge_server" / "core" / "region.py"
    region.write_text(region.read_text() + "\nfrom ..http import problems  # noqa: E402\n")
    result = _lint(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "edge_server.core.region -> edge_server.http.problems" in result.stdout
    assert "Layers: entry points" in result.stdout and "BROKEN" in result.stdout
    assert "know no web framework" in result.stdout


def test_no_two_modules_share_a_name() -> None:
    """Every module of the package has a name of its own, so a name says where it lives."""
    names = [
        path.name
        for path in (ROOT / "edge_server").rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    ]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
