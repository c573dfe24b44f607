"""DeepStack's face API, as its clients call it (Double Take, Home Assistant's DeepStack face
component through deepstack-python, Blue Iris, Agent DVR).

- `POST /v1/vision/face` (and `/v1/vision/face/`, DeepStack's own spelling): the faces found
  (`confidence` and the box in pixels of the image sent); `min_confidence` defaults to 0.55.
- `POST /v1/vision/face/recognize`: each face with the registered `userid` it is, or
  `unknown` with confidence 0 below `min_confidence` (default 0.67, DeepStack's; a lower
  value does not loosen EDGE_FACE_THRESHOLD); a photo with no face is a success with no
  predictions.
- `POST /v1/vision/face/register`: `userid` and any number of files under any field names
  (`image`, `image1`...). Every photo is *added* to the person (DeepStack kept only the mean
  of the last request's photos); `face added` the first time, `face updated` after.
- `POST /v1/vision/face/list`: `{"success": true, "faces": [...]}`; `/delete` (`userid`):
  `{"success": true}`, whether or not the person was registered, as DeepStack answers.
- `POST /v1/vision/face/match`: two photos' `similarity` (0..1).

Errors are DeepStack's strings with its statuses (`userid not specified`, `No valid image
file found`, `no face detected`, `expected two image files, only one found`, `only two images
allowed`: 400), in its `{success: false, error, code}` shape; each refusal is counted in
`edge_faces_refused` by reason. Registering and deleting need the API key like every route
when keys are configured (DeepStack's `api_key` form field works); the service's own
`/v1/faces` routes are the ones that need a key configured at all to change anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ...core.errors import BadRequest
from ...serving.faces import Faces, FoundFace, RecognisedFace
from ...serving.schemas import Timing
from ...serving.service import Service
from ..deps import ServiceDep, counted_no_face, require_faces
from ..dialect import error_dialect
from ..exchange import exchange
from ..upload import BINARY, TooManyFiles, form_content, openapi_body
from .forms import FaceForm, read_face_form, read_fields
from .vision import VisionError, process_ms, render_error

# DeepStack's server defaults (server.go: facedetection, facerecognition).
DETECTION_MIN_CONFIDENCE = 0.55
RECOGNITION_MIN_CONFIDENCE = 0.67
UNKNOWN = "unknown"
T = TypeVar("T")


class FacePrediction(BaseModel):
    """One face found, in DeepStack's shape: pixels of the image as sent (EXIF applied)."""

    confidence: float = Field(description="The detector's score (0..1).")
    x_min: int
    y_min: int
    x_max: int
    y_max: int


class RecognitionPrediction(FacePrediction):
    """One face and who it is."""

    confidence: float = Field(
        description=f"How sure (0..1); 0 when the face is '{UNKNOWN}', as DeepStack answers."
    )
    userid: str = Field(description=f"The registered person, or '{UNKNOWN}'.")


class _Timed(BaseModel):
    success: bool = True
    count: int
    inferenceMs: int = Field(description="Time running the models, in whole milliseconds.")  # noqa: N815  (the wire name)
    processMs: int = Field(  # noqa: N815  (the wire name)
        description="Time decoding, finding, describing and comparing, in whole milliseconds."
    )
    analysisRoundTripMs: int = Field(  # noqa: N815  (the wire name)
        description="From the request's arrival to the answer, in whole milliseconds."
    )


class FaceDetectionAnswer(_Timed):
    """`/v1/vision/face`: the faces found, best first."""

    predictions: list[FacePrediction]


class RecognitionAnswer(_Timed):
    """`/v1/vision/face/recognize`: each face found and who it is."""

    predictions: list[RecognitionPrediction]


class RegisterAnswer(BaseModel):
    """`/v1/vision/face/register`."""

    success: bool = True
    message: str = Field(description="'face added' (a new person) or 'face updated'.")
    userid: str
    added: int = Field(description="Photos added by this request.")
    total: int = Field(description="Photos the person now has.")


class ListAnswer(BaseModel):
    """`/v1/vision/face/list`: the registered people."""

    success: bool = True
    faces: list[str]


class DeleteAnswer(BaseModel):
    """`/v1/vision/face/delete`."""

    success: bool = True


class MatchAnswer(BaseModel):
    """`/v1/vision/face/match`: how alike the faces of two photos are."""

    success: bool = True
    similarity: float = Field(description="0..1; the same person scores high.")


