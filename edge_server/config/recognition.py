"""Faces: which detector finds them, where the four model files are, and when a face is a
registered person."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field


class FaceDetector(StrEnum):
    """MediaPipe's two BlazeFace models."""

    short = "short"  # 128x128, faces within ~2 m of the camera (a phone, a laptop)
    full = "full"  # 192x192, faces up to ~5 m (a doorbell, a room)


class FaceSettings(BaseModel):
    """Face detection, description and recognition (docs: Who is at the door)."""

    faces: bool = Field(
        True,
        description="Serve faces (DeepStack's face routes, /v1/faces, /detect?faces=1) when "
        "the four face model files are in face_models_dir; off: never loaded.",
    )
    face_models_dir: Path | None = Field(
        None,
        description="Folder holding the BlazeFace and dlib files (`edge-server models pull "
        "faces`); unset: models_dir.",
    )
    face_detector: FaceDetector = Field(
        FaceDetector.full,
        description="BlazeFace model: short (faces close to the camera) or full (faces up to "
        "~5 m, doorbells and rooms).",
    )
    face_min_score: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        0.5, description="Least detector score of a face (MediaPipe's graphs use 0.5)."
    )
    face_threshold: Annotated[float, Field(gt=0.0, lt=2.0)] = Field(
        0.6,
        description="Descriptor distance under which a face is a registered person (dlib's "
        "published 0.6); recognition answers map this distance to confidence "
        "face_min_confidence, so a stranger scores below it.",
    )
    face_min_confidence: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        0.67,
        description="Confidence the face_threshold distance maps to: DeepStack's default "
        "min_confidence for /v1/vision/face/recognize.",
    )
    face_max_people: Annotated[int, Field(ge=1, le=10_000)] = Field(
        1000, description="Most people registered."
    )
    face_max_photos: Annotated[int, Field(ge=1, le=1000)] = Field(
        100, description="Most photos (descriptors) kept of one person."
    )
    face_max_import_bytes: Annotated[int, Field(ge=1024)] = Field(
        64 * 1024 * 1024, description="Largest people file an import accepts."
    )
