"""The TFLite boundary: which runtime package is loaded and how an interpreter is made.

LiteRT (`ai_edge_litert`) is preferred; `tflite_runtime` is the fallback for Python <= 3.11
boards with numpy < 2. A backend that is installed but fails to import is an error, never a
silent fall-through, so a broken wheel cannot quietly swap a 5 ms model for a 100 ms one.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .errors import StartupError


class Interpreter(Protocol):
    """The interpreter methods edge-server uses (both runtimes provide them)."""

    def allocate_tensors(self) -> None: ...
    def get_input_details(self) -> list[dict[str, Any]]: ...
    def get_output_details(self) -> list[dict[str, Any]]: ...
    def set_tensor(self, tensor_index: int, value: npt.NDArray[Any], /) -> None: ...
    def get_tensor(self, tensor_index: int, /) -> npt.NDArray[Any]: ...
    def invoke(self) -> None: ...


InterpreterFactory = Callable[..., Interpreter]


@dataclass(frozen=True)
class Backend:
    """A loaded runtime package."""

    name: str  # the distribution name, e.g. "ai-edge-litert"
    version: str
    interpreter_class: InterpreterFactory


# (choice, module, distribution) in order of preference.
class RuntimeChoice(StrEnum):
    """Which TFLite runtime package to load."""

    auto = "auto"
    litert = "litert"
    tflite = "tflite"


_CANDIDATES: tuple[tuple[RuntimeChoice, str, str], ...] = (
    (RuntimeChoice.litert, "ai_edge_litert.interpreter", "ai-edge-litert"),
    (RuntimeChoice.tflite, "tflite_runtime.interpreter", "tflite-runtime"),
)


def _import_backend(module_name: str, distribution: str) -> Backend | None:
    """Import one backend; None only when its top-level package is absent."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the package itself missing means "not installed"; a missing dependency
        # inside an installed package is breakage that must surface.
        if exc.name is not None and module_name.startswith(exc.name):
            return None
        raise StartupError(
            f"the {distribution} runtime is installed but cannot be imported: {exc}",
            fix=f"reinstall it (pip install --force-reinstall {distribution})",
        ) from exc
    except Exception as exc:  # a broken binary raises ImportError, OSError, ...
        raise StartupError(
            f"the {distribution} runtime is installed but cannot be imported: {exc}",
            fix=f"reinstall it (pip install --force-reinstall {distribution})",
        ) from exc
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:  # imported from a source tree
        version = "unknown"
    return Backend(distribution, version, module.Interpreter)


def load_backend(choice: RuntimeChoice = RuntimeChoice.auto) -> Backend:
    """Load the chosen runtime, or for `auto` the first installed one."""
    for candidate, module_name, distribution in _CANDIDATES:
        if choice not in (RuntimeChoice.auto, candidate):
            continue
        backend = _import_backend(module_name, distribution)
        if backend is not None:
            return backend
        if choice is candidate:
            raise StartupError(
                f"EDGE_RUNTIME={choice.value} but {distribution} is not installed",
                fix=f"pip install {distribution}, or set EDGE_RUNTIME=auto",
            )
    raise StartupError(
        "no TFLite runtime is installed",
        fix="pip install ai-edge-litert (or, on Python <= 3.11, edge-server[tflite])",
    )


@dataclass(frozen=True)
class CreatedInterpreter:
    """An interpreter with its tensors allocated and what the runtime said while making it."""

    interpreter: Interpreter
    runtime_log: Sequence[str]
    delegate_nodes: int | None = None  # None: the runtime cannot list its graph

    @property
    def xnnpack(self) -> bool:
        """Whether the XNNPACK delegate took over part of the graph.

        Read from the graph, not the log: the runtime logs "Created ... XNNPACK delegate" once
        per process, so a second interpreter would read as off, and the line means a delegate
        was made, not that it took any node. XNNPACK is the only delegate either runtime
        applies by default and edge-server passes no other.
        """
        if self.delegate_nodes is not None:
            return self.delegate_nodes > 0
        return any("XNNPACK" in line for line in self.runtime_log)


def delegate_nodes(interpreter: Interpreter) -> int | None:
    """How many delegate nodes replaced ops in the graph, or None when it cannot be listed."""
    # A private method, present in both runtimes' Python wrappers; absence is tolerated.
    ops_details = getattr(interpreter, "_get_ops_details", None)
    if ops_details is None:
        return None
    try:
        return sum(1 for op in ops_details() if op.get("op_name") == "DELEGATE")
    except Exception:  # a wrapper that changed shape: fall back to the log
        return None


def create_interpreter(backend: Backend, model_path: str, num_threads: int) -> CreatedInterpreter:
    """Make an interpreter (XNNPACK is the runtimes' default delegate) and allocate tensors.

    Both runtimes write their start-up lines straight to file descriptor 2 from C++; they are
    captured here so the service can log them properly (and, where a runtime cannot list its
    graph, tell from them whether XNNPACK was applied).
    """
    with _captured_stderr() as captured:
        try:
            interpreter = backend.interpreter_class(model_path=model_path, num_threads=num_threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise StartupError(
                f"{model_path} is not a TFLite model the runtime can load: {exc}",
                fix="point EDGE_MODEL at a .tflite file (edge-server models pull NAME)",
            ) from exc
    return CreatedInterpreter(interpreter, tuple(captured), delegate_nodes(interpreter))


@contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Redirect fd 2 to a temporary file for the block; the list is filled with its lines."""
    lines: list[str] = []
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            lines.extend(line for line in text.splitlines() if line.strip())


def zeros_for(detail: dict[str, Any]) -> npt.NDArray[Any]:
    """A zero input tensor matching an input detail (for warm-up)."""
    return np.zeros(tuple(int(d) for d in detail["shape"]), dtype=detail["dtype"])
