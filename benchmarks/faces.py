"""Faces: how well descriptors separate people, and what a face costs, in one run.

    python -m benchmarks.faces [--smoke] [--route PATH] [--models-dir DIR] [--images-dir DIR]

1. Accuracy, in this process, on ../shared/images/faces (five people, a stranger): the largest
   face of every photo, found by BlazeFace (full range) and described by dlib two ways: on the
   chip aligned on dlib's 5 landmarks (what the service does) and on the box cropped and
   resized (DeepStack's way). The table of same-person and different-person distances, the
   gap between them, and for each photo of a person registered with two others, the margin
   between its own person and the nearest other one matched by nearest descriptor and by the
   person's mean descriptor. With the calibration: what the threshold, the farthest
   same-person pair and the nearest different pair map to. Then leave one out, the fixed
   threshold against the one calibrated on the people registered, with and without a
   look-alike registered: held-out photos named right, strangers below 0.67.
2. Speed, side by side: a real `edge-server serve` (EDGE_MODEL the small classifier, faces at
   default settings) answering POST --route (default DeepStack's /v1/vision/face/recognize)
   for a one-face photo at c=1, against the same `Faces.recognize` in this process (decode,
   letterbox, the detector's invoke, landmarks, chip and descriptor on dlib's workers, the
   match), in alternating blocks, the person registered on both sides from another photo
   (with nobody registered a face is answered `unknown` undescribed); then faces per second
   at c=2 against c=1.
3. Memory per registered person: the bytes Python allocates for people imported from an export
   of 500 people x 5 photos (tracemalloc), and the bytes each takes on disk.
4. The Pi 4 estimate: the per-face time against the small classifier's one-thread invoke, timed
   in the same turns, scaled by that classifier's published Pi 4 time.

Only the ratios compare across runs; absolute times move with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import http.client
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from benchmarks import load, servers
from benchmarks.stats import summarize, timed_in_turns
from edge_server.config.settings import Settings
from edge_server.core import blazeface
from edge_server.core.engine import Engine, LoadOptions
from edge_server.core.face_description import Describer, crop_for
from edge_server.core.face_matching import (
    Calibration,
    Matching,
    calibrated_threshold,
    distances,
    nearest,
    spread,
)
from edge_server.core.imaging import ResizeMode
from edge_server.core.runtime import RuntimeChoice
from edge_server.serving.faces import Faces, faces_for
from edge_server.serving.people import People, Person

ROOT = Path(__file__).resolve().parent.parent
CLASSIFIER = "mobilenet_v1_0.25_128_quant"  # small: the server's default model is not measured
# The Pi 4 anchor: the default classifier, which a Pi 4 runs in 20-30 ms with 4 threads
# (docs/performance.md, published TensorFlow Lite figures), so about 65-100 ms with one at the
# ~3.3x four threads gain over one there (an estimate on an estimate; said so where printed).
ANCHOR = "mobilenet_v2_1.0_224_quant"
PI4_ANCHOR_MS = (65.0, 100.0)
ROUTE = "/v1/vision/face/recognize"
PHOTO = "obama/obama.jpg"  # one face, 910x1137
REGISTERED = "obama/obama2.jpg"  # the person both sides know, from another photo
T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    rounds: int
    block: int  # requests per block
    level_seconds: float


FULL = Plan(rounds=6, block=8, level_seconds=10.0)
SMOKE = Plan(rounds=1, block=2, level_seconds=1.0)


# --- 1. accuracy ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Described:
    """One photo's largest face, described both ways."""

    person: str  # the folder: a person, or "strangers"
    name: str
    aligned: npt.NDArray[np.float32]
    plain: npt.NDArray[np.float32]