router = APIRouter(
    prefix="/v1/vision/face", tags=["DeepStack"], route_class=error_dialect(render_error)
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": VisionError} for status in (400, 401, 404, 408, 413, 415, 503, 504)
}
_KEY = {"api_key": {"type": "string"}}
_IMAGE_BODY = openapi_body(
    form_content(
        {"image": BINARY, "min_confidence": {"type": "number", "minimum": 0, "maximum": 1}, **_KEY},
        ["image"],
    )
)
_REGISTER_BODY = openapi_body(
    form_content(
        {
            "userid": {"type": "string", "description": "The person's name."},
            "image": {
                "type": "array",
                "items": BINARY,
                "description": "One or more photos of the person; any field names will do.",
            },
            **_KEY,
        },
        ["userid", "image"],
    )
)
_MATCH_BODY = openapi_body(
    form_content({"image1": BINARY, "image2": BINARY, **_KEY}, ["image1", "image2"])
)


def _faces(service: Service) -> Faces:
    """The face service (503 while the service starts, 404 when faces are not served)."""
    return require_faces(service)


def _refused(service: Service, reason: str, error: str) -> BadRequest:
    service.metrics.faces_refused.labels(reason).inc()
    return BadRequest(error)


async def _one_image_exchange(
    request: Request,
    service: Service,
    answer: Callable[[bytes, float | None, float], Awaitable[T]],
) -> T:
    """`answer(image, min_confidence, started)` for a form of one image and its optional
    `min_confidence`, through the exchange; `started` is the request's arrival."""
    started = request.state.request_started

    async def one(form: FaceForm) -> T:
        return await answer(_one_image(service, form), form.min_confidence, started)

    return await exchange(service, request, lambda: _read(request, service, 4), one)


def _one_image(service: Service, form: FaceForm) -> bytes:
    if not form.images:
        raise _refused(service, "no_image", "No valid image file found")
    if len(form.images) > 1:
        raise _refused(
            service, "image_count", f"the form holds {len(form.images)} files; send one image"
        )
    return form.images[0]


@router.post(
    "",
    response_model=FaceDetectionAnswer,
    responses=_ERRORS,
    openapi_extra=_IMAGE_BODY,
    summary="Find faces (DeepStack face detection)",
)
@router.post("/", response_model=FaceDetectionAnswer, include_in_schema=False)
async def detect(request: Request, service: ServiceDep) -> FaceDetectionAnswer:
    """The faces in the multipart field `image`, with their detector scores."""
    faces = _faces(service)

    async def find(image: bytes, asked: float | None, started: float) -> FaceDetectionAnswer:
        floor = DETECTION_MIN_CONFIDENCE if asked is None else asked
        answer = await faces.find(image, min_confidence=floor, started=started)
        predictions = [_box(FacePrediction, face, face.score) for face in answer.faces]
        return FaceDetectionAnswer(
            predictions=predictions, **_timed(len(predictions), answer.timing_ms)
        )

    return await _one_image_exchange(request, service, find)


@router.post(
    "/recognize",
    response_model=RecognitionAnswer,
    responses=_ERRORS,
    openapi_extra=_IMAGE_BODY,
    summary="Recognise faces (DeepStack face recognition)",
)
async def recognize(request: Request, service: ServiceDep) -> RecognitionAnswer:
    """Who each face in the multipart field `image` is, or `unknown`."""
    faces = _faces(service)

    async def recognise(image: bytes, asked: float | None, started: float) -> RecognitionAnswer:
        # A client's min_confidence may only tighten the service's threshold: deepstack-python
        # (Home Assistant's component) always sends 0.45, which would name every stranger as
        # the nearest person (their distance of 0.65-1.0 maps to 0.45-0.64). Looser matching
        # is EDGE_FACE_THRESHOLD's to set.
        floor = max(
            RECOGNITION_MIN_CONFIDENCE if asked is None else asked,
            faces.settings.face_min_confidence,
        )
        answer = await faces.recognize(image, min_confidence=floor, started=started)
        predictions = [_recognised(face, floor) for face in answer.faces]
        return RecognitionAnswer(
            predictions=predictions, **_timed(len(predictions), answer.timing_ms)
        )

    return await _one_image_exchange(request, service, recognise)


