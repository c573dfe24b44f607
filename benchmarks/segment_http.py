"""Segmentation over HTTP against the same pipeline in process, and what pictures cost.

    python -m benchmarks.segment_http [--model segmenter] [--smoke]

One server at default settings (`EDGE_MODEL=segmenter`: the segmenter served alone, with
every CPU) and, in this process, the same model loaded with the same options. Side by side in
one run:

1. c=1 p50 of POST /segment (the JSON answer: classes, shares, boxes) for a 1920x1080 JPEG
   against the in-process pipeline (decode, letterbox, invoke on the engine's owner thread,
   read the class map into classes), in alternating blocks (`detection.compare`).
2. What the mask PNG (`mask=png`) and the overlay picture (`format=overlay`, a JPEG) add to
   the plain answer, through HTTP at 1920x1080 and at 12 MP (4000x3000): the three requests
   in alternating blocks, each block's p50, and the differences.
3. /segment throughput at c=2 against c=1 (serial), at 1920x1080.

The photos: kite_and_cold.jpg cropped and upscaled to each size with the benchmark's
sensor-like noise (`photos.scene`), JPEG quality 90, as `benchmarks.detection` makes its
snapshot. Only the ratios compare across runs: each block notes the CPUs other processes took.
Prints a table and writes JSON into benchmarks/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import detection, load, photos, servers
from benchmarks.detection import Case, Compared, Meter, Plan, Usage
from benchmarks.flags import add_model_flags
from benchmarks.stats import Summary, summarize
from benchmarks.targets import Target
from edge_server.config.settings import Settings
from edge_server.core.detection import Task
from edge_server.core.engine import Engine
from edge_server.serving.specs import model_specs

ROOT = Path(__file__).resolve().parent.parent
MODELS = "segmenter"
SOURCE = "kite_and_cold.jpg"
QUALITY = 90
HD, TWELVE = "1920x1080", "4000x3000"
SIZES = {HD: (1920, 1080), TWELVE: (4000, 3000)}
SEGMENT = "/segment"
# The three answers compared at each size: the JSON, with the mask, and the overlay picture.
PLAIN, MASK, OVERLAY = "classes (JSON)", "+ mask=png", "format=overlay"
VARIANTS = {PLAIN: SEGMENT, MASK: SEGMENT + "?mask=png", OVERLAY: SEGMENT + "?format=overlay"}
LEVELS = (1, 2)

# Short blocks, many rounds: on a shared machine load drifts within seconds, and finer
# alternation lets it fall on both sides alike.
FULL = Plan(rounds=6, samples=30, block_seconds=3.0, level_seconds=3.0, frigate_requests=0)
SMOKE = Plan(rounds=1, samples=2, block_seconds=1.0, level_seconds=0.5, frigate_requests=0)


@dataclass
class Costs:
    """One size's three answers over HTTP at c=1: latencies and usage per answer."""

    size: str
    jpeg_bytes: int
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    usage: dict[str, Usage] = field(default_factory=dict)

    def summary(self, variant: str) -> Summary:
        """The variant's latency percentiles, CPU per request and others' CPUs."""
        usage = self.usage[variant]
        return dataclasses.replace(
            summarize(self.latencies_ms[variant], cpu_s=usage.server_s),
            others_cpus=usage.others_cpus,
        )

    def added_ms(self, variant: str) -> float:
        """p50 of the variant minus p50 of the plain answer."""
        return self.summary(variant).p50 - self.summary(PLAIN).p50


@dataclass(frozen=True)
class Result:
    """Everything one run measured."""

    context: dict[str, Any]
    compared: Compared
    costs: list[Costs]
    levels: dict[int, Summary]


def snapshots(images: Path) -> dict[str, bytes]:
    """kite_and_cold.jpg as a noisy JPEG at each size of SIZES."""
    kite = photos.open_rgb(images / SOURCE)
    return {
        name: photos.jpeg(photos.scene(kite, width, height, seed=0), QUALITY)
        for name, (width, height) in SIZES.items()
    }


