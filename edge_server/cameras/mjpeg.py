"""MJPEG streams (`multipart/x-mixed-replace`): the parts of the body, found as the bytes come.

The ESP32 CameraWebServer and most IP cameras send `--BOUNDARY`, the part's headers
(`Content-Type: image/jpeg`, usually `Content-Length`), a blank line and the JPEG; some send
no Content-Length, so a part then ends where the next boundary starts. A reader that lost
its place (a part cut short, bytes that are not a part) skips to the next boundary: one bad
part costs one frame. A body that shows no boundary at all within `MAX_SEARCH` bytes is not
an MJPEG stream, and the caller says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message

# A 1080p JPEG is 0.2-1 MB; a stream showing no boundary in 2 MB is not a stream of JPEGs.
MAX_SEARCH = 2 * 1024 * 1024
_MAX_HEADERS = 8 * 1024


def boundary_of(content_type: str) -> str | None:
    """The boundary of a multipart content type (quotes and a leading `--` some cameras put
    in the parameter removed), or None for any other content type."""
    message = Message()
    message["Content-Type"] = content_type
    if message.get_content_type() != "multipart/x-mixed-replace":
        return None
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not boundary.strip():
        return None
    return boundary.strip().removeprefix("--")


@dataclass
class Parts:
    """The JPEG parts of a multipart body, fed chunk by chunk (`feed` then `parts`)."""

    boundary: str
    skipped: int = 0  # parts dropped: headers too long, or cut short by the next boundary
    _buffer: bytearray = field(default_factory=bytearray)
    _searched: int = 0  # bytes looked through without finding a boundary

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk

    def parts(self) -> Iterator[bytes]:
        """The whole parts now in the buffer; raises ValueError when no boundary shows up
        within MAX_SEARCH bytes (garbage, not a stream)."""
        marker = b"--" + self.boundary.encode("latin-1")
        buffer = self._buffer
        while True:
            start = buffer.find(marker)
            if start < 0:
                keep = len(marker) - 1  # a marker may be split across chunks
                self._searched += max(0, len(buffer) - keep)
                del buffer[: max(0, len(buffer) - keep)]
                if self._searched > MAX_SEARCH:
                    raise ValueError(f"no part boundary in {MAX_SEARCH // 1024 // 1024} MB")
                return
            self._searched = 0
            head_end = buffer.find(b"\r\n\r\n", start)
            if head_end < 0:
                if len(buffer) - start > _MAX_HEADERS:  # not headers: look for the next one
                    self.skipped += 1
                    del buffer[: start + len(marker)]
                    continue
                del buffer[:start]
                return
            cut = buffer.find(marker, start + len(marker), head_end)
            if cut >= 0 or head_end - start > _MAX_HEADERS:  # a part cut short, or no headers
                self.skipped += 1
                del buffer[: cut if cut >= 0 else start + len(marker)]
                continue
            headers = _headers(bytes(buffer[start + len(marker) : head_end]))
            body_start = head_end + 4
            length = headers.get("content-length")
            if length is not None and length.isdigit():
                end = body_start + int(length)
                if len(buffer) < end:
                    del buffer[:start]
                    return
                body = bytes(buffer[body_start:end])
                del buffer[:end]
            else:
                end = buffer.find(marker, body_start)
                if end < 0:
                    if len(buffer) - body_start > MAX_SEARCH:
                        raise ValueError(f"a part longer than {MAX_SEARCH // 1024 // 1024} MB")
                    del buffer[:start]
                    return
                body = bytes(buffer[body_start:end]).removesuffix(b"\r\n")
                del buffer[:end]
            yield body


def _headers(block: bytes) -> dict[str, str]:
    headers = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers
