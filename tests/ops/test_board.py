"""Raspberry Pi board health from a fake sysfs tree: metrics and /healthz detail."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from edge_server.ops.board import BoardCollector, parse_throttled, read_board

from conftest import ServerProcess, fake_pi, free_port, metric, server_env


def test_a_pi_reports_temperature_frequency_and_flags(tmp_path: Path) -> None:
    """The fake Pi: 48.312 C, 1.5 GHz, under-voltage and throttling now and since boot."""
    board = read_board(fake_pi(tmp_path))
    assert board is not None
    assert board.model == "Raspberry Pi 4 Model B Rev 1.4"
    assert board.temperature_celsius == pytest.approx(48.312)
    assert board.cpu_frequency_hz == pytest.approx(1.5e9)
    flags = board.flags()
    assert flags is not None
    assert flags["under_voltage"] and flags["throttled"]
    assert not flags["frequency_capped"]
    assert flags["under_voltage_occurred"] and flags["throttled_occurred"]
    assert not flags["soft_temperature_limit"] and not flags["soft_temperature_limit_occurred"]


def test_other_machines_report_nothing(tmp_path: Path) -> None:
    """No device tree, or a non-Pi board, gives no board health and no board metrics."""
    assert read_board(tmp_path) is None
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_text("Pine64 RockPro64\x00")
    assert read_board(tmp_path) is None
    registry = CollectorRegistry()
    registry.register(BoardCollector(tmp_path))
    assert b"edge_board" not in generate_latest(registry)


def test_vcgencmd_is_the_fallback_for_throttling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the firmware sysfs node, `vcgencmd get_throttled` is asked."""
    root = fake_pi(tmp_path / "root", throttled=None)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "vcgencmd"
    tool.write_text("#!/bin/sh\necho throttled=0x80008\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    board = read_board(root)
    assert board is not None
    assert board.throttled == 0x80008


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0), ("0x50005", 0x50005), ("throttled=0x4", 4), ("junk", None)]
)
def test_parse_throttled(text: str, value: int | None) -> None:
    """Sysfs hex, 0x-prefixed hex and vcgencmd's form parse; junk does not."""
    assert parse_throttled(text) == value


def test_server_on_a_fake_pi_exposes_board_health(
    models_dir: Path, runtime: str, tmp_path: Path
) -> None:
    """EDGE_SYSFS_ROOT at a fake Pi: /healthz has a board detail and /metrics the gauges."""
    env = server_env(models_dir, runtime, sysfs_root=str(fake_pi(tmp_path)))
    process = ServerProcess(env, free_port())
    process.wait_ready()
    try:
        health = httpx.get(process.url + "/healthz").json()
        text = httpx.get(process.url + "/metrics").text
    finally:
        process.stop()
    assert health["status"] == "ok"
    assert health["board"]["temperature_celsius"] == pytest.approx(48.312)
    assert health["board"]["throttled"] == "0x50005"
    assert metric(text, "edge_board_temperature_celsius") == pytest.approx(48.312)
    assert metric(text, "edge_board_cpu_frequency_hertz") == pytest.approx(1.5e9)
    assert metric(text, "edge_board_throttle_flag", flag="under_voltage") == 1.0
    assert metric(text, "edge_board_throttle_flag", flag="frequency_capped") == 0.0


def test_server_off_a_pi_has_no_board_health(server: ServerProcess) -> None:
    """On this (non-Pi) machine /healthz has no board and /metrics no board gauges."""
    health = httpx.get(server.url + "/healthz").json()
    health.pop("faces", None)  # there when the face models are in the models folder
    assert health == {"status": "ok"}
    assert "edge_board_" not in httpx.get(server.url + "/metrics").text
