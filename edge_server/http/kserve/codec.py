"""Pure transforms of KServe v2's wire format: the binary tensor extension, inputs and outputs.

BYTES elements come base64-encoded in JSON `data`, or raw in the binary tensor data extension
(a JSON header of `Inference-Header-Content-Length` bytes followed by the tensors, each BYTES
element prefixed by its 4-byte little-endian length), which is what `tritonclient` sends.
A segmenter's class map is UINT8 (UINT16 past 256 classes), one element a pixel: raw bytes in
the binary extension, a flat list of numbers in JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import ValidationError

from ...core.errors import BadRequest
from ...core.imaging import ResizeMode
from ...core.segmentation import Ids
from ...serving.class_maps import MappedImage
from ...serving.schemas import ClassifyResponse, DetectResponse
from ..deps import parse_resize
from ..upload import decode_base64
from .messages import (
    _LENGTH_PREFIX,
    CLASS_MAP,
    DETECTION_OUTPUTS,
    INPUT_NAME,
    OUTPUT_NAME,
    SEGMENTATION_OUTPUTS,
    InferenceRequest,
)

ClassMapPiece = bytes | list[int]  # one image's map: raw little-endian ids, or JSON's numbers
# What one pixel of an encoded map costs beyond the map itself: its copy as bytes, or a list
# entry (a pointer to a cached small int) and about four characters of JSON text.
BINARY_PIXEL_BYTES, JSON_PIXEL_BYTES = 2, 12


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


def requested_resize(inference: InferenceRequest) -> ResizeMode | None:
    """The request's `parameters.resize` (how its images fit the model), or None: the
    model's own fit; anything but a mode's name is a 400 naming them."""
    resize = inference.parameters.get("resize")
    if resize is None:
        return None
    if not isinstance(resize, str):
        raise BadRequest(f"the resize parameter must be a string, not {type(resize).__name__}")
    return parse_resize(resize)


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


def requested_detection_outputs(inference: InferenceRequest) -> list[tuple[str, bool]]:
    """(name, binary) of each detector output to answer, in the order asked (default: all)."""
    default_binary = inference.parameters.get("binary_data_output") is True
    if not inference.outputs:
        return [(name, default_binary) for name in DETECTION_OUTPUTS]
    outputs = []
    for output in inference.outputs:
        if output.name not in DETECTION_OUTPUTS:
            raise BadRequest(
                f"the model has no output {output.name!r}; it has {', '.join(DETECTION_OUTPUTS)}"
            )
        binary = output.parameters.get("binary_data", default_binary)
        outputs.append((output.name, binary is True))
    return outputs


def detection_tensor(
    answers: list[DetectResponse], rows: int, name: str, binary: bool
) -> tuple[dict[str, Any], bytes | None]:
    """One detector output for every image, padded with zeros to `rows` objects.

    As TensorFlow's detection API names and orders them: boxes (ymin, xmin, ymax, xmax) as
    fractions of the upright image, class ids, scores, and the count of real rows.
    """
    batch = len(answers)
    if name == "num_detections":
        values = np.array([len(a.detections) for a in answers], dtype="<f4")
    elif name == "detection_boxes":
        values = np.zeros((batch, rows, 4), dtype="<f4")
        for i, answer in enumerate(answers):
            for j, d in enumerate(answer.detections):
                box = d.box_normalized
                values[i, j] = (box.y_min, box.x_min, box.y_max, box.x_max)
    else:
        values = np.zeros((batch, rows), dtype="<f4")
        for i, answer in enumerate(answers):
            for j, d in enumerate(answer.detections):
                values[i, j] = d.index if name == "detection_classes" else d.score
    tensor: dict[str, Any] = {"name": name, "datatype": "FP32", "shape": list(values.shape)}
    if binary:
        data = values.tobytes()
        return {**tensor, "parameters": {"binary_data_size": len(data)}}, data
    return {**tensor, "data": [float(v) for v in values.ravel()]}, None


def requested_segmentation_outputs(inference: InferenceRequest) -> list[tuple[str, bool]]:
    """(name, binary) of each segmenter output to answer, in the order asked (default: both)."""
    default_binary = inference.parameters.get("binary_data_output") is True
    if not inference.outputs:
        return [(name, default_binary) for name in SEGMENTATION_OUTPUTS]
    outputs = []
    for output in inference.outputs:
        if output.name not in SEGMENTATION_OUTPUTS:
            raise BadRequest(
                f"the model has no output {output.name!r}; it has {', '.join(SEGMENTATION_OUTPUTS)}"
            )
        binary = output.parameters.get("binary_data", default_binary)
        outputs.append((output.name, binary is True))
    return outputs


def class_map_type(classes: int) -> tuple[str, np.dtype[Any]]:
    """The class map's datatype for a model of `classes` labels, the same for every image
    (a map's own ids may fit a byte when the model's do not): UINT8, or UINT16 past 256."""
    if classes <= 256:
        return "UINT8", np.dtype("<u1")
    return "UINT16", np.dtype("<u2")


def class_map_encoder(
    outputs: list[tuple[str, bool]], classes: int
) -> tuple[Callable[[Ids], ClassMapPiece] | None, int]:
    """How each image's full-size map is encoded for the outputs asked, and what that costs
    a pixel beyond the map (None: no class_map asked for, so no full-size map is built)."""
    kinds = {binary for name, binary in outputs if name == CLASS_MAP}
    if not kinds:
        return None, 0
    _, dtype = class_map_type(classes)
    if kinds == {True}:
        return lambda ids: _typed(ids, dtype).tobytes(), BINARY_PIXEL_BYTES
    return lambda ids: _numbers(_typed(ids, dtype)), JSON_PIXEL_BYTES


def _typed(ids: Ids, dtype: np.dtype[Any]) -> Ids:
    """The ids in the tensor's type (a copy only when the map's own type differs); an id past
    it (a model answering more ids than it has labels) is clipped rather than wrapped round."""
    if ids.dtype == dtype:
        return ids
    if ids.dtype.itemsize < dtype.itemsize:
        wider: Ids = ids.astype(dtype)
        return wider
    narrower: Ids = np.minimum(ids, np.iinfo(dtype).max).astype(dtype)
    return narrower


def _numbers(ids: Ids) -> list[int]:
    numbers: list[int] = ids.ravel().tolist()
    return numbers


def class_map_tensor(
    images: list[MappedImage[ClassMapPiece]], classes: int, binary: bool
) -> tuple[dict[str, Any], bytes | None]:
    """The class ids of every pixel, [N, H, W] at the pictures' full upright size; the images
    of one request must have one size, as a tensor has."""
    sizes = sorted({(image.width, image.height) for image in images})
    if len(sizes) > 1:
        raise BadRequest(
            f"output {CLASS_MAP!r} is one tensor, but the images are "
            + ", ".join(f"{w}x{h}" for w, h in sizes)
            + f"; send images of one size, one image a request, or ask only for "
            f"{SEGMENTATION_OUTPUTS[1]!r}"
        )
    width, height = sizes[0]
    datatype, dtype = class_map_type(classes)
    tensor: dict[str, Any] = {
        "name": CLASS_MAP,
        "datatype": datatype,
        "shape": [len(images), height, width],
    }
    pieces = [image.encoded for image in images]
    if binary:
        data = b"".join(
            piece if isinstance(piece, bytes) else np.asarray(piece, dtype=dtype).tobytes()
            for piece in pieces
            if piece is not None
        )
        return {**tensor, "parameters": {"binary_data_size": len(data)}}, data
    numbers: list[int] = []
    for piece in pieces:
        if piece is not None:
            numbers.extend(piece if isinstance(piece, list) else _from_bytes(piece, dtype))
    return {**tensor, "data": numbers}, None


def _from_bytes(piece: bytes, dtype: np.dtype[Any]) -> list[int]:
    numbers: list[int] = np.frombuffer(piece, dtype=dtype).tolist()
    return numbers


def classes_tensor(
    images: list[MappedImage[ClassMapPiece]], binary: bool
) -> tuple[dict[str, Any], bytes | None]:
    """The classes present in each image as "fraction:index:label" strings, largest first,
    [N, K] with K the most any image has; shorter rows end in empty strings."""
    rows = [[f"{a.fraction:.6f}:{a.index}:{a.label}" for a in image.classes] for image in images]
    width = max(len(row) for row in rows)
    entries = [entry for row in rows for entry in row + [""] * (width - len(row))]
    tensor: dict[str, Any] = {
        "name": SEGMENTATION_OUTPUTS[1],
        "datatype": "BYTES",
        "shape": [len(images), width],
    }
    if binary:
        data = serialize_bytes([e.encode() for e in entries])
        return {**tensor, "parameters": {"binary_data_size": len(data)}}, data
    return {**tensor, "data": entries}, None


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
