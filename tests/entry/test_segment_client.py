"""Client.segment, Client.segment_picture and `edge-server segment --url`, against a real server
process serving the segmenter beside the default classifier."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_server.client import Client, Refused

from conftest import DEFAULT_MODEL, ServerProcess, free_port, server_env

Photo = Callable[[str], bytes]
SEGMENTER = "deeplabv3_mnv2_pascal_quant"
PERSON = 15
# The left half of grace_hopper.jpg, where most of her uniform is.
LEFT = {"left": [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]}


@pytest.fixture(scope="module")
def segmenting(models_dir: Path, runtime: str) -> Iterator[ServerProcess]:
    """A real server process with the segmenter (the default) and the default classifier."""
    process = ServerProcess(
        server_env(models_dir, runtime, model=f"segmenter,{DEFAULT_MODEL}"), free_port()
    )
    process.wait_ready()
    yield process
    process.stop()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "edge_server", "segment", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _mask_ids(data: str) -> np.ndarray:
    picture = Image.open(io.BytesIO(base64.b64decode(data)))
    assert picture.mode == "P"
    return np.asarray(picture)


def test_client_segments_with_regions_and_the_mask(segmenting: ServerProcess, photo: Photo) -> None:
    """Client.segment answers the typed classes, what covers a named region and the mask,
    whose person pixels are the person's share of the picture."""
    answer = Client(segmenting.url).segment(photo("grace_hopper.jpg"), mask=True, regions=LEFT)
    assert answer.model.name == SEGMENTER
    person = next(c for c in answer.classes if c.label == "person")
    assert 0.4 < person.fraction < 0.9 and person.index == PERSON
    assert {c.label for c in answer.classes} <= {"person", "background"}
    (region,) = answer.regions or []
    assert region.name == "left" and 256 * 600 <= region.pixels <= 258 * 600  # edges drawn
    assert region.classes[0].label == "person"
    assert answer.mask is not None and (answer.mask.width, answer.mask.height) == (512, 600)
    ids = _mask_ids(answer.mask.data)
    assert ids.shape == (600, 512)
    assert int((ids == PERSON).sum()) == person.pixels
    assert answer.mask.legend[PERSON].color == (192, 128, 128)


def test_client_segment_without_options_has_no_mask_or_regions(
    segmenting: ServerProcess, photo: Photo
) -> None:
    """Without mask or regions the answer carries neither; with a crop, fractions are of the
    crop and boxes lie inside it."""
    client = Client(segmenting.url)
    whole = client.segment(photo("grace_hopper.jpg"))
    assert whole.mask is None and whole.regions is None
    top = client.segment(photo("grace_hopper.jpg"), crop="0,0,1,0.1")
    assert sum(c.pixels for c in top.classes) == 512 * 60
    assert sum(c.fraction for c in top.classes) == pytest.approx(1.0, abs=1e-5)
    assert all(c.box.y_min >= 0 and c.box.y_max <= 60 for c in top.classes)


