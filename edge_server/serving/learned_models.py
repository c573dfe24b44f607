"""Learned models: classes taught on the device from a few photos, kept in EDGE_DATA_DIR.

Each learned model is one journal file (`journal`) in `EDGE_DATA_DIR/learned/`, replayed into
memory at start-up (only the embeddings: 1 KB an example) and served by name like any
classifier (`ImprintedEngine`, on the embedding model's interpreters). Changes are made one at a
time (a lock): a change is appended to the file and synced before the new head is swapped in
and the client is answered, so an acknowledged example survives a crash, and a request is
answered by the model before or after a change, never by one half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import tempfile
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
import numpy.typing as npt

from ..config.settings import Settings
from ..core.detection import Task
from ..core.engine import Engine
from ..core.errors import (
    BadRequest,
    Conflict,
    NotFound,
    NotReady,
    ServiceError,
    StartupError,
    StorageFailed,
    TooLarge,
)
from ..core.imprinted import ImprintedEngine
from ..core.imprinting import UNKNOWN, head
from . import journal, storage
from .catalog import lookup
from .journal import BadJournal, Contents, Header
from .metrics import Metrics
from .repository import ModelRepository
from .schemas import LearnedClass, LearnedModelDescription
from .specs import spec_for

log = logging.getLogger("edge_server")
T = TypeVar("T")

NAME = journal.MODEL_NAME
THUMBNAIL_SIDE = 128
_LABEL_PUNCTUATION = set(" ._-'")


class Status(StrEnum):
    """Whether a stored learned model is served."""

    ready = "ready"
    unusable = "unusable"  # a damaged file, or learned with another embedding model


@dataclass
class LearnedModel:
    """One learned model in memory: its examples' embeddings by class, and how it is stored."""

    name: str
    path: Path
    status: Status = Status.ready
    problem: str = ""
    header: Header | None = None
    classes: dict[str, npt.NDArray[Any]] = field(default_factory=dict)  # raw rows per class
    threshold: float | None = None  # the model's own setting; None: calibrated
    size: int = 0  # bytes on disk
    engine: ImprintedEngine | None = None

    def counts(self) -> dict[str, int]:
        return {label: len(rows) for label, rows in self.classes.items()}


@dataclass(frozen=True)
class Example:
    """One photo to learn: its raw embedding and thumbnail."""

    embedding: npt.NDArray[Any]
    thumbnail: bytes


