"""Connection limits uvicorn lacks: time to send headers and body, a cap on open connections,
and a lingering close so that an answer given before the request body was read reaches the client.

uvicorn closes a keep-alive connection idle between requests (`timeout_keep_alive`) and can
answer 503 past `limit_concurrency`, but only once a request's headers are complete: a client
that sends its headers a byte at a time (slowloris) or stalls in the middle of a body holds a
socket and a file descriptor for as long as it likes, and enough of them exhaust the open-file
limit. nginx (`client_header_timeout`, `client_body_timeout`, `worker_connections`) and Apache
(`mod_reqtimeout`) defend this layer themselves; a Pi on a LAN has no proxy in front.

`guarded()` subclasses whichever protocol class uvicorn chose (httptools or h11) and adds:
- a deadline for each request's headers, from the connection's start or the previous answer;
- a deadline for each pause in a request body (not counted while the app is not reading it);
- a cap on open connections: past it the connection waiting longest for its headers (an idle
  keep-alive or a slow client) is closed to make room, and if every connection is busy with a
  request the newcomer gets a 503 and is closed;
- a lingering close (nginx's `lingering_close`, Apache's lingering close): an answer given
  before the request body arrived in full (401, 404, an early 413) is followed by a half-close,
  then the rest of the body is read and thrown away until the client closes or pauses
  (`body_timeout`), or up to `linger_bytes` or `linger_timeout`, before the socket is closed.
  Closing at once would leave the client's unread bytes in the kernel, which answers them with
  a reset: a client that sends its whole body before reading (Python's urllib and requests,
  Home Assistant's DeepStack clients) then gets `BrokenPipeError` or `ConnectionResetError`
  instead of the answer. `CloseEarlyAnswers` marks such answers `Connection: close`, so the
  client knows the connection ends with them.
Each costs a timer per connection and a few attribute reads per received chunk.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("edge_server")

_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"content-length: 41\r\n"
    b"\r\n"
    b"too many open connections; retry shortly\n"
)

# What a connection is doing, for its timer.
_HEADERS, _BODY, _APP, _LINGER = "headers", "body", "app", "linger"


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take, and how many connections may be open at once."""

    max_connections: int
    header_timeout: float
    body_timeout: float
    linger_bytes: int  # 0: no lingering, close at once
    linger_timeout: float


REASONS = ("header_timeout", "body_timeout", "evicted", "refused", "lingered", "linger_cut")


class ConnectionMetrics:
    """Open connections and why the server closed some."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge("edge_connections_open", "HTTP connections open now.", registry=registry)
        self.limit = Gauge(
            "edge_connections_limit",
            "Open connections allowed (EDGE_MAX_CONNECTIONS, lowered to fit the open-file limit).",
            registry=registry,
        )
        self.closed = Counter(
            "edge_connections_closed",
            "Connections the server closed, by reason (header_timeout, body_timeout, evicted: "
            "waiting for headers or lingering when the cap was reached, refused: over the cap "
            "with a 503, lingered: after an early answer, once the client stopped sending, "
            "linger_cut: still sending at EDGE_LINGER_BYTES or EDGE_LINGER_TIMEOUT).",
            ("reason",),
            registry=registry,
        )
        for reason in REASONS:
            self.closed.labels(reason)
        self.discarded = Counter(
            "edge_connections_discarded_bytes",
            "Request body bytes read and thrown away after an early answer (lingering close).",
            registry=registry,
        )


class ConnectionTable:
    """The open connections of one server, and which of them wait for request headers."""

    def __init__(self, limits: ConnectionLimits, metrics: ConnectionMetrics) -> None:
        self.limits = limits
        self.metrics = metrics
        self.open = 0
        # Insertion-ordered: the first one has waited longest for its request headers.
        self.waiting: dict[Any, None] = {}
        # Answered, reading the rest of a body to throw it away; the first one started first.
        self.lingering: dict[Any, None] = {}
        metrics.limit.set(limits.max_connections)

    def admit(self, connection: Any) -> bool:
        """Count a new connection; False if it must be refused (every slot busy)."""
        self.open += 1
        self.metrics.open.set(self.open)
        if self.open <= self.limits.max_connections:
            return True
        for idle in (self.waiting, self.lingering):
            for victim in idle:
                # The longest wait for headers (an idle keep-alive or a slow client), else the
                # oldest lingering close (its answer is sent): closing it keeps the slot for a
                # client with a request to make.
                del idle[victim]
                victim.close_for("evicted")
                return True
        return False

    def closed(self, connection: Any) -> None:
        """Forget a connection that is gone."""
        self.open -= 1
        self.metrics.open.set(self.open)
        self.waiting.pop(connection, None)
        self.lingering.pop(connection, None)


class _Transport:
    """A connection's transport as uvicorn sees it: closing after an early answer lingers.

    uvicorn closes the transport itself once an answer marked `Connection: close` is sent;
    every close, uvicorn's and the app's, goes through `close()` here.
    """

    def __init__(self, transport: asyncio.Transport, protocol: Any) -> None:
        self._transport = transport
        self._protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def close(self) -> None:
        if not self._protocol.linger():
            self._transport.close()

    def is_closing(self) -> bool:
        # Lingering counts as closing: uvicorn must not start another request or arm its
        # keep-alive timer on this connection.
        return bool(self._protocol.lingering or self._transport.is_closing())


class CloseEarlyAnswers:
    """ASGI middleware: an answer started before the app read the request body to its end says
    `Connection: close`.

    The client then knows the connection ends with the answer; uvicorn closes it once sent,
    which the guarded protocol turns into a lingering close. Without the header uvicorn would
    keep the connection and parse the rest of the body, however large, to throw it away.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope["headers"]):
            await self.app(scope, receive, send)
            return
        ended = False  # the app has the last chunk of the body, or the client left

        async def receiving() -> Message:
            nonlocal ended
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                ended = True
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and not ended:
                headers = MutableHeaders(scope=message)
                if "close" not in headers.get("connection", "").lower():
                    headers.append("connection", "close")
            await send(message)

        await self.app(scope, receiving, sending)


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
        if name == b"transfer-encoding":
            return True
    return False


