"""Typed records a result carries beside its measurement: the memory timeline, onnxruntime's node
profile, the host calibration and a target's projection (schema 4; before, ``dict[str, Any]``
read by string keys).

Small and pure pydantic, so the worker can build them without importing anything heavier (the
contract "the worker stays light"). The writers: :mod:`mlfit.measure.launcher` (timeline),
:mod:`mlfit.measure.nodeprofile` (node profile), :mod:`mlfit.analysis.calibrate` (calibration, validated
from its cache file by :mod:`mlfit.run.evaluate`), :mod:`mlfit.analysis.project` (projection).
Older result files carry the same keys as dicts: they validate into these models on read.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class MemoryTimeline(_Frozen):
    """The worker's RSS polled over time (for plots; peaks come from the kernel's high-water mark)."""

    source: str = ""
    samples: list[tuple[float, int]] = Field(default_factory=list, description="(seconds since start, bytes)")
    phases: list[tuple[str, float]] = Field(default_factory=list, description="(phase, seconds since start)")


class ProfiledNode(_Frozen):
    """A node as onnxruntime ran it (after fusion and layout changes), from its profiler."""

    op: str = ""
    provider: str = ""
    inputs: list[list[int]] = Field(default_factory=list, description="Input shapes")
    outputs: list[list[int]] = Field(default_factory=list, description="Output shapes")
    dtypes: list[str] = Field(default_factory=list)
    activation_bytes: int = 0
    param_bytes: int = 0
    output_bytes: int = 0


class ThreadProfile(_Frozen):
    """Node timings at one thread count (µs): medians, and the fastest fifth (uncontended)."""

    runs: int = 0
    run_us: float = 0.0
    nodes_us: float = Field(0.0, description="Sum of the per-node medians")
    overhead_us: float = Field(0.0, description="Executor time outside any kernel, median per run")
    node_us: dict[str, float] = Field(default_factory=dict, description="Median per node")
    nodes_us_low: float | None = Field(None, description="Sum of the per-node fastest fifths (None: older "
                                       "profiles, without the uncontended figures)")
    nodes_us_low_halves: list[float] = Field(default_factory=list, description="The same sum from the even "
                                             "and the odd runs: how reproducible it is")
    overhead_us_low: float = 0.0
    node_us_low: dict[str, float] = Field(default_factory=dict, description="Fastest fifth per node")


class KernelCoverage(_Frozen):
    """The model's ops without a kernel in the installed onnxruntime, per execution provider."""

    providers: list[str] = Field(default_factory=list)
    missing: dict[str, list[str]] = Field(default_factory=dict)
    error: str | None = Field(None, description="Why the kernel registry could not be read")


class NodeProfile(_Frozen):
    """onnxruntime's node profile on this host at one or more thread counts."""

    runtime_version: str = ""
    by_threads: dict[str, ThreadProfile] = Field(default_factory=dict, description="By thread count")
    nodes: dict[str, ProfiledNode] = Field(default_factory=dict)
    kernels: KernelCoverage | None = None
    error: str | None = Field(None, description="Why the profile could not be taken (the projection "
                              "then scales the whole model)")

    def at(self, threads: int) -> ThreadProfile | None:
        return self.by_threads.get(str(threads))


class BandFigure(_Frozen):
    """A projected figure or factor: centre ``value``, optimistic ``lower``, conservative ``upper``."""

    value: float
    lower: float
    upper: float


class CostlyNode(_Frozen):
    name: str
    op: str
    seconds: float = Field(description="Projected time per inference on the target")
    share: float


class CostlyOp(_Frozen):
    op: str
    seconds: float
    share: float


class HostLoadFigures(_Frozen):
    """How busy this host was while the model was timed (see mlfit.analysis.uncontended.HostLoad)."""

    cpu_share: float
    busy: float
    switches_per_s: float
    runnable: int | None = None
    steal: float | None = None
    slowdown: float | None = None


class AdaptedTerms(_Frozen):
    """The device's own scales on the device model's terms, and its own thread contention where its rows allow."""

    scales: dict[str, float] = Field(default_factory=dict, description="Scale per term (1: the committed fit's)")
    sigma: float | None = Field(default=None, description="Its own thread contention (None: the committed fit's)")


