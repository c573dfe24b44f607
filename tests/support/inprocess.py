"""The real ASGI app in the test process, lifespan and all, behind a plain `httpx.Client`.

A server process adds a start-up and a socket to every test of a route's behaviour and proves
nothing more there; tests of what only a process shows (signals, sockets, connection and file
limits, memory, real clients that take a URL) keep `ServerProcess`. The app runs on its own
event loop thread, as under uvicorn: the lifespan loads the models once, every request gets a
copy of the lifespan's state, and the test talks to it through httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CLIENT = ("127.0.0.1", 50000)  # the address requests come from (admission counts by it)


class _LoopTransport(httpx.BaseTransport):
    """httpx's ASGI transport, driven from sync code on the app's event loop thread."""

    def __init__(self, app: ASGIApp, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = httpx.ASGITransport(app=app, client=CLIENT)
        self._loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            response = await self._transport.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return asyncio.run_coroutine_threadsafe(send(), self._loop).result(timeout=120)


class _Lifespan:
    """The ASGI lifespan protocol, as a server speaks it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Future[None] | None = None

    async def start(self) -> None:
        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self._task = asyncio.ensure_future(self.app(scope, self._inbox.get, self._outbox.put))
        await self._inbox.put({"type": "lifespan.startup"})
        message = await self._outbox.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"the app did not start: {message}")

    async def stop(self) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._outbox.get()
        if self._task is not None:
            await self._task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app({**scope, "state": dict(self.state)}, receive, send)


@contextmanager
def in_process(app: ASGIApp) -> Iterator[httpx.Client]:
    """A client of `app` started in this process (models loaded); shut down on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="asgi-app", daemon=True)
    thread.start()
    lifespan = _Lifespan(app)
    try:
        asyncio.run_coroutine_threadsafe(lifespan.start(), loop).result(timeout=300)
        transport = _LoopTransport(lifespan, loop)
        with httpx.Client(transport=transport, base_url="http://127.0.0.1", timeout=60) as client:
            yield client
        asyncio.run_coroutine_threadsafe(lifespan.stop(), loop).result(timeout=60)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
