"""The people registered, in a real server process with the real face models: /v1/faces and
its keys, restarts, SIGKILLs mid-registration, recognitions beside registrations, export and
import, and the `edge-server faces` commands."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from edge_server.app import create_app
from edge_server.config.settings import Settings
from edge_server.core.runtime import RuntimeChoice

from conftest import ServerProcess, free_port, images_folder, server_env
from support import workers
from support.inprocess import in_process
from support.waiting import HANG

KEY = "faces-server-key-0123456789"
HEADERS = {"X-API-Key": KEY}
FACES = images_folder() / "faces"


def face(relative: str) -> bytes:
    return (FACES / relative).read_bytes()


@pytest.fixture
def start(models_dir: Path, runtime: str) -> Iterator[Callable[[Path], ServerProcess]]:
    """Start servers on a data folder, with a key; all stopped after."""
    started: list[ServerProcess] = []

    def run(data_dir: Path) -> ServerProcess:
        process = ServerProcess(
            server_env(models_dir, runtime, data_dir=str(data_dir), api_key=KEY),
            free_port(),
        )
        started.append(process)
        process.wait_ready()
        return process

    yield run
    for process in started:
        workers.stop(process)


def _register(url: str, name: str, *photos: bytes) -> httpx.Response:
    return httpx.post(
        url + "/v1/faces",
        headers=HEADERS,
        data={"name": name},
        files=[("image", (f"p{n}.jpg", data)) for n, data in enumerate(photos)],
        timeout=HANG,
    )


def _recognised(url: str, relative: str) -> list[str]:
    answer = httpx.post(
        url + "/v1/vision/face/recognize",
        data={"api_key": KEY},
        files={"image": ("p.jpg", face(relative))},
        timeout=HANG,
    )
    assert answer.status_code == 200, answer.text
    return [p["userid"] for p in answer.json()["predictions"]]


def _people(url: str) -> list[str]:
    answer = httpx.get(url + "/v1/faces", headers=HEADERS, timeout=HANG)
    assert answer.status_code == 200, answer.text
    people: list[str] = answer.json()["people"]
    return people


def test_people_survive_a_restart_and_a_deleted_person_is_gone_from_disk(
    start: Callable[[Path], ServerProcess], tmp_path: Path
) -> None:
    """Two people registered over /v1/faces are recognised after a restart; deleting one
    leaves no trace of them in the data folder, and the other is still recognised."""
    server = start(tmp_path)
    first = _register(server.url, "obama", face("obama/obama.jpg"), face("obama/obama1.jpg"))
    assert first.status_code == 201, first.text
    assert first.json() == {"name": "obama", "added": 2, "total": 2, "created": True}
    assert _register(server.url, "zq-biden", face("biden/biden.jpg")).status_code == 201
    server.stop()
    server = start(tmp_path)
    assert _people(server.url) == ["obama", "zq-biden"]
    assert _recognised(server.url, "obama/obama2.jpg") == ["obama"]
    assert _recognised(server.url, "biden/biden2.jpg") == ["zq-biden"]
    stored = [p for p in (tmp_path / "faces").rglob("*") if p.is_file()]
    assert any(b"zq-biden" in p.read_bytes() for p in stored)
    deleted = httpx.delete(server.url + "/v1/faces/zq-biden", headers=HEADERS, timeout=HANG)
    assert deleted.status_code == 204
    assert _recognised(server.url, "biden/biden2.jpg") == ["unknown"]
    server.stop()
    stored = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not any(b"zq-biden" in p.read_bytes() for p in stored)
    server = start(tmp_path)
    assert _people(server.url) == ["obama"]
    assert _recognised(server.url, "obama/obama3.jpg") == ["obama"]


def _held(url: str, name: str, photo: bytes) -> int:
    """How many photos `name` has on the server: one more is registered, its total minus one
    (neither /v1/faces nor DeepStack's list counts photos)."""
    answer = _register(url, name, photo)
    assert answer.status_code == 201, answer.text
    total: int = answer.json()["total"]
    return total - 1


def test_every_acknowledged_registration_survives_sigkill(
    start: Callable[[Path], ServerProcess], tmp_path: Path
) -> None:
    """Killed at random moments while a client keeps registering: each restart holds every
    photo that got a 200 (and at most the one in flight besides)."""
    photos = [face(f"obama/{n}") for n in ("obama.jpg", "obama1.jpg", "obama2.jpg", "obama3.jpg")]
    acknowledged = 0
    rng = random.Random(28)  # noqa: S311  # when to kill, not a secret
    for round_ in range(3):
        server = start(tmp_path)
        if round_:
            held = _held(server.url, "obama", photos[0])
            assert acknowledged <= held <= acknowledged + 1, (round_, held, acknowledged)
            acknowledged = held + 1
        totals: list[int] = []
        first = threading.Event()
        stop = threading.Event()

        def register(
            url: str = server.url,
            totals: list[int] = totals,
            first: threading.Event = first,
            stop: threading.Event = stop,
        ) -> None:
            with httpx.Client(base_url=url, timeout=HANG) as http:
                n = 0
                while not stop.is_set():
                    try:
                        answer = http.post(
                            "/v1/vision/face/register",
                            data={"userid": "obama", "api_key": KEY},
                            files={"image": ("p.jpg", photos[n % len(photos)])},
                        )
                    except httpx.TransportError:
                        return  # killed mid-request: not acknowledged
                    assert answer.status_code == 200, answer.text
                    totals.append(answer.json()["total"])
                    first.set()
                    n += 1

        worker = threading.Thread(target=register)
        worker.start()
        assert first.wait(timeout=HANG)
        time.sleep(rng.uniform(0.05, 1.5))
        workers.kill(server)
        stop.set()
        worker.join(timeout=HANG)
        assert totals
        acknowledged = max(acknowledged, totals[-1])
    server = start(tmp_path)
    held = _held(server.url, "obama", photos[0])
    assert acknowledged <= held <= acknowledged + 1, (held, acknowledged)
    assert _recognised(server.url, "obama/obama2.jpg") == ["obama"]


def test_recognitions_beside_registrations_get_no_5xx(
    start: Callable[[Path], ServerProcess], tmp_path: Path
) -> None:
    """Two clients recognise while a third registers people and a fourth reads the list:
    every answer is a 200, Obama is named throughout, and the new people are all there."""
    server = start(tmp_path)
    assert _register(server.url, "obama", face("obama/obama.jpg")).status_code == 201
    statuses: Counter[int] = Counter()
    registered: Counter[int] = Counter()
    names: Counter[str] = Counter()
    lock = threading.Lock()
    done = threading.Event()
    newcomers = [
        ("biden", "biden/biden.jpg"),
        ("kit_harington", "kit_harington/john1.jpeg"),
        ("rose_leslie", "rose_leslie/img1.jpg"),
        ("alex_lacamoire", "alex_lacamoire/img1.jpg"),
    ]

    def recognise() -> None:
        with httpx.Client(base_url=server.url, timeout=HANG) as http:
            while not done.is_set():
                answer = http.post(
                    "/v1/vision/face/recognize",
                    data={"api_key": KEY},
                    files={"image": ("p.jpg", face("obama/obama2.jpg"))},
                )
                with lock:
                    statuses[answer.status_code] += 1
                    if answer.status_code == 200:
                        names.update(p["userid"] for p in answer.json()["predictions"])

    def read_list() -> None:
        with httpx.Client(base_url=server.url, timeout=HANG) as http:
            while not done.is_set():
                answer = http.post("/v1/vision/face/list", data={"api_key": KEY})
                with lock:
                    statuses[answer.status_code] += 1

    workers = [threading.Thread(target=recognise) for _ in range(2)]
    workers.append(threading.Thread(target=read_list))
    for worker in workers:
        worker.start()
    try:
        for name, relative in newcomers:
            for photo in (relative, relative):  # twice: the second is "face updated"
                registered[_register(server.url, name, face(photo)).status_code] += 1
    finally:
        done.set()
        for worker in workers:
            worker.join(timeout=HANG)
    assert set(statuses) == {200}, statuses
    assert registered == {201: 2 * len(newcomers)}, registered
    assert names["obama"] >= 2 and set(names) == {"obama"}, names
    assert _people(server.url) == sorted(["obama", *(n for n, _ in newcomers)])


def test_export_then_import_on_another_server_recognises_the_same(
    start: Callable[[Path], ServerProcess], tmp_path: Path
) -> None:
    """An export of two people, imported into a server with an empty data folder: the same
    people, recognised the same; a file that is not an export is a 400 changing nothing."""
    source = start(tmp_path / "a")
    assert _register(source.url, "obama", face("obama/obama.jpg")).status_code == 201
    assert _register(source.url, "biden", face("biden/biden.jpg")).status_code == 201
    export = httpx.get(source.url + "/v1/faces/export", headers=HEADERS, timeout=HANG)
    assert export.status_code == 200
    assert export.headers["content-type"] == "application/octet-stream"
    target = start(tmp_path / "b")
    refused = httpx.post(
        target.url + "/v1/faces/import",
        headers={**HEADERS, "Content-Type": "application/octet-stream"},
        content=b"not an export at all",
        timeout=HANG,
    )
    assert refused.status_code == 400, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert _people(target.url) == []
    imported = httpx.post(
        target.url + "/v1/faces/import",
        headers={**HEADERS, "Content-Type": "application/octet-stream"},
        content=export.content,
        timeout=HANG,
    )
    assert imported.status_code == 200, imported.text
    assert imported.json() == {"people": 2}
    assert _people(target.url) == ["biden", "obama"]
    assert _recognised(target.url, "obama/obama1.jpg") == ["obama"]
    assert _recognised(target.url, "biden/biden2.jpg") == ["biden"]


def test_changing_people_needs_a_configured_key(models_dir: Path, runtime: str) -> None:
    """Without EDGE_API_KEY: the list reads (with the threshold in effect), but registering,
    deleting, exporting and importing are 403 problem+json saying to set a key; the DeepStack
    list stays open."""
    settings = Settings(models_dir=models_dir, runtime=RuntimeChoice(runtime), num_threads=1)
    with in_process(create_app(settings)) as client:
        listed = client.get("/v1/faces").json()
        assert listed == {
            "people": [],
            "threshold": 0.6,
            "effective_threshold": 0.6,
            "calibrated": True,
            "descriptor": "dlib_face_recognition_resnet_model_v1",
        }
        refusals = [
            client.post(
                "/v1/faces",
                data={"name": "obama"},
                files={"image": ("a.jpg", face("obama/obama.jpg"))},
            ),
            client.delete("/v1/faces/obama"),
            client.get("/v1/faces/export"),
            client.post("/v1/faces/import", content=b"x"),
        ]
        for answer in refusals:
            assert answer.status_code == 403, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert "EDGE_API_KEY" in answer.json()["detail"]
        assert client.post("/v1/vision/face/list").json() == {"success": True, "faces": []}


def test_v1_faces_refuses_bad_registrations_with_problem_json(
    start: Callable[[Path], ServerProcess], tmp_path: Path
) -> None:
    """/v1/faces: no name, no photo, a photo with no face, a wrong key: each its 4xx, and
    nobody is registered; an unknown person's DELETE is a 404."""
    server = start(tmp_path)
    coffee = (images_folder() / "coffee.png").read_bytes()
    cases = [
        ({}, [("image", ("a.jpg", face("obama/obama.jpg")))], HEADERS, 400, "'name'"),
        ({"name": "obama"}, [("other", ("a.txt", b"x"))], HEADERS, 400, "'image'"),
        ({"name": "obama"}, [("image", ("c.png", coffee))], HEADERS, 400, "no face"),
        (
            {"name": "obama"},
            [("image", ("a.jpg", face("obama/obama.jpg")))],
            {"X-API-Key": "wrong-key-0123456789"},
            401,
            "API key",
        ),
    ]
    for data, files, headers, status, detail in cases:
        answer = httpx.post(
            server.url + "/v1/faces", data=data, files=files, headers=headers, timeout=HANG
        )
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert detail in answer.json()["detail"]
    assert _people(server.url) == []
    gone = httpx.delete(server.url + "/v1/faces/nobody", headers=HEADERS, timeout=HANG)
    assert gone.status_code == 404 and "nobody" in gone.json()["detail"]


def _cli(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_server", "faces", *arguments],
        capture_output=True,
        text=True,
        timeout=HANG,
        env=env,
        check=False,
    )


def test_cli_adds_lists_and_removes_people_on_a_server_and_locally(
    start: Callable[[Path], ServerProcess], tmp_path: Path, models_dir: Path, runtime: str
) -> None:
    """`edge-server faces add/list/remove --url`: registered, listed, removed; a photo with no
    face exits 1 with the server's reason; with the server stopped, the same commands work on
    its data folder, and the server then recognises who the CLI added."""
    data_dir = tmp_path / "data"
    server = start(data_dir)
    env = server_env(models_dir, runtime)
    remote = ("--url", server.url, "--api-key", KEY)
    photos = [str(FACES / "obama" / n) for n in ("obama.jpg", "obama1.jpg")]
    added = _cli("add", "obama", *photos, *remote, env=env)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "registered obama: 2 photo(s) added, 2 in all"
    listed = _cli("list", "--json", *remote, env=env)
    assert listed.returncode == 0, listed.stderr
    answer = json.loads(listed.stdout)
    assert (answer["people"], answer["effective_threshold"]) == (["obama"], 0.6)
    coffee = str(images_folder() / "coffee.png")
    refused = _cli("add", "obama", coffee, *remote, env=env)
    assert refused.returncode == 1 and "no face" in refused.stderr
    assert "Traceback" not in refused.stderr
    removed = _cli("remove", "obama", *remote, env=env)
    assert removed.returncode == 0 and removed.stdout.strip() == "removed obama"
    assert _cli("list", *remote, env=env).stdout.strip() == "nobody is registered"
    missing = _cli("remove", "obama", *remote, env=env)
    assert missing.returncode == 1 and "404" in missing.stderr
    server.stop()
    local = ("--data-dir", str(data_dir))
    added = _cli("add", "biden", str(FACES / "biden" / "biden.jpg"), *local, env=env)
    assert added.returncode == 0, added.stderr
    assert _cli("list", *local, env=env).stdout.strip() == "biden"
    server = start(data_dir)
    assert _recognised(server.url, "biden/biden2.jpg") == ["biden"]


def test_a_killed_servers_face_workers_end_by_themselves(
    start: Callable[[Path], ServerProcess], tmp_path: Path
) -> None:
    """dlib's worker processes end on their own once their server is SIGKILLed (none is left
    holding memory and the server's log pipe)."""
    server = start(tmp_path)
    assert _register(server.url, "obama", face("obama/obama.jpg")).status_code == 201
    left = workers.descendants(server.process.pid)
    assert left, "the server described a face, so its dlib workers are running"
    server.process.kill()
    server.process.wait()

    def alive() -> list[int]:
        return [pid for pid in left if Path(f"/proc/{pid}").exists() and not _zombie(pid)]

    deadline = time.monotonic() + HANG
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(), f"worker processes outlived their server: {alive()}"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False