class DeviceAdaptation(_Frozen):
    """The device model adapted to rows measured on the target's own hardware (`mlfit truth fit`)."""

    rows: int = Field(description="Rows measured on this hardware the fit used")
    summary: str = Field(description="'device model adapted with N rows measured on HARDWARE (median error ...)'")
    seconds_unadapted: float = Field(description="The committed fit's figure for the same configuration")
    terms: AdaptedTerms = Field(default_factory=AdaptedTerms, description="The device's own scale per term")


class DeviceModelFigures(_Frozen):
    """The device model's prediction for the target (the cross-check, or the projection's basis)."""

    seconds: float
    lower: float
    upper: float
    columns: list[str] = Field(default_factory=list)
    unfitted: list[str] = Field(default_factory=list)
    precision: str = ""
    threads: int = 1
    widenings_log: dict[str, float] = Field(default_factory=dict)
    not_used: str | None = Field(None, description="Why the host ratios projected instead")
    adapted: DeviceAdaptation | None = Field(None, description="Adapted to rows measured on the device (schema 4)")


class UnseenFigures(_Frozen):
    """Ops the static cost model could not read: their host-scaled time, and their share of this host's."""

    ops: list[str] = Field(default_factory=list)
    nodes: int = 0
    host_share: float = Field(0.0, description="Share of this host's node time the device model could not see")
    value: float | None = None
    lower: float | None = None
    upper: float | None = None


class FloorFigures(_Frozen):
    roofline_s: float = Field(0.0, description="The counted work at the target's peak compute and bandwidth")
    host_s: float = Field(0.0, description="This host's uncontended cost, for a target weaker than this host")
    host_reason: str = ""


class EstimatorFigures(_Frozen):
    """The two estimators of a CPU projection (seconds per inference) and how they were reconciled."""

    estimator: str = Field(description="device model, host-scaled, or device model + host-scaled (they disagree)")
    host_scaled: BandFigure
    device_model: BandFigure | None = None
    agree: bool | None = None
    ratio: float | None = Field(None, description="Host-scaled over device model")
    ops: list[str] = Field(default_factory=list, description="Ops behind a disagreement")
    overruled_by_device_rows: int | None = Field(
        None, description="Rows measured on the device whose adapted model decided a disagreement")
    unseen: UnseenFigures | None = None
    floors: FloorFigures | None = None
    floored: str | None = Field(None, description="The physical floor the figure was raised to")


class ProjectionDetails(_Frozen):
    """How a projection was made. CPU fields for the per-node or device-model projection, GPU
    fields for the roofline; a field the method did not use stays empty."""

    # Keys retired from older files are dropped on read, not refused: they only explained.
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    target_threads: int | None = None
    ratios: dict[str, BandFigure] = Field(default_factory=dict, description="Host -> target time multipliers: "
                                          "compute, memory, clock")
    ridge_flop_per_byte: float | None = None
    reference_scale: float | None = Field(None, description="Host speed while measuring over calibrated speed")
    target_hardware_parts: dict[str, tuple[float, float]] = Field(default_factory=dict)
    host_profiled_run_us: float | None = None
    profiled_threads: list[int] = Field(default_factory=list)
    compute_bound_share: float | None = None
    device_model: DeviceModelFigures | None = None
    factor_host_ratio: BandFigure | None = Field(None, description="The host ratios' factor, when the "
                                                 "device model replaced it (cross-check)")
    factor: BandFigure | None = None
    estimators: EstimatorFigures | None = None
    per_op: list[CostlyOp] = Field(default_factory=list, description="Every op type's projected time; "
                                   "they add up to the projected median")
    uncontended_p50_host_s: float | None = None
    host_load: HostLoadFigures | None = None
    band_sources: dict[str, tuple[float, float]] = Field(default_factory=dict, description="Each widening "
                                                         "of the band, as multipliers on the centre")
    parameters: dict[str, tuple[float, float, float]] = Field(default_factory=dict, description="GPU roofline "
                                                              "parameters: optimistic, centre, conservative")
    accelerator: str | None = None
    batch_for_throughput: int | None = None


