"""Choosing the TFLite runtime: preference order, explicit choice, broken installs."""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_server.core import runtime
from edge_server.core.errors import StartupError
from edge_server.core.runtime import RuntimeChoice


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module.split(".")[0]) is not None


def test_auto_loads_the_first_installed_runtime() -> None:
    """auto picks LiteRT when it is importable, else tflite-runtime (computed, then asserted)."""
    expected = next(dist for _, mod, dist in runtime._CANDIDATES if _installed(mod))
    assert runtime.load_backend(RuntimeChoice.auto).name == expected


@pytest.mark.parametrize("choice", [RuntimeChoice.litert, RuntimeChoice.tflite])
def test_an_explicit_choice_loads_that_runtime_or_says_it_is_missing(
    choice: RuntimeChoice,
) -> None:
    """EDGE_RUNTIME=litert/tflite loads exactly that package, or fails naming it."""
    _, module, distribution = next(c for c in runtime._CANDIDATES if c[0] is choice)
    if _installed(module):
        backend = runtime.load_backend(choice)
        assert backend.name == distribution
        assert backend.version[0].isdigit()
    else:
        with pytest.raises(StartupError, match=f"{distribution} is not installed"):
            runtime.load_backend(choice)


@pytest.fixture
def fake_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for fake runtime packages."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("fake_rt_")]:
        del sys.modules[name]


def _package(root: Path, name: str, interpreter_source: str) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    (root / name / "interpreter.py").write_text(interpreter_source)


def test_an_absent_runtime_falls_through_to_the_next(
    fake_packages: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runtime that is not installed at all is skipped for the next candidate."""
    _package(fake_packages, "fake_rt_good", "class Interpreter:\n    pass\n")
    monkeypatch.setattr(
        runtime,
        "_CANDIDATES",
        (
            (RuntimeChoice.litert, "fake_rt_absent.interpreter", "fake-absent"),
            (RuntimeChoice.tflite, "fake_rt_good.interpreter", "fake-good"),
        ),
    )
    assert runtime.load_backend(RuntimeChoice.auto).name == "fake-good"


@pytest.mark.parametrize(
    "source",
    [
        "import fake_rt_missing_dependency\n",
        "raise ImportError('libtensorflowlite.so: undefined symbol')\n",
    ],
)
def test_an_installed_but_broken_runtime_fails_loudly(
    fake_packages: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """A runtime that is present but cannot import stops start-up; it does not fall through."""
    _package(fake_packages, "fake_rt_broken", source)
    _package(fake_packages, "fake_rt_good", "class Interpreter:\n    pass\n")
    monkeypatch.setattr(
        runtime,
        "_CANDIDATES",
        (
            (RuntimeChoice.litert, "fake_rt_broken.interpreter", "fake-broken"),
            (RuntimeChoice.tflite, "fake_rt_good.interpreter", "fake-good"),
        ),
    )
    with pytest.raises(StartupError, match="fake-broken runtime is installed but cannot be"):
        runtime.load_backend(RuntimeChoice.auto)


def test_xnnpack_is_read_from_the_graph_for_every_interpreter(models_dir: Path) -> None:
    """A second interpreter in the process reports XNNPACK like the first (the log says it once).

    LiteRT applies XNNPACK to the quantized MobileNet; tflite-runtime 2.14 does not on x86_64.
    """
    backend = runtime.load_backend(RuntimeChoice(os.environ.get("EDGE_RUNTIME", "auto")))
    model = str(models_dir / "mobilenet_v1_0.25_128_quant.tflite")
    first, second = (runtime.create_interpreter(backend, model, 1) for _ in range(2))
    assert first.delegate_nodes is not None
    assert first.xnnpack == second.xnnpack
    if backend.name == "ai-edge-litert":
        assert first.xnnpack
    elif platform.machine() == "x86_64":
        assert not first.xnnpack
