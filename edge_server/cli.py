"""The `edge-server` command: serve, classify, detect or segment local files, describe the
model, pull models."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ValidationError

from . import __version__, registrar, teacher
from .client import IMAGE_STATUSES, Client, ClientError
from .config.settings import Settings
from .core import imaging, overlay, segmentation
from .core.detection import Task
from .core.engine import Engine, Inference, Prepared
from .core.errors import ServiceError, StartupError
from .core.overlay import Picture
from .core.region import Region, parse_region
from .core.threads import available_cpus
from .lan.browser import DEFAULT_TIMEOUT, Instance
from .serving import segmenting
from .serving.catalog import load_catalog, lookup, pull
from .serving.specs import ModelSpec, model_specs

EXIT_USAGE = 2  # bad settings or a failed start, as argparse does for bad arguments


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
        result: int = args.run(args, settings)
        return result
    except StartupError as exc:
        print(f"edge-server: {exc.problem}\n  fix: {exc.fix}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:
        print(_settings_problem(exc), file=sys.stderr)
        return EXIT_USAGE


# --- settings from flags -------------------------------------------------------------------


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _add_settings_flags(parser: argparse.ArgumentParser, fields: Sequence[str]) -> None:
    group = parser.add_argument_group("settings (each also EDGE_<NAME> in the environment)")
    for name in fields:
        field = Settings.model_fields[name]
        group.add_argument(
            _flag(name), dest=f"setting_{name}", metavar="VALUE", help=field.description
        )


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the flags given."""
    given = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
    return Settings(**given)


# Settings whose value is never echoed back (a broker URL carries a password).
_SECRETS = {name for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)}


def _settings_problem(exc: ValidationError) -> str:
    lines = ["edge-server: invalid settings:"]
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        given = "(hidden)" if name in _SECRETS else repr(error.get("input"))
        lines.append(f"  EDGE_{name.upper()} ({_flag(name)}): {error['msg']} (got {given})")
    lines.append("  fix: correct the value in the environment or on the command line")
    return "\n".join(lines)


# --- commands -------------------------------------------------------------------------------


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from .server import serve

    _configure_logging(settings.log_level)
    return serve(settings)


def _classify(args: argparse.Namespace, settings: Settings) -> int:
    if args.url is not None:
        return _classify_remote(args)
    loaded = _local_engine(
        args,
        lambda: _classifier_spec(settings),
        Task.classification,
        "use `edge-server detect`, or name a classifier with --model",
    )
    if isinstance(loaded, int):
        return loaded
    classifier, region = loaded

    def answer(prepared: Prepared, inference: Inference) -> dict[str, Any]:
        ranked = classifier.rank(inference.raw, args.top_k, args.threshold)
        return {
            "predictions": [
                {"label": label, "index": i, "score": score} for i, label, score in ranked
            ]
        }

    results, failures = _run_local(classifier, settings, args.images, region, answer)
    if args.json:
        print(json.dumps({"model": classifier.info.name, "results": results}, indent=2))
    else:
        for result in results:
            image = result["image"]
            print(f"{result['file']}  ({image['width']}x{image['height']} {image['format']})")
            _print_predictions(result["predictions"])
    return 1 if failures else 0


def _classify_remote(args: argparse.Namespace) -> int:
    """Classify the files with the server at --url; stop at the first failure not about an image."""
    done = _run_remote(
        args,
        lambda client, data: client.classify(
            data,
            top_k=args.top_k,
            threshold=args.threshold or None,
            crop=args.crop,
            model=args.setting_model,
            resize=args.setting_resize,
        ),
    )
    if isinstance(done, int):
        return done
    results, failures = done
    if args.json:
        print(json.dumps({"url": args.url, "results": results}, indent=2))
    else:
        for result in results:
            image, total = result["image"], result["timing_ms"]["total"]
            print(
                f"{result['file']}  ({image['width']}x{image['height']} {image['format']}, "
                f"{result['model']['name']}, {total:.0f} ms)"
            )
            _print_predictions(result["predictions"])
    return 1 if failures else 0