def guarded(base: type[asyncio.Protocol], table: ConnectionTable) -> type[asyncio.Protocol]:
    """`base` (uvicorn's H11Protocol or HttpToolsProtocol) with the table's limits."""
    limits = table.limits

    # The base is chosen at run time, so mypy cannot check the subclass against it.
    class Guarded(base):  # type: ignore[valid-type, misc]
        _timer: asyncio.TimerHandle | None = None
        _phase = _HEADERS
        _mark = 0.0  # when the phase started, or a body's last progress
        _seen: Any = None  # the request cycle the phase belongs to
        _socket: asyncio.Transport  # the transport itself, not the view uvicorn is given
        lingering = False
        _linger_end = 0.0
        _discarded = 0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # A TCP server's stream transport (uvloop's does not subclass asyncio's).
            self._socket = cast(asyncio.Transport, transport)
            super().connection_made(_Transport(self._socket, self))
            if table.admit(self):
                self._wait_for_headers()
            else:
                self._socket.write(_REFUSAL)
                self.close_for("refused")

        def connection_lost(self, exc: Exception | None) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            table.closed(self)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.lingering:  # the rest of an answered request's body: thrown away unparsed
                self._mark = self.loop.time()
                self._discarded += len(data)
                table.metrics.discarded.inc(len(data))
                if self._discarded > limits.linger_bytes:
                    self.close_for("linger_cut")
                return
            super().data_received(data)
            cycle = self.cycle
            if cycle is not self._seen:  # a new request's headers are in
                self._seen = cycle
                table.waiting.pop(self, None)
                if cycle.more_body and not cycle.response_complete:
                    self._enter(_BODY, limits.body_timeout)
                else:
                    self._enter(_APP, None)
            elif self._phase is _BODY:
                self._mark = self.loop.time()

        def eof_received(self) -> bool | None:
            if self.lingering:  # the client has sent everything it will
                self.close_for("lingered")
                return None
            return super().eof_received()  # type: ignore[no-any-return]

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.lingering or self._socket.is_closing():
                return
            if self.cycle.response_complete:
                self._wait_for_headers()
            else:  # a pipelined request is next; the app has it
                self._seen = self.cycle
                self._enter(_APP, None)

        def close_for(self, reason: str) -> None:
            """Close the connection, counting why (no traceback: this is expected)."""
            if not self._socket.is_closing():
                table.metrics.closed.labels(reason).inc()
                self._socket.close()

        def linger(self) -> bool:
            """Start a lingering close if the request now answered has more body coming; False
            when the connection should simply close."""
            cycle = self.cycle
            if (
                self.lingering
                or limits.linger_bytes == 0
                or self._socket.is_closing()
                or cycle is None
                or not cycle.response_complete
                or not cycle.more_body
            ):
                return False
            self.lingering = True
            table.waiting.pop(self, None)
            table.lingering[self] = None
            # Half-close once the answer is flushed: the client reads the answer, then EOF.
            self._socket.write_eof()
            self.flow.resume_reading()  # paused while the app was not reading the body
            self._linger_end = self.loop.time() + limits.linger_timeout
            self._enter(_LINGER, min(limits.body_timeout, limits.linger_timeout))
            return True

        def _wait_for_headers(self) -> None:
            table.waiting.pop(self, None)
            table.waiting[self] = None
            self._enter(_HEADERS, limits.header_timeout)

        def _enter(self, phase: str, timeout: float | None) -> None:
            self._phase = phase
            self._mark = self.loop.time()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if timeout is not None:
                self._timer = self.loop.call_later(timeout, self._expire)

        def _expire(self) -> None:
            self._timer = None
            if self._socket.is_closing():
                return
            now = self.loop.time()
            if self._phase is _HEADERS:
                timeout, reason = limits.header_timeout, "header_timeout"
            elif self._phase is _BODY and self.cycle.more_body:
                timeout, reason = limits.body_timeout, "body_timeout"
                if self.flow.read_paused:
                    self._mark = now  # the app is not reading: the client is not the slow one
            elif self._phase is _LINGER:
                # A pause means the client has sent what it will; the overall bound cuts off
                # one still sending.
                paused = self._mark + limits.body_timeout
                timeout = min(paused, self._linger_end) - self._mark
                reason = "lingered" if now >= paused else "linger_cut"
            else:
                return
            left = self._mark + timeout - now
            if left > 0:
                self._timer = self.loop.call_later(left, self._expire)
                return
            table.waiting.pop(self, None)
            table.lingering.pop(self, None)
            self.close_for(reason)

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded
