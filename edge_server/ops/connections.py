"""Connection limits uvicorn lacks: time to send headers and body, and a cap on open connections.

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
  request the newcomer gets a 503 and is closed.
Each costs a timer per connection and a few attribute reads per received chunk.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

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
_HEADERS, _BODY, _APP = "headers", "body", "app"


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take, and how many connections may be open at once."""

    max_connections: int
    header_timeout: float
    body_timeout: float


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
            "waiting for headers when the cap was reached, refused: over the cap with a 503).",
            ("reason",),
            registry=registry,
        )
        for reason in ("header_timeout", "body_timeout", "evicted", "refused"):
            self.closed.labels(reason)


class ConnectionTable:
    """The open connections of one server, and which of them wait for request headers."""

    def __init__(self, limits: ConnectionLimits, metrics: ConnectionMetrics) -> None:
        self.limits = limits
        self.metrics = metrics
        self.open = 0
        # Insertion-ordered: the first one has waited longest for its request headers.
        self.waiting: dict[Any, None] = {}
        metrics.limit.set(limits.max_connections)

    def admit(self, connection: Any) -> bool:
        """Count a new connection; False if it must be refused (every slot busy)."""
        self.open += 1
        self.metrics.open.set(self.open)
        if self.open <= self.limits.max_connections:
            return True
        for victim in self.waiting:
            # The longest wait for headers: an idle keep-alive or a slow client. Closing it
            # keeps the slot for a client that will use it.
            del self.waiting[victim]
            victim.close_for("evicted")
            return True
        return False

    def closed(self, connection: Any) -> None:
        """Forget a connection that is gone."""
        self.open -= 1
        self.metrics.open.set(self.open)
        self.waiting.pop(connection, None)


def guarded(base: type[asyncio.Protocol], table: ConnectionTable) -> type[asyncio.Protocol]:
    """`base` (uvicorn's H11Protocol or HttpToolsProtocol) with the table's limits."""
    limits = table.limits

    # The base is chosen at run time, so mypy cannot check the subclass against it.
    class Guarded(base):  # type: ignore[valid-type, misc]
        _timer: asyncio.TimerHandle | None = None
        _phase = _HEADERS
        _mark = 0.0  # when the phase started, or a body's last progress
        _seen: Any = None  # the request cycle the phase belongs to

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            if table.admit(self):
                self._wait_for_headers()
            else:
                transport.write(_REFUSAL)  # type: ignore[attr-defined]  # a stream transport
                self.close_for("refused")

        def connection_lost(self, exc: Exception | None) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            table.closed(self)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
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

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.transport.is_closing():
                return
            if self.cycle.response_complete:
                self._wait_for_headers()
            else:  # a pipelined request is next; the app has it
                self._seen = self.cycle
                self._enter(_APP, None)

        def close_for(self, reason: str) -> None:
            """Close the connection, counting why (no traceback: this is expected)."""
            if not self.transport.is_closing():
                table.metrics.closed.labels(reason).inc()
                self.transport.close()

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
            if self.transport.is_closing():
                return
            now = self.loop.time()
            if self._phase is _HEADERS:
                timeout, reason = limits.header_timeout, "header_timeout"
            elif self._phase is _BODY and self.cycle.more_body:
                timeout, reason = limits.body_timeout, "body_timeout"
                if self.flow.read_paused:
                    self._mark = now  # the app is not reading: the client is not the slow one
            else:
                return
            left = self._mark + timeout - now
            if left > 0:
                self._timer = self.loop.call_later(left, self._expire)
                return
            table.waiting.pop(self, None)
            self.close_for(reason)

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded
