"""The backend interface. A backend loads, describes, prepares inputs and runs one
inference; it never times anything (the worker does) and never prints.

The registry maps a runtime name to a module path; availability is probed with
``importlib.util.find_spec`` so the parent can name the pip extra without importing it.
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlfit.catalog.schema import Runtime
from mlfit.errors import ModelError
from mlfit.result import TensorInfo


@dataclass(frozen=True)
class LoadOptions:
    threads: int = 1
    execution_provider: str = "CPUExecutionProvider"
    trust_model: bool = False
    trust_types: tuple[str, ...] = ()
    signature: str = "serving_default"
    method: str = "predict"
    custom_op_libraries: tuple[str, ...] = ()
    enable_arena: bool = True
    profile_nodes: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """Loads one model with one runtime and runs it."""

    runtime: Runtime

    @abstractmethod
    def load(self, path: str, options: LoadOptions) -> None:
        """Load the model; raise ModelError with the runtime's message on failure."""

    @abstractmethod
    def inputs(self) -> list[TensorInfo]: ...

    @abstractmethod
    def outputs(self) -> list[TensorInfo]: ...

    def prepare(self, feeds: dict[str, Any]) -> Any:
        """Convert numpy feeds to what ``run`` takes, ahead of timing."""
        return feeds

    @abstractmethod
    def run(self, prepared: Any) -> Any:
        """One inference. Must block until results are ready."""

    def runner(self) -> Callable[[Any], Any]:
        """The cheapest callable for one inference: what the timed loop calls."""
        return self.run

    @abstractmethod
    def version(self) -> str: ...

    def quantization(self) -> dict[str, tuple[float, int]]:
        """(scale, zero point) per quantized integer input: generated data is drawn in real units
        and quantized with these, as a real quantized model's inputs would be."""
        return {}

    def details(self) -> dict[str, Any]:
        """Backend-specific facts for the result (arena on/off, provider list, ...)."""
        return {}


@dataclass(frozen=True)
class BackendEntry:
    module: str
    cls: str
    probe: str  # importable module whose presence means the runtime is installed
    extra: str  # pip extra that installs it


REGISTRY: dict[Runtime, BackendEntry] = {
    Runtime.ONNXRUNTIME: BackendEntry("mlfit.backends.onnx", "OnnxBackend", "onnxruntime", "mlfit"),
    Runtime.TENSORFLOW: BackendEntry("mlfit.backends.tensorflow", "TensorFlowBackend", "tensorflow",
                                     "mlfit[tensorflow]"),
    Runtime.TFLITE: BackendEntry("mlfit.backends.tflite", "TFLiteBackend", "tensorflow", "mlfit[tensorflow]"),
    Runtime.SKLEARN: BackendEntry("mlfit.backends.sklearn", "SklearnBackend", "sklearn", "mlfit[sklearn]"),
}


def is_available(runtime: Runtime) -> bool:
    entry = REGISTRY[runtime]
    if runtime is Runtime.TFLITE and importlib.util.find_spec("ai_edge_litert") is not None:
        return True
    return importlib.util.find_spec(entry.probe) is not None


def create_backend(runtime: Runtime) -> Backend:
    """Import the runtime's backend module; a missing runtime is a one-line ModelError."""
    entry = REGISTRY[runtime]
    if not is_available(runtime):
        from mlfit.install import install_hint

        extra = entry.extra.partition("[")[2].rstrip("]")
        raise ModelError(f"the {runtime.value} runtime is not installed",
                         install_hint(extra) if extra else "reinstall mlfit: onnxruntime is one of its dependencies")
    module = importlib.import_module(entry.module)
    backend: Backend = getattr(module, entry.cls)()
    return backend
