"""Learned models over HTTP in process: every surface that serves a model serves them, and
every bad input is refused with a 4xx that leaves the data folder as it was."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from edge_server.app import create_app
from edge_server.config.settings import Settings
from edge_server.core.runtime import RuntimeChoice
from edge_server.serving import journal

from conftest import DETECTOR, SMALL_MODEL, metric
from support.inprocess import in_process

KEY = "learned-inprocess-key-0123456789"
HEADERS = {"X-API-Key": KEY}
TRAIN = {
    "cat": ["cat_train_0"],
    "dog": ["dog_train_0"],
    "hotdog": ["hotdog_train_0", "hotdog_train_1"],
}
Bmp = Callable[[str], bytes]


@pytest.fixture(scope="module")
def bmp(images_dir: Path) -> Bmp:
    """One of Coral's imprinting photos by name."""
    return lambda name: (images_dir / "imprinting" / f"{name}.bmp").read_bytes()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder of the module's app."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def learned(models_dir: Path, runtime: str, data_dir: Path, bmp: Bmp) -> Iterator[httpx.Client]:
    """An app serving the small classifier and the detector, with `pets` taught Coral's
    reference classes; at most 4 classes of 4 examples, imports of at most 200 kB."""
    settings = Settings(
        model=[SMALL_MODEL, DETECTOR],
        models_dir=models_dir,
        runtime=RuntimeChoice(runtime),
        num_threads=1,
        data_dir=data_dir,
        api_key=KEY,
        learned_max_classes=4,
        learned_max_examples=4,
        learned_max_import_bytes=200_000,
    )
    with in_process(create_app(settings)) as client:
        client.headers.update(HEADERS)
        for label, names in TRAIN.items():
            _teach(client, "pets", label, [bmp(n) for n in names])
        yield client


def _teach(client: httpx.Client, model: str, label: str, photos: list[bytes]) -> httpx.Response:
    answer = client.post(
        f"/v1/learned/{model}/examples",
        data={"label": label},
        files=[("image", (f"p{n}.bmp", p)) for n, p in enumerate(photos)],
    )
    assert answer.status_code == 201, answer.text
    return answer


def _top(client: httpx.Client, model: str, photo: bytes) -> str:
    answer = client.post(f"/classify?model={model}", files={"image": ("q", photo)})
    assert answer.status_code == 200, answer.text
    label: str = answer.json()["predictions"][0]["label"]
    return label


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_description_reports_classes_threshold_and_size(learned: httpx.Client) -> None:
    """GET /v1/learned/pets: classes with counts, the embedder, the calibrated threshold and
    its rule, and the file's size."""
    model = learned.get("/v1/learned/pets").json()
    assert [(c["label"], c["examples"]) for c in model["classes"]] == [
        ("cat", 1),
        ("dog", 1),
        ("hotdog", 2),
    ]
    assert model["embedder"] == "mobilenet_v1_1.0_224_quant_embedding_extractor"
    assert model["status"] == "ready" and model["threshold_rule"].startswith("midpoint")
    assert model["size_bytes"] > 4 * 1024  # four embeddings of 1 KiB and their thumbnails
    assert [m["name"] for m in learned.get("/v1/learned").json()["models"]] == ["pets"]


def test_the_next_request_after_a_201_uses_the_new_example(learned: httpx.Client, bmp: Bmp) -> None:
    """Learning is live: the classify right after a 201 answers with that version (sha256),
    and the new class is among its labels."""
    added = _teach(learned, "live", "cat", [bmp("cat_train_0")]).json()
    more = _teach(learned, "live", "dog", [bmp("dog_train_0")]).json()
    assert more["sha256"] != added["sha256"]
    answer = learned.post("/classify?model=live", files={"image": ("d", bmp("dog_test_0"))}).json()
    assert answer["model"]["sha256"] == more["sha256"]
    assert answer["predictions"][0]["label"] == "dog"
    assert learned.delete("/v1/learned/live").status_code == 204


