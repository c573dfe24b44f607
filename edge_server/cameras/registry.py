"""The cameras the service watches: one Feed and one Watcher per configured camera, by name.

`Cameras` owns their lives: built from the settings and the models config's `[cameras.NAME]`
tables, started in the app's lifespan, reloaded on SIGHUP (only the cameras whose
configuration changed are stopped, started or restarted; the others keep their feed, their
tracked objects and their counts), stopped last-in first-out. A camera that fails (a wrong
password, a URL that is no camera) never stops the server: its feed's state says why, and
`status()` reports it beside the others. A camera whose detector is not served is a
configuration mistake and stops the start instead (`check_detectors`), as other settings do.

The surfaces (MQTT, webhooks, the page) hear the watchers through `add_listener`; a listener
added once hears every camera, including those a reload starts later.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config.cameras import CameraConfig
from ..core.detection import Task
from ..core.engine import Engine
from ..core.errors import ServiceError, StartupError
from ..serving import specs
from ..serving.service import Service
from ..serving.specs import ModelSpec
from .event_store import EventStore, StoredEvent
from .events import CameraEvent
from .feed import Feed, FeedOptions, FeedStatus, feed_for, feed_metrics
from .watcher import Watcher, WatcherListener, WatcherStatus

log = logging.getLogger("edge_server.cameras")

# Topic levels an edge-server already uses under its MQTT prefix: a camera with one of these
# names would publish its counts where images to classify are read.
RESERVED_NAMES = frozenset({"classify", "result", "error", "event", "image", "status", "events"})

ConfigReader = Callable[[], Mapping[str, CameraConfig]]


@dataclass(frozen=True)
class CameraStatus:
    """One camera as `GET /v1/cameras` shows it: its feed and its analysis."""

    name: str
    enabled: bool
    feed: FeedStatus | None
    watcher: WatcherStatus | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON of one camera: state, rates, the last frame and error, the redacted URL.

        Every frame read is decoded (an H.264 decoder cannot skip frames; an MJPEG part is
        decoded to grey for motion), so `decoded` is `read`; frames dropped per second are the
        ones read and never analysed, read's rate less analysed's.
        """
        feed, watcher = self.feed, self.watcher
        fps_read = feed.fps_read if feed else 0.0
        fps_analysed = watcher.fps_analysed if watcher else 0.0
        return {
            "name": self.name,
            "enabled": self.enabled,
            "url": feed.url if feed else None,
            "state": str(feed.state) if feed else "disabled",
            "codec": feed.codec if feed else None,
            "width": feed.width if feed else None,
            "height": feed.height if feed else None,
            "last_frame_time": feed.last_frame_time if feed else None,
            "last_error": (watcher.last_error if watcher and watcher.last_error else None)
            or (feed.last_error if feed else None),
            "reconnects": feed.reconnects if feed else 0,
            "frames": {
                "read": feed.frames_read if feed else 0,
                "decoded": feed.frames_read if feed else 0,
                "analysed": watcher.frames_analysed if watcher else 0,
                "dropped": feed.frames_dropped if feed else 0,
            },
            "fps": {
                "read": round(fps_read, 2),
                "decoded": round(fps_read, 2),
                "analysed": round(fps_analysed, 2),
                "dropped": round(max(0.0, fps_read - fps_analysed), 2),
            },
            "motion": bool(watcher.motion) if watcher else False,
            "objects": watcher.objects if watcher else 0,
            "counts": dict(watcher.counts) if watcher else {},
            "faces": watcher.faces if watcher else False,
        }


class _Camera:
    """One running camera: its configuration, feed and watcher."""

    def __init__(self, name: str, config: CameraConfig, feed: Feed, watcher: Watcher) -> None:
        self.name = name
        self.config = config
        self.feed = feed
        self.watcher = watcher


class _Fanout:
    """The one listener every watcher gets: it passes each call to the surfaces' listeners,
    so that a listener that raises costs the others nothing."""

    def __init__(self) -> None:
        self.listeners: list[WatcherListener] = []

    def on_event(self, event: CameraEvent) -> None:
        for listener in self.listeners:
            _call(listener.on_event, event)

    def on_motion(self, camera: str, moving: bool) -> None:
        for listener in self.listeners:
            _call(listener.on_motion, camera, moving)

    def on_counts(self, camera: str, counts: Mapping[str, int]) -> None:
        for listener in self.listeners:
            _call(listener.on_counts, camera, counts)


def _call(method: Callable[..., None], *args: Any) -> None:
    try:
        method(*args)
    except Exception:  # a surface's bug must not stop the camera's analysis
        log.exception("a camera listener failed")


