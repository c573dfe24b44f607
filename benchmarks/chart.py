"""The PNG chart: latency and throughput against concurrency, service vs naive vs the limit."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from benchmarks.targets import NAIVE, SERVICE, Measurements

_COLOURS = {SERVICE: "tab:blue", NAIVE: "tab:red", "limit": "tab:gray"}


def draw(m: Measurements, sizes: list[str], path: Path, title: str) -> None:
    """Latency (p50 solid, p99 dashed) and throughput per photo size, one column each."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a Pi or in CI
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    figure, axes = plt.subplots(
        2, len(sizes), figsize=(4.2 * len(sizes), 6.4), squeeze=False, constrained_layout=True
    )
    for column, size in enumerate(sizes):
        latency, throughput = axes[0][column], axes[1][column]
        for server in (SERVICE, NAIVE):
            runs = m.http.get(server, {}).get(size, {})
            levels = sorted(runs)
            if not levels:
                continue
            colour = _COLOURS[server]
            latency.plot(levels, [runs[c].p50 for c in levels], "o-", color=colour, label=server)
            latency.plot(
                levels,
                [runs[c].p99 for c in levels],
                "o--",
                color=colour,
                alpha=0.6,
                label=f"{server} p99",
            )
            throughput.plot(
                levels, [runs[c].throughput for c in levels], "o-", color=colour, label=server
            )
        limit = m.pipeline.get(size)
        if limit is not None:
            latency.axhline(limit.p50, color=_COLOURS["limit"], ls=":", label="limit p50")
            throughput.axhline(
                limit.throughput, color=_COLOURS["limit"], ls=":", label="limit (serial)"
            )
        latency.set_title(f"{size} JPEG")
        latency.set_ylabel("latency, ms")
        latency.set_yscale("log")
        latency.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        latency.yaxis.set_minor_formatter(NullFormatter())
        throughput.set_ylabel("images / s")
        throughput.set_xlabel("concurrent clients")
        throughput.set_ylim(bottom=0)
        for ax in (latency, throughput):
            ax.set_xscale("log", base=2)
            ax.set_xticks([1, 2, 4, 8], labels=["1", "2", "4", "8"])
            ax.grid(True, alpha=0.3)
        if column == 0:
            latency.legend(fontsize=7)
            throughput.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    rendered = io.BytesIO()
    figure.savefig(rendered, format="png", dpi=80)
    plt.close(figure)
    # A few flat colours: a palette PNG is a fifth of the size, small enough for a README.
    with Image.open(rendered) as image:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.convert("RGB").quantize(colors=32).save(path, optimize=True)
