"""The loaded model in-process: reference answers, odd inputs, outputs, the owner thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from edge_server.config.settings import Settings
from edge_server.core.engine import (
    Engine,
    ModelInfo,
    OutputKind,
    TensorSpec,
    replica_threads,
)
from edge_server.core.errors import BadImage, InferenceFailed
from edge_server.core.quantization import Quantization
from edge_server.core.runtime import Backend, RuntimeChoice
from edge_server.serving.specs import model_specs

from conftest import DEFAULT_MODEL
from support import variants
from support.reference import REFERENCE, TOLERANCE

Photo = Callable[[str], bytes]


def _load(models_dir: Path, runtime: str, model: str, **overrides: Any) -> Engine:
    return model_specs(
        Settings(
            model=model,
            models_dir=models_dir,
            runtime=RuntimeChoice(runtime),
            num_threads=1,
            **overrides,
        )
    )[0].load()


@pytest.fixture(scope="module")
def classifier(models_dir: Path, runtime: str) -> Iterator[Engine]:
    """The default model, loaded once for this module."""
    loaded = _load(models_dir, runtime, DEFAULT_MODEL)
    yield loaded
    loaded.close()


def _top1(classifier: Engine, data: bytes) -> tuple[str, float]:
    prepared = classifier.prepare(data, max_pixels=50_000_000)
    (_, label, score), *_ = classifier.rank(classifier.submit(prepared.tensor).result().raw, 1)
    return label, score


@pytest.mark.parametrize(
    ("model", "image"), [(m, i) for m, table in REFERENCE.items() for i in table]
)
def test_reference_answers(
    models_dir: Path, runtime: str, photo: Photo, model: str, image: str
) -> None:
    """Each model's top-1 on the real photos, squashed as MANIFEST.md's were, matches it
    within 0.02."""
    label, low, high = REFERENCE[model][image]
    loaded = _load(models_dir, runtime, model, resize="squash")  # the manifest's procedure
    try:
        got_label, score = _top1(loaded, photo(image))
    finally:
        loaded.close()
    assert got_label.split(",")[0] == label
    assert low - TOLERANCE <= score <= high + TOLERANCE


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotated_photo_gives_the_upright_answer(
    classifier: Engine, photo: Photo, orientation: int
) -> None:
    """A photo turned in its pixels with a compensating EXIF tag classifies as upright."""
    assert _top1(classifier, variants.exif_rotated(photo("parrot.jpg"), orientation))[0] == "macaw"
    turned = variants.exif_rotated(photo("grace_hopper.jpg"), orientation)
    assert _top1(classifier, turned)[0] == "military uniform"


@pytest.mark.parametrize("encoding", sorted(variants.SAME_PICTURE))
def test_other_encodings_give_the_same_top1(
    classifier: Engine, photo: Photo, encoding: str
) -> None:
    """CMYK, RGBA, palette, WebP, progressive, BMP, GIF and TIFF copies keep the top-1."""
    make = variants.SAME_PICTURE[encoding]
    assert _top1(classifier, make(photo("grace_hopper.jpg")))[0] == "military uniform"
    assert _top1(classifier, make(photo("coffee.png")))[0] == "espresso"


def test_16_bit_png_classifies_like_its_8_bit_copy(classifier: Engine, photo: Photo) -> None:
    """A 16-bit grayscale PNG gives the same answer and score as the 8-bit one."""
    eight = _top1(classifier, variants.gray8_png(photo("grace_hopper.jpg")))
    sixteen = _top1(classifier, variants.gray16_png(photo("grace_hopper.jpg")))
    assert sixteen == eight
    assert sixteen[0] == "military uniform"


def test_large_photo_with_draft_decoding_keeps_the_answer(classifier: Engine, photo: Photo) -> None:
    """A 12 MP JPEG, decoded at reduced scale, still gives the right top-1."""
    big = variants.upscaled_jpeg(photo("parrot.jpg"), 3024, 4032)
    assert _top1(classifier, big)[0] == "macaw"


def test_model_info_describes_the_loaded_model(classifier: Engine) -> None:
    """Input 1x224x224x3 uint8 with its quantization, 1001 labels, softmax output detected."""
    info = classifier.info
    assert info.input.shape == (1, 224, 224, 3)
    assert info.input.dtype == np.uint8
    assert info.input.quantization == Quantization(0.0078125, 128)
    assert len(info.labels) == 1001 and info.labels[0] == "background"
    assert info.output_kind is OutputKind.probabilities
    assert info.sha256 == "7aad0c74c5e3c06e5eb3c827e13304fdd68a83da6087d92ee169c24ff9fd4776"


def test_bird_model_uses_its_own_embedded_labels(models_dir: Path, runtime: str) -> None:
    """The 965-class bird model loads with its embedded labels, background last."""
    loaded = _load(models_dir, runtime, "mobilenet_v2_1.0_224_inat_bird_quant")
    loaded.close()
    assert len(loaded.info.labels) == 965
    assert loaded.info.labels[-1] == "background"


# --- pure logic with a fake interpreter ----------------------------------------------------


class FakeInterpreter:
    """Records invokes; returns fixed logits; can be told to fail."""

    def __init__(self, output: np.ndarray) -> None:
        self.output = output
        self.fail_next = False
        self.active = 0
        self.max_active = 0
        self.order: list[int] = []
        self._lock = threading.Lock()
        self._input: np.ndarray | None = None

    def allocate_tensors(self) -> None:
        pass

    def get_input_details(self) -> list[dict[str, Any]]:
        return []

    def get_output_details(self) -> list[dict[str, Any]]:
        return []

    def set_tensor(self, index: int, value: np.ndarray, /) -> None:
        self._input = value

    def invoke(self) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("Node number 3 (CONV_2D) failed to invoke.")
            assert self._input is not None
            self.order.append(int(self._input.reshape(-1)[0]))
            threading.Event().wait(0.002)
        finally:
            with self._lock:
                self.active -= 1

    def get_tensor(self, index: int, /) -> np.ndarray:
        return self.output.copy()


def _fake_classifier(output: np.ndarray, kind: OutputKind) -> tuple[Engine, FakeInterpreter]:
    fake = FakeInterpreter(output)
    spec_in = TensorSpec(0, (1, 2, 2, 3), np.uint8, Quantization(0.0, 0))
    spec_out = TensorSpec(1, output.shape, np.float32, Quantization(0.0, 0))
    info = ModelInfo(
        name="fake",
        path=Path("fake.tflite"),
        sha256="0" * 64,
        input=spec_in,
        output=spec_out,
        labels=["a", "b", "c"],
        output_kind=kind,
        backend=Backend("fake", "0", lambda **_: fake),
        num_threads=1,
        xnnpack=False,
    )
    return Engine(info, fake), fake


def test_logits_are_turned_into_probabilities() -> None:
    """A logits model's scores are softmaxed: they sum to one and keep the order."""
    classifier, _ = _fake_classifier(np.array([[2.0, 0.0, 1.0]], np.float32), OutputKind.logits)
    try:
        ranked = classifier.rank(np.array([[2.0, 0.0, 1.0]], np.float32), 3)
    finally:
        classifier.close()
    assert [label for _, label, _ in ranked] == ["a", "c", "b"]
    assert abs(sum(score for *_, score in ranked) - 1.0) < 1e-6


