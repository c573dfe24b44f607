"""A subset of the KServe v2 / Open Inference Protocol (REST), as Triton's clients speak it.

The model takes encoded images (input `image`, datatype BYTES, one element per image) and
answers class probabilities (output `probabilities`, FP32 [N, classes]). BYTES elements come
base64-encoded in JSON `data`, or raw in the binary tensor data extension (a JSON header of
`Inference-Header-Content-Length` bytes followed by the tensors, each BYTES element prefixed
by its 4-byte little-endian length) - what `tritonclient` sends by default. The classification
extension (`"classification": k` in an output's parameters) answers the k best as
`"score:index:label"` strings. Errors are `{"error": "..."}`.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from . import __version__
from .classifier import Classifier
from .deps import Authorized, ServiceDep
from .dialect import error_dialect
from .errors import BadRequest, NotFound, TooLarge, UnsupportedMediaType
from .schemas import ClassifyResponse
from .service import Service
from .upload import decode_base64, read_body

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
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


router = APIRouter(
    prefix="/v2",
    tags=["KServe v2"],
    route_class=error_dialect(render_error),
    responses={
        status: {"model": ErrorAnswer}
        for status in (400, 401, 404, 408, 413, 415, 422, 500, 503, 504)
    },
)


@router.get("", response_model=ServerMetadata, summary="Server metadata")
async def server_metadata() -> ServerMetadata:
    """The server's name, version and the protocol extensions it supports."""
    return ServerMetadata(name="edge-server", version=__version__, extensions=EXTENSIONS)


@router.get("/health/live", summary="Server liveness")
async def live() -> dict[str, bool]:
    """200 while the process serves HTTP."""
    return {"live": True}


@router.get("/health/ready", summary="Server readiness")
async def ready(service: ServiceDep) -> dict[str, bool]:
    """200 once the model is loaded, else 503."""
    service.ready_classifier()
    return {"ready": True}


@router.get(
    "/models/{name}",
    response_model=ModelMetadata,
    summary="Model metadata",
    dependencies=[Authorized],
)
@router.get(
    "/models/{name}/versions/{version}",
    response_model=ModelMetadata,
    include_in_schema=False,
    dependencies=[Authorized],
)
async def model_metadata(service: ServiceDep, name: str, version: str = "") -> ModelMetadata:
    """The model's inputs and outputs; 404 for another model name."""
    classifier = _model(service, name, version)
    classes = len(classifier.info.labels)
    return ModelMetadata(
        name=classifier.info.name,
        versions=[MODEL_VERSION],
        platform=PLATFORM,
        inputs=[TensorMetadata(name=INPUT_NAME, datatype="BYTES", shape=[-1])],
        outputs=[TensorMetadata(name=OUTPUT_NAME, datatype="FP32", shape=[-1, classes])],
    )


@router.get("/models/{name}/ready", summary="Model readiness")
@router.get("/models/{name}/versions/{version}/ready", include_in_schema=False)
async def model_ready(service: ServiceDep, name: str, version: str = "") -> dict[str, Any]:
    """200 when this model is loaded; 404 for another model name."""
    classifier = _model(service, name, version)
    return {"name": classifier.info.name, "ready": True}


