"""FastAPI dependencies shared by every router: the service the lifespan put in request state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .service import Service


def _service(request: Request) -> Service:
    service: Service = request.state.service
    return service


ServiceDep = Annotated[Service, Depends(_service)]
