"""One command, one run: the limit, the service and the naive server side by side.

    python -m benchmarks [--model NAME] [--models-dir DIR] [--images DIR] [--smoke]

Prints a table, writes JSON and a PNG chart into benchmarks/results/. Every target is a ratio
of two figures from this run; absolute times are printed for reference only.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import fidelity, limit, load, photos, servers
from benchmarks.flags import add_model_flags
from benchmarks.stats import summarize, timed, timed_in_turns
from benchmarks.targets import (
    NAIVE,
    SERVICE,
    SERVICE_RAW,
    SNAPSHOT,
    Measurements,
    Target,
    cpu_cost,
    evaluate,
)
from edge_server.config.settings import DEFAULT_MODEL, Settings
from edge_server.core.engine import Engine
from edge_server.core.runtime import create_interpreter, load_backend
from edge_server.serving.catalog import resolve_model
from edge_server.serving.specs import model_specs

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = (1, 2, 4, 8)


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    requests: int  # per concurrency level, at most
    seconds: float  # per concurrency level, at most
    repeats: int  # in-process samples per figure, at most
    repeat_seconds: float
    max_photos: int | None


FULL = Plan(requests=160, seconds=6.0, repeats=200, repeat_seconds=4.0, max_photos=None)
SMOKE = Plan(requests=4, seconds=2.0, repeats=5, repeat_seconds=0.5, max_photos=1)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="catalog name or .tflite path")
    add_model_flags(
        parser,
        images_help="folder of source photos (.jpg/.png) the benchmark JPEGs are made from",
    )
    parser.add_argument(
        "--num-threads", type=int, default=None, help="interpreter threads (default: the service's)"
    )
    parser.add_argument(
        "--replicas",
        default=None,
        help="interpreters of the service (default: the service's, EDGE_REPLICAS=auto)",
    )
    parser.add_argument(
        "--sizes",
        type=lambda text: text.split(","),
        default=[s.name for s in photos.SIZES],
        help="photo sizes to measure (default: all, "
        + ",".join(s.name for s in photos.SIZES)
        + ")",
    )
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(c) for c in text.split(",")],
        default=list(CONCURRENCY),
        help="concurrent clients to measure (default: 1,2,4,8)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--smoke", action="store_true", help="a few requests per figure: proves it runs, no more"
    )
    return parser.parse_args(argv)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _server_env(args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(
        EDGE_MODEL=args.model,
        EDGE_MODELS_DIR=str(args.models_dir),
        EDGE_RUNTIME=args.runtime.value,
        EDGE_LOG_LEVEL="warning",
    )
    if args.num_threads is not None:
        env["EDGE_NUM_THREADS"] = str(args.num_threads)
    if args.replicas is not None:
        env["EDGE_REPLICAS"] = str(args.replicas)
    return env


def _cpu_name() -> str:
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    name = info.get("model name") or info.get("Model") or platform.machine()
    if "cpu family" in info:
        name += f" (family {info['cpu family']}, model {info.get('model', '?')})"
    elif "CPU part" in info:
        name += f" (CPU part {info['CPU part']})"
    return name


def _http(
    server: servers.ServerProcess,
    size: photos.PhotoSet,
    levels: list[int],
    plan: Plan,
    m: Measurements,
    *,
    name: str | None = None,
    raw: bool = False,
) -> None:
    """Drive one server at each concurrency level; results under `name` (the server's)."""
    build = load.raw_request if raw else load.multipart_request
    requests = [build(server.port, "/classify", j) for j in size.jpegs]
    name = name or server.name
    for concurrency in levels:
        # Connections and first requests first, unmeasured, at the same concurrency.
        load.drive(server.port, requests, concurrency, total=concurrency, seconds=plan.seconds)
        cpu_started, busy_started = server.cpu_s(), servers.machine_busy_s()
        client_started = time.process_time()
        run = load.drive(
            server.port,
            requests,
            concurrency,
            total=plan.requests,
            seconds=plan.seconds,
        )
        if run.errors:
            raise RuntimeError(f"{server.name} answered {run.errors} requests with an error")
        server_cpu = server.cpu_s() - cpu_started
        # Whatever else ran meanwhile, in CPUs: other people's jobs on a shared machine.
        others = servers.machine_busy_s() - busy_started - server_cpu
        others -= time.process_time() - client_started
        summary = dataclasses.replace(
            summarize(run.latencies_ms, run.wall_s, server_cpu),
            others_cpus=max(0.0, others / run.wall_s),
        )
        m.http.setdefault(name, {}).setdefault(size.size.name, {})[concurrency] = summary
        _progress(
            f"  {name:8} {size.size.name:10} c{concurrency}: "
            f"{summary.throughput:7.1f}/s  p50 {summary.p50:8.1f}  p99 {summary.p99:8.1f} ms"
        )


def measure(args: argparse.Namespace, plan: Plan) -> tuple[Measurements, dict[str, Any]]:
    """The whole run: servers started, the limit measured, every concurrency level driven."""
    context: dict[str, Any] = {"load_average_before": os.getloadavg()}
    _progress(f"making photos from {args.images} ...")
    sources = photos.sources(args.images)[: plan.max_photos]
    pictures = [photos.open_rgb(p) for p in sources]
    sets = [photos.make_set(pictures, spec) for spec in photos.SIZES if spec.name in args.sizes]
    env = _server_env(args)
    model_path = resolve_model(args.model, args.models_dir)

    service_port = servers.free_port()
    service = servers.ServerProcess.start(
        SERVICE,
        servers.python_command(
            "-m", "edge_server", "serve", "--host", "127.0.0.1", "--port", str(service_port)
        ),
        env,
        service_port,
        args.out / "service.log",
    )
    naive: servers.ServerProcess | None = None
    classifier: Engine | None = None
    try:
        described = servers.get_json(service_port, "/v1/models")["models"][0]
        threads = int(described["num_threads"])
        context["model"] = described
        _progress(
            f"service ready in {service.ready_s:.2f} s: {described['backend']} "
            f"{described['backend_version']}, {threads} threads, XNNPACK {described['xnnpack']}"
        )
        settings = Settings.model_validate(
            {
                "model": args.model,
                "models_dir": args.models_dir,
                "runtime": args.runtime,
                "num_threads": threads,
            }
        )
        classifier = model_specs(settings)[0].load()
        interpreter = create_interpreter(
            load_backend(args.runtime), str(model_path), threads
        ).interpreter
        m = Measurements(
            invoke=timed(
                limit.invoke_alone(interpreter, classifier), plan.repeats, plan.repeat_seconds
            )
        )
        _progress(f"  invoke alone: p50 {m.invoke.p50:.2f} ms")
        side = classifier.info.input_size
        for photo_set in sets:
            name, jpegs = photo_set.size.name, photo_set.jpegs
            m.service_preprocess[name], m.naive_preprocess[name] = timed_in_turns(
                [
                    limit.service_preprocess(classifier, jpegs, settings.max_image_pixels),
                    limit.naive_preprocess(jpegs, side),
                ],
                plan.repeats,
                plan.repeat_seconds,
            )

        for spec in photos.SIZES:
            if spec.name in (photo_set.size.name for photo_set in sets) and spec.width >= 1920:
                _progress(f"accuracy check at {spec.name} ...")
                made = fidelity.variants(pictures, spec)
                m.accuracy[spec.name] = fidelity.compare(
                    interpreter, classifier, made, settings.max_image_pixels
                )

        naive_port = servers.free_port()
        naive = servers.ServerProcess.start(
            NAIVE,
            servers.python_command(
                "-m",
                "benchmarks.naive",
                "--model",
                str(model_path),
                "--port",
                str(naive_port),
                "--threads",
                str(threads),
                "--runtime",
                args.runtime.value,
            ),
            env,
            naive_port,
            args.out / "naive.log",
        )
        m.ready_s = {SERVICE: service.ready_s, NAIVE: naive.ready_s}
        # Size by size, limit then service then naive, so each comparison is minutes apart
        # at most on a machine whose load drifts.
        for photo_set in sets:
            name = photo_set.size.name
            m.pipeline[name] = timed(
                limit.pipeline(interpreter, classifier, photo_set.jpegs, settings.max_image_pixels),
                plan.repeats,
                plan.repeat_seconds,
            )
            _progress(
                f"  limit    {name:10} serial: {m.pipeline[name].throughput:7.1f}/s  "
                f"p50 {m.pipeline[name].p50:8.1f} ms"
            )
            _http(service, photo_set, args.concurrency, plan, m)
            if name == SNAPSHOT and 1 in args.concurrency:
                _http(service, photo_set, [1], plan, m, name=SERVICE_RAW, raw=True)
            _http(naive, photo_set, args.concurrency, plan, m)
        m.memory_mb = {SERVICE: service.memory_mb(), NAIVE: naive.memory_mb()}
    finally:
        if classifier is not None:
            classifier.close()
        for process in (service, naive):
            if process is not None:
                process.stop()
    context["load_average_after"] = os.getloadavg()
    context["photos"] = {
        s.size.name: {"mean_bytes": s.mean_bytes, "count": len(s.jpegs)} for s in sets
    }
    return m, context


def report(m: Measurements, context: dict[str, Any], targets: list[Target]) -> dict[str, Any]:
    """The JSON document of a run."""
    model = context["model"]
    return {
        "when": context["when"],
        "machine": {
            "cpu": _cpu_name(),
            "arch": platform.machine(),
            "cpus_available": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "load_average_before": context["load_average_before"],
            "load_average_after": context["load_average_after"],
        },
        "model": model,
        "photos": context["photos"],
        "limit": {
            "invoke": m.invoke.as_dict(),
            "pipeline": {k: v.as_dict() for k, v in m.pipeline.items()},
            "preprocess": {
                k: {"service": v.as_dict(), "naive": m.naive_preprocess[k].as_dict()}
                for k, v in m.service_preprocess.items()
            },
        },
        "http": {
            server: {
                size: {str(c): s.as_dict() for c, s in levels.items()}
                for size, levels in sizes.items()
            }
            for server, sizes in m.http.items()
        },
        "ready_s": {k: round(v, 3) for k, v in m.ready_s.items()},
        "memory_mb": {k: {n: round(x, 1) for n, x in v.items()} for k, v in m.memory_mb.items()},
        "accuracy": {size: a.as_dict() for size, a in m.accuracy.items()},
        "targets": [t.as_dict() for t in targets],
        "cpu_per_image_over_pipeline_c1": {
            server: {size: round(x, 3) for size, x in sizes.items()}
            for server, sizes in cpu_cost(m).items()
        },
    }


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def table(m: Measurements, context: dict[str, Any], targets: list[Target]) -> str:
    """The human-readable summary."""
    model = context["model"]
    before, after = context["load_average_before"], context["load_average_after"]
    lines = [
        f"{model['name']} on {model['backend']} {model['backend_version']}, "
        f"{model['num_threads']} threads, XNNPACK {'on' if model['xnnpack'] else 'off'}, "
        f"replicas of {'+'.join(str(t) for t in model.get('replica_threads', []))} threads",
        f"CPU {_cpu_name()}, {len(os.sched_getaffinity(0))} available; "
        f"load average {before[0]:.2f} before, {after[0]:.2f} after",
        "",
        f"invoke alone: p50 {m.invoke.p50:.2f} ms, p95 {m.invoke.p95:.2f} ms",
        "",
    ]
    widths = [26, 3, 8, 9, 9, 9, 11, 7]
    lines.append(
        _row(["", "c", "img/s", "p50 ms", "p95 ms", "p99 ms", "CPU ms/img", "others"], widths)
    )
    for size, pipeline in m.pipeline.items():
        kb = context["photos"][size]["mean_bytes"] // 1000
        lines.append(f"{size} JPEG, {kb} KB")
        pre, naive_pre = m.service_preprocess[size], m.naive_preprocess[size]
        lines.append(f"  preprocess p50: service {pre.p50:.1f} ms, naive {naive_pre.p50:.1f} ms")
        rows = [("limit (serial pipeline)", 1, pipeline)]
        for server in (SERVICE, SERVICE_RAW, NAIVE):
            rows += [
                (server, c, s) for c, s in sorted(m.http.get(server, {}).get(size, {}).items())
            ]
        for label, c, s in rows:
            lines.append(
                _row(
                    [
                        f"  {label}",
                        str(c),
                        f"{s.throughput:.1f}",
                        f"{s.p50:.1f}",
                        f"{s.p95:.1f}",
                        f"{s.p99:.1f}",
                        "" if s.cpu_ms is None else f"{s.cpu_ms:.1f}",
                        "" if s.others_cpus is None else f"{s.others_cpus:.2f}",
                    ],
                    widths,
                )
            )
    lines.append("")
    for server, memory in m.memory_mb.items():
        lines.append(
            f"{server}: ready {m.ready_s[server]:.2f} s after start; RSS {memory['rss_mb']:.0f} MB"
            f" now, {memory['peak_rss_mb']:.0f} MB peak"
        )
    lines.append("(others: CPUs kept busy by other processes during that measurement)")
    if m.accuracy:
        lines += ["", "accuracy of the service's preprocessing against a full-size decode:"]
    for size, a in m.accuracy.items():
        lines.append(
            f"  {size}: {a.variants} variants, top-1 changed in {a.top1_changed} of the "
            f"{a.decisive} with margin >= {fidelity.MARGIN:g}; largest score change "
            f"{a.max_change:.3f} (+-1 grey level noise: {a.noise_max_change:.3f})"
        )
    lines += ["", "CPU time per image at c1 over the serial pipeline's (steady under load):"]
    for server, sizes in cpu_cost(m).items():
        figures = ", ".join(f"{size} {x:.2f}x" for size, x in sizes.items())
        lines.append(f"  {server:8} {figures}")
    lines += ["", "targets (ratios from this run):"]
    lines += [t.line() for t in targets]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (missed targets are reported, not failures)."""
    args = _arguments(argv)
    plan = SMOKE if args.smoke else FULL
    args.out.mkdir(parents=True, exist_ok=True)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    m, context = measure(args, plan)
    context["when"] = when
    targets = evaluate(m)
    print(table(m, context, targets))
    stem = args.out / f"bench-{when}"
    document = report(m, context, targets)
    stem.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")
    written = [stem.with_suffix(".json")]
    try:
        from benchmarks.chart import draw

        title = (
            f"{context['model']['name']}, {context['model']['backend']}, "
            f"{context['model']['num_threads']} threads; {_cpu_name()}; "
            f"load {context['load_average_before'][0]:.1f}"
        )
        draw(m, list(m.pipeline), stem.with_suffix(".png"), title)
        written.append(stem.with_suffix(".png"))
    except ImportError:
        _progress("no chart: matplotlib is not installed (pip install 'edge-server[bench]')")
    print("\nwrote " + ", ".join(str(p) for p in written))
    return 0
