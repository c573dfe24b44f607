"""RTSP cameras, read in-process with PyAV (FFmpeg's demuxer and decoder; no ffmpeg process).

Over TCP (`rtsp_transport=tcp`: UDP loses packets on Wi-Fi, and each loss smears the picture
until the next keyframe), with an open timeout, and a read timeout that is also the watchdog:
when no packet comes for that long, PyAV's interrupt callback ends the read and the feed
reconnects. Only the luma plane is copied out of each decoded frame (what motion reads); the
frame's RGB conversion runs only for frames a model or a picture needs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..config.cameras import redact
from .streams import NotAStream, Picture, Unauthorized, Unreachable

if TYPE_CHECKING:
    import av.container
    import av.video

# Pixel formats whose first plane is the luma, a byte a pixel.
_LUMA_FIRST = {
    "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21",
    "gray", "yuv440p", "yuvj440p", "yuv411p", "yuv410p",
}  # fmt: skip


def luma_of(frame: av.video.VideoFrame) -> npt.NDArray[np.uint8]:
    """The frame's grey picture: its Y plane copied out (rows trimmed of the decoder's
    padding), or a conversion for the rare formats that do not start with one."""
    if frame.format.name in _LUMA_FIRST:
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(frame.height, plane.line_size)
        return rows[:, : frame.width].copy()
    return np.asarray(frame.to_ndarray(format="gray"), np.uint8)


def _av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise NotAStream("reading RTSP needs PyAV: pip install 'edge-server[cameras]'") from exc
    return av


def _reason(exc: BaseException) -> str:
    """FFmpeg's words for an error, without the URL it quotes (which may hold a password)."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return redact(str(text)) if "://" in str(text) else str(text)


class RtspReader:
    """Connects to one RTSP URL with PyAV."""

    def __init__(
        self,
        url: str,
        *,
        open_timeout: float = 10.0,
        read_timeout: float = 10.0,
        transport: str = "tcp",
    ) -> None:
        self.url = url
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.transport = transport

    def connect(self) -> RtspSession:
        av = _av()
        options = {
            "rtsp_transport": self.transport,
            # FFmpeg's own socket timeout (microseconds), beside PyAV's interrupt callback.
            "timeout": str(int(max(self.open_timeout, self.read_timeout) * 1e6)),
            # FFmpeg probes a stream for up to 5 s by default before the first frame; an RTSP
            # camera's SDP and first keyframe say what is needed (open 2.8 s -> 0.1 s here).
            "analyzeduration": "1000000",
            "probesize": "262144",
        }
        try:
            container = av.open(
                self.url, options=options, timeout=(self.open_timeout, self.read_timeout)
            )
        except (av.error.HTTPUnauthorizedError, av.error.HTTPForbiddenError) as exc:
            has_login = "@" in self.url.split("://", 1)[-1].split("/", 1)[0]
            raise Unauthorized(
                "the camera refused the user and password (RTSP 401)"
                if has_login
                else "the camera asks for a user and password: put them in the URL "
                "(rtsp://user:password@host/...)"
            ) from exc
        except av.error.HTTPNotFoundError as exc:
            raise NotAStream(
                "the camera has no stream at this path (RTSP 404): check the URL's path"
            ) from exc
        except av.error.InvalidDataError as exc:
            raise NotAStream(f"not an RTSP stream PyAV can read ({_reason(exc)})") from exc
        except av.error.ExitError as exc:
            raise Unreachable(f"no answer within {self.open_timeout:g} s") from exc
        except (av.error.FFmpegError, OSError) as exc:
            raise Unreachable(f"cannot open the stream: {_reason(exc)}") from exc
        try:
            return RtspSession(container, av, self.read_timeout)
        except BaseException:
            container.close()
            raise


class RtspSession:
    """One open RTSP stream: its video track decoded frame by frame."""

    def __init__(self, container: av.container.InputContainer, av: Any, read_timeout: float):
        self.container = container
        self._av = av
        self.read_timeout = read_timeout
        if not container.streams.video:
            raise NotAStream("the stream has no video track")
        self.stream = container.streams.video[0]
        self.codec: str | None = self.stream.codec_context.name
        self.corrupt = 0  # packets the decoder refused (a lost packet smears until a keyframe)

    def pictures(self) -> Iterator[Picture]:
        av = self._av
        last = time.monotonic()
        try:
            for packet in self.container.demux(self.stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    self.corrupt += 1
                    frames = []
                for frame in frames:
                    last = time.monotonic()
                    yield Picture(luma_of(frame), _rgb_of(frame))
                if not frames and time.monotonic() - last > self.read_timeout:
                    # packets, but none decodes: as good as no video
                    raise Unreachable(
                        f"no picture decoded for {self.read_timeout:g} s (watchdog); "
                        f"{self.corrupt} packets refused"
                    )
        except av.error.EOFError:
            return
        except av.error.ExitError as exc:
            raise Unreachable(f"no video for {self.read_timeout:g} s (watchdog)") from exc
        except (av.error.FFmpegError, OSError) as exc:
            raise Unreachable(f"the stream broke: {_reason(exc)}") from exc

    def close(self) -> None:
        self.container.close()


def _rgb_of(frame: av.video.VideoFrame) -> Any:
    def rgb() -> npt.NDArray[np.uint8]:
        return np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)

    return rgb
