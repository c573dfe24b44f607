"""The proofs' learned-class helper (deploy/learned.py) against a real server process."""

from __future__ import annotations

from pathlib import Path

import pytest

import learned
from conftest import SMALL_MODEL, ServerProcess, free_port, server_env

KEY = "learned-script-key-0123456789"


def test_teach_then_list_the_classes(
    models_dir: Path,
    runtime: str,
    images_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """teach prints the classes after each example; classes prints them; a wrong key fails."""
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    server = ServerProcess(
        server_env(models_dir, runtime, model=SMALL_MODEL, data_dir=str(tmp_path), api_key=KEY),
        free_port(),
    )
    try:
        server.wait_ready()
        folder = images_dir / "imprinting"
        for label in ("cat", "dog"):
            photo = str(folder / f"{label}_train_0.bmp")
            code = learned.main(
                [server.url, "teach", "pets", label, photo, "--api-key-file", str(key_file)]
            )
            assert code == 0
        assert learned.main([server.url, "classes", "pets", "--api-key-file", str(key_file)]) == 0
        assert capsys.readouterr().out.splitlines() == ["cat:1", "cat:1,dog:1", "cat:1,dog:1"]
        key_file.write_text("not-the-key-but-long-enough\n")
        assert learned.main([server.url, "classes", "pets", "--api-key-file", str(key_file)]) == 1
    finally:
        server.stop()
