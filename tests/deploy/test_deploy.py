"""The deployment files agree with each other and with the package."""

from __future__ import annotations

import re
from typing import Any

import yaml

from edge_server.app import create_app
from edge_server.config.settings import DEFAULT_MODEL, Settings
from edge_server.serving.catalog import load_catalog
from edge_server.serving.specs import model_specs, read_config

from conftest import ROOT

UNIT = (ROOT / "systemd" / "edge-server.service").read_text()
INSTALL = (ROOT / "systemd" / "install.sh").read_text()
EXAMPLE = (ROOT / "systemd" / "edge-server.env").read_text()
DOCKERFILE = (ROOT / "Dockerfile.arm64").read_text()
SWARM = ROOT / "deploy" / "swarm"
STACK = (SWARM / "stack.yml").read_text()
HAPROXY = (SWARM / "haproxy.cfg").read_text()


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
    for target in ("deploy-check", "prove-systemd", "prove-container", "prove-swarm"):
        assert f"`make {target}`" in readme, target
        assert re.search(rf"^make .*\b{target}\b", ci, re.MULTILINE), target


def _app_paths() -> set[str]:
    return set(create_app(Settings()).openapi()["paths"])


def _service() -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load(STACK)["services"]["edge-server"]
    return service


def _image_port() -> int:
    match = re.search(r"EDGE_PORT=(\d+)", DOCKERFILE)
    assert match
    return int(match.group(1))


def test_swarm_health_checks_ask_readyz_on_the_image_port() -> None:
    """The stack's health check and the front door's both ask /readyz, on the image's port."""
    service = _service()
    assert "/readyz" in _app_paths()
    assert "127.0.0.1:%s/readyz' % os.environ['EDGE_PORT']" in service["healthcheck"]["test"][-1]
    assert [(p["target"], p["published"], p["mode"]) for p in service["ports"]] == [
        (_image_port(), _image_port(), "host")
    ]
    assert "option httpchk GET /readyz" in HAPROXY
    servers = re.findall(r'^\s+server \S+ "\$\{\w+-[\w.]+\}:(\d+)"$', HAPROXY, re.MULTILINE)
    assert servers and {int(port) for port in servers} == {_image_port()}


def test_swarm_update_waits_for_health_and_rolls_back() -> None:
    """One node at a time, the old task stopped first, a failed update rolled back."""
    update = _service()["deploy"]["update_config"]
    assert (update["parallelism"], update["order"], update["failure_action"]) == (
        1,
        "stop-first",
        "rollback",
    )
    assert _service()["deploy"]["mode"] == "global"


def test_swarm_secret_is_the_api_key_file_readable_by_the_image_user() -> None:
    """EDGE_API_KEY_FILE is where the secret is mounted, owned by the image's numeric user."""
    service = _service()
    user = re.search(r"^USER (\d+):(\d+)$", DOCKERFILE, re.MULTILINE)
    assert user
    [secret] = service["secrets"]
    assert service["environment"]["EDGE_API_KEY_FILE"] == f"/run/secrets/{secret['target']}"
    assert (secret["uid"], secret["gid"]) == user.groups()
    assert secret["mode"] == 0o400
    assert set(yaml.safe_load(STACK)["secrets"]) == {secret["source"]}


def test_swarm_environment_names_only_real_settings() -> None:
    """Every EDGE_ variable the stack sets is a setting of the service."""
    for name in _service()["environment"]:
        assert name.removeprefix("EDGE_").lower() in Settings.model_fields, name


def test_swarm_models_config_is_mounted_where_the_setting_points_and_loads() -> None:
    """EDGE_MODELS_CONFIG names the config's mount point, and the file configures the image's
    default model as the service reads it."""
    service = _service()
    [config] = service["configs"]
    assert service["environment"]["EDGE_MODELS_CONFIG"] == config["target"]
    settings = Settings(models_config=SWARM / "models.toml", model=DEFAULT_MODEL)
    assert [spec.name for spec in model_specs(settings)] == [DEFAULT_MODEL]
    assert read_config(SWARM / "models.toml").models[DEFAULT_MODEL]


def test_front_door_never_replays_a_reload() -> None:
    """Classifications are replayed on another node; the reload path is not, and exists."""
    assert "retry-on conn-failure empty-response response-timeout 503" in HAPROXY
    assert "option redispatch 1" in HAPROXY
    reload = re.search(r"disable-l7-retry if \{ path_beg (\S+) \}", HAPROXY)
    assert reload and reload.group(1) in _app_paths()
