"""A snapshot camera for tests: `GET /capture` answers the clip's current frame as a JPEG over
keep-alive (HTTP/1.1), as an ESP32-CAM's `/capture` or an IP camera's snapshot URL does.

Paths: `/capture` (open), `/basic/capture` (Basic auth), `/digest/capture` (Digest auth,
RFC 7616 MD5 with qop=auth, as Hikvision and Dahua ask for), `/html` (a login page).
The frame shown is the one the clip is at since the server started, looping.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.request import parse_http_list, parse_keqv_list

from .mjpeg_server import PAGE

REALM = "camera"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class SnapshotServer(ThreadingHTTPServer):
    """Serves the clip's frames as snapshots on 127.0.0.1, in a thread of its own."""

    daemon_threads = True

    def __init__(
        self, jpegs: list[bytes], fps: float, login: tuple[str, str], *, port: int = 0
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.jpegs = jpegs
        self.fps = fps
        self.login = login
        self.started = time.monotonic()
        self.nonces: set[str] = set()
        self.connections = 0  # TCP connections accepted: keep-alive keeps this at one a reader
        self.answered = 0  # snapshots sent

    def url(self, path: str = "/capture", login: tuple[str, str] | None = None) -> str:
        host, port = self.server_address[:2]
        userinfo = f"{login[0]}:{login[1]}@" if login else ""
        return f"http://{userinfo}{host!s}:{port}{path}"

    def rewind(self) -> None:
        """Start the clip again now (a test that waits for the person's second)."""
        self.started = time.monotonic()

    def frame(self) -> bytes:
        n = int((time.monotonic() - self.started) * self.fps)
        return self.jpegs[n % len(self.jpegs)]


class _Handler(BaseHTTPRequestHandler):
    server: SnapshotServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_GET(self) -> None:
        if self.path == "/html":
            self._answer(200, "text/html", PAGE)
        elif self.path == "/capture":
            self._snapshot()
        elif self.path == "/basic/capture":
            if self._basic_ok():
                self._snapshot()
            else:
                self._challenge(f'Basic realm="{REALM}"')
        elif self.path == "/digest/capture":
            if self._digest_ok():
                self._snapshot()
            else:
                nonce = secrets.token_hex(16)
                self.server.nonces.add(nonce)
                self._challenge(
                    f'Digest realm="{REALM}", qop="auth", nonce="{nonce}", algorithm=MD5'
                )
        else:
            self._answer(404, "text/plain", b"not found")

    def _answer(self, status: int, kind: str, body: bytes, challenge: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if challenge:
            self.send_header("WWW-Authenticate", challenge)
        self.end_headers()
        self.wfile.write(body)

    def _snapshot(self) -> None:
        self.server.answered += 1
        self._answer(200, "image/jpeg", self.server.frame())

    def _challenge(self, challenge: str) -> None:
        self._answer(401, "text/plain", b"unauthorized", challenge)

    def _basic_ok(self) -> bool:
        header = self.headers.get("Authorization", "")
        expected = base64.b64encode(":".join(self.server.login).encode()).decode()
        return header == f"Basic {expected}"

    def _digest_ok(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        fields = parse_keqv_list(parse_http_list(header.removeprefix("Digest ")))
        user, password = self.server.login
        if fields.get("username") != user or fields.get("nonce") not in self.server.nonces:
            return False
        ha1 = _md5(f"{user}:{REALM}:{password}")
        ha2 = _md5(f"GET:{fields.get('uri')}")
        expected = _md5(
            f"{ha1}:{fields['nonce']}:{fields.get('nc')}:{fields.get('cnonce')}:auth:{ha2}"
        )
        return secrets.compare_digest(expected, fields.get("response", ""))


@contextmanager
def serving(jpegs: list[bytes], fps: float, login: tuple[str, str]) -> Iterator[SnapshotServer]:
    """A snapshot server running until the block ends."""
    server = SnapshotServer(jpegs, fps, login)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
