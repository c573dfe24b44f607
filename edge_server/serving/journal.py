"""The learned-model file: a journal of checksummed records, one per line.

    <16 hex digits of the record's sha256> <the record as JSON>\\n

The first record is the header (what the file is, the embedding model it was learned with,
its output's size and type); then each change a client made is appended as one record: the
examples of one request (`add`, with each example's embedding and a small JPEG thumbnail), a
class deleted (`forget`), or the threshold set (`threshold`). A request's examples are one
record, so a crash keeps all of them or none. A crash during an append leaves at most a torn
last line without its newline: it was never acknowledged, and is cut off when the file is
next read. Any other line that fails its checksum or its schema makes the file corrupt.

The same format is the export file: the live records of a journal, so an import is checked
by the reader that starts the server, record by record, and is never unpacked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

KIND = "edge-server learned model"
# A learned model's name: a file name, a URL segment and a topic segment.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
VERSION = 1
SUFFIX = ".learned"
MAX_LINE = 16 * 1024 * 1024  # one request's examples with their thumbnails fit many times
MAX_THUMBNAIL = 256 * 1024
_DTYPES = {"uint8": np.uint8, "float32": np.float32}


class BadJournal(ValueError):
    """The file is not a learned model, or is damaged (the message says where)."""


@dataclass(frozen=True)
class Header:
    """What a learned-model file is built on."""

    name: str
    embedder: str  # the embedding model's catalog name
    embedder_sha256: str
    dim: int
    dtype: str  # of the embedder's raw output, as stored

    def record(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "version": VERSION,
            "name": self.name,
            "embedder": self.embedder,
            "embedder_sha256": self.embedder_sha256,
            "dim": self.dim,
            "dtype": self.dtype,
        }


@dataclass
class Contents:
    """A journal replayed: each class's embeddings (raw, a row each) and the threshold."""

    header: Header
    # Each class's raw embeddings back to back: one growing buffer a class, not an array an
    # example, whose thousands of small freed blocks would stay in the heap after start-up.
    raw: dict[str, bytearray] = field(default_factory=dict)
    threshold: float | None = None
    size: int = 0  # bytes of whole records
    torn: bool = False  # a torn last line was found (and is not part of `size`)

    @property
    def classes(self) -> dict[str, npt.NDArray[Any]]:
        """Each class's embeddings, a row each (views of `raw`)."""
        dtype = _DTYPES[self.header.dtype]
        return {
            label: np.frombuffer(data, dtype=dtype).reshape(-1, self.header.dim)
            for label, data in self.raw.items()
        }

    def examples(self) -> int:
        width = self.header.dim * np.dtype(_DTYPES[self.header.dtype]).itemsize
        return sum(len(data) // width for data in self.raw.values())


def encode(record: dict[str, Any]) -> bytes:
    """One record as its checksummed line."""
    body = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(body).hexdigest()[:16].encode() + b" " + body + b"\n"


def header_line(header: Header) -> bytes:
    return encode(header.record())


def add_line(label: str, examples: list[tuple[bytes, bytes]]) -> bytes:
    """The record of one request's examples: (raw embedding, JPEG thumbnail) each."""
    return encode(
        {
            "op": "add",
            "label": label,
            "examples": [
                {"embedding": _b64(embedding), "thumbnail": _b64(thumbnail)}
                for embedding, thumbnail in examples
            ],
        }
    )


def forget_line(label: str) -> bytes:
    return encode({"op": "forget", "label": label})


def threshold_line(value: float | None) -> bytes:
    return encode({"op": "threshold", "value": value})


def lines(stream: IO[bytes]) -> Iterator[tuple[int, int, dict[str, Any] | None]]:
    """(line number, bytes, record) of each whole line; a torn last line gives record None.

    BadJournal for a whole line that is not a checksummed JSON object, or one too long.
    """
    number = 0
    while True:
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        if not raw.endswith(b"\n"):
            if len(raw) > MAX_LINE:
                raise BadJournal(f"line {number} is longer than {MAX_LINE} bytes")
            yield number, len(raw), None  # torn: a crash during its append
            return
        checksum, _, body = raw[:-1].partition(b" ")
        if hashlib.sha256(body).hexdigest()[:16].encode() != checksum:
            raise BadJournal(f"line {number} fails its checksum")
        if not body.startswith(b'{"'):  # a record; also no deep nesting to recurse into
            raise BadJournal(f"line {number} is not a record")
        try:
            record = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise BadJournal(f"line {number} is not JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise BadJournal(f"line {number} is not a record")
        yield number, len(raw), record


def replay(stream: IO[bytes]) -> Contents:
    """Read a whole journal (an export, or a model's file), checking each record.

    The embeddings are kept; the thumbnails are checked but left on disk (`thumbnails` reads
    them when they are needed). BadJournal says what is wrong and on which line.
    """
    contents: Contents | None = None
    for number, size, record in lines(stream):
        if record is None:
            if contents is None:
                raise BadJournal("the file holds no complete header line")
            contents.torn = True
            break
        if contents is None:
            contents = Contents(_header(record))
            contents.size = size
            continue
        _apply(contents, record, number)
        contents.size += size
    if contents is None:
        raise BadJournal("the file is empty")
    return contents


def live_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The journal's lines that still count (its export): the header, the adds of classes
    not deleted since, and the last threshold. Read twice: once to find them, once to copy."""
    forgotten_after: dict[str, int] = {}
    threshold_at = 0
    adds: list[tuple[int, str]] = []
    for number, _, record in lines(stream):
        if record is None:
            break
        op = record.get("op")
        if op == "forget":
            forgotten_after[str(record.get("label"))] = number
        elif op == "threshold":
            threshold_at = number
        elif op == "add":
            adds.append((number, str(record.get("label"))))
    dead = {n for n, label in adds if forgotten_after.get(label, 0) > n}
    stream.seek(0)
    for number, _, record in lines(stream):
        if record is None:
            break
        op = record.get("op")
        keep = number == 1 or (op == "add" and number not in dead) or number == threshold_at
        if keep:
            yield encode(record)


def thumbnails(stream: IO[bytes]) -> dict[str, list[bytes]]:
    """Each live class's example thumbnails (JPEG), in order: for embedding them anew."""
    found: dict[str, list[bytes]] = {}
    for _, _, record in lines(stream):
        if record is None:
            break
        if record.get("op") == "add":
            found.setdefault(str(record["label"]), []).extend(
                _unb64(e["thumbnail"], "thumbnail") for e in record["examples"]
            )
        elif record.get("op") == "forget":
            found.pop(str(record.get("label")), None)
    return found


def read_file(path: Path) -> Contents:
    with open(path, "rb") as stream:
        return replay(stream)


# --- checking records -----------------------------------------------------------------------


def _header(record: dict[str, Any]) -> Header:
    if record.get("kind") != KIND:
        raise BadJournal("the first line is not an edge-server learned model header")
    if record.get("version") != VERSION:
        raise BadJournal(f"version {record.get('version')!r} is not {VERSION}")
    try:
        header = Header(
            name=str(record["name"]),
            embedder=str(record["embedder"]),
            embedder_sha256=str(record["embedder_sha256"]),
            dim=int(record["dim"]),
            dtype=str(record["dtype"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BadJournal(f"the header lacks {exc}") from exc
    if header.dtype not in _DTYPES or not 1 <= header.dim <= 65536:
        raise BadJournal(f"the header's embedding ({header.dim} x {header.dtype}) is not usable")
    return header


def _apply(contents: Contents, record: dict[str, Any], number: int) -> None:
    op = record.get("op")
    label = record.get("label")
    if op == "add":
        examples = record.get("examples")
        if not isinstance(label, str) or not isinstance(examples, list) or not examples:
            raise BadJournal(f"line {number}: an add needs a label and examples")
        rows = contents.raw.setdefault(label, bytearray())
        dtype = _DTYPES[contents.header.dtype]
        width = contents.header.dim * np.dtype(dtype).itemsize
        for example in examples:
            if not isinstance(example, dict):
                raise BadJournal(f"line {number}: an example is not an object")
            raw = _unb64(example.get("embedding"), "embedding", number)
            if len(raw) != width:
                raise BadJournal(f"line {number}: an embedding has {len(raw)} bytes, not {width}")
            if dtype is np.float32 and not np.isfinite(np.frombuffer(raw, np.float32)).all():
                raise BadJournal(f"line {number}: an embedding holds values that are not numbers")
            thumb = _unb64(example.get("thumbnail"), "thumbnail", number)
            if len(thumb) > MAX_THUMBNAIL:
                raise BadJournal(f"line {number}: a thumbnail is over {MAX_THUMBNAIL} bytes")
            rows += raw
    elif op == "forget":
        if not isinstance(label, str):
            raise BadJournal(f"line {number}: a forget needs a label")
        contents.raw.pop(label, None)
    elif op == "threshold":
        value = record.get("value")
        if value is not None and (
            not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0
        ):
            raise BadJournal(f"line {number}: the threshold {value!r} is not within 0..1")
        contents.threshold = None if value is None else float(value)
    else:
        raise BadJournal(f"line {number}: unknown record {op!r}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str, number: int = 0) -> bytes:
    if not isinstance(value, str):
        raise BadJournal(f"line {number}: the {what} is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadJournal(f"line {number}: the {what} is not base64") from exc
