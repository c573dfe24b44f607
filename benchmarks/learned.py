"""Learned models: what a learned class costs a request, a change and the memory, in one run.

    python -m benchmarks.learned [--quick] [--models-dir DIR] [--images-dir DIR]

Real `edge-server serve` processes (a small default classifier, a key, a data folder each);
learned models load the embedding model themselves. Side by side in one run:

1. POST /classify?model=NAME with a learned model of 10 classes x 200 examples against one of
   1 class x 1 example, whose head costs nothing (decode, preprocess and the embedding model's
   invoke are the whole work: the embedder's own pipeline). The same photo, one server, the two
   taking turns (A B B A ...) so load that drifts falls on both alike. Target: p50 ratio <= 1.05.
2. Adding 200 examples over HTTP: as 200 requests of one photo, and as requests of 16 photos
   (EDGE_MAX_BATCH_IMAGES), in alternating rounds of 16 examples.
3. RSS added by 10,000 stored examples: a server whose data folder is empty against one holding
   a learned model of 50 classes x 200 examples (EDGE_LEARNED_MAX_CLASSES and _MAX_EXAMPLES),
   written here with `journal`'s own functions from real embeddings plus noise. Both have been
   taught a model of one photo and answered a classify with each learned model, so both hold
   the embedder.
   Target: <= 25 MB.
4. `edge-server learn evaluate` on 18 photos of 5 classes: Coral's cat, dog and hotdog photos, the
   cat of chelsea.png, and the people and kites the detector finds in kite_and_cold.jpg, cropped.

Only the ratios and differences compare across runs; absolute times move with the machine's
load (the `others` figure says how many CPUs other processes took meanwhile).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from benchmarks import load, servers
from benchmarks.detection import Meter
from benchmarks.stats import Summary, summarize
from benchmarks.targets import Target
from edge_server.config.settings import Settings
from edge_server.serving import journal, storage
from edge_server.serving.learned_models import THUMBNAIL_SIDE
from edge_server.serving.specs import ModelsConfig, spec_for

ROOT = Path(__file__).resolve().parent.parent
CLASSIFIER = "mobilenet_v1_0.25_128_quant"  # small: the default model is not what is measured
EMBEDDER = "mobilenet_v1_1.0_224_quant_embedding_extractor"
EMBEDDER_SHA256 = "f409ef4f73fcbb9667841965623c5c8524aac33d41b9bf5f3667161fb4a76319"
PHOTO = "grace_hopper.jpg"  # the photo classified and taught
# Photos whose embeddings seed the synthetic classes: Coral's, then the other shared ones.
SEED_PHOTOS = (
    *(f"imprinting/{n}.bmp" for n in ("cat_train_0", "dog_train_0", "hotdog_train_0")),
    *(f"imprinting/{n}.bmp" for n in ("cat_test_0", "dog_test_0", "hotdog_test_0")),
    "imprinting/hotdog_train_1.bmp",
    PHOTO,
    "kite_and_cold.jpg",
    "parrot.jpg",
    "chelsea.png",
    "coffee.png",
)
EVALUATE_PHOTOS = {
    "cat": ("cat_train_0", "cat_test_0"),
    "dog": ("dog_train_0", "dog_test_0"),
    "hotdog": ("hotdog_train_0", "hotdog_train_1", "hotdog_test_0"),
}
EVALUATE_COMMAND = ("-m", "edge_server", "learn", "evaluate")
BATCH = 16  # EDGE_MAX_BATCH_IMAGES's default: the most photos one add may carry
# Grey levels of noise added to a seed embedding for each synthetic example. The examples of
# a class keep a cosine of about 0.95 to each other (real photos of one thing: 0.6-0.75), and
# the classes differ as their seed photos do: what is measured depends on the sizes only.
NOISE_SIGMA = 12.0
CLASSES, BASELINE = "classes", "baseline"  # the measured model and the embedder's own pipeline
TURNS = (CLASSES, BASELINE, BASELINE, CLASSES)  # each follows the other equally often
FIRST = "first"  # the one-photo model both servers of 3. are taught ("tiny" is a catalog alias)
TIMEOUT_S = 120.0
RATIO_BOUND, RSS_BOUND_MB = 1.05, 25.0


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    classes: int  # of the learned model classified in 1.
    examples: int  # per class of it
    turns: int  # classify requests of each model (even: TURNS come in fours)
    adds: int  # examples added each way in 2.
    stored_classes: int  # of the stored model in 3.
    stored_examples: int  # per class of it


FULL = Plan(classes=10, examples=200, turns=200, adds=200, stored_classes=50, stored_examples=200)
QUICK = Plan(classes=3, examples=5, turns=10, adds=20, stored_classes=10, stored_examples=50)


@dataclass(frozen=True)
class Seed:
    """A real photo's embedding (raw uint8) and its thumbnail, as the server stores them."""

    name: str
    embedding: npt.NDArray[np.uint8]
    thumbnail: bytes


