"""Running the app under uvicorn: load first, so a bad model fails before the port opens."""

from __future__ import annotations

import logging
import socket
from contextlib import suppress
from importlib.util import find_spec
from types import FrameType

import uvicorn

from .app import create_app
from .config.settings import Settings
from .core import memory
from .core.engine import decode_pool
from .ops import connections, filelimit
from .ops.logthrottle import LogThrottle
from .serving.metrics import Metrics
from .serving.repository import load_models
from .serving.specs import model_specs

log = logging.getLogger("edge_server")

# Sockets the event loop accepts at each wake-up before the server counts them (part of the
# open-file reserve), and the listen queue uvicorn asks for.
BACKLOG = 64
# The kernel's queue of connections not yet accepted, set once listening: a burst of clients
# waits there instead of having its handshakes dropped and retried a second or more later.
LISTEN_QUEUE = 2048


class Server(uvicorn.Server):
    """uvicorn's server, exiting 0 after a graceful shutdown on SIGTERM or SIGINT.

    uvicorn re-raises the signal once shut down, so the process would die by it (status 143
    under Docker, a "killed" service to supervisors) although every request was answered.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for server in getattr(self, "servers", []):
            for listening in server.sockets:
                # A duplicate of the descriptor: the same socket, closed without closing it.
                with (
                    suppress(OSError),
                    socket.fromfd(
                        listening.fileno(), listening.family, listening.type
                    ) as duplicate,
                ):
                    duplicate.listen(LISTEN_QUEUE)


def serve(settings: Settings) -> int:
    """Load the models, then serve until a signal; the exit status of the process."""
    file_limit = filelimit.raise_open_files()
    memory.return_freed_memory()
    specs = model_specs(settings)  # every name and option checked before the first load
    decoders = decode_pool(settings.decode_threads)
    try:
        loaded = load_models(specs, decoders)
    except BaseException:
        decoders.shutdown()
        raise
    app = create_app(settings, models=loaded, decoders=decoders)
    config = uvicorn.Config(
        connections.CloseEarlyAnswers(app),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
        ws="none",  # no WebSocket routes: websockets need not be imported
        access_log=False,  # the app's own, sampled (EDGE_ACCESS_LOG; middleware.py)
        # httptools' C parser and uvloop (uvicorn[standard]): uvicorn's pure-Python h11 parser
        # and asyncio's loop cost a measurable share of a request. Wheels exist for aarch64;
        # uvicorn's defaults elsewhere.
        http="httptools" if find_spec("httptools") else "h11",
        loop="uvloop" if find_spec("uvloop") else "asyncio",
    )
    _defend(config, settings, app.state.metrics, file_limit)
    server = Server(config)
    server.run()  # the app closes the models and the decode pool when it shuts down
    return 0 if server.started else 1


def _defend(config: uvicorn.Config, settings: Settings, metrics: Metrics, file_limit: int) -> None:
    """Connection limits, lingering close, keep-alive and a throttled log on top of uvicorn's
    configuration."""
    config.backlog = BACKLOG
    config.timeout_keep_alive = settings.keep_alive_timeout
    config.load()  # picks the protocol class (httptools or h11), which is then guarded
    cap = filelimit.connection_cap(
        settings.max_connections, file_limit, filelimit.open_files(), BACKLOG
    )
    if cap < settings.max_connections:
        log.warning(
            "at most %d connections (EDGE_MAX_CONNECTIONS=%d does not fit the open-file limit "
            "of %d; raise LimitNOFILE or ulimit -n)",
            cap,
            settings.max_connections,
            file_limit,
        )
    limits = connections.ConnectionLimits(
        cap,
        settings.header_timeout,
        settings.body_timeout,
        settings.linger_bytes,
        settings.linger_timeout,
    )
    table = connections.ConnectionTable(limits, connections.ConnectionMetrics(metrics.registry))
    config.http_protocol_class = connections.guarded(config.http_protocol_class, table)
    LogThrottle(metrics.registry).install()
