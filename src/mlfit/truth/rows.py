"""Rows for the truth store from mlfit results.

A row is one model measured on one device: the model's static structure (what the device model
reads), the configuration (runtime, threads, precision, batch), the measured figures and the
device. Its time is the **uncontended p50** of the run (:func:`mlfit.analysis.uncontended.sample_p50`:
at one thread the CPU time per call, else the least disturbed calls), the quantity the device
model predicts and a projection's p50 centre is, so a busy machine does not teach a slow device.

Refused, with one line (exit 2): a result without a measurement; a model whose format gives the
device model no structure (no static node list: TFLite, TensorFlow, scikit-learn results); a
result measured on this host without ``--as-measured-on`` (a host figure is not a device's
unless the user says this machine is that device); a result measured on a target with it.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlfit.catalog.schema import Hardware
from mlfit.errors import ConfigError
from mlfit.result import Provenance, RunResult
from mlfit.truth.schema import DeviceRecord, RowProvenance, StructureRecord, TruthRow


def device_record(hw: Hardware) -> DeviceRecord:
    from mlfit.analysis import deviceadapt as da
    from mlfit.analysis import devicemodel as dm

    return DeviceRecord.model_validate(da.device_to_dict(dm.Device.from_hardware(hw)))


def _structure(result: RunResult, where: str) -> tuple[StructureRecord, str]:
    from mlfit.analysis import deviceadapt as da
    from mlfit.analysis import devicemodel as dm
    from mlfit.analysis.project.types import model_precision

    static = result.analysis
    if not static or not static.get("nodes"):
        raise ConfigError(
            f"{where}: the model is a {result.model.format} file, which gives the device model no static "
            "structure (it reads ONNX node lists only); not added",
            "measure the model's ONNX export (mlfit check --convert, or tf2onnx/skl2onnx) and add that result")
    structure = StructureRecord.model_validate(da.structure_to_dict(dm.Structure.from_static(static)))
    return structure, model_precision(static)


def _row(result: RunResult, m: Any, device: DeviceRecord, hw_name: str, provenance: RowProvenance,
         target: str, result_path: str, result_sha: str, where: str) -> TruthRow:
    from mlfit.truth.store import digest

    structure, precision = _structure(result, where)
    seconds, basis = uncontended_cost(result, m)
    if not seconds > 0:
        raise ConfigError(f"{where}: the measurement has no positive latency samples; not added")
    used = result.model.inputs_used
    batch = next((d for d in (used[0].shape[:1] if used else []) if isinstance(d, int) and d > 0), 1)
    row_id = digest(f"{result_sha}:{result.model.path}:{target}:{device.id}".encode())[:12]
    return TruthRow(
        id=row_id, added=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        provenance=provenance, hardware=device, hardware_name=hw_name, model=Path(result.model.path).name,
        model_sha256=result.model.sha256, model_format=result.model.format, structure=structure,
        runtime=m.runtime, runtime_version=m.runtime_version, threads=max(1, m.threads), precision=precision,
        batch=batch, seconds=seconds, basis=basis, p50_wall_s=m.latency.p50 or None, mean_s=m.latency.mean or None,
        samples=m.latency.n, target=target, result_path=result_path, result_sha256=result_sha,
        host_fingerprint=result.host.fingerprint if result.host else "")


def uncontended_cost(result: RunResult, m: Any) -> tuple[float, str]:
    """The run's uncontended cost per call and how it was read: at one thread, onnxruntime's
    single-thread node profile, each node's fastest fifth (moved 3-14% between a quiet and a fully
    loaded host, where the CPU time per call moved up to 30%); else the sample-based uncontended p50."""
    from mlfit.analysis.uncontended import cost_figure, sample_p50

    if m.threads == 1 and m is result.measurement:
        figure = cost_figure(m, result.node_profile)
        if figure is not None:
            return figure.seconds, figure.basis
    basis = ("CPU time per call, median" if m.threads == 1 and m.latency.cpu_samples_ns
             else "20th percentile of the least disturbed calls")
    return sample_p50(m), basis


def _target_hardware(report: Any, where: str) -> Hardware:
    from mlfit.catalog.loader import resolve_hardware, resolve_target

    if report.source not in ("built-in", "") and Path(report.source).is_file():
        return resolve_target(report.source).hardware
    try:
        return resolve_hardware(report.hardware)
    except ConfigError:
        raise ConfigError(f"{where}: target '{report.target}' was measured on hardware '{report.hardware}', "
                          "which is neither built in nor in a profile file found at its path",
                          "add the result where its profile file is, or with --as-measured-on HARDWARE.yaml") from None


def on_target(result: RunResult) -> list[Any]:
    """The target reports whose figures were measured on the target itself (a verified worker)."""
    return [t for t in result.targets if any(c.provenance is Provenance.MEASURED_ON_TARGET for c in t.checks)]


def rows_from_result(result: RunResult, result_path: str, result_sha: str,
                     as_measured_on: Hardware | None, where: str) -> list[TruthRow]:
    """The rows one result gives: one per target measured on its own hardware, or, with
    ``as_measured_on``, one for the host measurement (user-stated)."""
    if result.error is not None or result.measurement is None:
        reason = result.error.message if result.error else "no measurement"
        raise ConfigError(f"{where}: nothing was measured ({reason}); not added")
    verified = on_target(result)
    if verified and as_measured_on is not None:
        raise ConfigError(f"{where}: measured on target(s) {', '.join(t.target for t in verified)} by a verified "
                          "worker; --as-measured-on is for results measured on this host",
                          "add it without --as-measured-on")
    if as_measured_on is not None:
        device = device_record(as_measured_on)
        return [_row(result, result.measurement, device, as_measured_on.name, RowProvenance.USER_STATED, "",
                     result_path, result_sha, where)]
    if not verified:
        host = result.host.fingerprint if result.host else "unknown"
        raise ConfigError(f"{where}: measured on this host (fingerprint {host}), not on a target: a host figure is "
                          "not a device's", "if this machine is the device, add it with --as-measured-on HARDWARE "
                          "(a built-in name or hardware YAML; recorded as user-stated)")
    rows = []
    for report in verified:
        hw = _target_hardware(report, where)
        m = result.measurement_for(report.target)
        # the device model is adapted on CPU rows only: a GPU run's time is the GPU path's
        if m is not None and not m.execution_provider.upper().startswith(("CUDA", "TENSORRT", "ROCM")):
            rows.append(_row(result, m, device_record(hw), hw.name, RowProvenance.VERIFIED, report.target,
                             result_path, result_sha, where))
    return rows


def rows_from_file(path: Path, as_measured_on: Hardware | None) -> list[TruthRow]:
    """Every row of a result file (one model or many); its sha256 is the file's bytes."""
    from mlfit import safeio
    from mlfit.resultfile import load_report
    from mlfit.truth.store import digest

    if not path.exists():
        raise ConfigError(f"result file '{path}' does not exist")
    sha = digest(safeio.read_bounded(path, "report", "the result file", ConfigError))
    report = load_report(path)
    rows: list[TruthRow] = []
    for i, result in enumerate(report.results):
        where = str(path) if len(report.results) == 1 else f"{path} (model {i + 1}, {result.model.path})"
        rows.extend(rows_from_result(result, str(path.resolve()), sha, as_measured_on, where))
    return rows


