"""Frigate's routes and /v1/cameras when a camera cannot be read: the server serves on, the
camera's state says why, and what is missing is a 404 problem+json.

In-process, with a camera at a port where nothing listens (the tests with real cameras and
events are tests/cameras/test_end_to_end.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge_server import __version__
from edge_server.app import create_app
from edge_server.config.settings import Settings
from edge_server.core.runtime import RuntimeChoice

from conftest import DETECTOR, SMALL_MODEL, free_port
from support.inprocess import in_process
from support.waiting import until

PASSWORD = "s3cret-Pa55"  # noqa: S105  # an example in a URL, checked to stay hidden


@pytest.fixture(scope="module")
def http(models_dir: Path, runtime: str) -> Iterator[httpx.Client]:
    """The app with one camera that refuses connections (nothing listens at its port)."""
    settings = Settings(
        model=[DETECTOR, SMALL_MODEL],
        models_dir=models_dir,
        runtime=RuntimeChoice(runtime),
        cameras=f"dead=rtsp://viewer:{PASSWORD}@127.0.0.1:{free_port()}/sub",
    )
    with in_process(create_app(settings)) as client:
        yield client


def test_a_camera_that_cannot_be_read_is_a_state_not_a_stop(
    http: httpx.Client, photo: Callable[[str], bytes]
) -> None:
    """The camera is reported (reconnecting, why, the URL without its password) while the
    service answers /classify."""

    def reported() -> dict[str, Any] | None:
        camera: dict[str, Any] = http.get("/v1/cameras").json()["cameras"][0]
        return camera if camera["last_error"] else None

    camera = until(reported, "the dead camera's error")
    assert camera["name"] == "dead"
    assert camera["state"] in ("connecting", "reconnecting", "failed")
    assert camera["frames"] == {"read": 0, "decoded": 0, "analysed": 0, "dropped": 0}
    assert camera["last_frame_time"] is None
    assert PASSWORD not in http.get("/v1/cameras").text
    assert camera["url"] == f"rtsp://viewer:***@127.0.0.1:{camera['url'].rsplit(':', 1)[1]}"
    image = {"image": ("grace_hopper.jpg", photo("grace_hopper.jpg"), "image/jpeg")}
    answer = http.post("/classify", params={"model": SMALL_MODEL}, files=image)
    assert answer.status_code == 200 and answer.json()["predictions"]


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/v1/cameras/dead/latest.jpg", "has no frame yet"),
        ("/v1/cameras/front/latest.jpg", "no camera 'front'; cameras: dead"),
        ("/api/front/latest.jpg?h=500", "no camera 'front'; cameras: dead"),
        ("/api/events/1765070000.1-abcdef", "no event '1765070000.1-abcdef'"),
        ("/api/events/1765070000.1-abcdef/snapshot.jpg?h=500&crop=1", "no event"),
    ],
)
def test_what_is_missing_is_a_404_problem(http: httpx.Client, path: str, named: str) -> None:
    """A camera without frames, an unknown camera or event: 404 problem+json naming it."""
    response = http.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert named in response.json()["detail"]


@pytest.mark.parametrize(
    "path", ["/api/dead/latest.jpg?h=0", "/api/events?limit=0", "/v1/cameras/dead/latest.jpg?h=x"]
)
def test_bad_parameters_are_422_problems(http: httpx.Client, path: str) -> None:
    """A height or limit out of range is refused before anything is read."""
    response = http.get(path)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_version_and_an_empty_event_list_answer_as_frigate_does(http: httpx.Client) -> None:
    """/api/version is plain text (Double Take's check); /api/events is a JSON list."""
    version = http.get("/api/version")
    assert version.status_code == 200
    assert version.headers["content-type"].startswith("text/plain")
    assert version.text == f"edge-server-{__version__}"
    for query in ("", "?camera=dead&label=person&limit=5", "?camera=all"):
        events = http.get("/api/events" + query)
        assert events.status_code == 200 and events.json() == []


KEY = "frigate-test-key-of-enough-length"


@pytest.fixture(scope="module")
def keyed(models_dir: Path, runtime: str) -> Iterator[httpx.Client]:
    """The app with an API key set (and the dead camera)."""
    settings = Settings(
        model=[DETECTOR, SMALL_MODEL],
        models_dir=models_dir,
        runtime=RuntimeChoice(runtime),
        cameras=f"dead=rtsp://127.0.0.1:{free_port()}/sub",
        api_key=KEY,
    )
    with in_process(create_app(settings)) as client:
        yield client


def test_the_sub_label_route_takes_the_key_as_the_other_routes(keyed: httpx.Client) -> None:
    """With a key set, POST /api/events/<id>/sub_label without it is a 401 problem, as GET
    /api/events is; with it, an unknown event is a 404 problem naming the id."""
    path = "/api/events/1765070000.1-abcdef/sub_label"
    for refused in (keyed.post(path, json={"subLabel": "obama"}), keyed.get("/api/events")):
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
    answer = keyed.post(path, json={"subLabel": "obama"}, headers={"X-API-Key": KEY})
    assert answer.status_code == 404
    assert "1765070000.1-abcdef" in answer.json()["detail"]
