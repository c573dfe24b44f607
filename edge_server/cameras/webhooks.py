"""Webhooks: each camera event POSTed as JSON to every configured URL, for LANs without a broker.

The body is the message MQTT publishes on the events topic (`event_message`), Frigate's
`{"type", "before", "after"}`, so one receiver handles either. Posting never blocks a watcher:
`on_event` only puts the body on each URL's bounded queue (a full queue drops the event and
counts it), and one task per URL posts in order, retrying a failed post with doubling back-off.
A URL that is down is logged once per interval with the number of failures since, not once per
event; every outcome is counted in `edge_camera_webhooks_total{result}`. URLs are logged
redacted: a token in the query or a password stays out of the journal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress

import httpx
from prometheus_client import CollectorRegistry, Counter

from .. import __version__
from ..config.cameras import redact
from .event_messages import event_message
from .events import CameraEvent

log = logging.getLogger("edge_server.cameras")

QUEUE = 64  # events waiting per URL at most: a minute of a busy camera's new/update/end
ATTEMPTS = 4  # posts of one event before it is given up
BACKOFF = 1.0  # seconds before the first retry; doubles per retry (1, 2, 4)
TIMEOUT = 5.0  # seconds for one post: a LAN receiver answers in milliseconds
LOG_INTERVAL = 60.0  # seconds between log lines about one failing URL
RESULTS = ("ok", "failed", "dropped")


class Webhooks:
    """POSTs camera events to URLs; a listener of `Cameras`."""

    def __init__(
        self,
        urls: Sequence[str],
        registry: CollectorRegistry,
        *,
        queue: int = QUEUE,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
        timeout: float = TIMEOUT,
        log_interval: float = LOG_INTERVAL,
    ) -> None:
        self.urls = list(dict.fromkeys(urls))
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.log_interval = log_interval
        self.posts = Counter(
            "edge_camera_webhooks",
            "Camera events POSTed to webhooks, by result: ok, failed (after every retry), "
            "dropped (the URL's queue was full).",
            ("result",),
            registry=registry,
        )
        for result in RESULTS:
            self.posts.labels(result)
        self._queues: dict[str, asyncio.Queue[bytes]] = {
            url: asyncio.Queue(maxsize=queue) for url in self.urls
        }
        self._failing: dict[str, tuple[float, int]] = {}  # url: (last logged, failures since)
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self.timeout,
            headers={"User-Agent": f"edge-server/{__version__}"},
            follow_redirects=False,
        )
        self._tasks = [
            asyncio.create_task(self._post_all(url), name=f"webhook {i}")
            for i, url in enumerate(self.urls)
        ]

    async def stop(self) -> None:
        """Stop posting; events still queued are dropped (and counted)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for queue in self._queues.values():
            while not queue.empty():
                queue.get_nowait()
                self.posts.labels("dropped").inc()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # --- WatcherListener ------------------------------------------------------------------

    def on_event(self, event: CameraEvent) -> None:
        body = event_message(event)
        for url, queue in self._queues.items():
            try:
                queue.put_nowait(body)
            except asyncio.QueueFull:
                self.posts.labels("dropped").inc()
                self._failed(url, "its queue is full (the receiver is slower than the events)")

    def on_motion(self, camera: str, moving: bool) -> None:
        """Motion alone is no event: not posted."""

    def on_counts(self, camera: str, counts: Mapping[str, int]) -> None:
        """Counts are not posted: each event carries its object."""

    # --- posting --------------------------------------------------------------------------

    async def _post_all(self, url: str) -> None:
        queue = self._queues[url]
        while True:
            body = await queue.get()
            await self._post(url, body)

    async def _post(self, url: str, body: bytes) -> None:
        assert self._client is not None
        delay = self.backoff
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            try:
                response = await self._client.post(
                    url, content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if response.is_success:
                self.posts.labels("ok").inc()
                self._recovered(url)
                return
            problem = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                break  # the receiver refuses this body: the same post again would be refused
        self.posts.labels("failed").inc()
        self._failed(url, f"{problem} after {attempt + 1} attempt(s)")

    def _failed(self, url: str, problem: str) -> None:
        now = time.monotonic()
        last, since = self._failing.get(url, (float("-inf"), 0))
        if now - last >= self.log_interval:
            more = f" ({since} more failures since the last line)" if since else ""
            log.warning("webhook %s: %s%s", redact(url), problem, more)
            self._failing[url] = (now, 0)
        else:
            self._failing[url] = (last, since + 1)

    def _recovered(self, url: str) -> None:
        if self._failing.pop(url, None) is not None:
            log.info("webhook %s: posting again", redact(url))