def describe_photos(models_dir: Path, images_dir: Path, runtime: str) -> list[Described]:
    """Every person's and stranger's photo: the largest face, aligned and plain."""
    model = blazeface.FULL_RANGE
    engine = Engine.load(
        models_dir / "face_detection_full_range_sparse.tflite",
        LoadOptions(runtime=RuntimeChoice(runtime), num_threads=1, resize=ResizeMode.letterbox),
    )
    describer = Describer(
        models_dir / "shape_predictor_5_face_landmarks.dat",
        models_dir / "dlib_face_recognition_resnet_model_v1.dat",
        workers=1,
    )
    described = []
    try:
        for path in sorted((images_dir / "faces").glob("*/*")):
            if path.parent.name == "groups" or path.suffix.lower() == ".md":
                continue
            picture = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
            tensor, placed = blazeface.letterbox(picture, model.side)
            regressors, scores = engine.submit(tensor).result().outputs
            found = [
                blazeface.unletterbox(f, placed)
                for f in blazeface.decode(regressors, scores, model)
            ]
            if not found:
                raise RuntimeError(f"no face in {path}")
            face = max(found, key=lambda f: f.area)
            w, h = picture.size
            crop = crop_for(
                picture, (face.x_min * w, face.y_min * h, face.x_max * w, face.y_max * h)
            )
            aligned = describer.describe_now([crop])[0]
            plain = describer.describe_now([crop], aligned=False)[0]
            described.append(Described(path.parent.name, path.name, aligned, plain))
    finally:
        describer.close()
        engine.close()
    return described


def pair_distances(
    described: Sequence[Described], aligned: bool
) -> tuple[list[float], list[float]]:
    """Same-person and different-person distances over every pair of photos."""
    same, different = [], []
    for a, b in itertools.combinations(described, 2):
        va, vb = (a.aligned, b.aligned) if aligned else (a.plain, b.plain)
        d = float(np.linalg.norm(va - vb))
        if a.person == b.person and a.person != "strangers":
            same.append(d)
        else:
            different.append(d)
    return same, different


def margins(described: Sequence[Described], matching: Matching) -> list[float]:
    """For each photo of a person with three or more: registered the two others, the distance
    to the nearest other person minus the distance to its own (positive: told apart)."""
    people: dict[str, list[Described]] = {}
    for d in described:
        if d.person != "strangers":
            people.setdefault(d.person, []).append(d)
    found = []
    for person, photos in people.items():
        if len(photos) < 3:
            continue
        for held in photos:
            own = [p.aligned for p in photos if p is not held][:2]
            registered = {person: np.stack(own)}
            for other, theirs in people.items():
                if other != person:
                    registered[other] = np.stack([p.aligned for p in theirs[:2]])
            mine = nearest(held.aligned[None], {person: registered[person]}, matching)[0]
            others = {k: v for k, v in registered.items() if k != person}
            rival = nearest(held.aligned[None], others, matching)[0]
            found.append(rival.distance - mine.distance)
    return found


def accuracy_lines(described: Sequence[Described], calibration: Calibration) -> list[str]:
    """The distance table, the matching comparison and the calibration."""
    lines = [
        f"{len(described)} photos "
        f"({sum(d.person == 'strangers' for d in described)} of a stranger), "
        "largest face each, full-range BlazeFace",
        "",
        "| descriptor input | same person: min / mean / max | different: min / mean / max | gap |",
        "|---|---|---|---|",
    ]
    for aligned, label in ((True, "aligned chip (5 landmarks)"), (False, "plain crop, resized")):
        same, different = pair_distances(described, aligned)
        lines.append(
            f"| {label} | {min(same):.3f} / {statistics.mean(same):.3f} / {max(same):.3f} "
            f"({len(same)} pairs) | {min(different):.3f} / {statistics.mean(different):.3f} / "
            f"{max(different):.3f} ({len(different)} pairs) | {min(different) - max(same):+.3f} |"
        )
    lines += [
        "",
        "| matching (2 photos registered) | least margin | mean margin | told apart |",
        "|---|---|---|---|",
    ]
    for matching in Matching:
        found = margins(described, matching)
        lines.append(
            f"| {matching.value} | {min(found):+.3f} | {statistics.mean(found):+.3f} | "
            f"{sum(m > 0 for m in found)}/{len(found)} |"
        )
    same, different = pair_distances(described, True)
    strangers = [d for d in described if d.person == "strangers"]
    known = [d for d in described if d.person != "strangers"]
    stranger_nearest = min(
        float(distances(s.aligned[None], np.stack([k.aligned for k in known])).min())
        for s in strangers
    )
    lines += [
        "",
        f"calibration: threshold {calibration.threshold} -> "
        f"{calibration.confidence(calibration.threshold):.3f}; "
        f"farthest same-person pair {max(same):.3f} -> {calibration.confidence(max(same)):.3f}; "
        f"nearest different pair {min(different):.3f} -> "
        f"{calibration.confidence(min(different)):.3f}; "
        f"the stranger's nearest known face {stranger_nearest:.3f} -> "
        f"{calibration.confidence(stranger_nearest):.3f}",
    ]
    return lines


