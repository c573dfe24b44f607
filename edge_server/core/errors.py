"""Errors as types: each carries its HTTP status and a detail a person can act on."""

from __future__ import annotations

from http import HTTPStatus


class StartupError(Exception):
    """The service cannot start: what is wrong and how to fix it."""

    def __init__(self, problem: str, *, fix: str) -> None:
        super().__init__(f"{problem}; fix: {fix}")
        self.problem = problem
        self.fix = fix


class ServiceError(Exception):
    """A request failed; rendered as RFC 9457 problem+json by the API."""

    status: int = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}


class BadImage(ServiceError):
    """The body is not an image that can be decoded."""

    status = HTTPStatus.BAD_REQUEST


class BadRequest(ServiceError):
    """The request is malformed (e.g. multipart without an image field)."""

    status = HTTPStatus.BAD_REQUEST


class TooLarge(ServiceError):
    """The body or the image exceeds a configured limit."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(ServiceError):
    """The content type is not an image or multipart form."""

    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class InvalidParameter(ServiceError):
    """A query parameter is out of range or of the wrong type."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY


class NotReady(ServiceError):
    """The model is not loaded (yet, or any more)."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


class InferenceFailed(ServiceError):
    """The runtime raised while running the model."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR


class Unauthorized(ServiceError):
    """No valid API key was sent."""

    status = HTTPStatus.UNAUTHORIZED


class Forbidden(ServiceError):
    """The action is switched off by configuration."""

    status = HTTPStatus.FORBIDDEN


class UploadTimeout(ServiceError):
    """The client did not finish sending the body in time."""

    status = HTTPStatus.REQUEST_TIMEOUT


class Overloaded(ServiceError):
    """The admission queue is full; the client should retry shortly."""

    status = HTTPStatus.SERVICE_UNAVAILABLE


class DeadlineExceeded(ServiceError):
    """The request was not answered within the per-request deadline."""

    status = HTTPStatus.GATEWAY_TIMEOUT


class ClientGone(ServiceError):
    """The client disconnected before the answer; nothing is sent (nginx's 499)."""

    status = 499  # not an IANA status; logged and counted only


class ReloadFailed(ServiceError):
    """A new model could not be loaded; the old one keeps serving."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY


class NotFound(ServiceError):
    """The named model (or version) is not the one this server has loaded."""

    status = HTTPStatus.NOT_FOUND


class Conflict(ServiceError):
    """The action contradicts the service's state (unloading the default model, one too many)."""

    status = HTTPStatus.CONFLICT


class StorageFailed(ServiceError):
    """A change could not be written to disk (full, read-only, failing); nothing was kept."""

    status = HTTPStatus.INSUFFICIENT_STORAGE


def title_of(status: int) -> str:
    """The status phrase; 499 is nginx's "client closed request", which HTTPStatus lacks."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Client Closed Request"