def check_name(name: str) -> str:
    """A learned model's name, or 400: it is a file name and a URL and topic segment."""
    if not NAME.fullmatch(name):
        raise BadRequest(
            f"{name[:80]!r} cannot name a learned model: use 1-64 letters, digits, '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_label(label: str, longest: int) -> str:
    """A class name, or 400: printable letters, digits, spaces and . _ - ' only."""
    label = unicodedata.normalize("NFC", label).strip()
    if not label:
        raise BadRequest("the label is empty: name the class, e.g. label=our_cat")
    if len(label) > longest:
        raise BadRequest(
            f"the label is {len(label)} characters long; at most {longest} (EDGE_LEARNED_MAX_LABEL)"
        )
    odd = sorted({c for c in label if not (c.isalnum() or c in _LABEL_PUNCTUATION)})
    if odd:
        raise BadRequest(
            f"the label may hold letters, digits, spaces and . _ - ' only, not {''.join(odd)!r}"
        )
    if not any(c.isalnum() for c in label):
        raise BadRequest("the label needs a letter or a digit (a URL cannot hold '.' or '..')")
    if label.casefold() == UNKNOWN:
        raise BadRequest(f"{UNKNOWN!r} is what a photo unlike every class is called; pick another")
    return label


class LearnedModels:
    """The learned models: stored, served, changed one at a time."""

    def __init__(self, settings: Settings, repository: ModelRepository, metrics: Metrics) -> None:
        self.settings = settings
        self.repository = repository
        self.metrics = metrics
        self.folder = settings.data_dir / "learned" if settings.data_dir is not None else None
        self.models: dict[str, LearnedModel] = {}
        self._embedder: Engine | None = None
        self._lock = asyncio.Lock()
        self._loading = asyncio.Lock()  # one load of the embedding model, however many ask
        self._folder_lock: int | None = None

    # --- start and stop -------------------------------------------------------------------

    async def start(self) -> None:
        """Read every stored model; serve the usable ones (a damaged one is logged, kept, and
        reported by GET /v1/learned). A data folder that cannot be used stops the start."""
        if self.folder is None:
            return
        folder = self.folder
        try:
            storage.make_writable(folder)
        except OSError as exc:
            raise StartupError(
                f"cannot write learned models to {folder}: {exc.strerror or exc}",
                fix="make EDGE_DATA_DIR a folder the service's user may write (the unit's "
                "StateDirectory, a volume in the container), or unset it to turn learning off",
            ) from exc
        self._folder_lock = storage.hold_lock(folder)
        if self._folder_lock is None:
            raise StartupError(
                f"another process is using the learned models in {folder}: an edge-server on "
                "the same EDGE_DATA_DIR, or an `edge-server learn` command without --url",
                fix="stop it, or give each server its own EDGE_DATA_DIR; with the service "
                "running, use `edge-server learn ... --url http://HOST:8080`",
            )
        for swept in storage.sweep_temporaries(folder):
            log.warning("removed %s, left by a write that a crash interrupted", swept.name)
        for path in sorted(folder.glob(f"*{journal.SUFFIX}")):
            model = await asyncio.to_thread(self._read, path)
            self.models[model.name] = model
            if model.status is Status.ready and (
                model.name in self.repository.names() or lookup(model.name) is not None
            ):
                # EDGE_MODEL or the models config came to serve a model of this name since
                # it was taught: the served model keeps the name.
                model.status = Status.unusable
                model.problem = (
                    f"{model.name!r} is now the name of a served or catalog model; export this "
                    "one and import it under another name, or delete it"
                )
                log.error("learned model %s is not served: %s", model.name, model.problem)
        if any(m.status is Status.ready for m in self.models.values()):
            try:
                embedder = await self.embedder()
            except StartupError as exc:
                # The other models (and detectors, Frigate) serve on; these wait for it.
                log.error("learned models are not served: %s. Fix: %s", exc.problem, exc.fix)
                for model in self.models.values():
                    if model.status is Status.ready:
                        model.status = Status.unusable
                        model.problem = f"{exc.problem}. Fix: {exc.fix}, then restart"
            else:
                for model in self.models.values():
                    self._check_embedder(model, embedder)
                    if model.status is Status.ready:
                        self._serve(model, announce=True)
        self._count()
        if self.models:
            log.info(
                "learned models: %s",
                ", ".join(f"{m.name} ({m.status})" for m in self.models.values()),
            )

    async def close(self) -> None:
        """Close the embedding model (after the served models are shut down)."""
        if self._embedder is not None:
            await asyncio.to_thread(self._embedder.close)
            self._embedder = None
        if self._folder_lock is not None:
            os.close(self._folder_lock)
            self._folder_lock = None

    def _read(self, path: Path) -> LearnedModel:
        """A stored model from its file: a torn last record (a crash mid-append, never
        acknowledged) is cut off; any other damage makes the model unusable."""
        name = path.name.removesuffix(journal.SUFFIX)
        model = LearnedModel(name, path)
        try:
            contents = journal.read_file(path)
            if contents.torn:
                log.warning(
                    "learned model %s: its last change was cut off by a crash before it was "
                    "acknowledged; removed it",
                    name,
                )
                storage.truncate_durably(path, contents.size)
            self._checked_contents(contents)
        except (BadJournal, BadRequest, OSError) as exc:
            problem = str(exc) if not isinstance(exc, OSError) else exc.strerror or str(exc)
            log.error(
                "learned model %s is not served: %s is damaged (%s); delete it with "
                "DELETE /v1/learned/%s or import a backup with PUT /v1/learned/%s",
                name,
                path,
                problem,
                name,
                name,
            )
            model.status, model.problem = Status.unusable, f"the file is damaged: {problem}"
            with contextlib.suppress(OSError):
                model.size = path.stat().st_size
            return model
        self._take(model, contents)
        return model

    def _take(self, model: LearnedModel, contents: Contents) -> None:
        model.header = contents.header
        model.classes = {
            label: rows.copy() for label, rows in contents.classes.items() if len(rows)
        }
        model.threshold = contents.threshold
        model.size = contents.size

    def _checked_contents(self, contents: Contents) -> None:
        """Limits and labels of a replayed file (an import, or one edited by hand)."""
        settings = self.settings
        if len(contents.classes) > settings.learned_max_classes:
            raise BadRequest(
                f"{len(contents.classes)} classes, more than EDGE_LEARNED_MAX_CLASSES="
                f"{settings.learned_max_classes}"
            )
        for label, rows in contents.classes.items():
            if check_label(label, settings.learned_max_label) != label:
                raise BadRequest(f"the label {label!r} is not in its normal form")
            if len(rows) > settings.learned_max_examples:
                raise BadRequest(
                    f"class {label!r} has {len(rows)} examples, more than "
                    f"EDGE_LEARNED_MAX_EXAMPLES={settings.learned_max_examples}"
                )

    def _check_embedder(self, model: LearnedModel, embedder: Engine) -> None:
        header = model.header
        if model.status is not Status.ready or header is None:
            return
        problem = _mismatch(header, embedder)
        if problem:
            model.status, model.problem = Status.unusable, problem
            log.error("learned model %s is not served: %s", model.name, model.problem)

    # --- the embedding model ----------------------------------------------------------------

    async def embedder(self) -> Engine:
        """The embedding model, loaded the first time a learned model needs it (once, however
        many requests ask at the same time)."""
        async with self._loading:
            if self._embedder is None:
                self._embedder = await self._load_embedder()
            return self._embedder

    async def _load_embedder(self) -> Engine:
        settings = self.settings
        entry = lookup(settings.embedder)
        if entry is None or entry.task != Task.embedding.value:
            raise StartupError(
                f"EDGE_EMBEDDER={settings.embedder!r} is not an embedding model of the catalog",
                fix="unset EDGE_EMBEDDER to use `embedder` "
                "(mobilenet_v1_1.0_224_quant_embedding_extractor)",
            )
        spec = spec_for(settings.embedder, settings, self.repository.config)
        engine = await asyncio.to_thread(spec.load, self.repository.decoders)
        engine.memory = self.repository.memory
        return engine

    async def embedder_now(self) -> Engine:
        """The embedding model for a request: one that cannot be loaded is a 503 saying how
        to fix it (at start-up the same problem stops the start)."""
        try:
            return await self.embedder()
        except StartupError as exc:
            raise NotReady(
                f"learned models need the embedding model, which cannot be loaded: "
                f"{exc.problem}. Fix: {exc.fix}"
            ) from exc

    def require(self) -> Path:
        """The learned models' folder, or 409 saying how to turn learning on."""
        if self.folder is None:
            raise Conflict(
                "learning is off: set EDGE_DATA_DIR to a folder where learned models are kept "
                "(the systemd unit and the container set it already)"
            )
        return self.folder

    def get(self, name: str) -> LearnedModel:
        """A stored learned model by name, or 404."""
        self.require()
        model = self.models.get(check_name(name))
        if model is None:
            raise NotFound(
                f"no learned model named {name!r}; learned: {', '.join(self.models) or 'none'}"
            )
        return model

    # --- changes ------------------------------------------------------------------------------

    def check_room(self, name: str, label: str, count: int) -> None:
        """409 when `count` more examples of `label` would pass a limit (checked before the
        photos are embedded, and again when they are stored)."""
        settings = self.settings
        model = self.models.get(name)
        if model is None:
            if name in self.repository.names() or lookup(name) is not None:
                self.refused("bad_name")
                raise Conflict(
                    f"{name!r} is the name of a served or catalog model; name the learned "
                    "model otherwise"
                )
            if len(self.models) >= settings.learned_max_models:
                self.refused("limit")
                raise Conflict(
                    f"{len(self.models)} learned models are kept, the most allowed "
                    f"(EDGE_LEARNED_MAX_MODELS={settings.learned_max_models}); delete one first"
                )
            return
        if model.status is not Status.ready:
            self.refused("unusable")
            raise Conflict(f"learned model {name!r} is not usable: {model.problem}")
        have = len(model.classes.get(label, ()))
        if not have and len(model.classes) >= settings.learned_max_classes:
            self.refused("limit")
            raise Conflict(
                f"{name!r} has {len(model.classes)} classes, the most allowed "
                f"(EDGE_LEARNED_MAX_CLASSES={settings.learned_max_classes}); delete one first"
            )
        if have + count > settings.learned_max_examples:
            self.refused("limit")
            raise Conflict(
                f"class {label!r} of {name!r} has {have} examples; {count} more would pass "
                f"EDGE_LEARNED_MAX_EXAMPLES={settings.learned_max_examples}; delete the class "
                "to start it again"
            )

    def checked(self, name: str, label: str) -> str:
        """The label in its normal form, once it and the model's name pass (400, counted)."""
        try:
            check_name(name)
        except BadRequest:
            self.refused("bad_name")
            raise
        try:
            return check_label(label, self.settings.learned_max_label)
        except BadRequest:
            self.refused("bad_label")
            raise

    async def add(self, name: str, label: str, examples: list[Example]) -> LearnedModel:
        """Store the examples (one record), then serve the model with them; created on first
        use. The name and label are `checked` ones. The file is synced before this returns."""
        folder = self.require()
        embedder = await self.embedder_now()
        async with self._lock:
            self.check_room(name, label, len(examples))
            model = self.models.get(name)
            record = journal.add_line(
                label, [(e.embedding.tobytes(), e.thumbnail) for e in examples]
            )
            if model is None:
                # A new model's file is its header and its first examples, written whole or
                # not at all: a failure leaves no empty model behind.
                header = self._header(name, embedder)
                path = folder / f"{name}{journal.SUFFIX}"
                line = journal.header_line(header)
                await self._stored(name, storage.write_atomically, path, [line, record])
                model = LearnedModel(name, path, header=header, size=len(line) + len(record))
                self.models[name] = model
                log.info("created learned model %s", name)
            else:
                await self._append(model, record)
            rows = np.stack([e.embedding.reshape(-1) for e in examples])
            old = model.classes.get(label)
            new_class = old is None
            model.classes[label] = rows if old is None else np.concatenate([old, rows])
            self._serve(model, announce=new_class)
            self._count()
            return model

    async def forget(self, name: str, label: str) -> LearnedModel:
        """Delete one class of a learned model."""
        async with self._lock:
            model = self._usable(name)
            if label not in model.classes:
                raise NotFound(
                    f"learned model {name!r} has no class {label!r}; it has: "
                    f"{', '.join(model.classes) or 'none'}"
                )
            await self._append(model, journal.forget_line(label))
            del model.classes[label]
            self._serve(model, announce=True)
            self._count()
            return model

    async def set_threshold(self, name: str, value: float | None) -> LearnedModel:
        """Set a model's open-set threshold (None: calibrate it from the examples again)."""
        async with self._lock:
            model = self._usable(name)
            await self._append(model, journal.threshold_line(value))
            model.threshold = value
            self._serve(model, announce=False)
            return model

    async def delete(self, name: str) -> None:
        """Delete a learned model and its file; its requests in flight finish."""
        async with self._lock:
            model = self.get(name)
            await asyncio.to_thread(storage.remove_durably, model.path)
            del self.models[name]
            if model.engine is not None:
                await self.repository.drop_learned(name)
            with contextlib.suppress(KeyError):  # never served
                self.metrics.learned_examples.remove(name)
            self._count()
            log.info("deleted learned model %s", name)

    async def exported(self, name: str) -> IO[bytes]:
        """The model's export (its live records) in a temporary file, read from the start; the
        caller closes it. Written off the event loop; a delete afterwards does not cut it."""
        model = self.get(name)
        return await asyncio.to_thread(_export, model.path, self.require())

    async def import_file(
        self, name: str, chunks: AsyncIterator[bytes]
    ) -> tuple[LearnedModel, bool]:
        """Replace or create `name` from an export streamed in `chunks`; (model, created).

        The upload goes to a temporary file in the data folder (at most
        EDGE_LEARNED_MAX_IMPORT_BYTES), is checked record by record, and only then renamed into
        place: a refused import changes nothing.
        """
        folder = self.require()
        check_name(name)
        limit = self.settings.learned_max_import_bytes
        fd, temp = storage.temp_file(folder, f"import-{name}")
        try:
            with os.fdopen(fd, "wb") as out:
                written = 0
                async for chunk in chunks:
                    written += len(chunk)
                    if written > limit:
                        self.refused("bad_file")
                        raise TooLarge(
                            f"the file is over EDGE_LEARNED_MAX_IMPORT_BYTES={limit} bytes"
                        )
                    out.write(chunk)
            try:
                contents = await asyncio.to_thread(_replayed, temp)
                if contents.torn:
                    raise BadJournal("its last line is cut off: the file is incomplete")
                self._checked_contents(contents)
            except (BadJournal, BadRequest) as exc:
                self.refused("bad_file")
                raise BadRequest(f"this is not a usable learned-model export: {exc}") from exc
            embedder = await self.embedder_now()
            header = self._header(name, embedder)
            if contents.header.embedder_sha256 != embedder.info.sha256:
                # Learned with another embedding model: its thumbnails are embedded anew.
                try:
                    contents = await self._stored(
                        name, self._embedded_anew, temp, header, embedder, contents
                    )
                except BadRequest:
                    self.refused("bad_file")
                    raise
            else:
                problem = _mismatch(contents.header, embedder)
                if problem:
                    self.refused("bad_file")
                    raise Conflict(f"this export cannot be served here: {problem}")
                # The header names the model it was exported from; it is stored as `name`.
                contents = await self._stored(name, _rewrite_header, temp, header, contents)
            async with self._lock:
                existing = self.models.get(name)
                if existing is None:
                    self.check_room(name, "", 0)
                path = folder / f"{name}{journal.SUFFIX}"
                await self._stored(name, storage.install_file, temp, path)
                model = existing or LearnedModel(name, path)
                model.status, model.problem, model.path = Status.ready, "", path
                self._take(model, contents)
                self.models[name] = model
                self._serve(model, announce=True)
                self._count()
                log.info("imported learned model %s (%d examples)", name, _examples(model))
                return model, existing is None
        finally:
            with contextlib.suppress(OSError):
                temp.unlink()

    # --- helpers ------------------------------------------------------------------------------

    def _header(self, name: str, embedder: Engine) -> Header:
        """The header of a model learned here, now."""
        info = embedder.info
        entry = lookup(self.settings.embedder)
        return Header(
            name=name,
            embedder=entry.name if entry is not None else info.name,
            embedder_sha256=info.sha256,
            dim=int(np.prod(info.output.shape)),
            dtype=np.dtype(info.output.dtype).name,
        )

    def _embedded_anew(
        self, path: Path, header: Header, embedder: Engine, contents: Contents
    ) -> Contents:
        """Rewrite an export learned with another embedding model: each example's thumbnail
        through this one, in the same classes and order (runs on a worker thread); what the
        file now holds."""
        with open(path, "rb") as stream:
            thumbnails = journal.thumbnails(stream)
        lines = [journal.header_line(header)]
        anew = Contents(header, threshold=contents.threshold)
        for label, thumbs in thumbnails.items():
            for start in range(0, len(thumbs), 32):  # lines of a few hundred kB at most
                examples = []
                for thumb in thumbs[start : start + 32]:
                    try:
                        prepared = embedder.prepare(
                            thumb,
                            max_pixels=self.settings.max_image_pixels,
                            min_side=1,
                        )
                    except ServiceError as exc:
                        raise BadRequest(
                            f"a thumbnail of class {label!r} is not an image: {exc.detail}"
                        ) from exc
                    raw = embedder.submit(prepared.tensor).result().raw.tobytes()
                    examples.append((raw, thumb))
                    anew.raw.setdefault(label, bytearray()).extend(raw)
                lines.append(journal.add_line(label, examples))
        if contents.threshold is not None:
            lines.append(journal.threshold_line(contents.threshold))
        storage.write_atomically(path, lines)
        anew.size = sum(len(line) for line in lines)
        log.info(
            "embedded %d thumbnails anew with %s (the export was learned with %s)",
            contents.examples(),
            header.embedder,
            contents.header.embedder,
        )
        return anew

    async def _stored(self, name: str, write: Callable[..., T], *args: Any) -> T:
        """A file write off the event loop, and its result; OSError (a full disk...) is 507."""
        try:
            return await asyncio.to_thread(write, *args)
        except OSError as exc:
            log.error("learned model %s: a change was not stored: %s", name, exc)
            raise StorageFailed(
                f"the change to {name!r} could not be stored ({exc.strerror or exc}); "
                "nothing of it was kept"
            ) from exc

    async def _append(self, model: LearnedModel, record: bytes) -> None:
        """Append one record, synced; a failure keeps nothing (507), and a file that cannot
        even be cut back to its last whole record is not used again until a restart."""
        try:
            model.size = await asyncio.to_thread(
                storage.append_durably, model.path, record, model.size
            )
        except OSError as exc:
            try:
                whole = model.path.stat().st_size == model.size
            except OSError:
                whole = False
            if not whole:
                model.status = Status.unusable
                model.problem = f"a change could not be written or undone: {exc.strerror or exc}"
                self._count()
            log.error("learned model %s: a change was not stored: %s", model.name, exc)
            raise StorageFailed(
                f"the change to {model.name!r} could not be stored ({exc.strerror or exc}); "
                "nothing of it was kept"
            ) from exc

    def _usable(self, name: str) -> LearnedModel:
        model = self.get(name)
        if model.status is not Status.ready:
            self.refused("unusable")
            raise Conflict(f"learned model {name!r} is not usable: {model.problem}")
        return model

    def _serve(self, model: LearnedModel, *, announce: bool) -> None:
        """Build the model's head and swap its engine in (requests in flight keep theirs)."""
        embedder = self._embedder
        if embedder is None or model.header is None:
            return
        learned = head(model.classes, model.threshold, dim=model.header.dim)
        model.engine = ImprintedEngine.imprinted(model.name, model.path, embedder, learned)
        self.repository.serve_learned(model.engine, announce=announce)
        self.metrics.learned_examples.labels(model.name).set(_examples(model))

    def _count(self) -> None:
        for status in Status:
            self.metrics.learned_models.labels(status.value).set(
                sum(m.status is status for m in self.models.values())
            )

    def refused(self, reason: str) -> None:
        """Count a refused change (a bad name, label, image or file, a limit, an unusable
        model) in edge_learned_refused_total."""
        self.metrics.learned_refused.labels(reason).inc()


def _examples(model: LearnedModel) -> int:
    return sum(len(rows) for rows in model.classes.values())


def _mismatch(header: Header, embedder: Engine) -> str:
    """Why embeddings of `header`'s kind cannot be served by `embedder` ("" when they can)."""
    info = embedder.info
    dim, dtype = int(np.prod(info.output.shape)), np.dtype(info.output.dtype).name
    if header.embedder_sha256 != info.sha256:
        return (
            f"learned with embedding model {header.embedder} ({header.embedder_sha256[:12]}), "
            f"but {info.name} ({info.sha256[:12]}) is loaded: export it and import it again "
            "(its thumbnails are embedded anew), or serve the embedding model it was learned "
            "with (EDGE_EMBEDDER)"
        )
    if (header.dim, header.dtype) != (dim, dtype):
        return (
            f"its embeddings are {header.dim} x {header.dtype}, but {info.name} gives "
            f"{dim} x {dtype}"
        )
    return ""


def _export(path: Path, folder: Path) -> IO[bytes]:
    # In the data folder (unnamed: nothing is left by a crash), not /tmp: a small tmpfs in the
    # container and the stack, and RAM.
    out = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115  # the caller closes it
    try:
        with open(path, "rb") as source:
            for line in journal.live_lines(source):
                out.write(line)
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return out


def _replayed(path: Path) -> Contents:
    with open(path, "rb") as stream:
        head_bytes = stream.read(4)
        if head_bytes.startswith(b"PK"):
            raise BadJournal("it is a zip archive; an export is a text file of records")
        stream.seek(0)
        return journal.replay(stream)


def _rewrite_header(path: Path, header: Header, contents: Contents) -> Contents:
    """Replace the file's first line (its header); what the file now holds."""
    with open(path, "rb") as source:
        old = source.readline(journal.MAX_LINE + 1)
        line = journal.header_line(header)
        rest = iter(functools.partial(source.read, 1 << 20), b"")
        storage.write_atomically(path, itertools.chain([line], rest))
    return replace(contents, header=header, size=contents.size - len(old) + len(line))


def describe(model: LearnedModel) -> LearnedModelDescription:
    """What `GET /v1/learned/{name}` answers."""
    ready = model.status is Status.ready and model.engine is not None
    threshold = model.engine.head.threshold if ready and model.engine is not None else None
    return LearnedModelDescription(
        name=model.name,
        status=model.status.value,
        problem=model.problem or None,
        classes=[LearnedClass(label=k, examples=n) for k, n in model.counts().items()],
        examples=_examples(model),
        embedder=model.header.embedder if model.header is not None else None,
        threshold=threshold.value if threshold is not None else None,
        threshold_rule=threshold.rule if threshold is not None else None,
        threshold_set=model.threshold is not None,
        sha256=model.engine.info.sha256 if ready and model.engine is not None else None,
        size_bytes=model.size,
    )
