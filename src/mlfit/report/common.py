"""Wording shared by the text reporters (Markdown, JUnit, HTML): one place for labels and numbers."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from mlfit.catalog.units import format_duration, format_rate, format_size
from mlfit.errors import printable
from mlfit.result import (
    ChangeStatus,
    Check,
    ColdStart,
    Emulation,
    MetricChange,
    Provenance,
    RunResult,
    TensorInfo,
    Verdict,
)

M = TypeVar("M", bound=BaseModel)


def _printable_values(value: Any) -> Any:
    if isinstance(value, Enum):  # closed choices (verdicts, sources): ours, kept as they are
        return value
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {_printable_values(k): _printable_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable_values(v) for v in value]
    return value


def sanitized(model: M) -> M:
    """A copy of a result or report whose every string is printable on one line (no control,
    escape or bidirectional characters): what the terminal and plain-text reporters render."""
    return type(model).model_validate(_printable_values(model.model_dump(mode="python")))

PROVENANCE_LABEL = {
    Provenance.MEASURED_ON_HOST: "measured (host)",
    Provenance.MEASURED_ON_TARGET: "measured (target)",
    Provenance.EMULATED: "emulated (container limits)",
    Provenance.PROJECTED: "projected",
    Provenance.STATIC: "static",
}
VERDICT_ICON = {Verdict.PASS: "✅", Verdict.FAIL: "❌", Verdict.INCONCLUSIVE: "⚠️", Verdict.ERROR: "💥"}
CHANGE_ICON = {
    ChangeStatus.REGRESSION: "🔻",
    ChangeStatus.IMPROVEMENT: "🔺",
    ChangeStatus.UNCHANGED: "＝",
    ChangeStatus.INCONCLUSIVE: "❔",
    ChangeStatus.NOT_TESTED: "·",
}


def format_value(value: float | None, unit: str) -> str:
    """A figure in its unit, the way people read it: '518.4 µs', '83.5 MiB', '2431.5/s'."""
    if value is None:
        return "-"
    if unit == "s":
        return format_duration(value)
    if unit == "B":
        return format_size(value)
    if unit == "/s":
        return format_rate(value)
    return f"{value:g}"


def value_text(check: Check) -> str:
    """The check's value, with its [optimistic – conservative] band when it is a projection."""
    text = format_value(check.value, check.unit)
    if check.lower is not None and check.upper is not None and check.lower != check.upper:
        text += f" [{format_value(check.lower, check.unit)} – {format_value(check.upper, check.unit)}]"
    return text


def margin_text(check: Check) -> str:
    return f"{check.margin:+.0%}" if check.margin is not None else ""


def budget_text(check: Check) -> str:
    return check.budget


def source_text(result: RunResult) -> str | None:
    """Where a model from MLflow came from, in one line; None for a local file."""
    src = result.model.source
    if src is None:
        return None
    parts = [f"registry {src.registry}" if src.name else f"tracking {src.registry}"]
    if src.uri != result.model.path:
        parts.insert(0, f"asked as {src.uri}")
    if src.run_id:
        parts.append(f"run {src.run_id}")
    parts.append(f"{src.flavour} flavour: {src.file}" if src.flavour else f"file {src.file}")
    return f"{src.kind}: " + ", ".join(parts)


def model_name(result: RunResult) -> str:
    """The file's name; a model from MLflow is named by its whole URI (models:/NAME/VERSION)."""
    if result.model.source is not None:
        return result.model.path
    return Path(result.model.path).name or result.model.path


def change_text(change: MetricChange) -> str:
    return "-" if change.change is None else f"{change.change * 100:+.1f}%"


def interval_text(change: MetricChange) -> str:
    if change.ci_low is None or change.ci_high is None:
        return "-"
    return f"[{change.ci_low * 100:+.1f}%, {change.ci_high * 100:+.1f}%]"


def error_text(result: RunResult) -> str:
    err = result.error
    if err is None:
        return ""
    return f"{err.kind} in {err.phase}: {err.message}" + (f" ({err.hint})" if err.hint else "")


