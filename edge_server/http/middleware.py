"""Per-request context: request id, arrival time, in-flight gauge, request metrics, access log.

A plain ASGI middleware (not BaseHTTPMiddleware) so it adds microseconds, not a task per request.
The access log is ours, not uvicorn's, so it can be sampled (EDGE_ACCESS_LOG): a line per
request costs CPU on a Pi and wears its SD card through the journal, but errors are always
logged.
"""

from __future__ import annotations

import logging
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..serving.metrics import Metrics

access_log = logging.getLogger("edge_server.access")

REQUEST_ID_HEADER = "x-request-id"
_MAX_ID_LENGTH = 128


def request_id_from(header: str | None) -> str:
    """The client's request id when it is sane, else a new one."""
    if header and len(header) <= _MAX_ID_LENGTH and header.isascii() and header.isprintable():
        return header
    return uuid.uuid4().hex


class RequestContext:
    """Stamps each HTTP request and counts it once answered."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log_rate: float = 0.0) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log_rate = access_log_rate
        self._sampled = 0.0  # accumulates the rate; a line each time it passes 1: exact, even

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        client_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                client_id = value.decode("latin-1")
                break
        request_id = request_id_from(client_id)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["request_started"] = started
        status = 500  # what the client sees if the app dies before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            elapsed = time.perf_counter() - started
            self.metrics.request_seconds.labels(route, str(status)).observe(elapsed)
            if status >= 400 or self._sample():
                _log_access(scope, route, status, elapsed)

    def _sample(self) -> bool:
        if not self.access_log_rate:
            return False
        self._sampled += self.access_log_rate
        if self._sampled < 1.0:
            return False
        self._sampled -= 1.0
        return True


# Routes whose address names a person: logged as their template, so no name reaches the log.
PRIVATE_ROUTES = frozenset({"/v1/faces/{name}"})


def _log_access(scope: Scope, route: str, status: int, elapsed: float) -> None:
    client = scope.get("client")
    where = f"{client[0]}:{client[1]}" if client else "-"
    query = scope.get("query_string", b"")
    path = scope["path"] + ("?" + query.decode("latin-1") if query else "")
    if route in PRIVATE_ROUTES:
        path = route
    access_log.log(
        logging.WARNING if status >= 500 else logging.INFO,
        '%s - "%s %s HTTP/%s" %d %.1f ms',
        where,
        scope["method"],
        path,
        scope.get("http_version", "1.1"),
        status,
        elapsed * 1000,
    )
