"""Detection over HTTP against the same pipeline in process, and Frigate's DeepStack round trip.

    python -m benchmarks.detection [--model mobilenet_v2_1.0_224_quant,objects] [--smoke]

One server at default settings and, in this process, the same models loaded with the same
options (`model_specs` of the same settings). Side by side in one run:

1. c=1 p50 of POST /detect against the in-process pipeline (decode, preprocess, invoke on the
   engine's owner thread, read the boxes) for a 1920x1080 snapshot and Frigate's 320x320 frame.
2. /detect throughput at c=4 against c=1.
3. Frigate's exact DeepStack request on one session: its round trip p50/p99 and how many
   answers came later than Frigate's 0.1 s `api_timeout` (each answer is waited for, so a late
   one is measured rather than cut off; the tests make no latency claim, this is where it is).
4. The fixed cost of a request: POST /classify of grace_hopper.jpg against its in-process
   pipeline, and where each case's time goes (the server's stages, the app outside them, HTTP).

The photos: kite_and_cold.jpg cropped to 16:9 and upscaled to 1920x1080 (with the benchmark's
sensor-like noise, `photos.scene`) at JPEG quality 90; the same photo squashed to 320x320 and
saved with PIL's defaults, as Frigate's DeepStack plugin sends its frame; grace_hopper.jpg as is.
`--model objects` measures a detector served alone (Frigate's set-up);
`--model mobilenet_v2_1.0_224_quant` the classifier alone (the classify case only: its fixed
cost, within 1.05x of the pipeline). Whatever is served, a request that finds the process
otherwise idle runs on every core (docs/models.md, "Several models").

In-process and HTTP blocks alternate, each round swapping their order, so load that drifts on a
shared machine falls on both alike: only the ratios compare across runs, and each figure notes
the CPUs other processes took meanwhile. Prints a table and writes JSON into benchmarks/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from PIL import Image

from benchmarks import load, photos, servers
from benchmarks.flags import add_model_flags
from benchmarks.stats import Summary, summarize
from benchmarks.targets import Target
from edge_server.config.settings import DEFAULT_MODEL, Settings
from edge_server.core import segmentation
from edge_server.core.detection import Task
from edge_server.core.engine import Engine
from edge_server.serving.specs import model_specs

ROOT = Path(__file__).resolve().parent.parent
DETECTOR_ALIAS = "objects"
MODELS = f"{DEFAULT_MODEL},{DETECTOR_ALIAS}"
SOURCE, PORTRAIT = "kite_and_cold.jpg", "grace_hopper.jpg"
HD, FRAME, CLASSIFY = "detect 1920x1080", "detect 320x320", "classify 512x600"
HD_QUALITY = 90
DETECT, CLASSIFY_PATH, DEEPSTACK = "/detect", "/classify", "/v1/vision/detection"
FRIGATE_TIMEOUT_S = 0.1  # Frigate's DeepStack detector default (api_timeout)
# How long this benchmark waits for each of Frigate's answers: far past its timeout, so a late
# answer's round trip is measured (and counted over the budget) rather than cut at 0.1 s.
FRIGATE_WAIT_S = 30.0
LEVELS = (1, 4)
# Stage times the server reports (timing_ms) and the in-process pipeline measures alike.
STAGES = ("decode", "preprocess", "queue", "inference", "postprocess")
REST, HTTP_ONLY, ROUND_TRIP = "rest", "http", "round trip"


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    rounds: int  # in-process / HTTP block pairs per case, order swapped each round
    samples: int  # per block, at most
    block_seconds: float  # per block, at most
    level_seconds: float  # per concurrency level and round, at most
    frigate_requests: int


FULL = Plan(rounds=3, samples=60, block_seconds=6.0, level_seconds=4.0, frigate_requests=400)
SMOKE = Plan(rounds=1, samples=3, block_seconds=1.0, level_seconds=0.5, frigate_requests=5)


@dataclass(frozen=True)
class Case:
    """One upload measured both ways."""

    name: str
    task: Task
    path: str
    jpeg: bytes


@dataclass(frozen=True)
class Usage:
    """CPU time over a stretch of wall time: the server's, this process's, everybody else's."""

    wall_s: float = 0.0
    server_s: float = 0.0
    own_s: float = 0.0
    others_s: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(self.fields(), other.fields(), strict=True)))

    def fields(self) -> tuple[float, float, float, float]:
        """The four figures, in field order."""
        return self.wall_s, self.server_s, self.own_s, self.others_s

    @property
    def others_cpus(self) -> float:
        """CPUs other processes (another job on the shared machine) kept busy meanwhile."""
        return max(0.0, self.others_s / self.wall_s) if self.wall_s else 0.0


