"""The instance's stable id."""

from __future__ import annotations

from pathlib import Path

from edge_server.ops.identity import node_id


def test_node_id_is_stable_for_one_machine_id(tmp_path: Path) -> None:
    """The same machine id gives the same 12-hex-digit id, and a different one another id."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    first = node_id(root=tmp_path)
    assert first == node_id(root=tmp_path)
    assert len(first) == 12 and int(first, 16) >= 0
    assert "0123456789abcdef" not in first  # the machine id itself is not disclosed
    (tmp_path / "etc" / "machine-id").write_text("fedcba9876543210fedcba9876543210\n")
    assert node_id(root=tmp_path) != first


def test_configured_node_id_wins_and_is_made_safe(tmp_path: Path) -> None:
    """EDGE_NODE_ID is used as given, lowercased, with unsafe characters made dashes."""
    assert node_id("Feeder Pi/#1", root=tmp_path) == "feeder-pi-1"


def test_node_id_without_machine_id_falls_back_to_host_name(tmp_path: Path) -> None:
    """No machine id file: still a stable 12-hex-digit id."""
    assert node_id(root=tmp_path) == node_id(root=tmp_path)
    assert len(node_id(root=tmp_path)) == 12
