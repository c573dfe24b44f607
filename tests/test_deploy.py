"""The deployment files agree with each other and with the package."""

from __future__ import annotations

import re

from edge_server.catalog import load_catalog
from edge_server.settings import DEFAULT_MODEL, Settings

from conftest import ROOT

UNIT = (ROOT / "systemd" / "edge-server.service").read_text()
INSTALL = (ROOT / "systemd" / "install.sh").read_text()
EXAMPLE = (ROOT / "systemd" / "edge-server.env").read_text()
DOCKERFILE = (ROOT / "Dockerfile.arm64").read_text()


def _shell_value(script: str, name: str) -> str:
    match = re.search(rf"^{name}=(\S+)$", script, re.MULTILINE)
    assert match, name
    return match.group(1)


def _unit_values(key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", UNIT, re.MULTILINE)


def test_unit_runs_and_reads_what_install_sh_installs() -> None:
    """ExecStart, the models folder and EnvironmentFile are where install.sh puts them."""
    prefix = _shell_value(INSTALL, "PREFIX")
    conf = _shell_value(INSTALL, "CONF")
    assert _unit_values("ExecStart") == [f"{prefix}/bin/edge-server serve"]
    assert f"EDGE_MODELS_DIR={prefix}/models" in _unit_values("Environment")[0].split()
    assert _unit_values("EnvironmentFile") == [f"{conf}/edge-server.env"]


def test_unit_keeps_proc_cpuinfo_visible() -> None:
    """No ProcSubset=pid: the ARM runtimes read /proc/cpuinfo."""
    assert not _unit_values("ProcSubset")


def test_example_settings_name_only_real_settings() -> None:
    """Every EDGE_ variable in the example settings file, commented or not, is a setting."""
    names = re.findall(r"^#?EDGE_([A-Z_]+)=", EXAMPLE, re.MULTILINE)
    assert names
    for name in names:
        assert name.lower() in Settings.model_fields, name


def test_image_defaults_match_the_catalog() -> None:
    """The image bakes in the catalog's default model on the official Python 3.11 base."""
    assert load_catalog()[DEFAULT_MODEL]
    assert f"ARG MODEL={DEFAULT_MODEL}" in DOCKERFILE
    assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in DOCKERFILE


def test_readme_deploy_checks_are_the_ci_checks() -> None:
    """The deployment commands the README documents are the ones .ci/run runs."""
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for target in ("deploy-check", "prove-systemd", "prove-container"):
        assert f"`make {target}`" in readme, target
        assert re.search(rf"^make .*\b{target}\b", ci, re.MULTILINE), target
