"""Faces as a service: find them, describe them, and name the people registered.

Every surface (DeepStack's face routes, `/v1/faces`, `/detect?faces=1`) calls the one `Faces`
object the service builds when the four face model files are there (`service.faces`). The
detector's invokes go through an `Engine`'s owner threads and dlib's work through workers that
hold a core of the process's budget (`core/cores.py`), so faces never starve /classify.
Biometric data (descriptors, photos) is never logged and never a metrics label.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..config.faces import FaceDetector, FaceSettings
from ..config.settings import Settings
from ..core.errors import BadRequest
from .schemas import ImageInfo, PixelBox, Timing

log = logging.getLogger("edge_server")

UNKNOWN = "unknown"

# The four files `edge-server models pull faces` fetches into the models folder.
DETECTOR_FILES = {
    FaceDetector.short: "face_detection_short_range.tflite",
    FaceDetector.full: "face_detection_full_range_sparse.tflite",
}
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"


class NoFace(BadRequest):
    """A photo to register (or match) has no face in it: detail "no face detected"."""

    def __init__(self, detail: str = "no face detected") -> None:
        super().__init__(detail)


@dataclass(frozen=True)
class FoundFace:
    """One face: where it is, how sure the detector is, and BlazeFace's six keypoints."""

    box: PixelBox  # whole upright image pixels
    score: float  # detector confidence 0-1
    # The right eye, left eye, nose tip, mouth centre, right ear, left ear (the subject's),
    # in whole upright image pixels.
    landmarks: list[tuple[int, int]]


@dataclass(frozen=True)
class RecognisedFace(FoundFace):
    """A face and the registered person it is (or `unknown`)."""

    userid: str  # "unknown" below the threshold
    confidence: float  # calibrated 0-1 (0 for unknown, as DeepStack answers)
    distance: float  # raw descriptor distance to the best person (inf: nobody registered)


@dataclass(frozen=True)
class FaceAnswer:
    """The faces of one photo, largest first."""

    faces: list[FoundFace]
    image: ImageInfo
    timing_ms: Timing


@dataclass(frozen=True)
class RecognitionAnswer:
    """The faces of one photo and who each is, largest first."""

    faces: list[RecognisedFace]
    image: ImageInfo
    timing_ms: Timing


@dataclass(frozen=True)
class Registered:
    """What a registration did: `created` is DeepStack's "face added" (else "face updated")."""

    userid: str
    added: int  # photos (descriptors) added by this registration
    total: int  # the person's descriptors now
    created: bool


def model_files(settings: FaceSettings, models_dir: Path) -> tuple[Path, Path, Path]:
    """The (detector, landmarks, descriptor) files the settings name."""
    folder = settings.face_models_dir or models_dir
    return (
        folder / DETECTOR_FILES[settings.face_detector],
        folder / LANDMARKS_FILE,
        folder / DESCRIPTOR_FILE,
    )


def faces_for(settings: Settings) -> Faces | None:
    """The service's faces when they are on and their four files are there, else None (the
    routes then answer 404 saying how to pull them)."""
    if not settings.faces:
        return None
    files = model_files(settings.section(FaceSettings), settings.models_dir)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        log.info("faces are off: %s not found (edge-server models pull faces)", ", ".join(missing))
        return None
    return Faces(settings.section(FaceSettings), files, data_dir=settings.data_dir)


class Faces:
    """The face pipeline and the people registered; `service.faces`."""

    def __init__(
        self,
        settings: FaceSettings,
        files: tuple[Path, Path, Path],
        *,
        data_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.files = files
        self.data_dir = data_dir  # people are kept in data_dir/faces; None: in memory only

    async def find(self, data: bytes, *, min_confidence: float, started: float) -> FaceAnswer:
        """The faces in a photo scoring at least `min_confidence`, largest first; none is an
        answer with no faces, not an error. `started` is the request's arrival."""
        raise NotImplementedError

    async def recognize(
        self, data: bytes, *, min_confidence: float, started: float
    ) -> RecognitionAnswer:
        """The faces in a photo and who each is; a face whose calibrated confidence is below
        `min_confidence` is `unknown` with confidence 0 (DeepStack's answer)."""
        raise NotImplementedError

    async def register(self, userid: str, images: list[bytes]) -> Registered:
        """Add every photo's face to `userid` (created on first use), durably, before it
        returns. A photo with no face: NoFace and nothing is stored; more than one face: the
        largest."""
        raise NotImplementedError

    async def match(self, first: bytes, second: bytes) -> float:
        """How alike the largest faces of two photos are, 0-1 on the recognition scale (NoFace
        when either has none)."""
        raise NotImplementedError

    def people(self) -> list[str]:
        """The people registered, sorted."""
        raise NotImplementedError

    async def delete(self, userid: str) -> bool:
        """Forget a person and their descriptors (the file is rewritten without them);
        False if there was nobody of that name."""
        raise NotImplementedError

    def export(self) -> bytes:
        """Every person and descriptor, as a file `import_` takes."""
        raise NotImplementedError

    async def import_(self, data: bytes) -> int:
        """Add the people of an exported file (a person already registered gets its
        descriptors added); how many people the file held. BadRequest for a file that is not
        an export."""
        raise NotImplementedError

    async def sub_labels(
        self, data: bytes, boxes: list[PixelBox]
    ) -> list[tuple[str, float] | None]:
        """The recognised person (name, confidence) inside each person box, or None.

        The whole photo is searched first; a box with no face found in it is searched again
        on its own crop, upscaled (BlazeFace misses small faces in a whole frame).
        """
        raise NotImplementedError

    async def close(self) -> None:
        """Stop the detector's threads and dlib's workers."""
