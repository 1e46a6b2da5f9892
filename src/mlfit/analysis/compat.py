"""Can the model run on the target at all? Static compatibility checks, each with a verdict.

A model that cannot run on the target for one of these reasons FAILS whatever its speed.
Kernel availability is asked of the installed onnxruntime (in the worker, through its
kernel registry) rather than read from a hard-coded list; where the target's execution
provider is not built into this host's onnxruntime, that is said, not guessed.
"""

from __future__ import annotations

from typing import Any

from mlfit.catalog.loader import Target
from mlfit.catalog.units import format_size
from mlfit.records import NodeProfile
from mlfit.result import Check, ModelInfo, Provenance, Verdict

# Highest ai.onnx opset each onnxruntime release implements (onnxruntime's compatibility
# table, docs/compatibility: "ONNX opset support"). Used only when a profile pins an older
# runtime than the host's; for the host's own runtime, its kernel registry is asked.
ORT_MAX_OPSET = {
    "1.10": 15, "1.11": 16, "1.12": 17, "1.13": 17, "1.14": 18, "1.15": 19, "1.16": 19, "1.17": 20,
    "1.18": 21, "1.19": 21, "1.20": 21, "1.21": 22, "1.22": 22, "1.23": 23,
}  # fmt: skip


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _static(
    metric: str,
    budget: str,
    ok: bool,
    reason: str,
    value: float | None = None,
    limit: float | None = None,
    unit: str = "",
    verdict: Verdict | None = None,
) -> Check:
    return Check(
        metric=metric,
        budget=budget,
        value=value,
        limit=limit,
        lower=value,
        upper=value,
        unit=unit,
        verdict=verdict or (Verdict.PASS if ok else Verdict.FAIL),
        provenance=Provenance.STATIC,
        reason="" if ok and verdict is None else reason,
        margin=((limit - value) / limit) if (limit and value is not None) else None,
    )


def _convert_hint(runtime: str, provided: list[str]) -> str:
    """'; --convert measures ...' when mlfit has a converter from the model's runtime to one the
    target provides (mlfit.formats.registry.converters), else nothing: a flag that cannot help is not suggested."""
    from mlfit.catalog.schema import Runtime
    from mlfit.formats.registry import converters

    try:
        source = Runtime(runtime)
    except ValueError:
        return ""
    reachable = [r.value for r in converters().get(source, {}) if r.value in provided]
    if not reachable:
        return ""
    return f"; --convert measures it converted to {reachable[0]}, which it provides"


def runtimes_line(target: Target, runtime: str) -> str:
    """The profile line that says a target runs ``runtime`` (where no converter reaches one it has)."""
    where = " (a copy of the built-in one, given with --target FILE)" if target.source == "built-in" else \
        f" ({target.source})" if target.source else ""
    have = [r.value for r in target.profile.runtimes]
    return (f"if {target.name} does run {runtime}, add it to its profile{where}: "
            f"`runtimes: [{', '.join([*have, runtime])}]`")


def compat_checks(
    target: Target,
    model: ModelInfo,
    static: dict[str, Any] | None,
    node_profile: NodeProfile | None,
    host_runtime_version: str | None,
) -> tuple[list[Check], list[str]]:
    """Runtime, opset, kernels, dtypes, storage and memory fit: ``(checks, notes)``."""
    profile = target.profile
    checks: list[Check] = []
    notes: list[str] = []
    runtimes = [r.value for r in profile.runtimes]
    if model.runtime not in runtimes:
        checks.append(
            _static(
                "compat.runtime",
                f"one of {', '.join(runtimes)}",
                False,
                f"the model runs on {model.runtime}, which {target.name} does not provide"
                + (_convert_hint(model.runtime, runtimes) or f"; {runtimes_line(target, model.runtime)}"),
            )
        )
    pinned = profile.runtime_version
    onnx_model = model.runtime == "onnxruntime"
    if onnx_model and pinned and host_runtime_version and _minor(pinned) != _minor(host_runtime_version):
        notes.append(
            f"{target.name} runs onnxruntime {pinned}; this host has {host_runtime_version}: kernel "
            f"availability was asked of the host's runtime"
        )
    if static:
        _graph_checks(target, model, static, checks, notes)
    kernel_check = _kernel_check(target, node_profile)
    if kernel_check is not None:
        checks.append(kernel_check)
    elif onnx_model and profile.execution_provider != "CPUExecutionProvider":
        # Every onnxruntime build has the CPU provider: where the node profile did not run (a
        # container target's own run), saying it is missing was false (issue 23).
        notes.append(
            f"kernel availability for {profile.execution_provider} could not be asked here: this host's "
            f"onnxruntime is not built with it (nodes without a kernel fall back to the CPU)"
        )
    hw = target.hardware
    # File size vs the target's storage (a hard limit, unlike the profile's model_size budget).
    storage = hw.storage.size
    checks.append(
        _static(
            "compat.storage",
            f"<= {format_size(storage)}",
            model.size_bytes <= storage,
            f"the model file ({format_size(model.size_bytes)}) is larger than {hw.name}'s storage",
            value=float(model.size_bytes),
            limit=storage,
            unit="B",
        )
    )
    if static and static.get("parameter_bytes") is not None:
        checks.append(_memory_fit(target, static))
    return checks, notes


