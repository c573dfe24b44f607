"""What the service advertises on the LAN, and whether, and what the browser reads back: the
decisions and records, without any network traffic."""

from __future__ import annotations

import errno
import logging
import os
from ipaddress import ip_address

import ifaddr
import pytest
from pydantic import ValidationError

from edge_server import __version__
from edge_server.client import Client, ClientError
from edge_server.config.settings import MdnsMode, Settings
from edge_server.core.errors import StartupError
from edge_server.lan import browser
from edge_server.lan.advertisement import (
    APIS,
    InterfaceAddress,
    advertised_addresses,
    instance_name,
    plan,
    server_name,
    txt_record,
    wanted,
)
from edge_server.lan.browser import SERVICE_TYPE, Instance, instance

pytestmark = pytest.mark.lan

# The IPv4 wildcard as EDGE_HOST takes it (compared with, never bound to, in these tests).
ANY = "0.0.0.0"  # noqa: S104

# A Pi with Ethernet and Wi-Fi, each with IPv4, a global and a link-local IPv6 address.
PI = [
    InterfaceAddress("lo", ip_address("127.0.0.1")),
    InterfaceAddress("lo", ip_address("::1")),
    InterfaceAddress("eth0", ip_address("192.168.1.20")),
    InterfaceAddress("eth0", ip_address("fd00::20")),
    InterfaceAddress("eth0", ip_address("fe80::20")),
    InterfaceAddress("wlan0", ip_address("192.168.1.21")),
    InterfaceAddress("wlan0", ip_address("fe80::21")),
]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "::1", "localhost", "LOCALHOST"])
def test_loopback_server_advertises_nothing(host: str) -> None:
    """A server listening on loopback only is not advertised by default: nothing could connect."""
    assert not wanted(MdnsMode.auto, host)
    assert plan(Settings(host=host, mdns=MdnsMode.auto)) is None


def test_default_settings_advertise_nothing() -> None:
    """The default host is loopback, so a plain start sends no mDNS at all."""
    assert plan(Settings()) is None


@pytest.mark.parametrize("host", [ANY, "::", "192.168.1.20", "pi.example"])
def test_lan_server_is_advertised_by_default(host: str) -> None:
    """Listening on a LAN address (or all of them), the service advertises itself."""
    assert wanted(MdnsMode.auto, host)
    assert wanted(MdnsMode.on, host)


@pytest.mark.parametrize("host", [ANY, "127.0.0.1"])
def test_off_never_advertises(host: str) -> None:
    """EDGE_MDNS=off turns the advertisement off whatever the host."""
    assert not wanted(MdnsMode.off, host)
    assert plan(Settings(host=host, mdns=MdnsMode.off)) is None


def test_on_with_loopback_is_a_startup_error() -> None:
    """EDGE_MDNS=on with a loopback host is a contradiction that stops the start, with a fix."""
    with pytest.raises(StartupError, match=r"EDGE_HOST=127\.0\.0\.1") as caught:
        wanted(MdnsMode.on, "127.0.0.1")
    assert "EDGE_HOST=0.0.0.0" in caught.value.fix


@pytest.mark.parametrize(
    ("bound", "interfaces", "expected"),
    [
        ([ANY], "", ["192.168.1.20", "192.168.1.21"]),
        (["::"], "", ["192.168.1.20", "192.168.1.21", "fd00::20"]),
        (["192.168.1.21"], "", ["192.168.1.21"]),
        ([ANY], "eth0", ["192.168.1.20"]),
        ([ANY], " wlan0 , eth9", ["192.168.1.21"]),
        ([ANY], "192.168.1.20", ["192.168.1.20"]),
        (["::"], "eth0", ["192.168.1.20", "fd00::20"]),
        (["10.0.0.1"], "", []),
        ([ANY], "eth9", []),
        (["127.0.0.1"], "lo", []),
    ],
    ids=[
        "all-ipv4",
        "dual-stack",
        "one-address",
        "one-interface",
        "names-trimmed",
        "by-address",
        "dual-stack-one-interface",
        "address-not-here",
        "interface-not-here",
        "never-loopback",
    ],
)
def test_advertised_addresses(bound: list[str], interfaces: str, expected: list[str]) -> None:
    """The addresses advertised are those served on, never loopback or link-local IPv6 ones."""
    allowed = [item.strip() for item in interfaces.split(",") if item.strip()]
    assert advertised_addresses(bound, PI, allowed) == [ip_address(a) for a in expected]


def test_txt_record_follows_rfc_6763() -> None:
    """txtvers=1 comes first, then path and what a client chooses an instance by."""
    txt = txt_record(
        version="1.2.3",
        node="3f2a9c0d1e4b",
        default_model="mobilenet_v2_1.0_224_quant",
        models=["mobilenet_v2_1.0_224_quant", "birds"],
        key_required=True,
    )
    assert list(txt.items()) == [
        ("txtvers", "1"),
        ("path", "/"),
        ("version", "1.2.3"),
        ("id", "3f2a9c0d1e4b"),
        ("api", "native,deepstack,kserve-v2"),
        ("model", "mobilenet_v2_1.0_224_quant"),
        ("models", "mobilenet_v2_1.0_224_quant,birds"),
        ("auth", "required"),
    ]
    assert all(len(f"{k}={v}".encode()) <= 255 for k, v in txt.items())


def test_txt_models_fit_one_string() -> None:
    """A long model list is cut at a whole name so that `models=...` stays within 255 bytes."""
    names = [f"model_{i:02d}_{'x' * 20}" for i in range(20)]
    txt = txt_record(
        version="1", node="n", default_model=names[0], models=names, key_required=False
    )
    kept = txt["models"].split(",")
    assert kept == names[: len(kept)]
    assert 0 < len(kept) < len(names)
    assert len(f"models={txt['models']}".encode()) <= 255
    assert txt["auth"] == "none"