@dataclass(frozen=True)
class Outcome:
    """One calibration's leave-one-out results."""

    named: int  # held-out photos named as their person at >= the default confidence
    wrong: int  # held-out photos named as someone else
    held: int
    strangers_named: int  # stranger photos scoring >= the default confidence
    strangers: int
    least_own: float  # the lowest confidence a held-out photo of a person got
    most_stranger: float  # the highest confidence a stranger got
    thresholds: tuple[float, float]  # the effective threshold's range over the galleries


def leave_one_out(
    described: Sequence[Described], settings: Settings, calibrate: bool, extra: int = 0
) -> Outcome:
    """Each photo of a person held out with every other photo registered (is it named
    right?), then each person left out altogether with the others registered (are their
    photos, a stranger's, and the stranger's photo below the default?). `extra`: that many
    look-alikes registered beside (another photo of the first person with two or more under
    a name of its own, which counts as right for that person), to show what calibration
    does when registered people are close."""
    known = [d for d in described if d.person != "strangers"]
    strangers = [d for d in described if d.person == "strangers"]
    floor = settings.face_min_confidence

    def gallery(photos: Sequence[Described]) -> dict[str, npt.NDArray[np.float32]]:
        # A look-alike: one photo of a person with two or more, under a name of its own.
        twins = [d for d in photos if sum(p.person == d.person for p in photos) >= 2][:extra]
        people: dict[str, list[npt.NDArray[np.float32]]] = {}
        for d in photos:
            name = f"look-alike of {d.person}" if any(d is t for t in twins) else d.person
            people.setdefault(name, []).append(d.aligned)
        return {name: np.stack(vectors) for name, vectors in people.items()}

    def calibration(people: dict[str, npt.NDArray[np.float32]]) -> Calibration:
        threshold = settings.face_threshold
        if calibrate:
            threshold = calibrated_threshold(
                threshold, spread(people), settings.face_calibration_margin
            )
        return Calibration(threshold, floor)

    named = wrong = strangers_named = 0
    own: list[float] = []
    stranger_scores: list[float] = []
    thresholds: list[float] = []
    for held in known:
        people = gallery([d for d in known if d is not held])
        scale = calibration(people)
        thresholds.append(scale.threshold)
        match = nearest(held.aligned[None], people)[0]
        confidence = scale.confidence(match.distance)
        if confidence >= floor:
            right = match.name in (held.person, f"look-alike of {held.person}")
            named += right
            wrong += not right
        own.append(confidence)
    tests = []
    for person in sorted({d.person for d in known}):
        others = [d for d in known if d.person != person]
        tests.append((others, [d for d in known if d.person == person]))
    tests.append((known, strangers))
    count = 0
    for registered, outsiders in tests:
        people = gallery(registered)
        scale = calibration(people)
        thresholds.append(scale.threshold)
        for match in nearest(np.stack([d.aligned for d in outsiders]), people):
            confidence = scale.confidence(match.distance)
            strangers_named += confidence >= floor
            stranger_scores.append(confidence)
            count += 1
    return Outcome(
        named,
        wrong,
        len(known),
        strangers_named,
        count,
        min(own),
        max(stranger_scores),
        (min(thresholds), max(thresholds)),
    )


