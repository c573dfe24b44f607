"""Found on a private LAN: two network namespaces joined by a veth pair, made and deleted here.

A real `edge-server serve --host 0.0.0.0` runs in namespace A beside a real avahi-daemon (both
on UDP 5353, as on Raspberry Pi OS); from namespace B, `edge-server discover` finds it and
`classify --url auto` uses it, a browser that stays up sees its TXT updates and its goodbye.
Needs root, iproute2, avahi-daemon, avahi-utils and dbus. All mDNS traffic stays in the two
namespaces; nothing else on the machine is touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge_server import __version__
from edge_server.lan.advertisement import APIS

from conftest import DEFAULT_MODEL, ROOT, SMALL_MODEL, images_folder, server_env

WATCHER = ROOT / "tests" / "support" / "mdns_watch.py"

pytestmark = pytest.mark.lan

ADDRESS_A = "10.253.0.1"
ADDRESS_B = "10.253.0.2"
NODE_ID = "lan-test-node"
API_KEY = "lan-test-key-0123456789abcdef"
WILDCARD = "0.0.0.0"  # noqa: S104  # the server under test listens inside namespace A only
# Bounds that stop a hang, never a latency claim: a busy machine may take its time.
COMMAND_TIMEOUT = 60.0
TOOLS = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "dbus-daemon": "dbus",
    "avahi-daemon": "avahi-daemon",
    "avahi-browse": "avahi-utils",
}


class Child:
    """A process whose output lines are collected as they come, with when they came."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait_for(
        self, wanted: Callable[[str], bool], timeout: float, since: int = 0
    ) -> tuple[float, str]:
        """The first line from index `since` on that `wanted` accepts, and when it came."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for when, line in self.lines[since:]:
                    if wanted(line):
                        return when, line
                remaining = deadline - time.monotonic()
                ended = self.process.poll() is not None and not self._reader.is_alive()
                if remaining <= 0 or ended:
                    raise AssertionError(
                        f"{' '.join(self.argv[-6:])}: no such line within {timeout} s "
                        f"(exit status {self.process.poll()}); output:\n{self.output}"
                    )
                self._changed.wait(min(remaining, 0.5))

    def stop(self, timeout: float = COMMAND_TIMEOUT) -> int:
        """SIGTERM, then SIGKILL if it does not end in time; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


@dataclass(frozen=True)
class Lan:
    """Two namespaces joined by a veth pair, and a private D-Bus for avahi."""

    a: str
    b: str
    tmp: Path

    @property
    def bus(self) -> str:
        return f"unix:path={self.tmp / 'bus'}"


@dataclass
class Server:
    """An `edge-server serve` in namespace A and the instance name it advertised."""

    child: Child
    port: int
    name: str


def _ip(*args: str) -> None:
    result = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
    )
    assert result.returncode == 0, f"ip {' '.join(args)}: {result.stderr}"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(extra)
    return env


