"""The learned-model file: checksummed records, a torn last line, damage, and its export."""

from __future__ import annotations

import io

import pytest

from edge_server.serving import journal
from edge_server.serving.journal import BadJournal, Header

HEADER = Header("pets", "embedder", "f" * 64, 4, "uint8")


def _file(*lines: bytes) -> io.BytesIO:
    return io.BytesIO(b"".join([journal.header_line(HEADER), *lines]))


def _add(label: str, *rows: tuple[int, ...]) -> bytes:
    return journal.add_line(label, [(bytes(r), b"\xff\xd8jpeg") for r in rows])


def test_a_journal_replays_adds_forgets_and_the_threshold() -> None:
    """Adds grow classes, a forget drops one, the last threshold wins; sizes add up."""
    lines = [
        _add("cat", (1, 2, 3, 4)),
        _add("dog", (5, 6, 7, 8), (9, 9, 9, 9)),
        journal.threshold_line(0.7),
        journal.forget_line("cat"),
        _add("cat", (4, 3, 2, 1)),
        journal.threshold_line(None),
    ]
    contents = journal.replay(_file(*lines))
    assert list(contents.classes) == ["dog", "cat"]
    assert [r.tolist() for r in contents.classes["dog"]] == [[5, 6, 7, 8], [9, 9, 9, 9]]
    assert [r.tolist() for r in contents.classes["cat"]] == [[4, 3, 2, 1]]
    assert contents.threshold is None and not contents.torn
    assert contents.size == len(_file(*lines).getvalue())


def test_a_torn_last_line_is_reported_not_counted() -> None:
    """A last line without its newline (a crash mid-append) is left out and flagged."""
    whole = _file(_add("cat", (1, 1, 1, 1))).getvalue()
    torn = _add("dog", (2, 2, 2, 2))[:-5]
    contents = journal.replay(io.BytesIO(whole + torn))
    assert contents.torn and contents.size == len(whole)
    assert list(contents.classes) == ["cat"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda line: line[:20] + b"X" + line[21:], "checksum"),
        (lambda line: b"0123456789abcdef " + line[17:], "checksum"),
        (lambda line: journal.encode({"op": "add", "label": "x", "examples": []}), "examples"),
        (lambda line: journal.encode({"op": "explode"}), "unknown record"),
        (
            lambda line: journal.encode(
                {"op": "add", "label": "x", "examples": [{"embedding": "AAA=", "thumbnail": ""}]}
            ),
            "bytes, not 4",
        ),
        (lambda line: journal.encode({"op": "threshold", "value": 7}), "within 0..1"),
    ],
)
def test_damage_inside_the_file_names_the_line(damage: object, message: str) -> None:
    """A whole line that fails its checksum or its schema makes the file refused, saying
    which line."""
    assert callable(damage)
    good = _add("cat", (1, 1, 1, 1))
    with pytest.raises(BadJournal, match=message) as caught:
        journal.replay(_file(good, damage(good), good))
    assert "line 3" in str(caught.value)


@pytest.mark.parametrize(
    "data",
    [b"", b"PK\x03\x04 not a journal\n", journal.encode({"kind": "something else"})],
)
def test_what_is_not_a_journal_is_refused(data: bytes) -> None:
    """An empty file, a zip's bytes or another kind of header: BadJournal."""
    with pytest.raises(BadJournal):
        journal.replay(io.BytesIO(data))


def test_a_line_too_long_is_refused_without_reading_it_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A line past MAX_LINE with no newline is refused (a bomb of one endless line)."""
    monkeypatch.setattr(journal, "MAX_LINE", 1000)
    with pytest.raises(BadJournal, match="longer than"):
        journal.replay(_file(b"x" * 5000))


def test_the_export_keeps_only_what_still_counts() -> None:
    """live_lines: the header, adds of classes not deleted since, the last threshold; it
    replays to the same classes as the journal."""
    lines = [
        _add("cat", (1, 1, 1, 1)),
        journal.threshold_line(0.6),
        journal.forget_line("cat"),
        _add("dog", (2, 2, 2, 2)),
        _add("cat", (3, 3, 3, 3)),
        journal.threshold_line(0.65),
    ]
    source = _file(*lines)
    exported = b"".join(journal.live_lines(source))
    assert exported.count(b"\n") == 4  # header, dog, cat, threshold 0.65
    again, original = journal.replay(io.BytesIO(exported)), journal.replay(_file(*lines))
    assert again.threshold == original.threshold == 0.65
    assert {k: v.tolist() for k, v in again.classes.items()} == {
        k: v.tolist() for k, v in original.classes.items()
    }
    assert journal.thumbnails(io.BytesIO(exported)) == {
        "dog": [b"\xff\xd8jpeg"],
        "cat": [b"\xff\xd8jpeg"],
    }
