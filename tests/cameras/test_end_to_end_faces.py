"""Faces name a camera's people end to end: the app watching GStreamer's RTSP server (the
walk-in clip), the real COCO detector, BlazeFace and dlib, Obama registered through POST
/v1/faces from another photo of him while the camera runs, and a real mosquitto heard by
paho."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_server.app import create_app
from edge_server.config.settings import Settings
from edge_server.core.runtime import RuntimeChoice

from conftest import DETECTOR
from support.cameras.rtsp import RtspServer
from support.inprocess import in_process
from support.mosquitto import Mosquitto, Received, Recorder
from support.waiting import until

pytestmark = pytest.mark.lan

PREFIX = "edge-server/faces"
KEY = "camera-faces-key-0123456789"


def _json(message: Received) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(message.payload)
    return document


def test_a_person_registered_while_the_camera_runs_is_named_on_mqtt_and_home_assistant(
    tmp_path: Path, models_dir: Path, runtime: str, images_dir: Path, rtsp_server: RtspServer
) -> None:
    """Nobody registered, the camera names nobody; once Obama is registered over HTTP, on the
    broker: the person's event gets an update with sub_label ["obama", c], Frigate's
    face message on <prefix>/tracked_object_update names him with that event's id and score,
    the camera's retained face topic holds the name, Home Assistant is told of the camera's
    "last recognised face" sensor reading that topic, and /v1/cameras says it names people;
    deleting him clears the retained name."""
    (tmp_path / "mosquitto").mkdir()
    broker = Mosquitto(tmp_path / "mosquitto")
    recorder = Recorder(broker.anonymous_port)
    try:
        recorder.subscribe(f"{PREFIX}/#", "homeassistant/#")
        config = tmp_path / "models.toml"
        # The COCO detector scores the pasted portrait 0.73-0.75 "person": confirm below that.
        config.write_text("[cameras.walk]\nthreshold = 0.6\n")
        settings = Settings(
            models_config=config,
            model=[DETECTOR],
            models_dir=models_dir,
            runtime=RuntimeChoice(runtime),
            data_dir=tmp_path / "data",
            face_workers=1,
            api_key=KEY,
            cameras=f"walk={rtsp_server.url()}",
            mqtt_url=broker.url(),
            mqtt_prefix=PREFIX,
            node_id="faces",
        )
        photo = (images_dir / "faces" / "obama" / "obama1.jpg").read_bytes()
        with in_process(create_app(settings)) as client:
            client.headers["X-API-Key"] = KEY
            [camera] = client.get("/v1/cameras").json()["cameras"]
            assert camera["faces"] is False  # nobody to recognise: nothing tried
            registered = client.post(
                "/v1/faces", data={"name": "obama"}, files={"image": ("obama1.jpg", photo)}
            )
            assert registered.status_code == 201, registered.text
            [update] = recorder.wait_for(
                lambda m: m.topic == f"{PREFIX}/tracked_object_update", timeout=90
            )
            face = _json(update)
            print("face update:", face)
            assert face["type"] == "face" and face["name"] == "obama"
            assert face["camera"] == "walk" and 0 < face["score"] <= 1
            assert set(face) == {"type", "id", "name", "score", "camera", "timestamp"}
            named = until(
                lambda: [
                    e
                    for m in list(recorder.messages)
                    if m.topic == f"{PREFIX}/events"
                    and (e := _json(m))["after"]["id"] == face["id"]
                    and e["after"]["sub_label"] is not None
                ],
                "the event naming the person",
            )
            assert named[0]["type"] == "update"
            assert named[0]["after"]["sub_label"] == ["obama", face["score"]]
            assert named[0]["after"]["label"] == "person"
            assert recorder.wait_for(lambda m: m.topic == f"{PREFIX}/walk/face")
            late = Recorder(broker.anonymous_port)  # subscribes after: gets the retained one
            try:
                late.subscribe(f"{PREFIX}/walk/face")
                [last] = late.wait_for(lambda m: m.topic == f"{PREFIX}/walk/face")
            finally:
                late.close()
            assert last.retain
            assert _json(last) == {
                "name": "obama",
                "score": face["score"],
                "time": face["timestamp"],
                "event_id": face["id"],
            }
            [discovery] = recorder.wait_for(
                lambda m: (
                    m.topic.startswith("homeassistant/sensor/")
                    and m.topic.endswith("_camera_walk_face/config")
                )
            )
            sensor = _json(discovery)
            assert sensor["name"] == "last recognised face"
            assert sensor["state_topic"] == f"{PREFIX}/walk/face"
            assert sensor["device"]["name"] == "walk"
            [camera] = client.get("/v1/cameras").json()["cameras"]
            assert camera["name"] == "walk" and camera["faces"] is True
            # Deleted with the person: the retained name is cleared (an empty retained message).
            assert client.delete("/v1/faces/obama").status_code == 204
            assert recorder.wait_for(
                lambda m: m.topic == f"{PREFIX}/walk/face" and m.payload == b""
            )
    finally:
        recorder.close()
        broker.stop()
