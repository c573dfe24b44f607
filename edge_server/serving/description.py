"""The public description of a model: its tensors, labels and how it runs (HTTP and the CLI)."""

from __future__ import annotations

import numpy as np

from ..core.engine import Engine, TensorSpec
from .schemas import ModelDescription, QuantizationInfo, TensorInfo
from .service import Service


def _tensor_info(spec: TensorSpec) -> TensorInfo:
    return TensorInfo(
        shape=list(spec.shape),
        dtype=np.dtype(spec.dtype).name,
        quantization=QuantizationInfo(
            scale=spec.quantization.scale, zero_point=spec.quantization.zero_point
        ),
    )


def describe(service: Service, name: str) -> ModelDescription:
    """The public description of a loaded model."""
    return description(service.ready_model(name), default=name == service.default_model)


def description(classifier: Engine, *, default: bool = True) -> ModelDescription:
    """The public description of a model, whether served or loaded by the CLI."""
    info = classifier.info
    return ModelDescription(
        default=default,
        name=info.name,
        task=info.task.value,
        file=info.path.name,
        sha256=info.sha256,
        input=_tensor_info(info.input),
        output=_tensor_info(info.output),
        output_kind=info.output_kind.value,
        labels=len(info.labels),
        backend=info.backend.name,
        backend_version=info.backend.version,
        num_threads=info.num_threads,
        replica_threads=list(info.replica_threads or (info.num_threads,)),
        xnnpack=info.xnnpack,
        resize=classifier.resize.value,
    )
