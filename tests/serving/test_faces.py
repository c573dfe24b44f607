"""Faces as a service on the shared photos with the real models: people registered from one or
two photos each are recognised in every other photo and in the group photos, the stranger is
unknown; the people store's durability, deletion, export and import; /detect?faces=1."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from PIL import Image

from edge_server.config.settings import Settings
from edge_server.core.errors import BadRequest
from edge_server.core.face_matching import Calibration, spread
from edge_server.serving.faces import UNKNOWN, Faces, NoFace, default_workers, faces_for
from edge_server.serving.metrics import Metrics
from edge_server.serving.schemas import PixelBox

from conftest import ServerProcess, free_port, server_env

T = TypeVar("T")
GROUPS = {
    "kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
    "obama_and_biden.jpg": {"obama", "biden"},
    "two_people.jpg": {"obama", "biden"},
}


class Runner:
    """One event loop for the module's Faces (its locks and workers outlive a test)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __call__(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, timeout=120))


@pytest.fixture(scope="module")
def run() -> Iterator[Runner]:
    """Runs a coroutine to its end on the module's loop."""
    runner = Runner()
    yield runner
    runner.loop.close()


def _settings(models_dir: Path, runtime: str, **overrides: Any) -> Settings:
    return Settings(models_dir=models_dir, runtime=runtime, num_threads=1, **overrides)


@pytest.fixture(scope="module")
def service(models_dir: Path, runtime: str, run: Runner) -> Iterator[Faces]:
    """The face service on the real models, people kept in memory."""
    faces = faces_for(_settings(models_dir, runtime), Metrics())
    assert faces is not None, "the four face models are in the test models folder"
    run(faces.start())
    yield faces
    run(faces.close())


@pytest.fixture
def faces(service: Faces, run: Runner) -> Iterator[Faces]:
    """The face service with nobody registered before and after the test."""
    yield service
    for name in service.people():
        run(service.delete(name))
    assert service.people() == []


def _photos(images_dir: Path) -> dict[str, list[Path]]:
    folder = images_dir / "faces"
    return {
        person.name: sorted(p for p in person.iterdir() if p.suffix.lower() != ".md")
        for person in sorted(folder.iterdir())
        if person.is_dir() and person.name not in ("groups", "strangers")
    }


def _recognise(faces: Faces, run: Runner, path: Path) -> list[tuple[str, float, float]]:
    answer = run(
        faces.recognize(path.read_bytes(), min_confidence=0.67, started=time.perf_counter())
    )
    return [(f.userid, f.confidence, f.distance) for f in answer.faces]


@pytest.mark.parametrize("registered", [1, 2])
def test_people_are_recognised_in_every_other_photo_and_the_stranger_is_unknown(
    faces: Faces, run: Runner, images_dir: Path, registered: int
) -> None:
    """With one (then two) photos of each of five people registered, every other photo of
    them names them above 0.67, each group photo names both people, and the stranger is
    unknown with confidence 0."""
    photos = _photos(images_dir)
    for name, paths in photos.items():
        result = run(faces.register(name, [p.read_bytes() for p in paths[:registered]]))
        assert (result.userid, result.added, result.total, result.created) == (
            name,
            registered,
            registered,
            True,
        )
    assert faces.people() == sorted(photos)
    checked = 0
    for name, paths in photos.items():
        for path in paths[registered:]:
            [(userid, confidence, distance)] = _recognise(faces, run, path)
            assert userid == name, (path.name, userid, distance)
            assert 0.67 <= confidence <= 1.0
            checked += 1
    assert checked == {1: 9, 2: 4}[registered]  # 14 photos of the five people
    for group, people in GROUPS.items():
        found = _recognise(faces, run, images_dir / "faces/groups" / group)
        assert {userid for userid, _, _ in found} == people, group
    for stranger in (images_dir / "faces/strangers").iterdir():
        if stranger.suffix.lower() == ".md":
            continue
        [(userid, confidence, distance)] = _recognise(faces, run, stranger)
        assert (userid, confidence) == (UNKNOWN, 0.0), distance


