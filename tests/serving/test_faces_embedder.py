"""The optional TFLite face embedder (EDGE_FACE_EMBEDDER), checked for its mechanics only.

The shared models hold no TFLite face embedder, so Coral's MobileNet v1 embedding extractor
stands in: a real TFLite model mapping an image to a vector (1024 values), but not trained on
faces. These tests check what the path does (dlib's aligned chip through the Engine, an
L2-normalised vector, the store keeping which model made a person's vectors, the start
refusing a model whose output is not a vector), never how well it tells people apart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from edge_server.config.settings import Settings
from edge_server.core.errors import BadRequest, StartupError
from edge_server.core.face_embedding import DLIB_MODEL
from edge_server.serving.faces import Faces, faces_for
from edge_server.serving.metrics import Metrics

from conftest import free_port

T = TypeVar("T")
SERVE = (sys.executable, "-m", "edge_server", "serve")
STAND_IN = "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a new loop, with a timeout against a hang."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout=120))


def _faces(models_dir: Path, runtime: str, **overrides: Any) -> Faces:
    settings = Settings(models_dir=models_dir, runtime=runtime, num_threads=1, **overrides)
    faces = faces_for(settings, Metrics())
    assert faces is not None, "the face models are in the test models folder"
    return faces


@pytest.fixture
def photos(images_dir: Path) -> dict[str, bytes]:
    """Two photos of Obama and one of Biden."""
    folder = images_dir / "faces"
    return {
        "obama": (folder / "obama/obama.jpg").read_bytes(),
        "obama2": (folder / "obama/obama2.jpg").read_bytes(),
        "biden": (folder / "biden/biden.jpg").read_bytes(),
    }


async def _distances(faces: Faces, photos: dict[str, bytes]) -> dict[str, float]:
    await faces.start()
    try:
        await faces.register("obama", [photos["obama"]])
        found = {}
        for name, data in photos.items():
            answer = await faces.recognize(data, min_confidence=0.67, started=time.perf_counter())
            [face] = answer.faces
            found[name] = face.distance
        return found
    finally:
        await faces.close()


def test_the_embedder_describes_dlibs_chip_through_the_engine(
    models_dir: Path, runtime: str, photos: dict[str, bytes]
) -> None:
    """A registered photo is found again at distance ~0; others lie on the unit sphere (0-2)."""
    faces = _faces(models_dir, runtime, face_embedder=Path(STAND_IN), face_threshold=0.3)
    found = run(_distances(faces, photos))
    assert found["obama"] < 1e-3
    assert 0.0 < found["obama2"] <= 2.0 and 0.0 < found["biden"] <= 2.0
    status = faces.status()
    assert str(status["descriptor"]).startswith(
        "tflite:mobilenet_v1_1.0_224_quant_embedding_extractor:"
    )
    # Whether Biden is farther than Obama's second photo is the stand-in's luck, not asserted.
    print("stand-in distances:", found)


def test_people_of_another_descriptor_model_are_not_matched(
    models_dir: Path,
    runtime: str,
    photos: dict[str, bytes],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """People registered with dlib are left out (logged) under an embedder, and come back
    without it; an export of them is refused by an embedder's server, saying why."""
    dlib = _faces(models_dir, runtime, data_dir=tmp_path)

    async def register() -> bytes:
        await dlib.start()
        try:
            await dlib.register("obama", [photos["obama"]])
            return dlib.export()
        finally:
            await dlib.close()

    export = run(register())
    embedded = _faces(models_dir, runtime, data_dir=tmp_path, face_embedder=Path(STAND_IN))

    async def under_embedder() -> tuple[list[str], str]:
        await embedded.start()
        try:
            people = embedded.people()
            with pytest.raises(BadRequest) as refused:
                await embedded.import_(export)
            return people, refused.value.detail
        finally:
            await embedded.close()

    with caplog.at_level(logging.WARNING, logger="edge_server"):
        people, detail = run(under_embedder())
    assert people == []
    assert "1 people were registered with another descriptor model" in caplog.text
    assert f"described by {DLIB_MODEL}" in detail and "EDGE_FACE_EMBEDDER" in detail
    assert len(list((tmp_path / "faces").glob("*.person"))) == 1  # left on disk

    again = _faces(models_dir, runtime, data_dir=tmp_path)

    async def back() -> list[str]:
        await again.start()
        try:
            return again.people()
        finally:
            await again.close()

    assert run(back()) == ["obama"]


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        ("face_detection_short_range.tflite", "[1, 896, 16], [1, 896, 1], not one vector [1, N]"),
        ("mobilenet_v1_0.25_128_quant.tflite", "gives class probabilities"),
        ("no_such_model.tflite", "is not a file"),
    ],
    ids=["detector", "classifier", "missing"],
)
def test_an_embedder_that_is_not_one_is_refused(
    models_dir: Path, runtime: str, model: str, problem: str
) -> None:
    """A detector, a classifier or no file as the embedder: the start says what and how."""
    settings = Settings(
        models_dir=models_dir, runtime=runtime, num_threads=1, face_embedder=Path(model)
    )
    with pytest.raises(StartupError) as refused:
        faces_for(settings, Metrics())
    assert problem in refused.value.problem
    assert "EDGE_FACE_EMBEDDER" in refused.value.fix


def test_serve_refuses_an_embedder_that_is_not_a_vector_model(models_dir: Path) -> None:
    """A server given a detector as its face embedder exits 2 with the problem and a fix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(
        EDGE_RUNTIME=os.environ.get("EDGE_RUNTIME", "auto"),
        EDGE_FACE_EMBEDDER="face_detection_short_range.tflite",
        EDGE_MODEL="mobilenet_v1_0.25_128_quant",
    )
    result = subprocess.run(
        [*SERVE, "--port", str(free_port()), "--models-dir", str(models_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "not one vector [1, N]" in result.stderr
    assert "fix:" in result.stderr and "Traceback" not in result.stderr