class Cameras:
    """The configured cameras: started, stopped, reloaded and reported by name."""

    def __init__(
        self,
        service: Service,
        configs: Mapping[str, CameraConfig],
        *,
        read_configs: ConfigReader | None = None,
        events: EventStore | None = None,
    ) -> None:
        self.service = service
        self.configs = dict(configs)
        self._read_configs = read_configs
        self.events = events if events is not None else EventStore()
        self._fanout = _Fanout()
        self._feed_metrics = feed_metrics(service.metrics.registry)
        self._running: dict[str, _Camera] = {}
        self._state_listeners: list[Callable[[str], None]] = []
        self._reload_listeners: list[
            Callable[[Mapping[str, CameraConfig], Mapping[str, CameraConfig]], None]
        ] = []
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, service: Service) -> Cameras:
        """The cameras of these settings (none when nothing is configured), checked."""
        settings = service.settings

        def read() -> Mapping[str, CameraConfig]:
            configs = specs.cameras(settings, specs.models_config(settings))
            check_names(configs)
            check_readers(configs)
            return configs

        return cls(service, read(), read_configs=read)

    def __bool__(self) -> bool:
        return bool(self.configs)

    def names(self) -> list[str]:
        return list(self.configs)

    def add_listener(self, listener: WatcherListener) -> None:
        """Hear every camera's events, motion and counts (on the event loop)."""
        self._fanout.listeners.append(listener)

    def add_state_listener(self, on_state: Callable[[str], None]) -> None:
        """Call `on_state(camera)` on the event loop when a camera's feed changes state
        (connected, lost, refused), so a surface can say so without waiting to poll."""
        self._state_listeners.append(on_state)

    def add_reload_listener(
        self, on_reload: Callable[[Mapping[str, CameraConfig], Mapping[str, CameraConfig]], None]
    ) -> None:
        """Call `on_reload(before, after)` (the configurations) when a reload changed any."""
        self._reload_listeners.append(on_reload)

    def _from_feed(self, name: str) -> Callable[[FeedStatus], None]:
        """A feed's state listener: from the feed's thread to the loop, where ours live."""
        loop = asyncio.get_running_loop()

        def changed(_: FeedStatus) -> None:
            loop.call_soon_threadsafe(self._feed_changed, name)

        return changed

    def _feed_changed(self, name: str) -> None:
        for on_state in self._state_listeners:
            _call(on_state, name)

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every enabled camera; a camera that fails to start is logged, not raised."""
        self.check_detectors()
        async with self._lock:
            for name, config in self.configs.items():
                await self._start_one(name, config)

    async def stop(self) -> None:
        """Stop every camera, the last started first."""
        async with self._lock:
            for name in reversed(list(self._running)):
                await self._stop_one(name)

    async def reload(self) -> None:
        """Read the camera configuration again; restart only the cameras that changed.

        A configuration that no longer reads (a typo in the models config) is logged and
        changes nothing: the cameras as they run are better than none.
        """
        if self._read_configs is None:
            return
        try:
            configs = dict(await asyncio.to_thread(self._read_configs))
            self.check_detectors(configs)
        except StartupError as exc:
            log.error("cameras not reloaded: %s", exc)
            return
        async with self._lock:
            before = self.configs
            changed = [n for n in self.configs if configs.get(n) != self.configs[n]]
            for name in changed:
                await self._stop_one(name)
                if name not in configs:
                    self._feed_metrics.forget(name)  # gone: its series go too
            started = [n for n in configs if n not in self.configs or n in changed]
            self.configs = configs
            for name in started:
                await self._start_one(name, configs[name])
        log.info(
            "cameras reloaded: %d unchanged, %d stopped, %d started",
            len(configs) - len(started),
            len(changed),
            len(started),
        )
        if changed or started:
            for on_reload in self._reload_listeners:
                _call(on_reload, before, configs)

    async def _start_one(self, name: str, config: CameraConfig) -> None:
        if not config.enabled:
            log.info("camera %s is disabled", name)
            return
        try:
            feed = feed_for(name, config.url, feed_options(config), metrics=self._feed_metrics)
            watcher = Watcher(
                name, config, feed, self.service, asyncio.get_running_loop(), self.events
            )
            watcher.add_listener(self._fanout)
            feed.add_listener(self._from_feed(name))
            feed.start()
            await watcher.start()
        except (OSError, ValueError, ServiceError) as exc:
            log.error("camera %s could not start: %s", name, exc)
            return
        self._running[name] = _Camera(name, config, feed, watcher)
        log.info("camera %s: watching %s", name, feed.status().url)

    async def _stop_one(self, name: str) -> None:
        camera = self._running.pop(name, None)
        if camera is None:
            return
        try:
            await camera.watcher.stop()
        finally:
            await asyncio.to_thread(camera.feed.stop)
        log.info("camera %s stopped", name)

    # --- checks -------------------------------------------------------------------------------

    def check_detectors(self, configs: Mapping[str, CameraConfig] | None = None) -> None:
        """Every enabled camera's detector (and classifier) is served, or a StartupError says
        which camera names what and how to fix it."""
        for name, config in (configs if configs is not None else self.configs).items():
            if not config.enabled:
                continue
            try:
                self.service.model_for(Task.detection, config.detector)
            except ServiceError as exc:
                served = ", ".join(self.service.model_names())
                wanted = config.detector or "the default detection model"
                raise StartupError(
                    f"camera {name!r} needs {wanted}, which is not served ({exc.detail}; "
                    f"served: {served})",
                    fix="add a detection model to EDGE_MODEL (e.g. EDGE_MODEL=mobilenet_v2,"
                    "objects) or name a served one in [cameras."
                    f"{name}] detector",
                ) from None
            if config.classify is not None:
                try:
                    self.service.ready_model(config.classify)
                except ServiceError as exc:
                    raise StartupError(
                        f"camera {name!r} classifies with {config.classify!r}: {exc.detail}",
                        fix=f"add it to EDGE_MODEL or correct [cameras.{name}] classify",
                    ) from None

    # --- what the surfaces read ---------------------------------------------------------------

    def status(self) -> list[CameraStatus]:
        """Every configured camera, running or not, in the configured order."""
        statuses = []
        for name, config in self.configs.items():
            camera = self._running.get(name)
            statuses.append(
                CameraStatus(
                    name=name,
                    enabled=config.enabled,
                    feed=camera.feed.status() if camera else None,
                    watcher=camera.watcher.status() if camera else None,
                )
            )
        return statuses

    def watcher(self, name: str) -> Watcher | None:
        camera = self._running.get(name)
        return camera.watcher if camera else None

    def config(self, name: str) -> CameraConfig | None:
        return self.configs.get(name)

    # --- what the surfaces change -------------------------------------------------------------

    def relabel(
        self, event_id: str, sub_label: str | None, score: float | None
    ) -> StoredEvent | None:
        """Name an event's object (Frigate's sub label route; None or "" clears it) and tell
        an `update`: a live object through its watcher, so its later events keep the name;
        an ended event (or one whose camera is gone) in the store. None for an unknown id."""
        stored = self.events.get(event_id)
        if stored is None:
            return None
        watcher = self.watcher(stored.camera)
        if watcher is None or watcher.relabel(event_id, sub_label, score) is None:
            after = {**stored.after, "sub_label": [sub_label, score] if sub_label else None}
            event = CameraEvent("update", stored.after, after, stored.camera, stored.label, None)
            self.events.add(event)
            self._fanout.on_event(event)
        return self.events.get(event_id)


def feed_options(config: CameraConfig) -> FeedOptions:
    """How a camera's feed reads: its snapshot interval; timeouts and back-off as defaulted."""
    return FeedOptions(snapshot_interval=config.snapshot_interval)