def test_every_photo_is_added_and_a_second_registration_updates(
    faces: Faces, run: Runner, images_dir: Path
) -> None:
    """Registering keeps every photo (added, not replaced): a person registered with two
    photos, then one more, has three, and the second answer is an update."""
    obama = _photos(images_dir)["obama"]
    first = run(faces.register("obama", [p.read_bytes() for p in obama[:2]]))
    second = run(faces.register("obama", [obama[2].read_bytes()]))
    assert (first.total, first.created) == (2, True)
    assert (second.added, second.total, second.created) == (1, 3, False)


def test_a_photo_without_a_face_registers_nothing(
    faces: Faces, run: Runner, images_dir: Path
) -> None:
    """A photo with no face among good ones: NoFace ("no face detected"), nobody stored."""
    good = _photos(images_dir)["biden"][0].read_bytes()
    with pytest.raises(NoFace, match="no face detected"):
        run(faces.register("biden", [good, (images_dir / "parrot.jpg").read_bytes()]))
    assert faces.people() == []
    with pytest.raises(BadRequest):
        run(faces.register("  ", [good]))


def test_nobody_registered_makes_every_face_unknown(
    faces: Faces, run: Runner, images_dir: Path
) -> None:
    """With nobody registered a face is unknown, confidence 0, at an infinite distance; a
    photo with no face is an answer without faces."""
    [(userid, confidence, distance)] = _recognise(faces, run, _photos(images_dir)["obama"][0])
    assert (userid, confidence, distance) == (UNKNOWN, 0.0, float("inf"))
    assert _recognise(faces, run, images_dir / "parrot.jpg") == []


def test_find_gives_boxes_scores_and_six_landmarks_largest_first(
    faces: Faces, run: Runner, images_dir: Path
) -> None:
    """Detection alone: two faces in a group photo, each box around its eyes, largest
    first, scores above min_confidence, the image's size and the stage times."""
    data = (images_dir / "faces/groups/two_people.jpg").read_bytes()
    answer = run(faces.find(data, min_confidence=0.55, started=time.perf_counter()))
    assert (answer.image.width, answer.image.height) == Image.open(io.BytesIO(data)).size
    assert len(answer.faces) == 2
    areas = [(f.box.x_max - f.box.x_min) * (f.box.y_max - f.box.y_min) for f in answer.faces]
    assert areas == sorted(areas, reverse=True)
    for face in answer.faces:
        assert face.score >= 0.55 and len(face.landmarks) == 6
        for x, y in face.landmarks[:2]:
            assert face.box.x_min <= x <= face.box.x_max and face.box.y_min <= y <= face.box.y_max
    assert answer.timing_ms.total >= answer.timing_ms.inference > 0


def test_match_scores_the_same_person_above_the_default_and_others_below(
    faces: Faces, run: Runner, images_dir: Path
) -> None:
    """Two photos of one person match above 0.67; two people below it; no face: NoFace."""
    photos = _photos(images_dir)
    same = run(faces.match(photos["obama"][0].read_bytes(), photos["obama"][1].read_bytes()))
    other = run(faces.match(photos["obama"][0].read_bytes(), photos["biden"][0].read_bytes()))
    assert same >= 0.67 > other >= 0.0
    with pytest.raises(NoFace):
        run(faces.match(photos["obama"][0].read_bytes(), (images_dir / "parrot.jpg").read_bytes()))


