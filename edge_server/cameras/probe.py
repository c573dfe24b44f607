"""What a camera URL serves, before it is configured: `edge-server cameras probe URL`.

It connects as the feed would (same readers, same timeouts), reads a few frames and says the
kind of stream, codec, size, frame rate, and whether the camera asked for a login (and by
which scheme). Credentials are never shown: the URL is printed redacted.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from ..config.cameras import check_camera_url, redact
from .http_camera import HttpReader, MjpegSession, SnapshotSession, split_credentials
from .rtsp import RtspReader, RtspSession
from .streams import FeedError, Session, Unauthorized


@dataclass(frozen=True)
class Probe:
    """What a URL serves."""

    url: str  # redacted
    ok: bool
    kind: str | None = None  # "rtsp", "mjpeg" or "snapshot"
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None  # the stream's, or measured over the frames read
    auth: str | None = None  # "none", "basic", "digest", or "required" (RTSP: scheme not shown)
    frames: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The probe as a reader would want it on a terminal."""
        if not self.ok:
            return [f"{self.url}: {self.error}"] + ([f"  auth: {self.auth}"] if self.auth else [])
        fps = f"{self.fps:.1f} fps" if self.fps else "fps unknown"
        return [
            f"{self.url}",
            f"  kind:  {self.kind} ({self.codec})",
            f"  size:  {self.width}x{self.height}",
            f"  rate:  {fps} ({self.frames} frames read)",
            f"  auth:  {self.auth}",
        ]


def probe(url: str, *, timeout: float = 10.0, frames: int = 10, seconds: float = 3.0) -> Probe:
    """Connect to `url`, read up to `frames` frames within `seconds`, and say what came."""
    shown = redact(url)
    try:
        check_camera_url(url)
    except ValueError as exc:
        return Probe(shown, ok=False, error=str(exc))
    if url.lower().startswith(("rtsp://", "rtsps://")):
        reader: RtspReader | HttpReader = RtspReader(
            url, open_timeout=timeout, read_timeout=timeout
        )
    else:
        reader = HttpReader(url, open_timeout=timeout, read_timeout=timeout, snapshot_interval=0)
    auth = _auth_needed(url, reader, timeout)
    try:
        session = reader.connect()
    except FeedError as exc:
        return Probe(shown, ok=False, auth=auth, error=str(exc))
    try:
        return _read(shown, session, reader, auth, frames, seconds)
    except FeedError as exc:
        return Probe(shown, ok=False, auth=auth, error=str(exc))
    finally:
        session.close()


def _read(
    shown: str,
    session: Session,
    reader: RtspReader | HttpReader,
    auth: str | None,
    count: int,
    seconds: float,
) -> Probe:
    times: list[float] = []
    size: tuple[int, int] | None = None
    deadline = time.monotonic() + seconds
    for picture in session.pictures():
        times.append(time.monotonic())
        size = (picture.luma.shape[1], picture.luma.shape[0])
        if len(times) >= count or times[-1] > deadline:
            break
    if size is None:
        return Probe(shown, ok=False, auth=auth, error="the stream ended before a frame came")
    fps: float | None = None
    if isinstance(session, RtspSession):
        rate = session.stream.average_rate or session.stream.guessed_rate
        fps = float(rate) if rate else None
    if fps is None and len(times) > 2 and not isinstance(session, SnapshotSession):
        fps = (len(times) - 1) / (times[-1] - times[0])
    if isinstance(reader, HttpReader):
        auth = reader.auth_scheme
    kind = {RtspSession: "rtsp", MjpegSession: "mjpeg", SnapshotSession: "snapshot"}[type(session)]
    return Probe(
        shown,
        ok=True,
        kind=kind,
        codec=session.codec,
        width=size[0],
        height=size[1],
        fps=fps,
        auth=auth,
        frames=len(times),
    )


def _auth_needed(url: str, reader: RtspReader | HttpReader, timeout: float) -> str | None:
    """For RTSP, whether the camera refuses the URL without its credentials ("required" or
    "none"); HTTP cameras say it in their challenge, learnt on connecting (None here)."""
    if isinstance(reader, HttpReader):
        return None
    bare, user, _ = split_credentials(url)
    try:
        session = RtspReader(bare, open_timeout=timeout, read_timeout=timeout).connect()
    except Unauthorized:
        return "required"
    except FeedError:
        return None if user else "none"
    session.close()
    return "none"
