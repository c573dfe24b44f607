"""KServe v2 infer on a segmenter, driven by Triton's `tritonclient[http]` against a real server
process: the class map is the `/segment?mask=png` mask of the same photo, binary and JSON."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import tritonclient.http as triton
from PIL import Image
from tritonclient.utils import InferenceServerException

from edge_server.http.kserve.codec import class_map_encoder, class_map_type

from conftest import DEFAULT_MODEL, ServerProcess, free_port, metric, server_env
from support import variants
from support.reference import SEGMENTER

Photo = Callable[[str], bytes]


class Segmented(NamedTuple):
    """What `/segment?mask=png` answers for a photo."""

    classes: list[dict[str, Any]]
    mask: npt.NDArray[np.uint8]


VOC = "segmentation/voc_2007_000033.jpg"  # 500x366: aeroplanes


@pytest.fixture(scope="module")
def segmenting_server(models_dir: Path, runtime: str) -> Iterator[ServerProcess]:
    """The segmenter (the default) beside the default classifier, in a real server process;
    a 20 MiB decode budget, so a 49 MP photo decodes at reduced scale but its map does not fit."""
    env = server_env(models_dir, runtime, model=f"segmenter,{DEFAULT_MODEL}", decode_memory_mb="20")
    process = ServerProcess(env, free_port())
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(segmenting_server: ServerProcess) -> Iterator[triton.InferenceServerClient]:
    """A Triton HTTP client of the segmenting server."""
    client = triton.InferenceServerClient(
        segmenting_server.url.removeprefix("http://"), network_timeout=120
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def web(segmenting_server: ServerProcess) -> Iterator[httpx.Client]:
    """A plain HTTP client of the segmenting server."""
    with httpx.Client(base_url=segmenting_server.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def segmented(web: httpx.Client, photo: Photo) -> Segmented:
    """`/segment?mask=png` of the photo: its classes and its mask as an array."""
    response = web.post("/segment", params={"mask": "png"}, files={"image": photo(VOC)})
    assert response.status_code == 200, response.text
    answer = response.json()
    mask = Image.open(io.BytesIO(base64.b64decode(answer["mask"]["data"])))
    return Segmented(answer["classes"], np.asarray(mask, dtype=np.uint8))


def _images(*photos: bytes, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("image", [len(photos)], "BYTES")
    values = photos if binary else tuple(base64.b64encode(p) for p in photos)
    tensor.set_data_from_numpy(np.array(values, dtype=np.object_), binary_data=binary)
    return tensor


def _text(entry: bytes | str) -> str:
    return entry.decode() if isinstance(entry, bytes) else entry


def test_metadata_and_model_list_give_the_task(
    client: triton.InferenceServerClient, web: httpx.Client
) -> None:
    """A segmenter's KServe metadata names its task and its two outputs; /v1/models its task."""
    model = client.get_model_metadata(SEGMENTER)
    assert model["parameters"] == {"task": "segmentation"}
    assert model["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert model["outputs"] == [
        {"name": "class_map", "datatype": "UINT8", "shape": [-1, -1, -1]},
        {"name": "classes", "datatype": "BYTES", "shape": [-1, -1]},
    ]
    assert client.get_model_metadata(DEFAULT_MODEL)["parameters"] == {"task": "classification"}
    listed = {m["name"]: m["task"] for m in web.get("/v1/models").json()["models"]}
    assert listed == {SEGMENTER: "segmentation", DEFAULT_MODEL: "classification"}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_the_class_map_is_the_segment_mask(
    client: triton.InferenceServerClient,
    photo: Photo,
    segmented: Segmented,
    binary: bool,
) -> None:
    """class_map is UINT8 [1, H, W] at the photo's full size and equals /segment's mask pixel
    for pixel; classes are /segment's fractions, largest first; in binary tensors and JSON."""
    result = client.infer(
        SEGMENTER,
        [_images(photo(VOC), binary=binary)],
        outputs=[
            triton.InferRequestedOutput("class_map", binary_data=binary),
            triton.InferRequestedOutput("classes", binary_data=binary),
        ],
    )
    class_map = result.as_numpy("class_map")
    mask = segmented.mask
    assert class_map.dtype == np.uint8 and class_map.shape == (1, 366, 500)
    assert np.array_equal(class_map[0], mask)
    assert {int(i) for i in np.unique(class_map)} >= {0, 1}  # background, aeroplane
    # tritonclient gives BYTES as bytes from binary tensors and as str from JSON.
    rows = [_text(entry).split(":") for entry in result.as_numpy("classes")[0]]
    expected = segmented.classes
    assert [(int(index), label) for _, index, label in rows] == [
        (c["index"], c["label"]) for c in expected
    ]
    assert [float(f) for f, _, _ in rows] == pytest.approx(
        [c["fraction"] for c in expected], abs=1e-6
    )
    wire = result.get_response()
    tensor = {o["name"]: o for o in wire["outputs"]}["class_map"]
    assert ("binary_data_size" in tensor.get("parameters", {})) is binary


