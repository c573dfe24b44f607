"""`python -m benchmarks.accuracy` runs end to end on a few labelled photos; its reference
protocol is the published one."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.accuracy import CENTRAL_FRACTION, labelled_photos, reference_input

from conftest import SMALL_MODEL
from support.benchmarking import run_benchmark

_ROW = re.compile(r"\| (\S+) \| ([^|]+) \| ([0-9.]+) % \| ([0-9.]+) % \| ([^|]*) \|")


def _few_photos(images_dir: Path, folder: Path, count: int) -> int:
    """The first `count` photos of the labelled sample and their LABELS.tsv, in `folder`."""
    sample = images_dir / "imagenet-sample"
    lines = (sample / "LABELS.tsv").read_text(encoding="utf-8").splitlines()
    folder.mkdir()
    (folder / "LABELS.tsv").write_text("\n".join(lines[: count + 1]) + "\n", encoding="utf-8")
    for line in lines[1 : count + 1]:
        name = line.split("\t")[0]
        shutil.copyfile(sample / name, folder / name)
    return count


def test_table_has_a_row_per_mode_and_the_reference(
    models_dir: Path, images_dir: Path, runtime: str, tmp_path: Path
) -> None:
    """Three photos give a row per resize mode and a reference row whose numbers parse as
    hits out of three, the model's declared fit marked as its default."""
    photos = _few_photos(images_dir, tmp_path / "few", 3)
    output = run_benchmark(
        "benchmarks.accuracy",
        *("--models", SMALL_MODEL, "--runtime", runtime),
        *("--models-dir", str(models_dir), "--images", str(tmp_path / "few")),
    )
    rows = _ROW.findall(output)
    assert [model for model, *_ in rows] == [SMALL_MODEL] * 4
    fits = [fit.strip() for _, fit, _, _, _ in rows]
    assert fits[:3] == ["squash", "center-crop (default)", "letterbox"]
    assert fits[3].startswith("reference")
    default_hits = float(rows[1][2]) * photos / 100
    for _, fit, top1, top5, paired in rows:
        hits1, hits5 = float(top1) * photos / 100, float(top5) * photos / 100
        # Whole photos of three (the table prints one decimal).
        assert abs(hits1 - round(hits1)) < 0.01 and abs(hits5 - round(hits5)) < 0.01
        assert 0 <= hits1 <= hits5 <= photos  # a first place is among the first five
        if "(default)" in fit:
            assert paired.strip() == ""
            continue
        counts = re.fullmatch(r"\+(\d+) / -(\d+)", paired.strip())
        assert counts, paired
        gained, lost = int(counts.group(1)), int(counts.group(2))
        assert round(hits1) - round(default_hits) == gained - lost  # the paired counts add up


def test_labels_table_names_existing_photos_and_classes(images_dir: Path) -> None:
    """LABELS.tsv of the sample names 100 photos on disk, each a class of the 1001."""
    photos = labelled_photos(images_dir)
    assert len(photos) == 100
    assert all(p.path.is_file() and 1 <= p.index <= 1000 for p in photos)


def test_reference_keeps_the_central_part_of_each_side() -> None:
    """The reference input is the central 87.5 % of each side (a framed picture whose border
    lies outside that part comes out as its inside colour alone), resized to the input."""
    side = 400
    border = round(side * (1 - CENTRAL_FRACTION) / 2) - 2  # just inside the cut
    picture = Image.new("RGB", (side, side), (250, 0, 0))
    picture.paste((0, 0, 250), (border, border, side - border, side - border))
    encoded = io.BytesIO()
    picture.save(encoded, "PNG")
    tensor = reference_input(encoded.getvalue(), (64, 64), np.uint8)
    assert tensor.shape == (1, 64, 64, 3) and tensor.dtype == np.uint8
    assert int(tensor[..., 0].max()) == 0 and int(tensor[..., 2].min()) == 250