@router.post(
    "/models/{name}/infer",
    summary="Inference (JSON or binary tensor data)",
    dependencies=[Authorized],
)
@router.post(
    "/models/{name}/versions/{version}/infer", include_in_schema=False, dependencies=[Authorized]
)
async def infer(request: Request, service: ServiceDep, name: str, version: str = "") -> Response:
    """Classify the encoded images of the BYTES input `image`."""
    classifier = _model(service, name, version)
    settings = service.settings
    if request.headers.get("content-encoding", "identity").lower() != "identity":
        raise UnsupportedMediaType("compressed request bodies are not accepted; send it plain")

    async def read() -> tuple[InferenceRequest, list[bytes]]:
        body = await read_body(request, settings.max_upload_bytes)
        inference, blob = split_body(body, request.headers.get(HEADER_LENGTH))
        images = input_images(inference, blob)
        if len(images) > settings.max_batch_images:
            raise TooLarge(
                f"the request holds {len(images)} images; the limit is "
                f"{settings.max_batch_images} (EDGE_MAX_BATCH_IMAGES)"
            )
        return inference, images

    async def run(upload: tuple[InferenceRequest, list[bytes]]) -> Response:
        inference, images = upload
        outputs = requested_outputs(inference)
        classes = len(classifier.info.labels)
        # Dense probabilities need every class ranked; classification outputs only its k best.
        top_k = (
            classes if any(k == 0 for k, _ in outputs) else min(max(k for k, _ in outputs), classes)
        )
        answers = await asyncio.gather(
            *(_classify(service, request, image, top_k, classifier.info.name) for image in images)
        )
        return _response(classifier, inference, answers, classes, outputs)

    # One admission place, deadline and disconnect watch for the whole request.
    return await service.guarded(request, read, run)


def _response(
    classifier: Classifier,
    inference: InferenceRequest,
    answers: list[ClassifyResponse],
    classes: int,
    outputs: list[tuple[int, bool]],
) -> Response:
    tensors = [output_tensor(answers, classes, k, binary) for k, binary in outputs]
    header: dict[str, Any] = {
        "model_name": classifier.info.name,
        "model_version": MODEL_VERSION,
        "outputs": [tensor for tensor, _ in tensors],
    }
    if inference.id is not None:
        header["id"] = inference.id
    blobs = [data for _, data in tensors if data is not None]
    encoded = json.dumps(header, separators=(",", ":")).encode()
    if not blobs:
        return Response(encoded, media_type="application/json")
    return Response(
        b"".join([encoded, *blobs]),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(encoded))},
    )


def _model(service: Service, name: str, version: str) -> Classifier:
    classifier = service.ready_classifier(name)
    if version not in ("", MODEL_VERSION):
        raise NotFound(
            f"model {classifier.info.name!r} has no version {version!r}; it has {MODEL_VERSION!r}"
        )
    return classifier


async def _classify(
    service: Service, request: Request, image: bytes, k: int, model: str
) -> ClassifyResponse:
    return await service.classify(
        image, top_k=k, threshold=0.0, started=request.state.request_started, model=model
    )


# --- pure transforms of the wire format ------------------------------------------------------


def split_body(body: bytes, header_length: str | None) -> tuple[InferenceRequest, bytes]:
    """The JSON inference request and the binary tensor data after it."""
    if header_length is None:
        header, blob = body, b""
    else:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise BadRequest(
                f"Inference-Header-Content-Length {header_length!r} is not a length within "
                f"the {len(body)}-byte body"
            )
        header, blob = body[: int(header_length)], body[int(header_length) :]
    try:
        return InferenceRequest.model_validate_json(header), blob
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()
        )
        raise BadRequest(f"the inference request is not valid: {problems}") from exc


def input_images(inference: InferenceRequest, blob: bytes) -> list[bytes]:
    """The encoded images of the request's single BYTES input."""
    if len(inference.inputs) != 1 or inference.inputs[0].name != INPUT_NAME:
        names = ", ".join(repr(i.name) for i in inference.inputs) or "none"
        raise BadRequest(f"send one input named {INPUT_NAME!r} (BYTES); inputs sent: {names}")
    tensor = inference.inputs[0]
    if tensor.datatype != "BYTES":
        raise BadRequest(
            f"input {INPUT_NAME!r} has datatype {tensor.datatype}; it takes BYTES "
            "(the encoded image file)"
        )
    size = tensor.parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(blob):
            raise BadRequest(
                f"binary_data_size {size!r} does not fit the {len(blob)} bytes of tensor data"
            )
        images = deserialize_bytes(blob[:size])
    elif tensor.data is not None:
        images = [
            decode_base64(item, what=f"element {i} of input {INPUT_NAME!r}")
            for i, item in enumerate(_strings(flatten(tensor.data)))
        ]
    else:
        raise BadRequest(f"input {INPUT_NAME!r} has neither data nor binary_data_size")
    expected = math.prod(tensor.shape) if tensor.shape else 1
    if expected != len(images) or any(d < 0 for d in tensor.shape):
        raise BadRequest(
            f"input {INPUT_NAME!r} has shape {tensor.shape} but holds {len(images)} elements"
        )
    if not images:
        raise BadRequest(f"input {INPUT_NAME!r} holds no image")
    return images


