"""RFC 9457 problem+json rendering for every error the API returns."""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from ..core.errors import ServiceError, title_of
from ..serving.schemas import Problem

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("edge_server")


def problem(request: Request, status: int, detail: str) -> Problem:
    """The problem details of an error on this request; the title is the status phrase."""
    return Problem(
        title=title_of(status),
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=getattr(request.state, "request_id", None),
    )


def problem_response(
    request: Request, status: int, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A problem+json response; the title is the status phrase."""
    body = problem(request, status, detail)
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "body"))
        given = error.get("input")
        shown = f" (got {given!r})" if given is not None and not isinstance(given, dict) else ""
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}{shown}")
    return "; ".join(parts) or "the request parameters are invalid"


def outcome(exc: Exception) -> tuple[int, str, dict[str, str]] | None:
    """(status, detail, headers) of an error the API knows how to answer, else None.

    The compatible APIs render these in their own error shapes; problem+json is the native one.
    """
    if isinstance(exc, ServiceError):
        return int(exc.status), exc.detail, exc.headers
    if isinstance(exc, RequestValidationError):
        return 422, _validation_detail(exc), {}
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail), dict(exc.headers or {})
    return None


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    if exc.status == 500:
        # Overload (503) and deadline (504) answers are counted in metrics, not logged: under
        # a flood, a line per refused request would only wear out the Pi's SD card.
        log.error("request %s failed: %s", request.url.path, exc.detail)
    return problem_response(request, exc.status, exc.detail, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(request, 422, _validation_detail(exc))


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """An HTTPException (an unknown route, a wrong method) as problem+json."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        # Starlette answers with the Allow of the first route whose path matched; a path
        # served by several routes (GET, PUT, PATCH, DELETE of /v1/learned/{name}) allows
        # all their methods.
        given = {m.strip() for m in (headers or {}).get("Allow", "").split(",") if m.strip()}
        # The schema is built once, on the first 405, off the event loop (0.2 s on a desktop).
        allowed = given | await asyncio.to_thread(_documented_methods, request)
        headers = {**(headers or {}), "Allow": ", ".join(sorted(allowed))}
    return problem_response(request, exc.status_code, str(exc.detail), headers)


def _documented_methods(request: Request) -> set[str]:
    """The methods the OpenAPI document lists for the first path template (in routing order)
    that the request's path matches: the routes Starlette would have chosen between."""
    for template, operations in request.app.openapi().get("paths", {}).items():
        if compile_path(template)[0].fullmatch(request.url.path):
            return {method.upper() for method in operations}
    return set()


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return problem_response(
        request, 500, "an internal error occurred; the server log has the details"
    )


def install(app: FastAPI) -> None:
    """Route every error of the app through problem+json."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, _unexpected)


def openapi_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting problem+json for these statuses."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {MEDIA_TYPE: {}},
        }
        for status in statuses
    }
