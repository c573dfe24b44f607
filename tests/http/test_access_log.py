"""The access log: off by default, sampled when asked, errors always logged."""

from __future__ import annotations

import asyncio
import logging

import pytest
from starlette.types import Message, Receive, Scope, Send

from edge_server.config.settings import Settings
from edge_server.http.middleware import RequestContext
from edge_server.serving.metrics import Metrics


async def _answer_with(scope: Scope, receive: Receive, send: Send) -> None:
    status = int(scope["path"].strip("/"))
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _logged_statuses(
    rate: float, statuses: list[int], caplog: pytest.LogCaptureFixture
) -> list[str]:
    context = RequestContext(_answer_with, Metrics(), access_log_rate=rate)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    async def run() -> None:
        for status in statuses:
            scope = {
                "type": "http",
                "method": "POST",
                "path": f"/{status}",
                "query_string": b"top_k=1",
                "headers": [],
                "client": ("127.0.0.1", 5000),
                "http_version": "1.1",
            }
            await context(scope, receive, send)

    with caplog.at_level(logging.INFO, logger="edge_server.access"):
        asyncio.run(run())
    return [r.getMessage() for r in caplog.records if r.name == "edge_server.access"]


def test_access_log_is_off_by_default_but_errors_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With the default setting, answered requests leave no line; 4xx and 5xx always do."""
    rate = Settings().access_log_rate
    lines = _logged_statuses(rate, [200, 200, 404, 200, 503], caplog)
    assert rate == 0.0
    assert len(lines) == 2
    assert '127.0.0.1:5000 - "POST /404?top_k=1 HTTP/1.1" 404' in lines[0]
    assert " 503 " in lines[1]


@pytest.mark.parametrize(("setting", "expected"), [("on", 10), ("0.25", 2), ("0.5", 5), ("0", 0)])
def test_access_log_samples_the_set_fraction(
    setting: str, expected: int, caplog: pytest.LogCaptureFixture
) -> None:
    """EDGE_ACCESS_LOG=on logs every request; a fraction logs that share of them, evenly."""
    rate = Settings.model_validate({"access_log": setting}).access_log_rate
    assert len(_logged_statuses(rate, [200] * 10, caplog)) == expected


@pytest.mark.parametrize("setting", ["sometimes", "1.5", "-0.1"])
def test_access_log_setting_refuses_nonsense(setting: str) -> None:
    """Anything but off, on or a fraction between 0 and 1 stops startup."""
    with pytest.raises(ValueError, match="access_log"):
        Settings.model_validate({"access_log": setting})