def _edge_server(namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The `edge-server` command run in a namespace."""
    return subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-m", "edge_server", *args],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def _discover(lan: Lan) -> list[dict[str, Any]]:
    result = _edge_server(lan.b, "discover", "--json", "--timeout", "3")
    found: list[dict[str, Any]] = json.loads(result.stdout)
    assert result.returncode == (0 if found else 1), result.stderr
    return found


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lan]:
    """Namespaces A (10.253.0.1) and B (10.253.0.2) with multicast on, deleted at the end."""
    if os.geteuid() != 0:
        pytest.fail("the LAN tests create network namespaces: run them as root", pytrace=False)
    missing = sorted({package for tool, package in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        pytest.fail(f"missing tools; apt-get install {' '.join(missing)}", pytrace=False)
    tmp = tmp_path_factory.mktemp("lan")
    tmp.chmod(0o755)
    lan = Lan(a=f"edge-{os.getpid()}-a", b=f"edge-{os.getpid()}-b", tmp=tmp)
    created: list[str] = []
    try:
        for namespace in (lan.a, lan.b):
            _ip("netns", "add", namespace)
            created.append(namespace)
        _ip("link", "add", "veth0", "netns", lan.a, "type", "veth", "peer", "name", "veth1",
            "netns", lan.b)  # fmt: skip
        ends = ((lan.a, "veth0", ADDRESS_A), (lan.b, "veth1", ADDRESS_B))
        for namespace, device, address in ends:
            _ip("-n", namespace, "addr", "add", f"{address}/30", "dev", device)
            _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("-n", namespace, "link", "set", device, "multicast", "on", "up")
        yield lan
    finally:
        for namespace in created:  # also removes the veth pair
            subprocess.run(["ip", "netns", "del", namespace], timeout=COMMAND_TIMEOUT, check=False)


@pytest.fixture(scope="module")
def avahi(lan: Lan) -> Iterator[Child]:
    """avahi-daemon in namespace A, on a private D-Bus (a CI machine has no system bus)."""
    (lan.tmp / "dbus.conf").write_text(
        f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>{lan.bus}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""
    )
    (lan.tmp / "avahi.conf").write_text(
        "[server]\nhost-name=edge-lan-test\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=veth0\n"
        "[publish]\npublish-hinfo=no\npublish-workstation=no\n"
        "[wide-area]\nenable-wide-area=no\n"
    )
    bus = Child(
        ["dbus-daemon", "--nofork", "--print-address", f"--config-file={lan.tmp}/dbus.conf"]
    )
    daemon: Child | None = None
    try:
        bus.wait_for(lambda line: line.startswith("unix:"), timeout=COMMAND_TIMEOUT)
        # avahi-daemon keeps its pid file and socket in /run/avahi-daemon: a tmpfs /run of its
        # own (in a mount namespace of its own) keeps them apart from any other avahi-daemon.
        daemon = Child(
            ["ip", "netns", "exec", lan.a, "unshare", "--mount", "--propagation", "private",
             "sh", "-c", "mount -t tmpfs tmpfs /run && mkdir /run/avahi-daemon && exec "
             f"avahi-daemon --no-drop-root --no-chroot --no-rlimits -f {lan.tmp}/avahi.conf"],
            env=_clean_env(DBUS_SYSTEM_BUS_ADDRESS=lan.bus),
        )  # fmt: skip
        daemon.wait_for(lambda line: "Server startup complete" in line, timeout=COMMAND_TIMEOUT)
        yield daemon
    finally:
        if daemon is not None:
            daemon.stop()
        bus.stop()


@pytest.fixture(scope="module")
def watcher(lan: Lan) -> Iterator[Child]:
    """A browser in namespace B that stays up and prints every change it sees."""
    child = Child(
        [
            "ip",
            "netns",
            "exec",
            lan.b,
            sys.executable,
            str(ROOT / "tests" / "support" / "mdns_watch.py"),
        ],
        env=_clean_env(),
    )
    try:
        child.wait_for(lambda line: '"ready"' in line, timeout=COMMAND_TIMEOUT)
        yield child
    finally:
        child.stop()


def _serve(lan: Lan, models_dir: Path, runtime: str, port: int, **settings: str) -> Server:
    """Start `edge-server serve --host 0.0.0.0` in namespace A; return once it is advertised."""
    env = server_env(models_dir, runtime, log_level="info", node_id=NODE_ID, **settings)
    child = Child(
        ["ip", "netns", "exec", lan.a, sys.executable, "-m", "edge_server", "serve",
         "--host", WILDCARD, "--port", str(port)],
        env=env,
    )  # fmt: skip
    try:
        _, line = child.wait_for(lambda text: "mDNS: advertising" in text, timeout=COMMAND_TIMEOUT)
    except AssertionError:
        child.stop()
        raise
    match = re.search(r"'(.+?)\._edge-server\._tcp\.local\.'", line)
    assert match is not None, line
    return Server(child=child, port=port, name=match.group(1))


@pytest.fixture(scope="module")
def first_server(lan: Lan, avahi: Child, models_dir: Path, runtime: str) -> Iterator[Server]:
    """A server with an API key, started after avahi-daemon holds port 5353 in namespace A."""
    # Port 8080 inside namespace A, which has nothing else: the default port, as on a Pi.
    server = _serve(lan, models_dir, runtime, 8080, api_key=API_KEY)
    yield server
    server.child.stop()


def test_discover_finds_the_server_with_its_address_port_and_txt(
    lan: Lan, first_server: Server
) -> None:
    """From B, `discover --json` lists the server at its veth address with its TXT values."""
    found = _discover(lan)
    assert found == [
        {
            "name": first_server.name,
            "url": f"http://{ADDRESS_A}:8080",
            "addresses": [ADDRESS_A],
            "port": 8080,
            "server": f"edge-server-{NODE_ID}-8080.local.",
            "version": __version__,
            "id": NODE_ID,
            "apis": list(APIS),
            "model": DEFAULT_MODEL,
            "models": [DEFAULT_MODEL],
            "api_key_required": True,
        }
    ]
    assert first_server.name == f"edge-server on {os.uname().nodename.split('.')[0]}"


def test_classify_url_auto_uses_the_discovered_server(lan: Lan, first_server: Server) -> None:
    """From B, `classify --url auto` finds the server and classifies a real photo through it."""
    photo = images_folder() / "grace_hopper.jpg"
    result = _edge_server(
        lan.b, "classify", "--url", "auto", "--api-key", API_KEY, "--json", str(photo)
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["url"] == f"http://{ADDRESS_A}:8080"
    assert answer["results"][0]["predictions"][0]["label"] == "military uniform"


def test_avahi_sees_the_advertisement_beside_it(lan: Lan, first_server: Server) -> None:
    """Debian's avahi-browse, through the avahi-daemon sharing port 5353 in A, resolves both
    service types with the instance's own host name, address, port and TXT record."""
    result = subprocess.run(
        ["ip", "netns", "exec", lan.a, "avahi-browse", "--all", "--resolve", "--terminate",
         "--parsable", "--no-db-lookup"],
        capture_output=True,
        text=True,
        env=_clean_env(DBUS_SYSTEM_BUS_ADDRESS=lan.bus),
        timeout=COMMAND_TIMEOUT,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    resolved = {}
    for line in result.stdout.splitlines():
        fields = line.split(";")
        if fields[0] == "=":  # interface;protocol;name;type;domain;host;address;port;txt
            name = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1))), fields[3])
            resolved[(name, fields[4])] = fields[5:]
    for kind in ("_edge-server._tcp", "_http._tcp"):
        assert (first_server.name, kind) in resolved, result.stdout
        domain, host, address, port, txt = resolved[(first_server.name, kind)]
        assert (domain, host, address, port) == (
            "local",
            f"edge-server-{NODE_ID}-8080.local",
            ADDRESS_A,
            "8080",
        )
        for entry in ("txtvers=1", "path=/", f"id={NODE_ID}", "auth=required"):
            assert f'"{entry}"' in txt


