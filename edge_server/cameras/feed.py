"""A camera's feed: one thread reading its frames, keeping only the latest.

The thread connects (RTSP, MJPEG or snapshot polling: `feed_for` picks by the URL), reads
frames into a one-frame slot, and on any failure waits and connects again: exponential
back-off from `backoff[0]` to `backoff[1]` seconds for a camera that went away, the longest
wait straight away for one that refuses the password or serves no video (retrying those
sooner only fills the log). Nothing queues: a frame nobody took before the next one came is
counted as dropped, so a slow model costs frames, never memory or latency.

Each change of state is one log line, with the camera's redacted URL and the reason; the
service's log throttle (ops/logthrottle.py, on the `edge_server` logger) folds a camera that
fails the same way again and again into one line an interval.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from prometheus_client import CollectorRegistry

from ..config.cameras import redact
from .feed_metrics import FeedMetrics
from .frames import Frame, frame_of
from .http_camera import HttpReader
from .rtsp import RtspReader
from .streams import FeedError, NotAStream, Picture, Reader, Session, Unauthorized, Unreachable

log = logging.getLogger("edge_server")

# fps_read is the rate over this many seconds.
_RATE_WINDOW = 5.0


class FeedState(StrEnum):
    """Where a feed is; `unauthorized` and `failed` keep retrying, at the longest back-off."""

    starting = "starting"  # made, not started
    connecting = "connecting"
    streaming = "streaming"
    reconnecting = "reconnecting"  # lost the camera; waiting to try again
    unauthorized = "unauthorized"  # the camera refused the credentials
    failed = "failed"  # the URL serves no video this service reads
    stopped = "stopped"


@dataclass(frozen=True)
class FeedOptions:
    """How a feed reads its camera. Credentials default to the URL's userinfo."""

    open_timeout: float = 10.0
    read_timeout: float = 10.0
    watchdog: float = 10.0  # seconds without a frame before reconnecting
    backoff: tuple[float, float] = (1.0, 30.0)  # first and longest wait between attempts
    snapshot_interval: float = 1.0
    username: str | None = None
    password: str | None = None
    transport: str = "tcp"


@dataclass(frozen=True)
class FeedStatus:
    """A feed at one moment, safe to show: the URL is redacted."""

    name: str
    url: str
    state: FeedState
    last_error: str | None
    last_frame_time: float | None
    frames_read: int
    frames_dropped: int  # read, then replaced before anyone took them
    fps_read: float  # over the last few seconds
    reconnects: int
    width: int | None
    height: int | None
    codec: str | None


