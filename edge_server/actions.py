"""What the actions of `edge-server learn` and `edge-server faces` share: each asks a running
server (--url) or does its work in EDGE_DATA_DIR through the service's own code, then prints
the answer, or one line on stderr and exit status 1."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .client import Client, ClientError
from .core.errors import ServiceError

T = TypeVar("T")


def run_local(work: Callable[[], Coroutine[Any, Any, T]], show: Callable[[T], None]) -> int:
    """Run `work` to its end and show its answer; a ServiceError is the failure's line."""
    try:
        result = asyncio.run(work())
    except ServiceError as exc:
        return fail(exc.detail)
    show(result)
    return 0


def remote(args: argparse.Namespace, ask: Callable[[Client], T], show: Callable[[T], None]) -> int:
    """Ask the server at --url (with --api-key and --timeout) and show its answer."""
    try:
        result = ask(Client(args.url, api_key=args.api_key, timeout=args.timeout))
    except ClientError as exc:
        return fail(str(exc))
    show(result)
    return 0


def fail(message: str) -> int:
    """Print why the command failed; its exit status."""
    print(f"edge-server: {message}", file=sys.stderr)
    return 1
