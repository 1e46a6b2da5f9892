"""Builders for hostile model files and helpers to prove no process was left behind.

Shared by the test_hostile_*, test_faults, test_interrupt and test_fuzz modules.
"""

from __future__ import annotations

import json
import os
import pickle
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import psutil
from onnx import TensorProto, helper

from mlfit.zoo import builders


def external_model(folder: Path, location: str, elements: int = 16, name: str = "model.onnx",
                   length: int | None = None) -> Path:
    """``y = x + w`` where ``w`` (float32[elements]) lives in external data at ``location``.

    The data file itself is not written: tests create (or withhold) it.
    """
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[elements])
    w.data_location = TensorProto.EXTERNAL
    entries = {"location": location, "offset": "0"}
    if length is not None:
        entries["length"] = str(length)
    for key, value in entries.items():
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "external",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [elements])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [elements])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


def sparse_file(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space (a hole)."""
    with path.open("wb") as fh:
        fh.truncate(size)
    return path


def custom_op_model(path: Path, domain: str = "my.custom", op: str = "FancyOp") -> Path:
    node = helper.make_node(op, ["x"], ["y"], domain=domain)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    graph = helper.make_graph([node], "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def hanging_loop_model(path: Path) -> Path:
    """A Loop whose trip count is 2^62: one inference never ends in practice."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["acc_in", "one"], ["acc_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)], "hang",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [helper.make_tensor("trips", TensorProto.INT64, [], [2**62]),
         helper.make_tensor("cond", TensorProto.BOOL, [], [True])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return builders.save(model, path)


def memory_hog_model(path: Path) -> Path:
    """Each inference allocates ``n`` float32 zeros (n is an input: --value n=...), then sums them."""
    graph = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["n"], ["big"],
                          value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
         helper.make_node("ReduceSum", ["big"], ["y"], keepdims=0)],
        "hog", [helper.make_tensor_value_info("n", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return builders.save(model, path)


class _Boom:
    """Unpickling this creates the marker file: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def hostile_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps(_Boom(marker), protocol=4))
    return path


def zip_with_pickle(path: Path, marker: Path) -> Path:
    """A zip like a PyTorch checkpoint (a pickle inside), e.g. named .h5."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(_Boom(marker), protocol=4))
        archive.writestr("archive/version", "3\n")
    return path


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def marker_env() -> tuple[str, dict[str, str]]:
    """An environment variable that every process spawned from the test inherits."""
    marker = uuid.uuid4().hex
    return marker, {"MLFIT_TEST_MARKER": marker}


def processes_with(marker: str) -> list[psutil.Process]:
    """Live processes (not zombies) whose environment carries ``marker``."""
    found: list[psutil.Process] = []
    for proc in psutil.process_iter():
        try:
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get("MLFIT_TEST_MARKER") == marker:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def assert_no_process_left(marker: str, grace_s: float = 3.0) -> None:
    deadline = time.monotonic() + grace_s
    left = processes_with(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = processes_with(marker)
    for proc in left:  # clean up before failing, so one failure does not leak into other tests
        proc.kill()
    assert not left, [p.cmdline() for p in left]


def load_report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data