def test_client_segment_pictures(segmenting: ServerProcess, photo: Photo) -> None:
    """segment_picture answers the overlay as a JPEG, the cut-out as a PNG transparent where
    the mask is background, and a person blurred as a JPEG that differs only where she is."""
    client = Client(segmenting.url)
    data = photo("grace_hopper.jpg")
    ids = _mask_ids(client.segment(data, mask=True).mask.data)  # type: ignore[union-attr]
    overlay = Image.open(io.BytesIO(client.segment_picture(data)))
    assert overlay.format == "JPEG" and overlay.size == (512, 600)
    cutout = Image.open(io.BytesIO(client.segment_picture(data, format="cutout")))
    assert cutout.format == "PNG" and cutout.mode == "RGBA"
    alpha = np.asarray(cutout)[..., 3]
    assert np.array_equal(alpha > 0, ids != 0)
    kept = Image.open(io.BytesIO(client.segment_picture(data, format="cutout", labels=["cat"])))
    assert not np.asarray(kept)[..., 3].any()  # no cat in the photo: nothing kept
    blurred = np.asarray(Image.open(io.BytesIO(client.segment_picture(data, format="blur"))))
    plain = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    change = np.abs(blurred.astype(int) - plain.astype(int)).max(axis=2)
    assert change[ids == PERSON].mean() > 3 * change[ids == 0].mean()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c, d: c.segment_picture(d, format="sketch"), "format 'sketch' is not one of"),
        (lambda c, d: c.segment_picture(d, format="blur", labels=["martian"]), "'martian'"),
        (lambda c, d: c.segment(d, regions={"a": [(0, 0), (1, 1)]}), "3 to 64 corners"),
        (lambda c, d: c.segment(d, model=DEFAULT_MODEL), "classification"),
    ],
    ids=["format", "label", "region", "classifier"],
)
def test_client_segment_refusals_say_what_is_allowed(
    segmenting: ServerProcess,
    photo: Photo,
    call: Callable[[Client, bytes], object],
    message: str,
) -> None:
    """A bad format, label, region or model is a Refused 400 carrying the server's detail."""
    with pytest.raises(Refused, match=message) as refused:
        call(Client(segmenting.url), photo("grace_hopper.jpg"))
    assert refused.value.status == 400


def test_cli_segments_with_the_server(
    segmenting: ServerProcess, images_dir: Path, tmp_path: Path
) -> None:
    """`segment --url` prints the table (label, % of picture, box) and writes the overlay;
    --json prints the server's answer with the region."""
    out = tmp_path / "overlay.jpg"
    photo = str(images_dir / "grace_hopper.jpg")
    table = _cli("--url", segmenting.url, "--out", str(out), photo)
    assert table.returncode == 0, table.stderr
    person = next(line for line in table.stdout.splitlines() if "person" in line)
    assert person.split()[1].endswith("%") and "(0, " in person
    assert SEGMENTER in table.stdout and f"wrote the overlay to {out}" in table.stdout
    with Image.open(out) as written:
        assert written.format == "JPEG" and written.size == (512, 600)
    result = _cli("--url", segmenting.url, "--json", "--regions", json.dumps(LEFT), photo)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["url"] == segmenting.url and answer["file"] == photo
    assert answer["model"]["name"] == SEGMENTER
    assert answer["regions"][0]["name"] == "left"
    assert "mask" not in answer


def test_cli_local_and_remote_agree(
    segmenting: ServerProcess, images_dir: Path, models_dir: Path, runtime: str
) -> None:
    """The local segmenter and the server find the same classes in the same shares."""
    photo = str(images_dir / "kite_and_cold.jpg")
    remote = _cli("--url", segmenting.url, "--json", photo)
    local = _cli("--json", "--models-dir", str(models_dir), "--runtime", runtime, photo)
    assert remote.returncode == 0 and local.returncode == 0, remote.stderr + local.stderr
    theirs = {c["label"]: c["fraction"] for c in json.loads(remote.stdout)["classes"]}
    ours = {c["label"]: c["fraction"] for c in json.loads(local.stdout)["classes"]}
    assert theirs.keys() == ours.keys()
    assert all(abs(theirs[k] - ours[k]) < 0.002 for k in theirs), (theirs, ours)


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("http://127.0.0.1:{port}", 1, "cannot reach http://127.0.0.1:"),
        ("{server}/not-here", 1, "refused the request: 404 Not Found"),
        ("ftp://127.0.0.1", 2, "not an http:// or https:// URL"),
    ],
    ids=["unreachable", "wrong-path", "bad-scheme"],
)
def test_cli_segment_stops_with_a_clear_message(
    segmenting: ServerProcess, images_dir: Path, url: str, status: int, message: str
) -> None:
    """Unreachable, refusing or malformed --url: its exit status, one line, no traceback."""
    target = url.format(port=free_port(), server=segmenting.url)
    result = _cli("--url", target, str(images_dir / "grace_hopper.jpg"))
    assert result.returncode == status and message in result.stderr, result.stderr
    assert result.stderr.count("edge-server:") == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
