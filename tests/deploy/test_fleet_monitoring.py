"""Fleet monitoring: the alerting rules, their unit tests, the example Prometheus config and the
Grafana dashboard, checked by Debian's promtool and against a real Prometheus scraping a real
server on a fake Raspberry Pi, so that a renamed metric or label breaks the build."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import (
    DEFAULT_MODEL,
    DETECTOR,
    ROOT,
    ServerProcess,
    fake_pi,
    free_port,
    images_folder,
    metric,
    server_env,
)
from support.waiting import HANG, until

pytestmark = pytest.mark.lan

MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "edge-server.rules.yml"
RULE_TESTS = MONITORING / "edge-server.rules.test.yml"
CONFIG = MONITORING / "prometheus.yml"
DASHBOARD = MONITORING / "grafana" / "edge-server-fleet.json"
# A metric name of the service (or Prometheus' own `up`) and its label matchers, if any.
SELECTOR = re.compile(r"\b(?P<name>up|edge_[a-z0-9_]+)\b(?:\{(?P<matchers>[^}]*)\})?")
MATCHER = re.compile(r'(?P<label>\w+)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>[^"]*)"')


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: apt-get install prometheus", pytrace=False)
    return path


def promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("promtool"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def alert_rules(path: Path = RULES) -> list[dict[str, Any]]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def job() -> str:
    """The scrape job the rules select (from the instance-down rule)."""
    (down,) = [r for r in alert_rules() if r["alert"] == "EdgeServerDown"]
    found = re.search(r'job="([^"]+)"', down["expr"])
    assert found
    return found.group(1)


def dashboard_queries() -> dict[str, str]:
    """Each panel query of the dashboard, with Grafana's variables as the test sets them."""
    variables = {"$__rate_interval": "1m", "$job": job(), "$instance": ".*"}
    queries = {}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in variables.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, expr
            queries[f"{panel['title']} {target['refId']}"] = expr
    return queries


def rule_queries() -> dict[str, str]:
    return {rule["alert"]: rule["expr"] for rule in alert_rules()}


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Each metric the expression reads, with its label matchers (label, operator, value)."""
    found = []
    for match in SELECTOR.finditer(expr):
        matchers = MATCHER.findall(match.group("matchers") or "")
        found.append((match.group("name"), matchers))
    return found


def test_selector_parsing_finds_every_metric_and_matcher() -> None:
    """The test's reading of PromQL: names, and matchers of every operator."""
    expr = (
        'sum by (instance, le) (rate(edge_x_bucket{job="edge-server", stage="total", '
        'route!~"/healthz|/readyz", status!="503", flag=~"a|b"}[5m])) / up == 0'
    )
    assert selectors(expr) == [
        (
            "edge_x_bucket",
            [
                ("job", "=", "edge-server"),
                ("stage", "=", "total"),
                ("route", "!~", "/healthz|/readyz"),
                ("status", "!=", "503"),
                ("flag", "=~", "a|b"),
            ],
        ),
        ("up", []),
    ]