def merge(existing: Sequence[TruthRow], new: Sequence[TruthRow]) -> tuple[list[TruthRow], list[str]]:
    """The store's rows with ``new`` added; a row already there (same id) is kept once. A result file
    added before under the same path with other bytes was edited since: refused."""
    by_path = {r.result_path: r.result_sha256 for r in existing}
    out, notes = list(existing), []
    ids = {r.id for r in existing}
    for row in new:
        old = by_path.get(row.result_path)
        if old is not None and old != row.result_sha256:
            raise ConfigError(f"{row.result_path}: the result file was edited since it was added (sha256 "
                              f"{old[:12]}... then, {row.result_sha256[:12]}... now); refused",
                              "measure again and add the new result under another name, or remove the old rows "
                              "with `mlfit truth remove`")
        if row.id in ids:
            notes.append(f"row {row.id} ({row.model} on {row.hardware.id}) is already in the store")
            continue
        ids.add(row.id)
        out.append(row)
    return out, notes


def learned_rows(report: Any) -> list[TruthRow]:
    """`mlfit check --learn`: the rows of every result in ``report`` measured on its target by a
    verified worker (results measured on this host teach nothing and are passed over)."""
    from mlfit.truth.store import digest

    rows: list[TruthRow] = []
    for result in report.results:
        if result.error is None and result.measurement is not None and on_target(result):
            sha = digest(result.model_dump_json().encode())
            path = f"(mlfit check --learn, {result.created})"
            rows.extend(rows_from_result(result, path, sha, None, str(result.model.path)))
    return rows
