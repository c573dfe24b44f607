"""Bounded load through a front door: classify one photo again and again, count the answers.

    python3 deploy/load.py URL IMAGE LABEL [--api-key-file F] [--requests N] [--seconds S]
                           [--stop-file F] [--concurrency C] [--pause S] [--stats URL]

Stops at whichever comes first: N requests, S seconds, or the stop file appearing. Prints one
JSON object: requests, ok (200 with LABEL on top), failed with the reasons, answers per server
(the front door's X-Served-By header) and, with --stats, HAProxy's retries and redispatches
during the run. Standard library only, like deploy/probe.py.

Every exchange that does not end in the expected answer is a failure, named by its kind:

    HTTP 503                       an answer with another status
    label 'x'                      a 200 with another top label
    no answer: ConnectionResetError   the exchange ended before a status line (refused, reset,
                                   closed): the front door could have retried it
    cut mid-answer: IncompleteRead the status and headers came, the body was cut short: what a
                                   task SIGKILLed while it answers leaves (nobody can retry an
                                   answer that has started)
    stalled mid-answer: TimeoutError   the body stopped coming
    invalid answer: JSONDecodeError    a whole body that is not the expected JSON
    unexpected: RuntimeError       anything else; the worker counts it and goes on

The summary gives `cut_mid_answer` (the failures a kill explains) apart from `other_failed`,
and `workers_lost`: workers that ended early (none can; it is counted so a test can say so).
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Tally:
    """What the workers saw; one lock, since they run on several threads."""

    ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    served_by: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, server: str, failure: str | None) -> None:
        """One answer: from `server`, and either fine or the reason it was not."""
        with self.lock:
            self.served_by[server] += 1
            if failure is None:
                self.ok += 1
            else:
                self.failures[failure] += 1


CUT = "cut mid-answer"


def _reason(exc: BaseException) -> str:
    """The name of what went wrong; for urllib's URLError, of the error it wraps."""
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        return type(exc.reason).__name__
    return type(exc).__name__


def classify_once(url: str, body: bytes, label: str, api_key: str | None) -> tuple[str, str | None]:
    """(server, failure): who answered and why the answer is not a 200 with `label` on top."""
    headers = {"Content-Type": "image/jpeg"}
    if api_key:
        headers["X-API-Key"] = api_key
    request = urllib.request.Request(
        url + "/classify?top_k=1", data=body, headers=headers, method="POST"
    )
    try:
        answer = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.headers.get("X-Served-By", "-"), f"HTTP {exc.code}"
    except (OSError, http.client.HTTPException) as exc:
        # Refused, reset or closed before a status line (RemoteDisconnected is both kinds).
        return "-", f"no answer: {_reason(exc)}"
    with answer:
        server = answer.headers.get("X-Served-By", "-")
        try:
            raw = answer.read()
        except TimeoutError as exc:
            return server, f"stalled mid-answer: {_reason(exc)}"
        except (OSError, http.client.HTTPException) as exc:
            return server, f"{CUT}: {_reason(exc)}"
    try:
        top = json.loads(raw)["predictions"][0]["label"]
    except (ValueError, LookupError, TypeError) as exc:
        return server, f"invalid answer: {_reason(exc)}"
    return server, None if top == label else f"label {top!r}"


def server_counters(stats_csv: str) -> dict[str, dict[str, int]]:
    """Per-server retries (wretr) and redispatches (wredis) from HAProxy's CSV statistics."""
    counters = {}
    for row in csv.DictReader(io.StringIO(stats_csv.lstrip("# "))):
        if row["svname"] not in ("FRONTEND", "BACKEND"):
            counters[row["svname"]] = {k: int(row[k] or 0) for k in ("wretr", "wredis")}
    return counters


def haproxy_counters(stats_url: str) -> dict[str, dict[str, int]]:
    """server_counters of the HAProxy stats page at `stats_url`."""
    with urllib.request.urlopen(stats_url.rstrip("/") + ";csv", timeout=5) as answer:
        return server_counters(answer.read().decode())


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Drive the load until a bound is reached; the summary."""
    body = args.image.read_bytes()
    api_key = None
    if args.api_key_file:
        api_key = args.api_key_file.read_text(encoding="utf-8").splitlines()[0].strip()
    before = haproxy_counters(args.stats) if args.stats else {}
    tally = Tally()
    issued = 0
    issued_lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def more() -> bool:
        nonlocal issued
        if time.monotonic() > deadline or (args.stop_file and args.stop_file.exists()):
            return False
        with issued_lock:
            if issued >= args.requests:
                return False
            issued += 1
            return True

    finished = 0

    def worker() -> None:
        nonlocal finished
        while more():
            try:
                server, failure = classify_once(args.url, body, args.label, api_key)
            except Exception as exc:  # counted by its type; the worker goes on
                server, failure = "-", f"unexpected: {_reason(exc)}"
            tally.add(server, failure)
            time.sleep(args.pause)
        with issued_lock:
            finished += 1

    started = time.monotonic()
    workers = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    cut = sum(n for kind, n in tally.failures.items() if kind.startswith(CUT))
    summary: dict[str, Any] = {
        "requests": tally.ok + sum(tally.failures.values()),
        "ok": tally.ok,
        "failed": sum(tally.failures.values()),
        "cut_mid_answer": cut,
        "other_failed": sum(tally.failures.values()) - cut,
        "failures": dict(sorted(tally.failures.items())),
        "workers_lost": args.concurrency - finished,
        "served_by": dict(sorted(tally.served_by.items())),
        "seconds": round(time.monotonic() - started, 1),
    }
    if args.stats:
        after = haproxy_counters(args.stats)
        for key, name in (("wretr", "retries"), ("wredis", "redispatches")):
            summary[name] = sum(after[s][key] - before.get(s, {}).get(key, 0) for s in after)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load; print the summary as JSON; 0 when every request was answered right."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="base URL of the front door, e.g. http://10.77.0.1:8080")
    parser.add_argument("image", type=Path)
    parser.add_argument("label", help="the expected top label")
    parser.add_argument("--api-key-file", type=Path, help="file whose first line is the key")
    parser.add_argument("--requests", type=int, default=5000, help="at most this many")
    parser.add_argument("--seconds", type=float, default=300.0, help="at most this long")
    parser.add_argument("--stop-file", type=Path, help="stop once this file exists")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.02, help="seconds between requests")
    parser.add_argument("--stats", help="HAProxy stats URL, e.g. http://10.77.0.1:8404/stats")
    args = parser.parse_args(argv)
    args.url = args.url.rstrip("/")
    for url in (args.url, args.stats or "http://"):
        if not url.startswith(("http://", "https://")):
            parser.error(f"{url} is not an http(s) URL")
    summary = run(args)
    print(json.dumps(summary, sort_keys=True))
    right = summary["failed"] == 0 and summary["workers_lost"] == 0
    return 0 if right and summary["requests"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