def calibration_lines(described: Sequence[Described], settings: Settings) -> list[str]:
    """Fixed against calibrated threshold, leave-one-out, with and without a look-alike."""
    lines = [
        "| threshold | gallery | held-out photo named right (wrong) | least own confidence | "
        "strangers at >= 0.67 | most stranger confidence | effective threshold |",
        "|---|---|---|---|---|---|---|",
    ]
    for extra, gallery in ((0, "the people"), (1, "+ a look-alike")):
        for calibrate, label in ((False, "fixed"), (True, "calibrated")):
            o = leave_one_out(described, settings, calibrate, extra)
            low, high = o.thresholds
            lines.append(
                f"| {label} | {gallery} | {o.named}/{o.held} ({o.wrong}) | {o.least_own:.3f} | "
                f"{o.strangers_named}/{o.strangers} | {o.most_stranger:.3f} | "
                f"{low:.3f}-{high:.3f} |"
            )
    return lines


# --- 2. speed -----------------------------------------------------------------------------------


class Loop:
    """One event loop in this process for the in-process Faces."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __call__(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)


def start_server(args: argparse.Namespace, log: Path) -> servers.ServerProcess:
    """A server at default settings but for a small classifier and the folders."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(
        EDGE_MODEL=CLASSIFIER,
        EDGE_MODELS_DIR=str(args.models_dir),
        EDGE_RUNTIME=args.runtime,
        EDGE_LOG_LEVEL="warning",
    )
    port = servers.free_port()
    command = servers.python_command(
        "-m", "edge_server", "serve", "--host", "127.0.0.1", "--port", str(port)
    )
    return servers.ServerProcess.start("service", command, env, port, log)


