"""A real broker for the MQTT tests (Debian's mosquitto) and a real client that records."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties

from conftest import ServerProcess, free_port
from support.waiting import HANG, until

USER, PASSWORD = "edge", "s3cret-pass"


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        # Fail, never skip: `make test` and .ci/run install it (deploy/test-deps.sh).
        pytest.fail(
            f"no {name} found; run deploy/test-deps.sh as root (apt-get install mosquitto)",
            pytrace=False,
        )
    return path


class Mosquitto:
    """mosquitto in the foreground on two free loopback ports: anonymous, and with a password.

    `user root` so that, run as root, it reads the password file without dropping privileges
    first; `persistence false` so a restart forgets subscriptions and retained messages, as a
    broker whose disk was lost would.
    """

    def __init__(self, folder: Path, *, tls: bool = False) -> None:
        self.folder = folder
        self.anonymous_port = free_port()
        self.password_port = free_port()
        self.tls_port = free_port() if tls else None
        self.ca_file = folder / "ca.pem"
        passwd = folder / "passwd"
        subprocess.run(
            [_binary("mosquitto_passwd"), "-c", "-b", str(passwd), USER, PASSWORD],
            check=True,
            capture_output=True,
        )
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            "\n".join(
                [
                    "user root",
                    "per_listener_settings true",
                    "persistence false",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "max_queued_messages 0",  # unlimited: the tests count every message
                    f"listener {self.anonymous_port} 127.0.0.1",
                    "allow_anonymous true",
                    f"listener {self.password_port} 127.0.0.1",
                    "allow_anonymous false",
                    f"password_file {passwd}",
                    *(self._tls_listener() if tls else []),
                    "",
                ]
            )
        )
        self.log = folder / "mosquitto.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def _tls_listener(self) -> list[str]:
        """A listener with a certificate for 127.0.0.1 and localhost, signed by a test CA."""
        (self.folder / "server.ext").write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\n"
        )
        ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        for command in (
            f"req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=edge-server-test-CA"
            " -addext basicConstraints=critical,CA:TRUE"
            " -addext keyUsage=critical,keyCertSign,cRLSign",
            f"req {ec} -keyout server.key -out server.csr -subj /CN=localhost",
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem"
            " -days 2 -extfile server.ext",
        ):
            subprocess.run(
                [_binary("openssl"), *command.split()],
                cwd=self.folder,
                check=True,
                capture_output=True,
            )
        return [
            f"listener {self.tls_port} 127.0.0.1",
            "allow_anonymous true",
            f"cafile {self.ca_file}",
            f"certfile {self.folder / 'server.pem'}",
            f"keyfile {self.folder / 'server.key'}",
        ]

    def url(self, *, password: str | None = None) -> str:
        """The broker URL for edge-server: anonymous, or the password listener with this one."""
        if password is None:
            return f"mqtt://127.0.0.1:{self.anonymous_port}"
        return f"mqtt://{USER}:{password}@127.0.0.1:{self.password_port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [_binary("mosquitto"), "-c", str(self.config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + HANG
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited:\n{self.log.read_text()}")
            try:
                for port in (self.anonymous_port, self.password_port, self.tls_port):
                    if port is None:
                        continue
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto not listening after {HANG:g} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """Stop it the hard way (a crash or a power cut of the broker's host)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass(frozen=True)
class Received:
    """One message a Recorder got."""

    topic: str
    payload: bytes
    retain: bool
    correlation: bytes | None


class Recorder:
    """A paho-mqtt client (its own network thread) that records what it receives."""

    def __init__(self, port: int, *, v5: bool = False) -> None:
        protocol = paho.MQTTv5 if v5 else paho.MQTTv311
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._acknowledged: set[int] = set()
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        properties = getattr(message, "properties", None)
        correlation = getattr(properties, "CorrelationData", None)
        with self._lock:
            self.messages.append(
                Received(message.topic, bytes(message.payload), bool(message.retain), correlation)
            )

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int, *rest: object) -> None:
        with self._lock:
            self._acknowledged.add(mid)

    def subscribe(self, *filters: str) -> None:
        """Subscribe and wait for the broker's SUBACKs: from then on a publish reaches us."""
        sent = []
        for pattern in filters:
            result, mid = self.client.subscribe(pattern, qos=1)
            assert result == paho.MQTT_ERR_SUCCESS
            sent.append(mid)

        def acknowledged() -> bool:
            with self._lock:
                return self._acknowledged.issuperset(sent)

        until(acknowledged, f"SUBACK for {filters}")

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> paho.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def wait_for(
        self, match: Callable[[Received], bool], *, count: int = 1, timeout: float = HANG
    ) -> list[Received]:
        """The first `count` messages that match, waiting up to `timeout` seconds for them
        (a bound that stops a hang: the wait ends when they are there)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [m for m in self.messages if match(m)]
            if len(found) >= count or time.monotonic() > deadline:
                return found[:count] if len(found) >= count else found
            time.sleep(0.02)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_subscribed(server: ServerProcess) -> None:
    """Until the server's MQTT session is up: it reports `connected` only once its own
    subscriptions are acknowledged, and a message published before then reaches nobody
    (ready on HTTP says nothing about MQTT, which connects in the background)."""

    def connected() -> bool:
        health = httpx.get(server.url + "/healthz", timeout=HANG).json()
        return bool(health["mqtt"]["connected"])

    until(connected, f"{server.url}: MQTT connected")
