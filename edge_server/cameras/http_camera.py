"""Cameras over HTTP: an MJPEG stream or a snapshot URL, told apart by what they answer.

One GET decides: `multipart/x-mixed-replace` is an MJPEG stream, read part by part as the
body arrives (mjpeg.py); `image/*` is a snapshot URL, polled on the same keep-alive
connection every `snapshot_interval`. Anything else (a login page, a 404) is a clear error.

Credentials come from the URL's userinfo (`http://user:password@host/capture`) and go by the
scheme the camera asks for in its 401: Basic (ESP32 sketches, many snapshot URLs) or Digest
(Hikvision, Dahua, Reolink's CGI); the scheme learnt is kept for the next connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from ..config.cameras import redact
from .mjpeg import Parts, boundary_of
from .streams import NotAStream, Picture, Unauthorized, Unreachable, jpeg_picture

# A stream whose parts are not JPEGs: this many undecodable parts without one good one.
_BAD_PARTS = 20
_CHUNK = 64 * 1024


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """The URL without its userinfo, and the user and password it held (percent-decoded)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    host = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return bare, user, password


class HttpReader:
    """Connects to one http(s) camera URL with httpx."""

    def __init__(
        self,
        url: str,
        *,
        open_timeout: float = 10.0,
        read_timeout: float = 10.0,
        snapshot_interval: float = 1.0,
        username: str | None = None,
        password: str | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.url, user, secret = split_credentials(url)
        self.username = username if username is not None else user
        self.password = password if password is not None else secret
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.snapshot_interval = snapshot_interval
        self.stopping = stopping or threading.Event()
        self._auth: httpx.Auth | None = None  # the scheme the camera asked for, once known

    @property
    def auth_scheme(self) -> str:
        """How the camera was logged in to: "basic", "digest", or "none" (none asked)."""
        if isinstance(self._auth, httpx.DigestAuth):
            return "digest"
        if isinstance(self._auth, httpx.BasicAuth):
            return "basic"
        return "none"

    def connect(self) -> MjpegSession | SnapshotSession:
        client = httpx.Client(
            timeout=httpx.Timeout(self.read_timeout, connect=self.open_timeout),
            follow_redirects=True,
            headers={"User-Agent": "edge-server"},
        )
        try:
            response = self._get(client)
            kind = response.headers.get("content-type", "")
            boundary = boundary_of(kind)
            if boundary is not None:
                return MjpegSession(client, response, boundary)
            if kind.lower().startswith("image/"):
                data = response.read()
                response.close()
                return SnapshotSession(self, client, data)
            response.close()
            shown = kind.split(";")[0] or "no content type"
            raise NotAStream(
                f"the URL answers {shown}, not an MJPEG stream or a JPEG snapshot: use the "
                "camera's stream or snapshot URL (an ESP32-CAM's is :81/stream or /capture)"
            )
        except BaseException:
            client.close()
            raise

    def _get(self, client: httpx.Client) -> httpx.Response:
        """The camera's answer (streamed), after the challenge of its 401 when it sends one."""
        response = self._send(client, self._auth)
        if response.status_code == 401 and self._auth is None and self.username is not None:
            challenge = response.headers.get("www-authenticate", "").lower()
            _discard(response)
            password = self.password or ""
            if challenge.startswith("digest"):
                self._auth = httpx.DigestAuth(self.username, password)
            else:
                self._auth = httpx.BasicAuth(self.username, password)
            response = self._send(client, self._auth)
        if response.status_code in (401, 403):
            response.close()
            if self.username is None:
                raise Unauthorized(
                    f"the camera asks for a user and password (HTTP {response.status_code}): "
                    "put them in the URL (http://user:password@host/...)"
                )
            self._auth = None  # ask again next time: the camera may have changed scheme
            raise Unauthorized(
                f"the camera refused the user and password (HTTP {response.status_code})"
            )
        if response.status_code >= 500:
            response.close()
            raise Unreachable(f"the camera answered HTTP {response.status_code}")
        if response.status_code >= 400:
            response.close()
            raise NotAStream(
                f"the camera answered HTTP {response.status_code} for "
                f"{redact(self.url)}: check the URL's path"
            )
        return response

    def _send(self, client: httpx.Client, auth: httpx.Auth | None) -> httpx.Response:
        try:
            request = client.build_request("GET", self.url)
            return client.send(request, stream=True, auth=auth)
        except httpx.TimeoutException as exc:
            raise Unreachable(f"no answer within {self.open_timeout:g} s") from exc
        except (httpx.HTTPError, OSError) as exc:
            raise Unreachable(f"cannot connect: {_reason(exc)}") from exc


def _discard(response: httpx.Response) -> None:
    """Read a short error answer to its end, so its connection can carry the next request
    (an unread body closes it)."""
    try:
        if int(response.headers.get("content-length", "0") or 0) <= 64 * 1024:
            response.read()
    except (httpx.HTTPError, OSError, ValueError):
        pass
    response.close()


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return redact(text) if "://" in text else text


class MjpegSession:
    """One MJPEG stream, read part by part."""

    codec: str | None = "mjpeg"

    def __init__(self, client: httpx.Client, response: httpx.Response, boundary: str) -> None:
        self.client = client
        self.response = response
        self.parts = Parts(boundary)
        self.bad = 0  # parts that were not JPEGs

    def pictures(self) -> Iterator[Picture]:
        good = False
        bad_run = 0
        try:
            for chunk in self.response.iter_raw(_CHUNK):
                self.parts.feed(chunk)
                for part in self.parts.parts():
                    try:
                        picture = jpeg_picture(part)
                    except ValueError:
                        self.bad += 1
                        bad_run += 1
                        if bad_run >= _BAD_PARTS and not good:
                            raise NotAStream(
                                f"the stream's first {_BAD_PARTS} parts are not JPEGs"
                            ) from None
                        continue
                    good, bad_run = True, 0
                    yield picture
        except ValueError as exc:  # the parser found no boundary: not a stream of parts
            raise NotAStream(f"not an MJPEG stream: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise Unreachable("no data for the read timeout (the camera stalled)") from exc
        except (httpx.HTTPError, OSError) as exc:
            raise Unreachable(f"the stream broke: {_reason(exc)}") from exc

    def close(self) -> None:
        self.response.close()
        self.client.close()


class SnapshotSession:
    """A snapshot URL, polled over one keep-alive connection."""

    codec: str | None = "jpeg snapshots"

    def __init__(self, reader: HttpReader, client: httpx.Client, first: bytes) -> None:
        self.reader = reader
        self.client = client
        self.first: bytes | None = first

    def pictures(self) -> Iterator[Picture]:
        reader = self.reader
        while not reader.stopping.is_set():
            started = time.monotonic()
            data, self.first = (self.first, None) if self.first is not None else (None, None)
            if data is None:
                response = reader._get(self.client)
                try:
                    data = response.read()
                except httpx.TimeoutException as exc:
                    raise Unreachable("no snapshot within the read timeout") from exc
                except (httpx.HTTPError, OSError) as exc:
                    raise Unreachable(f"the snapshot broke: {_reason(exc)}") from exc
                finally:
                    response.close()
                if not response.headers.get("content-type", "").lower().startswith("image/"):
                    raise NotAStream("the snapshot URL stopped answering images")
            try:
                picture = jpeg_picture(data)
            except ValueError as exc:
                raise NotAStream(f"the snapshot is not a JPEG: {exc}") from exc
            yield picture
            wait = reader.snapshot_interval - (time.monotonic() - started)
            if wait > 0:
                reader.stopping.wait(wait)

    def close(self) -> None:
        self.client.close()