def requested_outputs(inference: InferenceRequest) -> list[tuple[int, bool]]:
    """(classification k or 0, binary) for each output to answer, in the order asked."""
    default_binary = inference.parameters.get("binary_data_output") is True
    if not inference.outputs:
        return [(0, default_binary)]
    outputs = []
    for output in inference.outputs:
        if output.name != OUTPUT_NAME:
            raise BadRequest(f"the model has no output {output.name!r}; it has {OUTPUT_NAME!r}")
        k = output.parameters.get("classification", 0)
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise BadRequest(f"classification must be a whole number of classes, not {k!r}")
        binary = output.parameters.get("binary_data", default_binary)
        outputs.append((k, binary is True))
    return outputs


def output_tensor(
    answers: list[ClassifyResponse], classes: int, k: int, binary: bool
) -> tuple[dict[str, Any], bytes | None]:
    """The output tensor (JSON part, binary part or None): probabilities, or the k best."""
    if k:
        rows = [classification_entries(answer, k) for answer in answers]
        shape = [len(answers), len(rows[0])]
        entries = [entry for row in rows for entry in row]
        tensor: dict[str, Any] = {"name": OUTPUT_NAME, "datatype": "BYTES", "shape": shape}
        if binary:
            data = serialize_bytes([e.encode() for e in entries])
            return {**tensor, "parameters": {"binary_data_size": len(data)}}, data
        return {**tensor, "data": entries}, None
    dense = np.zeros((len(answers), classes), dtype="<f4")
    for row, answer in enumerate(answers):
        for prediction in answer.predictions:
            dense[row, prediction.index] = prediction.score
    tensor = {"name": OUTPUT_NAME, "datatype": "FP32", "shape": [len(answers), classes]}
    if binary:
        data = dense.tobytes()
        return {**tensor, "parameters": {"binary_data_size": len(data)}}, data
    return {**tensor, "data": [float(v) for v in dense.ravel()]}, None


def classification_entries(answer: ClassifyResponse, k: int) -> list[str]:
    """The k best of an answer as Triton's `score:index:label` strings."""
    return [f"{p.score:.6f}:{p.index}:{p.label}" for p in answer.predictions[:k]]


def flatten(data: list[Any]) -> list[Any]:
    """Row-major elements of a (possibly nested) JSON tensor."""
    flat: list[Any] = []
    for item in data:
        flat.extend(flatten(item) if isinstance(item, list) else [item])
    return flat


def _strings(items: list[Any]) -> list[str]:
    if not all(isinstance(item, str) for item in items):
        raise BadRequest(f"the elements of input {INPUT_NAME!r} must be base64 strings")
    return items


def serialize_bytes(elements: list[bytes]) -> bytes:
    """BYTES elements in the binary tensor format: each prefixed by its uint32 LE length."""
    return b"".join(_LENGTH_PREFIX.pack(len(e)) + e for e in elements)


def deserialize_bytes(data: bytes) -> list[bytes]:
    """BYTES elements from the binary tensor format."""
    elements, offset = [], 0
    while offset < len(data):
        if offset + _LENGTH_PREFIX.size > len(data):
            raise BadRequest("the binary tensor data ends inside an element's length prefix")
        (length,) = _LENGTH_PREFIX.unpack_from(data, offset)
        offset += _LENGTH_PREFIX.size
        if offset + length > len(data):
            raise BadRequest(
                f"a binary BYTES element says it has {length} bytes; only "
                f"{len(data) - offset} remain"
            )
        elements.append(data[offset : offset + length])
        offset += length
    return elements
