"""The `edge-server faces` commands: register people from photos, list and remove them, on a
running server (--url) or in EDGE_DATA_DIR with the service stopped."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .actions import fail, remote, run_local
from .config.settings import Settings
from .core.errors import NotFound
from .serving.faces import Faces, faces_for
from .serving.metrics import Metrics
from .serving.schemas import PeopleList, PersonRegistration

T = TypeVar("T")
Flags = Callable[[argparse.ArgumentParser], None]
SettingsFlags = Callable[[argparse.ArgumentParser, Sequence[str]], None]
_LOCAL_SETTINGS = ("data_dir", "models_dir", "face_models_dir", "face_detector")


def register(commands: Any, remote_flags: Flags, settings_flags: SettingsFlags) -> None:
    """Add `faces` and its actions to the command's subparsers."""
    faces = commands.add_parser("faces", help="people recognised by their faces: add, list, remove")
    actions = faces.add_subparsers(dest="faces_command", required=True, metavar="ACTION")

    def action(name: str, help: str, run: Callable[..., int]) -> Any:
        """An action that works on EDGE_DATA_DIR, or on a server with --url."""
        parser = actions.add_parser(name, help=help)
        remote_flags(parser)
        settings_flags(parser, _LOCAL_SETTINGS)
        parser.set_defaults(run=run)
        return parser

    add = action("add", "register NAME from photos (each photo's largest face is added)", _add)
    add.add_argument("name", metavar="NAME")
    add.add_argument("photos", nargs="+", metavar="PHOTO")
    listing = action("list", "the people registered", _list)
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    remove = action("remove", "forget NAME and their face descriptors", _remove)
    remove.add_argument("name", metavar="NAME")


def _add(args: argparse.Namespace, settings: Settings) -> int:
    photos: list[bytes] = []
    for name in args.photos:
        try:
            photos.append(Path(name).read_bytes())
        except OSError as exc:
            return fail(f"{name}: {exc.strerror or exc}")

    def show(done: PersonRegistration) -> None:
        verb = "registered" if done.created else "updated"
        print(f"{verb} {done.name}: {done.added} photo(s) added, {done.total} in all")

    if args.url:
        return remote(args, lambda client: client.add_person(args.name, photos), show)

    async def add(faces: Faces) -> PersonRegistration:
        done = await faces.register(args.name, photos)
        return PersonRegistration(
            name=done.userid, added=done.added, total=done.total, created=done.created
        )

    return _local(settings, add, show)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    def show(people: PeopleList) -> None:
        if args.json:
            print(people.model_dump_json())
        elif not people.people:
            print("nobody is registered")
        else:
            print("\n".join(people.people))

    if args.url:
        return remote(args, lambda client: client.people(), show)

    async def listed(faces: Faces) -> PeopleList:
        return faces.listing()

    return _local(settings, listed, show)


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    def show(_: object) -> None:
        print(f"removed {args.name}")

    if args.url:
        return remote(args, lambda client: client.remove_person(args.name), show)

    async def remove(faces: Faces) -> None:
        if not await faces.delete(args.name):
            raise NotFound(f"nobody called {args.name!r} is registered")

    return _local(settings, remove, show)


def _local(
    settings: Settings, work: Callable[[Faces], Awaitable[T]], show: Callable[[T], None]
) -> int:
    """`work` on the people in EDGE_DATA_DIR, through the service's own code (the service
    should be stopped: it reads the folder only when it starts)."""
    if settings.data_dir is None:
        return fail(
            "set EDGE_DATA_DIR (or --data-dir) to the folder the server keeps people in, "
            "or use --url with a running server"
        )
    faces = faces_for(settings, Metrics())
    if faces is None:
        return fail(
            "the face models are not in the models folder: `edge-server models pull faces` "
            "(or set --models-dir / EDGE_FACE_MODELS_DIR)"
        )

    async def run() -> T:
        try:
            await faces.start()
            return await work(faces)
        finally:
            await faces.close()

    return run_local(run, show)
