"""The input spec: how the user fills a model's inputs (``--dim``, ``--shape``, ``--value``,
``--range``, ``--data``), parsed in the parent and resolved against the model in the worker.

Parsing is pure and cheap; resolution needs only the model's declared inputs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlfit.errors import ConfigError
from mlfit.result import TensorInfo

_NAME = r"[^=\s][^=]*"


class InputSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    dims: dict[str, int] = Field(default_factory=dict)
    shapes: dict[str, list[int]] = Field(default_factory=dict)
    values: dict[str, float] = Field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    data_file: str | None = None  # .npz with arrays by input name
    data_arrays: dict[str, str] = Field(default_factory=dict)  # input -> .npy path
    seed: int = 0
    # With several models, a --dim may belong to some of them only: it is then ignored for
    # the models that lack it instead of stopping them (one model: always an error).
    lenient_dims: bool = False
    # Set by the run before measuring (mlfit.plan.inputs.plan_inputs), not by a flag of the same name:
    # the leading free dim of every input is filled with ``batch`` (the targets' batch_size or
    # --batch), and integer inputs get the valid range read from the model (an embedding table's
    # rows, a OneHot depth, a Clip), each with the reason, so the report can say where it came from.
    batch: int | None = None
    batch_source: str = ""
    derived_ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    range_sources: dict[str, str] = Field(default_factory=dict)


def _split(flag: str, text: str, example: str) -> tuple[str, str]:
    match = re.fullmatch(rf"\s*({_NAME}?)\s*=\s*(.+?)\s*", text)
    if not match or not match.group(1).strip():
        raise ConfigError(f"{flag} '{text}': expected NAME=VALUE", f"for example {flag} {example}")
    return match.group(1).strip(), match.group(2)


def _positive_int(flag: str, text: str, raw: str, example: str) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise ConfigError(f"{flag} '{raw}': '{text}' is not a whole number", f"for example {flag} {example}")
    value = int(text)
    if not 0 < value <= 1 << 31:
        raise ConfigError(f"{flag} '{raw}': {value} is out of range (1..2^31)", f"for example {flag} {example}")
    return value


def _number(flag: str, text: str, raw: str, example: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{flag} '{raw}': '{text}' is not a number", f"for example {flag} {example}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{flag} '{raw}': value must be finite", f"for example {flag} {example}")
    return value


def parse_input_flags(
    dims: list[str] | None = None,
    shapes: list[str] | None = None,
    values: list[str] | None = None,
    ranges: list[str] | None = None,
    data: list[str] | None = None,
    seed: int = 0,
) -> InputSpec:
    """Parse the repeatable input flags into an InputSpec; any mistake is a ConfigError (exit 2)."""
    out_dims: dict[str, int] = {}
    for raw in dims or []:
        name, text = _split("--dim", raw, "batch=1")
        out_dims[name] = _positive_int("--dim", text, raw, "batch=1")
    out_shapes: dict[str, list[int]] = {}
    for raw in shapes or []:
        name, text = _split("--shape", raw, "input=1x3x224x224")
        parts = re.split(r"[x,]", text)
        out_shapes[name] = [_positive_int("--shape", p.strip(), raw, "input=1x3x224x224") for p in parts]
    out_values: dict[str, float] = {}
    for raw in values or []:
        name, text = _split("--value", raw, "sample_rate=16000")
        out_values[name] = _number("--value", text, raw, "sample_rate=16000")
    out_ranges: dict[str, tuple[float, float]] = {}
    for raw in ranges or []:
        name, text = _split("--range", raw, "input_ids=0:30000")
        if text.count(":") != 1:
            raise ConfigError(f"--range '{raw}': expected LOW:HIGH", "for example --range input_ids=0:30000")
        low_text, high_text = text.split(":")
        low = _number("--range", low_text, raw, "input_ids=0:30000")
        high = _number("--range", high_text, raw, "input_ids=0:30000")
        if not low < high:
            raise ConfigError(f"--range '{raw}': LOW must be below HIGH", "for example --range input_ids=0:30000")
        out_ranges[name] = (low, high)
    data_file: str | None = None
    data_arrays: dict[str, str] = {}
    for raw in data or []:
        if "=" in raw:
            name, text = _split("--data", raw, "input=sample.npy")
            if not Path(text).is_file():
                raise ConfigError(f"--data '{raw}': file '{text}' does not exist")
            data_arrays[name] = str(Path(text).resolve())
        else:
            if not Path(raw).is_file():
                raise ConfigError(f"--data '{raw}': file does not exist", "give an .npz with arrays by input name")
            if data_file is not None:
                raise ConfigError("--data FILE.npz given twice", "merge the arrays into one .npz")
            data_file = str(Path(raw).resolve())
    return InputSpec(dims=out_dims, shapes=out_shapes, values=out_values, ranges=out_ranges,
                     data_file=data_file, data_arrays=data_arrays, seed=seed)


def input_spec(dims: Mapping[str, int] | None = None, shapes: Mapping[str, Sequence[int]] | None = None,
               values: Mapping[str, float] | None = None,
               ranges: Mapping[str, tuple[float, float]] | None = None,
               data: str | Path | Mapping[str, str | Path] | None = None, seed: int = 0) -> InputSpec:
    """The Python API's typed inputs, checked exactly as their flags are (same rules, same messages):
    ``dims={"batch": 1}``, ``shapes={"image": (1, 3, 224, 224)}``, ``values={"sr": 16000}``,
    ``ranges={"input_ids": (0, 30000)}``, ``data="samples.npz"`` or ``data={"x": "x.npy"}``."""
    data_flags: list[str] = []
    if isinstance(data, Mapping):
        data_flags = [f"{name}={path}" for name, path in data.items()]
    elif data is not None:
        data_flags = [str(data)]
    return parse_input_flags(
        dims=[f"{k}={v}" for k, v in (dims or {}).items()],
        shapes=[f"{k}={'x'.join(str(d) for d in v)}" for k, v in (shapes or {}).items()],
        values=[f"{k}={v}" for k, v in (values or {}).items()],
        ranges=[f"{k}={low}:{high}" for k, (low, high) in (ranges or {}).items()],
        data=data_flags, seed=seed)


def _flag_example(inputs: list[TensorInfo], spec: InputSpec) -> str:
    flags: list[str] = []
    for tensor in inputs:
        batch = spec.batch if spec.batch is not None and is_batch_dim(tensor) else None
        for i, dim in enumerate(tensor.shape):
            if i == 0 and batch is not None:
                continue
            if isinstance(dim, str) and dim not in spec.dims and f"--dim {dim}=" not in " ".join(flags):
                flags.append(f"--dim {dim}={1 if 'batch' in dim.lower() or dim.lower() == 'n' else 'N'}")
            elif dim is None:
                flags.append(f"--shape {tensor.name}=" + "x".join(
                    str(batch) if j == 0 and batch is not None else str(spec.dims.get(d, "N"))
                    if isinstance(d, str) else str(d) if isinstance(d, int) else "N"
                    for j, d in enumerate(tensor.shape)))
                break
    return " ".join(flags)


def check_flag_names(inputs: list[dict[str, Any]], spec: InputSpec) -> None:
    """Refuse --dim/--shape/--value names the model does not have (static facts' ``inputs``:
    name, dtype, shape with symbolic dims as strings), as a measurement would."""
    names = {str(t["name"]) for t in inputs}
    listing = "; ".join(f"{t['name']} {t['dtype']}[{', '.join(str(d) for d in t['shape'])}]" for t in inputs)
    for flag, given in (("--shape", spec.shapes), ("--value", spec.values)):
        for name in given:
            if name not in names:
                raise ConfigError(f"{flag} names input '{name}', which the model does not have", f"inputs: {listing}")
    symbolic = {d for t in inputs for d in t["shape"] if isinstance(d, str)}
    for dim_name in spec.dims:
        if dim_name not in symbolic:
            known = ", ".join(sorted(symbolic)) or "none (all dims are fixed)"
            raise ConfigError(f"--dim names '{dim_name}', which is not a symbolic dim of this model",
                              f"symbolic dims: {known}")


def describe_inputs(inputs: list[TensorInfo]) -> str:
    return "; ".join(
        f"{t.name} {t.dtype}[{', '.join('?' if d is None else str(d) for d in t.shape)}]" for t in inputs)


def leading_dim_free(tensor: TensorInfo) -> bool:
    """The one rule for "this input's leading dim is free": it is symbolic, unknown, or not a
    positive size. Every other batch decision (filling a batch, batched feeds, the plan) builds on it."""
    return bool(tensor.shape) and not (isinstance(tensor.shape[0], int) and tensor.shape[0] > 0)


def batch_free(inputs: list[TensorInfo]) -> bool:
    """Whether a batch of any size can be fed: every input's leading dim is free (none means no)."""
    return bool(inputs) and all(leading_dim_free(t) for t in inputs)


