"""Faces: which detector finds them, where the four model files are, and when a face is a
registered person."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from ..core.face_matching import Matching


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
    face_min_score: Annotated[float, Field(gt=0.0, lt=1.0)] | None = Field(
        None,
        description="Least detector score of a face when recognising; unset: the model's "
        "MediaPipe graph's (0.5 short, 0.6 full). DeepStack's face detection route takes its "
        "own min_confidence.",
    )
    face_embedder: Path | None = Field(
        None,
        description="A TFLite model mapping an aligned face (dlib's chip, fitted to the "
        "model's input) to a vector, used in place of dlib's descriptor (a name is looked for "
        "in face_models_dir); its vectors are L2-normalised, so set face_threshold for it. "
        "People registered with one descriptor model are not matched with another's.",
    )
    face_threshold: Annotated[float, Field(gt=0.0, lt=2.0)] = Field(
        0.6,
        description="Descriptor distance under which a face is a registered person (dlib's "
        "published 0.6); recognition answers map this distance to confidence "
        "face_min_confidence, so a stranger scores below it.",
    )
    face_calibration: bool = Field(
        True,
        description="Calibrate the threshold on the people registered: lowered to "
        "face_calibration_margin below the two closest different people when they are nearer "
        "than face_threshold plus the margin (look-alikes), never below a person's widest "
        "pair of photos nor 2/3 of face_threshold; off: face_threshold as set.",
    )
    face_calibration_margin: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.05,
        description="How far below the closest two registered people the calibrated "
        "threshold lies.",
    )
    face_matching: Matching = Field(
        Matching.nearest,
        description="How a face is compared with a person's photos: nearest (the closest "
        "one, the pairwise distance face_threshold is calibrated on) or mean (their average "
        "descriptor).",
    )
    face_min_confidence: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        0.67,
        description="Confidence the face_threshold distance maps to: DeepStack's default "
        "min_confidence for /v1/vision/face/recognize.",
    )
    face_workers: Annotated[int, Field(ge=1, le=16)] | None = Field(
        None,
        description="dlib worker processes describing faces (each 85-110 MB resident, each "
        "taking a core of the budget while it works); unset: 2, or 1 on one CPU or under a "
        "memory limit below 1 GiB (the systemd unit's 512 MB).",
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
