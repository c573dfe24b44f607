"""The status routes CodeProject.AI serves and Blue Iris and Agent DVR probe before they send
images: `/v1/status/ping`, `/v1/status/version` and `/v1/status/updateavailable`.

Blue Iris reports the AI as unavailable unless the update check answers with all its fields;
this service never updates itself, so its answer is always "this is the current version".
"""

from __future__ import annotations

import re

from fastapi import APIRouter
from pydantic import BaseModel

from ... import __version__

router = APIRouter(prefix="/v1/status", tags=["DeepStack"])


class VersionInfo(BaseModel):
    """CodeProject.AI's version object (its JSON keys are camelCase)."""

    major: int
    minor: int
    patch: int
    preRelease: str | None = None  # noqa: N815  (the wire name)
    securityUpdate: bool = False  # noqa: N815  (the wire name)
    build: int = 0
    file: str | None = None
    releaseNotes: str | None = None  # noqa: N815  (the wire name)


class VersionAnswer(BaseModel):
    """`/v1/status/version` and `/v1/status/ping`."""

    success: bool = True
    message: str
    version: VersionInfo


class UpdateAnswer(BaseModel):
    """`/v1/status/updateavailable`."""

    success: bool = True
    message: str
    latest: VersionInfo
    current: VersionInfo
    version: VersionInfo
    updateAvailable: bool = False  # noqa: N815  (the wire name)


def version_info(text: str = __version__) -> VersionInfo:
    """The package version as CodeProject.AI's version object."""
    numbers = [int(n) for n in re.findall(r"\d+", text)[:3]]
    major, minor, patch = [*numbers, 0, 0, 0][:3]
    return VersionInfo(major=major, minor=minor, patch=patch)


@router.get("/ping", response_model=VersionAnswer, summary="Alive (CodeProject.AI)")
async def ping() -> VersionAnswer:
    """Always answers while the process serves HTTP; newer CodeProject.AI answers the version."""
    return VersionAnswer(message=__version__, version=version_info())


@router.get("/version", response_model=VersionAnswer, summary="Version (CodeProject.AI)")
async def version() -> VersionAnswer:
    """The service's version in CodeProject.AI's shape."""
    return VersionAnswer(message=__version__, version=version_info())


@router.get(
    "/updateavailable", response_model=UpdateAnswer, summary="Update check (CodeProject.AI)"
)
async def update_available() -> UpdateAnswer:
    """Never an update: the service is updated with its package or container, not by itself."""
    current = version_info()
    return UpdateAnswer(
        message="This is the current version", latest=current, current=current, version=current
    )