def describe_input(tensor: TensorInfo) -> str:
    """'bytes int32[1x64]: uniform [0, 258) (the model: ...)': the shape and values an input was measured with."""
    text = f"{tensor.name} {tensor.dtype}[{'x'.join(map(str, tensor.shape))}]"
    fill = tensor.fill
    if fill is None:
        return text
    if fill.kind == "constant":
        values = f"constant {fill.value:g}"
    elif fill.kind == "data":
        values = "real samples"
    else:
        values = f"{'quantized ' if fill.kind == 'quantized' else ''}uniform [{fill.low:g}, {fill.high:g})"
    return f"{text}: {values} ({fill.source})" if fill.source else f"{text}: {values}"


def _latency_label(result: RunResult, batch: int) -> str:
    """What a configuration's p50 is: one call at the batch its inputs had. The configuration's batch
    is that of its throughput phase; the latency is timed on the run's inputs, which follow the
    configuration's batch only where the free batch dim was filled from the targets ("batch 64: p50"
    read as a batch-64 latency when it was batch 1, issue 23)."""
    leads = {t.shape[0] for t in result.model.inputs_used if t.shape and isinstance(t.shape[0], int)}
    first = result.configurations[0].batch if result.configurations else 1
    if len(leads) != 1:
        return "p50 per call"
    lead = int(leads.pop())
    return f"p50 per call of batch {batch if first > 1 and lead == first else lead}"


def configuration_lines(result: RunResult) -> list[str]:
    """One line per deployment configuration when several were measured (the table above is the first's)."""
    if len(result.configurations) < 2:
        return []
    lines = [f"{len(result.configurations)} deployment configurations, each measured in its own run "
             "(the figures above are the first's):"]
    for i, config in enumerate(result.configurations):
        m = result.measurement if i == 0 else config.measurement
        figures = "not measured" if m is None else (
            f"{_latency_label(result, config.batch)} {format_value(m.latency.p50, 's')}, "
            f"peak {format_size(m.memory.peak_bytes)}"
            + (f", {format_rate(m.throughput.batched_per_s)} at batch {config.batch}"
               if m.throughput.batched_per_s else ""))
        lines.append(f"  {config.label} ({', '.join(config.targets)}): {figures}")
    return lines


# The phases whose CFS throttling matters for the latency figures.
TIMED_PHASES = ("measure", "throughput", "scenario")


def describe_limits(emulation: Emulation) -> str:
    """'cpu 1, memory 256.0 MiB; 2 thread(s); cgroup v1': the limits a container target ran under."""
    parts = []
    if emulation.cpu is not None:
        parts.append(f"cpu {emulation.cpu:g}")
    if emulation.memory_bytes is not None:
        parts.append(f"memory {format_size(emulation.memory_bytes)}")
    if emulation.cpuset:
        parts.append(f"cpuset {emulation.cpuset}")
    return f"{', '.join(parts) or 'no limits'}; {emulation.threads} thread(s); {emulation.method}"


def throttle_totals(emulation: Emulation) -> tuple[int, int, float]:
    """(CFS periods, periods throttled, seconds throttled) over the timed phases."""
    timed = [emulation.throttling[p] for p in TIMED_PHASES if p in emulation.throttling]
    return (sum(t.periods for t in timed), sum(t.throttled_periods for t in timed),
            sum(t.throttled_s for t in timed))


COLD_START_NAMES = {"process_start": "process start", "import": "runtime import", "load": "load",
                    "first_inference": "first inference"}


def cold_start_items(cold: ColdStart) -> list[str]:
    """['process start 310 ms', '+ runtime import 9.90 s', '+ load 360 ms', '+ first inference 20 ms', '= 10.59 s']:
    every part a fresh process pays, then the whole (the parts in the result's JSON are the same)."""
    parts = [f"{'+ ' if i else ''}{COLD_START_NAMES[k]} {format_duration(v)}"
             for i, (k, v) in enumerate(cold.parts().items())]
    return [*parts, f"= {format_duration(cold.total_s)}"]


def cold_start_text(cold: ColdStart) -> str:
    return " ".join(cold_start_items(cold))