def test_every_surface_serves_the_learned_model(
    learned: httpx.Client, bmp: Bmp, images_dir: Path
) -> None:
    """Batch, KServe v2, DeepStack's custom route and /v1/models answer with `pets` as
    /classify does."""
    cat, dog = bmp("cat_test_0"), bmp("dog_test_0")
    batch = learned.post(
        "/classify/batch?model=pets", files=[("images", ("c", cat)), ("images", ("d", dog))]
    ).json()
    assert [i["result"]["predictions"][0]["label"] for i in batch["items"]] == ["cat", "dog"]
    request = {
        "inputs": [
            {
                "name": "image",
                "shape": [1],
                "datatype": "BYTES",
                "data": [base64.b64encode(cat).decode()],
            }
        ],
        "outputs": [{"name": "probabilities"}],
    }
    answer = learned.post("/v2/models/pets/infer", json=request).json()
    (dense,) = answer["outputs"]
    assert dense["shape"] == [1, 4]  # unknown, cat, dog, hotdog
    assert max(range(4), key=lambda i: dense["data"][i]) == 1
    custom = learned.post("/v1/vision/custom/pets", files={"image": ("d", dog)}).json()
    assert custom["success"] is True and custom["predictions"][0]["label"] == "dog"
    served = {m["name"]: m for m in learned.get("/v1/models").json()["models"]}
    assert served["pets"]["task"] == "classification" and served["pets"]["labels"] == 4
    portrait = (images_dir / "grace_hopper.jpg").read_bytes()
    assert _top(learned, "pets", portrait) == "unknown"


