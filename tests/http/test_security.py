"""API keys, what stays open, keys kept out of logs, and CORS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from edge_server.app import create_app
from edge_server.config.settings import Settings
from edge_server.core.errors import StartupError, Unauthorized
from edge_server.serving.auth import ApiKeys

from conftest import ServerProcess, free_port, server_env
from support.inprocess import in_process

Photo = Callable[[str], bytes]
KEY_A = "first-key-0123456789abcdef"
KEY_B = "second-key-0123456789abcdef"
KEY_FILE_KEY = "file-key-0123456789abcdefgh"


@pytest.fixture(scope="module")
def keyed_server(
    models_dir: Path, runtime: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server with two keys in EDGE_API_KEY, one in a key file, and CORS for one origin."""
    key_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    key_file.write_text(f"\n{KEY_FILE_KEY}\n")
    env = server_env(
        models_dir,
        runtime,
        api_key=f"{KEY_A},{KEY_B}",
        api_key_file=str(key_file),
        cors_origins="http://dashboard.local",
        log_level="info",
    )
    process = ServerProcess(env, free_port())
    process.wait_ready()
    yield process
    process.stop()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key-0123456789abcdef"},
        {"X-API-Key": KEY_A[:-1]},
        {"Authorization": f"Basic {KEY_A}"},
        {"Authorization": "Bearer"},
    ],
    ids=["none", "wrong-bearer", "truncated", "basic-scheme", "empty-bearer"],
)
def test_missing_or_wrong_keys_get_401_problem_json(
    keyed_server: ServerProcess, photo: Photo, headers: dict[str, str]
) -> None:
    """Without a valid key, /classify and /v1/models are 401 problem+json with WWW-Authenticate."""
    response = httpx.post(
        keyed_server.url + "/classify", files={"image": photo("coffee.png")}, headers=headers
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "X-API-Key" in response.json()["detail"]
    assert httpx.get(keyed_server.url + "/v1/models", headers=headers).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEY_A}"},
        {"authorization": f"bearer {KEY_B}"},
        {"X-API-Key": KEY_B},
        {"X-API-Key": KEY_FILE_KEY},
    ],
    ids=["bearer-a", "bearer-b-lowercase", "x-api-key-b", "key-file"],
)
def test_valid_keys_are_accepted(
    keyed_server: ServerProcess, photo: Photo, headers: dict[str, str]
) -> None:
    """Any configured key works, as Bearer token or X-API-Key."""
    response = httpx.post(
        keyed_server.url + "/classify", files={"image": photo("coffee.png")}, headers=headers
    )
    assert response.status_code == 200
    assert response.json()["predictions"][0]["label"] == "espresso"


def test_health_and_metrics_stay_open_by_default(keyed_server: ServerProcess) -> None:
    """/healthz, /readyz and (unless EDGE_METRICS_REQUIRE_KEY) /metrics need no key."""
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(keyed_server.url + path).status_code == 200, path


def test_cors_is_answered_only_for_configured_origins(keyed_server: ServerProcess) -> None:
    """A preflight from the configured origin is allowed; another origin gets no CORS header."""
    allowed = httpx.options(
        keyed_server.url + "/classify",
        headers={
            "Origin": "http://dashboard.local",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert allowed.headers["access-control-allow-origin"] == "http://dashboard.local"
    other = httpx.get(keyed_server.url + "/healthz", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_cors_is_off_by_default(server: ServerProcess) -> None:
    """Without EDGE_CORS_ORIGINS no response carries CORS headers."""
    response = httpx.get(server.url + "/healthz", headers={"Origin": "http://dashboard.local"})
    assert "access-control-allow-origin" not in response.headers


def test_metrics_can_require_the_key(settings_for: Callable[..., Settings]) -> None:
    """EDGE_METRICS_REQUIRE_KEY=true puts /metrics behind the key; /healthz stays open."""
    settings = settings_for(api_key=KEY_A, metrics_require_key=True)
    with in_process(create_app(settings)) as http:
        without = http.get("/metrics")
        with_key = http.get("/metrics", headers={"X-API-Key": KEY_A})
        health = http.get("/healthz")
    assert without.status_code == 401
    assert with_key.status_code == 200
    assert health.status_code == 200


def test_short_keys_and_empty_key_files_stop_startup(tmp_path: Path) -> None:
    """Keys under 16 characters and key files with no key are start-up errors."""
    with pytest.raises(StartupError, match="shorter than 16"):
        ApiKeys.from_settings(Settings(api_key="abc"))
    empty = tmp_path / "keys.txt"
    empty.write_text("\n\n")
    with pytest.raises(StartupError, match="holds no key"):
        ApiKeys.from_settings(Settings(api_key_file=empty))


def test_no_keys_means_open() -> None:
    """With no key configured every request passes; with one, a wrong one is refused."""
    ApiKeys(()).check(None, None)
    with pytest.raises(Unauthorized):
        ApiKeys.from_settings(Settings(api_key=KEY_A)).check(None, KEY_B)


def test_deepstack_takes_the_key_from_its_form_field(
    keyed_server: ServerProcess, photo: Photo
) -> None:
    """DeepStack clients send `api_key` in the form: right key 200, wrong key 401 in their shape."""
    image = {"image": ("image", photo("coffee.png"))}
    ok = httpx.post(keyed_server.url + "/v1/vision/scene", files=image, data={"api_key": KEY_B})
    wrong = httpx.post(keyed_server.url + "/v1/vision/scene", files=image, data={"api_key": "x"})
    assert ok.status_code == 200
    assert ok.json()["success"] is True
    assert wrong.status_code == 401
    assert wrong.json()["success"] is False
    assert wrong.json()["code"] == 401


def test_batch_and_kserve_need_the_key(keyed_server: ServerProcess, photo: Photo) -> None:
    """Batch and KServe inference refuse requests without a key; KServe health stays open."""
    batch = httpx.post(keyed_server.url + "/classify/batch", files={"images": photo("coffee.png")})
    assert batch.status_code == 401
    infer = httpx.post(keyed_server.url + "/v2/models/mobilenet_v2_1.0_224_quant/infer", json={})
    assert infer.status_code == 401
    assert "error" in infer.json()
    assert httpx.get(keyed_server.url + "/v2/health/ready").status_code == 200
    keyed = httpx.post(
        keyed_server.url + "/classify/batch",
        files={"images": photo("coffee.png")},
        headers={"X-API-Key": KEY_A},
    )
    assert keyed.json()["items"][0]["result"]["predictions"][0]["label"] == "espresso"


def test_keys_never_reach_the_log(keyed_server: ServerProcess, photo: Photo) -> None:
    """After good and bad keyed requests, the server's log holds no key (stops the server: last)."""
    for key in (KEY_A, "wrong-key-0123456789abcdef"):
        httpx.post(
            keyed_server.url + "/classify",
            files={"image": photo("coffee.png")},
            headers={"Authorization": f"Bearer {key}"},
        )
    keyed_server.stop()
    assert "POST /classify" in keyed_server.log  # the access log was on
    for key in (KEY_A, KEY_B, KEY_FILE_KEY, "wrong-key-0123456789abcdef"):
        assert key not in keyed_server.log