def test_people_survive_a_restart_and_deletion_removes_their_descriptors(
    models_dir: Path, runtime: str, run: Runner, images_dir: Path, tmp_path: Path
) -> None:
    """People stored in EDGE_DATA_DIR/faces are there after a new start; deleting one leaves
    no file holding their name or any of their descriptors."""
    photos = _photos(images_dir)
    settings = _settings(models_dir, runtime, data_dir=tmp_path)
    first = faces_for(settings, Metrics())
    assert first is not None
    run(first.start())
    try:
        run(first.register("obama", [photos["obama"][0].read_bytes()]))
        run(first.register("biden", [photos["biden"][0].read_bytes()]))
        vectors = first.people_store.people["obama"].vectors.copy()
    finally:
        run(first.close())
    second = faces_for(settings, Metrics())
    assert second is not None
    run(second.start())
    try:
        assert second.people() == ["biden", "obama"]
        [(userid, _, _)] = _recognise(second, run, photos["obama"][1])
        assert userid == "obama"
        assert run(second.delete("obama")) is True
        assert run(second.delete("obama")) is False
        assert second.people() == ["biden"]
        stored = b"".join(p.read_bytes() for p in (tmp_path / "faces").iterdir() if p.is_file())
        assert b"obama" not in stored
        assert base64.b64encode(vectors[0].astype("<f4").tobytes()[:48]) not in stored
        assert len(list((tmp_path / "faces").glob("*.person"))) == 1
    finally:
        run(second.close())


def test_an_export_imports_into_another_service_and_recognises_the_same(
    faces: Faces, run: Runner, images_dir: Path
) -> None:
    """export() then import_() into an empty store gives the same people and the same
    answers; a file that is not an export is a 400 and changes nothing."""
    photos = _photos(images_dir)
    run(faces.register("rose_leslie", [photos["rose_leslie"][0].read_bytes()]))
    run(faces.register("kit_harington", [photos["kit_harington"][0].read_bytes()]))
    exported = faces.export()
    before = _recognise(faces, run, images_dir / "faces/groups/kit_with_rose.jpg")
    for name in faces.people():
        run(faces.delete(name))
    assert run(faces.import_(exported)) == 2
    assert faces.people() == ["kit_harington", "rose_leslie"]
    after = _recognise(faces, run, images_dir / "faces/groups/kit_with_rose.jpg")
    assert after == before
    for bad in (b"", b"{}", b'{"format": "edge-server-faces", "version": 1, "people": [1]}'):
        with pytest.raises(BadRequest):
            run(faces.import_(bad))
    assert faces.people() == ["kit_harington", "rose_leslie"]


