"""The edge-server command: start-up failures, local classify, info and models pull."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DEFAULT_MODEL, SMALL_MODEL, free_port


def _run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    base["EDGE_RUNTIME"] = os.environ.get("EDGE_RUNTIME", "auto")
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "edge_server", *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=timeout,
        check=False,
    )


def _serve(models_dir: Path, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    return _run(
        "serve",
        "--port",
        str(free_port()),
        "--models-dir",
        str(models_dir),
        *flags,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ("--labels", "{models}/inat_bird_labels.txt"),
            "965 labels but the model has 1001 outputs",
        ),
        (("--model", "{tmp}/missing.tflite"), "does not exist"),
        (("--model", "{tmp}/not-a-model.tflite"), "not a TFLite model"),
        (("--model", "mobilenet_v1_1.0_224_quant_nonexistent"), "unknown model"),
        (("--num-threads", "zero"), "EDGE_NUM_THREADS (--num-threads)"),
        (("--resize", "stretch"), "EDGE_RESIZE (--resize)"),
        (("--runtime", "onnx"), "EDGE_RUNTIME (--runtime)"),
        (("--models-config", "{tmp}/bad.toml"), "is not valid TOML"),
        (("--model", "birds,mobilenet_v2_1.0_224_inat_bird_quant"), "both stand for"),
        (("--model", "birds,tiny,imagenet", "--max-models", "2"), "at most 2 may be loaded"),
        (("--mdns", "on"), "EDGE_MDNS=on, but EDGE_HOST=127.0.0.1"),
        (
            ("--mdns", "on", "--host", "0.0.0.0", "--mdns-interfaces", "no-such-if0"),  # noqa: S104
            "match no interface address",
        ),
        (("--mdns-name", "kitchen.pi"), "EDGE_MDNS_NAME (--mdns-name)"),
    ],
    ids=[
        "labels-mismatch",
        "missing-file",
        "not-a-model",
        "unknown-name",
        "threads",
        "resize",
        "runtime",
        "models-config",
        "duplicate-alias",
        "too-many-models",
        "mdns-on-loopback",
        "mdns-no-interface",
        "mdns-name",
    ],
)
def test_serve_refuses_to_start_with_a_clear_message(
    models_dir: Path, tmp_path: Path, flags: tuple[str, ...], message: str
) -> None:
    """Bad model, labels or settings: serve exits non-zero, says what is wrong and a fix."""
    (tmp_path / "not-a-model.tflite").write_text("this is a README, not a model\n" * 10)
    (tmp_path / "bad.toml").write_text("[models.feeder\nmodel = birds\n")
    args = [f.format(models=models_dir, tmp=tmp_path) for f in flags]
    result = _serve(models_dir, *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "fix:" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_names_the_pull_command_when_the_default_model_is_missing(tmp_path: Path) -> None:
    """With an empty models folder, serve says to run `edge-server models pull`."""
    result = _serve(tmp_path)
    assert result.returncode == 2
    assert f"edge-server models pull {DEFAULT_MODEL}" in result.stderr


def test_bad_environment_setting_is_named(models_dir: Path) -> None:
    """A bad EDGE_* value in the environment stops start-up naming the variable."""
    result = _serve(models_dir, EDGE_MAX_UPLOAD_BYTES="lots")
    assert result.returncode == 2
    assert "EDGE_MAX_UPLOAD_BYTES" in result.stderr


def test_classify_prints_json_for_scripts(models_dir: Path, images_dir: Path) -> None:
    """`classify --json` prints the top-k of each file; a bad file fails the exit status."""
    result = _run(
        "classify",
        "--json",
        "--top-k",
        "2",
        "--models-dir",
        str(models_dir),
        str(images_dir / "parrot.jpg"),
        str(images_dir / "coffee.png"),
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["model"] == DEFAULT_MODEL
    assert [r["predictions"][0]["label"] for r in answer["results"]] == ["macaw", "espresso"]
    assert all(len(r["predictions"]) == 2 for r in answer["results"])


def test_classify_table_and_failures(models_dir: Path, images_dir: Path, tmp_path: Path) -> None:
    """The table names file and label; an unreadable image is reported and exits 1."""
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    result = _run(
        "classify", "--models-dir", str(models_dir), str(images_dir / "grace_hopper.jpg"), str(bad)
    )
    assert result.returncode == 1
    assert "grace_hopper.jpg" in result.stdout and "military uniform" in result.stdout
    assert "bad.jpg" in result.stderr and "not an image" in result.stderr


def test_info_describes_model_and_runtime(models_dir: Path) -> None:
    """`info --json` gives the model, its tensors, labels and runtime."""
    result = _run("info", "--json", "--models-dir", str(models_dir), "--num-threads", "1")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["name"] == DEFAULT_MODEL and info["labels"] == 1001 and info["num_threads"] == 1
    assert info["backend"] in ("ai-edge-litert", "tflite-runtime")


def test_models_pull_from_a_folder_setting(models_dir: Path, tmp_path: Path) -> None:
    """EDGE_MODELS_FROM makes `models pull` copy and verify from a folder (offline Pi)."""
    target = tmp_path / "models"
    env = {"EDGE_MODELS_FROM": str(models_dir), "EDGE_MODELS_DIR": str(target)}
    first = _run("models", "pull", SMALL_MODEL, env=env)
    assert first.returncode == 0, first.stderr
    assert "sha256 verified" in first.stdout
    assert (target / f"{SMALL_MODEL}.tflite").is_file()
    again = _run("models", "pull", SMALL_MODEL, env=env)
    assert "already present" in again.stdout
    listing = _run("models", "list", env=env)
    assert any(
        line.startswith("pulled ") and SMALL_MODEL in line for line in listing.stdout.splitlines()
    )


def test_detect_finds_objects_in_local_files(models_dir: Path, images_dir: Path) -> None:
    """`detect` with no model set loads the COCO detector; --only and --json; a bad file fails."""
    result = _run(
        "detect",
        "--json",
        "--only",
        "kite",
        "--models-dir",
        str(models_dir),
        str(images_dir / "kite_and_cold.jpg"),
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["model"] == "ssd_mobilenet_v1_coco_quant"
    detections = answer["results"][0]["detections"]
    assert [d["label"] for d in detections] == ["kite"] * 3
    assert all(0 <= d["box"]["x_min"] < d["box"]["x_max"] <= 1352 for d in detections)
    table = _run(
        "detect", "--models-dir", str(models_dir), str(images_dir / "parrot.jpg"), "/nonexistent"
    )
    assert table.returncode == 1 and "bird" in table.stdout and "/nonexistent" in table.stderr


def test_classify_skips_a_detector_and_refuses_one_named(
    models_dir: Path, images_dir: Path
) -> None:
    """Local `classify` with the detector first uses the classifier; naming the detector exits 2."""
    parrot = str(images_dir / "parrot.jpg")
    both = _run(
        "classify",
        "--json",
        "--models-dir",
        str(models_dir),
        "--model",
        f"objects,{SMALL_MODEL}",
        parrot,
    )
    assert both.returncode == 0, both.stderr
    assert json.loads(both.stdout)["model"] == SMALL_MODEL
    named = _run("classify", "--models-dir", str(models_dir), "--model", "objects", parrot)
    assert named.returncode == 2 and "edge-server detect" in named.stderr


def test_detect_with_a_classifier_says_which_model_to_name(
    models_dir: Path, images_dir: Path
) -> None:
    """Local `detect` on a classifier exits 2 and names --model objects."""
    result = _run(
        "detect",
        "--models-dir",
        str(models_dir),
        "--model",
        SMALL_MODEL,
        str(images_dir / "parrot.jpg"),
    )
    assert result.returncode == 2 and "--model objects" in result.stderr


def test_segment_prints_the_classes_and_writes_the_picture(
    models_dir: Path, images_dir: Path, tmp_path: Path
) -> None:
    """Local `segment` with no model set loads the segmenter: the table names each class with
    its share and box; --out FILE.png writes the cut-out (transparent background), --json the
    classes and the region in the server's shape."""
    photo = str(images_dir / "grace_hopper.jpg")
    out = tmp_path / "her.png"
    table = _run("segment", "--models-dir", str(models_dir), "--out", str(out), photo)
    assert table.returncode == 0, table.stderr
    assert "deeplabv3_mnv2_pascal_quant" in table.stdout
    rows = {line.split()[0]: line for line in table.stdout.splitlines() if "%" in line}
    assert set(rows) == {"person", "background"}
    assert "(0, 0) - (512, " in rows["background"]
    assert f"wrote the cutout to {out}" in table.stdout
    with Image.open(out) as cutout:
        alpha = np.asarray(cutout.convert("RGBA"))[..., 3]
    assert cutout.format == "PNG" and 0.4 < (alpha > 0).mean() < 0.9
    regions = '{"top": [[0, 0], [1, 0], [1, 0.5]]}'
    result = _run("segment", "--json", "--models-dir", str(models_dir), "--regions", regions, photo)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    person = next(c for c in answer["classes"] if c["label"] == "person")
    assert person["index"] == 15 and (alpha > 0).mean() == pytest.approx(person["fraction"])
    assert set(person["box"]) == {"x_min", "y_min", "x_max", "y_max"}
    assert answer["regions"][0]["name"] == "top" and answer["image"]["resize"] == "letterbox"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--regions", "[1]"), "regions is not a JSON object"),
        (("--out", "x.png", "--format", "blur"), "write it to a .jpg file"),
        (("--out", "x.jpg", "--format", "cutout"), "write it to a .png file"),
        (("--format", "overlay"), "add --out FILE"),
        (("--out", "x.jpg", "--format", "fill", "--labels", "martian"), "'martian' is not one"),
        (("--model", SMALL_MODEL), "--model segmenter"),
    ],
    ids=["regions", "blur-to-png", "cutout-to-jpg", "format-without-out", "label", "classifier"],
)
def test_segment_refuses_bad_options_with_exit_2(
    models_dir: Path, images_dir: Path, tmp_path: Path, flags: tuple[str, ...], message: str
) -> None:
    """Bad regions, a picture type its file's extension contradicts, an unknown label or a
    classifier named: exit 2, one line saying what to do, no file written."""
    named = [str(tmp_path / f) if f.endswith((".png", ".jpg")) else f for f in flags]
    result = _run(
        "segment", "--models-dir", str(models_dir), *named, str(images_dir / "grace_hopper.jpg")
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []


def test_segment_says_when_the_picture_cannot_be_written(
    models_dir: Path, images_dir: Path, tmp_path: Path
) -> None:
    """--out into a folder that does not exist: exit 1 and one line naming the file."""
    out = tmp_path / "missing" / "overlay.jpg"
    photo = str(images_dir / "grace_hopper.jpg")
    result = _run("segment", "--models-dir", str(models_dir), "--out", str(out), photo)
    assert result.returncode == 1
    assert f"cannot write {out}: No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