def register_over_http(port: int, userid: str, image: bytes) -> None:
    """DeepStack's registration of one photo (userid and image form fields)."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        [
            f'--{boundary}\r\nContent-Disposition: form-data; name="userid"\r\n\r\n'.encode(),
            userid.encode(),
            f"\r\n--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="image"; filename="photo.jpg"\r\n',
            b"Content-Type: image/jpeg\r\n\r\n",
            image,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(
            "POST",
            "/v1/vision/face/register",
            body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"registration answered {response.status}: {answer[:200]!r}")


def in_process_block(faces: Faces, loop: Loop, data: bytes, count: int) -> list[float]:
    """`count` recognitions one after another in this process, each timed (ms)."""
    taken = []
    for _ in range(count):
        started = time.perf_counter()
        answer = loop(faces.recognize(data, min_confidence=0.67, started=started))
        taken.append((time.perf_counter() - started) * 1000)
        if len(answer.faces) != 1:
            raise RuntimeError(f"{len(answer.faces)} faces in the benchmark photo")
    return taken


def http_block(port: int, request: bytes, count: int) -> list[float]:
    """`count` requests over one kept-alive connection, each timed (ms)."""
    run = load.drive(port, [request], 1, total=count, seconds=600.0, keep_bodies=True)
    if run.errors:
        raise RuntimeError(f"{run.errors} failed requests")
    for body in run.bodies:
        answer = json.loads(body)
        faces = answer.get("predictions", answer.get("faces"))
        if faces is not None and len(faces) != 1:
            raise RuntimeError(f"{len(faces)} faces in the answer: {body[:200]!r}")
    return run.latencies_ms


def speed_lines(
    args: argparse.Namespace, plan: Plan, out: Path
) -> tuple[list[str], dict[str, Any]]:
    """c=1 through the server against in process, alternating; c=2 faces/s; the Pi 4 estimate."""
    data = (args.images_dir / "faces" / PHOTO).read_bytes()
    settings = Settings(models_dir=args.models_dir, runtime=RuntimeChoice(args.runtime))
    faces = faces_for(settings)
    if faces is None:
        raise RuntimeError(f"the face models are not in {args.models_dir}")
    loop = Loop()
    loop(faces.start())
    server = start_server(args, out / "faces-server.log")
    try:
        # Someone registered on both sides: with nobody, a face is `unknown` undescribed.
        someone = (args.images_dir / "faces" / REGISTERED).read_bytes()
        loop(faces.register("obama", [someone]))
        register_over_http(server.port, "obama", someone)
        request = load.multipart_request(server.port, args.route, data)
        http_block(server.port, request, 2)  # the server's dlib workers start on first use
        in_process_block(faces, loop, data, 2)
        inside: list[float] = []
        through: list[float] = []
        busy, wall = servers.machine_busy_s(), time.perf_counter()
        for _ in range(plan.rounds):
            inside += in_process_block(faces, loop, data, plan.block)
            through += http_block(server.port, request, plan.block)
        cpus = (servers.machine_busy_s() - busy) / (time.perf_counter() - wall)
        single = load.drive(server.port, [request], 1, total=10_000, seconds=plan.level_seconds)
        double = load.drive(server.port, [request], 2, total=10_000, seconds=plan.level_seconds)
        memory = server.memory_mb()
        workers = worker_memory_mb(server)
    finally:
        server.stop()
        loop(faces.close())
    a, b = summarize(inside), summarize(through)
    c1 = summarize(single.latencies_ms, single.wall_s)
    c2 = summarize(double.latencies_ms, double.wall_s)
    ratio = b.p50 / a.p50
    lines = [
        f"| {PHOTO}, one face | p50 ms | p95 ms | n |",
        "|---|---|---|---|",
        f"| in process (Faces.recognize) | {a.p50:.1f} | {a.p95:.1f} | {a.count} |",
        f"| through the server ({args.route}) | {b.p50:.1f} | {b.p95:.1f} | {b.count} |",
        "",
        f"c=1 through the server / in process: {ratio:.3f}x (target <= 1.10x); the machine's "
        f"CPUs were {cpus:.2f} busy meanwhile, of which one request at a time takes ~1",
        f"faces/s: c=1 {c1.throughput:.1f}, c=2 {c2.throughput:.1f} "
        f"({c2.throughput / c1.throughput:.2f}x); c=2 p50 {c2.p50:.1f} ms; "
        f"errors {single.errors + double.errors}",
        f"server RSS after the run: {memory['rss_mb']:.0f} MB (peak "
        f"{memory['peak_rss_mb']:.0f} MB), and {len(workers)} dlib worker processes of "
        + ", ".join(f"{mb:.0f}" for mb in workers)
        + " MB",
    ]
    return lines, {
        "in_process": a.as_dict(),
        "http": b.as_dict(),
        "ratio_c1": ratio,
        "busy_cpus": cpus,
        "c1": c1.as_dict(),
        "c2": c2.as_dict(),
        "server_memory_mb": memory,
        "worker_memory_mb": workers,
    }


def pi_lines(args: argparse.Namespace, plan: Plan) -> list[str]:
    """The per-face stages and the small classifier's one-thread invoke, timed in turns."""
    settings = Settings(models_dir=args.models_dir, runtime=RuntimeChoice(args.runtime))
    faces = faces_for(settings)
    assert faces is not None
    loop = Loop()
    loop(faces.start())
    loop(faces.register("obama", [(args.images_dir / "faces" / REGISTERED).read_bytes()]))
    classifier = Engine.load(
        args.models_dir / f"{ANCHOR}.tflite",
        LoadOptions(runtime=RuntimeChoice(args.runtime), num_threads=1, replicas=1),
    )
    data = (args.images_dir / "faces" / PHOTO).read_bytes()
    blank = np.zeros(classifier.info.input.shape, classifier.info.input.dtype)
    try:
        face, invoke = timed_in_turns(
            [
                lambda: loop(
                    faces.recognize(data, min_confidence=0.67, started=time.perf_counter())
                ),
                lambda: classifier.submit(blank).result(),
            ],
            repeats=plan.rounds * plan.block * 2,
            seconds=plan.level_seconds * 2,
        )
    finally:
        classifier.close()
        loop(faces.close())
    share = face.p50 / invoke.p50
    low, high = (share * ms for ms in PI4_ANCHOR_MS)
    return [
        f"a face (decode to descriptor, one face) takes {face.p50:.1f} ms here, {share:.2f}x the "
        f"{ANCHOR} one-thread invoke ({invoke.p50:.1f} ms) timed in the same turns.",
        f"At the Pi 4's {PI4_ANCHOR_MS[0]:g}-{PI4_ANCHOR_MS[1]:g} ms for that invoke on one "
        f"core: at most about {low:.0f}-{high:.0f} ms a face ({1000 / high:.1f}-"
        f"{1000 / low:.1f} faces/s a core, one dlib worker a core). An upper bound: the anchor "
        "is an int8 model, which this machine's VNNI speeds far more than dlib's float code; "
        "run this benchmark with --skip-server on the board for its own figure.",
    ]


