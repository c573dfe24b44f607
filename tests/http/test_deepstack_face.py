"""DeepStack's face API in a real server process with the real face models, called as its
clients call it: deepstack-python's DeepstackFace (Home Assistant's DeepStack face component),
Double Take's exact requests and parse, and DeepStack's own answers to bad input."""

from __future__ import annotations

import io
import mimetypes
import re
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from deepstack.core import DeepstackException, DeepstackFace
from PIL import Image, ImageOps

from conftest import ServerProcess, free_port, images_folder, metric, server_env
from support import workers
from support.hostile import BadRequest, corpus

KEY = "faces-test-key-0123456789"
FACES = images_folder() / "faces"
# One photo per person registered; the others recognised.
FIRST = {
    "obama": "obama/obama.jpg",
    "biden": "biden/biden.jpg",
    "kit_harington": "kit_harington/john1.jpeg",
    "rose_leslie": "rose_leslie/img1.jpg",
    "alex_lacamoire": "alex_lacamoire/img1.jpg",
}
OTHERS = {
    "obama": ["obama/obama1.jpg", "obama/obama2.jpg", "obama/obama3.jpg"],
    "biden": ["biden/biden2.jpg"],
    "kit_harington": ["kit_harington/john2.jpeg", "kit_harington/johnsnow_test1.jpg"],
    "rose_leslie": ["rose_leslie/img2.jpg"],
    "alex_lacamoire": ["alex_lacamoire/alex-lacamoire.png", "alex_lacamoire/alex_lacamoire1.jpg"],
}
STRANGER = "strangers/lin-manuel-miranda.png"
UPLOAD_LIMIT = 8_000_000


def face(relative: str) -> bytes:
    return (FACES / relative).read_bytes()