class ProjectionSummary(_Frozen):
    """How a target's figures were carried from this host's measurement."""

    method: str
    estimator: str = Field("", description="CPU: device model, host-scaled, or both (they disagree)")
    latency: dict[str, BandFigure] = Field(default_factory=dict, description="By percentile")
    notes: list[str] = Field(default_factory=list)
    top_nodes: list[CostlyNode] = Field(default_factory=list, description="Costliest nodes on the target")
    top_ops: list[CostlyOp] = Field(default_factory=list, description="Costliest op types on the target")
    details: ProjectionDetails = Field(default_factory=ProjectionDetails)
    measured: bool = Field(False, description="Measured on this host's GPU, not derived")


class Calibration(_Frozen):
    """This host's calibration (``mlfit calibrate``): the rates projections carry figures with.

    Figures by thread count are keyed by the count as text (the cache file's JSON form)."""

    # Calibrations embedded by older results may carry keys since retired: dropped on read.
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    schema_version: int = 0
    runtime: str = ""
    threads: list[int] = Field(default_factory=list, description="Thread counts measured")
    gemm_flops: dict[str, float] = Field(default_factory=dict, description="fp32 512x512 MatMul FLOP/s")
    conv_flops: dict[str, float] = Field(default_factory=dict, description="fp32 3x3 convolution FLOP/s")
    bandwidth: dict[str, float] = Field(default_factory=dict, description="Triad bytes/s")
    copy_bandwidth_1t: float | None = None
    wall_rates_multithread: dict[str, dict[str, float]] = Field(default_factory=dict)
    call_overhead_s: float | None = Field(None, description="A tiny graph's per-call time")
    frequency_mhz: float | None = None
    flops_per_cycle: int | None = None
    peak_fp32_per_core: float | None = None
    isa: list[str] = Field(default_factory=list)
    method: str = ""
    duration_s: float | None = None
    fingerprint: str = ""
    cpu_model: str = ""
    arch: str = ""
    cores_usable: int | None = None
    ram_bytes: int | None = None
    created: str = ""


# ---------------------------------------------------------------- check --suggest (schema 5)


class VariantCheck(_Frozen):
    """One budget as a suggested variant met it: the same figures as a :class:`mlfit.result.Check`."""

    metric: str
    verdict: str = Field(description="PASS, FAIL, INCONCLUSIVE or ERROR")
    value: float | None = None
    lower: float | None = None
    upper: float | None = None
    limit: float | None = None
    unit: str = ""
    margin: float | None = Field(None, description="(limit - value) / limit, for upper limits")
    provenance: str = ""


class Agreement(_Frozen):
    """How a variant's outputs compare with the original's on the same inputs (the accuracy guard)."""

    inputs: int = Field(description="Samples compared")
    source: str = Field(description="Where the samples came from: --data, or generated inputs (seeded)")
    max_abs: float = Field(description="Largest absolute difference over every output element")
    max_rel: float = Field(description="max_abs over the largest magnitude of the original's outputs")
    cosine: float = Field(description="Cosine similarity of all outputs, flattened (1.0: same direction)")
    top1: float | None = Field(None, description="Share of rows whose argmax agrees, for classifier-shaped "
                                                 "outputs (batch, classes); null for other outputs")
    same_model: bool = Field(False, description="The variant runs the original file (threads, batch): "
                                                "the same computation, not compared")


class Suggestion(_Frozen):
    """One variant tried by ``check --suggest``: measured, projected and judged like the original."""

    variant: str = Field(description="Short name: threads=2, batch=4, int8-dynamic, int8-static, fp16, "
                                     "tflite-float, tflite-int8, height=224 (--what-if), int8-dynamic+threads=2")
    kind: str = Field(description="threads, batch, int8-dynamic, int8-static, fp16, tflite-float, tflite-int8, "
                                  "dim (--what-if), combo (two changes at once)")
    change: str = Field(description="What differs from the original deployment, in words")
    status: str = Field(description="recommended (fits, outputs agree), changes-outputs (fits, below the "
                                    "agreement threshold), does-not-fit, inconclusive, failed (could not be "
                                    "built or measured) or not-tried (the search time ran out)")
    verdict: str | None = Field(None, description="The variant's verdict on the target, as for the original")
    checks: list[VariantCheck] = Field(default_factory=list)
    agreement: Agreement | None = None
    reason: str = ""
    reproduce: str = Field("", description="How to build and check this variant yourself")
    seconds: float = Field(0.0, description="Time spent building, measuring and comparing it")
    file: str | None = Field(None, description="Where --write-variants saved it")