def test_invokes_run_one_at_a_time_in_arrival_order() -> None:
    """Many threads submitting at once: never two invokes together, FIFO order kept."""
    classifier, fake = _fake_classifier(np.zeros((1, 3), np.float32), OutputKind.probabilities)
    futures = [classifier.submit(np.full((1, 2, 2, 3), i, np.uint8)) for i in range(40)]
    for future in futures:
        future.result()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: classifier.submit(np.full((1, 2, 2, 3), i, np.uint8)).result(), range(40)
            )
        )
    classifier.close()
    assert fake.max_active == 1
    assert fake.order[:40] == list(range(40))


def test_an_invoke_error_fails_that_request_only() -> None:
    """A runtime exception becomes InferenceFailed; the next invoke works."""
    classifier, fake = _fake_classifier(np.zeros((1, 3), np.float32), OutputKind.probabilities)
    fake.fail_next = True
    tensor = np.zeros((1, 2, 2, 3), np.uint8)
    with pytest.raises(InferenceFailed, match="CONV_2D"):
        classifier.submit(tensor).result()
    assert classifier.submit(tensor).result().raw.shape == (1, 3)
    classifier.close()


def test_prepare_and_submit_decodes_then_invokes_or_fails(classifier: Engine, photo: Photo) -> None:
    """The chained decode and invoke answers like prepare + submit; a bad upload fails it."""
    prepared, inference = classifier.prepare_and_submit(
        photo("parrot.jpg"), max_pixels=50_000_000
    ).result()
    assert prepared.image.format == "JPEG"
    assert classifier.rank(inference.raw, 1)[0][1] == "macaw"
    with pytest.raises(BadImage):
        classifier.prepare_and_submit(b"not an image", max_pixels=50_000_000).result()


# --- replicas: several interpreters of one model, one FIFO ---------------------------------


class EchoInterpreter:
    """Answers the first value of its input; logs each invoke's input in a shared list."""

    def __init__(self, log: list[int], lock: threading.Lock, gate: threading.Event) -> None:
        self.log, self.lock, self.gate = log, lock, gate
        self.invokes = 0
        self.active = 0
        self.max_active = 0
        self._value = 0

    def allocate_tensors(self) -> None:
        pass

    def get_input_details(self) -> list[dict[str, Any]]:
        return []

    def get_output_details(self) -> list[dict[str, Any]]:
        return []

    def set_tensor(self, index: int, value: np.ndarray, /) -> None:
        self._value = int(value.reshape(-1)[0])

    def invoke(self) -> None:
        with self.lock:
            self.log.append(self._value)
            self.invokes += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        self.gate.wait(10)
        threading.Event().wait(0.002)
        with self.lock:
            self.active -= 1

    def get_tensor(self, index: int, /) -> np.ndarray:
        return np.array([[self._value, 0, 0]], np.float32)


