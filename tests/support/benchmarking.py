"""Running a benchmark module end to end, as a user would, from the project's root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_benchmark(module: str, *arguments: str, timeout: float = 300) -> str:
    """`python -m MODULE ARGUMENTS...`'s output; AssertionError with its stderr if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