def is_batch_dim(tensor: TensorInfo) -> bool:
    """Whether the input's leading dim is a free batch dim: free (:func:`leading_dim_free`), and the
    input has more dims after it or the dim is named like a batch. A rank-1 free dim named
    'samples' is a length, not a batch, and is never filled from a batch size."""
    if not leading_dim_free(tensor):
        return False
    lead = tensor.shape[0]
    named_batch = isinstance(lead, str) and ("batch" in lead.lower() or lead.lower() in ("n", "b"))
    return len(tensor.shape) >= 2 or named_batch


def batch_filled(inputs: list[TensorInfo], spec: InputSpec, data_names: set[str] | None = None) -> list[str]:
    """Inputs whose leading dim :func:`resolve_shapes` fills from ``spec.batch``."""
    if spec.batch is None:
        return []
    skip = set(spec.shapes) | set(data_names or ())
    return [t.name for t in inputs if t.name not in skip and is_batch_dim(t)
            and not (isinstance(t.shape[0], str) and t.shape[0] in spec.dims)]


_INTEGER_DTYPES = frozenset({"int8", "uint8", "int16", "uint16", "int32", "int64", "uint32", "uint64"})


def unranged_integers(inputs: list[TensorInfo], spec: InputSpec, data_names: set[str],
                      quantized: set[str]) -> list[TensorInfo]:
    """Integer inputs nothing gives values to: no --value, --range, --data, no range read from the
    model, and not quantized (a quantized input is real-valued: [0, 1) in real units)."""
    given = set(spec.values) | set(spec.ranges) | set(spec.derived_ranges) | data_names | quantized
    return [t for t in inputs if t.dtype in _INTEGER_DTYPES and t.name not in given]