class Meter:
    """Measures the Usage from its creation to `stop()`."""

    def __init__(self, server: servers.ServerProcess) -> None:
        self.server = server
        self.started = self._now()

    def _now(self) -> Usage:
        return Usage(
            time.perf_counter(), self.server.cpu_s(), time.process_time(), servers.machine_busy_s()
        )

    def stop(self) -> Usage:
        """Wall and CPU time since the start; `others_s` is the machine's minus ours."""
        wall, server, own, machine = (
            b - a for a, b in zip(self.started.fields(), self._now().fields(), strict=True)
        )
        return Usage(wall, server, own, machine - server - own)


@dataclass
class Side:
    """One way of running a case: latencies, each request's stage times, CPU time (of the
    process doing the work: this one in process, the server over HTTP)."""

    latencies_ms: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)
    cpu_s: float = 0.0
    usage: Usage = field(default_factory=Usage)

    def add(self, latency_ms: float, stages: Mapping[str, float]) -> None:
        """One request: its latency and its stages (ms)."""
        self.latencies_ms.append(latency_ms)
        for stage, ms in stages.items():
            self.stages.setdefault(stage, []).append(ms)

    def summary(self) -> Summary:
        """Percentiles of the latencies; CPU time per request; other processes' CPUs."""
        summary = summarize(self.latencies_ms, cpu_s=self.cpu_s)
        return dataclasses.replace(summary, others_cpus=self.usage.others_cpus)

    def means(self) -> dict[str, float]:
        """Mean of each stage (means add up, unlike medians), and of the latency."""
        means = {stage: statistics.fmean(ms) for stage, ms in self.stages.items()}
        means[ROUND_TRIP] = statistics.fmean(self.latencies_ms)
        return means


@dataclass
class Compared:
    """A case in process and over HTTP at c=1."""

    case: Case
    in_process: Side = field(default_factory=Side)
    http: Side = field(default_factory=Side)

    @property
    def ratio(self) -> float:
        """HTTP p50 / in-process p50."""
        return self.http.summary().p50 / self.in_process.summary().p50


@dataclass(frozen=True)
class FrigateRun:
    """Frigate's requests on one session: round trips, timeouts, what the server reported."""

    round_trips_ms: list[float]
    timed_out: int  # no answer within FRIGATE_WAIT_S
    errors: int
    inference_ms: list[int]  # the answers' inferenceMs (whole ms)
    others_cpus: float = 0.0

    def over_budget(self) -> int:
        """Answers that came later than Frigate's timeout: it would have had none for them."""
        return sum(ms > FRIGATE_TIMEOUT_S * 1000 for ms in self.round_trips_ms)

    def invoke_share(self) -> float | None:
        """Median inferenceMs over the median round trip."""
        if not self.inference_ms:
            return None
        return statistics.median(self.inference_ms) / statistics.median(self.round_trips_ms)

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        trips = self.round_trips_ms
        summary = summarize(trips)
        return {
            "requests": len(trips),
            "p50_ms": round(summary.p50, 3),
            "p99_ms": round(summary.p99, 3),
            "max_ms": round(max(trips), 3),
            "over_timeout": self.over_budget(),
            "timed_out": self.timed_out,
            "errors": self.errors,
            "inference_ms_p50": statistics.median(self.inference_ms) if self.inference_ms else None,
            "invoke_share": self.invoke_share(),
            "others_cpus": round(self.others_cpus, 3),
        }


@dataclass(frozen=True)
class Result:
    """Everything one run measured."""

    context: dict[str, Any]
    compared: list[Compared]
    levels: dict[str, dict[int, Summary]]  # case -> concurrency -> summary
    frigate: FrigateRun | None  # None: no detector served (the classifier alone)


