"""Errors in a compatible API's own shape: a route class for that API's router.

FastAPI's exception handlers are app-wide, and the native API answers problem+json. The DeepStack
and KServe routers instead use a route class that catches what their routes (and dependencies,
such as request validation) raise and renders it in the shape their clients parse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from . import problems

log = logging.getLogger("edge_server")

Renderer = Callable[[Request, int, str, dict[str, str]], Response]


def error_dialect(render: Renderer) -> type[APIRoute]:
    """A route class answering every error with `render(request, status, detail, headers)`."""

    class DialectRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as exc:
                    known = problems.outcome(exc)
                    if known is None:
                        log.exception("unexpected error on %s", request.url.path, exc_info=exc)
                        known = (
                            500,
                            "an internal error occurred; the server log has the details",
                            {},
                        )
                    elif known[0] == 500:  # 503/504 are counted in metrics, not logged
                        log.error("request %s failed: %s", request.url.path, known[1])
                    status, detail, headers = known
                    return render(request, status, detail, headers)

            return handle

    return DialectRoute