def _replicated(count: int) -> tuple[Engine, list[EchoInterpreter], list[int], threading.Event]:
    log: list[int] = []
    lock, gate = threading.Lock(), threading.Event()
    gate.set()
    fakes = [EchoInterpreter(log, lock, gate) for _ in range(count)]
    classifier, _ = _fake_classifier(np.zeros((1, 3), np.float32), OutputKind.probabilities)
    classifier.close()
    info = classifier.info
    return Engine(info, fakes[0], replicas=fakes[1:]), fakes, log, gate


def _tensor(value: int) -> np.ndarray:
    return np.full((1, 2, 2, 3), value, np.uint8)


def test_replicas_answer_every_request_with_its_own_result_in_arrival_order() -> None:
    """Three replicas, 60 invokes at once: each answer is its own, each starts within two
    places of its arrival (FIFO over three servers), no replica runs two at once, all work."""
    classifier, fakes, log, _ = _replicated(3)
    futures = [classifier.submit(_tensor(i)) for i in range(60)]
    answers = [int(f.result().raw[0][0]) for f in futures]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda i: classifier.submit(_tensor(i)).result(), range(60)))
    classifier.close()
    assert answers == list(range(60))
    assert [int(a.raw[0][0]) for a in concurrent] == list(range(60))
    assert all(abs(log.index(i) - i) <= 2 for i in range(60))
    assert [f.max_active for f in fakes] == [1, 1, 1]
    assert all(f.invokes > 0 for f in fakes)


def test_a_lone_request_runs_on_the_first_replica() -> None:
    """One request at a time always gets the first replica (the one with the most threads)."""
    classifier, fakes, _, _ = _replicated(2)
    for i in range(10):
        classifier.submit(_tensor(i)).result()
    classifier.close()
    assert [f.invokes for f in fakes] == [10, 0]


def test_a_cancelled_waiting_invoke_never_runs_and_close_drains_the_queue() -> None:
    """With every replica busy, a cancelled invoke is skipped; close() runs the rest first."""
    classifier, _, log, gate = _replicated(2)
    gate.clear()
    busy = [classifier.submit(_tensor(i)) for i in (1, 2)]
    dropped = classifier.submit(_tensor(3))
    queued = [classifier.submit(_tensor(i)) for i in (4, 5, 6)]
    assert dropped.cancel()
    gate.set()
    classifier.close()
    assert [int(f.result().raw[0][0]) for f in busy + queued] == [1, 2, 4, 5, 6]
    assert 3 not in log
    with pytest.raises(RuntimeError, match="shutdown"):
        classifier.submit(_tensor(7))


@pytest.mark.parametrize(
    ("cpus", "threads", "replicas", "plan"),
    [
        (1, 1, "auto", (1,)),
        (1, 4, "auto", (4,)),
        (2, 2, "auto", (2, 1, 1)),
        (4, 4, "auto", (4, 1, 1, 1, 1)),
        (2, 1, "auto", (1, 1)),
        (4, 3, 3, (3, 1, 1)),
        (2, 2, 1, (2,)),
    ],
)
def test_replica_threads_policy(
    cpus: int, threads: int, replicas: int | Literal["auto"], plan: tuple[int, ...]
) -> None:
    """The first replica has the configured threads, extra ones one each; auto adds one
    one-thread replica per CPU when there are two CPUs or more."""
    assert replica_threads(cpus, threads, replicas) == plan


@pytest.mark.slow
def test_replicas_of_the_real_model_answer_like_one_interpreter(
    models_dir: Path, runtime: str, photo: Photo
) -> None:
    """Two interpreters of the real model, 16 photos at once: every answer equals the
    one-at-a-time answer for that photo."""
    loaded = _load(models_dir, runtime, DEFAULT_MODEL, replicas=2)
    uploads = [
        photo("parrot.jpg"),
        photo("grace_hopper.jpg"),
        variants.progressive_jpeg(photo("parrot.jpg")),
        variants.cmyk_jpeg(photo("grace_hopper.jpg")),
    ] * 4
    try:
        assert loaded.info.replica_threads == (1, 1)
        serial = [
            loaded.prepare_and_submit(u, max_pixels=50_000_000).result()[1].raw for u in uploads
        ]
        with ThreadPoolExecutor(8) as pool:
            concurrent = list(
                pool.map(
                    lambda u: loaded.prepare_and_submit(u, max_pixels=50_000_000).result()[1].raw,
                    uploads,
                )
            )
    finally:
        loaded.close()
    assert loaded.rank(serial[0], 1)[0][1] == "macaw"
    for alone, together in zip(serial, concurrent, strict=True):
        np.testing.assert_array_equal(alone, together)
