"""A learned model served like any classifier: the embedding model's interpreters and a head.

Each learned model is an `ImprintedEngine`: it decodes and invokes on its embedding model's
owner threads and decode pool (one set of interpreters for every learned model), and ranks the
embedding with its `Head` instead of a classifier's output. An engine is immutable: learning an
example builds a new engine with a new head and swaps it in, so each request is answered
wholly by the model before or after a change, never by one half-way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .detection import Task
from .engine import Engine, ModelInfo, OutputKind, TensorSpec
from .imprinting import Head
from .quantization import Quantization


class ImprintedEngine(Engine):
    """A learned model: its embedding model's threads and interpreters, its own head."""

    def __init__(self, info: ModelInfo, embedder: Engine, head: Head) -> None:
        # Not Engine.__init__: everything of the embedder's is shared (its interpreters, owner
        # threads, decode pool and input settings, and any Engine gains later), closed by
        # whoever loaded it; then what a learned model has of its own.
        self.__dict__.update(embedder.__dict__)
        self.info = info
        self.head = head
        self.embedder = embedder
        self._owns_decoders = False
        self.on_invoke = None

    @classmethod
    def imprinted(cls, name: str, path: Path, embedder: Engine, head: Head) -> ImprintedEngine:
        """The learned model `name` (stored at `path`) over `embedder`, answering with `head`."""
        base = embedder.info
        digest = hashlib.sha256(base.sha256.encode())
        digest.update("\n".join(head.classes).encode())
        digest.update(np.ascontiguousarray(head.means).tobytes())
        digest.update(repr(head.threshold.value).encode())
        output = TensorSpec(
            index=base.output.index,
            shape=(1, len(head.labels)),
            dtype=np.float32,
            quantization=Quantization(0.0, 0),
        )
        info = ModelInfo(
            name=name,
            path=path,
            sha256=digest.hexdigest(),
            input=base.input,
            output=output,
            labels=head.labels,
            output_kind=OutputKind.probabilities,
            backend=base.backend,
            num_threads=base.num_threads,
            xnnpack=base.xnnpack,
            replica_threads=base.replica_threads,
            task=Task.classification,
            outputs=(output,),
        )
        return cls(info, embedder, head)

    def scores(self, raw: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Probabilities over `unknown` and the learned classes, from the raw embedding."""
        return self.head.scores(raw)

    def close(self) -> None:
        """Nothing to stop: the threads are the embedder's, closed by its owner."""
