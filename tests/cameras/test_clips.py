"""The test clips show what the camera tests rely on: a person the COCO detector finds while
they stand in the scene, and nothing it calls a person before or after."""

from __future__ import annotations

from pathlib import Path

from support.cameras.clips import Clip
from support.detections import reference

DETECTOR = "ssd_mobilenet_v1_coco_quant.tflite"
LABEL_MAP = "coco_ssd_labelmap.txt"


def _people(models_dir: Path, jpeg: bytes) -> list[float]:
    found = reference(models_dir / DETECTOR, models_dir / LABEL_MAP, jpeg, 0.5)
    return [f.score for f in found if f.label == "person"]


def test_walk_in_clip_has_the_person_only_while_they_stand(
    models_dir: Path, walk_clip: Clip, walk_jpegs: list[bytes]
) -> None:
    """Before person_in and after person_out no person scores 0.5; standing (half a second
    after the slide-in to half a second before the slide-out) one scores above 0.7."""
    assert len(walk_jpegs) == walk_clip.frames
    assert walk_clip.person_in is not None and walk_clip.person_out is not None
    fps = walk_clip.fps
    before = walk_jpegs[int(walk_clip.person_in * fps) - 1]
    after = walk_jpegs[int(walk_clip.person_out * fps) + 1]
    standing = walk_jpegs[
        int(walk_clip.person_in * fps) + fps : int(walk_clip.person_out * fps) - fps : fps
    ]
    assert _people(models_dir, before) == []
    assert _people(models_dir, after) == []
    scores = [max(_people(models_dir, jpeg), default=0.0) for jpeg in standing]
    print("person scores while standing:", [round(s, 2) for s in scores])
    assert min(scores) > 0.7