def refuse_unranged_integers(inputs: list[TensorInfo], spec: InputSpec, data_names: set[str],
                             quantized: set[str]) -> None:
    """Stop (exit 2) naming every integer input whose valid values are not known, with a ready flag:
    random integers in a guessed range would measure another computation (an index out of an
    embedding table, a sample rate of 42)."""
    missing = unranged_integers(inputs, spec, data_names, quantized)
    if not missing:
        return
    flags = []
    for tensor in missing:
        per_sample = tensor.shape[1:] if is_batch_dim(tensor) else tensor.shape
        scalar = all(d == 1 for d in per_sample)  # one number per sample (a sample rate): a constant
        flags.append(f"--value {tensor.name}=N" if scalar else f"--range {tensor.name}=LOW:HIGH")
    what = "; ".join(f"{t.name} {t.dtype}[{', '.join('?' if d is None else str(d) for d in t.shape)}]"
                     + (" (a scalar)" if not t.shape else "") for t in missing)
    raise ConfigError(
        f"integer input(s) whose valid values the model does not state: {what}; mlfit never guesses them",
        f"give each one: {' '.join(flags)} (a constant for a scalar such as a sample rate; HIGH is exclusive "
        "for integers), or real samples with --data")


def resolve_shapes(inputs: list[TensorInfo], spec: InputSpec, data_shapes: dict[str, tuple[int, ...]]) -> dict[
        str, list[int]]:
    """Concrete shape per input, or a ConfigError listing every unfilled dim and the flags that fill it."""
    names = {t.name for t in inputs}
    flag_names: list[tuple[str, list[str]]] = [
        ("--shape", list(spec.shapes)), ("--value", list(spec.values)), ("--range", list(spec.ranges)),
        ("--data", list(spec.data_arrays))]
    for flag, given_names in flag_names:
        for name in given_names:
            if name not in names:
                raise ConfigError(f"{flag} names input '{name}', which the model does not have",
                                  f"inputs: {describe_inputs(inputs)}")
    symbolic = {d for t in inputs for d in t.shape if isinstance(d, str)}
    for dim_name in spec.dims:
        if dim_name not in symbolic and not spec.lenient_dims:
            known = ", ".join(sorted(symbolic)) or "none (all dims are fixed)"
            raise ConfigError(f"--dim names '{dim_name}', which is not a symbolic dim of this model",
                              f"symbolic dims: {known}")
    shapes: dict[str, list[int]] = {}
    missing: list[TensorInfo] = []
    for tensor in inputs:
        if tensor.name in data_shapes:
            shapes[tensor.name] = list(data_shapes[tensor.name])
            continue
        if tensor.name in spec.shapes:
            given = spec.shapes[tensor.name]
            if len(given) != len(tensor.shape):
                raise ConfigError(f"--shape {tensor.name}: rank {len(given)} does not match the model's rank "
                                  f"{len(tensor.shape)}", f"the model declares {describe_inputs([tensor])}")
            for i, (want, have) in enumerate(zip(tensor.shape, given, strict=True)):
                if isinstance(want, int) and want > 0 and want != have:
                    raise ConfigError(f"--shape {tensor.name}: dim {i} is fixed at {want}, got {have}",
                                      f"the model declares {describe_inputs([tensor])}")
            shapes[tensor.name] = given
            continue
        concrete: list[int] = []
        for i, dim in enumerate(tensor.shape):
            if isinstance(dim, int) and dim > 0:
                concrete.append(dim)
            elif isinstance(dim, str) and dim in spec.dims:
                concrete.append(spec.dims[dim])
            elif i == 0 and spec.batch is not None and is_batch_dim(tensor):
                concrete.append(spec.batch)
            else:
                missing.append(tensor)
                break
        else:
            shapes[tensor.name] = concrete
    if missing:
        raise ConfigError(
            f"the model has dims nothing fills: {describe_inputs(missing)}; mlfit never guesses them",
            f"for example: {_flag_example(missing, spec)}")
    return shapes
