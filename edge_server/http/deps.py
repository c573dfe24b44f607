"""FastAPI dependencies shared by the routers: the service, API keys, shared query parameters."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from ..core.errors import BadRequest
from ..core.imaging import ResizeMode
from ..core.region import Region, parse_region
from ..serving.faces import Faces, NoFace
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


def require_faces(service: Service) -> Faces:
    """The face service: 503 while the service starts or stops, 404 saying how to get the
    models when faces are not served."""
    service.ready_model()
    return service.require_faces()


@contextmanager
def counted_no_face(service: Service) -> Iterator[None]:
    """A photo with no face (NoFace) counted in edge_faces_refused, then answered."""
    try:
        yield
    except NoFace:
        service.metrics.faces_refused.labels("no_face").inc()
        raise


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


async def _resize(
    resize: Annotated[
        str | None,
        Query(
            description="How the image is fitted to the model's square input: squash, "
            "center-crop or letterbox; default: the model's own fit (GET /v1/models). The "
            "answer's `image.resize` says which was used.",
            examples=["squash"],
            max_length=64,
        ),
    ] = None,
) -> ResizeMode | None:
    # Parsed here rather than typed, so a bad value is a 400 naming the choices, before the
    # body is read.
    return parse_resize(resize) if resize is not None else None


ResizeDep = Annotated[ResizeMode | None, Depends(_resize)]


def parse_resize(text: str) -> ResizeMode:
    """A resize mode by name, or a 400 naming the modes."""
    try:
        return ResizeMode(text.strip())
    except ValueError:
        choices = ", ".join(mode.value for mode in ResizeMode)
        raise BadRequest(f"resize {text[:64]!r} is not one of {choices}") from None


@dataclass(frozen=True)
class DetectionOptions:
    """What a detection request keeps: the least score, how many, and which labels."""

    min_score: float
    max_results: int
    labels: frozenset[str] | None


async def _detection_options(
    service: ServiceDep,
    min_score: Annotated[
        str | None,
        Query(
            description="Least score of an object, 0..1; default EDGE_MIN_SCORE (0.4).",
            examples=["0.5"],
        ),
    ] = None,
    max_results: Annotated[
        str | None,
        Query(
            description="Most objects in the answer, 1..100; default EDGE_MAX_DETECTIONS (20).",
            examples=["5"],
        ),
    ] = None,
    labels: Annotated[
        str | None,
        Query(
            description="Only objects with these labels, comma-separated.",
            examples=["person,car"],
            max_length=2000,
        ),
    ] = None,
) -> DetectionOptions:
    # Parsed here rather than typed, so a bad value is a 400 that says what to send.
    settings = service.settings
    return DetectionOptions(
        min_score=settings.min_score if min_score is None else parse_score(min_score),
        max_results=settings.max_detections if max_results is None else parse_count(max_results),
        labels=parse_labels_filter(labels),
    )


DetectionDep = Annotated[DetectionOptions, Depends(_detection_options)]


def parse_score(text: str) -> float:
    """min_score as a number in 0..1, or a 400."""
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"min_score {text!r} is not a number; use 0..1") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise BadRequest(f"min_score {text!r} is outside 0..1")
    return value


def parse_count(text: str) -> int:
    """max_results as a whole number in 1..100, or a 400."""
    # ASCII digits only: str.isdigit() takes '²', which int() refuses.
    if not re.fullmatch(r"\s*[0-9]{1,3}\s*", text) or not 1 <= int(text) <= 100:
        raise BadRequest(f"max_results {text[:20]!r} is not a whole number in 1..100")
    return int(text)


def parse_labels_filter(text: str | None) -> frozenset[str] | None:
    """The labels to keep (None: all); an empty list is a 400."""
    if text is None:
        return None
    wanted = frozenset(part.strip() for part in text.split(",") if part.strip())
    if not wanted:
        raise BadRequest("labels is empty; name one or more labels, e.g. labels=person,car")
    return wanted
