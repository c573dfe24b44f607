"""The KServe v2 model repository extension, as Triton speaks it: list, load and unload models.

`POST /v2/repository/index` lists the models the server knows (loaded: READY; loadable:
UNAVAILABLE), `POST /v2/repository/models/{name}/load` loads and warms one before it takes
traffic (a loaded one is reloaded), `.../unload` stops serving one once its requests in flight
are done. Changing what is served needs an API key, as `POST /v1/models/reload` does.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, ValidationError

from ...core.errors import BadRequest, Forbidden
from ...serving.service import Service
from ..deps import Authorized, ServiceDep
from ..dialect import error_dialect
from .messages import MODEL_VERSION, ErrorAnswer, render_error

Body = TypeVar("Body", bound=BaseModel)

router = APIRouter(
    prefix="/v2/repository",
    tags=["KServe v2"],
    route_class=error_dialect(render_error),
    dependencies=[Authorized],
    responses={status: {"model": ErrorAnswer} for status in (400, 401, 403, 404, 409, 422, 503)},
)


class IndexRequest(BaseModel):
    """`POST /v2/repository/index`: `ready` true lists only the loaded models."""

    ready: bool = False


class RepositoryModel(BaseModel):
    """A model of the repository and its state."""

    name: str
    version: str = MODEL_VERSION
    state: str = Field(description="READY (loaded and serving) or UNAVAILABLE.")
    reason: str = ""


class ChangeRequest(BaseModel):
    """The body of a load or unload (optional; the parameters Triton takes are refused)."""

    parameters: dict[str, Any] = Field(default_factory=dict)


@router.post("/index", response_model=list[RepositoryModel], summary="Models in the repository")
async def index(request: Request, service: ServiceDep) -> list[RepositoryModel]:
    """The loaded models, then those that could be loaded by name."""
    body = await _body(request, IndexRequest) or IndexRequest()
    entries = [
        RepositoryModel(name=e.name, state=e.state, reason=e.reason) for e in service.models.index()
    ]
    return [e for e in entries if e.state == "READY"] if body.ready else entries


@router.post("/models/{name}/load", summary="Load (or reload) a model")
async def load(request: Request, service: ServiceDep, name: str) -> Response:
    """Load and warm the model, then serve it; its name is what requests use."""
    _check_change(service, await _body(request, ChangeRequest), "load")
    await service.models.load(name)
    return Response(status_code=200)


@router.post("/models/{name}/unload", summary="Unload a model")
async def unload(request: Request, service: ServiceDep, name: str) -> Response:
    """Stop serving the model; its requests in flight finish. The default model stays."""
    _check_change(service, await _body(request, ChangeRequest), "unload")
    await service.models.unload(name)
    return Response(status_code=200)


async def _body(request: Request, model: type[Body]) -> Body | None:
    """The optional JSON body (tritonclient sends an empty one, or `{}`)."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise BadRequest(f"the request body is not valid: {exc.errors()[0]['msg']}") from exc


def _check_change(service: Service, body: ChangeRequest | None, action: str) -> None:
    if not service.keys.enabled:
        raise Forbidden(
            f"to {action} models over HTTP set EDGE_API_KEY; without keys, list the models in "
            "EDGE_MODEL and restart, or send SIGHUP to reload them"
        )
    ignored = {"unload_dependents"}  # no model here depends on another
    if body is not None and set(body.parameters) - ignored:
        names = ", ".join(sorted(set(body.parameters) - ignored))
        raise BadRequest(
            f"{action} takes no parameters here ({names}): models come from the catalog, "
            "EDGE_MODELS_CONFIG or EDGE_MODELS_DIR, not from the request"
        )
