"""The `edge-server learn` commands: teach, list, export and import learned models, locally
(in EDGE_DATA_DIR, with the service stopped) or on a running server (--url), and evaluate
how well a folder of your own photos would be learned before relying on it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .actions import fail, remote, run_local
from .config.settings import Settings
from .core.errors import ServiceError
from .core.imprinting import Method, few_shot_accuracy, few_shot_unknown
from .core.region import parse_region
from .serving.auth import ApiKeys
from .serving.learned_models import describe
from .serving.metrics import Metrics
from .serving.schemas import LearnedModelDescription
from .serving.service import Service
from .serving.specs import ModelsConfig, spec_for

T = TypeVar("T")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SHOTS = (1, 2, 5, 10)
METHODS: tuple[tuple[Method, str], ...] = (
    ("mean", "class mean (served)"),
    ("nearest", "nearest example"),
)
Flags = Callable[[argparse.ArgumentParser], None]
SettingsFlags = Callable[[argparse.ArgumentParser, Sequence[str]], None]


def register(commands: Any, remote_flags: Flags, settings_flags: SettingsFlags) -> None:
    """Add `learn` and its actions to the command's subparsers."""
    learn = commands.add_parser("learn", help="learned classes: teach, list, export, evaluate")
    actions = learn.add_subparsers(dest="learn_command", required=True, metavar="ACTION")

    def action(name: str, help: str, run: Callable[..., int], *arguments: str) -> Any:
        """An action that works on EDGE_DATA_DIR, or on a server with --url."""
        parser = actions.add_parser(name, help=help)
        for argument in arguments:
            parser.add_argument(argument.lower(), metavar=argument)
        remote_flags(parser)
        settings_flags(parser, ("data_dir", "embedder", "models_dir", "runtime"))
        parser.set_defaults(run=run)
        return parser

    add = action(
        "add", "teach class LABEL of learned model NAME from photos", _add, "NAME", "LABEL"
    )
    add.add_argument("photos", nargs="+", metavar="PHOTO")
    add.add_argument("--crop", metavar="X0,Y0,X1,Y1", help="the same region of every photo")
    listing = action("list", "the learned models and their classes", _list)
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    action("export", "write learned model NAME to FILE (a backup)", _export, "NAME", "FILE")
    action("import", "create or replace NAME from an export FILE", _import, "NAME", "FILE")

    evaluate = actions.add_parser(
        "evaluate",
        help="top-1 accuracy of FOLDER/<class>/*.jpg against examples per class, leave-one-out",
    )
    evaluate.add_argument("folder", metavar="FOLDER")
    evaluate.add_argument("--json", action="store_true", help="print JSON for scripts")
    evaluate.add_argument("--draws", type=int, default=20, help="random draws per photo")
    settings_flags(evaluate, ("embedder", "models_dir", "runtime"))
    evaluate.set_defaults(run=_evaluate)


# --- the actions ----------------------------------------------------------------------------


def _add(args: argparse.Namespace, settings: Settings) -> int:
    photos: list[bytes] = []
    for name in args.photos:
        try:
            photos.append(Path(name).read_bytes())
        except OSError as exc:
            return fail(f"{name}: {exc.strerror or exc}")
    if args.url:
        return remote(
            args,
            lambda client: client.learn(args.name, args.label, photos, crop=args.crop),
            _print_model,
        )
    region = parse_region(args.crop) if args.crop else None

    async def learn(service: Service) -> LearnedModelDescription:
        return describe(await service.learn(args.name, args.label, photos, region))

    return _local(settings, learn, _print_model)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    def show(models: list[LearnedModelDescription]) -> None:
        if args.json:
            print(json.dumps([m.model_dump() for m in models], indent=2))
            return
        if not models:
            print("no learned models")
        for model in models:
            _print_model(model)

    if args.url:
        return remote(args, lambda client: client.learned().models, show)

    async def listed(service: Service) -> list[LearnedModelDescription]:
        return [describe(m) for m in service.learned.models.values()]

    return _local(settings, listed, show)


def _export(args: argparse.Namespace, settings: Settings) -> int:
    target = Path(args.file)

    def write(data: bytes) -> None:
        target.write_bytes(data)
        print(f"wrote {args.name} to {target} ({len(data)} bytes)")

    if args.url:
        return remote(args, lambda client: client.export_learned(args.name), write)

    async def exported(service: Service) -> bytes:
        with await service.learned.exported(args.name) as file:
            return file.read()

    return _local(settings, exported, write)


