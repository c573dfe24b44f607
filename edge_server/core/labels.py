"""Class labels: from a labels file, or from the file a TFLite model embeds.

TFLite models with metadata are also zip archives whose members are the associated files, so
the embedded labels are read with `zipfile` and no metadata library.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from .errors import StartupError

BACKGROUND = "background"


def parse_labels(text: str) -> list[str]:
    """One label per line, up to the first blank line: what follows one is not a label.

    Some files add a note after the labels (PASCAL VOC's segmentation labels end with a blank
    line and a sentence about the ignore value 255); blank lines before the first label are
    skipped. Lines of the form "0 label" or "0: label" (used by some label files) keep only
    the label.
    """
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    labels = lines[: lines.index("")] if "" in lines else lines
    if labels and all(_numbered(line) for line in labels):
        return [line.split(maxsplit=1)[1].lstrip(":").strip() for line in labels]
    return labels


def _numbered(line: str) -> bool:
    head, _, rest = line.partition(" ")
    return head.rstrip(":").isdigit() and bool(rest.strip())


def embedded_labels(model_path: Path) -> list[str] | None:
    """The labels file embedded in the model, or None when it has none."""
    if not zipfile.is_zipfile(model_path):
        return None
    try:
        with zipfile.ZipFile(model_path) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".txt")]
            # Prefer a file that says it holds labels; models may embed other text too.
            names.sort(key=lambda n: ("label" not in n.lower(), n))
            if not names:
                return None
            return parse_labels(archive.read(names[0]).decode("utf-8"))
    except (zipfile.BadZipFile, UnicodeDecodeError, OSError):
        return None


def load_labels(model_path: Path, labels_path: Path | None) -> list[str]:
    """Labels from the labels file, else embedded in the model."""
    if labels_path is not None:
        try:
            return parse_labels(labels_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise StartupError(
                f"cannot read the labels file {labels_path}: {exc}",
                fix="set EDGE_LABELS to a UTF-8 text file with one label per line",
            ) from exc
    labels = embedded_labels(model_path)
    if labels is None:
        raise StartupError(
            f"{model_path} embeds no labels file",
            fix="set EDGE_LABELS (--labels) to the model's labels file",
        )
    return labels


def align_labels(labels: list[str], num_classes: int, source: str) -> list[str]:
    """Match labels to the model's outputs, or explain the mismatch.

    A labels file without the leading background class of a 1001-output model is the one
    mismatch with a known meaning: output 0 is background, so the labels shift by one.
    """
    if len(labels) == num_classes:
        return labels
    if len(labels) + 1 == num_classes and (not labels or labels[0] != BACKGROUND):
        return [BACKGROUND, *labels]
    raise StartupError(
        f"{source} has {len(labels)} labels but the model has {num_classes} outputs",
        fix="use the labels file that belongs to this model (EDGE_LABELS), or unset it to "
        "use the labels embedded in the model",
    )
