"""KServe v2 wire shapes: the names, the metadata and inference request models, the error."""

from __future__ import annotations

import struct
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
# A detector's outputs, named as TensorFlow's object detection API names them.
DETECTION_OUTPUTS = ("detection_boxes", "detection_classes", "detection_scores", "num_detections")
# A segmenter's: the class id of every pixel of the upright picture (UINT8 [N, H, W]), and the
# classes present as "fraction:index:label" rows (BYTES [N, K], largest first).
CLASS_MAP, CLASSES = "class_map", "classes"
SEGMENTATION_OUTPUTS = (CLASS_MAP, CLASSES)
MODEL_VERSION = "1"  # a model has one version, the file loaded; its sha256 is in /v1/models
PLATFORM = "tflite"
EXTENSIONS = ["classification", "binary_tensor_data", "model_repository"]
HEADER_LENGTH = "inference-header-content-length"
_LENGTH_PREFIX = struct.Struct("<I")


class TensorMetadata(BaseModel):
    """Name, datatype and shape of a model input or output (-1: any size)."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """`GET /v2/models/{name}`."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="`task`: classification, detection or segmentation.",
    )


class ServerMetadata(BaseModel):
    """`GET /v2`."""

    name: str
    version: str
    extensions: list[str]


class RequestInput(BaseModel):
    """An input tensor of an inference request."""

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: list[Any] | None = None


class RequestOutput(BaseModel):
    """An output the client asks for, with its parameters (classification, binary_data)."""

    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferenceRequest(BaseModel):
    """`POST /v2/models/{name}/infer` (the JSON part)."""

    id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


def render_error(request: Request, status: int, detail: str, headers: dict[str, str]) -> Response:
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


class ErrorAnswer(BaseModel):
    """A KServe v2 error."""

    error: str