def _detect(args: argparse.Namespace, settings: Settings) -> int:
    """Detect objects in the files, with a running server (--url) or the local detector."""
    only = args.only.split(",") if args.only else []
    labels = [part.strip() for part in only if part.strip()] or None
    if args.url is not None:
        return _detect_remote(args, labels)
    loaded = _local_engine(
        args,
        lambda: _detector_spec(settings),
        Task.detection,
        "name a detector with --model (e.g. --model objects)",
    )
    if isinstance(loaded, int):
        return loaded
    engine, region = loaded

    def answer(prepared: Prepared, inference: Inference) -> dict[str, Any]:
        found = engine.detect(
            inference,
            prepared.image,
            min_score=args.min_score,
            max_results=args.max_results,
            wanted=labels,
            region=region,
        )
        width, height = prepared.image.width, prepared.image.height
        detections = []
        for d in found:
            x_min, y_min, x_max, y_max = d.box.pixels(width, height)
            box = {"x_min": x_min, "y_min": y_min, "x_max": x_max, "y_max": y_max}
            detections.append({"label": d.label, "index": d.index, "score": d.score, "box": box})
        return {"detections": detections}

    results, failures = _run_local(engine, settings, args.images, region, answer)
    _print_detections(args.json, {"model": engine.info.name, "results": results})
    return 1 if failures else 0


def _detect_remote(args: argparse.Namespace, labels: list[str] | None) -> int:
    """Detect with the server at --url; stop at the first failure not about an image."""
    done = _run_remote(
        args,
        lambda client, data: client.detect(
            data,
            min_score=args.min_score,
            max_results=args.max_results,
            labels=labels,
            crop=args.crop,
            model=args.setting_model,
            resize=args.setting_resize,
        ),
    )
    if isinstance(done, int):
        return done
    results, failures = done
    _print_detections(args.json, {"url": args.url, "results": results})
    return 1 if failures else 0


# --- segment ---------------------------------------------------------------------------------

# Without --format, `--out FILE` writes the cut-out to a .png (the one picture with
# transparency) and the overlay to anything else; a JPEG picture is never written to a .png.
_JPEG_EXTENSIONS = (".jpg", ".jpeg")


@dataclass(frozen=True)
class _SegmentRequest:
    """What `segment` was asked, checked before any model is loaded or request is sent."""

    photo: Path
    kind: Picture | None  # the picture --out writes; None without --out
    labels: list[str] | None
    regions: str | None