def worker_memory_mb(server: servers.ServerProcess) -> list[float]:
    """Resident memory of the server's dlib workers (its spawned children), in MB each."""
    sizes = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent != server.process.pid:
                continue
            command = (stat.parent / "cmdline").read_bytes()
            status = (stat.parent / "status").read_text()
        except (OSError, ValueError):
            continue  # gone meanwhile
        if b"spawn_main" not in command:
            continue  # multiprocessing's resource tracker
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes


# --- 3. memory ----------------------------------------------------------------------------------


def memory_lines(people: int = 500, photos: int = 5) -> list[str]:
    """Python's allocations and the disk for `people` imported from an export."""
    rng = np.random.default_rng(0)
    store = People(None, max_people=10_000, max_photos=1000)
    source = People(None, max_people=10_000, max_photos=1000)
    for n in range(people):
        vectors = rng.normal(0, 0.1, (photos, 128)).astype(np.float32)
        source.people[f"person {n}"] = Person(f"person {n}", vectors, [0] * photos)
    exported = source.export()
    del source
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    asyncio.run(store.import_(exported, len(exported)))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    in_memory = (after - before) / people
    with tempfile.TemporaryDirectory() as folder:
        disk = People(Path(folder), max_people=10_000, max_photos=1000)
        disk.open()
        asyncio.run(disk.import_(exported, len(exported)))
        on_disk = sum(p.stat().st_size for p in Path(folder).glob("*.person")) / people
        disk.close()
    return [
        f"{people} people x {photos} photos: {in_memory / 1024:.1f} KiB of memory a person "
        f"({in_memory / photos:.0f} B a photo; 512 B of it the descriptor), "
        f"{on_disk / 1024:.1f} KiB on disk a person"
    ]


# --- the run ------------------------------------------------------------------------------------


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, no figures")
    parser.add_argument("--route", default=ROUTE, help="the face route the server answers")
    parser.add_argument("--models-dir", type=Path, default=ROOT.parent / "shared" / "models")
    parser.add_argument("--images-dir", type=Path, default=ROOT.parent / "shared" / "images")
    parser.add_argument("--runtime", default=os.environ.get("EDGE_RUNTIME", "auto"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--skip-server", action="store_true", help="accuracy, memory and Pi only")
    return parser.parse_args(argv)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    plan = SMOKE if args.smoke else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    settings = Settings(models_dir=args.models_dir)
    calibration = Calibration(settings.face_threshold, settings.face_min_confidence)
    _progress("describing the photos...")
    described = describe_photos(args.models_dir, args.images_dir, args.runtime)
    sections = ["## Distances", "", *accuracy_lines(described, calibration)]
    sections += ["", "## Calibration, leave one out", "", *calibration_lines(described, settings)]
    report: dict[str, Any] = {}
    if not args.skip_server:
        _progress("through the server and in process...")
        lines, report = speed_lines(args, plan, args.out)
        sections += ["", "## Speed", "", *lines]
    _progress("the Pi 4 estimate...")
    sections += ["", "## Raspberry Pi 4 (estimate)", "", *pi_lines(args, plan)]
    sections += ["", "## Memory per registered person", "", *memory_lines()]
    text = "\n".join(sections)
    print(text)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    (args.out / f"faces-{when}.json").write_text(json.dumps({"text": text, **report}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
