"""The people registered for face recognition, kept in EDGE_DATA_DIR/faces.

One file per person (`<sha256 of the name>.person`: the name, and each registered photo's
descriptor and when it was added), replaced whole and synced before a registration is
answered (`storage.write_atomically`), so every acknowledged change survives a crash or a
SIGKILL, and a torn write leaves the previous file. Deleting a person removes their file: no
tombstone keeps their descriptors. Without a data folder people are kept in memory only.

Each person records which model made their descriptors (`model`: dlib's by default, or a
TFLite embedder's name and sha256; a file without it is dlib's): two models' vectors are not
comparable, and the photos are not kept to describe again, so a person described by another
model than the server's is not matched (logged at start, left on disk until registered again
or deleted) and an import of them is refused.

An export is one JSON document of every person (`FORMAT`), which an import merges (a person
already registered gets the file's descriptors added). Descriptors are biometric data: they
are never logged; only counts are.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from ..core.errors import BadRequest, Conflict, StartupError, StorageFailed, TooLarge
from ..core.face_description import DIMENSIONS
from ..core.face_embedding import DLIB_MODEL
from . import storage

log = logging.getLogger("edge_server")
T = TypeVar("T")

FORMAT = "edge-server-faces"
VERSION = 1
SUFFIX = ".person"
MAX_NAME = 100
Vectors = npt.NDArray[np.float32]


@dataclass
class Person:
    """One registered person: a descriptor per photo, and when each was added."""

    name: str
    vectors: Vectors = field(default_factory=lambda: np.zeros((0, DIMENSIONS), np.float32))
    added: list[int] = field(default_factory=list)  # Unix seconds, one per vector
    model: str = DLIB_MODEL  # the descriptor model that made the vectors

    def document(self) -> dict[str, Any]:
        """The person as JSON (the file's and the export's shape)."""
        return {
            "userid": self.name,
            "model": self.model,
            "added": self.added,
            "vectors": base64.b64encode(self.vectors.astype("<f4").tobytes()).decode("ascii"),
        }


def check_userid(userid: str) -> str:
    """A person's name as given, or 400: 1-100 characters, no control characters."""
    name = userid.strip()
    if not name:
        raise BadRequest("userid is empty; give the person's name")
    if len(name) > MAX_NAME:
        raise BadRequest(f"userid is {len(name)} characters; at most {MAX_NAME}")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadRequest("userid has control characters")
    return name


class OtherModel(ValueError):
    """A person's descriptors were made by another model than the server's."""


def person_of(document: object, model: str = DLIB_MODEL, dimensions: int = DIMENSIONS) -> Person:
    """A person from their JSON, described by `model` (`dimensions` values a vector);
    OtherModel for another model's, ValueError saying what else is wrong."""
    if not isinstance(document, dict):
        raise ValueError("a person is not an object")
    made_by = document.get("model", DLIB_MODEL)
    if not isinstance(made_by, str):
        raise ValueError("model is not a string")
    if made_by != model:
        raise OtherModel(f"described by {made_by}, not {model}")
    name = document.get("userid")
    added = document.get("added")
    encoded = document.get("vectors")
    if not isinstance(name, str) or not isinstance(encoded, str) or not isinstance(added, list):
        raise ValueError("a person needs userid, added and vectors")
    try:
        check_userid(name)
    except BadRequest as exc:
        raise ValueError(exc.detail) from None
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("vectors are not base64") from exc
    if len(raw) % (4 * dimensions):
        raise ValueError(f"vectors are not {dimensions}-value descriptors")
    vectors = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(-1, dimensions)
    if not np.isfinite(vectors).all():
        raise ValueError("vectors hold values that are not finite")
    if len(added) != len(vectors) or not all(isinstance(t, int) for t in added):
        raise ValueError("added needs one whole number of seconds per vector")
    return Person(name, vectors, [int(t) for t in added], model)


