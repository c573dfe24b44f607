"""One HTTP request through the data plane: the client's address, its arrival, its hang-up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request

from ..core.errors import ClientGone
from ..serving.service import Service

T = TypeVar("T")
U = TypeVar("U")


async def exchange(
    service: Service,
    request: Request,
    read: Callable[[], Awaitable[U]],
    work: Callable[[U], Awaitable[T]],
) -> T:
    """`Service.run` for an HTTP request: admission by the client's address, the deadline
    from its arrival, and the work abandoned when the client hangs up."""

    async def upload() -> U:
        try:
            return await read()
        except ClientDisconnect:
            # Hung up mid-upload, or closed by the server for stalling (EDGE_BODY_TIMEOUT).
            raise ClientGone("the client disconnected during the upload") from None

    return await service.run(
        upload,
        work,
        client=request.client.host if request.client else None,
        started=request.state.request_started,
        disconnected=lambda: _disconnect(request),
    )


async def _disconnect(request: Request) -> None:
    """Return when the client closes the connection (call only once the body is read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
