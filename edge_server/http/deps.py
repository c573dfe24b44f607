"""FastAPI dependencies shared by the routers: the service, API keys, shared query parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request

from ..core.region import Region, parse_region
from ..serving.service import Service


async def _service(request: Request) -> Service:
    # async so FastAPI calls it on the event loop: a plain `def` dependency costs every
    # request a round trip through the threadpool (likewise below).
    service: Service = request.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]


async def require_key(
    service: ServiceDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """401 unless a configured API key is sent (a no-op when no key is configured)."""
    service.keys.check(authorization, x_api_key)


async def require_key_for_metrics(
    service: ServiceDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """Like require_key, when EDGE_METRICS_REQUIRE_KEY is on."""
    if service.settings.metrics_require_key:
        await require_key(service, authorization, x_api_key)


Authorized = Depends(require_key)


async def _region(
    crop: Annotated[
        str | None,
        Query(
            description="Region of interest `x0,y0,x1,y1` as fractions of the upright image's "
            "width and height (0..1); only that part is classified.",
            examples=["0.25,0,0.75,1"],
        ),
    ] = None,
) -> Region | None:
    # Parsed before the body is read, so a bad box costs no upload (400 problem+json).
    return parse_region(crop) if crop is not None else None


RegionDep = Annotated[Region | None, Depends(_region)]


# The ranking parameters of every classify route.
TopKQuery = Annotated[
    int | None, Query(alias="top_k", ge=1, le=10_000, description="Predictions per image.")
]
ThresholdQuery = Annotated[
    float, Query(ge=0.0, le=1.0, description="Minimum score of a prediction.")
]

ModelQuery = Annotated[
    str | None,
    Query(
        alias="model",
        description="The model to use, by name or alias (GET /v1/models lists them); "
        "default: the default model.",
        max_length=64,
    ),
]