def test_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts every rule of the file."""
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_rule_unit_tests_pass() -> None:
    """`promtool test rules`: every firing and not-firing case of the unit tests holds."""
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_not_firing_case() -> None:
    """Each alert is expected to fire for one node and not for another (or at another time)."""
    cases: dict[str, dict[str, bool]] = {}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        instances = set(re.findall(r'instance="([^"]+)"', str(test["input_series"])))
        for check in test["alert_rule_test"]:
            firing = {a["exp_labels"].get("instance") for a in check["exp_alerts"]}
            seen = cases.setdefault(check["alertname"], {"fires": False, "quiet": False})
            seen["fires"] |= bool(firing)
            seen["quiet"] |= not firing or bool(instances - firing)
    for rule in alert_rules():
        assert cases.get(rule["alert"]) == {"fires": True, "quiet": True}, rule["alert"]


def test_unit_tests_catch_a_changed_threshold(tmp_path: Path) -> None:
    """The unit tests can fail: with the temperature threshold at 85 C, the 80 C case breaks."""
    hot = 'edge_board_temperature_celsius{job="edge-server"}'
    rules = RULES.read_text()
    assert f"{hot} > 75" in rules
    (tmp_path / RULES.name).write_text(rules.replace(f"{hot} > 75", f"{hot} > 85"))
    shutil.copy(RULE_TESTS, tmp_path)
    result = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "alertname: EdgeBoardHot" in output, output
    assert output.count("FAILED") == 1, output


def test_example_config_passes_promtool_and_names_the_rules_job() -> None:
    """`promtool check config` accepts prometheus.yml (and the rules it loads); its job, and the
    Kubernetes Service the ServiceMonitor names its job after, are the job the rules select."""
    result = promtool("check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(CONFIG.read_text())
    assert config["rule_files"] == [RULES.name]
    assert [c["job_name"] for c in config["scrape_configs"]] == [job()]
    service = yaml.safe_load((ROOT / "deploy" / "k8s" / "base" / "service.yaml").read_text())
    assert service["metadata"]["name"] == job()


def test_dashboard_is_grafana_json_with_a_query_in_every_panel() -> None:
    """The dashboard is JSON Grafana imports: a title, a uid, panels that each query."""
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert selectors(target["expr"]), target["expr"]


# --- against a real server and a real Prometheus ------------------------------------------------


@pytest.fixture(scope="module")
def busy_pi(
    tmp_path_factory: pytest.TempPathFactory, models_dir: Path, runtime: str
) -> Iterator[ServerProcess]:
    """A real server on a fake Pi, with a classifier and a detector, that has classified,
    detected, refused (503), timed out an upload (408) and reloaded its models, so that every
    series the fleet's queries read exists."""
    root = fake_pi(tmp_path_factory.mktemp("sysfs"))
    env = server_env(
        models_dir,
        runtime,
        model=f"{DEFAULT_MODEL},objects",
        sysfs_root=str(root),
        max_queue="1",
        # The slow upload gets its 408 before EDGE_BODY_TIMEOUT (10 s) would close it; the
        # other requests have room for their work on a busy machine.
        request_timeout="5",
    )
    server = ServerProcess(env, free_port())
    server.wait_ready()
    try:
        photo = (images_folder() / "grace_hopper.jpg").read_bytes()
        assert httpx.get(server.url + "/healthz").status_code == 200
        assert httpx.post(server.url + "/classify", files={"image": photo}).status_code == 200
        assert httpx.post(server.url + "/detect", files={"image": photo}).status_code == 200
        # A slow upload holds the only place in the queue: the next request is refused, and the
        # slow one runs out of time.
        head = (
            "POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {len(photo)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as slow:
            slow.sendall(head + photo[:1000])
            _wait_for(server, "edge_classify_admitted", 1)
            refused = httpx.post(server.url + "/classify", files={"image": photo})
            assert refused.status_code == 503
            assert slow.recv(64).startswith(b"HTTP/1.1 408")
        server.process.send_signal(signal.SIGHUP)
        _wait_for(server, "edge_model_reloads_total", 1, model=DEFAULT_MODEL, result="ok")
        _wait_for(server, "edge_model_reloads_total", 1, model=DETECTOR, result="ok")
        yield server
    finally:
        server.stop()


def _wait_for(server: ServerProcess, name: str, value: float, **labels: str) -> None:
    until(
        lambda: metric(httpx.get(server.url + "/metrics").text, name, **labels) == value,
        f"{name}{labels} at {value}",
    )


def test_every_query_names_a_metric_the_service_exports(busy_pi: ServerProcess) -> None:
    """Each metric a dashboard panel or an alert reads is in the server's own /metrics."""
    text = httpx.get(busy_pi.url + "/metrics").text
    exported = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    exported.add("up")  # Prometheus' own, per target
    for where, expr in {**dashboard_queries(), **rule_queries()}.items():
        for name, _ in selectors(expr):
            assert name in exported, f"{where}: {name}"


class Prometheus:
    """Debian's prometheus server on 127.0.0.1, scraping one target every second."""

    def __init__(self, directory: Path, target: str) -> None:
        config = yaml.safe_load(CONFIG.read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(RULES)]
        (scrape,) = config["scrape_configs"]
        scrape["static_configs"] = [{"targets": [target]}]
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = directory / "prometheus.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [
                    _tool("prometheus"),
                    f"--config.file={directory / 'prometheus.yml'}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(self.url + "/api/v1/query", params={"query": expr}).json()
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def series(self, selector: str) -> list[dict[str, str]]:
        answer = httpx.get(self.url + "/api/v1/series", params={"match[]": selector}).json()
        assert answer["status"] == "success", (selector, answer)
        found: list[dict[str, str]] = answer["data"]
        return found

    def wait_for(self, expr: str, timeout: float = HANG) -> None:
        """Until the server is ready and the query has a result (it has scraped enough)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log.read_text()}")
            try:
                # 503 and plain text until its storage is open.
                ready = httpx.get(self.url + "/-/ready").status_code == 200
            except httpx.TransportError:
                ready = False
            if ready and self.query(expr):
                return
            time.sleep(0.5)
        raise AssertionError(f"no result for {expr} in {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, busy_pi: ServerProcess
) -> Iterator[Prometheus]:
    """A real Prometheus with the example config and the rules, scraping the busy fake Pi."""
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{busy_pi.port}")
    try:
        # Three scrapes in the last minute: enough for rate() and increase() to answer.
        server.wait_for(f'count_over_time(up{{job="{job()}"}}[1m]) >= 3')
        yield server
    finally:
        server.stop()


def test_prometheus_scrapes_the_server_as_the_rules_job(prometheus: Prometheus) -> None:
    """The target is up under the rules' job, named by its host as the relabelling says."""
    (up,) = prometheus.query(f'up{{job="{job()}"}}')
    assert up["value"][1] == "1"
    assert up["metric"]["instance"] == "127.0.0.1"


def test_prometheus_has_every_series_the_queries_read(prometheus: Prometheus) -> None:
    """Every metric a panel or an alert reads is in Prometheus, with a series for each exact
    label value its selectors name (stage="total", flag="under_voltage", status="503"...),
    including each word of a regex alternation (route!~"/healthz|/readyz|/metrics")."""
    names = httpx.get(prometheus.url + "/api/v1/label/__name__/values").json()["data"]
    for where, expr in {**dashboard_queries(), **rule_queries()}.items():
        for name, matchers in selectors(expr):
            assert name in names, f"{where}: {name}"
            exact = [f'{label}="{value}"' for label, op, value in matchers if op == "="]
            selector = name + "{" + ", ".join(exact) + "}"
            assert prometheus.series(selector), f"{where}: no series {selector}"
            for label, op, value in matchers:
                words = value.split("|")
                if op in ("=~", "!~") and all(re.fullmatch(r"[\w/-]+", w) for w in words):
                    for word in words:
                        one = f'{name}{{{label}="{word}"}}'
                        assert prometheus.series(one), f"{where}: no series {one}"


def test_every_dashboard_query_answers(prometheus: Prometheus) -> None:
    """Each dashboard query evaluates in Prometheus and has data from the one server."""
    for where, expr in dashboard_queries().items():
        assert prometheus.query(expr), f"{where}: {expr}"


def test_prometheus_loads_and_evaluates_every_rule(prometheus: Prometheus) -> None:
    """The rules file loads in the server and every rule evaluates without error; on the fake
    Pi, whose firmware reports under-voltage and throttling, exactly those two go off."""

    def evaluated() -> list[dict[str, Any]] | None:
        groups = httpx.get(prometheus.url + "/api/v1/rules").json()["data"]["groups"]
        rules: list[dict[str, Any]] = [rule for group in groups for rule in group["rules"]]
        return rules if all(not r["lastEvaluation"].startswith("0001") for r in rules) else None

    rules = until(evaluated, "every rule evaluated once", every=0.5)
    assert sorted(r["name"] for r in rules) == sorted(rule_queries())
    for rule in rules:
        assert rule["health"] == "ok", rule
    states = {r["name"]: [a["state"] for a in r["alerts"]] for r in rules if r["alerts"]}
    # Under-voltage fires at once; throttling waits its 5 minutes. The traffic was all before
    # the first scrape, so no rate-based alert has a rate to go off on.
    assert states == {"EdgeBoardUnderVoltage": ["firing"], "EdgeBoardThrottled": ["pending"]}