class SuggestSearch(_Frozen):
    """How the ``--suggest`` search for one target went."""

    seconds: float = Field(description="Time the search took for this target")
    budget_s: float = Field(description="--suggest-time")
    tried: int
    not_tried: int = 0
    min_agreement: float = Field(description="--min-agreement: top-1 agreement (classifiers) or cosine "
                                             "similarity (other outputs) a variant needs to be recommended")
    inputs: str = Field("", description="Which inputs the accuracy guard compared outputs on")
    note: str = Field("", description="Why the search stopped early, when it did (Ctrl-C)")


# --- Load runs (schema 8; before, ``Measurement.extra["scenario"]`` and ``["batch_sweep"]``) ---------------
# Written as dicts by :mod:`mlfit.measure.scenarios` and :mod:`mlfit.measure.loadgen` (pure Python, no
# pydantic in the timed loops) and validated into these models when the worker builds its Measurement.
# Every figure has a default: a run that did not complete carries only its request count and reason.


class _Load(BaseModel):
    # NaN or Infinity is no measurement (as in the rest of the result).
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, defer_build=True)


class LoadLatency(_Load):
    """Latency of the requests a load run completed (seconds), with each percentile's 95 % interval."""

    n: int = 0
    min: float | None = None
    mean: float | None = None
    std: float | None = None
    cv: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    insufficient: list[str] = Field(default_factory=list, description="Percentiles without enough samples")
    ci95: dict[str, tuple[float, float]] = Field(default_factory=dict,
                                                 description="Percentile name -> 95 % interval (order statistics)")
    samples_ns: list[int] = Field(default_factory=list, repr=False)
    cpu_samples_ns: list[int] = Field(default_factory=list, repr=False)

    def get(self, percentile: str) -> float | None:
        """The percentile named ``percentile`` ("p50" ... "p99"); None when too few samples."""
        value = getattr(self, percentile, None) if percentile in ("p50", "p90", "p95", "p99") else None
        return value if isinstance(value, float) else None


class LoadGenSettings(_Load):
    """The MLPerf LoadGen test settings a run used."""

    scenario: str = ""
    mode: str = ""
    server_target_qps: float | None = None
    server_target_latency_ns: int | None = None
    offline_expected_qps: float | None = None
    min_duration_ms: int | None = None
    max_duration_ms: int | None = None
    min_query_count: int | None = None
    schedule_rng_seed: int | None = None


class LoadGenSummary(_Load):
    """The figures of LoadGen's ``mlperf_log_summary.txt`` (latencies in seconds)."""

    result: str | None = None
    min_latency_s: float | None = None
    max_latency_s: float | None = None
    mean_latency_s: float | None = None
    completed_samples_per_second: float | None = None
    samples_per_second: float | None = None
    scheduled_samples_per_second: float | None = None
    min_duration_satisfied: bool | None = None
    min_queries_satisfied: bool | None = None
    performance_constraints_satisfied: bool | None = None
    early_stopping_satisfied: bool | None = None
    percentiles_s: dict[str, float] = Field(default_factory=dict, description='"p99.9" -> seconds')

    @model_validator(mode="before")
    @classmethod
    def _gather_percentiles(cls, data: Any) -> Any:
        """The parser (and schema 7 files) write each percentile as its own ``pNN_s`` key."""
        if not isinstance(data, dict):
            return data
        keys = [k for k in data if isinstance(k, str) and re.fullmatch(r"p[0-9.]+_s", k)]
        if not keys:
            return data
        rest = {k: v for k, v in data.items() if k not in keys}
        return {**rest, "percentiles_s": {**rest.get("percentiles_s", {}), **{k[:-2]: data[k] for k in keys}}}


class LoadGenLength(_Load):
    """How long a LoadGen run was, against LoadGen's default minimum and MLPerf's rules."""

    run_s: float = 0.0
    loadgen_default_min_duration_s: float | None = None
    mlperf_rules_min_duration_s: float | None = None
    share_of_loadgen_minimum: float | None = None
    share_of_mlperf_minimum: float | None = None


class LoadGenRecord(_Load):
    """What MLPerf LoadGen said about a run it drove."""

    settings: LoadGenSettings = Field(default_factory=LoadGenSettings)
    summary: LoadGenSummary = Field(default_factory=LoadGenSummary)
    length: LoadGenLength = Field(default_factory=LoadGenLength)
    latency_timing: str = ""


