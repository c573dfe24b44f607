"""The service every surface shares: settings, metrics, the models, and the one pipeline of
every task.

Routes (the native API and any compatible one) only translate requests and answers; admission,
deadlines, leasing the model, decoding, queueing for the interpreter and timing happen here
once (`run`, `answer`). How an invoke becomes a task's answer is the task's own room, a reader
given to `answer` (`classifying.py`, `segmenting.py`); detection's, with its sub labels, is
still a method here.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from typing import TypeVar

from ..config.settings import Settings
from ..core.detection import Detection, Task
from ..core.engine import Engine, Inference, Prepared
from ..core.errors import (
    BadImage,
    BadRequest,
    ClientGone,
    DeadlineExceeded,
    NotFound,
    Overloaded,
    TooLarge,
    UploadTimeout,
)
from ..core.imaging import ResizeMode, decode_bytes
from ..core.memory import MemoryBudget, budget_bytes
from ..core.region import Region
from . import classifying
from .auth import ApiKeys
from .faces import Faces, faces_for
from .invocation import Invocation, offloader
from .learned_models import (
    THUMBNAIL_SIDE,
    Example,
    LearnedModel,
    LearnedModels,
)
from .metrics import Metrics
from .repository import ModelRepository
from .schemas import (
    ClassifyResponse,
    DetectedObject,
    DetectResponse,
    ImageInfo,
    ModelRef,
    NormalizedBox,
    PixelBox,
    Timing,
)

log = logging.getLogger("edge_server")
T = TypeVar("T")
U = TypeVar("U")

# The route that answers each task, for the 400 that sends a model to the right one; and a
# catalog model to suggest when no model of a task is served.
TASK_ROUTES = {
    Task.classification: "/classify",
    Task.detection: "/detect",
    Task.segmentation: "/segment",
    Task.faces: "/v1/vision/face",
}
TASK_EXAMPLES = {
    Task.classification: "mobilenet_v2_1.0_224_quant",
    Task.detection: "objects",
    Task.segmentation: "segmenter",
    Task.faces: "faces",
}


class Service:
    """What the routes share: settings, metrics, API keys and the models being served."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        keys: ApiKeys,
        decoders: ThreadPoolExecutor | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.keys = keys
        # One budget for every model's decodes: memory is the process's, not a model's.
        side = math.isqrt(settings.max_image_pixels)
        largest = decode_bytes("RGB", (side, side), transposed=False)
        self.memory = MemoryBudget(
            budget_bytes(settings.decode_memory_mb, largest, settings.sysfs_root),
            metrics.registry,
        )
        self.models = ModelRepository(settings, metrics, self.memory, decoders)
        self.learned = LearnedModels(settings, self.models, metrics)
        # None when faces are off or their model files are missing.
        self.faces: Faces | None = faces_for(settings, metrics, self.memory, self.models.decoders)
        self._offload = offloader(self.models.decoders)
        self._admitted = 0
        metrics.queue_limit.set(settings.max_queue)
        self._by_client: Counter[str | None] = Counter()

    # --- the models -------------------------------------------------------------------------

    def ready_model(self, model: str | None = None) -> Engine:
        """A loaded model by name (the default for None): 503 while none is, 404 if unknown."""
        return self.models.get(model)

    def model_for(self, task: Task, model: str | None = None) -> str:
        """The served name that answers `task` for a request naming `model`.

        No name: the default model if it does that task, else the first served one that
        does (404 when none does). A named model of the other task is a 400 that says which
        route it answers on.
        """
        if model is not None:
            engine = self.models.get(model)
            if engine.info.task is not task:
                route = TASK_ROUTES.get(engine.info.task, "no route")
                raise BadRequest(
                    f"model {engine.info.name!r} is a {engine.info.task} model, not a {task} "
                    f"one; send it to {route}, or name one of: "
                    + (", ".join(self.models_for(task)) or f"(no {task} model is served)")
                )
            return engine.info.name
        default = self.models.get()  # 503 while nothing is loaded yet
        if default.info.task is task:
            return default.info.name
        served = self.models_for(task)
        if not served:
            hint = TASK_EXAMPLES.get(task, "mobilenet_v2_1.0_224_quant")
            raise NotFound(
                f"no {task} model is served (served: {', '.join(self.model_names())}); "
                f"add one to EDGE_MODEL, e.g. EDGE_MODEL={','.join(self.model_names())},{hint}"
            )
        return served[0]

    def models_for(self, task: Task) -> list[str]:
        """The served models that answer `task`, the default first."""
        return [n for n in self.models.names() if self.models.get(n).info.task is task]

    @property
    def default_model(self) -> str:
        """The name of the model used when a request names none."""
        return self.models.default

    def model_names(self) -> list[str]:
        """The loaded models, the default first."""
        return self.models.names()

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` on the event loop after every model load, unload and reload."""
        self.models.add_listener(listener)

    async def reload(self, model: str | None = None, *, name: str | None = None) -> Engine:
        """Reload a model (the default for no name), or load `model` in its place."""
        return await self.models.reload(name, model)

    async def shutdown(self) -> None:
        """Stop taking requests and close every model (queued invokes finish first)."""
        await self.models.shutdown()
        await self.learned.close()
        if self.faces is not None:
            await self.faces.close()

    # --- one request ------------------------------------------------------------------------

    @asynccontextmanager
    async def admission(self, client: str | None = None) -> AsyncIterator[None]:
        """A place among the EDGE_MAX_QUEUE requests being handled, or 503 at once.

        One client address holds all but an eighth of the places: uploads that stall (a buggy
        camera, a slow-body attack) keep theirs until EDGE_BODY_TIMEOUT, and must not lock out
        the other hosts meanwhile; a busy host still gets nearly the whole queue.
        """
        limit = self.settings.max_queue
        share = max(1, limit - max(1, limit // 8))
        if self._admitted >= limit:
            self.metrics.rejected.inc()
            raise Overloaded(
                f"{self._admitted} requests are already being handled (EDGE_MAX_QUEUE={limit}); "
                "retry in a second",
                headers={"Retry-After": "1"},
            )
        if self._by_client[client] >= share:
            self.metrics.rejected.inc()
            raise Overloaded(
                f"this client already has {share} requests being handled, the most one address "
                f"may have (EDGE_MAX_QUEUE={limit} less an eighth kept for other hosts); "
                "retry in a second",
                headers={"Retry-After": "1"},
            )
        self._admitted += 1
        self._by_client[client] += 1
        self.metrics.admitted.set(self._admitted)
        try:
            yield
        finally:
            self._admitted -= 1
            self._by_client[client] -= 1
            if not self._by_client[client]:
                del self._by_client[client]
            self.metrics.admitted.set(self._admitted)

    async def run(
        self,
        read: Callable[[], Awaitable[U]],
        work: Callable[[U], Awaitable[T]],
        *,
        client: str | None = None,
        started: float | None = None,
        disconnected: Callable[[], Awaitable[None]] | None = None,
    ) -> T:
        """The data plane's one entry, for every surface: admission (with the per-client
        share), reading the upload, then the work, all within EDGE_REQUEST_TIMEOUT.

        `client` is the sender's address (None for a broker: one share for all of MQTT);
        `started` the request's arrival (time.perf_counter(), default now). `read` raises
        ClientGone when the sender hangs up mid-upload. `disconnected`, when given, returns once
        the sender has gone: the work is then abandoned and a queued invoke never runs.
        """
        timeout = self.settings.request_timeout
        started = time.perf_counter() if started is None else started
        async with self.admission(client):
            try:
                async with asyncio.timeout(timeout):
                    upload = await read()
            except TimeoutError:
                self.metrics.timeouts.labels("upload").inc()
                raise UploadTimeout(
                    f"the upload did not finish within {timeout:g} s (EDGE_REQUEST_TIMEOUT)",
                    headers={"Connection": "close"},
                ) from None
            except ClientGone:
                # Hung up mid-upload, or closed by the server for stalling (EDGE_BODY_TIMEOUT).
                self.metrics.abandoned.inc()
                raise
            remaining = max(0.0, timeout - (time.perf_counter() - started))
            task = asyncio.ensure_future(work(upload))
            gone = asyncio.ensure_future(disconnected()) if disconnected is not None else None
            done, _ = await asyncio.wait(
                {task} if gone is None else {task, gone},
                timeout=remaining,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if gone is not None:
                gone.cancel()
            if task in done:
                return task.result()
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task  # let the lease and the queue slot go before answering
            if gone is not None and gone in done:
                self.metrics.abandoned.inc()
                raise ClientGone("the client disconnected before the answer")
            self.metrics.timeouts.labels("processing").inc()
            raise DeadlineExceeded(
                f"the image was not classified within {timeout:g} s (EDGE_REQUEST_TIMEOUT); "
                "the service is overloaded or the image is very large"
            )

    async def classify_upload(
        self,
        data: bytes,
        *,
        model: str | None = None,
        top_k: int | None = None,
        resize: ResizeMode | None = None,
    ) -> ClassifyResponse:
        """Classify an image already in memory (an MQTT payload, a Frigate snapshot) with the
        same limits, admission and deadline as `POST /classify`; `resize` as `classify` says.

        Raises the pipeline's ServiceError subclasses: TooLarge over EDGE_MAX_UPLOAD_BYTES,
        NotFound for a model that is not served (before taking an admission place),
        Overloaded, BadImage, DeadlineExceeded...
        """
        return await self._in_memory(
            data,
            Task.classification,
            model,
            lambda image, started: self.classify(
                image, top_k=top_k, threshold=0.0, started=started, model=model, resize=resize
            ),
        )

    async def detect_upload(
        self,
        data: bytes,
        *,
        model: str | None = None,
        min_score: float | None = None,
        classify: str | None = None,
        resize: ResizeMode | None = None,
    ) -> DetectResponse:
        """Detect objects in an image already in memory (an MQTT payload), with the same
        limits, admission and deadline as `POST /detect`; `resize` as `detect` says."""
        return await self._in_memory(
            data,
            Task.detection,
            model,
            lambda image, started: self.detect(
                image,
                min_score=self.settings.min_score if min_score is None else min_score,
                max_results=self.settings.max_detections,
                started=started,
                model=model,
                classify=classify,
                resize=resize,
            ),
        )

    async def _in_memory(
        self,
        data: bytes,
        task: Task,
        model: str | None,
        work: Callable[[bytes, float], Awaitable[T]],
    ) -> T:
        """`run` for an image already read: the upload limit and the model checked before an
        admission place is taken (the model is resolved again when the work starts)."""
        limit = self.settings.max_upload_bytes
        if len(data) > limit:
            raise TooLarge(f"the image is {len(data)} bytes, over EDGE_MAX_UPLOAD_BYTES={limit}")
        self.model_for(task, model)
        started = time.perf_counter()

        async def upload() -> bytes:
            return data

        return await self.run(upload, lambda image: work(image, started), started=started)

    async def classify(
        self,
        data: bytes,
        *,
        top_k: int | None,
        threshold: float,
        started: float,
        region: Region | None = None,
        model: str | None = None,
        engine: Engine | None = None,
        resize: ResizeMode | None = None,
    ) -> ClassifyResponse:
        """Decode (decode pool), invoke (the model's owner thread, FIFO), rank and time one image.

        `started` is the request's arrival (time.perf_counter()), so `total` covers reading
        the upload too. With a region, only that part of the upright image is classified.
        `model` names the model (the default for None); `engine`, a model the caller leased
        already, answers instead (so the images of one request get one version of a learned
        model, which may change between them). `resize` fits this image another way than the
        model's own fit (None: the model's); the answer's `image.resize` says which was used.
        """
        k = top_k if top_k is not None else self.settings.default_top_k
        return await self.answer(
            Task.classification,
            data,
            classifying.ranked(k, threshold),
            started=started,
            model=model,
            region=region,
            resize=resize,
            engine=engine,
        )

    async def answer(
        self,
        task: Task,
        data: bytes,
        read: Callable[[Invocation], Awaitable[T]],
        *,
        started: float,
        model: str | None = None,
        region: Region | None = None,
        resize: ResizeMode | None = None,
        engine: Engine | None = None,
    ) -> T:
        """One upload answered by the model that serves `task`: the model named (`model`, the
        task's default for None) is leased, the upload decoded (only `region` of it, if given)
        and fitted (`resize`, else the model's own fit) on the decode pool, invoked on an owner
        thread, and `read`, the task's own reader, turns the invoke into the answer.

        `engine`, a model the caller leased already, answers instead (so the images of one
        request get one version of a learned model, which may change between them).
        `started` is the request's arrival (time.perf_counter()), so `total` covers reading the
        upload too.
        """
        if engine is not None:
            return await self._answered(engine, data, read, started, region, resize)
        async with self.models.lease(self.model_for(task, model)) as leased:
            return await self._answered(leased, data, read, started, region, resize)

    async def _answered(
        self,
        engine: Engine,
        data: bytes,
        read: Callable[[Invocation], Awaitable[T]],
        started: float,
        region: Region | None,
        resize: ResizeMode | None,
    ) -> T:
        prepared, inference = await self._infer(engine, data, region, resize=resize)
        invocation = Invocation(
            engine=engine,
            data=data,
            prepared=prepared,
            inference=inference,
            region=region,
            started=started,
            read_started=time.perf_counter(),
            memory=self.memory,
            offload=self._offload,
            timing=self._invocation_timing,
        )
        return await read(invocation)

    def _invocation_timing(self, invocation: Invocation) -> Timing:
        info = invocation.engine.info
        return self._timing(
            invocation.prepared,
            invocation.inference,
            invocation.read_started,
            invocation.started,
            info.name,
            info.task,
        )

    async def detect(
        self,
        data: bytes,
        *,
        min_score: float,
        max_results: int,
        started: float,
        wanted: Collection[str] | None = None,
        region: Region | None = None,
        model: str | None = None,
        classify: str | None = None,
        resize: ResizeMode | None = None,
        faces: bool = False,
    ) -> DetectResponse:
        """Decode, invoke and read one image's objects, boxes on the whole upright image.

        `wanted` keeps only those labels; with a region only that part is searched, and the
        boxes are still given in the whole image's pixels. `classify` names a classifier or
        learned model that classifies each object's box: its top label is the sub label (with
        its own fit: the boxes are what it sees). `resize` fits the image for the detector
        another way than its own, and the boxes are mapped back through the mode used.
        `faces` names the recognised person in each person box as its sub label (and the
        recognition's confidence as its score).
        """
        name = self.model_for(Task.detection, model)
        if classify is not None:
            self.model_for(Task.classification, classify)  # a 404 or 400 before any work
        if faces:
            self.require_faces()
        async with self.models.lease(name) as engine:
            prepared, inference = await self._infer(engine, data, region, resize=resize)
            post_started = time.perf_counter()
            found = engine.detect(
                inference,
                prepared.image,
                min_score=min_score,
                max_results=max_results,
                wanted=wanted,
                region=region,
                resize=prepared.resize,
            )
            info = engine.info
        subs: list[tuple[str | None, float | None]] = []
        classifier_ref = None
        if classify is not None and found:
            async with self.models.lease(self.model_for(Task.classification, classify)) as sub:
                subs = await self._sub_labels(sub, data, found)
                classifier_ref = ModelRef(name=sub.info.name, sha256=sub.info.sha256)
        width, height = prepared.image.width, prepared.image.height
        if faces and found:
            subs = await self._face_labels(data, found, subs, width, height)
        # Built without validation (model_construct): every value is the engine's own, already
        # clamped and typed, and validating ten nested boxes costs a third of a millisecond.
        detections = []
        for n, d in enumerate(found):
            x_min, y_min, x_max, y_max = d.box.pixels(width, height)
            sub_label, sub_score = subs[n] if subs else (None, None)
            if sub_label is None:
                sub_score = None
            detections.append(
                DetectedObject.model_construct(
                    label=d.label,
                    index=d.index,
                    score=round(d.score, 6),
                    box=PixelBox.model_construct(
                        x_min=x_min, y_min=y_min, x_max=x_max, y_max=y_max
                    ),
                    box_normalized=NormalizedBox.model_construct(
                        x_min=round(d.box.x_min, 6),
                        y_min=round(d.box.y_min, 6),
                        x_max=round(d.box.x_max, 6),
                        y_max=round(d.box.y_max, 6),
                    ),
                    sub_label=sub_label,
                    sub_score=sub_score,
                )
            )
        for label, count in Counter(d.label for d in found).items():
            self.metrics.detections.labels(info.name, label).inc(count)
        return DetectResponse(
            model=ModelRef(name=info.name, sha256=info.sha256),
            classifier=classifier_ref,
            detections=detections,
            image=_image_info(prepared),
            timing_ms=self._timing(
                prepared, inference, post_started, started, info.name, Task.detection
            ),
        )

    def require_faces(self) -> Faces:
        """The face pipeline, or 404 saying how to get it."""
        if self.faces is None:
            raise NotFound(
                "faces are not served: EDGE_FACES is off or the face models are not in the "
                "models folder; fetch them with `edge-server models pull faces`"
            )
        return self.faces

    async def _face_labels(
        self,
        data: bytes,
        found: list[Detection],
        subs: list[tuple[str | None, float | None]],
        width: int,
        height: int,
    ) -> list[tuple[str | None, float | None]]:
        """The recognised person's name as each person's sub label (and the recognition's
        confidence as its score); other objects keep what the classifier gave them."""
        people = [n for n, d in enumerate(found) if d.label == "person"]
        if not people:
            return subs
        boxes = []
        for n in people:
            x_min, y_min, x_max, y_max = found[n].box.pixels(width, height)
            boxes.append(PixelBox(x_min=x_min, y_min=y_min, x_max=x_max, y_max=y_max))
        names = await self.require_faces().sub_labels(data, boxes)
        blank: tuple[str | None, float | None] = (None, None)
        merged = list(subs) if subs else [blank] * len(found)
        for n, named in zip(people, names, strict=True):
            merged[n] = named if named is not None else blank
        return merged

    async def _sub_labels(
        self, classifier: Engine, data: bytes, found: list[Detection]
    ) -> list[tuple[str | None, float | None]]:
        """The classifier's top (label, score) for each object's box, side by side."""
        answers = await asyncio.gather(
            *(self._infer(classifier, data, _box_region(d)) for d in found)
        )
        tops = [classifier.rank(inference.raw, 1)[0] for _, inference in answers]
        return [(label, round(min(1.0, max(0.0, score)), 6)) for _, label, score in tops]

    async def learn(
        self, name: str, label: str, images: list[bytes], region: Region | None = None
    ) -> LearnedModel:
        """Embed each photo (with a thumbnail kept for re-embedding) and store them as examples
        of `label` in learned model `name`, created on first use."""
        # Before any photo is embedded: the name, the label and the limits.
        label = self.learned.checked(name, label)
        self.learned.check_room(name, label, len(images))
        embedder = await self.learned.embedder_now()
        try:
            embedded = await asyncio.gather(
                *(self._infer(embedder, data, region, THUMBNAIL_SIDE) for data in images)
            )
        except BadImage:
            self.learned.refused("bad_image")
            raise
        examples = [
            Example(inference.raw.reshape(-1).copy(), prepared.thumbnail)
            for prepared, inference in embedded
        ]
        # Shielded: once the examples are being stored, a client hanging up or the deadline
        # must not cancel the change between the file and the served model.
        return await asyncio.shield(self.learned.add(name, label, examples))

    async def _infer(
        self,
        engine: Engine,
        data: bytes,
        region: Region | None,
        thumbnail_side: int = 0,
        *,
        resize: ResizeMode | None = None,
    ) -> tuple[Prepared, Inference]:
        """Decode on the shared decode pool, which queues the invoke itself: the event loop
        hears back once, when both are done."""
        settings = self.settings
        return await asyncio.wrap_future(
            engine.prepare_and_submit(
                data,
                max_pixels=settings.max_image_pixels,
                min_side=settings.min_image_side,
                region=region,
                thumbnail_side=thumbnail_side,
                resize=resize,
            )
        )

    def _timing(
        self,
        prepared: Prepared,
        inference: Inference,
        post_started: float,
        started: float,
        model: str,
        task: Task,
    ) -> Timing:
        """The stage times of one request, recorded in the metrics too."""
        finished = time.perf_counter()
        timing = {
            "queue": inference.queue_ms,
            "decode": prepared.decode_ms,
            "preprocess": prepared.preprocess_ms,
            "inference": inference.inference_ms,
            "postprocess": (finished - post_started) * 1000,
            "total": (finished - started) * 1000,
        }
        self.metrics.observe_stages(timing, model, task.value)
        return Timing(**{stage: round(ms, 3) for stage, ms in timing.items()})


def _box_region(detection: Detection) -> Region:
    """An object's box as a crop region of the upright image (at least a pixel's width)."""
    box = detection.box
    x0, y0 = min(max(box.x_min, 0.0), 0.999), min(max(box.y_min, 0.0), 0.999)
    x1, y1 = min(max(box.x_max, x0 + 0.001), 1.0), min(max(box.y_max, y0 + 0.001), 1.0)
    return Region(x0, y0, x1, y1)


def _image_info(prepared: Prepared) -> ImageInfo:
    image = prepared.image
    return ImageInfo(
        width=image.width,
        height=image.height,
        format=image.format,
        orientation_applied=image.orientation_applied,
        resize=prepared.resize.value,
    )