# --- photos ---------------------------------------------------------------------------------


def frigate_frame(picture: Image.Image) -> bytes:
    """The picture squashed to 320x320 and saved as Frigate's plugin saves it (PIL defaults)."""
    with io.BytesIO() as out:
        picture.resize((320, 320)).save(out, format="JPEG")
        return out.getvalue()


def make_cases(images: Path) -> list[Case]:
    """The three uploads: a 1080p snapshot and Frigate's frame of kite_and_cold, grace_hopper."""
    kite = photos.open_rgb(images / SOURCE)
    snapshot = photos.jpeg(photos.scene(kite, 1920, 1080, seed=0), HD_QUALITY)
    return [
        Case(HD, Task.detection, DETECT, snapshot),
        Case(FRAME, Task.detection, DETECT, frigate_frame(kite)),
        Case(CLASSIFY, Task.classification, CLASSIFY_PATH, (images / PORTRAIT).read_bytes()),
    ]


# --- the two ways of running a case ---------------------------------------------------------


def in_process_once(engine: Engine, data: bytes, settings: Settings) -> dict[str, float]:
    """One upload through the service's pipeline on this thread and the engine's owner thread:
    the stage times, and the rest of the wall time."""
    started = time.perf_counter()
    prepared = engine.prepare(
        data, max_pixels=settings.max_image_pixels, min_side=settings.min_image_side
    )
    inference = engine.submit(prepared.tensor).result()
    post_started = time.perf_counter()
    if engine.info.task is Task.detection:
        engine.detect(
            inference,
            prepared.image,
            min_score=settings.min_score,
            max_results=settings.max_detections,
        )
    elif engine.info.task is Task.segmentation:  # what /segment's JSON answer reads
        image = prepared.image
        class_map = segmentation.read(
            inference.raw,
            image_size=(image.width, image.height),
            input_size=engine.info.input_size,
            fit=prepared.resize,
        )
        segmentation.areas(class_map, engine.info.labels)
    else:
        engine.rank(inference.raw, settings.default_top_k)
    finished = time.perf_counter()
    stages = {
        "decode": prepared.decode_ms,
        "preprocess": prepared.preprocess_ms,
        "queue": inference.queue_ms,
        "inference": inference.inference_ms,
        "postprocess": (finished - post_started) * 1000,
    }
    wall = (finished - started) * 1000
    return {**stages, REST: wall - sum(stages.values()), ROUND_TRIP: wall}


def in_process_block(
    engine: Engine,
    data: bytes,
    settings: Settings,
    side: Side,
    plan: Plan,
    server: servers.ServerProcess,
) -> None:
    """Up to plan.samples pipeline runs (at least one), added to `side` (the server idles)."""
    meter = Meter(server)
    deadline = time.perf_counter() + plan.block_seconds
    for turn in range(plan.samples):
        if turn and time.perf_counter() > deadline:
            break
        stages = in_process_once(engine, data, settings)
        side.add(stages.pop(ROUND_TRIP), stages)
    usage = meter.stop()
    side.cpu_s += usage.own_s
    side.usage += usage


def http_stages(body: bytes, latency_ms: float) -> dict[str, float]:
    """The server's stages from an answer's timing_ms, the app's time outside them, and the
    time outside the app (HTTP parsing and writing, the sockets, the client)."""
    timing = json.loads(body)["timing_ms"]
    stages = {stage: float(timing[stage]) for stage in STAGES}
    total = float(timing["total"])
    return {**stages, REST: total - sum(stages.values()), HTTP_ONLY: latency_ms - total}


def http_block(server: servers.ServerProcess, request: bytes, side: Side, plan: Plan) -> None:
    """Up to plan.samples requests on one kept-alive connection, added to `side`."""
    meter = Meter(server)
    run = load.drive(
        server.port,
        [request],
        1,
        total=plan.samples,
        seconds=plan.block_seconds,
        keep_bodies=True,
    )
    usage = meter.stop()
    side.cpu_s += usage.server_s
    side.usage += usage
    if run.errors:
        raise RuntimeError(f"{run.errors} requests answered with an error")
    for latency, body in zip(run.latencies_ms, run.bodies, strict=True):
        side.add(latency, http_stages(body, latency))


