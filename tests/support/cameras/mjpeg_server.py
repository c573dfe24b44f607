"""An MJPEG camera for tests, framed like the ESP32 CameraWebServer's `:81/stream`.

The ESP32 example (app_httpd.cpp) answers `multipart/x-mixed-replace;boundary=` its
PART_BOUNDARY, chunked, and sends each frame as `\\r\\n--BOUNDARY\\r\\n`, then `Content-Type:
image/jpeg`, `Content-Length` and `X-Timestamp` headers, a blank line and the JPEG. Paths:

- `/stream`: the clip's frames at its rate, looping, until the server stops;
- `/html`: a web page (a URL copied from a camera's admin page instead of its stream);
- `/garbage`: the multipart content type, then random bytes;
- `/stall`: a few frames, then half a frame, then nothing (a camera hung mid-frame).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOUNDARY = "123456789000000000000987654321"
CONTENT_TYPE = f"multipart/x-mixed-replace;boundary={BOUNDARY}"
PAGE = b"<!doctype html><html><head><title>Camera</title></head><body>Login</body></html>"


class MjpegServer(ThreadingHTTPServer):
    """Serves `jpegs` at `fps` on 127.0.0.1, in a thread of its own."""

    daemon_threads = True

    def __init__(
        self, jpegs: list[bytes], fps: float, *, stall_after: int = 5, port: int = 0
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.jpegs = jpegs
        self.fps = fps
        self.stall_after = stall_after
        self.stopping = threading.Event()
        self.clients = 0  # streams answered so far

    def url(self, path: str = "/stream") -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: MjpegServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # a test's output is not the place for an access log

    def do_GET(self) -> None:
        self.server.clients += 1
        if self.path == "/html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)
            return
        if self.path not in ("/stream", "/garbage", "/stall"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("X-Framerate", f"{self.server.fps:g}")
        self.end_headers()
        try:
            if self.path == "/garbage":
                self._garbage()
            else:
                self._frames(stall=self.path == "/stall")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reader went away: what a camera sees all day
        self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _frames(self, *, stall: bool) -> None:
        server = self.server
        start = time.monotonic()
        for n in range(10**9):
            if server.stopping.is_set():
                return
            jpeg = server.jpegs[n % len(server.jpegs)]
            now = time.time()
            head = (
                f"\r\n--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}"
                f"\r\nX-Timestamp: {int(now)}.{int(now % 1 * 1e6):06d}\r\n\r\n"
            ).encode()
            if stall and n == server.stall_after:
                self._chunk(head + jpeg[: len(jpeg) // 2])
                server.stopping.wait()  # hung: the connection stays open, nothing comes
                return
            self._chunk(head)
            self._chunk(jpeg)
            server.stopping.wait(max(0.0, start + (n + 1) / server.fps - time.monotonic()))

    def _garbage(self) -> None:
        while not self.server.stopping.is_set():
            self._chunk(os.urandom(64 * 1024))
            self.server.stopping.wait(0.01)


@contextmanager
def serving(jpegs: list[bytes], fps: float, **options: int) -> Iterator[MjpegServer]:
    """An MJPEG server running until the block ends."""
    server = MjpegServer(jpegs, fps, **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