def picture_costs(server: servers.ServerProcess, size: str, jpeg: bytes, plan: Plan) -> Costs:
    """The three answers of VARIANTS in alternating blocks of up to plan.samples requests."""
    requests_ = {
        variant: load.multipart_request(server.port, path, jpeg)
        for variant, path in VARIANTS.items()
    }
    costs = Costs(size, len(jpeg))
    for request in requests_.values():  # warm-up, unmeasured
        load.drive(server.port, [request], 1, total=1, seconds=plan.block_seconds)
    order = list(requests_)
    for round_ in range(plan.rounds):
        for variant in order if round_ % 2 == 0 else order[::-1]:
            meter = Meter(server)
            run = load.drive(
                server.port,
                [requests_[variant]],
                1,
                total=plan.samples,
                seconds=plan.block_seconds,
            )
            usage = meter.stop()
            if run.errors:
                raise RuntimeError(f"{size} {variant}: {run.errors} requests answered an error")
            costs.latencies_ms.setdefault(variant, []).extend(run.latencies_ms)
            costs.usage[variant] = costs.usage.get(variant, Usage()) + usage
    _progress(f"  {size}: " + ", ".join(f"{v} p50 {costs.summary(v).p50:.1f} ms" for v in VARIANTS))
    return costs


def load_segmenter(settings: Settings, served: list[dict[str, Any]]) -> Engine:
    """The first segmenter of the settings, loaded as the server loaded it (checked)."""
    described = {model["name"]: model for model in served}
    others: list[Engine] = []
    found: Engine | None = None
    try:
        for spec in model_specs(settings):
            engine = spec.load()
            if found is None and engine.info.task is Task.segmentation:
                found = engine
            else:
                others.append(engine)  # loaded, as the server has it loaded
    finally:
        for engine in others:
            engine.close()
    if found is None:
        raise SystemExit(f"no segmenter among {settings.model}: name one in --model")
    theirs = described[found.info.name]["replica_threads"]
    if list(found.info.replica_threads) != list(theirs):
        found.close()
        raise RuntimeError(
            f"{found.info.name}: the server runs {theirs} threads per interpreter, "
            f"this process {list(found.info.replica_threads)}"
        )
    return found


def measure(args: argparse.Namespace, plan: Plan) -> Result:
    """Everything, with one server and the same segmenter in this process."""
    jpegs = snapshots(args.images)
    settings = Settings.model_validate(
        {"model": args.model.split(","), "models_dir": args.models_dir, "runtime": args.runtime}
    )
    context: dict[str, Any] = {"load_average_before": os.getloadavg()}
    server = detection.start_service(args, "segment-service.log")
    engine: Engine | None = None
    try:
        served = servers.get_json(server.port, "/v1/models")["models"]
        context["models"] = served
        context["ready_s"] = server.ready_s
        engine = load_segmenter(settings, served)
        _progress(f"service ready in {server.ready_s:.2f} s; " + detection._describe(served))
        case = Case(f"segment {HD}", Task.segmentation, SEGMENT, jpegs[HD])
        compared = detection.compare(case, engine, settings, server, plan)
        engine.close()
        engine = None  # its threads would compete with the server's from here on
        costs = [picture_costs(server, size, jpeg, plan) for size, jpeg in jpegs.items()]
        levels = detection.throughput(server, case, plan, LEVELS)
        context["memory_mb"] = server.memory_mb()
    finally:
        if engine is not None:
            engine.close()
        server.stop()
    context["load_average_after"] = os.getloadavg()
    return Result(context, compared, costs, levels)


def evaluate(compared: Compared) -> list[Target]:
    """The issue's target, a ratio of two figures from this run (throughput is reported, with
    no bound: on a shared machine c=2 gains only what the other jobs leave of a second CPU)."""
    return [
        Target(f"c1 segment {HD}: HTTP p50 / in-process p50", compared.ratio, 1.10, at_most=True)
    ]


# --- report and table -----------------------------------------------------------------------


