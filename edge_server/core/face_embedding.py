"""An optional TFLite face embedder in place of dlib's descriptor (EDGE_FACE_EMBEDDER).

dlib's landmarks still find the eyes and nose and `get_face_chip` still aligns the face onto
its 150 x 150 chip; the embedder takes that chip, fitted to its own input size (read from the
model), and its output, dequantized, is the face's vector, L2-normalised so distances lie in
0-2 whatever the model's scale. It runs through an `Engine` (its owner threads and the
process's core budget) like every other model. Which model made a vector is its name and the
file's sha256 (`Embedder.model`): vectors of two models are not comparable, so the people
store keeps it with each person.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .engine import Engine, LoadOptions, TensorSpec
from .errors import StartupError
from .imaging import ResizeMode
from .quantization import SOFTMAX_OUTPUT_SCALE

# The name of dlib's descriptor in the people store (the default describer).
DLIB_MODEL = "dlib_face_recognition_resnet_model_v1"


def vector_length(outputs: Sequence[TensorSpec]) -> int | None:
    """The length of a model's one output when it is a vector ([1, N], [1, 1, 1, N]...), else
    None (several outputs, a map, a single number)."""
    if len(outputs) != 1:
        return None
    shape = outputs[0].shape
    wide = [d for d in shape if d != 1]
    if not shape or shape[0] != 1 or len(wide) != 1 or wide[0] < 2:
        return None
    return int(wide[0])


def _probabilities(output: TensorSpec) -> bool:
    """A quantized softmax: the output of a classifier, whose vector only ranks its classes."""
    scale = output.quantization.scale
    return output.quantization.quantized and abs(scale - SOFTMAX_OUTPUT_SCALE) < 1e-9


class Embedder:
    """A TFLite model mapping an aligned face chip to a vector, run through an Engine."""

    def __init__(self, engine: Engine, dimensions: int) -> None:
        self.engine = engine
        self.dimensions = dimensions
        # The store's name for its vectors: another file, even of the same name, is another.
        self.model = f"tflite:{engine.info.name}:{engine.info.sha256[:16]}"

    @classmethod
    def load(
        cls, path: Path, options: LoadOptions, *, decoders: Executor | None = None
    ) -> Embedder:
        """Load and check an embedder: StartupError (what is wrong, how to fix it) for a file
        that is missing, not an image model or whose output is not one vector."""
        fix = (
            "set EDGE_FACE_EMBEDDER to a .tflite that takes an RGB face image [1, H, W, 3] and "
            "gives one vector [1, N], or unset it to use dlib's descriptor"
        )
        if not path.is_file():
            raise StartupError(f"the face embedder {path} is not a file", fix=fix)
        settings = LoadOptions(
            runtime=options.runtime,
            num_threads=options.num_threads,
            replicas=1,
            resize=ResizeMode.squash,  # the chip is square already
            embedding=True,
        )
        try:
            engine = Engine.load(path, settings, decoders=decoders)
        except StartupError as exc:
            raise StartupError(f"the face embedder: {exc.problem}", fix=fix) from exc
        except (ValueError, RuntimeError) as exc:  # not a TFLite flatbuffer
            raise StartupError(
                f"the face embedder {path} cannot be loaded: {exc}", fix=fix
            ) from exc
        dimensions = vector_length(engine.info.outputs)
        if dimensions is None:
            shapes = ", ".join(str(list(o.shape)) for o in engine.info.outputs)
            engine.close()
            raise StartupError(
                f"the face embedder {path.name} gives {shapes}, not one vector [1, N]", fix=fix
            )
        if _probabilities(engine.info.outputs[0]):
            engine.close()
            raise StartupError(
                f"the face embedder {path.name} gives class probabilities (a classifier's "
                "softmax), not a vector describing the face",
                fix=fix,
            )
        return cls(engine, dimensions)

    def tensor(self, chip: npt.NDArray[np.uint8]) -> npt.NDArray[Any]:
        """The model's input for one aligned chip (H x W x 3 RGB): fitted and quantized."""
        return self.engine.prepare_picture(np.ascontiguousarray(chip)).tensor

    def vector(self, raw: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """One invoke's output as an L2-normalised vector (a zero output stays zero)."""
        values = self.engine.scores(raw).reshape(-1).astype(np.float32)
        norm = float(np.linalg.norm(values))
        return values / norm if norm > 0 else values

    def close(self) -> None:
        """Stop the model's threads."""
        self.engine.close()
