"""`GET /`: a one-file page to try the service from any browser on the LAN, a phone included.

Everything it needs is inline (no CDN, no web font), so it works where the LAN has no internet.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()

_PAGE = resources.files(__package__).joinpath("static", "index.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    """The page: choose, drop or paste a photo and see its labels, objects or classes (a
    segmenter's tinted over it with a legend), scores and timing."""
    return HTMLResponse(_PAGE)