class ServerRun(_Load):
    """One server run: Poisson arrivals at ``qps`` served by ``callers`` threads."""

    qps: float
    callers: int = 0
    requests: int = 0
    completed: int = 0
    generator: str | None = None
    kept_up: bool = False
    reason: str = ""
    offered_qps: float | None = None
    achieved_qps: float = 0.0
    duration_s: float | None = None
    latency: LoadLatency | None = Field(None, description="From each request's scheduled arrival")
    queue_delay_p50_s: float | None = None
    queue_delay_max_s: float | None = None
    service_mean_s: float | None = None
    loadgen: LoadGenRecord | None = None


class RateTrial(_Load):
    """One trial of the rate search: a server run at ``qps`` judged against the goal."""

    qps: float
    verdict: str
    reason: str = ""
    achieved_qps: float | None = None
    kept_up: bool | None = None
    n: int | None = None
    value: float | None = Field(None, description="The goal's percentile in this trial (seconds)")

    @model_validator(mode="before")
    @classmethod
    def _value_from_percentile_key(cls, data: Any) -> Any:
        """Schema 7 and older named the value by its percentile (``"p99": 0.004``)."""
        if isinstance(data, dict):
            named = [k for k in ("p50", "p90", "p95", "p99") if k in data]
            if named:
                value = data[named[0]]
                data = {k: v for k, v in data.items() if k not in named}
                data.setdefault("value", value)
        return data


class RateSearch(_Load):
    """The highest rate proven to keep a latency percentile within its limit (--find-max-qps)."""

    percentile: str
    limit_s: float
    callers: int = 0
    rate: float | None = None
    lower: float | None = None
    upper: float | None = None
    status: str = ""
    stopped_by: str = ""
    trials: list[RateTrial] = Field(default_factory=list)


class OfflineRun(_Load):
    """Maximum throughput with every request available at once."""

    mode: str = ""
    batch_size: int = 1
    callers: int = 1
    batches: int = 0
    throughput_per_s: float = 0.0
    batch_latency_p50_s: float | None = None
    duration_s: float | None = None
    generator: str | None = None
    loadgen: LoadGenRecord | None = None


class ScenarioRuns(_Load):
    """The load scenario asked for and its runs: server rates, rate searches, offline."""

    name: str = ""
    callers: int = 0
    generator: str = ""
    server: list[ServerRun] = Field(default_factory=list)
    max_qps: list[RateSearch] = Field(default_factory=list)
    offline: OfflineRun | None = None


class BatchPoint(_Load):
    """Latency and throughput at one batch size (--batch-sizes)."""

    batch_size: int
    n: int | None = None
    latency_p50_s: float | None = None
    latency_p90_s: float | None = None
    latency_mean_s: float | None = None
    latency_max_s: float | None = None
    cv: float | None = None
    throughput_per_s: float = 0.0


class RuntimeDetails(_Load):
    """Runtime-specific facts of the measurement (which fields are set depends on the runtime)."""

    format: str | None = None
    method: str | None = Field(None, description="scikit-learn: the method timed (predict, predict_proba)")
    estimator: str | None = None
    n_features_in: int | None = None
    feature_names: list[str] = Field(default_factory=list)
    joblib_version: str | None = None
    signature: str | None = Field(None, description="TensorFlow: the serving signature called")
    keras_version: str | None = None
    interpreter: str | None = Field(None, description="TFLite: the interpreter package")
    quantized_inputs: list[str] = Field(default_factory=list)


def fields_from_extra(data: Any) -> Any:
    """A Measurement of schema 7 and older kept the timeline (to schema 3), the load runs and the
    runtime's facts in an open ``extra`` dict: move each to its field. Keys no field knows were never
    read by any mlfit: they are dropped."""
    if not isinstance(data, dict) or "extra" not in data:
        return data
    data = dict(data)
    extra = data.pop("extra")
    if not isinstance(extra, dict):
        return data
    for key in ("memory_timeline", "scenario", "batch_sweep"):
        if key in extra:
            data.setdefault(key, extra[key])
    details = {k: v for k, v in extra.items() if k in RuntimeDetails.model_fields}
    if details:
        data.setdefault("runtime_details", details)
    return data