def compare(
    case: Case, engine: Engine, settings: Settings, server: servers.ServerProcess, plan: Plan
) -> Compared:
    """The case in process and over HTTP in alternating blocks, after an unmeasured warm-up."""
    request = load.multipart_request(server.port, case.path, case.jpeg)
    warm = Plan(1, 2, plan.block_seconds, plan.level_seconds, 0)
    in_process_block(engine, case.jpeg, settings, Side(), warm, server)
    http_block(server, request, Side(), warm)
    result = Compared(case)
    blocks: list[Callable[[], None]] = [
        lambda: in_process_block(engine, case.jpeg, settings, result.in_process, plan, server),
        lambda: http_block(server, request, result.http, plan),
    ]
    for round_ in range(plan.rounds):
        for block in blocks if round_ % 2 == 0 else blocks[::-1]:
            block()
    _progress(
        f"  {case.name:18} c1 p50: in-process {result.in_process.summary().p50:7.2f} ms, "
        f"HTTP {result.http.summary().p50:7.2f} ms ({result.ratio:.3f}x)"
    )
    return result


# --- throughput -----------------------------------------------------------------------------


def throughput(
    server: servers.ServerProcess, case: Case, plan: Plan, levels: tuple[int, ...] = LEVELS
) -> dict[int, Summary]:
    """The case's endpoint at each of `levels`, levels alternating round by round."""
    requests_ = [load.multipart_request(server.port, case.path, case.jpeg)]
    runs: dict[int, list[load.Run]] = {level: [] for level in levels}
    usage: dict[int, Usage] = {level: Usage() for level in levels}
    for round_ in range(plan.rounds):
        for level in levels if round_ % 2 == 0 else levels[::-1]:
            load.drive(server.port, requests_, level, total=level, seconds=plan.level_seconds)
            meter = Meter(server)
            run = load.drive(
                server.port, requests_, level, total=1 << 30, seconds=plan.level_seconds
            )
            usage[level] += meter.stop()
            if run.errors:
                raise RuntimeError(f"c{level}: {run.errors} requests answered with an error")
            runs[level].append(run)
    pooled = {
        level: dataclasses.replace(
            summarize(
                [ms for run in done for ms in run.latencies_ms],
                sum(run.wall_s for run in done),
                usage[level].server_s,
            ),
            others_cpus=usage[level].others_cpus,
        )
        for level, done in runs.items()
    }
    _progress(
        f"  {case.name:18} throughput: "
        + ", ".join(f"c{level} {s.throughput:.1f}/s" for level, s in pooled.items())
    )
    return pooled


# --- Frigate --------------------------------------------------------------------------------


def frigate_once(session: requests.Session, url: str, frame: bytes) -> tuple[float, Any]:
    """Frigate's plugin's request and parse (its `detect_raw` up to `response.json()`), waiting
    FRIGATE_WAIT_S instead of 0.1 s: the round trip (ms) and the answer, None for none."""
    started = time.perf_counter()
    try:
        response = session.post(
            url + DEEPSTACK, data={"api_key": ""}, files={"image": frame}, timeout=FRIGATE_WAIT_S
        )
        answer = response.json()
    except requests.Timeout:
        answer = None
    return (time.perf_counter() - started) * 1000, answer


def frigate(port: int, frame: bytes, count: int) -> FrigateRun:
    """Frigate's request `count` times in a row on one session (after three unmeasured)."""
    url = f"http://127.0.0.1:{port}"
    trips: list[float] = []
    inference: list[int] = []
    timed_out = errors = 0
    with requests.Session() as session:
        for _ in range(3):
            frigate_once(session, url, frame)
        for _ in range(count):
            elapsed, answer = frigate_once(session, url, frame)
            trips.append(elapsed)
            if answer is None:
                timed_out += 1
            elif not answer.get("success"):
                errors += 1
            else:
                inference.append(int(answer["inferenceMs"]))
    return FrigateRun(trips, timed_out, errors, inference)