@dataclass(frozen=True)
class Classified:
    """1.: both models' round trips and the server's stage times (p50s), and others' CPUs."""

    summaries: dict[str, Summary]
    stages: dict[str, dict[str, float]]  # model -> stage -> p50 ms
    others_cpus: float

    @property
    def ratio(self) -> float:
        """The learned model's p50 over the embedder's own pipeline's."""
        return self.summaries[CLASSES].p50 / self.summaries[BASELINE].p50


@dataclass(frozen=True)
class Added:
    """2.: examples added one way, and the requests and seconds it took."""

    examples: int
    requests: int
    seconds: float

    @property
    def per_example_ms(self) -> float:
        return self.seconds * 1000 / self.examples


@dataclass(frozen=True)
class Memory:
    """3.: RSS of the two servers (MB), their start-up times, and the stored file's size."""

    empty_mb: float
    stored_mb: float
    examples: int
    empty_ready_s: float
    stored_ready_s: float
    file_mb: float

    @property
    def added_mb(self) -> float:
        return self.stored_mb - self.empty_mb


@dataclass(frozen=True)
class Evaluation:
    """4.: the command's output, or why it could not run."""

    command: str
    output: str
    problem: str | None = None


@dataclass(frozen=True)
class Result:
    """Everything one run measured."""

    plan: Plan
    classified: Classified
    added: dict[int, Added]  # photos per request -> how long
    memory: Memory
    evaluation: Evaluation
    load_before: float
    load_after: float


# --- learned models written directly --------------------------------------------------------


def embed_seeds(models_dir: Path, images: Path) -> list[Seed]:
    """The seed photos through the server's own embedder pipeline, loaded in this process."""
    settings = Settings.model_validate({"models_dir": models_dir, "model": [CLASSIFIER]})
    engine = spec_for(settings.embedder, settings, ModelsConfig()).load()
    try:
        if engine.info.sha256 != EMBEDDER_SHA256:
            raise SystemExit(
                f"{engine.info.path} is not the embedder this benchmark is written for "
                f"(sha256 {engine.info.sha256[:12]}, not {EMBEDDER_SHA256[:12]})"
            )
        seeds = []
        for name in SEED_PHOTOS:
            prepared = engine.prepare(
                (images / name).read_bytes(),
                max_pixels=settings.max_image_pixels,
                thumbnail_side=THUMBNAIL_SIDE,
            )
            raw = engine.submit(prepared.tensor).result().raw
            seeds.append(Seed(name, raw.reshape(-1).astype(np.uint8), prepared.thumbnail))
        return seeds
    finally:
        engine.close()


def noisy_rows(
    seed: npt.NDArray[np.uint8], count: int, rng: np.random.Generator
) -> npt.NDArray[np.uint8]:
    """`count` uint8 embeddings near `seed`: it plus Gaussian noise, clipped to 0..255."""
    noise = rng.normal(0.0, NOISE_SIGMA, (count, seed.size))
    return np.clip(seed.astype(np.float64) + noise, 0, 255).round().astype(np.uint8)


def model_lines(
    name: str, seeds: Sequence[Seed], classes: int, examples: int, seed: int = 0
) -> Iterator[bytes]:
    """A learned model's journal: the header, then each class's examples in records of BATCH,
    as adds of BATCH photos would have written them. Class c is seeded by photo c (cycling)."""
    yield journal.header_line(
        journal.Header(
            name=name, embedder=EMBEDDER, embedder_sha256=EMBEDDER_SHA256, dim=1024, dtype="uint8"
        )
    )
    rng = np.random.default_rng(seed)
    for c in range(classes):
        source = seeds[c % len(seeds)]
        rows = noisy_rows(source.embedding, examples, rng)
        for start in range(0, examples, BATCH):
            chunk = rows[start : start + BATCH]
            yield journal.add_line(
                f"class_{c:02d}", [(r.tobytes(), source.thumbnail) for r in chunk]
            )


