"""Repeated identical log records once per interval, with a count: a flood cannot fill a disk.

When the open-file limit is reached the event loop logs a traceback for every failed
`accept()`, many per second; a client resetting connections makes uvicorn log one per request.
On a Pi that goes to journald on an SD card. The first record of a kind is logged as it is;
the same kind again within the interval is only counted, and the count is logged (one line, no
traceback) with the next record of that kind after the interval. Every record is counted in a
metric either way.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

# The loggers that can flood: the event loop (accept errors), uvicorn (per-connection errors)
# and the service's own.
LOGGERS = ("asyncio", "uvicorn.error", "edge_server")


_NUMBERS = re.compile(r"\d+")
# Exceptions the event loop logs about sockets (accept failures, resets).
_QUIET = {
    "OSError",
    "ConnectionResetError",
    "ConnectionAbortedError",
    "BrokenPipeError",
    "TimeoutError",
}


@dataclass
class _Seen:
    since: float
    suppressed: int = 0


class LogThrottle(logging.Filter):
    """A logging filter passing each kind of record once per `interval` seconds."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._seen: dict[tuple[str, str, str], _Seen] = {}
        self.records = Counter(
            "edge_log_records",
            "Warnings and errors logged or suppressed, by logger and kind (the exception "
            "type, or 'message').",
            ("logger", "kind"),
            registry=registry,
        )
        self.suppressed = Counter(
            "edge_log_suppressed",
            "Records not written because an identical one was logged within the interval.",
            ("logger", "kind"),
            registry=registry,
        )

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        kind = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else "message"
        self.records.labels(record.name, kind).inc()
        key = (record.name, kind, _first_line(record))
        now = self.clock()
        seen = self._seen.get(key)
        if record.name == "asyncio" and kind in _QUIET and record.exc_info:
            # Accept failures and resets: the type and text say it all; a stack trace of the
            # event loop's internals does not.
            record.msg = f"{record.getMessage().splitlines()[0]}: {record.exc_info[1]}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        if seen is None or now - seen.since >= self.interval:
            if seen is not None and seen.suppressed:
                record.msg = (
                    f"{record.getMessage()} [and {seen.suppressed} more like it in the last "
                    f"{now - seen.since:.0f} s, not logged]"
                )
                record.args = ()
            self._seen[key] = _Seen(now)
            if len(self._seen) > 1000:  # kinds are few; never let the table grow unbounded
                self._seen = {key: self._seen[key]}
            return True
        seen.suppressed += 1
        self.suppressed.labels(record.name, kind).inc()
        return False

    def install(self, names: Iterable[str] = LOGGERS) -> None:
        """Filter these loggers' own records (children have their own filters)."""
        for name in names:
            logging.getLogger(name).addFilter(self)


def _first_line(record: logging.LogRecord) -> str:
    """What makes two records the same kind: the first line of the message, digits masked."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string is still a record to throttle
        message = str(record.msg)
    line = message.split("\n", 1)[0][:200]
    # Addresses, ports and counts vary between otherwise identical records.
    return _NUMBERS.sub("#", line)