@router.post(
    "/register",
    response_model=RegisterAnswer,
    responses=_ERRORS,
    openapi_extra=_REGISTER_BODY,
    summary="Register a person from photos (DeepStack face registration)",
)
async def register(request: Request, service: ServiceDep) -> RegisterAnswer:
    """Add every photo of the form to the person `userid` (created on first use)."""
    faces = _faces(service)

    async def add(form: FaceForm) -> RegisterAnswer:
        # DeepStack's order: the files first (CheckMultiImage), then the userid.
        if not form.images:
            raise _refused(service, "no_image", "No valid image file found")
        if form.userid is None:
            raise _refused(service, "no_userid", "userid not specified")
        with counted_no_face(service):
            registered = await faces.register(form.userid, form.images)
        return RegisterAnswer(
            message="face added" if registered.created else "face updated",
            userid=registered.userid,
            added=registered.added,
            total=registered.total,
        )

    async def read() -> FaceForm:
        try:
            return await _read(request, service, service.settings.max_batch_images)
        except TooManyFiles as exc:
            # DeepStack answers a form it refuses with 400 (and its clients read any refusal
            # alike); a 413 would say the body was too big, which it need not be.
            raise _refused(service, "image_count", exc.detail) from None

    return await exchange(service, request, read, add)


@router.post(
    "/list",
    response_model=ListAnswer,
    responses=_ERRORS,
    summary="The registered people (DeepStack face list)",
)
async def listing(request: Request, service: ServiceDep) -> ListAnswer:
    """Every registered person's name."""
    faces = _faces(service)
    await read_fields(request, service)
    return ListAnswer(faces=faces.people())


@router.post(
    "/delete",
    response_model=DeleteAnswer,
    responses=_ERRORS,
    summary="Forget a person (DeepStack face delete)",
)
async def delete(request: Request, service: ServiceDep) -> DeleteAnswer:
    """Delete the person `userid` and their photos' descriptors from disk; a success also
    when nobody had that name, as DeepStack answers."""
    faces = _faces(service)
    userid = (await read_fields(request, service)).get("userid", "").strip()
    if not userid:
        raise _refused(service, "no_userid", "userid not specified")
    await faces.delete(userid)
    return DeleteAnswer()


@router.post(
    "/match",
    response_model=MatchAnswer,
    responses=_ERRORS,
    openapi_extra=_MATCH_BODY,
    summary="How alike the faces of two photos are (DeepStack face match)",
)
async def match(request: Request, service: ServiceDep) -> MatchAnswer:
    """The similarity of the largest face of each of the two photos."""
    faces = _faces(service)

    async def compare(form: FaceForm) -> MatchAnswer:
        count = len(form.images)
        if count == 0:
            raise _refused(service, "no_image", "No valid image file found")
        if count == 1:
            raise _refused(service, "image_count", "expected two image files, only one found")
        first, second = form.images
        with counted_no_face(service):
            return MatchAnswer(similarity=await faces.match(first, second))

    # Up to the batch limit is read so that a third file is DeepStack's "only two images
    # allowed", not a 413.
    return await exchange(
        service,
        request,
        lambda: _read(request, service, service.settings.max_batch_images, most=2),
        compare,
    )


async def _read(request: Request, service: Service, files: int, *, most: int = 0) -> FaceForm:
    """The form with at most `files` files (`most`: more than that is DeepStack's 400)."""
    form = await read_face_form(request, service, max_files=files)
    if most and len(form.images) > most:
        raise _refused(service, "image_count", "only two images allowed")
    return form


P = TypeVar("P", bound=FacePrediction)


def _box(kind: type[P], face: FoundFace, confidence: float, **extra: Any) -> P:
    box = face.box
    return kind(
        confidence=confidence,
        x_min=box.x_min,
        y_min=box.y_min,
        x_max=box.x_max,
        y_max=box.y_max,
        **extra,
    )


def _recognised(face: RecognisedFace, floor: float) -> RecognitionPrediction:
    """DeepStack's answer for a face: its person, or unknown with confidence 0 below the
    client's least confidence."""
    known = face.userid != UNKNOWN and face.confidence >= floor
    return _box(
        RecognitionPrediction,
        face,
        face.confidence if known else 0.0,
        userid=face.userid if known else UNKNOWN,
    )


def _timed(count: int, timing: Timing) -> dict[str, int]:
    return {
        "count": count,
        "inferenceMs": round(timing.inference),
        "processMs": round(process_ms(timing)),
        "analysisRoundTripMs": round(timing.total),
    }
