"""The Kubernetes manifests render, pass Kubernetes' schemas and agree with what they run.

No cluster can run here: the manifests are rendered by `kubectl kustomize` and validated by
`kubernetes-validate --strict`, and every value that must match the service or the image is
read from the service's code and from Dockerfile.arm64, not written twice.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute
from kubernetes_validate.utils import latest_version

from edge_server.config.settings import Settings
from edge_server.http import routes as api

from conftest import ROOT

pytestmark = pytest.mark.lan

K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = {"base": K8S / "base", "pi": K8S / "overlays" / "pi"}
# Continuation lines joined, so that each instruction is one line.
DOCKERFILE = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile.arm64").read_text())
UNIT = (ROOT / "systemd" / "edge-server.service").read_text()
# The oldest Kubernetes the README promises (k3s releases of the last two years), and the newest
# that kubernetes-validate knows.
VERSIONS = ("1.30.0", latest_version())

Resource = dict[str, Any]


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: apt-get install {package}", pytrace=False)
    return path


@functools.cache
def rendered(name: str) -> str:
    """`kubectl kustomize` of a kustomization (Debian's kubectl 1.20 or a newer one)."""
    result = subprocess.run(
        [_tool("kubectl", "kubernetes-client"), "kustomize", str(KUSTOMIZATIONS[name])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def resources(name: str) -> list[Resource]:
    return [r for r in yaml.safe_load_all(rendered(name)) if r]


def one(name: str, kind: str) -> Resource:
    (found,) = [r for r in resources(name) if r["kind"] == kind]
    return found


def container(name: str) -> Resource:
    containers: list[Resource] = one(name, "DaemonSet")["spec"]["template"]["spec"]["containers"]
    (found,) = containers
    return found


def route_path(endpoint: object) -> str:
    """The path the service serves a route function at."""
    routes = [r for r in api.router.routes if isinstance(r, APIRoute)]
    (path,) = [r.path for r in routes if r.endpoint is endpoint]
    return path


def docker(instruction: str) -> str:
    """The argument of a Dockerfile.arm64 instruction that appears once at a line start."""
    (value,) = re.findall(rf"^{instruction} (.+)$", DOCKERFILE, re.MULTILINE)
    return str(value)


def quantity(text: str | int) -> float:
    """A Kubernetes quantity (`500m`, `2`, `512Mi`) as a number."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(text))
    assert match, text
    return float(match.group(1)) * units.get(match.group(2), 1)


def validate(text: str, version: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).parent / "kubernetes-validate"
    return subprocess.run(
        [str(command), "--strict", "--kubernetes-version", version, "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_kustomize_renders_a_namespace_daemonset_and_service(name: str) -> None:
    """Base and Pi overlay render to the namespace, the DaemonSet and the Service, all in it."""
    kinds = sorted(r["kind"] for r in resources(name))
    assert kinds == ["DaemonSet", "Namespace", "Service"]
    namespace = one(name, "Namespace")["metadata"]["name"]
    for resource in resources(name):
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == namespace


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_manifests_pass_strict_schema_validation(name: str, version: str) -> None:
    """kubernetes-validate --strict passes every rendered resource, none unknown to it."""
    result = validate(rendered(name), version)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARN" not in result.stdout and "ERROR" not in result.stdout, result.stdout
    assert result.stdout.count(" passed for resource ") == len(resources(name)), result.stdout


def test_strict_validation_refuses_a_misspelled_field() -> None:
    """The check can fail: a misspelled security field is an error under --strict."""
    text = rendered("pi").replace("readOnlyRootFilesystem:", "readOnlyRootFileSystem:")
    result = validate(text, latest_version())
    assert result.returncode != 0
    assert "readOnlyRootFileSystem" in result.stdout, result.stdout


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_probes_are_the_service_health_routes(name: str) -> None:
    """Startup and liveness ask the route the image's HEALTHCHECK asks; readiness asks /readyz."""
    probes = container(name)
    healthcheck = re.search(r"http://127\.0\.0\.1:%s(/\w+)", docker("HEALTHCHECK"))
    assert healthcheck
    assert route_path(api.healthz) == healthcheck.group(1)
    assert probes["startupProbe"]["httpGet"]["path"] == route_path(api.healthz)
    assert probes["livenessProbe"]["httpGet"]["path"] == route_path(api.healthz)
    assert probes["readinessProbe"]["httpGet"]["path"] == route_path(api.readyz)
    ports = {p["name"]: p["containerPort"] for p in probes["ports"]}
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert probes[kind]["httpGet"]["port"] in ports


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_startup_waits_at_least_as_long_as_the_image_healthcheck(name: str) -> None:
    """The startup probe allows the image's start period, and shutdown its drain time."""
    start_period = re.search(r"--start-period=(\d+)s", docker("HEALTHCHECK"))
    assert start_period
    startup = container(name)["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= int(start_period.group(1))
    pod = one(name, "DaemonSet")["spec"]["template"]["spec"]
    drain = Settings.model_fields["shutdown_timeout"].default
    assert pod["terminationGracePeriodSeconds"] > drain


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_port_is_the_image_and_service_port(name: str) -> None:
    """Container port = EXPOSE = the image's EDGE_PORT = the default port; Service and scrape
    annotations point at it, and the scrape path is the metrics route."""
    (port,) = container(name)["ports"]
    assert port["containerPort"] == int(docker("EXPOSE"))
    assert f"EDGE_PORT={port['containerPort']}" in DOCKERFILE
    assert port["containerPort"] == Settings.model_fields["port"].default
    (service_port,) = one(name, "Service")["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    annotations = one(name, "DaemonSet")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert annotations["prometheus.io/path"] == route_path(api.metrics)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_security_context_is_the_image_user_and_hardening(name: str) -> None:
    """The image's numeric user and group, read-only root, no escalation, no capabilities,
    seccomp RuntimeDefault; only /tmp (where uploads spool) and /data (learned classes, on the
    node) are writable."""
    uid, gid = docker("USER").split(":")
    pod = one(name, "DaemonSet")["spec"]["template"]["spec"]
    effective = {**pod["securityContext"], **container(name)["securityContext"]}
    assert effective["runAsUser"] == int(uid)
    assert effective["runAsGroup"] == int(gid)
    assert effective["runAsNonRoot"] is True
    assert effective["readOnlyRootFilesystem"] is True
    assert effective["allowPrivilegeEscalation"] is False
    assert effective["privileged"] is False
    assert effective["capabilities"] == {"drop": ["ALL"]}
    assert effective["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = [
        m["mountPath"]
        for m in container(name)["volumeMounts"]
        if {"emptyDir", "hostPath"} & set(volumes[m["name"]]) and not m.get("readOnly")
    ]
    # Python's default temporary folder in the image, which sets no TMPDIR.
    assert "TMPDIR" not in DOCKERFILE
    assert writable == ["/tmp", "/data"]  # noqa: S108 - paths in the container
    assert "EDGE_DATA_DIR=/data" in DOCKERFILE


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_learned_classes_live_on_the_node_owned_by_the_service_user(name: str) -> None:
    """/data is the node's /var/lib/edge-server; the one init container only hands it to the
    image's user: root with CHOWN alone, read-only root, no escalation, the same image."""
    pod = one(name, "DaemonSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (init,) = pod["initContainers"]
    assert init["image"] == container(name)["image"]
    assert [m["mountPath"] for m in init["volumeMounts"]] == ["/data"]
    assert volumes[init["volumeMounts"][0]["name"]]["hostPath"] == {
        "path": "/var/lib/edge-server",
        "type": "DirectoryOrCreate",
    }
    uid, gid = docker("USER").split(":")
    assert f"os.chown('/data', {uid}, {gid})" in init["command"][-1]
    context = init["securityContext"]
    assert context["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_api_key_file_is_the_mounted_secret(name: str) -> None:
    """EDGE_API_KEY_FILE names a key of the Secret volume, mounted read-only; every EDGE_
    variable set is a real setting."""
    env = {e["name"]: e for e in container(name)["env"]}
    for variable in env:
        assert variable.removeprefix("EDGE_").lower() in Settings.model_fields, variable
    key_file = PurePosixPath(env["EDGE_API_KEY_FILE"]["value"])
    pod = one(name, "DaemonSet")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = container(name)["volumeMounts"]
    (mount,) = [m for m in mounts if m["mountPath"] == str(key_file.parent)]
    assert mount["readOnly"] is True
    secret = volumes[mount["name"]]["secret"]
    assert key_file.name in [item["path"] for item in secret["items"]]
    # Readable by the group the service runs as, not by others.
    assert secret["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == int(docker("USER").split(":")[1])


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_service_links_are_off(name: str) -> None:
    """No <SERVICE>_PORT variables: a Service named `edge` would otherwise set EDGE_PORT."""
    pod = one(name, "DaemonSet")["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_resources_request_no_more_than_their_limits(name: str) -> None:
    """Requests and limits for CPU and memory, each request within its limit."""
    resources_ = container(name)["resources"]
    for kind in ("cpu", "memory"):
        assert quantity(resources_["requests"][kind]) <= quantity(resources_["limits"][kind])


def test_pi_overlay_runs_the_arm64_image_on_arm64_nodes_within_the_unit_memory() -> None:
    """The Pi overlay: arm64 nodes only, the arm64 image tag, at most the systemd unit's
    MemoryMax, a LoadBalancer Service (k3s ServiceLB)."""
    pod = one("pi", "DaemonSet")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/arch": "arm64"}
    assert container("pi")["image"] == "edge-server:arm64"
    memory_max = re.search(r"^MemoryMax=(\d+)M$", UNIT, re.MULTILINE)
    assert memory_max
    limit = quantity(container("pi")["resources"]["limits"]["memory"])
    assert limit == int(memory_max.group(1)) * 2**20
    assert one("pi", "Service")["spec"]["type"] == "LoadBalancer"
    assert "nodeSelector" not in one("base", "DaemonSet")["spec"]["template"]["spec"]


def test_optional_service_monitor_scrapes_the_service_metrics_route() -> None:
    """The optional ServiceMonitor selects the Service, names its port and the metrics route.
    (Its kind is the Prometheus Operator's, which kubernetes-validate has no schema for.)"""
    monitor = yaml.safe_load((K8S / "optional" / "servicemonitor.yaml").read_text())
    service = one("base", "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["path"] == route_path(api.metrics)


def test_the_init_container_hands_the_folder_over_with_chown_alone(tmp_path: Path) -> None:
    """Its own script, run as root holding no capability but CHOWN (setpriv): a root-owned
    folder becomes the image user's with mode 0700, and a second start is a no-op, not an
    EPERM that would keep the pods from starting."""
    (init,) = one("base", "DaemonSet")["spec"]["template"]["spec"]["initContainers"]
    if os.geteuid() != 0:
        pytest.fail("needs root (as the LAN tests do): it runs a script as root", pytrace=False)
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    assert folder.stat().st_uid == 0  # as kubelet creates it
    script = init["command"][-1].replace("/data", str(folder))
    command = ["setpriv", "--bounding-set", "-all,+chown", "--inh-caps", "-all"]
    for _ in range(2):  # the first start of the pod, then a restart
        done = subprocess.run(
            [*command, sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    uid, gid = docker("USER").split(":")
    stat = folder.stat()
    assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o777) == (int(uid), int(gid), 0o700)