def test_detect_adds_a_learned_sub_label_to_each_object(
    learned: httpx.Client, images_dir: Path
) -> None:
    """/detect?classify=pets on a photo of a cat: the detector's cat gets sub label cat."""
    answer = learned.post(
        "/detect?classify=pets", files={"image": ("c", (images_dir / "chelsea.png").read_bytes())}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["classifier"]["name"] == "pets"
    (cat,) = [d for d in body["detections"] if d["label"] == "cat"]
    assert cat["sub_label"] == "cat" and 0.5 < cat["sub_score"] <= 1.0
    plain = learned.post(
        "/detect", files={"image": ("c", (images_dir / "chelsea.png").read_bytes())}
    )
    assert "sub_label" not in plain.json()["detections"][0]
    unknown = learned.post("/detect?classify=nope", files={"image": ("c", b"x")})
    assert unknown.status_code == 404


def test_threshold_set_per_model_and_calibrated_again(learned: httpx.Client, bmp: Bmp) -> None:
    """A threshold of 0.95 makes the cat test photo unknown; null calibrates it again."""
    changed = learned.patch("/v1/learned/pets", json={"threshold": 0.95}).json()
    assert changed["threshold"] == 0.95 and changed["threshold_set"] is True
    assert _top(learned, "pets", bmp("cat_test_0")) == "unknown"
    back = learned.patch("/v1/learned/pets", json={"threshold": None}).json()
    assert back["threshold_set"] is False and back["threshold"] < 0.61
    assert _top(learned, "pets", bmp("cat_test_0")) == "cat"
    assert learned.patch("/v1/learned/pets", json={"threshold": 2}).status_code == 422


def test_export_then_import_on_a_fresh_folder_answers_the_same(
    learned: httpx.Client,
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    bmp: Bmp,
    images_dir: Path,
) -> None:
    """An export imported into another app's empty data folder gives the same scores."""
    export = learned.get("/v1/learned/pets/export")
    assert export.status_code == 200
    assert export.headers["content-disposition"] == 'attachment; filename="pets.learned"'
    photos = [bmp("cat_test_0"), bmp("hotdog_test_0"), (images_dir / "parrot.jpg").read_bytes()]

    def scores(client: httpx.Client, model: str) -> list[list[tuple[str, float]]]:
        return [
            [
                (p["label"], round(p["score"], 5))
                for p in client.post(
                    f"/classify?model={model}", files={"image": ("q", photo)}
                ).json()["predictions"]
            ]
            for photo in photos
        ]

    settings = settings_for(SMALL_MODEL, data_dir=tmp_path, api_key=KEY)
    with in_process(create_app(settings)) as fresh:
        fresh.headers.update(HEADERS)
        imported = fresh.put("/v1/learned/ours", content=export.content)
        assert imported.status_code == 201, imported.text
        assert scores(fresh, "ours") == scores(learned, "pets")
        again = fresh.put("/v1/learned/ours", content=export.content)
        assert again.status_code == 200  # replaced


def test_deleting_a_class_and_a_model(learned: httpx.Client, bmp: Bmp) -> None:
    """A deleted class is gone from the next answer; a deleted model is 404 and its file gone."""
    _teach(learned, "scratch", "cat", [bmp("cat_train_0")])
    _teach(learned, "scratch", "dog", [bmp("dog_train_0")])
    after = learned.delete("/v1/learned/scratch/classes/dog").json()
    assert [c["label"] for c in after["classes"]] == ["cat"]
    labels = learned.post("/classify?model=scratch", files={"image": ("d", bmp("dog_test_0"))})
    assert {p["label"] for p in labels.json()["predictions"]} == {"cat", "unknown"}
    assert learned.delete("/v1/learned/scratch/classes/dog").status_code == 404
    assert learned.delete("/v1/learned/scratch").status_code == 204
    assert learned.post("/classify?model=scratch", files={"image": ("d", b"x")}).status_code == 404
    assert learned.get("/v1/learned/scratch").status_code == 404
    unload = learned.post("/v2/repository/models/pets/unload")
    assert unload.status_code == 409


def _reheaded_export(learned: httpx.Client, **changes: object) -> bytes:
    """pets' export with these header fields changed (its records as they are)."""
    lines = learned.get("/v1/learned/pets/export").content.splitlines(keepends=True)
    checksum_and_space = 17
    header = json.loads(lines[0][checksum_and_space:])
    return journal.encode({**header, **changes}) + b"".join(lines[1:])


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("journal.learned", b"\0" * (64 * 1024 * 1024))  # 64 kB zipped
    return out.getvalue()


BAD_REQUESTS: dict[str, tuple[str, str, dict[str, object]]] = {
    "not an image": (
        "POST",
        "/v1/learned/pets/examples",
        {"label": "cat", "photo": b"not a photo"},
    ),
    "empty label": ("POST", "/v1/learned/pets/examples", {"label": "  ", "photo": "cat_test_0"}),
    "label of 500 characters": (
        "POST",
        "/v1/learned/pets/examples",
        {"label": "c" * 500, "photo": "cat_test_0"},
    ),
    "label with a slash": (
        "POST",
        "/v1/learned/pets/examples",
        {"label": "a/b", "photo": "cat_test_0"},
    ),
    "label unknown": (
        "POST",
        "/v1/learned/pets/examples",
        {"label": "Unknown", "photo": "cat_test_0"},
    ),
    "no label": ("POST", "/v1/learned/pets/examples", {"photo": "cat_test_0"}),
    "class past the limit": (
        "POST",
        "/v1/learned/pets/examples",
        {"label": "fifth", "photo": "cat_test_0", "fill": True},
    ),
    "examples past the limit": (
        "POST",
        "/v1/learned/pets/examples",
        {"label": "hotdog", "photo": "hotdog_test_0", "copies": 3},
    ),
    "name with dots": (
        "POST",
        "/v1/learned/..pets/examples",
        {"label": "cat", "photo": "cat_test_0"},
    ),
    "name with an encoded slash": (
        "POST",
        "/v1/learned/a%2Fb/examples",
        {"label": "cat", "photo": "cat_test_0"},
    ),
    "name of a served model": (
        "POST",
        f"/v1/learned/{SMALL_MODEL}/examples",
        {"label": "cat", "photo": "cat_test_0"},
    ),
    "import of text": ("PUT", "/v1/learned/other", {"body": b"hello, not an export\n"}),
    "import of a zip bomb": ("PUT", "/v1/learned/other", {"body": "bomb"}),
    "import over the size limit": ("PUT", "/v1/learned/other", {"body": b"x" * 300_000}),
    "import of deeply nested JSON": ("PUT", "/v1/learned/other", {"body": "nested"}),
    "import of embeddings of another shape": ("PUT", "/v1/learned/other", {"body": "reshaped"}),
    "import of a damaged export": ("PUT", "/v1/learned/pets", {"body": "damaged"}),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_is_a_4xx_and_changes_nothing(
    learned: httpx.Client, data_dir: Path, bmp: Bmp, case: str
) -> None:
    """Each bad example, label, name or import file: a 4xx that says why, a refusal counted,
    and the data folder byte for byte as before."""
    method, path, spec = BAD_REQUESTS[case]
    full = len(learned.get("/v1/learned/pets").json()["classes"]) >= 4
    if spec.get("fill") and not full:  # the model at its class limit first (4)
        _teach(learned, "pets", "fourth", [bmp("dog_test_0")])
    before = _files(data_dir)
    metrics_before = learned.get("/metrics").text
    if method == "POST":
        photo = spec["photo"]
        data = photo if isinstance(photo, bytes) else bmp(str(photo))
        form = {"label": spec["label"]} if "label" in spec else {}
        copies = int(str(spec.get("copies", 1)))
        answer = learned.post(path, data=form, files=[("image", ("p", data))] * copies)
    else:
        body = spec["body"]
        if body == "bomb":
            body = _zip_bomb()
        elif body == "nested":
            good = learned.get("/v1/learned/pets/export").content
            header = good.split(b"\n")[0] + b"\n"
            nested = b"[" * 100_000
            body = header + hashlib.sha256(nested).hexdigest()[:16].encode() + b" " + nested + b"\n"
        elif body == "reshaped":  # 1024 bytes a row either way: 256 float32 instead of uint8
            body = _reheaded_export(learned, dim=256, dtype="float32")
        elif body == "damaged":
            good = learned.get("/v1/learned/pets/export").content
            body = good[: len(good) // 2] + b"Z" + good[len(good) // 2 + 1 :]
        assert isinstance(body, bytes)
        answer = learned.put(path, content=body)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["detail"]
    if spec.get("body") == "bomb":  # refused for what it is, never unpacked
        assert answer.status_code == 400 and "zip" in answer.json()["detail"]
    if spec.get("body") == "nested":  # refused before json would recurse into it
        assert answer.status_code == 400 and "not a record" in answer.json()["detail"]
    if spec.get("body") == "reshaped":  # the header's shape checked against the embedder's
        assert answer.status_code == 409 and "256 x float32" in answer.json()["detail"]
    assert _files(data_dir) == before
    refused = sum(
        metric(learned.get("/metrics").text, "edge_learned_refused_total", reason=r)
        - metric(metrics_before, "edge_learned_refused_total", reason=r)
        for r in ("bad_name", "bad_label", "limit", "bad_image", "bad_file", "unusable")
    )
    assert refused == 1 or answer.status_code == 404  # an unroutable path never reaches us


def test_changes_need_a_configured_key(
    settings_for: Callable[..., Settings], tmp_path: Path, bmp: Bmp
) -> None:
    """No key configured: teaching is 403 (as model load); a wrong key is 401; without a
    data folder learning is off (409) and says how to turn it on."""
    with in_process(create_app(settings_for(SMALL_MODEL, data_dir=tmp_path))) as open_app:
        refused = open_app.post(
            "/v1/learned/pets/examples",
            data={"label": "cat"},
            files={"image": ("c", bmp("cat_train_0"))},
        )
        assert refused.status_code == 403 and "EDGE_API_KEY" in refused.json()["detail"]
        assert open_app.get("/v1/learned").json() == {"models": []}
    assert [p.name for p in (tmp_path / "learned").iterdir()] == [".lock"]  # nothing stored
    with in_process(create_app(settings_for(SMALL_MODEL, api_key=KEY))) as keyed:
        wrong = keyed.get("/v1/learned", headers={"X-API-Key": "x" * 20})
        assert wrong.status_code == 401
        off = keyed.get("/v1/learned", headers=HEADERS)
        assert off.status_code == 409 and "EDGE_DATA_DIR" in off.json()["detail"]


def test_a_wrong_method_names_every_method_of_the_path(learned: httpx.Client) -> None:
    """POST to /v1/learned/NAME: 405 whose Allow lists GET, PATCH, PUT and DELETE, the four
    routes of that path, not only the first one's."""
    answer = learned.post("/v1/learned/pets")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "DELETE, GET, PATCH, PUT"


def test_exports_need_a_configured_key(
    settings_for: Callable[..., Settings], tmp_path: Path, bmp: Bmp
) -> None:
    """Without keys configured an export is refused (403): it holds a thumbnail of every
    photo taught; listing still works."""
    settings = settings_for(SMALL_MODEL, data_dir=tmp_path)
    with in_process(create_app(settings)) as open_app:
        assert open_app.get("/v1/learned/any/export").status_code == 403
        assert open_app.get("/v1/learned").status_code == 200


def test_an_export_from_another_embedding_model_is_embedded_anew(
    learned: httpx.Client, bmp: Bmp
) -> None:
    """An export whose header names another embedding model (and another embedding shape):
    its thumbnails go through this one, and the imported model still knows the cat."""
    export = _reheaded_export(
        learned, embedder="another", embedder_sha256="0" * 64, dim=256, dtype="float32"
    )
    imported = learned.put("/v1/learned/anew", content=export)
    assert imported.status_code == 201, imported.text
    model = imported.json()
    assert model["embedder"] == "mobilenet_v1_1.0_224_quant_embedding_extractor"
    assert [(c["label"], c["examples"]) for c in model["classes"]][:3] == [
        ("cat", 1),
        ("dog", 1),
        ("hotdog", 2),
    ]
    assert _top(learned, "anew", bmp("cat_test_0")) == "cat"
    assert learned.delete("/v1/learned/anew").status_code == 204


def test_a_served_model_keeps_its_name_over_a_learned_one(
    models_dir: Path, runtime: str, tmp_path: Path, bmp: Bmp
) -> None:
    """A learned `doorbell`, then a models config that serves a model named doorbell: after
    the restart the configured model answers to the name and the learned one is unusable."""

    def settings(**values: object) -> Settings:
        common: dict[str, object] = {
            "models_dir": models_dir,
            "runtime": RuntimeChoice(runtime),
            "num_threads": 1,
            "data_dir": tmp_path / "data",
            "api_key": KEY,
        }
        return Settings(**common, **values)  # type: ignore[arg-type]  # checked by pydantic

    with in_process(create_app(settings(model=[SMALL_MODEL]))) as first:
        first.headers.update(HEADERS)
        _teach(first, "doorbell", "cat", [bmp("cat_train_0")])
    config = tmp_path / "models.toml"
    config.write_text('[models.doorbell]\nmodel = "tiny"\n')
    with in_process(create_app(settings(models_config=config))) as second:
        second.headers.update(HEADERS)
        (learned,) = second.get("/v1/learned").json()["models"]
        assert learned["status"] == "unusable" and "served" in learned["problem"]
        served = second.get("/v1/models/doorbell").json()
        assert served["labels"] == 1001  # the configured classifier, not the learned classes
