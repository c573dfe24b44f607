"""The connection defences' hold on uvicorn internals: fail loudly, by name, if they change.

`ops/connections.py` subclasses uvicorn's HTTP protocol classes and reads attributes that are not
uvicorn's public API. pyproject.toml pins uvicorn to the minor version these were checked on;
this test names each internal, so an upgrade that moves one fails here, not as a silent loss
of the header, body and connection limits.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import pytest
from prometheus_client import CollectorRegistry
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.h11_impl import RequestResponseCycle as H11Cycle
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle as HttpToolsCycle

from edge_server.ops import connections

PROTOCOLS = [H11Protocol, HttpToolsProtocol]
# What Guarded overrides and calls on the protocol.
METHODS = [
    "connection_made",
    "connection_lost",
    "data_received",
    "eof_received",
    "on_response_complete",
]
# What Guarded reads on the protocol instance.
ATTRIBUTES = ["self.cycle", "self.transport", "self.loop", "self.flow"]


def test_uvicorn_is_the_pinned_minor_version() -> None:
    """The installed uvicorn is the minor version the defences were checked on (pyproject)."""
    assert version("uvicorn").split(".")[:2] == ["0", "55"], (
        "uvicorn changed: re-check ops/connections.py against its protocol classes, then move "
        "the pin in pyproject.toml and this test together"
    )


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.__name__)
def test_protocol_has_what_the_guard_overrides_and_reads(protocol: type) -> None:
    """Both HTTP protocol classes keep the methods and attributes the guard relies on."""
    source = inspect.getsource(protocol)
    for method in METHODS:
        assert callable(getattr(protocol, method, None)), f"{protocol.__name__}.{method} is gone"
    for attribute in ATTRIBUTES:
        assert attribute in source, f"{protocol.__name__} no longer sets {attribute}"


@pytest.mark.parametrize("cycle", [H11Cycle, HttpToolsCycle], ids=["h11", "httptools"])
def test_request_cycle_tells_body_and_response_state(cycle: type) -> None:
    """A request cycle still says whether more body is coming and whether it was answered."""
    init = inspect.getsource(vars(cycle)["__init__"])
    assert "self.more_body" in init and "self.response_complete" in init


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.__name__)
def test_protocol_uses_the_transport_it_is_given(protocol: type) -> None:
    """The transport given to connection_made is the one flow control and each request cycle
    use, and a closing one stops on_response_complete (the lingering close relies on both)."""
    assert "FlowControl(transport)" in inspect.getsource(vars(protocol)["connection_made"])
    assert "transport=self.transport" in inspect.getsource(protocol)
    done = inspect.getsource(vars(protocol)["on_response_complete"])
    assert "if self.transport.is_closing():\n            return" in done


@pytest.mark.parametrize("cycle", [H11Cycle, HttpToolsCycle], ids=["h11", "httptools"])
def test_request_cycle_closes_its_transport_after_a_closing_answer(cycle: type) -> None:
    """A cycle closes the transport itself once an answer that ends the connection is sent
    (where the guard starts lingering)."""
    assert "self.transport.close()" in inspect.getsource(vars(cycle)["send"])


def test_flow_control_tells_when_reading_is_paused() -> None:
    """Flow control still says when the app stopped reading (the body timer waits then), and
    resumes reading (a lingering close reads what the app left)."""
    assert "self.read_paused" in inspect.getsource(FlowControl.__init__)
    assert "self._transport.resume_reading()" in inspect.getsource(FlowControl.resume_reading)


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_config_exposes_the_protocol_class_to_guard(http: str) -> None:
    """Config.load() picks a protocol class the guard can subclass (server.py swaps it in)."""

    async def app(scope: object, receive: object, send: object) -> None:  # never called
        raise AssertionError

    config = Config(app, http=http)
    config.load()
    table = connections.ConnectionTable(
        connections.ConnectionLimits(
            max_connections=8, header_timeout=1, body_timeout=1, linger_bytes=1, linger_timeout=1
        ),
        connections.ConnectionMetrics(CollectorRegistry()),
    )
    guarded = connections.guarded(config.http_protocol_class, table)
    assert issubclass(guarded, config.http_protocol_class)