class People:
    """The registered people: in memory for matching, on disk when there is a folder."""

    def __init__(
        self,
        folder: Path | None,
        *,
        max_people: int,
        max_photos: int,
        model: str = DLIB_MODEL,
        dimensions: int = DIMENSIONS,
    ) -> None:
        self.folder = folder
        self.model = model  # the descriptor model of every person kept
        self.dimensions = dimensions
        self.max_people = max_people
        self.max_photos = max_photos
        self.people: dict[str, Person] = {}
        self._lock = asyncio.Lock()  # one change at a time: a file is rewritten whole
        self._folder_lock: int | None = None

    def open(self) -> None:
        """Read every stored person (a damaged file is logged and left alone); a folder that
        cannot be written stops the start."""
        if self.folder is None:
            log.info("faces: EDGE_DATA_DIR is unset, registered people are kept in memory only")
            return
        folder = self.folder
        try:
            storage.make_writable(folder)
        except OSError as exc:
            raise StartupError(
                f"cannot write registered faces to {folder}: {exc.strerror or exc}",
                fix="make EDGE_DATA_DIR a folder the service's user may write",
            ) from exc
        self._folder_lock = storage.hold_lock(folder)
        if self._folder_lock is None:
            raise StartupError(
                f"another process is using the registered faces in {folder}",
                fix="stop it, or give each server its own EDGE_DATA_DIR",
            )
        for swept in storage.sweep_temporaries(folder):
            log.warning("faces: removed %s, left by a write a crash interrupted", swept.name)
        others = 0
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            try:
                person = person_of(json.loads(path.read_bytes()), self.model, self.dimensions)
            except OtherModel:
                others += 1
                continue
            except (OSError, ValueError) as exc:
                log.error("faces: %s is not used: %s", path.name, exc)
                continue
            self.people[person.name] = person
        if others:
            log.warning(
                "faces: %d people were registered with another descriptor model than %s "
                "(EDGE_FACE_EMBEDDER changed); they are not matched: register them again, or "
                "set EDGE_FACE_EMBEDDER back",
                others,
                self.model,
            )
        log.info("faces: %d people registered", len(self.people))

    def close(self) -> None:
        """Let another process use the folder."""
        if self._folder_lock is not None:
            os.close(self._folder_lock)
            self._folder_lock = None

    def names(self) -> list[str]:
        """The people, sorted."""
        return sorted(self.people)

    def vectors(self) -> dict[str, Vectors]:
        """Each person's descriptors (the arrays are replaced, never changed in place)."""
        return {name: person.vectors for name, person in self.people.items()}

    def check_room(self, userid: str, photos: int) -> None:
        """409 before any work when the registration would pass a limit."""
        person = self.people.get(userid)
        if person is None and len(self.people) >= self.max_people:
            raise Conflict(
                f"{len(self.people)} people are registered, the most kept "
                "(EDGE_FACE_MAX_PEOPLE); delete one first"
            )
        have = 0 if person is None else len(person.vectors)
        if have + photos > self.max_photos:
            raise Conflict(
                f"this person has {have} photos and {photos} more would pass the "
                f"{self.max_photos} kept of one person (EDGE_FACE_MAX_PHOTOS)"
            )

    async def add(self, userid: str, vectors: Vectors) -> tuple[Person, bool]:
        """Add descriptors to a person (created when new), stored before it returns; the
        person and whether they were created."""
        async with self._lock:
            self.check_room(userid, len(vectors))
            old = self.people.get(userid)
            now = int(time.time())
            person = Person(
                userid,
                np.concatenate([old.vectors, vectors]) if old is not None else vectors.copy(),
                (old.added if old is not None else []) + [now] * len(vectors),
                self.model,
            )
            await self._write(person)
            self.people[userid] = person
            return person, old is None

    async def delete(self, userid: str) -> bool:
        """Forget a person and remove their file; False if nobody had that name."""
        async with self._lock:
            if userid not in self.people:
                return False
            if self.folder is not None:
                path = self._path(userid)
                await self._stored(storage.remove_durably, path)
            del self.people[userid]
            return True

    def export(self) -> bytes:
        """Every person as one JSON document."""
        document = {
            "format": FORMAT,
            "version": VERSION,
            "people": [self.people[name].document() for name in self.names()],
        }
        return json.dumps(document).encode()

    async def import_(self, data: bytes, limit: int) -> int:
        """Merge an export: each person's descriptors are added (created when new); how many
        people it held. 400 for anything that is not an export, nothing kept."""
        if len(data) > limit:
            raise TooLarge(
                f"the file is {len(data)} bytes, over EDGE_FACE_MAX_IMPORT_BYTES={limit}"
            )
        try:
            document = json.loads(data)
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise ValueError(f"not an {FORMAT} export")
            if document.get("version") != VERSION:
                raise ValueError(
                    f"version {document.get('version')!r}; this server reads {VERSION}"
                )
            listed = document.get("people")
            if not isinstance(listed, list):
                raise ValueError("people is not a list")
            people = [person_of(item, self.model, self.dimensions) for item in listed]
        except OtherModel as exc:
            raise BadRequest(
                f"the file's people were {exc}, this server's descriptor model: their vectors "
                "cannot be compared; register them from photos, or import into a server with "
                "the same EDGE_FACE_EMBEDDER"
            ) from None
        except (ValueError, UnicodeDecodeError) as exc:  # json's errors are ValueErrors
            raise BadRequest(f"the file is not a faces export: {exc}") from None
        merged: dict[str, Person] = {}
        for person in people:
            if person.name in merged:
                first = merged[person.name]
                person = Person(
                    person.name,
                    np.concatenate([first.vectors, person.vectors]),
                    first.added + person.added,
                    self.model,
                )
            merged[person.name] = person
        async with self._lock:
            new = [name for name in merged if name not in self.people]
            if len(self.people) + len(new) > self.max_people:
                raise Conflict(
                    f"the file adds {len(new)} people to the {len(self.people)} registered, "
                    f"over EDGE_FACE_MAX_PEOPLE={self.max_people}"
                )
            combined = []
            for name, person in merged.items():
                old = self.people.get(name)
                if old is not None:
                    person = Person(
                        name,
                        np.concatenate([old.vectors, person.vectors]),
                        old.added + person.added,
                        self.model,
                    )
                if len(person.vectors) > self.max_photos:
                    raise Conflict(
                        f"a person would have {len(person.vectors)} photos, over "
                        f"EDGE_FACE_MAX_PHOTOS={self.max_photos}"
                    )
                combined.append(person)
            for person in combined:
                await self._write(person)
                self.people[person.name] = person
        return len(merged)

    def _path(self, userid: str) -> Path:
        assert self.folder is not None
        digest = hashlib.sha256(userid.encode()).hexdigest()[:32]
        return self.folder / f"{digest}{SUFFIX}"

    async def _write(self, person: Person) -> None:
        if self.folder is None:
            return
        data = json.dumps(person.document()).encode()
        await self._stored(storage.write_atomically, self._path(person.name), [data])

    async def _stored(self, write: Callable[..., T], *args: Any) -> T:
        """A file change off the event loop; OSError (a full disk...) is 507, nothing kept."""
        try:
            return await asyncio.to_thread(write, *args)
        except OSError as exc:
            log.error("faces: a change was not stored: %s", exc.strerror or exc)
            raise StorageFailed(
                f"the change could not be stored ({exc.strerror or exc}); nothing of it was kept"
            ) from exc
