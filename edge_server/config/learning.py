"""Learned classes: where they are kept and how large a learned model may grow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field


class LearningSettings(BaseModel):
    """The data folder, the embedding model and the limits of learned models."""

    data_dir: Path | None = Field(
        None,
        description="Folder where learned models are kept (the unit's StateDirectory, a "
        "volume in the container); unset: learning is off and /v1/learned says how to turn "
        "it on.",
    )
    embedder: str = Field(
        "embedder",
        description="Embedding model learned classes are built on (a catalog name or alias); "
        "loaded when a learned model needs it.",
    )
    learned_max_models: Annotated[int, Field(ge=1, le=1000)] = Field(
        20, description="Most learned models kept."
    )
    learned_max_classes: Annotated[int, Field(ge=1, le=1000)] = Field(
        50, description="Most classes in one learned model."
    )
    learned_max_examples: Annotated[int, Field(ge=1, le=10_000)] = Field(
        200,
        description="Most examples of one class (Coral's imprinting engine takes 200; more "
        "similar photos add little to a class mean).",
    )
    learned_max_label: Annotated[int, Field(ge=1, le=100)] = Field(
        64,
        description="Longest class name, in characters (letters, digits, spaces and . _ - ' "
        "are allowed; Frigate takes sub labels of up to 100).",
    )
    learned_max_import_bytes: Annotated[int, Field(ge=1024)] = Field(
        128 * 1024 * 1024,
        description="Largest learned-model file `PUT /v1/learned/NAME` accepts (an export "
        "holds a small thumbnail of every example).",
    )
