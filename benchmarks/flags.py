"""Command-line flags the side-by-side benchmarks share: where the models and photos are, and
which runtime the server uses."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from edge_server.core.runtime import RuntimeChoice


def add_model_flags(parser: argparse.ArgumentParser, *, images_help: str) -> None:
    """--models-dir (EDGE_MODELS_DIR, else models), --images (../shared/images) and
    --runtime (EDGE_RUNTIME, else auto)."""
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("EDGE_MODELS_DIR", "models")),
        help="folder of pulled models (default: EDGE_MODELS_DIR, else models)",
    )
    parser.add_argument("--images", type=Path, default=Path("../shared/images"), help=images_help)
    parser.add_argument(
        "--runtime",
        type=RuntimeChoice,
        default=RuntimeChoice(os.environ.get("EDGE_RUNTIME", "auto")),
    )