def test_two_images_of_one_size_make_one_tensor_and_classes_alone_skip_the_map(
    client: triton.InferenceServerClient, photo: Photo, segmented: Segmented
) -> None:
    """Two images of one size: class_map [2, H, W]; asking only for classes answers no map,
    and rows shorter than the longest end in empty strings."""
    both = client.infer(SEGMENTER, [_images(photo(VOC), photo(VOC))])
    assert both.as_numpy("class_map").shape == (2, 366, 500)
    assert np.array_equal(both.as_numpy("class_map")[1], segmented.mask)
    mixed = client.infer(
        SEGMENTER,
        [_images(photo(VOC), photo("grace_hopper.jpg"))],
        outputs=[triton.InferRequestedOutput("classes")],
    )
    assert mixed.as_numpy("class_map") is None
    rows = mixed.as_numpy("classes")
    assert rows.shape[0] == 2
    counts = [sum(1 for entry in row if entry) for row in rows]
    assert max(counts) == rows.shape[1]
    assert all(entry == b"" for row, n in zip(rows, counts, strict=True) for entry in row[n:])


def test_refusals_reach_the_client(client: triton.InferenceServerClient, photo: Photo) -> None:
    """Images of two sizes in one class_map, a centre crop, and an unknown output are 400s
    that say what to do."""
    with pytest.raises(InferenceServerException, match="images of one size") as raised:
        client.infer(SEGMENTER, [_images(photo(VOC), photo("grace_hopper.jpg"))])
    assert str(raised.value.status()) == "400"
    with pytest.raises(InferenceServerException, match="letterbox") as raised:
        client.infer(SEGMENTER, [_images(photo(VOC))], parameters={"resize": "center-crop"})
    assert str(raised.value.status()) == "400"
    with pytest.raises(InferenceServerException, match="class_map, classes"):
        client.infer(
            SEGMENTER,
            [_images(photo(VOC))],
            outputs=[triton.InferRequestedOutput("probabilities")],
        )


def test_a_49_mp_class_map_is_charged_to_the_decode_budget(
    client: triton.InferenceServerClient, web: httpx.Client, photo: Photo
) -> None:
    """A 7000x7000 JPEG's 49 MB class map does not fit a 20 MiB budget: 413 naming it; its
    classes alone build no full-size map and are answered; the budget is all given back."""
    big = variants.upscaled_jpeg(photo("grace_hopper.jpg"), 7000, 7000)
    with pytest.raises(InferenceServerException, match="EDGE_DECODE_MEMORY_MB") as raised:
        client.infer(SEGMENTER, [_images(big)])
    assert str(raised.value.status()) == "413"
    classes = client.infer(
        SEGMENTER, [_images(big)], outputs=[triton.InferRequestedOutput("classes")]
    )
    assert "person" in {_text(e).split(":")[2] for e in classes.as_numpy("classes")[0]}
    text = web.get("/metrics").text
    assert metric(text, "edge_decode_memory_refused_total", reason="too_large") >= 1
    assert metric(text, "edge_decode_memory_used_bytes") == 0


@pytest.mark.parametrize(
    ("classes", "ids", "binary", "expected"),
    [
        (21, np.array([[0, 15]], dtype=np.uint8), True, b"\x00\x0f"),
        (21, np.array([[0, 15]], dtype=np.uint8), False, [0, 15]),
        (21, np.array([[1, 300]], dtype=np.uint16), True, b"\x01\xff"),  # clipped, not 44
        (300, np.array([[1, 2]], dtype=np.uint8), True, b"\x01\x00\x02\x00"),
        (300, np.array([[1, 299]], dtype=np.uint16), False, [1, 299]),
    ],
    ids=["uint8", "uint8 json", "id past a byte", "wide model", "wide json"],
)
def test_a_class_map_has_its_models_type_whatever_its_ids(
    classes: int, ids: npt.NDArray[np.unsignedinteger[Any]], binary: bool, expected: object
) -> None:
    """The tensor type follows the model's label count (UINT8 up to 256, then UINT16, little
    endian), so every image of a model has one type; an id past the type is clipped."""
    encode, _ = class_map_encoder([("class_map", binary)], classes)
    assert encode is not None and encode(ids) == expected
    assert class_map_type(classes)[0] == ("UINT8" if classes <= 256 else "UINT16")
    assert class_map_encoder([("classes", binary)], classes) == (None, 0)
