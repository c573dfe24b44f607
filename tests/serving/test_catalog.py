"""The model catalog, resolving the model setting, and pulling models with sha256 checks."""

from __future__ import annotations

import bz2
import re
from pathlib import Path

import pytest

from edge_server.config.settings import Settings
from edge_server.core.digest import sha256_of
from edge_server.core.errors import StartupError
from edge_server.serving import catalog
from edge_server.serving.catalog import load_catalog, pull, resolve_model
from edge_server.serving.faces import faces_for

from conftest import DEFAULT_MODEL, DETECTOR, SMALL_MODEL


def test_catalog_matches_the_manifest(models_dir: Path) -> None:
    """Every catalog file (models and label maps) has the sha256 the shared MANIFEST.md lists."""
    manifest = (models_dir / "MANIFEST.md").read_text()
    listed = dict(
        re.findall(r"^\| (\S+\.(?:tflite|txt|dat)) \| ([0-9a-f]{64}) \|", manifest, re.MULTILINE)
    )
    catalog = load_catalog()
    assert DEFAULT_MODEL in catalog
    for entry in catalog.values():
        for file, sha256, url in entry.files():
            assert listed[file] == sha256
            assert url.startswith("https://")
    assert catalog[DETECTOR].task == "detection" and catalog[DETECTOR].label_file


def test_pull_fetches_a_detector_with_its_label_map(models_dir: Path, tmp_path: Path) -> None:
    """Pulling the detector by its alias brings its label map too, both verified."""
    target_dir = tmp_path / "models"
    result = pull("objects", target_dir, str(models_dir))
    assert result.path.name == f"{DETECTOR}.tflite"
    entry = load_catalog()[DETECTOR]
    assert sorted(p.name for p in target_dir.iterdir()) == sorted(
        [entry.file, str(entry.label_file)]
    )
    assert sha256_of(target_dir / str(entry.label_file)) == entry.label_sha256


def test_pull_faces_fetches_both_detectors_and_dlibs_models(
    models_dir: Path, tmp_path: Path
) -> None:
    """`models pull faces` brings the four face files, each verified, which turn faces on."""
    target_dir = tmp_path / "models"
    result = pull("faces", target_dir, str(models_dir))
    assert result.path.name == "face_detection_full_range_sparse.tflite"
    assert sorted(p.name for p in target_dir.iterdir()) == [
        "dlib_face_recognition_resnet_model_v1.dat",
        "face_detection_full_range_sparse.tflite",
        "face_detection_short_range.tflite",
        "shape_predictor_5_face_landmarks.dat",
    ]
    for file, sha256, _ in load_catalog()["face_detection_full_range_sparse"].files():
        assert sha256_of(target_dir / file) == sha256
    assert faces_for(Settings(models_dir=target_dir)) is not None
    assert faces_for(Settings(models_dir=tmp_path)) is None


def test_a_bz2_download_is_verified_decompressed(models_dir: Path, tmp_path: Path) -> None:
    """dlib's .bz2 downloads are decompressed as they are read and checked as the .dat."""
    name = "shape_predictor_5_face_landmarks.dat"
    packed = tmp_path / f"{name}.bz2"
    packed.write_bytes(bz2.compress((models_dir / name).read_bytes()))
    assert b"".join(catalog._read(str(packed))) == (models_dir / name).read_bytes()


def test_pull_from_a_folder_verifies_and_installs(models_dir: Path, tmp_path: Path) -> None:
    """Pulling from a local folder copies the file and checks its digest; again is a no-op."""
    target_dir = tmp_path / "models"
    first = pull(SMALL_MODEL, target_dir, str(models_dir))
    assert not first.already_present
    assert sha256_of(first.path) == load_catalog()[SMALL_MODEL].sha256
    assert pull(SMALL_MODEL, target_dir, str(models_dir)).already_present
    assert [p.name for p in target_dir.iterdir()] == [f"{SMALL_MODEL}.tflite"]


def test_pull_refuses_a_corrupt_copy(models_dir: Path, tmp_path: Path) -> None:
    """A file whose sha256 differs from the catalog is refused and leaves nothing behind."""
    source = tmp_path / "usb"
    source.mkdir()
    data = bytearray((models_dir / f"{SMALL_MODEL}.tflite").read_bytes())
    data[1000] ^= 0xFF
    (source / f"{SMALL_MODEL}.tflite").write_bytes(bytes(data))
    target_dir = tmp_path / "models"
    with pytest.raises(StartupError, match="sha256"):
        pull(SMALL_MODEL, target_dir, str(source))
    assert list(target_dir.iterdir()) == []


def test_pull_names_what_is_missing(tmp_path: Path) -> None:
    """An unknown name lists the catalog; an empty source folder says it cannot read the file."""
    with pytest.raises(StartupError, match=DEFAULT_MODEL):
        pull("resnet_9000", tmp_path)
    with pytest.raises(StartupError, match="cannot read"):
        pull(SMALL_MODEL, tmp_path / "models", str(tmp_path / "empty"))


def test_resolve_model_by_name_or_path(models_dir: Path, tmp_path: Path) -> None:
    """A catalog name is found in models_dir, a path as itself; a missing one says how to pull."""
    assert resolve_model(DEFAULT_MODEL, models_dir) == models_dir / f"{DEFAULT_MODEL}.tflite"
    path = models_dir / f"{SMALL_MODEL}.tflite"
    assert resolve_model(str(path), tmp_path) == path
    with pytest.raises(StartupError, match=f"edge-server models pull {DEFAULT_MODEL}"):
        resolve_model(DEFAULT_MODEL, tmp_path)
    with pytest.raises(StartupError, match="does not exist"):
        resolve_model(str(tmp_path / "nope.tflite"), tmp_path)
