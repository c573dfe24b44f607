"""A subset of the KServe v2 / Open Inference Protocol (REST), as Triton's clients speak it.

The model takes encoded images (input `image`, datatype BYTES, one element per image) and
answers class probabilities (output `probabilities`, FP32 [N, classes]); a detector answers
TensorFlow's four detection outputs, and a segmenter the class id of every pixel of the
upright picture (`class_map`, UINT8 [N, H, W]) and the classes present (`classes`, BYTES
"fraction:index:label" rows). BYTES elements come
base64-encoded in JSON `data`, or raw in the binary tensor data extension (a JSON header of
`Inference-Header-Content-Length` bytes followed by the tensors, each BYTES element prefixed
by its 4-byte little-endian length) - what `tritonclient` sends by default. The classification
extension (`"classification": k` in an output's parameters) answers the k best as
`"score:index:label"` strings. The request's `"resize"` parameter fits its images another way
than the model's own (as `/classify?resize=`). Errors are `{"error": "..."}`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request, Response

from ... import __version__
from ...core.detection import Task
from ...core.engine import Engine
from ...core.errors import NotFound, TooLarge, UnsupportedMediaType
from ...core.imaging import ResizeMode
from ...serving import class_maps, segmenting
from ...serving.schemas import ClassifyResponse
from ...serving.service import Service
from ..deps import Authorized, ServiceDep
from ..dialect import error_dialect
from ..exchange import exchange
from ..upload import read_body
from .codec import (
    class_map_encoder,
    class_map_tensor,
    class_map_type,
    classes_tensor,
    detection_tensor,
    input_images,
    output_tensor,
    requested_detection_outputs,
    requested_outputs,
    requested_resize,
    requested_segmentation_outputs,
    split_body,
)
from .messages import (
    CLASS_MAP,
    CLASSES,
    EXTENSIONS,
    HEADER_LENGTH,
    INPUT_NAME,
    MODEL_VERSION,
    OUTPUT_NAME,
    PLATFORM,
    ErrorAnswer,
    InferenceRequest,
    ModelMetadata,
    ServerMetadata,
    TensorMetadata,
    render_error,
)

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
    service.ready_model()
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
    engine = _model(service, name, version)
    if engine.info.task is Task.detection:
        rows = service.settings.max_detections
        shapes = {
            "detection_boxes": [-1, rows, 4],
            "detection_classes": [-1, rows],
            "detection_scores": [-1, rows],
            "num_detections": [-1],
        }
        outputs = [TensorMetadata(name=n, datatype="FP32", shape=shapes[n]) for n in shapes]
    elif engine.info.task is Task.segmentation:
        # Each image's map is at its own full size: the height and width vary.
        ids, _ = class_map_type(len(engine.info.labels))
        outputs = [
            TensorMetadata(name=CLASS_MAP, datatype=ids, shape=[-1, -1, -1]),
            TensorMetadata(name=CLASSES, datatype="BYTES", shape=[-1, -1]),
        ]
    else:
        classes = len(engine.info.labels)
        outputs = [TensorMetadata(name=OUTPUT_NAME, datatype="FP32", shape=[-1, classes])]
    return ModelMetadata(
        name=engine.info.name,
        versions=[MODEL_VERSION],
        platform=PLATFORM,
        inputs=[TensorMetadata(name=INPUT_NAME, datatype="BYTES", shape=[-1])],
        outputs=outputs,
        parameters={"task": engine.info.task.value},
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
    """Classify, detect objects in or segment the encoded images of the BYTES input `image`."""
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

    async def detect(upload: tuple[InferenceRequest, list[bytes]]) -> Response:
        inference, images = upload
        wanted = requested_detection_outputs(inference)
        resize = requested_resize(inference)
        rows = settings.max_detections
        answers = await asyncio.gather(
            *(
                service.detect(
                    image,
                    min_score=settings.min_score,
                    max_results=rows,
                    started=request.state.request_started,
                    model=classifier.info.name,
                    resize=resize,
                )
                for image in images
            )
        )
        tensors = [detection_tensor(answers, rows, n, binary) for n, binary in wanted]
        return _encoded(classifier, inference, tensors)

    async def run(upload: tuple[InferenceRequest, list[bytes]]) -> Response:
        inference, images = upload
        outputs = requested_outputs(inference)
        resize = requested_resize(inference)
        # The model as it is now, for every image: a learned model may have gained or lost a
        # class since the request came in, and its tensor must match the answers.
        async with service.models.lease(classifier.info.name) as current:
            classes = len(current.info.labels)
            # Dense probabilities need every class ranked; classification outputs its k best.
            top_k = (
                classes
                if any(k == 0 for k, _ in outputs)
                else min(max(k for k, _ in outputs), classes)
            )
            answers = await asyncio.gather(
                *(_classify(service, request, image, top_k, current, resize) for image in images)
            )
        return _response(current, inference, answers, classes, outputs)

    async def segment(upload: tuple[InferenceRequest, list[bytes]]) -> Response:
        inference, images = upload
        wanted = requested_segmentation_outputs(inference)
        resize = requested_resize(inference)
        segmenting.check_fit(resize)
        # One version of the model for every image, as for a classifier.
        async with service.models.lease(classifier.info.name) as current:
            classes = len(current.info.labels)
            encode, pixel_cost = class_map_encoder(wanted, classes)
            reader = class_maps.mapped(encode, pixel_cost)
            answers = await asyncio.gather(
                *(
                    service.answer(
                        Task.segmentation,
                        image,
                        reader,
                        started=request.state.request_started,
                        resize=resize,
                        engine=current,
                    )
                    for image in images
                )
            )
        tensors = [
            class_map_tensor(answers, classes, binary)
            if name == CLASS_MAP
            else classes_tensor(answers, binary)
            for name, binary in wanted
        ]
        return _encoded(current, inference, tensors)

    # One admission place, deadline and disconnect watch for the whole request.
    if classifier.info.task is Task.detection:
        return await exchange(service, request, read, detect)
    if classifier.info.task is Task.segmentation:
        return await exchange(service, request, read, segment)
    return await exchange(service, request, read, run)


def _response(
    classifier: Engine,
    inference: InferenceRequest,
    answers: list[ClassifyResponse],
    classes: int,
    outputs: list[tuple[int, bool]],
) -> Response:
    tensors = [output_tensor(answers, classes, k, binary) for k, binary in outputs]
    return _encoded(classifier, inference, tensors)


def _encoded(
    classifier: Engine,
    inference: InferenceRequest,
    tensors: list[tuple[dict[str, Any], bytes | None]],
) -> Response:
    """The infer answer: JSON, or JSON then the binary tensors (Triton's binary extension)."""
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


def _model(service: Service, name: str, version: str) -> Engine:
    classifier = service.ready_model(name)
    if version not in ("", MODEL_VERSION):
        raise NotFound(
            f"model {classifier.info.name!r} has no version {version!r}; it has {MODEL_VERSION!r}"
        )
    return classifier


async def _classify(
    service: Service,
    request: Request,
    image: bytes,
    k: int,
    engine: Engine,
    resize: ResizeMode | None,
) -> ClassifyResponse:
    return await service.classify(
        image,
        top_k=k,
        threshold=0.0,
        started=request.state.request_started,
        engine=engine,
        resize=resize,
    )
