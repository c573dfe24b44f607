"""Raspberry Pi board health: SoC temperature, CPU frequency and the firmware's throttling flags.

Read from sysfs (and `vcgencmd` when the firmware node is missing) on each scrape; on any other
machine nothing is reported.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_MODEL = ("proc/device-tree/model", "sys/firmware/devicetree/base/model")
_TEMPERATURE = "sys/class/thermal/thermal_zone0/temp"  # millidegrees Celsius
_FREQUENCY = "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"  # kHz
_THROTTLED = "sys/devices/platform/soc/soc:firmware/get_throttled"  # hex bit field

# Bits of the firmware's get_throttled word.
THROTTLE_FLAGS = {
    "under_voltage": 0,
    "frequency_capped": 1,
    "throttled": 2,
    "soft_temperature_limit": 3,
    "under_voltage_occurred": 16,
    "frequency_capped_occurred": 17,
    "throttled_occurred": 18,
    "soft_temperature_limit_occurred": 19,
}


@dataclass(frozen=True)
class BoardHealth:
    """What a Raspberry Pi reports about itself; None where a reading is unavailable."""

    model: str
    temperature_celsius: float | None
    cpu_frequency_hz: float | None
    throttled: int | None

    def flags(self) -> dict[str, bool] | None:
        """The throttling word as named flags."""
        if self.throttled is None:
            return None
        return {name: bool(self.throttled >> bit & 1) for name, bit in THROTTLE_FLAGS.items()}

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "temperature_celsius": self.temperature_celsius,
            "cpu_frequency_hz": self.cpu_frequency_hz,
            "throttled": None if self.throttled is None else hex(self.throttled),
            "flags": self.flags(),
        }


def _read(root: Path, relative: str) -> str | None:
    try:
        return (root / relative).read_text(encoding="ascii", errors="replace").strip("\x00\n ")
    except OSError:
        return None


def _number(text: str | None, scale: float) -> float | None:
    try:
        return None if text is None else float(text) * scale
    except ValueError:
        return None


def parse_throttled(text: str) -> int | None:
    """`50005`, `0x50005` or vcgencmd's `throttled=0x50005` as an int."""
    value = text.strip().rpartition("=")[2]
    try:
        return int(value, 16)
    except ValueError:
        return None


def _vcgencmd_throttled() -> int | None:
    command = shutil.which("vcgencmd")
    if command is None:
        return None
    try:
        result = subprocess.run(  # noqa: S603 - fixed arguments, found on PATH
            [command, "get_throttled"], capture_output=True, text=True, timeout=1, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_throttled(result.stdout) if result.returncode == 0 else None


def read_board(root: Path) -> BoardHealth | None:
    """The board's health if it is a Raspberry Pi, else None."""
    model = next((m for m in (_read(root, p) for p in _MODEL) if m), None)
    if model is None or "Raspberry Pi" not in model:
        return None
    throttled_text = _read(root, _THROTTLED)
    throttled = parse_throttled(throttled_text) if throttled_text else _vcgencmd_throttled()
    return BoardHealth(
        model=model,
        temperature_celsius=_number(_read(root, _TEMPERATURE), 0.001),
        cpu_frequency_hz=_number(_read(root, _FREQUENCY), 1000.0),
        throttled=throttled,
    )


class BoardCollector(Collector):
    """Prometheus gauges of the board's health, read at scrape time; none off a Pi."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def collect(self) -> Iterator[GaugeMetricFamily]:
        board = read_board(self.root)
        if board is None:
            return
        if board.temperature_celsius is not None:
            yield GaugeMetricFamily(
                "edge_board_temperature_celsius",
                "SoC temperature.",
                value=board.temperature_celsius,
            )
        if board.cpu_frequency_hz is not None:
            yield GaugeMetricFamily(
                "edge_board_cpu_frequency_hertz",
                "Current frequency of CPU 0.",
                value=board.cpu_frequency_hz,
            )
        flags = board.flags()
        if flags is not None:
            family = GaugeMetricFamily(
                "edge_board_throttle_flag",
                "Firmware throttling flags (1 = set): now, and occurred since boot.",
                labels=("flag",),
            )
            for name, state in flags.items():
                family.add_metric((name,), float(state))
            yield family
