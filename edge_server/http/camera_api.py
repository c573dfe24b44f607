"""The cameras over HTTP: `GET /v1/cameras` (what each camera is doing) and its latest frame.

Both need an API key when keys are configured: a camera's frame is as private as the camera.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ..cameras.registry import Cameras
from ..cameras.watcher import Watcher
from ..core.errors import NotFound
from . import problems
from .deps import Authorized


async def _cameras(request: Request) -> Cameras:
    cameras: Cameras = request.state.cameras
    return cameras


CamerasDep = Annotated[Cameras, Depends(_cameras)]

MAX_HEIGHT = 4320  # rows: 8K; a larger `h=` is a 422, not a picture made larger

HeightQuery = Annotated[
    int | None,
    Query(alias="h", ge=1, le=MAX_HEIGHT, description="Scale the picture to this many rows."),
]

JPEG_HEADERS = {"Cache-Control": "no-store"}

router = APIRouter(
    dependencies=[Authorized], responses=problems.openapi_responses(401, 422), tags=["cameras"]
)


def watcher_of(cameras: Cameras, name: str) -> Watcher:
    """The camera's watcher, or a 404 that says which cameras there are, or why it has none."""
    config = cameras.config(name)
    if config is None:
        known = ", ".join(cameras.names()) or "none is configured (EDGE_CAMERAS)"
        raise NotFound(f"no camera {name[:64]!r}; cameras: {known}")
    watcher = cameras.watcher(name)
    if watcher is None:
        why = "it is disabled" if not config.enabled else "it did not start (see the log)"
        raise NotFound(f"camera {name!r} has no frames: {why}")
    return watcher


async def latest_jpeg(cameras: Cameras, name: str, *, boxes: bool, height: int | None) -> bytes:
    """The camera's latest frame as JPEG, or a 404 when it has none yet."""
    watcher = watcher_of(cameras, name)
    jpeg = await asyncio.to_thread(watcher.latest_jpeg, boxes=boxes, height=height)
    if jpeg is None:
        raise NotFound(f"camera {name!r} has no frame yet (GET /v1/cameras says its state)")
    return jpeg


@router.get("/v1/cameras", summary="The cameras and what each is doing")
async def list_cameras(cameras: CamerasDep) -> dict[str, Any]:
    """Per camera: its state, frames read, dropped and analysed (and per second), the last
    frame's time, the last error, the URL without its password, motion and counts by label."""
    return {"cameras": [status.as_dict() for status in cameras.status()]}


@router.get(
    "/v1/cameras/{name}/latest.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **problems.openapi_responses(404)},
    summary="A camera's latest frame",
)
async def camera_latest(
    name: str,
    cameras: CamerasDep,
    boxes: Annotated[
        bool, Query(description="Draw the tracked objects' boxes and labels.")
    ] = False,
    height: HeightQuery = None,
) -> Response:
    """The newest frame the camera's feed read, as JPEG; 404 before the first frame."""
    jpeg = await latest_jpeg(cameras, name, boxes=boxes, height=height)
    return Response(jpeg, media_type="image/jpeg", headers=JPEG_HEADERS)