@pytest.fixture(scope="module")
def face_server(
    models_dir: Path, runtime: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server with the face models, a data folder, an API key and debug logging."""
    process = ServerProcess(
        server_env(
            models_dir,
            runtime,
            data_dir=str(tmp_path_factory.mktemp("faces-data")),
            api_key=KEY,
            max_upload_bytes=str(UPLOAD_LIMIT),
            log_level="debug",
            access_log="on",
        ),
        free_port(),
        # A file: a pipe nobody reads would fill with the debug log and block the server.
        log_path=tmp_path_factory.mktemp("faces-log") / "server.log",
    )
    process.wait_ready()
    yield process
    workers.stop(process)


@pytest.fixture
def fresh(face_server: ServerProcess) -> Iterator[ServerProcess]:
    """The module's server with nobody registered, before and after the test."""
    _forget_everyone(face_server)
    yield face_server
    _forget_everyone(face_server)


def _forget_everyone(server: ServerProcess) -> None:
    for name in _post(server, "list").json()["faces"]:
        assert _post(server, "delete", data={"userid": name}).status_code == 200


def _post(
    server: ServerProcess,
    action: str,
    *,
    files: list[tuple[str, tuple[str, bytes]]] | None = None,
    data: dict[str, str] | None = None,
) -> httpx.Response:
    path = "/v1/vision/face" + (f"/{action}" if action else "")
    return httpx.post(
        server.url + path, files=files, data={"api_key": KEY, **(data or {})}, timeout=120
    )


def _deepstack(server: ServerProcess, **options: Any) -> DeepstackFace:
    address = urllib.parse.urlsplit(server.url)
    return DeepstackFace(
        ip=address.hostname, port=address.port, api_key=KEY, timeout=120, **options
    )


def test_deepstack_python_registers_recognises_and_lists(fresh: ServerProcess) -> None:
    """deepstack-python's DeepstackFace at its default min_confidence (0.45, what Home
    Assistant's component sends): one photo per person registered ("face added", then "face
    updated"), every other photo of them recognised, the stranger unknown, both people of
    two_people.jpg named, the list sorted."""
    client = _deepstack(fresh)
    for name, relative in FIRST.items():
        assert client.register(name, face(relative)) == "face added"
    assert client.get_registered_faces() == sorted(FIRST)
    for name, photos in OTHERS.items():
        for relative in photos:
            found = client.recognize(face(relative))
            assert found, relative
            best = max(found, key=lambda p: (p["x_max"] - p["x_min"]) * (p["y_max"] - p["y_min"]))
            assert best["userid"] == name, (relative, found)
            assert 0.67 <= best["confidence"] <= 1.0
    stranger = client.recognize(face(STRANGER))
    assert [(p["userid"], p["confidence"]) for p in stranger] == [("unknown", 0)]
    named = {p["userid"] for p in client.recognize(face("groups/two_people.jpg"))}
    assert {"obama", "biden"} <= named
    # Registering again adds to the person: DeepStack's "face updated".
    assert client.register("obama", face("obama/obama1.jpg")) == "face updated"
    assert client.get_registered_faces() == sorted(FIRST)


def test_deepstack_python_detects_faces_with_boxes_in_the_photo(fresh: ServerProcess) -> None:
    """DeepstackFace.detect: one face in a portrait, inside the photo, with a score; two or
    more in the group photo; none in a photo of coffee (a success with no predictions)."""
    client = _deepstack(fresh)
    portrait = face("obama/obama.jpg")
    width, height = Image.open(io.BytesIO(portrait)).size
    (found,) = client.detect(portrait)
    assert 0.5 <= found["confidence"] <= 1.0
    assert 0 <= found["x_min"] < found["x_max"] <= width
    assert 0 <= found["y_min"] < found["y_max"] <= height
    assert len(client.detect(face("groups/two_people.jpg"))) >= 2
    coffee = (images_folder() / "coffee.png").read_bytes()
    assert client.detect(coffee) == []
    assert client.recognize(coffee) == []


def test_deepstack_python_sees_a_refused_registration(fresh: ServerProcess) -> None:
    """A photo with no face: deepstack-python raises with DeepStack's status, nothing is kept."""
    client = _deepstack(fresh)
    coffee = (images_folder() / "coffee.png").read_bytes()
    with pytest.raises(DeepstackException, match="400"):
        client.register("nobody", coffee)
    assert client.get_registered_faces() == []


# --- Double Take (api/src/util/detectors/deepstack.js) --------------------------------------


def _double_take_form(path: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    """form-data's `append('image', fs.createReadStream(key))`: the file's base name and the
    type mime-types gives its extension."""
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return [("image", (path.name, path.read_bytes(), kind))]


def _double_take(
    server: ServerProcess, route: str, *, image: Path | None, **fields: str
) -> httpx.Response:
    """One request as Double Take sends it: multipart built by form-data (the image first,
    then `userid`, then `api_key` when a key is set), axios' 15 s timeout."""
    files = _double_take_form(image) if image is not None else None
    data = {**fields, "api_key": KEY}
    return httpx.post(f"{server.url}/v1/vision/face/{route}", files=files, data=data, timeout=15)


def _normalize(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Double Take's `normalize` with its default detect settings (match: confidence 60,
    min_area 10000; unknown: confidence 40), as its JavaScript computes it."""
    if not data["success"]:
        return []
    out = []
    for obj in data["predictions"]:
        confidence = float(f"{obj['confidence'] * 100:.2f}")
        width, height = obj["x_max"] - obj["x_min"], obj["y_max"] - obj["y_min"]
        out.append(
            {
                "name": obj["userid"].lower() if confidence >= 40 else "unknown",
                "confidence": confidence,
                "match": obj["userid"] != "unknown"
                and confidence >= 60
                and width * height >= 10000,
                "box": {
                    "top": obj["y_min"],
                    "left": obj["x_min"],
                    "width": width,
                    "height": height,
                },
            }
        )
    return out


def test_double_take_trains_one_photo_per_request_and_every_photo_is_kept(
    fresh: ServerProcess,
) -> None:
    """Double Take's training posts one photo per request: each is added (DeepStack kept only
    the last), and its recognize request parses to a match, the stranger to unknown."""
    photos = [FACES / "obama" / name for name in ("obama.jpg", "obama1.jpg", "obama2.jpg")]
    for n, photo in enumerate(photos, start=1):
        answer = _double_take(fresh, "register", image=photo, userid="Obama")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["success"] is True and body["total"] == n
        assert body["message"] == ("face added" if n == 1 else "face updated")
    answer = _double_take(fresh, "recognize", image=FACES / "obama" / "obama3.jpg")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    (found,) = _normalize(answer.json())
    assert found["name"] == "obama" and found["match"] is True
    assert found["box"]["width"] > 0 and found["box"]["height"] > 0
    (stranger,) = _normalize(_double_take(fresh, "recognize", image=FACES / STRANGER).json())
    assert stranger == {**stranger, "name": "unknown", "confidence": 0.0, "match": False}
    removed = _double_take(fresh, "delete", image=None, userid="Obama")
    assert removed.status_code == 200 and removed.json() == {"success": True}
    assert _post(fresh, "list").json() == {"success": True, "faces": []}
    (gone,) = _normalize(
        _double_take(fresh, "recognize", image=FACES / "obama" / "obama3.jpg").json()
    )
    assert gone["name"] == "unknown" and gone["match"] is False


def _ten_photos() -> list[bytes]:
    """Ten distinct photos of one person: the four of Obama, mirrored, and two resized."""
    originals = [
        face(f"obama/{n}") for n in ("obama.jpg", "obama1.jpg", "obama2.jpg", "obama3.jpg")
    ]
    photos = list(originals)
    for data in originals:
        mirrored = ImageOps.mirror(Image.open(io.BytesIO(data)).convert("RGB"))
        photos.append(_jpeg(mirrored))
    for data in originals[:2]:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        photos.append(_jpeg(image.resize((image.width * 3 // 4, image.height * 3 // 4))))
    assert len(photos) == 10 and len(set(photos)) == 10
    return photos


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def test_ten_photos_in_one_registration_are_all_kept(fresh: ServerProcess) -> None:
    """Ten photos in one /register request under DeepStack's field names image1..image10:
    all ten added; one more makes eleven."""
    files = [(f"image{n}", (f"p{n}.jpg", data)) for n, data in enumerate(_ten_photos(), start=1)]
    answer = _post(fresh, "register", files=files, data={"userid": "obama"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "success": True,
        "message": "face added",
        "userid": "obama",
        "added": 10,
        "total": 10,
    }
    more = _post(
        fresh,
        "register",
        files=[("image", ("x.jpg", face("obama/obama.jpg")))],
        data={"userid": "obama"},
    )
    assert more.json()["total"] == 11 and more.json()["message"] == "face updated"


def test_match_answers_similarity_and_deepstacks_errors(fresh: ServerProcess) -> None:
    """/match: the same person scores above two different people; one, three or no files and a
    photo with no face are DeepStack's 400s."""
    same = _post(
        fresh,
        "match",
        files=[
            ("image1", ("a.jpg", face("obama/obama.jpg"))),
            ("image2", ("b.jpg", face("obama/obama1.jpg"))),
        ],
    )
    other = _post(
        fresh,
        "match",
        files=[
            ("image1", ("a.jpg", face("obama/obama.jpg"))),
            ("image2", ("b.jpg", face("biden/biden.jpg"))),
        ],
    )
    assert same.status_code == other.status_code == 200, (same.text, other.text)
    assert same.json()["success"] is True
    assert 0 <= other.json()["similarity"] < same.json()["similarity"] <= 1
    one = [("image1", ("a.jpg", face("obama/obama.jpg")))]
    three = [
        *one,
        ("image2", ("b.jpg", face("obama/obama1.jpg"))),
        ("image3", ("c.jpg", face("biden/biden.jpg"))),
    ]
    coffee = (images_folder() / "coffee.png").read_bytes()
    for files, error in (
        (None, "No valid image file found"),
        (one, "expected two image files, only one found"),
        (three, "only two images allowed"),
    ):
        answer = _post(fresh, "match", files=files)
        assert answer.status_code == 400
        assert answer.json() == {"success": False, "error": error, "code": 400}
    no_face = _post(fresh, "match", files=[*one, ("image2", ("c.png", coffee))])
    assert no_face.status_code == 400 and no_face.json()["success"] is False


def test_deepstacks_answers_to_bad_registrations_are_counted(fresh: ServerProcess) -> None:
    """A missing userid, no image, an empty image, a photo with no face and too many files:
    DeepStack's error strings and 400, nothing registered, each refusal counted by reason."""
    before = httpx.get(fresh.url + "/metrics", headers={"X-API-Key": KEY}).text
    photo = [("image", ("a.jpg", face("obama/obama.jpg")))]
    coffee = (images_folder() / "coffee.png").read_bytes()
    cases = [
        (photo, {}, "userid not specified", "no_userid"),
        (photo, {"userid": "   "}, "userid not specified", "no_userid"),
        (None, {"userid": "obama"}, "No valid image file found", "no_image"),
        ([("image", ("c.png", coffee))], {"userid": "obama"}, "no face detected", "no_face"),
    ]
    for files, data, error, _ in cases:
        answer = _post(fresh, "register", files=files, data=data)
        assert answer.status_code == 400, answer.text
        assert answer.json() == {"success": False, "error": error, "code": 400}
    empty = _post(fresh, "register", files=[("image", ("e.jpg", b""))], data={"userid": "obama"})
    assert empty.status_code == 400 and empty.json()["success"] is False
    assert "empty" in empty.json()["error"]
    # More files than a form may hold (EDGE_MAX_BATCH_IMAGES, 16), with or without a userid:
    # DeepStack's 400, not a 413 (the body is small; the form is what is refused).
    many = [("image", (f"{n}.jpg", b"x")) for n in range(17)]
    for data in ({}, {"userid": "obama"}):
        crowded = _post(fresh, "register", files=many, data=data)
        assert crowded.status_code == 400, crowded.text
        assert crowded.json()["success"] is False and "16" in crowded.json()["error"]
    delete = _post(fresh, "delete")
    assert delete.status_code == 400 and delete.json()["error"] == "userid not specified"
    assert _post(fresh, "list").json()["faces"] == []
    after = httpx.get(fresh.url + "/metrics", headers={"X-API-Key": KEY}).text
    for reason, count in (("no_userid", 3), ("no_image", 1), ("no_face", 1), ("image_count", 2)):
        grown = metric(after, "edge_faces_refused_total", reason=reason) - metric(
            before, "edge_faces_refused_total", reason=reason
        )
        assert grown == count, reason


def test_the_key_and_the_defaults_are_deepstacks(fresh: ServerProcess) -> None:
    """Without the key: 401 in DeepStack's shape; an empty form to /list with the key in a
    header works; two images or a bad min_confidence are a 400; /v1/vision/face/ is the
    detect route too."""
    portrait = [("image", ("a.jpg", face("obama/obama.jpg")))]
    refused = httpx.post(fresh.url + "/v1/vision/face/recognize", files=portrait, timeout=60)
    assert refused.status_code == 401 and refused.json()["success"] is False
    listed = httpx.post(fresh.url + "/v1/vision/face/list", headers={"X-API-Key": KEY}, timeout=60)
    assert listed.json() == {"success": True, "faces": []}
    two = _post(fresh, "recognize", files=[*portrait, ("image", ("b.jpg", b"x"))])
    assert two.status_code == 400 and "send one image" in two.json()["error"]
    bad = _post(fresh, "recognize", files=portrait, data={"min_confidence": "lots"})
    assert bad.status_code == 400 and "min_confidence" in bad.json()["error"]
    slash = _post(fresh, "", files=portrait)
    assert slash.status_code == 200 and slash.json()["count"] == 1
    trailing = httpx.post(
        fresh.url + "/v1/vision/face/", files=portrait, data={"api_key": KEY}, timeout=60
    )
    assert (
        trailing.status_code == 200
        and trailing.json()["predictions"] == slash.json()["predictions"]
    )


# --- the hostile corpus on the face routes --------------------------------------------------

HOSTILE = [case for case in corpus(images_folder(), UPLOAD_LIMIT) if case.path == "/classify"]
FACE_ROUTES = ("", "recognize", "register", "match")


@pytest.mark.parametrize("route", FACE_ROUTES)
def test_hostile_corpus_on_the_face_routes_never_gets_a_5xx(
    face_server: ServerProcess, route: str, photo: Callable[[str], bytes]
) -> None:
    """Every bad request of the hostile corpus sent to a face route: never a 5xx, errors in
    DeepStack's shape; then a good photo is still answered."""
    statuses: dict[str, int] = {}
    with httpx.Client(base_url=face_server.url, timeout=60) as client:
        for case in HOSTILE:
            try:
                response = _hostile(client, case, route)
            except httpx.TimeoutException:
                pytest.fail(f"{case.name}: no answer within 60 s")
            statuses[case.name] = response.status_code
            assert response.status_code < 500, (case.name, response.text)
            if response.status_code >= 400:
                body = response.json()
                assert body["success"] is False and body["code"] == response.status_code
                assert len(body["error"]) > 8, (case.name, body)
        good = client.post(
            "/v1/vision/face",
            files={"image": ("a.jpg", face("obama/obama.jpg"))},
            data={"api_key": KEY},
        )
        assert good.status_code == 200 and good.json()["count"] == 1
    broken = [case.name for case in HOSTILE if case.detail in ("empty", "not an image")]
    assert broken and all(400 <= statuses[name] < 500 for name in broken), statuses


def _hostile(client: httpx.Client, case: BadRequest, route: str) -> httpx.Response:
    headers = {"X-API-Key": KEY, **case.headers}
    data = {**(case.data or {}), **({"userid": "hostile"} if route == "register" else {})}
    files = case.files
    if route == "match" and files:
        files = [*files, ("image2", ("b.jpg", face("obama/obama.jpg")))]
    return client.request(
        case.method,
        "/v1/vision/face" + (f"/{route}" if route else ""),
        params=case.params,
        headers=headers,
        content=case.content,
        files=files,
        data=data if (files or data) and case.content is None else None,
    )


# A descriptor written out: a run of eight or more decimal numbers.
DESCRIPTOR = re.compile(r"(-?\d\.\d{3,}[\s,]+){8}")


def test_no_name_or_descriptor_reaches_the_log(
    models_dir: Path, runtime: str, tmp_path: Path
) -> None:
    """At debug level with every request logged: registering, recognising, listing, exporting,
    a 404 DELETE and deleting a person write neither the name nor a descriptor to the log."""
    server = ServerProcess(
        server_env(
            models_dir,
            runtime,
            data_dir=str(tmp_path / "data"),
            api_key=KEY,
            log_level="debug",
            access_log="on",
        ),
        free_port(),
        log_path=tmp_path / "server.log",
    )
    try:
        server.wait_ready()
        name = "zq-privacy-person"
        headers = {"X-API-Key": KEY}
        photo = [("image", ("a.jpg", face("biden/biden.jpg")))]
        assert _post(server, "register", files=photo, data={"userid": name}).status_code == 200
        recognised = _post(
            server, "recognize", files=[("image", ("b.jpg", face("biden/biden2.jpg")))]
        )
        assert recognised.json()["predictions"][0]["userid"] == name
        assert name in httpx.get(server.url + "/v1/faces", headers=headers).json()["people"]
        export = httpx.get(server.url + "/v1/faces/export", headers=headers, timeout=60)
        assert export.status_code == 200 and len(export.content) > 128 * 4
        missing = httpx.delete(server.url + "/v1/faces/zq-nobody-person", headers=headers)
        assert missing.status_code == 404
        assert httpx.delete(server.url + f"/v1/faces/{name}", headers=headers).status_code == 204
        assert _post(server, "delete", data={"userid": name}).json() == {"success": True}
    finally:
        workers.stop(server)
    log = server.log
    # The access log has the lines, with the route's template where the address names someone.
    assert '"DELETE /v1/faces/{name} HTTP/1.1" 404' in log
    assert '"POST /v1/vision/face/register HTTP/1.1" 200' in log
    assert name not in log and "zq-nobody-person" not in log
    assert DESCRIPTOR.search(log) is None