def test_reload_announces_the_new_txt_record(
    lan: Lan, first_server: Server, watcher: Child
) -> None:
    """A model reload over HTTP sends the new TXT record: a browser in B sees the update."""
    url = f"http://{ADDRESS_A}:8080/v1/models/reload"

    def reload(model: str) -> None:
        script = (
            "import sys, urllib.request\n"
            "request = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(),"
            " headers={'Authorization': 'Bearer ' + sys.argv[3],"
            " 'Content-Type': 'application/json'}, method='POST')\n"
            "urllib.request.urlopen(request, timeout=60).read()\n"
        )
        result = subprocess.run(
            ["ip", "netns", "exec", lan.b, sys.executable, "-c", script, url,
             json.dumps({"model": model}), API_KEY],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr

    def txt_says(model: str) -> Callable[[str], bool]:
        def wanted(line: str) -> bool:
            if not line.startswith("{"):
                return False
            event = json.loads(line)
            return (
                event["event"] in ("added", "updated")
                and event["name"].startswith(first_server.name + ".")
                and (event.get("txt") or {}).get("model") == model
            )

        return wanted

    watcher.wait_for(txt_says(DEFAULT_MODEL), timeout=COMMAND_TIMEOUT)
    since = len(watcher.lines)
    try:
        reload(SMALL_MODEL)
        _, line = watcher.wait_for(txt_says(SMALL_MODEL), timeout=COMMAND_TIMEOUT, since=since)
        assert json.loads(line)["event"] == "updated"
        assert json.loads(line)["txt"]["models"] == SMALL_MODEL
        assert [i["model"] for i in _discover(lan)] == [SMALL_MODEL]
    finally:
        reload(DEFAULT_MODEL)


def test_a_second_server_gets_a_distinct_name(
    lan: Lan, first_server: Server, models_dir: Path, runtime: str
) -> None:
    """A second server in A with the same host name is renamed; --url auto then refuses."""
    second = _serve(lan, models_dir, runtime, 8081)
    try:
        assert second.name == f"{first_server.name}-2"
        found = {item["name"]: item for item in _discover(lan)}
        assert set(found) == {first_server.name, second.name}
        assert found[second.name]["url"] == f"http://{ADDRESS_A}:8081"
        assert found[second.name]["api_key_required"] is False
        photo = images_folder() / "grace_hopper.jpg"
        result = _edge_server(lan.b, "classify", "--url", "auto", str(photo))
        assert result.returncode == 2
        assert "found 2 edge-servers" in result.stderr
        assert first_server.name in result.stderr and second.name in result.stderr
    finally:
        second.child.stop()


def test_sigterm_sends_a_goodbye(lan: Lan, watcher: Child, models_dir: Path, runtime: str) -> None:
    """After SIGTERM the instance leaves a running browser's list (a goodbye: without one it
    stays until its records expire, 75 minutes on); the server exits 0."""
    since = len(watcher.lines)
    server = _serve(lan, models_dir, runtime, 8082, mdns_name="edge-server goodbye test")
    try:
        full_name = f"{server.name}._edge-server._tcp.local."
        watcher.wait_for(
            lambda line: f'"name": "{full_name}"' in line, timeout=COMMAND_TIMEOUT, since=since
        )
        assert server.child.stop() == 0
        assert f"mDNS: goodbye sent for '{full_name}'" in server.child.output
        watcher.wait_for(
            lambda line: '"removed"' in line and full_name in line,
            timeout=COMMAND_TIMEOUT,
            since=since,
        )
    finally:
        server.child.stop()
