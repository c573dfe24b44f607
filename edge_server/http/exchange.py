"""One HTTP request through the data plane: the client's address, its arrival, its hang-up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ..core.errors import ClientGone
from ..serving.metrics import STAGES
from ..serving.schemas import ClassifyResponse, DetectResponse, SegmentResponse
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


def json_answer(answer: ClassifyResponse | DetectResponse | SegmentResponse) -> Response:
    """The answer as JSON, serialized by pydantic in one pass (no dict in between), with its
    stages in a Server-Timing header."""
    timing = answer.timing_ms.model_dump()
    return Response(
        answer.model_dump_json(exclude_none=True),
        media_type="application/json",
        headers={"Server-Timing": server_timing(timing)},
    )


def server_timing(timing_ms: dict[str, float]) -> str:
    """The stages as a Server-Timing header value."""
    return ", ".join(f"{stage};dur={timing_ms[stage]:.3f}" for stage in STAGES)