def report(result: Result, targets: list[Target], when: str) -> dict[str, Any]:
    """The JSON document of a run."""
    context, compared = result.context, result.compared
    return {
        "when": when,
        "machine": {
            "cpu": detection._cpu_name(),
            "cpus_available": len(os.sched_getaffinity(0)),
            "load_average_before": context["load_average_before"],
            "load_average_after": context["load_average_after"],
        },
        "models": context["models"],
        "ready_s": round(context["ready_s"], 3),
        "memory_mb": {k: round(v, 1) for k, v in context["memory_mb"].items()},
        "c1": {
            "jpeg_bytes": len(compared.case.jpeg),
            "in_process": compared.in_process.summary().as_dict(),
            "http": compared.http.summary().as_dict(),
            "ratio": round(compared.ratio, 4),
            "stage_means_ms": {
                "in_process": _rounded(compared.in_process.means()),
                "http": _rounded(compared.http.means()),
            },
        },
        "pictures": {
            costs.size: {
                "jpeg_bytes": costs.jpeg_bytes,
                **{v: costs.summary(v).as_dict() for v in VARIANTS},
                "added_p50_ms": {v: round(costs.added_ms(v), 3) for v in (MASK, OVERLAY)},
            }
            for costs in result.costs
        },
        "throughput": {str(level): s.as_dict() for level, s in result.levels.items()},
        "targets": [t.as_dict() for t in targets],
    }


def _rounded(values: Mapping[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in values.items()}


def _cost_lines(costs: list[Costs]) -> list[str]:
    lines = [
        "2. What the mask PNG and the overlay add, HTTP at c=1: p50 ms (added to the JSON",
        "   answer's p50; x its p50), the server's CPU ms per request, others' CPUs",
        f"  {'':10} {'KB':>6} {PLAIN:>16} {MASK:>24} {OVERLAY:>24} {'others':>7}",
    ]
    for c in costs:
        plain = c.summary(PLAIN)
        cells = [f"{plain.p50:7.1f} (cpu {plain.cpu_ms or 0:5.0f})"]
        for variant in (MASK, OVERLAY):
            s = c.summary(variant)
            cells.append(f"{s.p50:7.1f} +{c.added_ms(variant):6.1f} {s.p50 / plain.p50:5.2f}x")
        others = max(c.summary(v).others_cpus or 0.0 for v in VARIANTS)
        lines.append(
            f"  {c.size:10} {c.jpeg_bytes // 1000:6} {cells[0]:>16} {cells[1]:>24} "
            f"{cells[2]:>24} {others:7.2f}"
        )
    return lines


def _throughput_lines(levels: Mapping[int, Summary], compared: Compared) -> list[str]:
    one, two = levels[1], levels[2]
    serial = compared.in_process.summary()
    return [
        f"3. /segment {HD} throughput (img/s), c=2 against c=1 (serial):",
        f"  c1 {one.throughput:.2f}/s (p50 {one.p50:.1f} ms), c2 {two.throughput:.2f}/s "
        f"(p50 {two.p50:.1f} ms, p99 {two.p99:.1f} ms): {two.throughput / one.throughput:.2f}x; "
        f"c2 / in-process serial {two.throughput / serial.throughput:.2f}x; server CPUs busy "
        f"c1 {detection._busy(one):.2f}, c2 {detection._busy(two):.2f}; others "
        f"{max(one.others_cpus or 0.0, two.others_cpus or 0.0):.2f}",
    ]


def table(result: Result, targets: list[Target]) -> str:
    """The human-readable summary."""
    context = result.context
    before, after = context["load_average_before"], context["load_average_after"]
    lines = [
        detection._describe(context["models"]),
        f"CPU {detection._cpu_name()}, {len(os.sched_getaffinity(0))} available; load average "
        f"{before[0]:.2f} before, {after[0]:.2f} after; server RSS "
        f"{context['memory_mb']['rss_mb']:.0f} MB (peak {context['memory_mb']['peak_rss_mb']:.0f})",
        "",
        *detection._c1_lines([result.compared]),
        "",
        *_cost_lines(result.costs),
        "",
        *_throughput_lines(result.levels, result.compared),
        "",
        *detection._profile_lines([result.compared]),
        "",
        "targets (ratios from this run):",
    ]
    lines += [t.line(digits=3) for t in targets]
    return "\n".join(lines)


# --- the run --------------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.segment_http", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--model",
        default=MODELS,
        help=f"EDGE_MODEL of the server, a segmenter among them (default: {MODELS})",
    )
    add_model_flags(parser, images_help=f"folder holding {SOURCE}")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--smoke", action="store_true", help="a few requests per figure: proves it runs, no more"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (missed targets are reported, not failures)."""
    args = _arguments(argv)
    plan = SMOKE if args.smoke else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    result = measure(args, plan)
    targets = evaluate(result.compared)
    print(table(result, targets))
    path = args.out / f"segment-http-{when}.json"
    path.write_text(json.dumps(report(result, targets, when), indent=2) + "\n")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