def _small_faces(images_dir: Path) -> tuple[bytes, list[PixelBox]]:
    """A 1920x1080 frame with the two-person photo shrunk into it so small that its faces
    are ~30 px wide, and the box it lies in, split at the middle (each person's box)."""
    group = Image.open(images_dir / "faces/groups/two_people.jpg").convert("RGB")
    small = group.resize((group.width // 6, group.height // 6), Image.Resampling.LANCZOS)
    frame = Image.new("RGB", (1920, 1080), (90, 110, 90))
    left, top = 900, 500
    frame.paste(small, (left, top))
    out = io.BytesIO()
    frame.save(out, "JPEG", quality=95)
    half = left + small.width // 2
    boxes = [
        PixelBox(x_min=left, y_min=top, x_max=half, y_max=top + small.height),
        PixelBox(x_min=half, y_min=top, x_max=left + small.width, y_max=top + small.height),
    ]
    return out.getvalue(), boxes


def test_faces_too_small_for_the_whole_frame_are_found_in_the_person_boxes(
    faces: Faces, run: Runner, images_dir: Path
) -> None:
    """Faces ~30 px wide in a 1080p frame: the whole frame finds none (at the graph's 0.6),
    and each person box searched on its own crop names its person."""
    photos = _photos(images_dir)
    run(faces.register("obama", [photos["obama"][0].read_bytes()]))
    run(faces.register("biden", [photos["biden"][0].read_bytes()]))
    frame, boxes = _small_faces(images_dir)
    whole = run(faces.find(frame, min_confidence=0.6, started=time.perf_counter()))
    assert whole.faces == []
    labels = run(faces.sub_labels(frame, boxes))
    assert [label[0] if label else None for label in labels] == ["obama", "biden"]
    assert all(label is not None and label[1] >= 0.67 for label in labels)


def test_a_decoded_picture_names_the_same_people_as_its_jpeg(
    faces: Faces, run: Runner, images_dir: Path
) -> None:
    """sub_labels_picture on the frame decoded (a camera's RGB array) names each person box
    as sub_labels does on the JPEG, the small faces found in the boxes; nobody registered or
    no box is no work and no names."""
    photos = _photos(images_dir)
    frame, boxes = _small_faces(images_dir)
    rgb = np.asarray(Image.open(io.BytesIO(frame)).convert("RGB"))
    assert run(faces.sub_labels_picture(rgb, boxes)) == [None, None]  # nobody registered
    run(faces.register("obama", [photos["obama"][0].read_bytes()]))
    run(faces.register("biden", [photos["biden"][0].read_bytes()]))
    assert run(faces.sub_labels_picture(rgb, [])) == []
    from_jpeg = run(faces.sub_labels(frame, boxes))
    from_picture = run(faces.sub_labels_picture(rgb, boxes))
    print("jpeg:", from_jpeg, "picture:", from_picture)
    assert [label[0] if label else None for label in from_picture] == ["obama", "biden"]
    for a, b in zip(from_jpeg, from_picture, strict=True):
        assert a is not None and b is not None and abs(a[1] - b[1]) < 0.02
    with pytest.raises(BadRequest):
        run(faces.sub_labels_picture(rgb[:, :, 0], boxes))


def test_detect_with_faces_names_each_person_through_a_server_process(
    models_dir: Path, runtime: str, run: Runner, images_dir: Path, tmp_path: Path
) -> None:
    """People registered in a data folder, then a real server on it with the SSD detector:
    /detect?faces=1 gives each person box the recognised name as its sub label (the
    confidence as its sub score); without faces=1 there is none; /healthz gives the threshold."""
    photos = _photos(images_dir)
    store = faces_for(_settings(models_dir, runtime, data_dir=tmp_path), Metrics())
    assert store is not None
    run(store.start())
    try:
        for name in ("obama", "biden"):
            run(store.register(name, [photos[name][0].read_bytes()]))
    finally:
        run(store.close())
    server = ServerProcess(
        server_env(models_dir, runtime, model="objects", data_dir=str(tmp_path)), free_port()
    )
    try:
        server.wait_ready()
        group = (images_dir / "faces/groups/two_people.jpg").read_bytes()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            plain = client.post("/detect", content=group, headers={"content-type": "image/jpeg"})
            named = client.post(
                "/detect",
                params={"faces": "1"},
                content=group,
                headers={"content-type": "image/jpeg"},
            )
            health = client.get("/healthz")
    finally:
        server.stop()
    assert plain.status_code == named.status_code == 200, named.text
    assert health.json()["faces"] == {
        "people": 2,
        "threshold": 0.6,
        "effective_threshold": 0.6,
        "calibrated": True,
        "descriptor": "dlib_face_recognition_resnet_model_v1",
    }
    people = [d for d in named.json()["detections"] if d["label"] == "person"]
    assert {d["sub_label"] for d in people} >= {"obama", "biden"}
    assert all(d["sub_score"] >= 0.67 for d in people if d["sub_label"])
    assert all(d.get("sub_label") is None for d in plain.json()["detections"])


def test_the_calibration_maps_the_threshold_to_the_default_confidence() -> None:
    """Distance 0 is 1.0, EDGE_FACE_THRESHOLD is 0.67, farther is below, never under 0."""
    calibration = Calibration(0.6, 0.67)
    assert calibration.confidence(0.0) == 1.0
    assert calibration.confidence(0.6) == pytest.approx(0.67)
    assert calibration.confidence(0.61) < 0.67
    assert calibration.confidence(5.0) == 0.0
    assert calibration.confidence(float("inf")) == 0.0
    assert np.isfinite(calibration.confidence(0.3))


def test_the_short_range_detector_finds_the_same_faces(
    models_dir: Path, runtime: str, run: Runner, images_dir: Path
) -> None:
    """EDGE_FACE_DETECTOR=short loads the 128x128 model (its graph's 0.5 score), which finds
    the one face of a portrait and both of a group photo."""
    faces = faces_for(_settings(models_dir, runtime, face_detector="short"), Metrics())
    assert faces is not None and faces.files[0].name == "face_detection_short_range.tflite"
    run(faces.start())
    try:
        for name, count in (("obama/obama.jpg", 1), ("groups/two_people.jpg", 2)):
            data = (images_dir / "faces" / name).read_bytes()
            answer = run(faces.find(data, min_confidence=0.5, started=time.perf_counter()))
            assert len(answer.faces) == count, name
    finally:
        run(faces.close())


def test_faces_are_off_without_their_files_or_dlib(
    models_dir: Path, runtime: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No face files, EDGE_FACES off, or no dlib installed: no face service (the rest of the
    server starts and serves); with all there, one."""
    assert faces_for(_settings(tmp_path, runtime)) is None
    assert faces_for(_settings(models_dir, runtime, faces=False)) is None
    assert faces_for(_settings(models_dir, runtime)) is not None
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "dlib" else real(name, *a)
    )
    assert faces_for(_settings(models_dir, runtime)) is None


def test_a_damaged_person_file_is_left_alone_and_the_rest_served(
    models_dir: Path, runtime: str, run: Runner, images_dir: Path, tmp_path: Path
) -> None:
    """A person file that is not JSON, or names nobody valid, is logged and skipped at start;
    the other people are served."""
    photos = _photos(images_dir)
    settings = _settings(models_dir, runtime, data_dir=tmp_path)
    first = faces_for(settings, Metrics())
    assert first is not None
    run(first.start())
    try:
        run(first.register("biden", [photos["biden"][0].read_bytes()]))
    finally:
        run(first.close())
    folder = tmp_path / "faces"
    (folder / "torn.person").write_bytes(b'{"userid": "x", "added": [1], "vec')
    (folder / "bad.person").write_bytes(b'{"userid": "\\u0007", "added": [], "vectors": ""}')
    second = faces_for(settings, Metrics())
    assert second is not None
    run(second.start())
    try:
        assert second.people() == ["biden"]
    finally:
        run(second.close())


def test_dlib_workers_default_to_two_and_one_where_memory_or_cpus_are_short() -> None:
    """Two workers by default; one on one CPU or under a memory limit below 1 GiB."""
    gib = 2**30
    assert default_workers(4 * gib, cpus=4) == 2
    assert default_workers(None, cpus=2) == 2
    assert default_workers(512 * 2**20, cpus=4) == 1
    assert default_workers(4 * gib, cpus=1) == 1


def test_the_threshold_is_calibrated_on_each_change_of_the_people(
    faces: Faces, run: Runner, images_dir: Path
) -> None:
    """Five people far apart keep 0.6, a look-alike registered lowers it, deleting restores it."""
    photos = _photos(images_dir)
    for name, paths in photos.items():
        run(faces.register(name, [paths[0].read_bytes()]))
    assert faces.status() == {
        "people": 5,
        "threshold": 0.6,
        "effective_threshold": 0.6,
        "calibrated": True,
        "descriptor": "dlib_face_recognition_resnet_model_v1",
    }
    obama = photos["obama"]
    run(faces.register("look-alike", [obama[1].read_bytes()]))
    gallery = spread(faces.people_store.vectors())
    assert set(gallery.people or ()) == {"obama", "look-alike"}
    assert gallery.closest_different < 0.6
    effective = faces.status()["effective_threshold"]
    assert effective == round(max(0.4, gallery.widest_same, gallery.closest_different - 0.05), 4)
    assert effective < 0.6
    [(userid, confidence, _)] = _recognise(faces, run, obama[2])
    assert userid in ("obama", "look-alike") and confidence >= 0.67
    run(faces.delete("look-alike"))
    assert faces.status()["effective_threshold"] == 0.6