@pytest.mark.parametrize(
    ("configured", "hostname", "expected"),
    [
        (None, "raspberrypi", "edge-server on raspberrypi"),
        (None, "pi.home.example", "edge-server on pi"),
        ("Kitchen camera", "raspberrypi", "Kitchen camera"),
        (None, "p" * 80, "edge-server on " + "p" * 48),
        (None, "é" * 40, "edge-server on " + "é" * 24),
    ],
    ids=["host-based", "first-label", "configured", "one-label", "utf8-boundary"],
)
def test_instance_name(configured: str | None, hostname: str, expected: str) -> None:
    """The instance name is EDGE_MDNS_NAME or host-based, one DNS label of at most 63 bytes."""
    name = instance_name(configured, hostname)
    assert name == expected
    assert len(name.encode()) <= 63


def test_server_name_is_never_the_machines() -> None:
    """The host name answered for is the instance's own (Avahi owns `<hostname>.local.`)."""
    assert server_name("3f2a9c0d1e4b", 8080) == "edge-server-3f2a9c0d1e4b-8080.local."
    long = server_name("n" * 63, 65535)
    assert long.endswith("-65535.local.")
    assert len(long.removesuffix(".local.")) == 63


@pytest.mark.parametrize(
    "name", ["kitchen.pi", "x" * 64, "é" * 32, "tab\there", "  "], ids=str.__len__
)
def test_mdns_name_must_be_one_label(name: str) -> None:
    """EDGE_MDNS_NAME is refused when it would not be one valid DNS-SD instance label."""
    with pytest.raises(ValidationError, match="mdns_name"):
        Settings(mdns_name=name)


def test_on_without_a_port_is_a_startup_error() -> None:
    """EDGE_MDNS=on with EDGE_PORT=0 cannot advertise a port not yet chosen: the start stops."""
    with pytest.raises(StartupError, match="EDGE_PORT=0"):
        plan(Settings(host=ANY, port=0, mdns=MdnsMode.on))


def test_auto_without_a_matching_interface_warns_and_serves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """EDGE_MDNS=auto with interfaces that match nothing logs why, and the service starts."""
    settings = Settings(host=ANY, mdns_interfaces="no-such-interface0")
    with caplog.at_level(logging.WARNING, logger="edge_server"):
        assert plan(settings) is None
    assert "no LAN address to advertise" in caplog.text
    with pytest.raises(StartupError, match="no-such-interface0"):
        plan(settings.model_copy(update={"mdns": MdnsMode.on}))


def test_discovery_reads_what_is_advertised() -> None:
    """The browser's reading of a resolved record gives back what the TXT record says."""
    txt = txt_record(
        version=__version__,
        node="3f2a9c0d1e4b",
        default_model="mobilenet_v2_1.0_224_quant",
        models=["mobilenet_v2_1.0_224_quant"],
        key_required=False,
    )
    found = instance(
        f"edge-server on pi.{SERVICE_TYPE}",
        server="edge-server-3f2a9c0d1e4b-8080.local.",
        addresses=["192.168.1.20", "fd00::20"],
        port=8080,
        txt=txt,
    )
    assert found == Instance(
        name="edge-server on pi",
        addresses=("192.168.1.20", "fd00::20"),
        port=8080,
        server="edge-server-3f2a9c0d1e4b-8080.local.",
        version=__version__,
        id="3f2a9c0d1e4b",
        apis=APIS,
        model="mobilenet_v2_1.0_224_quant",
        models=("mobilenet_v2_1.0_224_quant",),
        api_key_required=False,
    )
    assert found.url == "http://192.168.1.20:8080"
    described = found.as_dict()
    assert list(described)[:2] == ["name", "url"]
    assert described["addresses"] == ["192.168.1.20", "fd00::20"]


@pytest.mark.parametrize(
    ("addresses", "url"),
    [
        (["fd00::20"], "http://[fd00::20]:8080"),
        (["fe80::20%eth0"], "http://[fe80::20%25eth0]:8080"),
        ([], "http://edge-server-x-8080.local:8080"),
    ],
)
def test_instance_url(addresses: list[str], url: str) -> None:
    """The URL brackets IPv6 (zone escaped), and falls back to the advertised host name."""
    found = instance(
        f"x.{SERVICE_TYPE}",
        server="edge-server-x-8080.local.",
        addresses=addresses,
        port=8080,
        txt={"auth": "maybe"},
    )
    assert found.url == url
    assert found.api_key_required is None


def test_interfaces_that_cannot_be_listed_are_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without netlink sockets (a tight sandbox) auto serves unadvertised; on names the fix."""

    def refuse() -> None:
        raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))

    monkeypatch.setattr(ifaddr, "get_adapters", refuse)
    assert plan(Settings(host=ANY)) is None
    with pytest.raises(StartupError) as caught:
        plan(Settings(host=ANY, mdns=MdnsMode.on))
    assert "cannot list the network interfaces" in caught.value.problem
    assert "AF_NETLINK" in caught.value.fix


def test_client_discover_explains_a_failure_to_listen(monkeypatch: pytest.MonkeyPatch) -> None:
    """When no mDNS socket can be opened, Client.discover raises a ClientError saying so."""

    def no_sockets(**_: object) -> None:
        raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))

    monkeypatch.setattr(browser, "AsyncZeroconf", no_sockets)
    with pytest.raises(ClientError, match="cannot look for edge-servers by mDNS"):
        Client.discover(0.1)
