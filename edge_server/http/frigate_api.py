"""The part of Frigate's HTTP API that Double Take reads, so it works against this service as
it does against Frigate.

Double Take (`api/src/util/frigate.util.js`, `api/src/constants/config.js`) checks
`GET /api/version` before each event, then polls `GET /api/<camera>/latest.jpg?h=500` and
`GET /api/events/<id>/snapshot.jpg?h=500&crop=1` (without `crop` when the camera has masks).
`GET /api/events` and `GET /api/events/<id>` answer in Frigate's event shape for tools that
list events. With `update_sub_labels: true`, Double Take names the person it recognised with
`POST /api/events/<id>/sub_label` and the JSON `{"subLabel": "name"}`; Frigate's optional
`subLabelScore` is read too. Errors are problem+json, as everywhere in this service (Frigate
answers its own JSON; Double Take only reads the status).
"""

from __future__ import annotations

import asyncio
import io
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from .. import __version__
from ..cameras.event_store import StoredEvent
from ..cameras.registry import Cameras
from ..core.errors import NotFound
from . import problems
from .camera_api import JPEG_HEADERS, CamerasDep, HeightQuery, latest_jpeg
from .deps import Authorized

router = APIRouter(
    prefix="/api",
    dependencies=[Authorized],
    responses=problems.openapi_responses(401, 422),
    tags=["frigate"],
)

Flag = Annotated[int, Query(ge=0, le=1)]


@router.get("/version", response_class=PlainTextResponse, summary="The version, as Frigate's")
async def version() -> str:
    """This service's version as plain text (Double Take's check that the server is up)."""
    return f"edge-server-{__version__}"


@router.get("/events", summary="Recent camera events, newest first (Frigate's shape)")
async def events(
    cameras: CamerasDep,
    camera: Annotated[str | None, Query(max_length=64)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Events kept in memory (the newest, bounded), filtered by camera and label."""
    found = cameras.events.recent(
        camera=None if camera in (None, "all") else camera,
        label=None if label in (None, "all") else label,
        limit=limit,
    )
    return [frigate_event(stored) for stored in found]


@router.get(
    "/events/{event_id}",
    responses=problems.openapi_responses(404),
    summary="One camera event (Frigate's shape)",
)
async def event(event_id: str, cameras: CamerasDep) -> dict[str, Any]:
    return frigate_event(_stored(cameras, event_id))


@router.get(
    "/events/{event_id}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **problems.openapi_responses(404)},
    summary="An event's snapshot, cropped to the object on request",
)
async def event_snapshot(
    event_id: str,
    cameras: CamerasDep,
    height: HeightQuery = None,
    crop: Flag = 0,
    bbox: Flag = 0,
) -> Response:
    """The frame of the object's best score; `crop=1`: the square around the object, as
    Frigate crops; `bbox=1`: its box drawn; `h`: scaled down to that height."""
    stored = _stored(cameras, event_id)
    jpeg = await asyncio.to_thread(stored.picture, crop=bool(crop), boxes=bool(bbox), height=height)
    if jpeg is None:
        raise NotFound(f"event {event_id!r} has no snapshot yet")
    return Response(jpeg, media_type="image/jpeg", headers=JPEG_HEADERS)


class SubLabel(BaseModel):
    """Frigate's sub label body: the name ("" clears it) and its score if known."""

    model_config = ConfigDict(populate_by_name=True)

    sub_label: str = Field(alias="subLabel", max_length=100)
    score: float | None = Field(None, alias="subLabelScore", gt=0.0, le=1.0)


@router.post(
    "/events/{event_id}/sub_label",
    responses=problems.openapi_responses(404),
    summary="Name an event's object (Frigate's sub label, as Double Take sets it)",
)
async def sub_label(event_id: str, body: SubLabel, cameras: CamerasDep) -> dict[str, Any]:
    """Sets the event's `sub_label` to `[name, score]` and publishes an `update` (MQTT and
    webhooks); a live object keeps the name in its later events. Answers as Frigate does."""
    _stored(cameras, event_id)
    name = body.sub_label or None
    cameras.relabel(event_id, name, body.score if name else None)
    return {"success": True, "message": f"Event {event_id} sub label set to {name}"}


@router.get(
    "/{camera}/latest.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **problems.openapi_responses(404)},
    summary="A camera's latest frame (Frigate's route)",
)
async def latest(
    camera: str, cameras: CamerasDep, height: HeightQuery = None, bbox: Flag = 0
) -> Response:
    jpeg = await latest_jpeg(cameras, camera, boxes=bool(bbox), height=height)
    return Response(jpeg, media_type="image/jpeg", headers=JPEG_HEADERS)


def _stored(cameras: Cameras, event_id: str) -> StoredEvent:
    stored = cameras.events.get(event_id)
    if stored is None:
        raise NotFound(f"no event {event_id[:80]!r} (events are kept in memory, the newest only)")
    return stored


def frigate_event(stored: StoredEvent) -> dict[str, Any]:
    """A stored event as an entry of Frigate's `GET /api/events`: the sub label as its name,
    `data.box` and `data.region` as fractions `[x, y, width, height]` of the frame (Frigate's
    database form; the MQTT events keep pixels)."""
    after = stored.after
    sub_label = after.get("sub_label")
    size = _frame_size(stored)
    return {
        "id": stored.id,
        "camera": stored.camera,
        "label": stored.label,
        "sub_label": sub_label[0] if isinstance(sub_label, list | tuple) else sub_label,
        "top_score": after.get("top_score"),
        "start_time": after.get("start_time"),
        "end_time": after.get("end_time"),
        "false_positive": after.get("false_positive", False),
        "zones": after.get("entered_zones", []),
        "thumbnail": None,
        "has_clip": False,
        "has_snapshot": after.get("has_snapshot", False),
        "retain_indefinitely": False,
        "plus_id": None,
        "data": {
            "box": _relative(after.get("box"), size),
            "region": _relative(after.get("region"), size),
            "score": after.get("score"),
            "top_score": after.get("top_score"),
            "attributes": [],
            "type": "object",
        },
    }


def _frame_size(stored: StoredEvent) -> tuple[int, int] | None:
    """The snapshot's width and height from its JPEG header (no decode), if it has one."""
    data = stored.frame or stored.snapshot
    if data is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as picture:
            return picture.width, picture.height
    except OSError:
        return None


def _relative(box: Any, size: tuple[int, int] | None) -> list[float] | None:
    """A pixel box (x0, y0, x1, y1) as Frigate's relative [x, y, width, height]."""
    if not isinstance(box, list) or len(box) != 4 or size is None:
        return None
    width, height = size
    x0, y0, x1, y1 = box
    return [
        round(x0 / width, 4),
        round(y0 / height, 4),
        round((x1 - x0) / width, 4),
        round((y1 - y0) / height, 4),
    ]