def _segment(args: argparse.Namespace, settings: Settings) -> int:
    """Segment one photo, with a running server (--url) or the local segmenter: the classes as
    a table (or JSON), and with --out the picture."""
    wanted = _segment_request(args)
    if isinstance(wanted, int):
        return wanted
    try:
        data = wanted.photo.read_bytes()
    except OSError as exc:
        print(f"edge-server: {wanted.photo}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if args.url is not None:
        done = _segment_remote(args, wanted, data)
    else:
        done = _segment_local(args, settings, wanted, data)
    if isinstance(done, int):
        return done
    answer, picture = done
    if picture is not None:
        try:
            args.out.write_bytes(picture)
        except OSError as exc:
            print(f"edge-server: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        _print_segments(answer)
        if picture is not None and wanted.kind is not None:
            print(f"wrote the {wanted.kind.value} to {args.out} ({len(picture):,} bytes)")
    return 0


def _segment_request(args: argparse.Namespace) -> _SegmentRequest | int:
    """The checked options, or EXIT_USAGE after saying what is wrong."""
    labels = [part.strip() for part in (args.labels or "").split(",") if part.strip()] or None
    try:
        segmenting.parse_regions(args.regions)  # the server's rules, before any work
        kind = _picture_kind(args.format, args.out)
    except (ServiceError, ValueError) as exc:
        print(f"edge-server: {getattr(exc, 'detail', exc)}", file=sys.stderr)
        return EXIT_USAGE
    if labels and kind is None:
        print("edge-server: --labels chooses what a picture shows; add --out FILE", file=sys.stderr)
        return EXIT_USAGE
    return _SegmentRequest(Path(args.photo), kind, labels, args.regions)


def _picture_kind(format_: str | None, out: Path | None) -> Picture | None:
    """The picture --out writes: --format, else by the extension (.png: the cut-out, else the
    overlay); a ValueError when the file's extension says another image type."""
    if out is None:
        if format_ is not None:
            raise ValueError("--format says which picture --out writes; add --out FILE")
        return None
    suffix = out.suffix.lower()
    if format_ is None:
        return Picture.cutout if suffix == ".png" else Picture.overlay
    kind = segmenting.picture_kind(format_, None)
    assert kind is not None  # a format was given
    jpeg = kind.media_type == "image/jpeg"
    if (jpeg and suffix == ".png") or (not jpeg and suffix in _JPEG_EXTENSIONS):
        wanted = ".jpg" if jpeg else ".png"
        raise ValueError(
            f"--format {kind.value} answers {kind.media_type}; write it to a {wanted} file"
        )
    return kind


def _segment_remote(
    args: argparse.Namespace, wanted: _SegmentRequest, data: bytes
) -> tuple[dict[str, Any], bytes | None] | int:
    """The server's answer (and picture: a second request) for the photo, or an exit status."""
    if args.url == "auto":
        found = _only_instance(args.discover_timeout)
        if isinstance(found, int):
            return found
        args.url = found.url
    options = {"crop": args.crop, "model": args.setting_model, "resize": args.setting_resize}
    try:
        client = Client(args.url, api_key=args.api_key, timeout=args.timeout)
    except ClientError as exc:  # not an http(s) URL
        print(f"edge-server: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        answer = client.segment(data, regions=_regions_of(wanted.regions), **options)
        picture = None
        if wanted.kind is not None:
            picture = client.segment_picture(
                data, format=wanted.kind.value, labels=wanted.labels, **options
            )
    except ClientError as exc:
        print(f"edge-server: {exc}", file=sys.stderr)
        return 1
    document = {"file": str(wanted.photo), "url": args.url}
    return {**document, **answer.model_dump(exclude_none=True)}, picture


def _regions_of(text: str | None) -> dict[str, list[list[float]]] | None:
    """--regions' JSON for the client (already checked by the server's rules)."""
    if not text or not text.strip():
        return None
    regions: dict[str, list[list[float]]] = json.loads(text)
    return regions


def _segment_local(
    args: argparse.Namespace, settings: Settings, wanted: _SegmentRequest, data: bytes
) -> tuple[dict[str, Any], bytes | None] | int:
    """The local segmenter's answer (and picture) for the photo, or an exit status."""
    loaded = _local_engine(
        args,
        lambda: _segmenter_spec(settings),
        Task.segmentation,
        "name a segmenter with --model (e.g. --model segmenter)",
    )
    if isinstance(loaded, int):
        return loaded
    engine, region = loaded
    labels = engine.info.labels
    polygons = segmenting.parse_regions(wanted.regions)  # checked already
    kind = wanted.kind
    try:
        chosen = () if kind is None else _chosen_classes(kind, wanted.labels, labels)
    except ServiceError as exc:  # a label the model does not know
        engine.close()
        print(f"edge-server: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    try:
        prepared = engine.prepare(
            data,
            max_pixels=settings.max_image_pixels,
            min_side=settings.min_image_side,
            region=region,
        )
        inference = engine.submit(prepared.tensor).result()
    except ServiceError as exc:
        print(f"{wanted.photo}: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        engine.close()
    image = prepared.image
    class_map = segmentation.read(
        inference.raw,
        image_size=(image.width, image.height),
        input_size=engine.info.input_size,
        fit=prepared.resize,
        region=region,
    )
    answer: dict[str, Any] = {
        "file": str(wanted.photo),
        "model": engine.info.name,
        "classes": [_class_row(area) for area in segmentation.areas(class_map, labels)],
    }
    if polygons:
        shares = segmentation.region_shares(class_map, polygons, labels)
        answer["regions"] = [_region_row(share) for share in shares]
    answer["image"] = {**asdict(image), "resize": prepared.resize.value}
    answer["inference_ms"] = round(inference.inference_ms, 3)
    picture = None
    if kind is not None:
        picture = _local_picture(data, class_map, kind, chosen, settings, region)
    return answer, picture


def _chosen_classes(
    kind: Picture, names: list[str] | None, labels: Sequence[str]
) -> tuple[int, ...]:
    return segmenting.picture_classes(kind, ",".join(names or []), labels)


def _local_picture(
    data: bytes,
    class_map: segmentation.ClassMap,
    kind: Picture,
    chosen: tuple[int, ...],
    settings: Settings,
    region: Region | None,
) -> bytes:
    """The picture drawn from the photo decoded again at full size (as the server draws it)."""
    decoded = imaging.decode(
        data,
        min_size=max(class_map.image_width, class_map.image_height),
        max_pixels=settings.max_image_pixels,
        region=region,
    )
    picture = decoded.picture
    if picture.size != (class_map.width, class_map.height):  # a crop's rounding
        picture = picture.resize((class_map.width, class_map.height))
    ids = segmentation.full_size(class_map)
    if kind is Picture.overlay:
        drawn = overlay.overlay(picture, ids)
    elif kind is Picture.cutout:
        drawn = overlay.cutout(picture, ids, chosen)
    else:
        drawn = overlay.hidden(picture, ids, chosen, kind)
    return overlay.encoded(drawn, kind)


def _class_row(area: segmentation.ClassArea) -> dict[str, Any]:
    """A class present, in the server's shape (`SegmentClass`)."""
    x_min, y_min, x_max, y_max = area.box
    return {
        "label": area.label,
        "index": area.index,
        "fraction": round(area.fraction, 6),
        "pixels": area.pixels,
        "box": {"x_min": x_min, "y_min": y_min, "x_max": x_max, "y_max": y_max},
    }


def _region_row(share: segmentation.RegionShare) -> dict[str, Any]:
    """A named region's cover, in the server's shape (`RegionCover`)."""
    return {
        "name": share.name,
        "pixels": share.pixels,
        "classes": [
            {"label": label, "index": index, "fraction": round(fraction, 6)}
            for index, label, fraction in share.classes
        ],
    }


def _print_segments(answer: dict[str, Any]) -> None:
    image = answer["image"]
    model = answer["model"] if isinstance(answer["model"], str) else answer["model"]["name"]
    print(f"{answer['file']}  ({image['width']}x{image['height']} {image['format']}, {model})")
    print(f"  {'class':<16} {'picture':>8}  box (x_min, y_min) - (x_max, y_max)")
    for c in answer["classes"]:
        box = c["box"]
        print(
            f"  {c['label']:<16} {c['fraction']:8.2%}  "
            f"({box['x_min']}, {box['y_min']}) - ({box['x_max']}, {box['y_max']})"
        )
    for region in answer.get("regions") or []:
        covers = ", ".join(f"{c['label']} {c['fraction']:.1%}" for c in region["classes"])
        print(f"  region {region['name']}: {covers or 'outside the picture'}")


def _local_engine(
    args: argparse.Namespace, choose: Callable[[], ModelSpec], task: Task, hint: str
) -> tuple[Engine, Region | None] | int:
    """The model a local command loads and its crop, or the exit status when either is wrong."""
    try:
        region = parse_region(args.crop) if args.crop is not None else None
    except ServiceError as exc:
        print(f"edge-server: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    _configure_logging("warning")
    engine = choose().load()
    if engine.info.task is not task:
        engine.close()
        print(
            f"edge-server: {engine.info.name} is a {engine.info.task} model; {hint}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return engine, region


def _run_local(
    engine: Engine,
    settings: Settings,
    images: Sequence[str],
    region: Region | None,
    answer: Callable[[Prepared, Inference], dict[str, Any]],
) -> tuple[list[dict[str, Any]], int]:
    """Each file through the local model (then closed): its results, and how many failed."""
    results: list[dict[str, Any]] = []
    failures = 0
    try:
        for name in images:
            try:
                data = Path(name).read_bytes()
                # The server's input limits, so a file refused over HTTP is refused here too.
                prepared = engine.prepare(
                    data,
                    max_pixels=settings.max_image_pixels,
                    min_side=settings.min_image_side,
                    region=region,
                )
                inference = engine.submit(prepared.tensor).result()
            except (OSError, ServiceError) as exc:
                failures += 1
                print(f"{name}: {getattr(exc, 'detail', exc)}", file=sys.stderr)
                continue
            results.append(
                {
                    "file": name,
                    "image": {**asdict(prepared.image), "resize": prepared.resize.value},
                    **answer(prepared, inference),
                    "inference_ms": round(inference.inference_ms, 3),
                }
            )
    finally:
        engine.close()
    return results, failures


def _run_remote(
    args: argparse.Namespace, ask: Callable[[Client, bytes], BaseModel]
) -> tuple[list[dict[str, Any]], int] | int:
    """Each file sent to the server at --url (`auto`: the one on the LAN): the answers and how
    many failed, or the exit status when a failure not about an image stops the command."""
    if args.url == "auto":
        found = _only_instance(args.discover_timeout)
        if isinstance(found, int):
            return found
        args.url = found.url
    try:
        client = Client(args.url, api_key=args.api_key, timeout=args.timeout)
    except ClientError as exc:
        print(f"edge-server: {exc}", file=sys.stderr)
        return EXIT_USAGE
    results: list[dict[str, Any]] = []
    failures = 0
    for name in args.images:
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            failures += 1
            print(f"{name}: {exc.strerror or exc}", file=sys.stderr)
            continue
        try:
            answer = ask(client, data)
        except ClientError as exc:
            failures += 1
            if exc.status not in IMAGE_STATUSES:
                print(f"edge-server: {exc}", file=sys.stderr)
                return 1
            print(f"{name}: {exc}", file=sys.stderr)
            continue
        results.append({"file": name, **answer.model_dump()})
    return results, failures


def _print_detections(as_json: bool, report: dict[str, Any]) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    for result in report["results"]:
        image = result["image"]
        print(f"{result['file']}  ({image['width']}x{image['height']} {image['format']})")
        if not result["detections"]:
            print("  no objects found")
        for d in result["detections"]:
            box = d["box"]
            print(
                f"  {d['score']:6.1%}  {d['label']:<16} "
                f"({box['x_min']}, {box['y_min']}) - ({box['x_max']}, {box['y_max']})"
            )


def _detector_spec(settings: Settings) -> ModelSpec:
    """The model local `detect` uses: the first configured catalog detector; with no model
    configured, the catalog's COCO detector; else the first model (its load tells)."""
    specs = model_specs(settings)
    for spec in specs:
        entry = lookup(spec.model)
        if entry is not None and entry.task == Task.detection.value:
            return spec
    if "model" not in settings.model_fields_set:
        given = settings.model_dump(exclude_unset=True)
        return model_specs(Settings(**{**given, "model": ["objects"]}))[0]
    return specs[0]


def _segmenter_spec(settings: Settings) -> ModelSpec:
    """The model local `segment` uses: the first configured catalog segmenter; with no model
    configured, the catalog's `segmenter`; else the first model (its load tells)."""
    specs = model_specs(settings)
    for spec in specs:
        entry = lookup(spec.model)
        if entry is not None and entry.task == Task.segmentation.value:
            return spec
    if "model" not in settings.model_fields_set:
        given = settings.model_dump(exclude_unset=True)
        return model_specs(Settings(**{**given, "model": ["segmenter"]}))[0]
    return specs[0]


def _classifier_spec(settings: Settings) -> ModelSpec:
    """The model local `classify` uses: the first configured one that is not a catalog
    detector (its load tells for a file)."""
    specs = model_specs(settings)
    for spec in specs:
        entry = lookup(spec.model)
        if entry is None or entry.task == Task.classification.value:
            return spec
    return specs[0]


def _first_spec(settings: Settings) -> ModelSpec:
    """The model a local command uses: the default one of those configured."""
    return model_specs(settings)[0]


def _catalog_name(spec: ModelSpec) -> str:
    """What `models pull` fetches for a configured model: its catalog name or alias."""
    return spec.model


def _only_instance(timeout: float) -> Instance | int:
    """The one edge-server on the LAN, or the exit status after saying why there is none."""
    try:
        instances = Client.discover(timeout)
    except ClientError as exc:
        print(f"edge-server: {exc}", file=sys.stderr)
        return 1
    if len(instances) == 1:
        return instances[0]
    if not instances:
        print(f"edge-server: {_NONE_FOUND.format(timeout=timeout)}", file=sys.stderr)
        return 1
    print(
        f"edge-server: --url auto found {len(instances)} edge-servers; choose one with --url:",
        file=sys.stderr,
    )
    _print_instances(instances, sys.stderr)
    return EXIT_USAGE


_NONE_FOUND = (
    "no edge-server answered on the LAN within {timeout:g} s (a server advertises itself when "
    "it listens on a LAN address, e.g. EDGE_HOST=0.0.0.0, unless EDGE_MDNS=off; mDNS does not "
    "cross routers)"
)


def _discover(args: argparse.Namespace, settings: Settings) -> int:
    try:
        instances = Client.discover(args.timeout)
    except ClientError as exc:
        print(f"edge-server: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([i.as_dict() for i in instances], indent=2))
    else:
        _print_instances(instances, sys.stdout)
    if not instances:
        print(f"edge-server: {_NONE_FOUND.format(timeout=args.timeout)}", file=sys.stderr)
        return 1
    return 0


def _print_instances(instances: Sequence[Instance], out: TextIO) -> None:
    rows = [
        (
            i.name,
            i.url,
            i.version or "?",
            i.model or "?",
            {True: "key required", False: "no key", None: "?"}[i.api_key_required],
        )
        for i in instances
    ]
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]) - 1)] if rows else []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]), file=out)


def _print_predictions(predictions: list[dict[str, Any]]) -> None:
    for p in predictions:
        print(f"  {p['score']:6.3f}  {p['label']}  [{p['index']}]")


def _info(args: argparse.Namespace, settings: Settings) -> int:
    from .serving.description import description

    _configure_logging("warning")
    classifier = _first_spec(settings).load()
    classifier.close()
    described = description(classifier).model_dump()
    if args.json:
        print(json.dumps(described, indent=2))
    else:
        for key, value in described.items():
            print(f"{key:16} {value}")
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from .core import threads
    from .core.runtime import load_backend

    _configure_logging("warning")
    path = _first_spec(settings).path()
    backend = load_backend(settings.runtime)
    max_threads = args.max_threads or available_cpus()
    timings = threads.sweep(
        backend, str(path), max_threads, invokes=args.invokes, seconds=args.seconds
    )
    chosen = threads.recommend(timings)
    xnnpack = all(t.xnnpack for t in timings)
    if args.json:
        document = {
            "model": path.name.removesuffix(".tflite"),
            "backend": backend.name,
            "backend_version": backend.version,
            "xnnpack": xnnpack,
            "cpus_available": available_cpus(),
            "threads": [
                {"threads": t.threads, "p50_ms": round(t.p50_ms, 3), "p95_ms": round(t.p95_ms, 3)}
                for t in timings
            ],
            "recommended_threads": chosen.threads,
        }
        print(json.dumps(document, indent=2))
        return 0
    print(
        f"{path.name} on {backend.name} {backend.version}, "
        f"{available_cpus()} CPUs available to this process"
    )
    if xnnpack:
        print("XNNPACK: on (the runtime's fast kernels run this model)")
    else:
        print(
            "XNNPACK: OFF - this runtime runs the model on its reference kernels, typically "
            "10-30x slower; use LiteRT (pip install ai-edge-litert) where it has wheels"
        )
    print(f"\n{'threads':>7}  {'p50 ms':>8}  {'p95 ms':>8}  {'invokes':>7}")
    for t in timings:
        mark = "  <- recommended" if t is chosen else ""
        print(f"{t.threads:>7}  {t.p50_ms:>8.2f}  {t.p95_ms:>8.2f}  {t.invokes:>7}{mark}")
    print(
        f"\nrecommendation: EDGE_NUM_THREADS={chosen.threads} (the fewest threads within "
        f"{threads.TOLERANCE:.0%} of the fastest p50; the other cores decode photos meanwhile)."
        "\nEDGE_NUM_THREADS=auto makes this choice at every start, from a shorter sweep."
    )
    return 0


def _models_list(args: argparse.Namespace, settings: Settings) -> int:
    for entry in load_catalog().values():
        present = (settings.models_dir / entry.file).is_file()
        mark = "pulled " if present else "       "
        print(f"{mark}{entry.name:40} {entry.input_size:4}px  {entry.description}")
    return 0


def _models_pull(args: argparse.Namespace, settings: Settings) -> int:
    names = args.names or [_catalog_name(spec) for spec in model_specs(settings)]
    for name in names:
        result = pull(name, settings.models_dir, args.source or settings.models_from)
        if result.already_present:
            print(f"{name}: already present and verified at {result.path}")
        else:
            print(f"{name}: fetched from {result.source}, sha256 verified, saved as {result.path}")
    return 0


def _cameras_probe(args: argparse.Namespace, settings: Settings) -> int:
    """What a camera URL serves; exit 0 when frames came, 1 when not (the reason printed)."""
    from .cameras.probe import probe

    found = probe(args.url, timeout=args.timeout)
    if args.json:
        print(json.dumps(found.as_dict()))
    else:
        print("\n".join(found.lines()), file=sys.stdout if found.ok else sys.stderr)
    return 0 if found.ok else 1


def _configure_logging(level: str) -> None:
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(
        level=numeric if isinstance(numeric, int) else logging.INFO,
        format="%(levelname)s:     %(name)s: %(message)s",
    )


# --- the parser -----------------------------------------------------------------------------

_MODEL_FIELDS = (
    "model",
    "models_config",
    "models_dir",
    "labels",
    "runtime",
    "num_threads",
    "resize",
    "output",
    "input_mean",
    "input_std",
    "max_image_pixels",
    "min_image_side",
)


def _count(text: str) -> int:
    """A whole number in 1..100, for argparse."""
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number in 1..100")
    return int(text)


def _add_remote_flags(command: argparse.ArgumentParser) -> None:
    remote = command.add_argument_group("with a running server instead of a local model")
    remote.add_argument(
        "--url",
        help="the server, e.g. http://192.168.1.20:8080, or auto: the only one found on the LAN",
    )
    remote.add_argument("--api-key", help="sent as Authorization: Bearer KEY")
    remote.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    remote.add_argument(
        "--discover-timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds to look for servers with --url auto",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-server",
        description="On-device image classification, object detection and segmentation over HTTP.",
    )
    parser.add_argument("--version", action="version", version=f"edge-server {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service")
    _add_settings_flags(serve, list(Settings.model_fields))
    serve.set_defaults(run=_serve)

    classify = commands.add_parser(
        "classify", help="classify image files, locally or with a running server (--url)"
    )
    classify.add_argument("images", nargs="+", metavar="IMAGE")
    classify.add_argument("--json", action="store_true", help="print JSON for scripts")
    classify.add_argument("--top-k", type=int, default=5, help="predictions per image")
    classify.add_argument("--threshold", type=float, default=0.0, help="minimum score")
    classify.add_argument(
        "--crop", metavar="X0,Y0,X1,Y1", help="region of interest, as fractions 0..1"
    )
    _add_remote_flags(classify)
    _add_settings_flags(classify, _MODEL_FIELDS)
    classify.set_defaults(run=_classify)

    detect = commands.add_parser(
        "detect", help="find objects in image files, locally or with a running server (--url)"
    )
    detect.add_argument("images", nargs="+", metavar="IMAGE")
    detect.add_argument("--json", action="store_true", help="print JSON for scripts")
    detect.add_argument("--min-score", type=float, default=0.4, help="least score of an object")
    detect.add_argument(
        "--max-results", type=_count, default=20, help="most objects per image, 1..100"
    )
    detect.add_argument(
        "--only", metavar="LABELS", help="only these labels, comma-separated (person,car)"
    )
    detect.add_argument(
        "--crop", metavar="X0,Y0,X1,Y1", help="region of interest, as fractions 0..1"
    )
    _add_remote_flags(detect)
    _add_settings_flags(detect, _MODEL_FIELDS)
    detect.set_defaults(run=_detect)

    segment = commands.add_parser(
        "segment",
        help="which pixels of a photo are what, locally or with a running server (--url)",
        description="The classes of one photo (label, share of the picture, box) as a table "
        "or JSON; with --out FILE a picture of them: --format, else by the extension "
        "(.png: the cut-out, anything else: the overlay).",
    )
    segment.add_argument("photo", metavar="PHOTO")
    segment.add_argument("--json", action="store_true", help="print JSON for scripts")
    segment.add_argument(
        "--out", type=Path, metavar="FILE", help="write a picture of the segmentation there"
    )
    segment.add_argument(
        "--format",
        choices=[kind.value for kind in Picture],
        help="the picture --out writes: overlay (JPEG), cutout (PNG), blur or fill (JPEG)",
    )
    segment.add_argument(
        "--labels",
        metavar="LABELS",
        help="comma-separated classes the cut-out keeps (default: all but background) or "
        "blur/fill hides (default: person)",
    )
    segment.add_argument(
        "--regions",
        metavar="JSON",
        help='named polygons, corners as fractions: {"driveway": [[0.1,0.5],[0.6,0.5],[0.6,1]]}',
    )
    segment.add_argument(
        "--crop", metavar="X0,Y0,X1,Y1", help="region of interest, as fractions 0..1"
    )
    _add_remote_flags(segment)
    # --labels is the picture's classes here; a segmenter's labels file comes with it.
    _add_settings_flags(segment, [f for f in _MODEL_FIELDS if f != "labels"])
    segment.set_defaults(run=_segment)

    discover = commands.add_parser(
        "discover", help="list the edge-servers on the LAN (mDNS/DNS-SD); exit 1 when none"
    )
    discover.add_argument("--json", action="store_true", help="print JSON for scripts")
    discover.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait for answers"
    )
    discover.set_defaults(run=_discover)

    info = commands.add_parser("info", help="describe the configured model and runtime")
    info.add_argument("--json", action="store_true", help="print JSON")
    _add_settings_flags(info, _MODEL_FIELDS)
    info.set_defaults(run=_info)

    timing = commands.add_parser(
        "bench", help="invoke latency for 1..N interpreter threads on this device"
    )
    timing.add_argument("--json", action="store_true", help="print JSON")
    timing.add_argument(
        "--max-threads", type=int, default=None, help="default: the CPUs this process may use"
    )
    timing.add_argument("--invokes", type=int, default=50, help="invokes per thread count, at most")
    timing.add_argument(
        "--seconds", type=float, default=2.0, help="seconds per thread count, at most"
    )
    _add_settings_flags(timing, [f for f in _MODEL_FIELDS if f != "num_threads"])
    timing.set_defaults(run=_bench)

    models = commands.add_parser("models", help="the model catalog")
    model_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = model_commands.add_parser("list", help="list catalog models")
    _add_settings_flags(listing, ("models_dir",))
    listing.set_defaults(run=_models_list)
    fetch = model_commands.add_parser(
        "pull", help="fetch models into the models folder and verify their sha256"
    )
    fetch.add_argument("names", nargs="*", metavar="NAME", help="default: the configured model")
    fetch.add_argument(
        "--from",
        dest="source",
        metavar="DIR_OR_URL",
        help="a folder or base URL holding the files (default: EDGE_MODELS_FROM, "
        "else the official URL)",
    )
    _add_settings_flags(fetch, ("model", "models_dir"))
    fetch.set_defaults(run=_models_pull)
    cameras = commands.add_parser("cameras", help="cameras to watch")
    camera_commands = cameras.add_subparsers(
        dest="cameras_command", required=True, metavar="ACTION"
    )
    probing = camera_commands.add_parser(
        "probe",
        help="say what a camera URL serves (kind, codec, size, fps, login) before configuring it",
    )
    probing.add_argument("url", metavar="URL", help="rtsp://, or http:// for MJPEG or snapshots")
    probing.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the camera"
    )
    probing.add_argument("--json", action="store_true", help="print the answer as JSON")
    probing.set_defaults(run=_cameras_probe)
    teacher.register(commands, _add_remote_flags, _add_settings_flags)
    registrar.register(commands, _add_remote_flags, _add_settings_flags)
    return parser
