"""The Python client and `edge-server classify --url`, against the real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from edge_server.client import Client, Refused, Unreachable

from conftest import DEFAULT_MODEL, ServerProcess, free_port

Photo = Callable[[str], bytes]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    return subprocess.run(
        [sys.executable, "-m", "edge_server", "classify", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_client_classifies_and_describes(server: ServerProcess, photo: Photo) -> None:
    """Client.classify answers the typed result; Client.models names the model."""
    client = Client(server.url)
    answer = client.classify(photo("coffee.png"), top_k=2, threshold=0.001)
    assert answer.predictions[0].label == "espresso"
    assert len(answer.predictions) <= 2 and answer.timing_ms.inference > 0
    assert client.models().models[0].name == DEFAULT_MODEL


def test_client_errors_say_what_happened(server: ServerProcess, photo: Photo) -> None:
    """A refused image carries the status and the server's detail; a dead port is Unreachable."""
    with pytest.raises(Refused, match="400 Bad Request: the body is not an image") as refused:
        Client(server.url).classify(b"just some text")
    assert refused.value.status == 400
    with pytest.raises(Unreachable, match="cannot reach"):
        Client(f"http://127.0.0.1:{free_port()}").classify(photo("coffee.png"))


def test_cli_table_and_a_failed_file(
    server: ServerProcess, images_dir: Path, tmp_path: Path
) -> None:
    """The table names file, model and label; a non-image is reported and the exit status is 1."""
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    result = _cli("--url", server.url, str(images_dir / "grace_hopper.jpg"), str(bad))
    assert result.returncode == 1
    assert "grace_hopper.jpg" in result.stdout and "military uniform" in result.stdout
    assert DEFAULT_MODEL in result.stdout
    assert "bad.jpg" in result.stderr and "not an image" in result.stderr


def test_cli_json_with_crop(server: ServerProcess, images_dir: Path) -> None:
    """--json prints the server's answers per file; --crop and --top-k reach the server."""
    result = _cli(
        "--url", server.url, "--json", "--top-k", "2", "--crop", "0,0,1,1",
        str(images_dir / "parrot.jpg"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["url"] == server.url
    (item,) = answer["results"]
    assert item["file"].endswith("parrot.jpg") and item["model"]["name"] == DEFAULT_MODEL
    assert [p["label"] for p in item["predictions"]][:1] == ["macaw"]
    assert len(item["predictions"]) == 2


def test_client_and_cli_send_the_fit(server: ServerProcess, photo: Photo, images_dir: Path) -> None:
    """Client.classify(resize=) and `classify --url --resize` reach the server, whose answer
    says the fit; without one the model's own (its centre crop) is used."""
    client = Client(server.url)
    assert client.classify(photo("coffee.png"), resize="letterbox").image.resize == "letterbox"
    assert client.classify(photo("coffee.png")).image.resize == "center-crop"
    result = _cli(
        "--url", server.url, "--json", "--resize", "squash", str(images_dir / "parrot.jpg"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (item,) = json.loads(result.stdout)["results"]
    assert item["image"]["resize"] == "squash"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:{port}", "cannot reach http://127.0.0.1:"),
        ("{server}/not-here", "refused the request: 404 Not Found"),
        ("ftp://127.0.0.1", "not an http:// or https:// URL"),
    ],
    ids=["unreachable", "wrong-path", "bad-scheme"],
)
def test_cli_stops_with_a_clear_message(
    server: ServerProcess, images_dir: Path, url: str, message: str
) -> None:
    """Unreachable, refusing or malformed --url: non-zero exit, one clear line, no traceback."""
    target = url.format(port=free_port(), server=server.url)
    photo = str(images_dir / "coffee.png")
    result = _cli("--url", target, photo, photo)
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stderr.count("edge-server:") == 1  # stopped at the first, not once per file
    assert "Traceback" not in result.stderr and result.stdout == ""


class _Refusing(BaseHTTPRequestHandler):
    """Answers 401 problem+json and remembers the Authorization header it was sent."""

    seen: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps({"status": 401, "title": "Unauthorized", "detail": "unknown key"})
        self.send_response(401)
        self.send_header("Content-Type", "application/problem+json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def refusing_server() -> Iterator[str]:
    """A stand-in for a server with API keys on, at 127.0.0.1, that refuses every key."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_cli_sends_the_api_key_as_bearer(refusing_server: str, images_dir: Path) -> None:
    """--api-key goes out as `Authorization: Bearer KEY`; a 401 says to check the key."""
    _Refusing.seen.clear()
    result = _cli("--url", refusing_server, "--api-key", "s3cret", str(images_dir / "coffee.png"))
    assert _Refusing.seen == ["Bearer s3cret"]
    assert result.returncode == 1
    assert "401 Unauthorized: unknown key" in result.stderr and "--api-key" in result.stderr
