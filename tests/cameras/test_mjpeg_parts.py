"""The multipart reader finds JPEG parts however the bytes are cut, with or without
Content-Length, and skips to the next boundary after a broken part."""

from __future__ import annotations

import pytest

from edge_server.cameras.mjpeg import MAX_SEARCH, Parts, boundary_of

# Cameras' I/O: the same whatever runtime runs the models, so run once (under LiteRT).
pytestmark = pytest.mark.lan

BOUNDARY = "123456789000000000000987654321"


def _part(body: bytes, *, length: bool = True) -> bytes:
    head = f"\r\n--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
    if length:
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "X-Timestamp: 1.000001\r\n\r\n").encode() + body


def _read(stream: bytes, chunk: int) -> list[bytes]:
    parts = Parts(BOUNDARY)
    found: list[bytes] = []
    for i in range(0, len(stream), chunk):
        parts.feed(stream[i : i + chunk])
        found.extend(parts.parts())
    return found


@pytest.mark.parametrize("chunk", [1, 7, 4096])
@pytest.mark.parametrize("length", [True, False])
def test_parts_are_found_whatever_the_chunks(chunk: int, length: bool) -> None:
    """Three parts come out whole, in order, fed a byte at a time or in large chunks, with or
    without Content-Length (then a part ends at the next boundary)."""
    bodies = [
        b"\xff\xd8one\xff\xd9",
        b"\xff\xd8two\r\n--not-ours\xff\xd9",
        b"\xff\xd8three\xff\xd9",
    ]
    stream = b"".join(_part(b, length=length) for b in bodies) + f"\r\n--{BOUNDARY}\r\n".encode()
    assert _read(stream, chunk) == bodies


def test_garbage_before_and_between_parts_is_skipped() -> None:
    """Bytes before the first boundary, and a part whose headers never end, cost only
    themselves: the parts after them are found."""
    broken = f"\r\n--{BOUNDARY}\r\n".encode() + b"x" * 9000
    stream = b"noise" * 100 + _part(b"A" * 10) + broken + _part(b"B" * 10)
    parts = Parts(BOUNDARY)
    parts.feed(stream)
    assert list(parts.parts()) == [b"A" * 10, b"B" * 10]
    assert parts.skipped == 1


def test_a_stream_without_boundaries_is_an_error() -> None:
    """Bytes with no boundary in MAX_SEARCH are not an MJPEG stream: ValueError says so."""
    parts = Parts(BOUNDARY)
    for _ in range(MAX_SEARCH // 65536):
        parts.feed(b"\x00" * 65536)
        assert list(parts.parts()) == []  # not yet: a JPEG part may be this long
    parts.feed(b"\x00" * 65536)
    with pytest.raises(ValueError, match="no part boundary"):
        list(parts.parts())


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        (f"multipart/x-mixed-replace;boundary={BOUNDARY}", BOUNDARY),
        ('multipart/x-mixed-replace; boundary="--myboundary"', "myboundary"),
        ("Multipart/X-Mixed-Replace; Boundary=frame", "frame"),
        ("image/jpeg", None),
        ("multipart/x-mixed-replace", None),
        ("text/html; charset=utf-8", None),
    ],
)
def test_boundary_of_a_content_type(content_type: str, boundary: str | None) -> None:
    """The boundary comes from the content type, quotes and a leading '--' removed; other
    content types have none."""
    assert boundary_of(content_type) == boundary
