"""The loaded model (a classifier, a detector or a segmenter): its spec, its labels and the
threads that run every invoke.

The TFLite interpreter is not thread-safe. Each interpreter (replica) of the model is owned by
one thread (`owners.Owners`): an invoke goes to the first free replica, and while all are busy
invokes wait in one arrival-ordered queue (a FIFO, so no request starves the way it can behind
a plain lock), never on the event loop, while other requests decode on a pool of one thread
per CPU, also in arrival order. How many replicas, and how many threads each, is
`replica_threads`'s policy; which replica an invoke takes, `owners.Owners`' (every core for a
request that finds the process otherwise idle, one thread while anything else runs).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Executor, Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image

from . import blazeface, imaging, quantization, segmentation
from .cores import Cores, shared_cores
from .detection import (
    Detection,
    OutputLayout,
    Task,
    class_labels,
    output_layout,
    read_detections,
    uncrop,
    unfit,
)
from .digest import sha256_of
from .errors import BadImage, InferenceFailed, StartupError
from .imaging import ResizeMode
from .labels import align_labels, load_labels
from .memory import Charge, MemoryBudget
from .owners import Owners
from .quantization import Quantization
from .region import Region
from .runtime import (
    Backend,
    Interpreter,
    RuntimeChoice,
    create_interpreter,
    load_backend,
    zeros_for,
)
from .threads import auto_threads, available_cpus

log = logging.getLogger("edge_server")

# Uploads up to this size that find the process idle are decoded on the owner thread that
# invokes them: a thread hand-off costs 0.1-0.3 ms on a small board, a few per cent of a small
# request. Larger ones keep the decode pool: a long decode would hold the all-core interpreter
# while a request arriving meanwhile could only take a one-thread one. 256 KiB is a 1080p
# camera snapshot at moderate quality, decoded at reduced scale in a few milliseconds.
INLINE_DECODE_BYTES = 256 * 1024
# A decoded frame is fitted inline on the same terms: a 1080p frame's fit takes a few ms.
INLINE_PICTURE_VALUES = 1920 * 1080 * 3


class OutputKind(StrEnum):
    """Whether the model's output is already probabilities or needs a softmax."""

    auto = "auto"
    probabilities = "probabilities"
    logits = "logits"


@dataclass(frozen=True)
class LoadOptions:
    """How one model's interpreters run and its images are fitted: the narrow options the
    serving layer resolves from the settings and the models config."""

    runtime: RuntimeChoice = RuntimeChoice.auto
    num_threads: int | Literal["auto"] = 1
    replicas: int | Literal["auto"] = "auto"
    labels: Path | None = None  # None: the labels file embedded in the model
    resize: ResizeMode = ResizeMode.squash
    output: OutputKind = OutputKind.auto
    input_mean: float = 127.5
    input_std: float = 127.5
    embedding: bool = False  # an embedding model: no labels, its output is a vector


@dataclass(frozen=True)
class TensorSpec:
    """Shape, dtype and quantization of a model tensor."""

    index: int
    shape: tuple[int, ...]
    dtype: type[np.generic]
    quantization: Quantization

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> TensorSpec:
        scale, zero_point = detail["quantization"]
        return cls(
            index=int(detail["index"]),
            shape=tuple(int(d) for d in detail["shape"]),
            dtype=detail["dtype"],
            quantization=Quantization(float(scale), int(zero_point)),
        )


@dataclass(frozen=True)
class ModelInfo:
    """What is loaded, for `/v1/models` and the classify answer."""

    name: str
    path: Path
    sha256: str
    input: TensorSpec
    output: TensorSpec
    labels: list[str]
    output_kind: OutputKind
    backend: Backend
    num_threads: int  # of the first replica, the one a lone request runs on
    xnnpack: bool
    replica_threads: tuple[int, ...] = ()  # threads of each interpreter; () = one, num_threads
    task: Task = Task.classification
    layout: OutputLayout | None = None  # a detector's outputs
    outputs: tuple[TensorSpec, ...] = ()  # every output, in the model's order

    @property
    def replicas(self) -> int:
        """How many interpreters of the model serve invokes."""
        return max(1, len(self.replica_threads))

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model's input image."""
        return self.input.shape[2], self.input.shape[1]


@dataclass(frozen=True)
class Prepared:
    """A decoded upload, ready to invoke."""

    tensor: npt.NDArray[Any]
    image: imaging.ImageFacts
    decode_ms: float
    preprocess_ms: float
    thumbnail: bytes = b""  # a small JPEG of the picture, when asked for (learned examples)
    resize: ResizeMode = ResizeMode.squash  # how the picture was fitted to the input