# --- the run --------------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.detection", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--model",
        default=MODELS,
        help=f"EDGE_MODEL of the server: a detector, and a classifier for the classify "
        f"figures (default: {MODELS})",
    )
    add_model_flags(parser, images_help=f"folder holding {SOURCE} and {PORTRAIT}")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--smoke", action="store_true", help="a few requests per figure: proves it runs, no more"
    )
    return parser.parse_args(argv)


def _settings(args: argparse.Namespace) -> Settings:
    """The server's settings: only the models, their folder and the runtime are given."""
    return Settings.model_validate(
        {
            "model": args.model.split(","),
            "models_dir": args.models_dir,
            "runtime": args.runtime,
        }
    )


def start_service(args: argparse.Namespace, log_name: str) -> servers.ServerProcess:
    """The server at default settings but for the models, their folder and the runtime."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(
        EDGE_MODEL=args.model,
        EDGE_MODELS_DIR=str(args.models_dir),
        EDGE_RUNTIME=args.runtime.value,
        EDGE_LOG_LEVEL="warning",
    )
    port = servers.free_port()
    command = servers.python_command(
        "-m", "edge_server", "serve", "--host", "127.0.0.1", "--port", str(port)
    )
    return servers.ServerProcess.start("service", command, env, port, args.out / log_name)


def load_engines(settings: Settings, served: list[dict[str, Any]]) -> dict[Task, Engine]:
    """The first detector and classifier, loaded as the server loaded them (checked)."""
    engines: dict[Task, Engine] = {}
    described = {model["name"]: model for model in served}
    for spec in model_specs(settings):
        engine = spec.load()
        if engine.info.task in engines:
            engine.close()
            continue
        engines[engine.info.task] = engine
        theirs = described[engine.info.name]["replica_threads"]
        if list(engine.info.replica_threads) != list(theirs):
            raise RuntimeError(
                f"{engine.info.name}: the server runs {theirs} threads per interpreter, "
                f"this process {list(engine.info.replica_threads)}"
            )
    if not engines.keys() & {Task.detection, Task.classification}:
        raise SystemExit(f"no detector or classifier among {settings.model}")
    return engines


def measure(args: argparse.Namespace, plan: Plan) -> Result:
    """Everything, with one server and the same models in this process."""
    cases = make_cases(args.images)
    settings = _settings(args)
    context: dict[str, Any] = {"load_average_before": os.getloadavg()}
    server = start_service(args, "detection-service.log")
    engines: dict[Task, Engine] = {}
    try:
        served = servers.get_json(server.port, "/v1/models")["models"]
        context["models"] = served
        context["ready_s"] = server.ready_s
        engines = load_engines(settings, served)
        _progress(f"service ready in {server.ready_s:.2f} s; " + _describe(served))
        compared = [
            compare(case, engines[case.task], settings, server, plan)
            for case in cases
            if case.task in engines
        ]
        levels = {
            case.name: throughput(server, case, plan)
            for case in cases
            if case.task is Task.detection and case.task in engines
        }
        frigate_run = None
        if Task.detection in engines:
            frame = next(case for case in cases if case.name == FRAME)
            _progress(f"  Frigate's request x {plan.frigate_requests} ...")
            meter = Meter(server)
            frigate_run = frigate(server.port, frame.jpeg, plan.frigate_requests)
            frigate_run = dataclasses.replace(frigate_run, others_cpus=meter.stop().others_cpus)
        context["memory_mb"] = server.memory_mb()
    finally:
        for engine in engines.values():
            engine.close()
        server.stop()
    context["load_average_after"] = os.getloadavg()
    return Result(context, compared, levels, frigate_run)


# --- targets, report and table --------------------------------------------------------------


def evaluate(compared: list[Compared], levels: Mapping[str, Mapping[int, Summary]]) -> list[Target]:
    """The brief's targets, each a ratio of two figures from this run: a c=1 request within
    1.10x of the in-process pipeline beside another model, 1.05x for a classifier alone."""
    alone = all(c.case.task is Task.classification for c in compared)
    bound = 1.05 if alone else 1.10
    targets = [
        Target(f"c1 {c.case.name}: HTTP p50 / in-process p50", c.ratio, bound, at_most=True)
        for c in compared
    ]
    targets += [
        Target(
            f"{name}: c4 throughput / c1 throughput",
            by_level[4].throughput / by_level[1].throughput,
            1.3,
            at_most=False,
        )
        for name, by_level in levels.items()
    ]
    return targets


def _describe(served: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{m['name']} ({m['task']}): {m['backend']} {m['backend_version']}, "
        f"{'+'.join(str(t) for t in m['replica_threads'])} threads, XNNPACK {m['xnnpack']}"
        for m in served
    )


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model"):
            return value.strip()
    return platform.machine()


def report(result: Result, targets: list[Target], when: str) -> dict[str, Any]:
    """The JSON document of a run."""
    context, compared = result.context, result.compared
    return {
        "when": when,
        "machine": {
            "cpu": _cpu_name(),
            "cpus_available": len(os.sched_getaffinity(0)),
            "load_average_before": context["load_average_before"],
            "load_average_after": context["load_average_after"],
        },
        "models": context["models"],
        "ready_s": round(context["ready_s"], 3),
        "memory_mb": {k: round(v, 1) for k, v in context["memory_mb"].items()},
        "c1": {
            c.case.name: {
                "jpeg_bytes": len(c.case.jpeg),
                "in_process": c.in_process.summary().as_dict(),
                "http": c.http.summary().as_dict(),
                "ratio": round(c.ratio, 4),
                "stage_means_ms": {
                    "in_process": _rounded(c.in_process.means()),
                    "http": _rounded(c.http.means()),
                },
            }
            for c in compared
        },
        "throughput": {
            name: {str(level): s.as_dict() for level, s in by_level.items()}
            for name, by_level in result.levels.items()
        },
        "frigate": result.frigate.as_dict() if result.frigate is not None else None,
        "targets": [t.as_dict() for t in targets],
    }


def _rounded(values: Mapping[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in values.items()}


def _c1_lines(compared: list[Compared]) -> list[str]:
    lines = [
        "1/4. c=1 p50 (ms), HTTP against the in-process pipeline (same engine options);",
        "     CPU ms per request of the process doing the work; others: CPUs other jobs took",
        f"  {'':18} {'KB':>5} {'in-process':>10} {'HTTP':>8} {'ratio':>7}"
        f" {'CPU in-proc':>11} {'server':>7} {'others':>7}",
    ]
    for c in compared:
        mine, theirs = c.in_process.summary(), c.http.summary()
        others = max(mine.others_cpus or 0.0, theirs.others_cpus or 0.0)
        lines.append(
            f"  {c.case.name:18} {len(c.case.jpeg) // 1000:5} {mine.p50:10.2f} "
            f"{theirs.p50:8.2f} {c.ratio:6.3f}x {mine.cpu_ms or 0:11.2f} "
            f"{theirs.cpu_ms or 0:7.2f} {others:7.2f}"
        )
    return lines


def _throughput_lines(
    levels: Mapping[str, Mapping[int, Summary]], compared: list[Compared]
) -> list[str]:
    serial = {c.case.name: c.in_process.summary() for c in compared}
    lines = [
        "2. /detect throughput (img/s), c=4 against c=1 (serial); the server's busy CPUs and",
        "   other jobs' CPUs at each level:",
        f"  {'':18} {'c1':>7} {'c4':>7} {'c4/c1':>7} {'c4 p50':>8} {'c4 p99':>8}"
        f" {'c4/in-proc':>10} {'CPUs c1':>8} {'c4':>5} {'others':>7}",
    ]
    for name, by_level in levels.items():
        one, four = by_level[1], by_level[4]
        lines.append(
            f"  {name:18} {one.throughput:7.1f} {four.throughput:7.1f} "
            f"{four.throughput / one.throughput:6.2f}x {four.p50:8.1f} {four.p99:8.1f} "
            f"{four.throughput / serial[name].throughput:9.2f}x {_busy(one):8.2f} "
            f"{_busy(four):5.2f} {max(one.others_cpus or 0.0, four.others_cpus or 0.0):7.2f}"
        )
    return lines


def _busy(summary: Summary) -> float:
    """CPUs the server kept busy: CPU time per request x requests per second."""
    return (summary.cpu_ms or 0.0) * summary.throughput / 1000


def _frigate_lines(run: FrigateRun, frame: Compared | None) -> list[str]:
    figures = run.as_dict()
    trips = summarize(run.round_trips_ms)
    share = run.invoke_share()
    lines = [
        f"3. Frigate's request (requests.Session().post({DEEPSTACK}, api_key, 320x320 frame)), "
        f"{figures['requests']} in a row on one session, each answer waited for:",
        f"  round trip p50 {trips.p50:.1f} ms, p99 {trips.p99:.1f} ms, max "
        f"{figures['max_ms']:.1f} ms; later than Frigate's {FRIGATE_TIMEOUT_S:g} s timeout: "
        f"{figures['over_timeout']} of {figures['requests']} (none within "
        f"{FRIGATE_WAIT_S:g} s: {run.timed_out}, errors: {run.errors}); "
        f"others {run.others_cpus:.2f} CPUs",
        f"  invoke share: inferenceMs p50 {figures['inference_ms_p50']} ms / round trip p50 = "
        + ("n/a" if share is None else f"{share:.2f}"),
    ]
    if frame is not None:
        means = frame.http.means()
        lines.append(
            f"  /detect at c=1, same frame: timing_ms.inference {means['inference']:.2f} ms "
            f"of a {means[ROUND_TRIP]:.2f} ms round trip (means) = "
            f"{means['inference'] / means[ROUND_TRIP]:.2f}; all but the invoke: "
            f"{means[ROUND_TRIP] - means['inference']:.2f} ms"
        )
    return lines


_PROFILE_ROWS = (
    ("decode", "decode"),
    ("preprocess", "preprocess"),
    ("queue", "queue: hand-off to the owner thread"),
    ("inference", "inference (invoke)"),
    ("postprocess", "postprocess (read boxes / rank)"),
    (REST, "rest: app outside the stages"),
    (HTTP_ONLY, "HTTP: round trip - timing_ms.total"),
    (ROUND_TRIP, "round trip"),
)


def _profile_lines(compared: list[Compared]) -> list[str]:
    lines = [
        "4. Where a c=1 request's time goes: means (ms; they add up), in-process | HTTP | diff",
        f"  {'':36}" + "".join(f" {c.case.name:>26}" for c in compared),
    ]
    for key, label in _PROFILE_ROWS:
        cells = []
        for c in compared:
            mine, theirs = c.in_process.means().get(key), c.http.means().get(key, 0.0)
            left = "-" if mine is None else f"{mine:.2f}"
            cells.append(f"{left:>8} {theirs:8.2f} {theirs - (mine or 0.0):+8.2f}")
        lines.append(f"  {label:36}" + "".join(f" {cell:>26}" for cell in cells))
    lines.append(
        "  (in-process rest: the owner thread handing the result back; HTTP rest: reading "
        "the upload, admission, the decode pool hop, building the answer)"
    )
    return lines


def table(result: Result, targets: list[Target]) -> str:
    """The human-readable summary."""
    context, compared = result.context, result.compared
    frame = next((c for c in compared if c.case.name == FRAME), None)
    before, after = context["load_average_before"], context["load_average_after"]
    lines = [
        _describe(context["models"]),
        f"CPU {_cpu_name()}, {len(os.sched_getaffinity(0))} available; load average "
        f"{before[0]:.2f} before, {after[0]:.2f} after; server RSS "
        f"{context['memory_mb']['rss_mb']:.0f} MB",
        "",
        *_c1_lines(compared),
        "",
        *_throughput_lines(result.levels, compared),
        "",
        *(_frigate_lines(result.frigate, frame) if result.frigate is not None else ["3. -"]),
        "",
        *_profile_lines(compared),
        "",
        "targets (ratios from this run):",
    ]
    lines += [t.line(digits=3) for t in targets]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (missed targets are reported, not failures)."""
    args = _arguments(argv)
    plan = SMOKE if args.smoke else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    result = measure(args, plan)
    targets = evaluate(result.compared, result.levels)
    print(table(result, targets))
    path = args.out / f"detection-{when}.json"
    path.write_text(json.dumps(report(result, targets, when), indent=2) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