def check_names(configs: Mapping[str, CameraConfig]) -> None:
    """A camera name that is one of the topic levels already used under the MQTT prefix stops
    the start: its counts would be read back as images to classify."""
    for name in configs:
        if name in RESERVED_NAMES:
            raise StartupError(
                f"camera name {name!r} is reserved (MQTT uses {sorted(RESERVED_NAMES)})",
                fix=f"call the camera something else, e.g. {name}_cam",
            )


# What reads each kind of camera URL: PyAV for RTSP, httpx for MJPEG and snapshot URLs.
READERS = {"rtsp": "av", "rtsps": "av", "http": "httpx", "https": "httpx"}


def check_readers(
    configs: Mapping[str, CameraConfig], found: Callable[[str], bool] | None = None
) -> None:
    """A camera whose URL needs a package that is not installed stops the start (else it would
    only ever be a camera in the failed state): the `cameras` extra, and how to add it."""
    installed = found or (lambda package: importlib.util.find_spec(package) is not None)
    for name, camera in configs.items():
        scheme = camera.url.split("://", 1)[0].lower()
        package = READERS.get(scheme)
        if camera.enabled and package is not None and not installed(package):
            raise StartupError(
                f"camera {name!r} is a {scheme}:// camera, and reading it needs {package}, "
                "which is not installed",
                fix="pip install 'edge-server[cameras]' in the service's environment (make "
                "serve's venv has it; the arm64 image and the systemd unit install the mqtt "
                "extra only), or remove the camera",
            )


def check_served(
    configs: Mapping[str, CameraConfig], models: Sequence[tuple[ModelSpec, Engine]]
) -> None:
    """Before the port opens: each enabled camera's detector is a served detection model (or,
    unnamed, one is served), and its classifier is served."""
    tasks = {spec.name: engine.info.task for spec, engine in models}
    served = ", ".join(tasks) or "none"
    for name, camera in configs.items():
        if not camera.enabled:
            continue
        fix = (
            f"serve a detector (EDGE_MODEL=...,objects) or name a served one in [cameras.{name}] "
            "detector"
        )
        if camera.detector is None and Task.detection not in tasks.values():
            raise StartupError(
                f"camera {name!r} needs a detection model and none is served (served: {served})",
                fix=fix,
            )
        if camera.detector is not None and tasks.get(camera.detector) is not Task.detection:
            raise StartupError(
                f"camera {name!r} names detector {camera.detector!r}, which is not a served "
                f"detection model (served: {served})",
                fix=fix,
            )
        if camera.classify is not None and camera.classify not in tasks:
            raise StartupError(
                f"camera {name!r} classifies with {camera.classify!r}, which is not served "
                f"(served: {served})",
                fix=f"add {camera.classify} to EDGE_MODEL or correct [cameras.{name}] classify",
            )