@dataclass(frozen=True)
class Inference:
    """Raw model output and the time it waited and ran."""

    raw: npt.NDArray[Any]
    queue_ms: float
    inference_ms: float
    outputs: tuple[npt.NDArray[Any], ...] = ()  # a detector's: every output, in model order


class Engine:
    """A loaded, warmed-up model and the threads that own its interpreters."""

    def __init__(
        self,
        info: ModelInfo,
        interpreter: Interpreter,
        *,
        replicas: Sequence[Interpreter] = (),
        resize: ResizeMode = ResizeMode.squash,
        input_mean: float = 127.5,
        input_std: float = 127.5,
        decoders: Executor | None = None,
        cores: Cores | None = None,
    ) -> None:
        self.info = info
        interpreters = [interpreter, *replicas]
        self._cores = cores or shared_cores()
        self._owners = Owners(
            interpreters,
            threads=info.replica_threads or (info.num_threads,) * len(interpreters),
            cores=self._cores,
            name="edge-invoke",
        )
        self.resize = resize
        self._mean = input_mean
        self._std = input_std
        # A detector's invoke reads all four outputs (a face detector's both); a classifier's
        # only its one.
        every = info.layout is not None or info.task is Task.faces
        self._extra = tuple(o.index for o in info.outputs) if every else ()
        self._scores = info.layout.scores if info.layout is not None else 1 if every else 0
        self._output = info.output.index
        # Called on an owner thread after each invoke (the service counts them in metrics).
        self.on_invoke: Callable[[], None] | None = None
        # What decodes are charged against (the service's; none: unbounded, as in tools).
        self.memory: MemoryBudget | None = None
        # Several models share the service's decode pool; one used alone has its own.
        self._owns_decoders = decoders is None
        self._decoders = decoders or decode_pool()

    @classmethod
    def load(
        cls,
        path: Path,
        options: LoadOptions | None = None,
        *,
        name: str | None = None,
        decoders: Executor | None = None,
        cores: Cores | None = None,
    ) -> Engine:
        """Load the model file at `path`, check its labels and warm it up.

        `name` is what requests call it (default: the file name without `.tflite`); `cores`
        the ledger its replicas are chosen by (default: the process's).
        """
        options = options or LoadOptions()
        backend = load_backend(options.runtime)
        started = time.perf_counter()
        threads = options.num_threads
        if threads == "auto":
            threads = auto_threads(backend, str(path), available_cpus())
        created = create_interpreter(backend, str(path), threads)
        for line in created.runtime_log:
            log.info("%s: %s", backend.name, line)
        interpreter = created.interpreter
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        input_spec = _checked_input(TensorSpec.from_detail(inputs[0]), path)
        output_specs = tuple(TensorSpec.from_detail(detail) for detail in outputs)
        layout = output_layout(outputs)
        segmenter = not options.embedding and segmentation.is_class_map(outputs)
        face_detector = not options.embedding and blazeface.model_for(outputs) is not None
        labels = [] if options.embedding or face_detector else load_labels(path, options.labels)
        if face_detector:
            # BlazeFace: regressors and scores for every anchor, both read per invoke
            # (`blazeface.decode`); the scores stand for the output in descriptions.
            output_spec = output_specs[1]
        elif options.embedding or segmenter:
            # A segmenter's labels name its class ids; how its map is read is segmentation's.
            output_spec = output_specs[0]
            if segmenter:
                segmentation.check_fit(options.resize, str(path))
        elif layout is not None:
            # The scores stand for the output in descriptions; all four are read per invoke.
            output_spec = output_specs[layout.scores]
            labels = class_labels(labels)
        else:
            output_spec = output_specs[0]
            num_classes = int(np.prod(output_spec.shape))
            source = str(options.labels or f"{path} (embedded)")
            labels = align_labels(labels, num_classes, source)

        # Warm-up: the first invoke pays for lazy allocations and delegate set-up.
        interpreter.set_tensor(input_spec.index, zeros_for(inputs[0]))
        interpreter.invoke()
        warm = quantization.dequantize(
            interpreter.get_tensor(output_spec.index), output_spec.quantization
        )
        output_kind = (
            OutputKind.probabilities
            if layout is not None or options.embedding or segmenter or face_detector
            else _output_kind(options.output, output_spec, warm)
        )
        plan = replica_threads(available_cpus(), threads, options.replicas)
        replicas = []
        for count in plan[1:]:
            replica = create_interpreter(backend, str(path), count).interpreter
            replica.set_tensor(input_spec.index, zeros_for(inputs[0]))
            replica.invoke()
            replicas.append(replica)
        name = name or path.name.removesuffix(".tflite")
        info = ModelInfo(
            name=name,
            path=path,
            sha256=sha256_of(path),
            input=input_spec,
            output=output_spec,
            labels=labels,
            output_kind=output_kind,
            backend=backend,
            num_threads=threads,
            xnnpack=created.xnnpack,
            replica_threads=plan,
            task=Task.faces if face_detector else _task(layout, options.embedding, segmenter),
            layout=layout,
            outputs=output_specs,
        )
        log.info(
            "loaded %s %s (%s %s, %d interpreter(s) of %s threads, XNNPACK %s) in %.0f ms",
            info.task,
            name,
            backend.name,
            backend.version,
            len(plan),
            "+".join(str(t) for t in plan),
            "on" if created.xnnpack else "off",
            (time.perf_counter() - started) * 1000,
        )
        return cls(
            info,
            interpreter,
            replicas=replicas,
            resize=options.resize,
            input_mean=options.input_mean,
            input_std=options.input_std,
            decoders=decoders,
            cores=cores,
        )

    # --- the three stages of a request -------------------------------------------------

    def prepare(
        self,
        data: bytes,
        *,
        max_pixels: int,
        min_side: int = 1,
        region: Region | None = None,
        thumbnail_side: int = 0,
        resize: ResizeMode | None = None,
    ) -> Prepared:
        """Decode, crop and preprocess an upload (thread-safe; runs on any worker thread).

        `thumbnail_side` > 0 also keeps a JPEG of the (cropped) picture that size. `resize`
        fits this upload another way than the model's own (None: the model's).
        """
        width, height = self.info.input_size
        mode = self.resize if resize is None else resize
        started = time.perf_counter()
        budget = self.memory
        held: contextlib.AbstractContextManager[Charge | None] = (
            budget.charge() if budget is not None else contextlib.nullcontext()
        )
        with held as charge:
            image = imaging.decode(
                data,
                min_size=max(width, height),
                max_pixels=max_pixels,
                min_side=min_side,
                region=region,
                charge=charge,
            )
            decoded = time.perf_counter()
            tensor = self._tensor(image.picture, mode)
            facts = image.facts
            thumbnail = (
                imaging.jpeg_thumbnail(image.picture, thumbnail_side) if thumbnail_side else b""
            )
            del image  # the pixels go before their charge does
        done = time.perf_counter()
        return Prepared(
            tensor, facts, (decoded - started) * 1000, (done - decoded) * 1000, thumbnail, mode
        )

    def prepare_picture(
        self,
        rgb: npt.NDArray[np.uint8],
        *,
        region: Region | None = None,
        resize: ResizeMode | None = None,
    ) -> Prepared:
        """Crop and preprocess a picture already decoded (a camera frame, (H, W, 3) RGB), with
        the same fit and quantization as `prepare` (thread-safe; runs on any worker thread).

        Nothing is decoded, so `decode_ms` is 0; the facts give the whole frame's size, as
        `prepare` gives the whole upright image's, and its format is "RGB".
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise BadImage(f"a picture is an (H, W, 3) uint8 array, not {rgb.shape} {rgb.dtype}")
        mode = self.resize if resize is None else resize
        started = time.perf_counter()
        full_height, full_width = rgb.shape[0], rgb.shape[1]
        part = rgb
        if region is not None:
            left, top, right, bottom = region.pixel_box(full_width, full_height)
            part = rgb[top:bottom, left:right]
        tensor = self._tensor(Image.fromarray(np.ascontiguousarray(part)), mode)
        facts = imaging.ImageFacts(full_width, full_height, "RGB", False)
        done = time.perf_counter()
        return Prepared(tensor, facts, 0.0, (done - started) * 1000, b"", mode)

    def _tensor(self, picture: Image.Image, mode: ResizeMode) -> npt.NDArray[Any]:
        """The model's input from a picture: fitted to its input size, then quantized."""
        fitted = imaging.fit(picture, self.info.input_size, mode)
        return quantization.to_input(
            imaging.pixels(fitted), self.info.input.dtype, mean=self._mean, std=self._std
        )

    def prepare_and_submit(self, data: bytes, **options: Any) -> Future[tuple[Prepared, Inference]]:
        """`prepare(data, **options)` on the decode pool, then the invoke queued from there.

        The event loop hears back once, when both are done: each hand-off between threads
        can wait for a CPU on a busy board, and a trip through the loop in between would be
        two more. Invokes stay FIFO, in the order decodes finish. A small upload that finds
        the process otherwise idle is decoded on the owner thread that invokes it, one
        hand-off fewer (`INLINE_DECODE_BYTES`). Cancelling the returned
        future (the client went away) drops the work wherever it waits: a decode or an invoke
        that has not started never runs.

        No callbacks are hung on the futures: a callback chain between them would be a
        reference cycle keeping every request's arrays alive until the cyclic collector runs.
        """
        return self._prepare_and_submit(
            lambda: self.prepare(data, **options), inline=len(data) <= INLINE_DECODE_BYTES
        )

    def prepare_picture_and_submit(
        self, rgb: npt.NDArray[np.uint8], **options: Any
    ) -> Future[tuple[Prepared, Inference]]:
        """`prepare_picture(rgb, **options)`, then the invoke: as `prepare_and_submit`, the
        fit counted in the core budget as a decode is, and on the invoking owner thread when
        the process is otherwise idle and the frame is no larger than 1080p."""
        return self._prepare_and_submit(
            lambda: self.prepare_picture(rgb, **options), inline=rgb.size <= INLINE_PICTURE_VALUES
        )

    def _prepare_and_submit(
        self, prepare: Callable[[], Prepared], *, inline: bool
    ) -> Future[tuple[Prepared, Inference]]:
        result: Future[tuple[Prepared, Inference]] = Future()

        def settle(value: tuple[Prepared, Inference] | None, error: BaseException | None) -> None:
            # The event loop may cancel `result` at any moment from its own thread.
            with contextlib.suppress(InvalidStateError):
                if error is not None:
                    result.set_exception(error)
                elif value is not None:
                    result.set_result(value)

        def run_invoke(
            prepared: Prepared, queued: float, interpreter: Interpreter, _: int
        ) -> None:  # on an owner thread
            if result.cancelled():
                return
            try:
                inference = self._invoke(interpreter, prepared.tensor, queued)
            except BaseException as exc:
                settle(None, exc)
                return
            settle((prepared, inference), None)

        def run_decode() -> None:  # on a decoder thread
            if result.cancelled():
                return
            try:
                # A decode counts as running, so an invoke that starts meanwhile takes one
                # thread; it stops counting before its own invoke is queued.
                with self._cores.held():
                    prepared = prepare()
                self._owners.submit(functools.partial(run_invoke, prepared, time.perf_counter()))
            except BaseException as exc:  # a bad image, or shut down meanwhile
                settle(None, exc)

        def run_both(submitted: float, interpreter: Interpreter, _: int) -> None:  # owner thread
            if result.cancelled():
                return
            waited = time.perf_counter() - submitted  # for an owner, not for the decode
            try:
                prepared = prepare()
                inference = self._invoke(interpreter, prepared.tensor, time.perf_counter() - waited)
            except BaseException as exc:
                settle(None, exc)
                return
            settle((prepared, inference), None)

        if inline and not self._cores.running:
            self._owners.submit(functools.partial(run_both, time.perf_counter()))
        else:
            self._decoders.submit(run_decode)
        return result

    def submit(self, tensor: npt.NDArray[Any]) -> Future[Inference]:
        """Queue an invoke for the first free replica; FIFO with every other request."""
        queued = time.perf_counter()
        return self._owners.submit(lambda interpreter, _: self._invoke(interpreter, tensor, queued))

    def scores(self, raw: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Class scores (probabilities) from a raw output tensor."""
        values = quantization.dequantize(raw, self.info.output.quantization)
        if self.info.output_kind is OutputKind.logits:
            return quantization.softmax(values)
        return values

    def rank(
        self, raw: npt.NDArray[Any], k: int, threshold: float = 0.0
    ) -> list[tuple[int, str, float]]:
        """The k best (index, label, score) of a raw output, best first."""
        labels = self.info.labels
        return [(i, labels[i], s) for i, s in quantization.top_k(self.scores(raw), k, threshold)]

    def _invoke(
        self, interpreter: Interpreter, tensor: npt.NDArray[Any], submitted: float
    ) -> Inference:
        started = time.perf_counter()
        try:
            interpreter.set_tensor(self.info.input.index, tensor)
            interpreter.invoke()
            outputs = tuple(interpreter.get_tensor(index) for index in self._extra)
            # A detector's `raw` is its scores, read once with the rest.
            raw = outputs[self._scores] if outputs else interpreter.get_tensor(self._output)
        except Exception as exc:
            log.exception("invoke failed")
            raise InferenceFailed(f"the model failed on this input: {exc}") from exc
        finished = time.perf_counter()
        if self.on_invoke is not None:
            self.on_invoke()
        return Inference(raw, (started - submitted) * 1000, (finished - started) * 1000, outputs)

    def detect(
        self,
        inference: Inference,
        image: imaging.ImageFacts,
        *,
        min_score: float,
        max_results: int,
        wanted: Collection[str] | None = None,
        region: Region | None = None,
        resize: ResizeMode | None = None,
    ) -> list[Detection]:
        """A detector's objects in one invoke, boxes as fractions of the upright image.

        The boxes are mapped back through the fitting (`resize`: the mode the image was
        prepared with, `Prepared.resize`; None: the model's) and the crop `region`, so they
        lie on the whole upright picture the upload was.
        """
        mode = self.resize if resize is None else resize
        layout = self.info.layout
        if layout is None:
            raise TypeError(f"{self.info.name} is not a detector")
        found = read_detections(
            inference.outputs,
            layout,
            self.info.labels,
            min_score=min_score,
            max_results=len(inference.outputs[layout.scores].reshape(-1)),
            wanted=wanted,
        )
        width = image.width * ((region.x1 - region.x0) if region else 1.0)
        height = image.height * ((region.y1 - region.y0) if region else 1.0)
        aspect = width / height
        placed = [
            Detection(
                d.index,
                d.label,
                d.score,
                uncrop(unfit(d.box, aspect, self.info.input_size, mode), region),
            )
            for d in found
        ]
        # A box that lay in a letterbox band has no area once mapped back: not an object.
        kept = [d for d in placed if d.box.x_max > d.box.x_min and d.box.y_max > d.box.y_min]
        return kept[:max_results]

    def close(self) -> None:
        """Finish queued decodes and invokes, and stop the threads (a shared pool stays)."""
        if self._owns_decoders:
            self._decoders.shutdown(wait=True)
        self._owners.shutdown()


def replica_threads(cpus: int, threads: int, replicas: int | Literal["auto"]) -> tuple[int, ...]:
    """Interpreter threads of each replica: the first has `threads`, any others one each.

    A request that finds the process otherwise idle runs on the first replica, with every
    thread it was given (the lowest latency); one that arrives while anything else runs takes
    a one-thread replica (`owners.Owners`), so a burst, of one model or of several, keeps
    every core busy with one thread each. One thread per extra replica because an invoke
    split over threads that other invokes and decodes keep descheduled waits for the slowest.
    "auto": one one-thread replica per CPU beside the all-core one, so the cores are never
    idle while invokes wait (with `threads` 1, just the one-thread replicas); one CPU, one
    interpreter. Each replica costs its own memory (the docs' Performance page measures it).
    """
    if replicas == "auto":
        if cpus < 2:
            return (threads,)
        return ((threads,) if threads > 1 else ()) + (1,) * cpus
    return (threads,) + (1,) * (replicas - 1)


def decode_pool(threads: int | None = None) -> ThreadPoolExecutor:
    """One decoder thread per CPU (or EDGE_DECODE_THREADS), fed in arrival order.

    More (starlette's threadpool has 40) would decode every waiting photo at once: each
    finishes late, the interpreters idle and then get them all together, and each decoded
    photo is held in memory meanwhile.
    """
    return ThreadPoolExecutor(
        max_workers=threads or available_cpus(), thread_name_prefix="edge-decode"
    )


def _task(layout: OutputLayout | None, embedding: bool, segmenter: bool) -> Task:
    if embedding:
        return Task.embedding
    if segmenter:
        return Task.segmentation
    return Task.detection if layout is not None else Task.classification


def _checked_input(spec: TensorSpec, path: Path) -> TensorSpec:
    shape = spec.shape
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
        raise StartupError(
            f"{path} takes input of shape {list(shape)}, not an RGB image [1, H, W, 3]",
            fix="use an image classification, detection or segmentation model",
        )
    if spec.dtype not in (np.uint8, np.int8, np.float32):
        raise StartupError(
            f"{path} takes {np.dtype(spec.dtype).name} input; uint8, int8 or float32 are supported",
            fix="use a uint8/int8 quantized or float32 model",
        )
    return spec


def _output_kind(choice: OutputKind, spec: TensorSpec, warm: npt.NDArray[np.float32]) -> OutputKind:
    """Probabilities or logits: from the setting, the softmax quantization, or warm-up values."""
    if choice is not OutputKind.auto:
        return choice
    if spec.quantization.quantized:
        softmax_scaled = abs(spec.quantization.scale - quantization.SOFTMAX_OUTPUT_SCALE) < 1e-9
        return OutputKind.probabilities if softmax_scaled else OutputKind.logits
    if quantization.looks_like_probabilities(warm):
        return OutputKind.probabilities
    return OutputKind.logits
