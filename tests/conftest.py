"""Shared fixtures: the real models and photos, settings, and a real server process."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from edge_server.app import create_app
from edge_server.config.settings import Settings
from edge_server.core.runtime import RuntimeChoice
from edge_server.serving.catalog import load_catalog

from support.inprocess import in_process
from support.waiting import HANG

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "mobilenet_v2_1.0_224_quant"
SMALL_MODEL = "mobilenet_v1_0.25_128_quant"
DETECTOR = "ssd_mobilenet_v1_coco_quant"


# The camera tests' clips and servers (started only by the tests that ask for them).
pytest_plugins = ["support.cameras.fixtures"]


def _folder(variable: str, default: Path, what: str) -> Path:
    path = Path(os.environ.get(variable, default)).resolve()
    if not path.is_dir():
        # Fail, never skip: a suite that silently skips its real-model tests proves nothing.
        pytest.fail(f"{what} folder {path} not found; set {variable}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The folder of real models (EDGE_TEST_MODELS_DIR, default ../shared/models)."""
    return _folder("EDGE_TEST_MODELS_DIR", ROOT.parent / "shared" / "models", "test models")


def images_folder() -> Path:
    """The folder of real photos (EDGE_TEST_IMAGES_DIR, default ../shared/images)."""
    return _folder("EDGE_TEST_IMAGES_DIR", ROOT.parent / "shared" / "images", "test images")


@pytest.fixture(scope="session")
def images_dir() -> Path:
    """The folder of real photos (EDGE_TEST_IMAGES_DIR, default ../shared/images)."""
    return images_folder()


@pytest.fixture(scope="session")
def photo(images_dir: Path) -> Callable[[str], bytes]:
    """Read a real photo by file name."""

    def read(name: str) -> bytes:
        return (images_dir / name).read_bytes()

    return read


@pytest.fixture
def models_copy(models_dir: Path, tmp_path: Path) -> Path:
    """A writable models folder with the default and the small model, and a broken file."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in (DEFAULT_MODEL, SMALL_MODEL):
        shutil.copy(models_dir / load_catalog()[name].file, folder)
    (folder / "broken.tflite").write_bytes(b"TFL3 but not really a model" * 100)
    return folder


@pytest.fixture(scope="session")
def runtime() -> str:
    """The runtime under test (EDGE_RUNTIME, as the test command sets it per leg)."""
    return os.environ.get("EDGE_RUNTIME", "auto")


@pytest.fixture
def settings_for(models_dir: Path, runtime: str) -> Callable[..., Settings]:
    """Settings for a catalog model in the test models folder."""

    def make(model: str = DEFAULT_MODEL, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "model": model,
            "models_dir": models_dir,
            "runtime": runtime,
            "num_threads": 1,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]  # values checked by pydantic

    return make


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """`edge-server serve` as a child process on 127.0.0.1."""

    def __init__(
        self,
        env: dict[str, str],
        port: int,
        *,
        open_files: int | None = None,
        log_path: Path | None = None,
        file_size: int | None = None,
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = ""
        # A file instead of a pipe for a log that must not block the server by filling up.
        self.log_path = log_path
        log_file = None if log_path is None else log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge_server",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.PIPE if log_file is None else log_file,
            stderr=subprocess.STDOUT,
            text=True,
            # An open-file limit (soft and hard), as a service manager would set; a file-size
            # limit stands for a full disk (the kernel refuses writes past it with EFBIG).
            preexec_fn=_limits(open_files, file_size),
        )
        if log_file is not None:
            log_file.close()  # the child has its own copy

    def wait_ready(self, timeout: float = HANG) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=HANG)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None and not self.process.stdout.closed:
            self.log += self.process.stdout.read()
            self.process.stdout.close()
        if self.log_path is not None:
            self.log = self.log_path.read_text(errors="replace")
        return self.process.returncode


PI_MODEL = "Raspberry Pi 4 Model B Rev 1.4\x00"


def fake_pi(root: Path, *, throttled: str | None = "50005\n") -> Path:
    """A Raspberry Pi 4's sysfs and device tree under root: 48.312 C, 1.5 GHz, the firmware's
    throttling word (0x50005 = under-voltage and throttled now and since boot)."""
    files = {
        "proc/device-tree/model": PI_MODEL,
        "sys/class/thermal/thermal_zone0/temp": "48312\n",
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq": "1500000\n",
    }
    if throttled is not None:
        files["sys/devices/platform/soc/soc:firmware/get_throttled"] = throttled
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _limits(open_files: int | None, file_size: int | None) -> Callable[[], None] | None:
    if open_files is None and file_size is None:
        return None

    def apply() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
        if file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    return apply


def server_env(models_dir: Path, runtime: str, **settings: str) -> dict[str, str]:
    """The environment of a server child: this one, minus stray EDGE_ settings, plus these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(
        EDGE_MODELS_DIR=str(models_dir),
        EDGE_RUNTIME=runtime,
        EDGE_NUM_THREADS="1",
        EDGE_LOG_LEVEL="warning",
    )
    env.update({f"EDGE_{k.upper()}": v for k, v in settings.items()})
    return env


@pytest.fixture(scope="session")
def server(models_dir: Path, runtime: str) -> Iterator[ServerProcess]:
    """One real server process on the default model, shared by the HTTP tests."""
    process = ServerProcess(
        server_env(models_dir, runtime, max_upload_bytes="2000000"), free_port()
    )
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def http(models_dir: Path, runtime: str) -> Iterator[httpx.Client]:
    """An HTTP client of the default model's app, in process (2 MB upload limit, as `server`)."""
    settings = Settings(
        models_dir=models_dir,
        runtime=RuntimeChoice(runtime),
        num_threads=1,
        max_upload_bytes=2_000_000,
    )
    with in_process(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="session")
def detector_http(models_dir: Path, runtime: str) -> Iterator[httpx.Client]:
    """An in-process app serving the COCO detector beside the small classifier (the detector
    is the default), with a 2 MB upload limit."""
    settings = Settings(
        model=[DETECTOR, SMALL_MODEL],
        models_dir=models_dir,
        runtime=RuntimeChoice(runtime),
        max_upload_bytes=2_000_000,
    )
    with in_process(create_app(settings)) as client:
        yield client


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            return float(value)
    return 0.0
