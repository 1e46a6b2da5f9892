"""onnxruntime backend."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any

import onnxruntime as ort

from mlfit.backends.base import Backend, LoadOptions
from mlfit.catalog.schema import Runtime
from mlfit.errors import ModelError
from mlfit.result import TensorInfo

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(bfloat16)": "bfloat16", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
    "tensor(int16)": "int16", "tensor(uint16)": "uint16", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(uint32)": "uint32", "tensor(uint64)": "uint64",
    "tensor(bool)": "bool", "tensor(string)": "string",
}  # fmt: skip


def _tensor(arg: Any) -> TensorInfo:
    shape: list[int | str | None] = []
    for dim in arg.shape or []:
        if (isinstance(dim, int) and dim > 0) or (isinstance(dim, str) and dim):
            shape.append(dim)
        else:
            shape.append(None)
    return TensorInfo(name=arg.name, dtype=_ORT_TYPES.get(arg.type, arg.type), shape=shape)


def _clean_ort_message(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)


class OnnxBackend(Backend):
    runtime = Runtime.ONNXRUNTIME

    def __init__(self) -> None:
        self.session: ort.InferenceSession | None = None
        self.options: LoadOptions | None = None
        self.output_names: list[str] = []
        self.providers: list[str] = []

    def load(self, path: str, options: LoadOptions) -> None:
        self.options = options
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.enable_cpu_mem_arena = options.enable_arena
        so.log_severity_level = 3
        if options.profile_nodes:
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(options.extra.get("profile_dir", "."), "ort_profile")
        for library in options.custom_op_libraries:
            try:
                so.register_custom_ops_library(library)
            except Exception as exc:
                raise ModelError(f"cannot load custom op library '{library}': {_clean_ort_message(exc)}",
                                 "build it against this onnxruntime version") from None
        available = ort.get_available_providers()
        provider = options.execution_provider
        if provider not in available:
            provider = "CPUExecutionProvider"
        self.providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(path, sess_options=so, providers=self.providers)
        except Exception as exc:
            message = _clean_ort_message(exc)
            custom = re.search(r"(?:domain|Domain)[^']*'([^']+)'.*?(?:Op|op)[^']*'([^']+)'|"
                               r"Could not find an implementation for (\w+)\(\d+\) node", message)
            hint = "check that the model was exported for this onnxruntime version"
            if "opset" in message.lower() or "domain" in message.lower():
                hint = ("a custom operator needs its library: --custom-op-library PATH"
                        if custom else hint)
            raise ModelError(f"onnxruntime {ort.__version__} could not load the model: {message}", hint) from None
        self.output_names = [o.name for o in self.session.get_outputs()]

    def inputs(self) -> list[TensorInfo]:
        assert self.session is not None
        return [_tensor(i) for i in self.session.get_inputs()]

    def outputs(self) -> list[TensorInfo]:
        assert self.session is not None
        return [_tensor(o) for o in self.session.get_outputs()]

    def run(self, prepared: Any) -> Any:
        assert self.session is not None
        return self.session.run(self.output_names, prepared)

    def runner(self) -> Callable[[Any], Any]:
        assert self.session is not None
        return functools.partial(self.session.run, self.output_names)

    def version(self) -> str:
        return str(ort.__version__)

    def details(self) -> dict[str, Any]:
        return {"providers": self.providers, "arena_enabled": bool(self.options and self.options.enable_arena)}

    def end_profiling(self) -> str | None:
        """Stop node-level profiling and return the trace file path (used by projection)."""
        if self.session is None or not (self.options and self.options.profile_nodes):
            return None
        return str(self.session.end_profiling())