def _import(args: argparse.Namespace, settings: Settings) -> int:
    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        return fail(f"{args.file}: {exc.strerror or exc}")
    if args.url:
        return remote(args, lambda client: client.import_learned(args.name, data), _print_model)

    async def imported(service: Service) -> LearnedModelDescription:
        async def chunks() -> AsyncIterator[bytes]:
            yield data

        model, _ = await service.learned.import_file(args.name, chunks())
        return describe(model)

    return _local(settings, imported, _print_model)


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    folder = Path(args.folder)
    photos = _class_photos(folder)
    if len(photos) < 2:
        return fail(
            f"{folder} needs two or more class folders holding photos "
            f"({', '.join(PHOTO_SUFFIXES)}): FOLDER/<class>/<photo>"
        )
    spec = spec_for(settings.embedder, settings, ModelsConfig())
    engine = spec.load()
    embeddings: list[np.ndarray[Any, Any]] = []
    labels: list[str] = []
    try:
        for label, paths in photos.items():
            for path in paths:
                try:
                    prepared = engine.prepare(
                        path.read_bytes(),
                        max_pixels=settings.max_image_pixels,
                        min_side=settings.min_image_side,
                    )
                except (OSError, ServiceError) as exc:
                    print(f"{path}: {getattr(exc, 'detail', exc)}; skipped", file=sys.stderr)
                    continue
                embeddings.append(engine.submit(prepared.tensor).result().raw.reshape(-1))
                labels.append(label)
    finally:
        engine.close()
    rows = [
        {
            "examples_per_class": shots,
            **{
                method: round(
                    few_shot_accuracy(
                        np.stack(embeddings), labels, shots, method, trials=args.draws
                    ),
                    4,
                )
                for method, _ in METHODS
            },
            "unknown": round(
                few_shot_unknown(np.stack(embeddings), labels, shots, trials=args.draws), 4
            ),
            "short_classes": sorted(c for c in photos if labels.count(c) <= shots),
        }
        for shots in SHOTS
        # A row where no class has a photo more than `shots` repeats the one before it.
        if shots == 1 or any(labels.count(c) > shots for c in photos)
    ]
    if args.json:
        print(json.dumps({"classes": {c: labels.count(c) for c in photos}, "rows": rows}))
        return 0
    _print_table(photos, labels, rows, args.draws)
    return 0


# --- helpers --------------------------------------------------------------------------------


def _class_photos(folder: Path) -> dict[str, list[Path]]:
    if not folder.is_dir():
        return {}
    found = {
        sub.name: sorted(p for p in sub.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        for sub in sorted(folder.iterdir())
        if sub.is_dir()
    }
    return {label: paths for label, paths in found.items() if paths}


def _print_table(
    photos: dict[str, list[Path]], labels: list[str], rows: list[dict[str, Any]], draws: int
) -> None:
    counts = ", ".join(f"{c} {labels.count(c)}" for c in photos)
    print(f"photos: {counts}; each held out in turn, {draws} random draws of the examples")
    titles = [title for _, title in METHODS] + ["unknown (served)"]
    print(f"{'examples per class':>18}  " + "  ".join(f"{title:>19}" for title in titles))
    for row in rows:
        mark = "*" if row["short_classes"] else " "
        values = [row[method] for method, _ in METHODS] + [row["unknown"]]
        cells = "  ".join(f"{value * 100:>18.1f}%" for value in values)
        print(f"{row['examples_per_class']:>17}{mark}  {cells}")
    print(
        "unknown: how often a photo of a learned class falls under the calibrated threshold "
        "and would be answered unknown"
    )
    if any(row["short_classes"] for row in rows):
        print("* some classes have no more photos than that: they use all but the held-out one")


def _print_model(model: LearnedModelDescription) -> None:
    classes = ", ".join(f"{c.label} ({c.examples})" for c in model.classes) or "no classes"
    line = f"{model.name} [{model.status}]: {classes}"
    if model.threshold is not None:
        line += f"; unknown under {model.threshold:.3f}"
    if model.problem:
        line += f"; {model.problem}"
    print(line)


def _local(
    settings: Settings,
    work: Callable[[Service], Awaitable[T]],
    show: Callable[[T], None],
) -> int:
    """`work` on the learned models in EDGE_DATA_DIR, through the service's own code (the
    service should be stopped: it reads the folder only when it starts)."""

    async def run() -> T:
        service = Service(settings, Metrics(), ApiKeys(()))
        try:
            await service.learned.start()
            return await work(service)
        finally:
            await service.shutdown()

    return run_local(run, show)
