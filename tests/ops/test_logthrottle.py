"""The log throttle: one record per kind per interval with a count, every record a metric."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from edge_server.ops.logthrottle import LogThrottle


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(name: str, message: str, error: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(error), error, error.__traceback__) if error is not None else None
    return logging.LogRecord(name, logging.ERROR, __file__, 1, message, (), exc_info)


def test_identical_errors_are_written_once_per_interval_with_a_count() -> None:
    """100 identical errors write 1 record; the next after the interval says 99 more."""
    clock, registry = _Clock(), CollectorRegistry()
    throttle = LogThrottle(registry, interval=60, clock=clock)
    written = [
        throttle.filter(_record("uvicorn.error", f"reset by 10.0.0.{i}")) for i in range(100)
    ]
    assert written.count(True) == 1
    clock.now = 61
    later = _record("uvicorn.error", "reset by 10.0.0.7")
    assert throttle.filter(later)
    assert "and 99 more like it in the last 61 s" in later.getMessage()
    labels = {"logger": "uvicorn.error", "kind": "message"}
    assert registry.get_sample_value("edge_log_records_total", labels) == 101
    assert registry.get_sample_value("edge_log_suppressed_total", labels) == 99


def test_different_errors_and_info_records_pass() -> None:
    """Other kinds of record, and anything below WARNING, are never held back."""
    throttle = LogThrottle(CollectorRegistry(), clock=_Clock())
    assert throttle.filter(_record("asyncio", "one thing"))
    assert throttle.filter(_record("asyncio", "another thing"))
    info = _record("asyncio", "one thing")
    info.levelno = logging.INFO
    assert throttle.filter(info)


def test_accept_failures_are_logged_without_a_traceback() -> None:
    """The event loop's "Too many open files" keeps its text but loses its stack trace."""
    throttle = LogThrottle(CollectorRegistry(), clock=_Clock())
    try:
        raise OSError(24, "Too many open files")
    except OSError as exc:
        record = _record("asyncio", "socket.accept() out of system resource\nsocket: <x>", exc)
    assert throttle.filter(record)
    assert record.exc_info is None
    assert record.getMessage() == (
        "socket.accept() out of system resource: [Errno 24] Too many open files"
    )


@pytest.mark.parametrize("name", ["asyncio", "uvicorn.error", "edge_server"])
def test_install_filters_the_loggers_that_can_flood(name: str) -> None:
    """The throttle sits on the event loop's, uvicorn's and the service's loggers."""
    throttle = LogThrottle(CollectorRegistry())
    throttle.install()
    try:
        assert throttle in logging.getLogger(name).filters
    finally:
        for logger in ("asyncio", "uvicorn.error", "edge_server"):
            logging.getLogger(logger).removeFilter(throttle)
