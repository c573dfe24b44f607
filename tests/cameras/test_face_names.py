"""When a camera tries a person's face (bounded, about once a second) and how a recognition
names their event (the surest kept, told with a face update); pure, no models."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
import numpy.typing as npt

from edge_server.cameras.events import Lifecycle
from edge_server.cameras.face_names import FACE_TRIES, NAMED_TRIES, FaceTries, faces_on
from edge_server.config.settings import Settings
from edge_server.core.tracking import Observation, Tracker
from edge_server.serving import specs
from edge_server.serving.service import Service

FRAME = np.full((360, 640, 3), 90, np.uint8)


def _rgb() -> npt.NDArray[np.uint8]:
    return FRAME


def test_an_object_is_tried_at_most_once_a_second_and_a_bounded_number_of_times() -> None:
    """Tries a second apart, never closer; FACE_TRIES in all for an unnamed object, and
    NAMED_TRIES more once named; a forgotten object starts again."""
    tries = FaceTries()
    assert tries.due("a", 100.0, named=False)
    tries.tried("a", 100.0, named=False)
    assert not tries.due("a", 100.5, named=False)
    assert tries.due("a", 101.0, named=False)
    made = 1
    now = 101.0
    while tries.due("a", now, named=False):
        tries.tried("a", now, named=False)
        made += 1
        now += 1.0
    assert made == FACE_TRIES
    tries.tried("b", 100.0, named=False)
    named = 0
    now = 101.0
    while tries.due("b", now, named=True):
        tries.tried("b", now, named=True)
        named += 1
        now += 1.0
    assert named == NAMED_TRIES
    tries.keep({"b"})
    assert tries.due("a", now, named=False)  # forgotten: a new object of the same id
    assert not tries.due("b", now, named=True)


def test_a_recognition_names_a_confirmed_person_and_only_a_surer_one_replaces_it() -> None:
    """The first recognition is an `update` with the sub_label and a face update in
    Frigate's shape; a less sure one tells nothing; a surer one replaces it; an object not yet
    confirmed is never named."""
    lifecycle = Lifecycle("front", width=640, height=360, threshold=0.7)
    tracker = Tracker()
    box = (200, 50, 320, 350)
    now = 1000.0
    _, ended = tracker.update([Observation("person", 0.6, box)], now)
    [track] = tracker.tracks
    lifecycle.observe(tracker.tracks, ended, frame_time=now, rgb=_rgb, regions={}, seen=[track])
    assert lifecycle.recognise(track, "alice", 0.8, now) == []  # not confirmed yet
    for n in range(1, 4):
        now = 1000.0 + n / 5
        _, ended = tracker.update([Observation("person", 0.9, box)], now)
        lifecycle.observe(
            tracker.tracks, ended, frame_time=now, rgb=_rgb, regions={}, seen=tracker.tracks
        )
    obj = lifecycle.object_of(track)
    assert obj is not None and not obj.false_positive
    [named] = lifecycle.recognise(track, "alice", 0.8, now)
    assert named.type == "update" and named.after["sub_label"] == ["alice", 0.8]
    assert named.face is not None
    assert named.face.payload() == {
        "type": "face",
        "id": obj.id,
        "name": "alice",
        "score": 0.8,
        "camera": "front",
        "timestamp": now,
    }
    assert lifecycle.recognise(track, "bob", 0.7, now + 1) == []
    assert obj.sub_label == ("alice", 0.8)
    [surer] = lifecycle.recognise(track, "alice", 0.9, now + 2)
    assert surer.after["sub_label"] == ["alice", 0.9] and surer.before["sub_label"] == [
        "alice",
        0.8,
    ]


def test_the_faces_option_follows_the_face_service_unless_a_table_says(tmp_path: Path) -> None:
    """`faces` left out of [cameras.NAME] is on exactly when faces are served; `faces =
    false` is off either way; `faces = true` without the face service is off."""
    config = tmp_path / "models.toml"
    config.write_text(
        "[cameras.door]\nurl = 'rtsp://127.0.0.1/door'\n"
        "[cameras.street]\nurl = 'rtsp://127.0.0.1/street'\nfaces = false\n"
        "[cameras.hall]\nurl = 'rtsp://127.0.0.1/hall'\nfaces = true\n"
    )
    cameras = specs.cameras(Settings(models_config=config))
    assert (cameras["door"].faces, cameras["street"].faces, cameras["hall"].faces) == (
        None,
        False,
        True,
    )
    served = cast(Service, SimpleNamespace(faces=object()))
    unserved = cast(Service, SimpleNamespace(faces=None))
    assert [faces_on(c, served) for c in cameras.values()] == [True, False, True]
    assert [faces_on(c, unserved) for c in cameras.values()] == [False, False, False]
