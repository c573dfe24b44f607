"""Learned models in a real server process: Coral's reference over HTTP, restarts, SIGKILLs
mid-teaching, a damaged file, and classifying while examples are added."""

from __future__ import annotations

import base64
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from deepstack.core import DeepstackObject

from edge_server.client import Client

from conftest import SMALL_MODEL, ServerProcess, free_port, metric, server_env
from support.waiting import HANG, until

KEY = "learned-test-key-0123456789"
HEADERS = {"X-API-Key": KEY}
TRAIN = {
    "cat": ["cat_train_0"],
    "dog": ["dog_train_0"],
    "hotdog": ["hotdog_train_0", "hotdog_train_1"],
}


@pytest.fixture
def start(models_dir: Path, runtime: str) -> Iterator[Callable[[Path], ServerProcess]]:
    """Start servers on a data folder (the small classifier as default); all stopped after."""
    started: list[ServerProcess] = []

    def run(data_dir: Path) -> ServerProcess:
        process = ServerProcess(
            server_env(
                models_dir,
                runtime,
                model=SMALL_MODEL,
                data_dir=str(data_dir),
                api_key=KEY,
                log_level="info",
            ),
            free_port(),
        )
        started.append(process)
        process.wait_ready()
        return process

    yield run
    for process in started:
        process.stop()


def _bmp(images_dir: Path, name: str) -> bytes:
    return (images_dir / "imprinting" / f"{name}.bmp").read_bytes()


def _post_example(url: str, model: str, label: str, photo: bytes) -> httpx.Response:
    """One example POSTed as the page does, whatever the answer (Client raises on refusals)."""
    return httpx.post(
        f"{url}/v1/learned/{model}/examples",
        headers=HEADERS,
        data={"label": label},
        files=[("image", ("photo.bmp", photo))],
        timeout=60,
    )


def _teach_reference(client: Client, images_dir: Path, model: str = "pets") -> None:
    for label, names in TRAIN.items():
        client.learn(model, label, [_bmp(images_dir, n) for n in names])


def test_corals_reference_through_the_http_api(
    start: Callable[[Path], ServerProcess], tmp_path: Path, images_dir: Path
) -> None:
    """Cat, dog and hotdog learned from the train photos: each test photo is its class, a
    portrait of Grace Hopper is `unknown`, and the same after a restart."""
    server = start(tmp_path)
    client = Client(server.url, api_key=KEY)
    _teach_reference(client, images_dir)

    def answers() -> dict[str, str]:
        found = {
            label: client.classify(_bmp(images_dir, f"{label}_test_0"), model="pets")
            .predictions[0]
            .label
            for label in TRAIN
        }
        portrait = (images_dir / "grace_hopper.jpg").read_bytes()
        found["grace_hopper"] = client.classify(portrait, model="pets").predictions[0].label
        return found

    expected = {"cat": "cat", "dog": "dog", "hotdog": "hotdog", "grace_hopper": "unknown"}
    assert answers() == expected
    # Home Assistant's DeepStack component, with the learned model as its custom model.
    address = urllib.parse.urlsplit(server.url)
    deepstack = DeepstackObject(
        ip=address.hostname, port=address.port, api_key=KEY, timeout=60, custom_model="pets"
    )
    assert deepstack.detect(_bmp(images_dir, "dog_test_0"))[0]["label"] == "dog"
    (model,) = client.learned().models
    assert model.examples == 4 and model.threshold is not None
    assert 0.49 < model.threshold < 0.61
    server.stop()
    server = start(tmp_path)
    client = Client(server.url, api_key=KEY)
    assert answers() == expected
    assert client.learned().models[0].sha256 == model.sha256


def test_every_acknowledged_example_survives_sigkill(
    start: Callable[[Path], ServerProcess], tmp_path: Path, images_dir: Path
) -> None:
    """Killed at random moments while a client keeps teaching: each restart serves every
    example that got a 201 (and at most the one in flight besides)."""
    photos = [_bmp(images_dir, n) for names in TRAIN.values() for n in names]
    acknowledged: dict[str, int] = {}
    rng = random.Random(19)  # noqa: S311  # when to kill, not a secret
    for round_ in range(3):
        server = start(tmp_path)
        # What the server holds after the restart: every example acknowledged before.
        held = _counts(server.url)
        for label, count in acknowledged.items():
            assert count <= held.get(label, 0) <= count + 1, (round_, label, held)
        acknowledged = dict(held)
        stop, first = threading.Event(), threading.Event()

        def teach(
            url: str = server.url,
            stop: threading.Event = stop,
            first: threading.Event = first,
            acknowledged: dict[str, int] = acknowledged,
        ) -> None:
            with httpx.Client(base_url=url, headers=HEADERS, timeout=HANG) as http:
                n = 0
                while not stop.is_set():
                    label = ("cat", "dog", "hotdog")[n % 3]
                    try:
                        answer = http.post(
                            "/v1/learned/pets/examples",
                            data={"label": label},
                            files=[("image", ("p.bmp", photos[n % len(photos)]))],
                        )
                    except httpx.TransportError:
                        return  # killed mid-request: not acknowledged
                    assert answer.status_code == 201, answer.text
                    for item in answer.json()["classes"]:
                        acknowledged[item["label"]] = item["examples"]
                    first.set()
                    n += 1

        worker = threading.Thread(target=teach)
        worker.start()
        # A random moment once teaching runs (the first add loads the embedding model; under
        # tflite-runtime an add takes a few hundred ms).
        assert first.wait(timeout=60)
        time.sleep(rng.uniform(0.05, 1.5))
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        stop.set()
        worker.join(timeout=20)
        assert sum(acknowledged.values()) > 0
    server = start(tmp_path)
    held = _counts(server.url)
    for label, count in acknowledged.items():
        assert count <= held.get(label, 0) <= count + 1, (label, held, acknowledged)