def _graph_checks(target: Target, model: ModelInfo, static: dict[str, Any], checks: list[Check],
                  notes: list[str]) -> None:
    """Opset and dtypes against the target's, and custom op domains (a note)."""
    profile, pinned = target.profile, target.profile.runtime_version
    opset = static.get("opset")
    if isinstance(opset, int):
        hi = profile.opset.max
        why = f"{target.name} supports opset {profile.opset.min}..{hi}"
        runtime_max = (
            ORT_MAX_OPSET.get(_minor(pinned)) if pinned and model.runtime == "onnxruntime" else None
        )
        if runtime_max is not None and runtime_max < hi:
            hi = runtime_max
            why = f"onnxruntime {pinned} on {target.name} implements opset up to {runtime_max}"
        ok = profile.opset.min <= opset <= hi
        checks.append(
            _static(
                "compat.opset",
                f"{profile.opset.min}..{hi}",
                ok,
                f"opset {opset} is outside what the target runs: {why}",
                value=float(opset),
            )
        )
    dtypes = static.get("dtypes")
    if isinstance(dtypes, list):
        unsupported = sorted(set(dtypes) - set(profile.dtypes) - {"string"})
        checks.append(
            _static(
                "compat.dtypes",
                ", ".join(profile.dtypes),
                not unsupported,
                f"{target.name} does not handle {', '.join(unsupported)}",
            )
        )
    if static.get("custom_domains"):
        notes.append(
            f"custom op domains {', '.join(static['custom_domains'])}: the target needs their "
            f"library built for its runtime"
        )


def _memory_fit(target: Target, static: dict[str, Any]) -> Check:
    """Parameters + peak activations vs the memory the model can have there."""
    profile, hw = target.profile, target.hardware
    params = float(sum(static["parameter_bytes"].values()))
    acts = float(static.get("activation_peak_bytes") or 0)
    need = params + acts
    gpu = next((a for a in hw.accelerators if a.kind == "gpu"), None)
    on_gpu = gpu is not None and profile.execution_provider != "CPUExecutionProvider"
    limit = float(gpu.memory) if on_gpu and gpu is not None else hw.memory.available
    where = f"{gpu.name} memory" if on_gpu and gpu is not None else f"{hw.name}'s available RAM"
    container = profile.container
    if container is not None and container.memory is not None and not on_gpu and container.memory < limit:
        # The container's limit is what the OOM killer enforces, not the machine's RAM (issue 23:
        # a 256 MiB pod was judged against the host's 23 GiB).
        limit = float(container.memory)
        where = f"the container's memory limit ({format_size(limit)})"
    return _static("compat.memory_fit", f"<= {format_size(limit)}", need <= limit,
                   f"parameters {format_size(params)} + peak activations {format_size(acts)} exceed {where}",
                   value=need, limit=limit, unit="B")


def _kernel_check(target: Target, node_profile: NodeProfile | None) -> Check | None:
    kernels = node_profile.kernels if node_profile is not None else None
    provider = target.profile.execution_provider
    missing_by = kernels.missing if kernels is not None else {}
    if node_profile is None or provider not in missing_by:
        return None
    missing = list(missing_by[provider])
    if missing and provider == "CPUExecutionProvider" and node_profile.by_threads:
        # The model just ran here on this provider: ops without a registered kernel were
        # expanded as ONNX functions by the runtime, so they do run.
        return _static("compat.kernels", f"every op has a {provider} kernel", True, "")
    version = node_profile.runtime_version
    reason = f"no {provider} kernel in onnxruntime {version} for: {', '.join(missing[:8])}" + (
        " ..." if len(missing) > 8 else ""
    )
    return _static("compat.kernels", f"every op has a {provider} kernel", not missing, reason)