def write_model(
    data_dir: Path, name: str, seeds: Sequence[Seed], classes: int, examples: int
) -> Path:
    """The model's file where the server looks for it (EDGE_DATA_DIR/learned/NAME.learned)."""
    folder = data_dir / "learned"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{journal.SUFFIX}"
    storage.write_atomically(path, model_lines(name, seeds, classes, examples))
    return path


# --- HTTP -----------------------------------------------------------------------------------


def multipart(fields: dict[str, str], images: Sequence[bytes]) -> tuple[bytes, str]:
    """A form body (text fields, then repeated `image` files) and its Content-Type."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    for i, image in enumerate(images):
        parts += [
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="photo{i}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode(),
            image,
            b"\r\n",
        ]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def raw_post(port: int, path: str, key: str, image: bytes) -> bytes:
    """A whole HTTP/1.1 request classifying one photo, with the key: for `load.drive`."""
    body, content_type = multipart({}, [image])
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {key}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Client:
    """One kept-alive connection to a server, sending the key with every request."""

    def __init__(self, port: int, key: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
        self.key = key

    def call(self, method: str, path: str, expect: int, body: bytes = b"", kind: str = "") -> Any:
        """The JSON answer of a request answered with `expect`; RuntimeError otherwise."""
        headers = {"X-API-Key": self.key}
        if kind:
            headers["Content-Type"] = kind
        self.connection.request(method, path, body=body or None, headers=headers)
        response = self.connection.getresponse()
        answer = response.read()
        if response.status != expect:
            raise RuntimeError(f"{method} {path} answered {response.status}: {answer[:300]!r}")
        return json.loads(answer)

    def teach(self, model: str, label: str, images: Sequence[bytes]) -> Any:
        """Add the photos as examples of `label` (the model is created on first use)."""
        body, kind = multipart({"label": label}, images)
        return self.call("POST", f"/v1/learned/{model}/examples", 201, body, kind)

    def classify(self, model: str, image: bytes) -> Any:
        body, kind = multipart({}, [image])
        answer = self.call("POST", f"/classify?model={model}", 200, body, kind)
        if answer["model"]["name"] != model:
            raise RuntimeError(f"/classify?model={model} was answered by {answer['model']}")
        return answer

    def close(self) -> None:
        self.connection.close()


def _env(models_dir: Path, **settings: str) -> dict[str, str]:
    """This environment minus stray EDGE_ settings (EDGE_RUNTIME kept: a test leg's runtime),
    plus the models folder and these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    if "EDGE_RUNTIME" in os.environ:
        env["EDGE_RUNTIME"] = os.environ["EDGE_RUNTIME"]
    env.update(EDGE_MODELS_DIR=str(models_dir), EDGE_LOG_LEVEL="warning")
    env.update({f"EDGE_{k.upper()}": v for k, v in settings.items()})
    return env


def start_server(name: str, models_dir: Path, data_dir: Path, key: str) -> servers.ServerProcess:
    """`edge-server serve` on a free port, with learning on (a data folder and a key)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = _env(models_dir, model=CLASSIFIER, data_dir=str(data_dir), api_key=key)
    port = servers.free_port()
    command = servers.python_command(
        "-m", "edge_server", "serve", "--host", "127.0.0.1", "--port", str(port)
    )
    log = data_dir.parent / f"{name}.log"
    return servers.ServerProcess.start(name, command, env, port, log, timeout=TIMEOUT_S)


# --- 1. classify latency --------------------------------------------------------------------


def by_turn(values: Sequence[Any], turns: Sequence[str] = TURNS) -> dict[str, list[Any]]:
    """Values of requests sent in the cyclic order `turns`, grouped by whose turn it was."""
    grouped: dict[str, list[Any]] = {name: [] for name in turns}
    for i, value in enumerate(values):
        grouped[turns[i % len(turns)]].append(value)
    return grouped


def measure_classify(
    server: servers.ServerProcess, key: str, photo: bytes, plan: Plan
) -> Classified:
    """Both models in turns on one kept-alive connection, after two unmeasured turns each."""
    requests = [raw_post(server.port, f"/classify?model={name}", key, photo) for name in TURNS]
    load.drive(server.port, requests, 1, total=2 * len(TURNS), seconds=TIMEOUT_S)
    meter = Meter(server)
    run = load.drive(
        server.port, requests, 1, total=2 * plan.turns, seconds=3600.0, keep_bodies=True
    )
    others = meter.stop().others_cpus
    if run.errors:
        raise RuntimeError(f"{run.errors} classify requests answered with an error")
    latencies, bodies = by_turn(run.latencies_ms), by_turn(run.bodies)
    return Classified(
        {name: summarize(latencies[name]) for name in (CLASSES, BASELINE)},
        {name: _stage_p50s(bodies[name]) for name in (CLASSES, BASELINE)},
        others,
    )


def _stage_p50s(bodies: Sequence[bytes]) -> dict[str, float]:
    """The p50 of each stage the server reports (timing_ms) over the answers."""
    timings = [json.loads(body)["timing_ms"] for body in bodies]
    return {stage: statistics.median(t[stage] for t in timings) for stage in timings[0]}


# --- 2. adding examples ---------------------------------------------------------------------


def measure_adds(client: Client, photo: bytes, count: int) -> dict[int, Added]:
    """`count` examples added one photo a request and BATCH photos a request, into a model
    each, in rounds of BATCH examples, the order swapped each round."""
    seconds = {1: 0.0, BATCH: 0.0}
    sent = {1: 0, BATCH: 0}
    for round_, start in enumerate(range(0, count, BATCH)):
        size = min(BATCH, count - start)
        ways = (1, BATCH) if round_ % 2 == 0 else (BATCH, 1)
        for per_request in ways:
            for offset in range(0, size, per_request):
                photos = [photo] * min(per_request, size - offset)
                started = time.perf_counter()
                client.teach(f"adds-{per_request}", "grace", photos)
                seconds[per_request] += time.perf_counter() - started
                sent[per_request] += 1
    return {way: Added(count, sent[way], seconds[way]) for way in seconds}


# --- 1. and 2. on one server ----------------------------------------------------------------


def measure_served(
    work: Path, models_dir: Path, seeds: Sequence[Seed], photo: bytes, plan: Plan, key: str
) -> tuple[Classified, dict[int, Added]]:
    """1. and 2. on one server, whose data folder holds the learned model of 1."""
    data = work / "latency" / "data"
    write_model(data, CLASSES, seeds, plan.classes, plan.examples)
    server = start_server("latency", models_dir, data, key)
    try:
        with closing(Client(server.port, key)) as client:
            client.teach(BASELINE, "grace", [photo])
            client.classify(CLASSES, photo)
        _progress(f"1. classify, {plan.turns} requests of each model ...")
        classified = measure_classify(server, key, photo, plan)
        _progress(f"2. adding {plan.adds} examples each way ...")
        # A new connection: the server closed the first one while it idled during 1.
        with closing(Client(server.port, key)) as client:
            added = measure_adds(client, photo, plan.adds)
    finally:
        server.stop()
    return classified, added


# --- 3. memory ------------------------------------------------------------------------------


def rss_after_use(
    server: servers.ServerProcess, key: str, photo: bytes, models: Sequence[str]
) -> float:
    """VmRSS (MB) once the server has taught FIRST one photo and classified with each model."""
    with closing(Client(server.port, key)) as client:
        client.teach(FIRST, "grace", [photo])
        for model in (FIRST, *models):
            client.classify(model, photo)
    return server.memory_mb()["rss_mb"]


def measure_memory(
    work: Path, models_dir: Path, seeds: Sequence[Seed], photo: bytes, plan: Plan, key: str
) -> Memory:
    """An empty data folder against one holding the stored model, one server at a time."""
    empty = start_server("empty", models_dir, work / "empty" / "data", key)
    try:
        empty_mb = rss_after_use(empty, key, photo, ())
    finally:
        empty.stop()
    data = work / "stored" / "data"
    path = write_model(data, "stored", seeds, plan.stored_classes, plan.stored_examples)
    stored = start_server("stored", models_dir, data, key)
    try:
        with closing(Client(stored.port, key)) as reader:
            described = reader.call("GET", "/v1/learned/stored", 200)
        examples = plan.stored_classes * plan.stored_examples
        if described["status"] != "ready" or described["examples"] != examples:
            raise RuntimeError(f"the stored model is not served as written: {described}")
        stored_mb = rss_after_use(stored, key, photo, ("stored",))
    finally:
        stored.stop()
    return Memory(
        empty_mb, stored_mb, examples, empty.ready_s, stored.ready_s, path.stat().st_size / 1e6
    )


# --- 4. the evaluate command ----------------------------------------------------------------


def evaluation_folder(images: Path, root: Path, models_dir: Path) -> Path:
    """FOLDER/<class>/<photo>: Coral's imprinting photos (linked), the cat of chelsea.png, and
    the people and kites the COCO detector finds in kite_and_cold.jpg, cropped: 18 photos of
    5 classes, a few of them alike (small, distant people)."""
    folder = root / "evaluate"
    for label, names in EVALUATE_PHOTOS.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for name in names:
            (folder / label / f"{name}.bmp").symlink_to(images / "imprinting" / f"{name}.bmp")
    (folder / "cat" / "chelsea.png").symlink_to(images / "chelsea.png")
    for label, crops in detected_crops(models_dir, images / "kite_and_cold.jpg").items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for n, crop in enumerate(crops):
            crop.save(folder / label / f"kite_and_cold_{n}.png")
    return folder


def detected_crops(models_dir: Path, photo: Path) -> dict[str, list[Image.Image]]:
    """Each person and kite the detector finds in the photo (score >= 0.5), cropped."""
    settings = Settings(models_dir=models_dir, num_threads=1)
    engine = spec_for("objects", settings, ModelsConfig()).load()
    try:
        data = photo.read_bytes()
        prepared = engine.prepare(data, max_pixels=settings.max_image_pixels)
        found = engine.detect(
            engine.submit(prepared.tensor).result(), prepared.image, min_score=0.5, max_results=20
        )
    finally:
        engine.close()
    picture = Image.open(photo).convert("RGB")
    crops: dict[str, list[Image.Image]] = {}
    for thing in found:
        if thing.label in ("person", "kite"):
            box = thing.box.pixels(picture.width, picture.height)
            crops.setdefault(thing.label, []).append(picture.crop(box))
    return crops


def evaluate_command(folder: Path, models_dir: Path) -> Evaluation:
    """`edge-server learn evaluate FOLDER`'s output, or what stopped it (a missing command)."""
    command = servers.python_command(*EVALUATE_COMMAND, str(folder))
    shown = "edge-server " + " ".join(EVALUATE_COMMAND[2:]) + " FOLDER"
    done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        command,
        env=_env(models_dir),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode == 0 and done.stdout.strip():
        return Evaluation(shown, done.stdout.rstrip())
    problem = done.stderr.strip() or done.stdout.strip() or "no output"
    if "invalid choice" in done.stderr:
        problem = (
            f"`{shown}` does not exist in this edge_server (another change adds it; "
            f"`few_shot_accuracy` in edge_server/core/imprinting.py is what it prints): {problem}"
        )
    return Evaluation(shown, "", f"exit {done.returncode}: {problem}")


# --- the run --------------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(args: argparse.Namespace, plan: Plan) -> Result:
    """Everything, one server at a time, in a temporary folder removed afterwards."""
    models_dir, images = args.models_dir.resolve(), args.images_dir.resolve()
    photo = (images / PHOTO).read_bytes()
    key = secrets.token_urlsafe(24)  # 32 characters
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-learned-") as temp:
        work = Path(temp)
        _progress("embedding the seed photos ...")
        seeds = embed_seeds(models_dir, images)
        classified, added = measure_served(work, models_dir, seeds, photo, plan, key)
        _progress("3. RSS of an empty data folder and a stored model ...")
        memory = measure_memory(work, models_dir, seeds, photo, plan, key)
        _progress("4. edge-server learn evaluate ...")
        evaluation = evaluate_command(evaluation_folder(images, work, models_dir), models_dir)
    return Result(plan, classified, added, memory, evaluation, load_before, os.getloadavg()[0])


def evaluate(result: Result) -> list[Target]:
    """The brief's targets: a ratio and a difference, each from this run."""
    plan, memory = result.plan, result.memory
    return [
        Target(
            f"classify p50: {plan.classes} classes x {plan.examples} examples / the embedder's "
            "own pipeline (1 x 1)",
            result.classified.ratio,
            RATIO_BOUND,
            at_most=True,
        ),
        Target(
            f"RSS added by {memory.examples} stored examples",
            memory.added_mb,
            RSS_BOUND_MB,
            at_most=True,
            unit="MB",
        ),
    ]


def _classify_lines(result: Result) -> list[str]:
    plan, classified = result.plan, result.classified
    lines = [
        f"1. POST /classify?model=NAME of {PHOTO} at c=1, the two models taking turns on one",
        f"   server, {plan.turns} requests each (others: {classified.others_cpus:.2f} CPUs); "
        "server stages are timing_ms p50s:",
        f"  {'':36} {'p50 ms':>8} {'p95 ms':>8} {'inference':>10} {'postprocess':>12}",
    ]
    names = {
        CLASSES: f"{plan.classes} classes x {plan.examples} examples",
        BASELINE: "1 class x 1 example (embedder)",
    }
    for model, label in names.items():
        summary, stages = classified.summaries[model], classified.stages[model]
        lines.append(
            f"  {label:36} {summary.p50:8.2f} {summary.p95:8.2f} {stages['inference']:10.2f} "
            f"{stages['postprocess']:12.3f}"
        )
    lines.append(f"  {'ratio of the p50s':36} {classified.ratio:7.3f}x")
    return lines


def _add_lines(result: Result) -> list[str]:
    lines = [
        f"2. Adding {result.plan.adds} examples over HTTP (POST /v1/learned/NAME/examples of "
        f"{PHOTO}),",
        f"   the two ways in alternating rounds of {BATCH} examples:",
        f"  {'':36} {'requests':>8} {'total s':>8} {'ms an example':>14}",
    ]
    for per_request, added in result.added.items():
        way = "1 photo a request" if per_request == 1 else f"{per_request} photos a request"
        lines.append(
            f"  {way:36} {added.requests:8} {added.seconds:8.2f} {added.per_example_ms:14.2f}"
        )
    single, batched = result.added[1], result.added[BATCH]
    ratio = batched.per_example_ms / single.per_example_ms
    lines.append(f"  {f'per example, {BATCH} a request / 1':36} {ratio:7.3f}x")
    return lines


def _memory_lines(memory: Memory, plan: Plan) -> list[str]:
    stored = (
        f"{plan.stored_classes} classes x {plan.stored_examples} examples "
        f"({memory.file_mb:.1f} MB file)"
    )
    return [
        f"3. VmRSS after start, teaching `{FIRST}` one photo and a classify with each learned "
        "model:",
        f"  {'':40} {'RSS MB':>8} {'ready s':>8}",
        f"  {'empty data folder':40} {memory.empty_mb:8.1f} {memory.empty_ready_s:8.2f}"
        "  (the embedder loaded on first use)",
        f"  {stored:40} {memory.stored_mb:8.1f} {memory.stored_ready_s:8.2f}"
        "  (the embedder loaded at start)",
        f"  {f'added by {memory.examples} stored examples':40} {memory.added_mb:8.1f}",
    ]


def _evaluation_lines(evaluation: Evaluation) -> list[str]:
    lines = [
        f"4. {evaluation.command} (Coral's imprinting photos, chelsea.png, and the people and "
        "kites\n   found in kite_and_cold.jpg, cropped):"
    ]
    if evaluation.problem is not None:
        return [*lines, f"  FAILED: {evaluation.problem}"]
    return lines + [f"  {line}" for line in evaluation.output.splitlines()]


def table(result: Result, targets: Sequence[Target]) -> str:
    """The human-readable report."""
    return "\n".join(
        [
            f"learned models on {EMBEDDER}, beside {CLASSIFIER}; {len(os.sched_getaffinity(0))} "
            f"CPUs available; load average {result.load_before:.2f} before, "
            f"{result.load_after:.2f} after",
            "",
            *_classify_lines(result),
            "",
            *_add_lines(result),
            "",
            *_memory_lines(result.memory, result.plan),
            "",
            *_evaluation_lines(result.evaluation),
            "",
            "targets (from this run):",
            *(t.line(digits=3) for t in targets),
        ]
    )


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.learned", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and few requests: proves it runs, in seconds (the figures mean little)",
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=ROOT.parent / "shared" / "models",
        help=f"folder holding {CLASSIFIER} and {EMBEDDER} (default ../shared/models)",
    )
    parser.add_argument(
        "--images-dir",
        type=Path,
        default=ROOT.parent / "shared" / "images",
        help=f"folder holding {PHOTO} and imprinting/ (default ../shared/images)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the report; 1 when the evaluate command could not run."""
    args = _arguments(argv)
    result = measure(args, QUICK if args.quick else FULL)
    print(table(result, evaluate(result)), flush=True)
    if result.evaluation.problem is not None:
        _progress(f"benchmarks.learned: {result.evaluation.problem}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
