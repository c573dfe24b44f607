"""FastAPI dependencies shared by the routers: the service, and query parameters they share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from .region import Region, parse_region
from .service import Service


def _service(request: Request) -> Service:
    service: Service = request.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]


def _region(
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
