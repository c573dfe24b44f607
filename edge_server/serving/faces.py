"""Faces as a service: find them, describe them, and name the people registered.

Every surface (DeepStack's face routes, `/v1/faces`, `/detect?faces=1`) calls the one `Faces`
object the service builds when the four face model files are there (`service.faces`). The
detector's invokes go through an `Engine`'s owner threads and dlib's work through workers that
hold a core of the process's budget (`core/cores.py`), so faces never starve /classify.
Biometric data (descriptors, photos) is never logged and never a metrics label.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from ..config.recognition import FaceDetector, FaceSettings
from ..config.settings import Settings
from ..core import blazeface, face_matching, imaging
from ..core.cores import shared_cores
from ..core.engine import Engine, Inference, LoadOptions
from ..core.errors import BadRequest, NotReady, StartupError
from ..core.face_description import DIMENSIONS, Describer, crop_for
from ..core.face_embedding import DLIB_MODEL, Embedder
from ..core.face_matching import Calibration
from ..core.memory import Charge, MemoryBudget, memory_limit
from ..core.threads import available_cpus
from .metrics import Metrics
from .people import People, check_userid
from .schemas import ImageInfo, PeopleList, PixelBox, Timing

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


# A photo is decoded at least this large on its short side (JPEGs at a reduced scale): the
# detector sees 192 pixels, but dlib's landmarks and chip want the face's own pixels.
DECODE_SIDE = 1024
# A person box searched on its own is upscaled to at least this side (BlazeFace finds faces
# down to ~16 px in a person crop that it misses in the whole frame).
PERSON_SIDE = 384
# Under this memory limit (the process's cgroup, else the RAM) one dlib worker is started.
WORKER_ROOM = 1024 * 2**20


def faces_for(
    settings: Settings,
    metrics: Metrics | None = None,
    memory: MemoryBudget | None = None,
    decoders: Executor | None = None,
) -> Faces | None:
    """The service's faces when they are on and their four files are there, else None (the
    routes then answer 404 saying how to pull them)."""
    if not settings.faces:
        return None
    section = settings.section(FaceSettings)
    files = model_files(section, settings.models_dir)
    needed = files if section.face_embedder is None else files[:2]  # no dlib descriptor
    missing = [str(f) for f in needed if not f.is_file()]
    if missing:
        log.info("faces are off: %s not found (edge-server models pull faces)", ", ".join(missing))
        return None
    if importlib.util.find_spec("dlib") is None:
        # A board without dlib-bin's wheels serves everything else.
        log.warning("faces are off: dlib is not installed (pip install 'edge-server[faces]')")
        return None
    runtime = LoadOptions(runtime=settings.runtime, num_threads=settings.num_threads)
    path = embedder_file(section, settings.models_dir)
    # Loaded now, so an embedder that is not one stops the start (exit 2) before the port opens.
    embedder = Embedder.load(path, runtime, decoders=decoders) if path is not None else None
    return Faces(
        section,
        files,
        workers=settings.face_workers or default_workers(memory_limit(settings.sysfs_root)),
        data_dir=settings.data_dir,
        metrics=metrics,
        memory=memory,
        decoders=decoders,
        max_pixels=settings.max_image_pixels,
        min_side=settings.min_image_side,
        runtime=runtime,
        embedder=embedder,
    )


def embedder_file(settings: FaceSettings, models_dir: Path) -> Path | None:
    """The TFLite face embedder the settings name (a bare name: in the face models folder)."""
    path = settings.face_embedder
    if path is None or path.is_absolute() or path.is_file():
        return path
    return (settings.face_models_dir or models_dir) / path


def default_workers(limit: int | None, cpus: int | None = None) -> int:
    """dlib workers when EDGE_FACE_WORKERS is unset: two (one on one CPU), and one under a
    memory limit below WORKER_ROOM (a worker holds 85-110 MB beside a ~170 MB server: two
    would leave a 512 MB unit little for decoding photos)."""
    cpus = available_cpus() if cpus is None else cpus
    if limit is not None and limit < WORKER_ROOM:
        return 1
    return min(2, max(1, cpus))


@dataclass(frozen=True)
class _Seen:
    """One photo decoded and searched: its faces as fractions of the upright image."""

    picture: Image.Image  # the decoded picture (a reduced-scale JPEG decode is smaller)
    facts: imaging.ImageFacts
    found: list[blazeface.Face]
    decode_ms: float
    preprocess_ms: float
    inference: Inference


class Faces:
    """The face pipeline and the people registered; `service.faces`."""

    def __init__(
        self,
        settings: FaceSettings,
        files: tuple[Path, Path, Path],
        *,
        data_dir: Path | None = None,
        metrics: Metrics | None = None,
        memory: MemoryBudget | None = None,
        decoders: Executor | None = None,
        max_pixels: int = 40_000_000,
        min_side: int = 1,
        runtime: LoadOptions | None = None,
        workers: int | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings
        self.files = files
        self.data_dir = data_dir  # people are kept in data_dir/faces; None: in memory only
        self.metrics = metrics
        self.memory = memory
        self.max_pixels = max_pixels
        self.min_side = min_side
        self.calibration = Calibration(settings.face_threshold, settings.face_min_confidence)
        self.matching = settings.face_matching
        self.people_store = People(
            data_dir / "faces" if data_dir is not None else None,
            max_people=settings.face_max_people,
            max_photos=settings.face_max_photos,
            # The store matches only the people the descriptor model in use described.
            model=DLIB_MODEL if embedder is None else embedder.model,
            dimensions=DIMENSIONS if embedder is None else embedder.dimensions,
        )
        self._decoders = decoders
        self._forget_listeners: list[Callable[[str], None]] = []
        self._runtime = runtime or LoadOptions()
        self._workers = workers or settings.face_workers or default_workers(None)
        self._engine: Engine | None = None
        self._model: blazeface.BlazeFace | None = None
        self._describer: Describer | None = None
        self._embedder = embedder  # a TFLite embedder in place of dlib's descriptor
        self._starting: asyncio.Lock | None = None
        self._calibrating = threading.Lock()

    # --- start and stop ---------------------------------------------------------------------

    async def start(self) -> None:
        """Load the detector, start dlib's workers and read the people (once)."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._engine is not None:
                return
            started = time.perf_counter()
            detector, landmarks, descriptor = self.files
            options = LoadOptions(
                runtime=self._runtime.runtime,
                num_threads=self._runtime.num_threads,
                resize=imaging.ResizeMode.letterbox,
            )
            engine = await asyncio.to_thread(
                Engine.load, detector, options, decoders=self._decoders
            )
            model = blazeface.model_for(
                [{"shape": o.shape, "dtype": o.dtype} for o in engine.info.outputs]
            )
            if model is None:
                engine.close()
                raise StartupError(
                    f"{detector} is not a BlazeFace face detector",
                    fix="use face_detection_short_range.tflite or "
                    "face_detection_full_range_sparse.tflite",
                )
            try:
                import dlib  # noqa: F401  # checked here; the workers use it
            except ImportError as exc:
                engine.close()
                raise StartupError(
                    f"faces need dlib, which cannot be imported: {exc}",
                    fix="pip install 'edge-server[faces]' (dlib-bin)",
                ) from exc
            describer = Describer(
                landmarks, None if self._embedder else descriptor, workers=self._workers
            )
            await asyncio.to_thread(self.people_store.open)
            await asyncio.to_thread(self._calibrate)
            if self.people_store.people:
                # Someone is registered, so recognitions are coming: start dlib's workers now
                # (about a second) rather than on the first. With nobody registered they start
                # on first use, and a server that never sees a face never runs them.
                await asyncio.to_thread(describer.warm)
            if self.metrics is not None:
                self.metrics.set_model(engine)
            engine.memory = self.memory
            self._engine, self._model, self._describer = engine, model, describer
            log.info(
                "faces: %s, %s and dlib (%d workers) ready in %.0f ms",
                engine.info.name,
                self.people_store.model,
                self._workers,
                (time.perf_counter() - started) * 1000,
            )

    async def close(self) -> None:
        """Stop the detector's threads and dlib's workers."""
        engine, describer, embedder = self._engine, self._describer, self._embedder
        self._engine = self._describer = self._embedder = None
        if engine is not None:
            await asyncio.to_thread(engine.close)
        if embedder is not None:
            await asyncio.to_thread(embedder.close)
        if describer is not None:
            await asyncio.to_thread(describer.close)
        self.people_store.close()

    async def _ready(self) -> tuple[Engine, blazeface.BlazeFace, Describer]:
        if self._engine is None:
            try:
                await self.start()
            except StartupError as exc:
                raise NotReady(f"faces cannot be served: {exc.problem}. Fix: {exc.fix}") from exc
        assert self._engine is not None and self._model is not None
        assert self._describer is not None
        return self._engine, self._model, self._describer

    # --- the answers --------------------------------------------------------------------------

    async def find(self, data: bytes, *, min_confidence: float, started: float) -> FaceAnswer:
        """The faces in a photo scoring at least `min_confidence`, largest first; none is an
        answer with no faces, not an error. `started` is the request's arrival."""
        seen = await self._search(data, min_confidence)
        post = time.perf_counter()
        found = [self._found(face, seen.facts) for face in seen.found]
        self._count("found", len(found))
        return FaceAnswer(found, _image(seen.facts), self._timing(seen, 0.0, post, started))

    async def recognize(
        self, data: bytes, *, min_confidence: float, started: float
    ) -> RecognitionAnswer:
        """The faces in a photo and who each is; a face whose calibrated confidence is below
        `min_confidence` is `unknown` with confidence 0 (DeepStack's answer)."""
        seen = await self._search(data)
        described = time.perf_counter()
        people = self.people_store.vectors()  # who is registered as this request sees it
        if seen.found and people:
            vectors = await self._describe(seen.picture, seen.found)
            matches = face_matching.nearest(vectors, people, self.matching)
        else:  # nobody registered: every face is unknown, not described (as DeepStack)
            matches = [face_matching.Match("", math.inf)] * len(seen.found)
        describe_ms = (time.perf_counter() - described) * 1000
        post = time.perf_counter()
        recognised = []
        for face, match in zip(seen.found, matches, strict=True):
            base = self._found(face, seen.facts)
            confidence = self.calibration.confidence(match.distance)
            known = bool(match.name) and confidence >= min_confidence
            recognised.append(
                RecognisedFace(
                    box=base.box,
                    score=base.score,
                    landmarks=base.landmarks,
                    userid=match.name if known else UNKNOWN,
                    confidence=round(confidence, 6) if known else 0.0,
                    distance=round(match.distance, 6),
                )
            )
        self._count("recognised", sum(f.userid != UNKNOWN for f in recognised))
        self._count("unknown", sum(f.userid == UNKNOWN for f in recognised))
        timing = self._timing(seen, describe_ms, post, started)
        return RecognitionAnswer(recognised, _image(seen.facts), timing)

    async def register(self, userid: str, images: list[bytes]) -> Registered:
        """Add every photo's face to `userid` (created on first use), durably, before it
        returns. A photo with no face: NoFace and nothing is stored; more than one face: the
        largest."""
        name = check_userid(userid)
        if not images:
            raise BadRequest("no photo to register; send one or more image fields")
        self.people_store.check_room(name, len(images))
        vectors = await asyncio.gather(*(self._largest(data) for data in images))
        person, created = await asyncio.shield(self.people_store.add(name, np.stack(vectors)))
        await asyncio.to_thread(self._calibrate)
        self._count("registered", len(vectors))
        return Registered(name, len(vectors), len(person.vectors), created)

    async def match(self, first: bytes, second: bytes) -> float:
        """How alike the largest faces of two photos are, 0-1 on the recognition scale (NoFace
        when either has none)."""
        a, b = await asyncio.gather(self._largest(first), self._largest(second))
        distance = float(face_matching.distances(a[None], b[None])[0, 0])
        return round(self.calibration.confidence(distance), 6)

    def people(self) -> list[str]:
        """The people registered, sorted."""
        return self.people_store.names()

    async def delete(self, userid: str) -> bool:
        """Forget a person and their descriptors (their file is removed); False if there was
        nobody of that name."""
        name = userid.strip()
        deleted = await asyncio.shield(self.people_store.delete(name))
        await asyncio.to_thread(self._calibrate)
        if deleted:
            for listener in self._forget_listeners:
                listener(name)
        return deleted

    def add_forget_listener(self, listener: Callable[[str], None]) -> None:
        """Call `listener(name)` (on the event loop) once a person is deleted, so what a
        surface keeps of their name (a retained MQTT message) goes with them."""
        self._forget_listeners.append(listener)

    def export(self) -> bytes:
        """Every person and descriptor, as a file `import_` takes."""
        return self.people_store.export()

    async def import_(self, data: bytes) -> int:
        """Add the people of an exported file (a person already registered gets its
        descriptors added); how many people the file held. BadRequest for a file that is not
        an export."""
        limit = self.settings.face_max_import_bytes
        count = await asyncio.shield(self.people_store.import_(data, limit))
        await asyncio.to_thread(self._calibrate)
        return count

    async def sub_labels(
        self, data: bytes, boxes: list[PixelBox]
    ) -> list[tuple[str, float] | None]:
        """The recognised person (name, confidence) inside each person box, or None.

        The whole photo is searched first; a box with no face found in it is searched again
        on its own crop, upscaled (BlazeFace misses small faces in a whole frame). A face is
        a box's when its centre lies in the box; the box takes its largest one.
        """
        people = self.people_store.vectors()
        if not boxes or not people:
            return [None] * len(boxes)
        return await self._named(await self._search(data), boxes, people)

    async def sub_labels_picture(
        self, rgb: npt.NDArray[np.uint8], boxes: list[PixelBox]
    ) -> list[tuple[str, float] | None]:
        """`sub_labels` on a picture already decoded (a camera frame, (H, W, 3) RGB, boxes in
        its pixels): no JPEG made and read again, the same detector owners, core budget and
        dlib workers."""
        people = self.people_store.vectors()
        if not boxes or not people:
            return [None] * len(boxes)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise BadRequest(f"a picture is an (H, W, 3) uint8 array, not {rgb.shape} {rgb.dtype}")
        return await self._named(await self._search_picture(rgb), boxes, people)

    def anyone(self) -> bool:
        """Whether anybody is registered (nobody: nothing can be recognised, so callers that
        only name people skip the work)."""
        return bool(self.people_store.people)

    async def _named(
        self, seen: _Seen, boxes: list[PixelBox], people: dict[str, npt.NDArray[np.float32]]
    ) -> list[tuple[str, float] | None]:
        """Who is in each person box of a searched picture (the body of `sub_labels`)."""
        engine, model, _ = await self._ready()
        width, height = seen.facts.width, seen.facts.height
        chosen: list[blazeface.Face | None] = []
        for box in boxes:
            inside = [
                f
                for f in seen.found
                if box.x_min <= (f.x_min + f.x_max) / 2 * width <= box.x_max
                and box.y_min <= (f.y_min + f.y_max) / 2 * height <= box.y_max
            ]
            chosen.append(max(inside, key=lambda f: f.area) if inside else None)
        for n, box in enumerate(boxes):
            if chosen[n] is None:
                chosen[n] = await self._in_box(engine, model, seen, box)
        picked = [f for f in chosen if f is not None]
        if not picked:
            return [None] * len(boxes)
        vectors = await self._describe(seen.picture, picked)
        matches = iter(face_matching.nearest(vectors, people, self.matching))
        labels: list[tuple[str, float] | None] = []
        for face in chosen:
            if face is None:
                labels.append(None)
                continue
            match = next(matches)
            confidence = self.calibration.confidence(match.distance)
            known = bool(match.name) and confidence >= self.settings.face_min_confidence
            labels.append((match.name, round(confidence, 6)) if known else None)
        return labels

    def listing(self) -> PeopleList:
        """`GET /v1/faces`: the people, and the threshold in effect for them."""
        return PeopleList(
            people=self.people(),
            threshold=self.settings.face_threshold,
            effective_threshold=round(self.calibration.threshold, 4),
            calibrated=self.settings.face_calibration,
            descriptor=self.people_store.model,
        )

    def status(self) -> dict[str, object]:
        """What /healthz says of faces: the people and the threshold in effect (no names)."""
        return {
            "people": len(self.people_store.people),
            "threshold": self.settings.face_threshold,
            "effective_threshold": round(self.calibration.threshold, 4),
            "calibrated": self.settings.face_calibration,
            "descriptor": self.people_store.model,
        }

    def _calibrate(self) -> None:
        """The threshold and confidence scale for the people registered now (after each
        change, on a thread: up to ~40 ms for a large gallery). One at a time, each reading the
        people as they are when it runs, so the last one sees every change."""
        with self._calibrating:
            threshold = self.settings.face_threshold
            if self.settings.face_calibration:
                gallery = face_matching.spread(self.people_store.vectors())
                threshold = face_matching.calibrated_threshold(
                    threshold, gallery, self.settings.face_calibration_margin
                )
            if threshold != self.calibration.threshold:
                log.info("faces: the effective threshold is now %.3f", threshold)
            self.calibration = Calibration(threshold, self.settings.face_min_confidence)

    # --- the pipeline -------------------------------------------------------------------------

    @property
    def _min_score(self) -> float:
        """The least detector score of a face to recognise: the setting, or the graph's."""
        if self.settings.face_min_score is not None:
            return self.settings.face_min_score
        return self._model.min_score if self._model is not None else 0.5

    async def _search(self, data: bytes, min_score: float | None = None) -> _Seen:
        """Decode (decode pool), letterbox, invoke (the detector's owners) and read the faces
        of one upload, largest first; `min_score` defaults to `_min_score`."""
        engine, model, _ = await self._ready()
        min_score = self._min_score if min_score is None else min_score
        loop = asyncio.get_running_loop()
        decoded = await loop.run_in_executor(self._decoders, self._decode, data, model.side)
        picture, facts, tensor, placed, decode_ms, preprocess_ms = decoded
        inference = await asyncio.wrap_future(engine.submit(tensor))
        regressors, scores = inference.outputs
        found = [
            blazeface.unletterbox(face, placed)
            for face in blazeface.decode(regressors, scores, model, min_score=min_score)
        ]
        found = [f for f in found if f.x_max > f.x_min and f.y_max > f.y_min]
        found.sort(key=lambda f: -f.area * facts.width * facts.height)
        return _Seen(picture, facts, found, decode_ms, preprocess_ms, inference)

    async def _search_picture(self, rgb: npt.NDArray[np.uint8]) -> _Seen:
        """`_search` on a decoded picture: letterboxed on the decode pool (counted in the core
        budget as a decode is), invoked on the detector's owners."""
        engine, model, _ = await self._ready()
        loop = asyncio.get_running_loop()

        def fit() -> tuple[Image.Image, npt.NDArray[np.float32], blazeface.Letterbox, float]:
            started = time.perf_counter()
            with shared_cores().held():
                picture = Image.fromarray(np.ascontiguousarray(rgb))
                tensor, placed = blazeface.letterbox(picture, model.side)
            return picture, tensor, placed, (time.perf_counter() - started) * 1000

        picture, tensor, placed, preprocess_ms = await loop.run_in_executor(self._decoders, fit)
        facts = imaging.ImageFacts(picture.width, picture.height, "RGB", False)
        inference = await asyncio.wrap_future(engine.submit(tensor))
        regressors, scores = inference.outputs
        found = [
            blazeface.unletterbox(face, placed)
            for face in blazeface.decode(regressors, scores, model, min_score=self._min_score)
        ]
        found = [f for f in found if f.x_max > f.x_min and f.y_max > f.y_min]
        found.sort(key=lambda f: -f.area)
        return _Seen(picture, facts, found, 0.0, preprocess_ms, inference)

    def _decode(
        self, data: bytes, side: int
    ) -> tuple[
        Image.Image, imaging.ImageFacts, npt.NDArray[np.float32], blazeface.Letterbox, float, float
    ]:
        """On a decoder thread: the upright picture, and its letterboxed tensor."""
        started = time.perf_counter()
        budget = self.memory
        held: contextlib.AbstractContextManager[Charge | None] = (
            budget.charge() if budget is not None else contextlib.nullcontext()
        )
        # The decoded picture outlives the charge: dlib's crops are cut from it. It is at most
        # DECODE_SIDE on its short side for a JPEG, and the pixel limit bounds the rest. A
        # decode counts as running, so an invoke starting meanwhile takes one thread.
        with shared_cores().held(), held as charge:
            image = imaging.decode(
                data,
                min_size=DECODE_SIDE,
                max_pixels=self.max_pixels,
                min_side=self.min_side,
                charge=charge,
            )
        decoded = time.perf_counter()
        tensor, placed = blazeface.letterbox(image.picture, side)
        done = time.perf_counter()
        return (
            image.picture,
            image.facts,
            tensor,
            placed,
            (decoded - started) * 1000,
            (done - decoded) * 1000,
        )

    async def _in_box(
        self, engine: Engine, model: blazeface.BlazeFace, seen: _Seen, box: PixelBox
    ) -> blazeface.Face | None:
        """The largest face in one person box, searched on its own crop of the picture (as
        fractions of the whole upright image), or None."""
        picture, facts = seen.picture, seen.facts
        sx, sy = picture.width / facts.width, picture.height / facts.height
        # The head is in the top of a standing person's box; the whole box is searched so a
        # sitting or lying one is too, with the crop upscaled to PERSON_SIDE at least.
        left, top = max(0, int(box.x_min * sx)), max(0, int(box.y_min * sy))
        right = min(picture.width, max(left + 1, math.ceil(box.x_max * sx)))
        bottom = min(picture.height, max(top + 1, math.ceil(box.y_max * sy)))
        crop = picture.crop((left, top, right, bottom))
        scale = max(1.0, PERSON_SIDE / max(crop.width, crop.height))
        if scale > 1.0:
            crop = crop.resize(
                (round(crop.width * scale), round(crop.height * scale)), Image.Resampling.BILINEAR
            )
        loop = asyncio.get_running_loop()
        tensor, placed = await loop.run_in_executor(
            self._decoders, blazeface.letterbox, crop, model.side
        )
        inference = await asyncio.wrap_future(engine.submit(tensor))
        regressors, scores = inference.outputs
        found = [
            blazeface.unletterbox(face, placed)
            for face in blazeface.decode(regressors, scores, model, min_score=self._min_score)
        ]
        if not found:
            return None
        face = max(found, key=lambda f: f.area)
        cw, ch = (right - left) / picture.width, (bottom - top) / picture.height
        x0, y0 = left / picture.width, top / picture.height
        return blazeface.Face(
            x0 + face.x_min * cw,
            y0 + face.y_min * ch,
            x0 + face.x_max * cw,
            y0 + face.y_max * ch,
            face.score,
            tuple((x0 + x * cw, y0 + y * ch) for x, y in face.keypoints),
        )

    async def _describe(
        self, picture: Image.Image, found: Sequence[blazeface.Face]
    ) -> npt.NDArray[np.float32]:
        """The descriptors of faces (fractions of the picture), on dlib's workers."""
        _, _, describer = await self._ready()
        width, height = picture.width, picture.height
        loop = asyncio.get_running_loop()
        crops = await loop.run_in_executor(
            self._decoders,
            lambda: [
                crop_for(
                    picture, (f.x_min * width, f.y_min * height, f.x_max * width, f.y_max * height)
                )
                for f in found
            ],
        )
        embedder = self._embedder
        if embedder is None:
            result: npt.NDArray[np.float32] = await asyncio.wrap_future(describer.describe(crops))
            return result
        # dlib aligns; the embedder describes the chip through its Engine's owners.
        chips = await asyncio.wrap_future(describer.chips(crops))
        tensors = await loop.run_in_executor(
            self._decoders, lambda: [embedder.tensor(chip) for chip in chips]
        )
        done = await asyncio.gather(
            *(asyncio.wrap_future(embedder.engine.submit(t)) for t in tensors)
        )
        if not done:
            return np.zeros((0, embedder.dimensions), dtype=np.float32)
        return np.stack([embedder.vector(inference.raw) for inference in done])

    async def _largest(self, data: bytes) -> npt.NDArray[np.float32]:
        """The descriptor of a photo's largest face; NoFace when it has none."""
        seen = await self._search(data)
        if not seen.found:
            raise NoFace()
        vectors = await self._describe(seen.picture, seen.found[:1])
        first: npt.NDArray[np.float32] = vectors[0]
        return first

    def _found(self, face: blazeface.Face, facts: imaging.ImageFacts) -> FoundFace:
        width, height = facts.width, facts.height
        return FoundFace(
            box=PixelBox(
                x_min=min(width, max(0, round(face.x_min * width))),
                y_min=min(height, max(0, round(face.y_min * height))),
                x_max=min(width, max(0, round(face.x_max * width))),
                y_max=min(height, max(0, round(face.y_max * height))),
            ),
            score=round(min(1.0, face.score), 6),
            landmarks=[(round(x * width), round(y * height)) for x, y in face.keypoints],
        )

    def _timing(self, seen: _Seen, describe_ms: float, post: float, started: float) -> Timing:
        finished = time.perf_counter()
        timing = {
            "queue": seen.inference.queue_ms,
            "decode": seen.decode_ms,
            "preprocess": seen.preprocess_ms,
            "inference": seen.inference.inference_ms + describe_ms,
            "postprocess": (finished - post) * 1000,
            "total": (finished - started) * 1000,
        }
        if self.metrics is not None and self._engine is not None:
            self.metrics.observe_stages(timing, self._engine.info.name, "faces")
        return Timing(**{stage: round(ms, 3) for stage, ms in timing.items()})

    def _count(self, outcome: str, count: int) -> None:
        if self.metrics is not None and count:
            self.metrics.faces.labels(outcome).inc(count)


def _image(facts: imaging.ImageFacts) -> ImageInfo:
    return ImageInfo(
        width=facts.width,
        height=facts.height,
        format=facts.format,
        orientation_applied=facts.orientation_applied,
        resize=imaging.ResizeMode.letterbox.value,
    )