def _counts(url: str) -> dict[str, int]:
    answer = httpx.get(url + "/v1/learned", headers=HEADERS, timeout=HANG)
    assert answer.status_code == 200, answer.text
    models = answer.json()["models"]
    if not models:
        return {}
    (model,) = models
    assert model["status"] == "ready", model
    return {item["label"]: item["examples"] for item in model["classes"]}


def test_a_damaged_file_is_refused_while_the_others_serve(
    start: Callable[[Path], ServerProcess], tmp_path: Path, images_dir: Path
) -> None:
    """One model's file damaged on disk: a clear log line, `unusable` with the reason in
    GET /v1/learned and the metrics, 409 to teach it, and the other model still answers."""
    server = start(tmp_path)
    client = Client(server.url, api_key=KEY)
    _teach_reference(client, images_dir, "pets")
    _teach_reference(client, images_dir, "spare")
    server.stop()
    damaged = tmp_path / "learned" / "pets.learned"
    data = bytearray(damaged.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = b"XXXXXXXX"
    damaged.write_bytes(bytes(data))
    server = start(tmp_path)
    client = Client(server.url, api_key=KEY)
    listing = httpx.get(server.url + "/v1/learned", headers=HEADERS).json()["models"]
    status = {m["name"]: (m["status"], m["problem"] or "") for m in listing}
    assert status["spare"] == ("ready", "")
    assert status["pets"][0] == "unusable" and "checksum" in status["pets"][1]
    answer = client.classify(_bmp(images_dir, "cat_test_0"), model="spare")
    assert answer.predictions[0].label == "cat"
    refused = _post_example(server.url, "pets", "cat", _bmp(images_dir, "cat_test_0"))
    assert refused.status_code == 409 and "not usable" in refused.json()["detail"]
    assert damaged.read_bytes() == bytes(data)  # refused: not touched
    text = httpx.get(server.url + "/metrics").text
    assert metric(text, "edge_learned_models", status="unusable") == 1
    assert metric(text, "edge_learned_refused_total", reason="unusable") == 1
    server.stop()
    assert "learned model pets is not served" in server.log and "checksum" in server.log


def test_eight_clients_see_the_model_before_or_after_each_add(
    start: Callable[[Path], ServerProcess], tmp_path: Path, images_dir: Path
) -> None:
    """Examples and new classes added while 8 clients classify with the same model (6 over
    /classify, 2 over KServe, two images a request): no 5xx, every version answers, every
    answer's classes are exactly those of the version (sha256) that gave it, and KServe's
    tensor one version's."""
    server = start(tmp_path)
    client = Client(server.url, api_key=KEY)
    client.learn("pets", "cat", [_bmp(images_dir, "cat_train_0")])
    first = client.learned().models[0]
    versions = {first.sha256: {c.label for c in first.classes}}
    answers: list[tuple[int, str, set[str]]] = []
    stop = threading.Event()
    query = (images_dir / "grace_hopper.jpg").read_bytes()

    def classify() -> None:
        with httpx.Client(base_url=server.url, headers=HEADERS, timeout=HANG) as http:
            while not stop.is_set():
                answer = http.post(
                    "/classify?model=pets&top_k=100", files={"image": ("q.jpg", query)}
                )
                body = answer.json()
                labels = (
                    {p["label"] for p in body["predictions"]} - {"unknown"}
                    if answer.status_code == 200
                    else set()
                )
                answers.append((answer.status_code, body.get("model", {}).get("sha256"), labels))

    kserve: list[tuple[int, int]] = []  # (status, classes in the dense output)
    request = {
        "inputs": [
            {
                "name": "image",
                "shape": [2],
                "datatype": "BYTES",
                "data": [base64.b64encode(query).decode()] * 2,
            }
        ],
        "outputs": [{"name": "probabilities"}],
    }

    def infer() -> None:  # KServe's dense output must match the version that answered
        with httpx.Client(base_url=server.url, headers=HEADERS, timeout=HANG) as http:
            while not stop.is_set():
                answer = http.post("/v2/models/pets/infer", json=request)
                shape = answer.json()["outputs"][0]["shape"] if answer.status_code == 200 else []
                kserve.append((answer.status_code, shape[1] if shape else 0))

    def served(sha: str | None) -> None:
        """Until /classify has answered from version `sha` and KServe once more."""
        asked = len(kserve)

        def seen() -> bool:
            assert all(worker.is_alive() for worker in workers), "a client thread stopped"
            return len(kserve) > asked and any(s == sha for _, s, _ in answers)

        until(seen, f"answers from version {sha}")

    workers = [threading.Thread(target=classify) for _ in range(6)]
    workers += [threading.Thread(target=infer) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        served(first.sha256)
        teaching = [
            ("dog", "dog_train_0"),
            ("hotdog", "hotdog_train_0"),
            ("hotdog", "hotdog_train_1"),
            ("cat", "cat_test_0"),
            ("dog", "dog_test_0"),
            ("bun", "hotdog_test_0"),
        ]
        for label, name in teaching:
            added = client.learn("pets", label, [_bmp(images_dir, name)])
            assert added.sha256 is not None
            versions[added.sha256] = {c.label for c in added.classes}
            served(added.sha256)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert {status for status, _, _ in answers} == {200}
    assert {status for status, _ in kserve} == {200}
    assert {classes - 1 for _, classes in kserve} <= {len(v) for v in versions.values()}
    for _, sha, labels in answers:
        assert sha in versions and labels == versions[sha]
    assert {sha for _, sha, _ in answers} == set(versions)  # each version answered


def test_a_missing_embedding_model_leaves_the_rest_serving(
    start: Callable[[Path], ServerProcess],
    tmp_path: Path,
    images_dir: Path,
    models_dir: Path,
    runtime: str,
) -> None:
    """Learned models stored but no embedding model beside the others: the server starts,
    they are `unusable` saying how to fix it, teaching is a 503, the classifier serves."""
    data = tmp_path / "data"
    server = start(data)
    client = Client(server.url, api_key=KEY)
    client.learn("pets", "cat", [_bmp(images_dir, "cat_train_0")])
    server.stop()
    only_small = tmp_path / "models"
    only_small.mkdir()
    (only_small / f"{SMALL_MODEL}.tflite").symlink_to(models_dir / f"{SMALL_MODEL}.tflite")
    process = ServerProcess(
        server_env(only_small, runtime, model=SMALL_MODEL, data_dir=str(data), api_key=KEY),
        free_port(),
    )
    try:
        process.wait_ready()
        (model,) = httpx.get(process.url + "/v1/learned", headers=HEADERS).json()["models"]
        assert model["status"] == "unusable" and "models pull" in model["problem"]
        taught = _post_example(process.url, "pets", "dog", _bmp(images_dir, "dog_train_0"))
        assert taught.status_code == 409 and "not usable" in taught.json()["detail"]
        fresh = _post_example(process.url, "other", "dog", _bmp(images_dir, "dog_train_0"))
        assert fresh.status_code == 503 and "models pull" in fresh.json()["detail"]
        answer = Client(process.url, api_key=KEY).classify(_bmp(images_dir, "cat_test_0"))
        assert answer.model.name == SMALL_MODEL
    finally:
        process.stop()


def test_the_local_commands_keep_off_a_running_servers_folder(
    start: Callable[[Path], ServerProcess],
    tmp_path: Path,
    images_dir: Path,
    models_dir: Path,
    runtime: str,
) -> None:
    """`edge-server learn` without --url on the folder a server uses: refused (exit 2) with
    the --url way; on a free folder, a bad label is refused before anything is stored."""
    server = start(tmp_path / "served")
    env = {**server_env(models_dir, runtime), "EDGE_DATA_DIR": str(tmp_path / "served")}

    def learn(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edge_server", "learn", *arguments],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = learn("list")
    assert listed.returncode == 2 and "--url" in listed.stderr, listed.stderr
    server.stop()
    env["EDGE_DATA_DIR"] = str(tmp_path / "free")
    photo = str(images_dir / "imprinting" / "cat_train_0.bmp")
    refused = learn("add", "pets", "Unknown", photo)
    assert refused.returncode == 1 and "unknown" in refused.stderr, refused.stderr
    assert [p.name for p in (tmp_path / "free" / "learned").iterdir()] == [".lock"]


def test_a_full_disk_keeps_nothing_and_the_server_serves_on(
    tmp_path: Path, images_dir: Path, models_dir: Path, runtime: str
) -> None:
    """Files may not grow past 4 kB (the kernel's EFBIG, as from a full disk): a new model's
    first examples are a 507 and leave no file and no model; classify serves on."""
    process = ServerProcess(
        server_env(models_dir, runtime, model=SMALL_MODEL, data_dir=str(tmp_path), api_key=KEY),
        free_port(),
        file_size=4096,
    )
    try:
        process.wait_ready()
        photo = _bmp(images_dir, "cat_train_0")
        taught = _post_example(process.url, "pets", "cat", photo)
        assert taught.status_code == 507, taught.text
        assert "nothing of it was kept" in taught.json()["detail"]
        assert httpx.get(process.url + "/v1/learned", headers=HEADERS).json() == {"models": []}
        assert [p.name for p in (tmp_path / "learned").iterdir()] == [".lock"]
        answer = Client(process.url, api_key=KEY).classify(photo)
        assert answer.model.name == SMALL_MODEL
    finally:
        process.stop()
    assert "a change was not stored" in process.log
