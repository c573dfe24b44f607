"""The models being served, by name: loading, reloading and unloading without failing a request.

Each model is a Engine with its own owner thread, so a request for one model never waits in
another model's queue of invokes; all of them share one decode pool. A request leases its model
for its whole life: a reload or an unload retires the model, which is closed once its last
request is done. Changes are made one at a time (a lock), each loaded and warmed up beside the
serving models before it takes traffic.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TypeVar

from ..config.settings import Settings
from ..core.engine import Engine, decode_pool
from ..core.errors import Conflict, NotFound, NotReady, ReloadFailed, StartupError
from ..core.memory import MemoryBudget
from .catalog import load_catalog, lookup
from .metrics import Metrics
from .specs import ModelsConfig, ModelSpec, read_config, serving_name, spec_for

log = logging.getLogger("edge_server")
V = TypeVar("V")


@dataclass(frozen=True)
class IndexEntry:
    """A model the repository knows: loaded (READY) or loadable (UNAVAILABLE)."""

    name: str
    state: str
    reason: str = ""


class ModelRepository:
    """The loaded models by name, the default first, and the ones that could be loaded."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        memory: MemoryBudget | None = None,
        decoders: ThreadPoolExecutor | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.memory = memory  # what every model's decodes are charged against
        self.decoders = decoders or decode_pool(settings.decode_threads)
        self.config = (
            read_config(settings.models_config) if settings.models_config else ModelsConfig()
        )
        self._models: dict[str, Engine] = {}
        self._specs: dict[str, ModelSpec] = {}
        self._default: str | None = None
        self._users: Counter[Engine] = Counter()
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._learned: set[str] = set()  # served names that are learned models

    # --- what is served ---------------------------------------------------------------------

    @property
    def default(self) -> str:
        """The name of the model requests get when they name none."""
        if self._default is None:
            raise NotReady("no model is loaded yet", headers={"Retry-After": "1"})
        return self._default

    def names(self) -> list[str]:
        """The loaded models' names, the default first."""
        return list(self._models)

    def get(self, name: str | None = None) -> Engine:
        """The model of that name or alias (the default for None); 404 or 503 otherwise."""
        if not self._models:
            raise NotReady("the model is not loaded yet", headers={"Retry-After": "1"})
        return self._models[self.resolve(name)]

    def resolve(self, name: str | None) -> str:
        """The loaded name a request's model name stands for: itself, or a catalog alias."""
        if name is None:
            return self.default
        if name in self._models:
            return name
        entry = lookup(name)
        if entry is not None and entry.name in self._models:
            return entry.name
        raise NotFound(f"no model named {name!r} is loaded; loaded: {', '.join(self._models)}")

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` (on the event loop) after every load, unload and reload."""
        self._listeners.append(listener)

    @asynccontextmanager
    async def lease(self, name: str | None = None) -> AsyncIterator[Engine]:
        """A model kept open until the request is done, even if it is swapped or unloaded."""
        classifier = self.get(name)
        self._users[classifier] += 1
        try:
            yield classifier
        finally:
            self._users[classifier] -= 1
            if self._users[classifier] == 0:
                del self._users[classifier]
            await self._close_if_retired(classifier)

    # --- changes ------------------------------------------------------------------------------

    def install(self, spec: ModelSpec, classifier: Engine) -> None:
        """Serve a loaded model under its name (the first installed is the default)."""
        classifier.memory = self.memory
        self._models[spec.name] = classifier
        self._specs[spec.name] = spec
        if self._default is None:
            self._default = spec.name
        self.metrics.set_model(classifier)
        self._changed()

    def serve_learned(self, engine: Engine, *, announce: bool) -> None:
        """Serve a learned model's engine, or swap in its new one (a request in flight keeps
        the engine it leased). `announce`: tell the listeners (its classes changed)."""
        name = engine.info.name
        old = self._models.get(name)
        engine.memory = self.memory
        self._models[name] = engine
        self._learned.add(name)
        self.metrics.set_model(engine)
        if announce or old is None:
            self._changed()

    async def drop_learned(self, name: str) -> None:
        """Stop serving a learned model (deleted); its requests in flight finish."""
        engine = self._models.pop(name, None)
        self._learned.discard(name)
        self.metrics.forget_model(name)
        self._changed()
        if engine is not None:
            await self._close_if_retired(engine)

    def is_learned(self, name: str) -> bool:
        """Whether a served name is a learned model (changed through /v1/learned only)."""
        return name in self._learned

    def _refuse_learned(self, name: str, action: str) -> None:
        if name in self._learned:
            raise Conflict(
                f"{name!r} is a learned model: it is changed and deleted through "
                f"/v1/learned/{name}, not {action}"
            )

    async def load(self, name: str) -> Engine:
        """Load a model of the repository by name and serve it; loaded already: reload it."""
        self._refuse_learned(name, "loaded")
        if name in self._models or self._alias_of_loaded(name):
            return await self.reload(name)
        async with self._lock:
            if len(self._models) - len(self._learned) >= self.settings.max_models:
                raise Conflict(
                    f"{len(self._models)} models are loaded ({', '.join(self._models)}), the "
                    f"most allowed (EDGE_MAX_MODELS={self.settings.max_models}); unload one first"
                )
            spec = self._loadable(name)
            classifier = await self._load(spec, what=f"loading {spec.name}")
            self.install(spec, classifier)
            self.metrics.reloads.labels(spec.name, "ok").inc()
            log.info("loaded %s (%s) on request", spec.name, classifier.info.sha256[:12])
            return classifier

    async def unload(self, name: str) -> None:
        """Stop serving a model; its requests in flight finish first. Not the default."""
        self._refuse_learned(name, "unloaded")
        async with self._lock:
            loaded = self.resolve(name)
            if loaded == self._default:
                raise Conflict(
                    f"{loaded!r} is the default model and cannot be unloaded; serve another "
                    "model first (EDGE_MODEL lists the default first)"
                )
            classifier = self._models.pop(loaded)
            del self._specs[loaded]
            self.metrics.forget_model(loaded)
            self._changed()
            log.info("unloaded %s; it closes when its last request is done", loaded)
        await self._close_if_retired(classifier)

    async def reload(self, name: str | None = None, model: str | None = None) -> Engine:
        """Load a model's file again, or another file in its place, then swap; the old drains.

        A model that fails to load leaves the current one serving (ReloadFailed says why).
        Without a name of its own (from the models config), the model takes the new file's name.
        """
        if name is not None:
            self._refuse_learned(name, "reloaded")
        async with self._lock:
            current_name = self.resolve(name)
            spec = self._specs[current_name]
            if model is not None:
                target = _model_within(model, self.settings)
                named = current_name in self.config.models
                new_name = current_name if named else serving_name(target)
                if new_name != current_name and new_name in self._models:
                    raise ReloadFailed(f"a model named {new_name!r} is loaded already")
                spec = replace(spec, name=new_name, model=target)
            old = self._models[current_name]
            new = await self._load(spec, what=f"reload of {current_name}", serving=old)
            self._models = _replaced(self._models, current_name, spec.name, new)
            self._specs = _replaced(self._specs, current_name, spec.name, spec)
            if self._default == current_name:
                self._default = spec.name
            if spec.name != current_name:
                self.metrics.forget_model(current_name)
            self.metrics.set_model(new)
            self.metrics.reloads.labels(spec.name, "ok").inc()
            self._changed()
            log.info("reloaded: %s now serves %s", spec.name, new.info.sha256[:12])
        await self._close_if_retired(old)
        return new

    async def reload_all(self) -> None:
        """Reload every model's file (SIGHUP); one that fails keeps its old copy serving."""
        for name in self.names():
            if name in self._learned:
                continue  # nothing to read again: learned models change as they are taught
            try:
                await self.reload(name)
            except (ReloadFailed, NotFound):  # logged; unloaded meanwhile
                continue

    async def shutdown(self) -> None:
        """Stop serving; every model closes once its requests are done, then the decode pool."""
        models, self._models, self._default = list(self._models.values()), {}, None
        for classifier in models:
            await self._close_if_retired(classifier)
        # Requests still leasing a model close it when they finish; the pool goes after them.
        deadline = asyncio.get_running_loop().time() + self.settings.shutdown_timeout
        while self._users and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(self.decoders.shutdown, not self._users)

    # --- the repository (what could be loaded) ---------------------------------------------

    def index(self) -> list[IndexEntry]:
        """Loaded models, then the models config's, the pulled catalog models and other files."""
        entries = {name: IndexEntry(name, "READY") for name in self._models}
        candidates = [*self.config.models]
        candidates += [
            e.name for e in load_catalog().values() if (self.settings.models_dir / e.file).is_file()
        ]
        if self.settings.models_dir.is_dir():
            candidates += sorted(p.stem for p in self.settings.models_dir.glob("*.tflite"))
        for name in candidates:
            if name not in entries and not self._alias_of_loaded(name):
                entries[name] = IndexEntry(name, "UNAVAILABLE", "not loaded")
        return list(entries.values())

    def _loadable(self, name: str) -> ModelSpec:
        """The spec of a repository model: a config name, a catalog name or alias, or a file
        name (without .tflite) in EDGE_MODELS_DIR. Never an arbitrary path from a request."""
        if name in self.config.models or lookup(name) is not None:
            return self._spec(name)
        path = self.settings.models_dir / f"{name}.tflite"
        if "/" not in name and "\\" not in name and not name.startswith(".") and path.is_file():
            return self._spec(str(path))
        known = ", ".join(e.name for e in self.index()) or "none"
        raise NotFound(f"no model named {name!r} in the repository; it has: {known}")

    def _spec(self, name: str) -> ModelSpec:
        try:
            return spec_for(name, self.settings, self.config)
        except StartupError as exc:
            raise ReloadFailed(f"{exc.problem}. Fix: {exc.fix}") from exc

    # --- helpers ------------------------------------------------------------------------------

    async def _load(self, spec: ModelSpec, *, what: str, serving: Engine | None = None) -> Engine:
        try:
            classifier = await asyncio.to_thread(spec.load, self.decoders)
        except StartupError as exc:
            self.metrics.reloads.labels(spec.name, "failed").inc()
            still = (
                f"; still serving {serving.info.name} ({serving.info.sha256[:12]})"
                if serving is not None
                else ""
            )
            log.error("%s failed: %s%s", what, exc, still)
            raise ReloadFailed(f"{exc.problem}{still}. Fix: {exc.fix}") from exc
        classifier.memory = self.memory
        return classifier

    def _alias_of_loaded(self, name: str) -> bool:
        entry = lookup(name)
        return entry is not None and entry.name in self._models

    async def _close_if_retired(self, classifier: Engine) -> None:
        """Close a model no longer served, once its last request is done."""
        if classifier not in self._models.values() and self._users[classifier] == 0:
            await asyncio.to_thread(classifier.close)

    def _changed(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # a describer's bug must not undo a model change
                log.exception("a model-change listener failed")


def load_models(
    specs: list[ModelSpec], decoders: ThreadPoolExecutor
) -> list[tuple[ModelSpec, Engine]]:
    """Load and warm every model in order; one that fails closes those already loaded."""
    loaded: list[tuple[ModelSpec, Engine]] = []
    try:
        for spec in specs:
            loaded.append((spec, spec.load(decoders)))
    except BaseException:
        for _, classifier in loaded:
            classifier.close()
        raise
    return loaded


def _replaced(items: dict[str, V], old: str, new: str, value: V) -> dict[str, V]:
    """The mapping with `old`'s entry replaced by `new: value`, in the same place (order)."""
    return {(new if key == old else key): (value if key == old else v) for key, v in items.items()}


def _model_within(model: str, settings: Settings) -> str:
    """A reload target: a catalog name or alias, or a file name inside EDGE_MODELS_DIR.

    Reload is reachable over HTTP; it must not become a way to load arbitrary files.
    """
    if lookup(model) is not None:
        return model
    if "/" in model or "\\" in model or model.startswith(".") or not model.endswith(".tflite"):
        raise ReloadFailed(
            f"{model!r} is neither a catalog model nor a .tflite file name in EDGE_MODELS_DIR"
        )
    return str(settings.models_dir / model)
