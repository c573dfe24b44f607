"""Labels: files, the copy embedded in the model, and matching them to the outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_server.core.errors import StartupError
from edge_server.core.labels import align_labels, embedded_labels, load_labels, parse_labels

from conftest import DEFAULT_MODEL


def test_parse_labels_plain_and_numbered() -> None:
    """Plain lines are labels; "0 cat" / "1: dog" numbering is stripped; trailing blanks ignored."""
    assert parse_labels("background\ncat\ndog\n\n") == ["background", "cat", "dog"]
    assert parse_labels("0 cat\n1: dog\n2 hot dog\n") == ["cat", "dog", "hot dog"]


def test_labels_end_at_the_first_blank_line(models_dir: Path) -> None:
    """A note after a blank line is not a label: PASCAL VOC's file has 21, tvmonitor last."""
    assert parse_labels("\n\ncat\ndog\n\nthe ids follow the devkit.\n") == ["cat", "dog"]
    labels = parse_labels((models_dir / "pascal_voc_segmentation_labels.txt").read_text())
    assert len(labels) == 21 and labels[0] == "background" and labels[-1] == "tvmonitor"
    assert labels[15] == "person"


def test_embedded_labels_equal_the_shipped_labels_file(models_dir: Path) -> None:
    """The labels inside the model zip are the 1001 ImageNet labels, background first."""
    labels = embedded_labels(models_dir / f"{DEFAULT_MODEL}.tflite")
    assert labels == parse_labels((models_dir / "imagenet_labels.txt").read_text())
    assert labels is not None and len(labels) == 1001 and labels[0] == "background"


def test_a_model_without_embedded_labels_needs_a_labels_file(tmp_path: Path) -> None:
    """A plain flatbuffer with no zip part is a clear start-up error naming EDGE_LABELS."""
    model = tmp_path / "bare.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
    with pytest.raises(StartupError, match="EDGE_LABELS"):
        load_labels(model, None)


def test_labels_missing_background_are_shifted_by_one() -> None:
    """1000 labels for 1001 outputs: output 0 is background, the rest line up."""
    labels = [f"class{i}" for i in range(1000)]
    aligned = align_labels(labels, 1001, "labels.txt")
    assert aligned[0] == "background" and aligned[1] == "class0" and len(aligned) == 1001


def test_mismatched_labels_name_both_numbers() -> None:
    """965 labels for 1001 outputs stops start-up, naming both counts."""
    with pytest.raises(StartupError, match=r"965 labels but the model has 1001 outputs"):
        align_labels(["x"] * 965, 1001, "inat_bird_labels.txt")
