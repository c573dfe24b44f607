"""The service every HTTP surface shares: settings, metrics, the model, and the classify pipeline.

Routes (the native API and any compatible one) only translate requests and answers; admission,
deadlines, decoding, queueing for the interpreter, ranking and timing happen here once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from .auth import ApiKeys
from .catalog import load_catalog
from .classifier import Classifier
from .errors import (
    ClientGone,
    DeadlineExceeded,
    NotReady,
    Overloaded,
    ReloadFailed,
    StartupError,
    UploadTimeout,
)
from .imaging import decode_bytes
from .memory import MemoryBudget, budget_bytes
from .metrics import Metrics
from .region import Region
from .schemas import ClassifyResponse, ImageInfo, ModelRef, Prediction, Timing
from .settings import Settings

log = logging.getLogger("edge_server")
T = TypeVar("T")
U = TypeVar("U")


class Service:
    """What the routes share: settings, metrics and the loaded model (None until ready)."""

    def __init__(self, settings: Settings, metrics: Metrics, keys: ApiKeys) -> None:
        self.settings = settings
        self.metrics = metrics
        self.keys = keys
        self._classifier: Classifier | None = None
        self._users: Counter[Classifier] = Counter()
        self._admitted = 0
        self._by_client: Counter[str | None] = Counter()
        self._reload_lock = asyncio.Lock()
        # One budget for every model's decodes: memory is the process's, not a model's.
        side = math.isqrt(settings.max_image_pixels)
        largest = decode_bytes("RGB", (side, side), transposed=False)
        self.memory = MemoryBudget(
            budget_bytes(settings.decode_memory_mb, largest, settings.sysfs_root),
            metrics.registry,
        )

    # --- the model and its life cycle ------------------------------------------------------

    def install(self, classifier: Classifier) -> None:
        """Make a loaded model the one new requests get."""
        self._classifier = classifier
        self.metrics.set_model(classifier)
        classifier.memory = self.memory

    def ready_classifier(self) -> Classifier:
        """The loaded model, or 503 while there is none."""
        if self._classifier is None:
            raise NotReady("the model is not loaded yet", headers={"Retry-After": "1"})
        return self._classifier

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[Classifier]:
        """The current model, kept open until the request is done even if a reload swaps it."""
        classifier = self.ready_classifier()
        self._users[classifier] += 1
        try:
            yield classifier
        finally:
            self._users[classifier] -= 1
            if self._users[classifier] == 0:
                del self._users[classifier]
            await self._close_if_retired(classifier)

    async def _close_if_retired(self, classifier: Classifier) -> None:
        """Close a model that a reload or shutdown replaced, once its last request is done."""
        if classifier is not self._classifier and self._users[classifier] == 0:
            await run_in_threadpool(classifier.close)

    async def reload(self, model: str | None = None) -> Classifier:
        """Load and warm a model beside the current one, then swap; the old one drains.

        A model that fails to load leaves the current one serving (ReloadFailed says why).
        """
        async with self._reload_lock:
            settings = self.settings
            if model is not None:
                settings = settings.model_copy(update={"model": _model_within(model, settings)})
            old = self._classifier
            try:
                new = await run_in_threadpool(Classifier.load, settings)
            except StartupError as exc:
                self.metrics.reloads.labels("failed").inc()
                serving = f"{old.info.name} ({old.info.sha256[:12]})" if old else "nothing"
                log.error("reload failed: %s; still serving %s", exc, serving)
                raise ReloadFailed(
                    f"{exc.problem}; still serving {serving}. Fix: {exc.fix}"
                ) from exc
            self.settings = settings
            self.install(new)
            self.metrics.reloads.labels("ok").inc()
            log.info("reloaded: now serving %s (%s)", new.info.name, new.info.sha256[:12])
            if old is not None:
                await self._close_if_retired(old)
            return new

    async def shutdown(self) -> None:
        """Stop taking requests and close every model (queued invokes finish first)."""
        current, self._classifier = self._classifier, None
        if current is not None:
            await self._close_if_retired(current)

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

    async def guarded(
        self,
        request: Request,
        read: Callable[[], Awaitable[U]],
        work: Callable[[U], Awaitable[T]],
    ) -> T:
        """Admission, reading the upload, then the work, all within EDGE_REQUEST_TIMEOUT.

        The work is abandoned (and a queued invoke never runs) if the client disconnects.
        """
        timeout = self.settings.request_timeout
        started: float = request.state.request_started
        async with self.admission(request.client.host if request.client else None):
            try:
                async with asyncio.timeout(timeout):
                    upload = await read()
            except TimeoutError:
                self.metrics.timeouts.labels("upload").inc()
                raise UploadTimeout(
                    f"the upload did not finish within {timeout:g} s (EDGE_REQUEST_TIMEOUT)",
                    headers={"Connection": "close"},
                ) from None
            except ClientDisconnect:
                # Hung up mid-upload, or closed by the server for stalling (EDGE_BODY_TIMEOUT).
                self.metrics.abandoned.inc()
                raise ClientGone("the client disconnected during the upload") from None
            remaining = max(0.0, timeout - (time.perf_counter() - started))
            task = asyncio.ensure_future(work(upload))
            gone = asyncio.ensure_future(_disconnect(request))
            done, _ = await asyncio.wait(
                {task, gone}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            gone.cancel()
            if task in done:
                return task.result()
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task  # let the lease and the queue slot go before answering
            if gone in done:
                self.metrics.abandoned.inc()
                raise ClientGone("the client disconnected before the answer")
            self.metrics.timeouts.labels("processing").inc()
            raise DeadlineExceeded(
                f"the image was not classified within {timeout:g} s (EDGE_REQUEST_TIMEOUT); "
                "the service is overloaded or the image is very large"
            )

    async def classify(
        self,
        data: bytes,
        *,
        top_k: int | None,
        threshold: float,
        started: float,
        region: Region | None = None,
    ) -> ClassifyResponse:
        """Decode (decode pool), invoke (owner thread, FIFO), rank and time one image.

        `started` is the request's arrival (time.perf_counter()), so `total` covers reading
        the upload too. With a region, only that part of the upright image is classified.
        """
        settings = self.settings
        async with self.lease() as classifier:
            # Decode on the classifier's decoder pool, which queues the invoke itself: the
            # event loop hears back once, when both are done.
            prepared, inference = await asyncio.wrap_future(
                classifier.prepare_and_submit(
                    data,
                    max_pixels=settings.max_image_pixels,
                    min_side=settings.min_image_side,
                    region=region,
                )
            )

            post_started = time.perf_counter()
            k = top_k if top_k is not None else settings.default_top_k
            predictions = [
                Prediction(label=label, index=i, score=min(1.0, max(0.0, score)))
                for i, label, score in classifier.rank(inference.raw, k, threshold)
            ]
            info = classifier.info
        finished = time.perf_counter()
        timing = {
            "queue": inference.queue_ms,
            "decode": prepared.decode_ms,
            "preprocess": prepared.preprocess_ms,
            "inference": inference.inference_ms,
            "postprocess": (finished - post_started) * 1000,
            "total": (finished - started) * 1000,
        }
        self.metrics.observe_stages(timing)
        image = prepared.image
        return ClassifyResponse(
            model=ModelRef(name=info.name, sha256=info.sha256),
            predictions=predictions,
            image=ImageInfo(
                width=image.width,
                height=image.height,
                format=image.format,
                orientation_applied=image.orientation_applied,
            ),
            timing_ms=Timing(**{stage: round(ms, 3) for stage, ms in timing.items()}),
        )


async def _disconnect(request: Request) -> None:
    """Return when the client closes the connection (call only once the body is read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _model_within(model: str, settings: Settings) -> str:
    """A reload target: a catalog name or a file name inside EDGE_MODELS_DIR, nothing else.

    Reload is reachable over HTTP; it must not become a way to load arbitrary files.
    """
    if model in load_catalog():
        return model
    if "/" in model or "\\" in model or model.startswith(".") or not model.endswith(".tflite"):
        raise ReloadFailed(
            f"{model!r} is neither a catalog model nor a .tflite file name in EDGE_MODELS_DIR"
        )
    return str(settings.models_dir / model)
