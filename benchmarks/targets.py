"""The issue's targets, evaluated from one run's measurements (pure functions).

Every target is a ratio of two figures from the same run, so the machine's speed and load cancel
out as far as they can: only the design is compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from benchmarks.fidelity import MARGIN, Agreement
from benchmarks.stats import Summary

SNAPSHOT = "1920x1080"  # encoded at about 200 KB: the concurrency-1 target's photo
HD = "1920x1080"
PHONE = "4032x3024"
SERVICE, NAIVE = "service", "naive"
SERVICE_RAW = "service, raw body"  # the same server, the photo as the whole request body


@dataclass
class Measurements:
    """Everything one run measured that a target is computed from."""

    invoke: Summary
    pipeline: dict[str, Summary] = field(default_factory=dict)  # size -> serial pipeline
    service_preprocess: dict[str, Summary] = field(default_factory=dict)
    naive_preprocess: dict[str, Summary] = field(default_factory=dict)
    http: dict[str, dict[str, dict[int, Summary]]] = field(default_factory=dict)
    ready_s: dict[str, float] = field(default_factory=dict)
    memory_mb: dict[str, dict[str, float]] = field(default_factory=dict)
    accuracy: dict[str, Agreement] = field(default_factory=dict)  # size -> vs full decode

    def served(self, server: str, size: str, concurrency: int) -> Summary | None:
        """One HTTP measurement, if it was made."""
        return self.http.get(server, {}).get(size, {}).get(concurrency)


@dataclass(frozen=True)
class Target:
    """A figure, its bound, and whether it is met (None when it could not be measured)."""

    name: str
    value: float | None
    bound: float
    at_most: bool  # True: value <= bound; False: value >= bound
    unit: str = "x"

    @property
    def met(self) -> bool | None:
        """Whether the value is on the right side of the bound."""
        if self.value is None or math.isnan(self.value):
            return None
        return self.value <= self.bound if self.at_most else self.value >= self.bound

    @property
    def margin(self) -> float | None:
        """How far the value is past the bound, as a fraction of it (negative: missed)."""
        if self.value is None or math.isnan(self.value):
            return None
        spare = self.bound - self.value if self.at_most else self.value - self.bound
        return spare / self.bound

    def line(self, digits: int = 2) -> str:
        """The target as a row of a printed report: verdict, value, relation, bound, name."""
        verdict = {True: "met", False: "MISSED", None: "n/a"}[self.met]
        value = "n/a" if self.value is None else f"{self.value:.{digits}f}"
        relation = "<=" if self.at_most else ">="
        return f"  {verdict:6} {value:>7} {relation} {self.bound:g} {self.unit}  {self.name}"

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return {
            "name": self.name,
            "value": None if self.value is None else round(self.value, 3),
            "bound": self.bound,
            "relation": "<=" if self.at_most else ">=",
            "unit": self.unit,
            "met": self.met,
        }


def _ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or bottom is None or bottom == 0:
        return None
    return top / bottom


def _p50(summary: Summary | None) -> float | None:
    return None if summary is None else summary.p50


def _p99(summary: Summary | None) -> float | None:
    return None if summary is None else summary.p99


def _throughput(summary: Summary | None) -> float | None:
    return None if summary is None else summary.throughput


def evaluate(m: Measurements) -> list[Target]:
    """Every target of the issue, from one run."""
    targets = [
        Target(
            f"c1 {SNAPSHOT} (~200 KB), {body}: service p50 / in-process pipeline p50"
            " (moonshot 1.05)",
            _ratio(_p50(m.served(server, SNAPSHOT, 1)), _p50(m.pipeline.get(SNAPSHOT))),
            1.10,
            at_most=True,
        )
        for server, body in ((SERVICE, "multipart"), (SERVICE_RAW, "raw body"))
    ]
    for size in (HD, PHONE):
        targets.append(
            Target(
                f"c8 {size}: service throughput / serial pipeline throughput",
                _ratio(_throughput(m.served(SERVICE, size, 8)), _throughput(m.pipeline.get(size))),
                1.3,
                at_most=False,
            )
        )
    for size in (HD, PHONE):
        c4 = m.served(SERVICE, size, 4)
        targets.append(
            Target(f"c4 {size}: service p99 / p50", _ratio(_p99(c4), _p50(c4)), 1.5, at_most=True)
        )
    service8, naive8 = m.served(SERVICE, PHONE, 8), m.served(NAIVE, PHONE, 8)
    targets += [
        Target(
            f"c8 {PHONE}: service throughput / naive throughput",
            _ratio(_throughput(service8), _throughput(naive8)),
            2.0,
            at_most=False,
        ),
        Target(
            f"c8 {PHONE}: service p99 / naive p99",
            _ratio(_p99(service8), _p99(naive8)),
            0.5,
            at_most=True,
        ),
    ]
    for size, bound, moonshot in ((PHONE, 0.25, 0.22), (HD, 0.35, 0.30)):
        targets.append(
            Target(
                f"{size} preprocessing: service / naive decode + resize (p50; moonshot "
                f"{moonshot:g})",
                _ratio(_p50(m.service_preprocess.get(size)), _p50(m.naive_preprocess.get(size))),
                bound,
                at_most=True,
            )
        )
    for size in (HD, PHONE):
        agreement = m.accuracy.get(size)
        targets += [
            Target(
                f"{size} accuracy: top-1 changes vs full decode where its margin >= "
                f"{MARGIN:g} (of {agreement.decisive if agreement else '?'} variants)",
                None if agreement is None else float(agreement.top1_changed),
                0,
                at_most=True,
                unit="",
            ),
            Target(
                f"{size} accuracy: largest score change vs full decode / that of +-1 grey "
                "level noise",
                None
                if agreement is None
                else _ratio(agreement.max_change, agreement.noise_max_change),
                1.0,
                at_most=True,
            ),
        ]
    memory = m.memory_mb.get(SERVICE, {})
    targets += [
        Target(
            "service peak RSS after the run",
            memory.get("peak_rss_mb"),
            150.0,
            at_most=True,
            unit="MB",
        ),
        Target("service start to /readyz 200", m.ready_s.get(SERVICE), 2.0, at_most=True, unit="s"),
    ]
    return targets


def cpu_cost(m: Measurements) -> dict[str, dict[str, float]]:
    """CPU time per image of each server at concurrency 1, over the serial pipeline's.

    Not a target, but the steadiest figure on a shared machine: CPU time barely moves with
    other jobs' load, where wall times do. 1.0 would be a server costing nothing beyond
    decode, preprocess, invoke and rank.
    """
    cost: dict[str, dict[str, float]] = {}
    for server, sizes in m.http.items():
        for size, levels in sizes.items():
            served, pipeline = levels.get(1), m.pipeline.get(size)
            if served is None or pipeline is None:
                continue
            if served.cpu_ms is None or not pipeline.cpu_ms:
                continue
            cost.setdefault(server, {})[size] = served.cpu_ms / pipeline.cpu_ms
    return cost