class Feed:
    """One camera's reader thread and its latest frame."""

    def __init__(
        self,
        name: str,
        url: str,
        options: FeedOptions | None = None,
        *,
        reader: Reader | None = None,
        metrics: FeedMetrics | None = None,
    ) -> None:
        self.name = name
        self.metrics = metrics
        self.url = redact(url)
        self.options = options or FeedOptions()
        self._stopping = threading.Event()
        self._reader = reader or _reader_for(url, self.options, self._stopping)
        self._changed = threading.Condition()
        self._frame: Frame | None = None
        self._taken = True
        self._state = FeedState.starting
        self._error: str | None = None
        self._read = 0
        self._dropped = 0
        self._reconnects = 0
        self._codec: str | None = None
        self._times: collections.deque[float] = collections.deque()
        self._listeners: list[Callable[[FeedStatus], None]] = []
        self._thread: threading.Thread | None = None
        self._logged: tuple[FeedState, str | None] | None = None

    def start(self) -> None:
        """Start reading (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and wait up to `timeout` for the thread; idempotent. A read blocked on
        a silent camera ends within the read timeout; stop() does not wait longer than asked."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning(
                    "camera %s: the reader is still in a read after %.0f s; it ends within "
                    "the read timeout (%.0f s)",
                    self.name,
                    timeout,
                    self.options.read_timeout,
                )
        self._set_state(FeedState.stopped, self._error)

    def latest(self, after: int = 0, timeout: float = 1.0) -> Frame | None:
        """The newest frame numbered above `after`, waiting up to `timeout`; None if none came."""
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    (self._frame is not None and self._frame.number > after)
                    or self._stopping.is_set()
                ),
                timeout,
            )
            frame = self._frame
            if frame is None or frame.number <= after:
                return None
            self._taken = True
            return frame

    def status(self) -> FeedStatus:
        with self._changed:
            return self._status()

    def add_listener(self, on_state: Callable[[FeedStatus], None]) -> None:
        """Call `on_state` (from the feed's thread) with the status at each change of state."""
        self._listeners.append(on_state)

    # --- the reader thread -------------------------------------------------------------

    def _run(self) -> None:
        initial = self.options.backoff[0]
        delay = initial
        attempts = 0
        while not self._stopping.is_set():
            if attempts:
                self._reconnects += 1
                if self.metrics is not None:
                    self.metrics.reconnects.labels(self.name).inc()
            attempts += 1
            self._set_state(FeedState.connecting, self._error)
            try:
                session = self._reader.connect()
            except FeedError as exc:
                delay = self._failed(exc, delay)
                continue
            except Exception as exc:  # a reader's bug must not end the thread
                log.exception("camera %s: unexpected error connecting", self.name)
                delay = self._failed(FeedError(f"unexpected error: {type(exc).__name__}"), delay)
                continue
            try:
                if self._stream(session):
                    delay = initial  # it worked: a new failure starts the back-off again
                if not self._stopping.is_set():
                    raise Unreachable("the stream ended")
            except FeedError as exc:
                delay = self._failed(exc, delay)
            except Exception as exc:
                log.exception("camera %s: unexpected error reading", self.name)
                delay = self._failed(FeedError(f"unexpected error: {type(exc).__name__}"), delay)
            finally:
                try:
                    session.close()
                except Exception:
                    log.exception("camera %s: closing the connection failed", self.name)

    def _stream(self, session: Session) -> bool:
        """Read frames until the stream ends or fails; True when at least one came."""
        self._codec = session.codec
        streaming = False
        for picture in session.pictures():
            if self._stopping.is_set():
                break
            self._publish(picture)
            if not streaming:
                streaming = True
                self._set_state(FeedState.streaming, None)
        return streaming

    def _publish(self, picture: Picture) -> None:
        frame = frame_of(self._read + 1, picture)
        now = time.monotonic()
        with self._changed:
            self._read += 1
            if not self._taken:
                self._dropped += 1
            self._frame = frame
            self._taken = False
            self._times.append(now)
            while self._times and self._times[0] < now - _RATE_WINDOW:
                self._times.popleft()
            self._changed.notify_all()
        if self.metrics is not None:
            self.metrics.read.labels(self.name).inc()

    def _failed(self, exc: FeedError, delay: float) -> float:
        """Record the failure, wait before the next attempt; the next attempt's wait."""
        initial, longest = self.options.backoff
        if isinstance(exc, Unauthorized):
            state, wait, kind = FeedState.unauthorized, longest, "unauthorized"
        elif isinstance(exc, NotAStream):
            state, wait, kind = FeedState.failed, longest, "not_a_stream"
        else:
            state, wait, kind = FeedState.reconnecting, delay, "unreachable"
        self._error = str(exc)
        if self._stopping.is_set():
            return delay
        if self.metrics is not None:
            self.metrics.failures.labels(self.name, kind).inc()
        self._set_state(state, self._error)
        self._stopping.wait(wait)
        return min(max(delay * 2, initial), longest)

    def _set_state(self, state: FeedState, error: str | None) -> None:
        with self._changed:
            if self._state == FeedState.stopped:
                return  # the thread's last steps after stop() change nothing
            if state == self._state and error == self._error and state != FeedState.connecting:
                return
            self._state = state
            self._error = error
            status = self._status()
        if self.metrics is not None:
            self.metrics.set_state(self.name, state)
        self._log(status)
        if state == FeedState.connecting:
            return  # a step of every attempt, not news
        for listener in list(self._listeners):
            try:
                listener(status)
            except Exception:
                log.exception("camera %s: a state listener failed", self.name)

    def _log(self, status: FeedStatus) -> None:
        key = (status.state, status.last_error)
        if status.state == FeedState.connecting or key == self._logged:
            return
        self._logged = key
        if status.state == FeedState.streaming:
            log.info(
                "camera %s: streaming %s %sx%s from %s",
                self.name, status.codec, status.width, status.height, self.url,
            )  # fmt: skip
        elif status.state == FeedState.stopped:
            log.info("camera %s: stopped", self.name)
        else:
            log.warning(
                "camera %s: %s: %s (%s)", self.name, status.state, status.last_error, self.url
            )

    def _status(self) -> FeedStatus:
        frame = self._frame
        times = self._times
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        return FeedStatus(
            name=self.name,
            url=self.url,
            state=self._state,
            last_error=self._error,
            last_frame_time=frame.time if frame else None,
            frames_read=self._read,
            frames_dropped=self._dropped,
            fps_read=(len(times) - 1) / span if span > 0 else 0.0,
            reconnects=self._reconnects,
            width=frame.width if frame else None,
            height=frame.height if frame else None,
            codec=self._codec,
        )


def _reader_for(url: str, options: FeedOptions, stopping: threading.Event) -> Reader:
    scheme = url.split("://", 1)[0].lower()
    read_timeout = min(options.read_timeout, options.watchdog)
    if scheme in ("rtsp", "rtsps"):
        return RtspReader(
            url,
            open_timeout=options.open_timeout,
            read_timeout=read_timeout,
            transport=options.transport,
        )
    if scheme in ("http", "https"):
        return HttpReader(
            url,
            open_timeout=options.open_timeout,
            read_timeout=read_timeout,
            snapshot_interval=options.snapshot_interval,
            username=options.username,
            password=options.password,
            stopping=stopping,
        )
    raise ValueError(f"{redact(url)}: a camera URL starts with rtsp:// or http(s)://")


def feed_metrics(registry: CollectorRegistry) -> FeedMetrics:
    """The feeds' metrics in `registry` (one set for every feed of an app)."""
    return FeedMetrics(registry, tuple(FeedState))


def feed_for(
    name: str, url: str, options: FeedOptions | None = None, *, metrics: FeedMetrics | None = None
) -> Feed:
    """The feed for a camera URL: RTSP for rtsp://; for http(s)://, MJPEG or snapshot
    polling, chosen on each connection by the content type the camera answers."""
    return Feed(name, url, options, metrics=metrics)
