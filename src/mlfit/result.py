"""Immutable result values: what the worker measured and what the checks decided.

Result file format ``RESULT_SCHEMA_VERSION``: read by every later mlfit, newer refused
(:func:`mlfit.resultfile.load_report`); what each version added is in docs/reports.md ("Versions"),
8: typed load runs and runtime facts, not ``Measurement.extra``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlfit.errors import ConfigError, ExitCode, MlfitError, ModelError
from mlfit.records import (
    BatchPoint,
    Calibration,
    MemoryTimeline,
    NodeProfile,
    ProjectionSummary,
    RuntimeDetails,
    ScenarioRuns,
    Suggestion,
    SuggestSearch,
    fields_from_extra,
)

RESULT_SCHEMA_VERSION = 8


class _Frozen(BaseModel):
    # allow_inf_nan=False: NaN and Infinity are no measurement; a result holding one cannot be built,
    # read, rendered or compared (a forged NaN once made `compare` report "no regression").
    # defer_build: a model's validator is built when first used (or by build_validators), not at
    # import: the CLI imports these models before it hands the worker its request (issue 22).
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, defer_build=True)


def build_validators(*modules: str) -> None:
    """Build now the validators of every model defined in ``modules`` (they are deferred: built on
    first use otherwise). Called where the time is free: a spare worker waiting for its request, the
    CLI's analysis thread beside the worker's start-up."""
    import importlib

    for name in modules:
        module = importlib.import_module(name)
        for value in list(vars(module).values()):
            if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == name:
                value.model_rebuild(force=True)


# Every module whose models defer their build (result, records, the worker protocol, the catalog, inputs).
DEFERRED_MODELS = ("mlfit.records", "mlfit.result", "mlfit.catalog.schema", "mlfit.inputspec",
                   "mlfit.measure.protocol")


class Verdict(str, Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    ERROR = "ERROR"


class Provenance(str, Enum):
    """Where a figure comes from. Always shown next to it."""

    MEASURED_ON_HOST = "measured-on-host"  # measured here, on a machine that is not the target
    MEASURED_ON_TARGET = "measured-on-target"  # measured on the target's own hardware
    PROJECTED = "projected"  # derived for the target from host measurements, with a band
    EMULATED = "emulated"  # measured on this host inside the target's container limits (cgroup)
    STATIC = "static"  # read from the model file (sizes, opset, dtypes)


class InputFill(_Frozen):
    """The values an input was measured with, and where they came from (so a run can be repeated)."""

    kind: str = Field(description="constant, uniform (random, seeded), data (real samples) or quantized "
                                  "(uniform in real units, quantized with the tensor's scale and zero point)")
    low: float | None = None
    high: float | None = Field(None, description="Exclusive for integers")
    value: float | None = None
    source: str = Field("", description="Why these values: a flag, the model's graph, or the default for floats")


class TensorInfo(_Frozen):
    name: str
    dtype: str
    shape: list[int | str | None]  # ints are fixed dims, strings symbolic, None unknown
    fill: InputFill | None = Field(None, description="inputs_used only: the values fed")


class ModelSource(_Frozen):
    """Where a model came from when it was not a local path (schema 6): an MLflow registry version
    or run, resolved through MLflow's own client and downloaded for this run only."""

    kind: str = Field("mlflow", description="The system the model came from")
    uri: str = Field(description="As given: models:/NAME/VERSION, models:/NAME@ALIAS or runs:/RUN_ID/PATH")
    registry: str = Field(description="The MLflow registry (models:/) or tracking (runs:/) URI it was "
                          "resolved through, credentials removed")
    name: str | None = Field(None, description="Registered model name")
    version: str | None = Field(None, description="Registered model version (an alias resolved to it first)")
    alias: str | None = None
    run_id: str | None = Field(None, description="The run that logged the model, when known")
    flavour: str | None = Field(None, description="The MLmodel flavour measured (onnx, keras, tensorflow, "
                                "sklearn); None for a plain model file")
    file: str = Field("", description="What was measured, relative to the downloaded artifact")


class ModelInfo(_Frozen):
    path: str
    sha256: str
    format: str
    runtime: str
    size_bytes: int
    inputs: list[TensorInfo] = Field(default_factory=list, description="As declared by the model")
    inputs_used: list[TensorInfo] = Field(default_factory=list, description="Concrete shapes measured")
    outputs: list[TensorInfo] = Field(default_factory=list)
    artefact: str | None = Field(None, description="What was measured when it differs from path (conversion)")
    source: ModelSource | None = Field(None, description="Where the model came from when not a local path "
                                       "(schema 6)")


class HostInfo(_Frozen):
    fingerprint: str
    hostname: str
    cpu_model: str
    arch: str
    cores_logical: int
    cores_physical: int | None
    cores_usable: int = Field(description="Cores this process may use: affinity and cgroup quota")
    affinity: list[int]
    cgroup_cpu_quota: float | None
    cgroup_memory_limit: int | None
    ram_bytes: int
    os: str
    python: str
    load_avg_1m: float
    versions: dict[str, str] = Field(default_factory=dict)
    gpus: list[str] = Field(default_factory=list)


class LatencyStats(_Frozen):
    """Warm single-inference latency, in seconds. A percentile is None when n is too small."""

    n: int
    min: float
    mean: float
    std: float
    cv: float
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float
    samples_ns: list[int] = Field(repr=False)
    cpu_samples_ns: list[int] = Field(default_factory=list, repr=False,
                                      description="Process CPU time of each timed call (all threads), "
                                                  "index for index with samples_ns; empty when not recorded "
                                                  "(calls under 50 µs, or an older result)")
    insufficient: list[str] = Field(default_factory=list, description="Percentiles without enough samples")


class ColdStart(_Frozen):
    """What a fresh process pays before its first answer, part by part (a pod's cold start)."""

    process_start_s: float | None = Field(None, description="Process start until the runtime's import begins: "
                                          "the interpreter and the imports before it (schema 7; None before)")
    import_s: float
    load_s: float
    first_inference_s: float

    def parts(self) -> dict[str, float]:
        """Each part, in the order a process pays them: process_start (absent before schema 7), import, load,
        first_inference (the names of a profile's ``cold_start_parts``)."""
        start = {} if self.process_start_s is None else {"process_start": self.process_start_s}
        return {**start, "import": self.import_s, "load": self.load_s, "first_inference": self.first_inference_s}

    def counted(self, parts: Sequence[str] | None = None) -> float:
        """The sum of ``parts`` (all of them when None)."""
        return sum(v for k, v in self.parts().items() if parts is None or k in parts)

    @property
    def total_s(self) -> float:
        """Everything a fresh pod pays: process start + runtime import + load + first inference (issue 23: a
        Keras model's 383 ms left out the 9.9 s TensorFlow import)."""
        return self.counted()

    @property
    def model_s(self) -> float:
        """Load + first inference: the model's own part, comparable across runs and result versions."""
        return self.load_s + self.first_inference_s


class MemoryPhases(_Frozen):
    """Peak resident memory per phase, from the kernel's high-water mark (bytes)."""

    method: str = Field(description="VmHWM with clear_refs reset, or ru_maxrss fallback")
    interpreter_bytes: int = Field(description="Python + mlfit before importing the runtime")
    runtime_baseline_bytes: int = Field(description="After importing the runtime, before loading the model")
    load_peak_bytes: int
    inference_peak_bytes: int
    peak_bytes: int = Field(description="Absolute peak of the worker process over all phases")
    arena_enabled: bool | None = None

    @property
    def runtime_import_delta(self) -> int:
        return self.runtime_baseline_bytes - self.interpreter_bytes

    @property
    def load_delta(self) -> int:
        return max(0, self.load_peak_bytes - self.runtime_baseline_bytes)

    @property
    def inference_delta(self) -> int:
        return max(0, self.inference_peak_bytes - self.runtime_baseline_bytes)

    @property
    def model_cost(self) -> int:
        """What the model adds over the imported runtime: what a target must hold beyond the runtime."""
        return max(0, self.peak_bytes - self.runtime_baseline_bytes)


class Throughput(_Frozen):
    single_stream_per_s: float
    batch_size: int | None = None
    batched_per_s: float | None = None
    batched_latency: LatencyStats | None = None


class PhaseContention(_Frozen):
    """How busy the host was while one phase ran: what this process got and what else wanted the CPUs."""

    phase: str
    wall_s: float
    cpu_s: float = Field(description="Process CPU time (all threads) spent in the phase")
    threads: int = Field(description="Threads the runtime was asked to use")
    involuntary_switches: int = Field(description="Times the kernel took a CPU away from this process")
    voluntary_switches: int = 0
    steal_fraction: float | None = Field(None, description="Share of the host's CPU time a hypervisor "
                                                           "gave to other guests (/proc/stat steal)")
    runnable_before: int | None = Field(None, description="Runnable tasks on the host (/proc/loadavg)")
    runnable_after: int | None = None
    load_1m_before: float | None = None
    load_1m_after: float | None = None

    @property
    def cpu_share(self) -> float:
        """CPU time received over what ``threads`` busy threads could have had (1.0 = nothing took it)."""
        return self.cpu_s / (self.wall_s * max(1, self.threads)) if self.wall_s > 0 else 1.0

    @property
    def switches_per_s(self) -> float:
        return self.involuntary_switches / self.wall_s if self.wall_s > 0 else 0.0


class ReferenceKernel(_Frozen):
    """A fixed single-thread kernel timed between the model's runs, under the same conditions:
    compared with the cached host calibration it says how much slower the host was right then."""

    name: str
    flops: float = Field(description="Floating-point operations per call")
    samples_ns: list[int] = Field(default_factory=list, repr=False,
                                  description="CPU time of each call (the calling thread's clock)")
    flops_per_s: float = Field(description="From the fastest tenth of the calls, as the calibration")


class Contention(_Frozen):
    """Contention signals of a measurement, per phase, and the interleaved reference kernel."""

    phases: list[PhaseContention] = Field(default_factory=list)
    reference: ReferenceKernel | None = None

    def phase(self, name: str) -> PhaseContention | None:
        return next((p for p in self.phases if p.phase == name), None)


class Measurement(_Frozen):
    runtime: str
    runtime_version: str
    threads: int
    execution_provider: str
    cold_start: ColdStart
    latency: LatencyStats
    memory: MemoryPhases
    throughput: Throughput
    warnings: list[str] = Field(default_factory=list)
    unstable: bool = False
    contention: Contention | None = Field(None, description="How busy the host was, per phase (schema 2)")
    memory_timeline: MemoryTimeline | None = Field(None, description="Polled RSS over time (schema 4)")
    scenario: ScenarioRuns | None = Field(None, description="Load runs: server, rate search, offline (schema 8)")
    batch_sweep: list[BatchPoint] = Field(default_factory=list, description="Per batch size (schema 8)")
    runtime_details: RuntimeDetails = Field(default_factory=RuntimeDetails, description="Runtime facts (schema 8)")

    @model_validator(mode="before")
    @classmethod
    def _fields_from_extra(cls, data: Any) -> Any:  # schema 7 and older: the open ``extra`` dict
        return fields_from_extra(data)


class CostItem(_Frozen):
    """One of the largest contributors to a figure: a node, an op type, an initializer or an activation."""

    kind: str  # "node", "op", "initializer", "activation"
    name: str
    op: str = ""
    value: float
    unit: str = ""
    share: float | None = None


class Check(_Frozen):
    metric: str  # e.g. "latency.p95", "memory.peak", "compat.opset"
    budget: str  # human text of the limit, e.g. "<= 80 ms"
    limit: float | None = None
    value: float | None = None
    lower: float | None = None  # optimistic bound
    upper: float | None = None  # conservative bound
    unit: str = ""
    verdict: Verdict
    provenance: Provenance
    method: str = ""
    margin: float | None = Field(None, description="Relative headroom: (limit - value) / limit, for upper limits")
    reason: str = ""
    top: list[CostItem] = Field(default_factory=list, description="Largest contributors on the target")


class Throttle(_Frozen):
    """CFS bandwidth counters of one phase: periods, periods that ran out of quota, time throttled."""

    periods: int
    throttled_periods: int
    throttled_s: float


class ThreadComparison(_Frozen):
    """The runtime's default thread count inside the container versus threads matched to the quota."""

    default_threads: int
    matched_threads: int
    default_p50_s: float | None = None
    default_p99_s: float | None = None
    default_throughput: float | None = None
    matched_p50_s: float | None = None
    matched_p99_s: float | None = None
    matched_throughput: float | None = None
    recommendation: str = ""


class Emulation(_Frozen):
    """How a target's figures were emulated: the limits imposed on the worker and what they did."""

    method: str = Field(description="cgroup v1, cgroup v2 or systemd-run --scope")
    cpu: float | None = Field(None, description="CPU limit imposed (CFS quota), cores")
    memory_bytes: int | None = Field(None, description="Memory limit imposed, bytes (swap off)")
    cpuset: str | None = None
    source: str = ""
    threads: int = Field(description="Threads the runtime was given in the measured configuration")
    throttling: dict[str, Throttle] = Field(default_factory=dict, description="Per worker phase")
    cgroup_peak_bytes: int | None = Field(None, description="The cgroup's memory high-water mark (page cache too)")
    oom_killed: bool = False
    threads_compared: ThreadComparison | None = None


class TargetReport(_Frozen):
    target: str
    hardware: str
    hardware_name: str
    source: str
    verdict: Verdict
    checks: list[Check]
    notes: list[str] = Field(default_factory=list)
    projection: ProjectionSummary | None = Field(None, description="How figures were carried to the target")
    emulation: Emulation | None = Field(None, description="Container limits the figures were measured under")
    configuration: str | None = Field(None, description="The deployment configuration (runtime, threads, "
                                      "batch) whose measurement judged this target; see RunResult.configurations")
    suggestions: list[Suggestion] = Field(default_factory=list, description="check --suggest: variants tried")
    suggest_search: SuggestSearch | None = None


class PartialTimings(_Frozen):
    """What a worker had measured before it was stopped (timeout, crash, memory, Ctrl-C).

    Kept so nothing is lost, and never mistaken for a complete measurement: it lives in the
    error entry, and the result is marked ``complete: false``.
    """

    import_s: float | None = None
    load_s: float | None = None
    first_inference_s: float | None = None
    latency: LatencyStats | None = Field(None, description="Warm samples streamed before the stop")


class ErrorInfo(_Frozen):
    kind: str  # "load", "crash", "timeout", "input", "memory", "interrupted", "resource"
    phase: str
    message: str
    hint: str | None = None
    exit_code: int = int(ExitCode.MODEL)
    partial: PartialTimings | None = None


class ConfigurationRun(_Frozen):
    """One deployment configuration, measured in its own worker run with its own memory phases."""

    label: str = Field(description="e.g. 'onnxruntime, 2 threads, batch 1'; TargetReport.configuration")
    runtime: str
    threads: int = Field(description="Threads measured with on this host (the target's, capped at its cores)")
    batch: int = Field(description="Batch of the batched-throughput phase (1: single stream only)")
    targets: list[str] = Field(default_factory=list, description="Targets judged by this configuration")
    measurement: Measurement | None = Field(None, description="None for the first configuration (its "
                                            "measurement is RunResult.measurement) or when its run failed")


class RunResult(_Frozen):
    """One model measured once and checked against every requested target."""

    schema_version: int = RESULT_SCHEMA_VERSION
    mlfit_version: str
    created: str
    model: ModelInfo
    host: HostInfo | None = None
    measurement: Measurement | None = None
    analysis: dict[str, Any] | None = None
    calibration: Calibration | None = Field(None, description="Host calibration used for projections")
    node_profile: NodeProfile | None = Field(None, description="onnxruntime node timings on this host")
    configurations: list[ConfigurationRun] = Field(
        default_factory=list, description="Each deployment configuration measured; the first is `measurement`")
    targets: list[TargetReport] = Field(default_factory=list)
    error: ErrorInfo | None = None
    complete: bool = True

    @property
    def verdict(self) -> Verdict:
        if self.error is not None:
            return Verdict.ERROR
        return worst([t.verdict for t in self.targets]) if self.targets else Verdict.PASS

    def exit_code(self, strict: bool = False) -> int:
        """The exit code ``mlfit check`` gives this result: 0 pass (INCONCLUSIVE too, unless strict),
        1 a budget failed, 4 INCONCLUSIVE under strict, the error's own code (2, 3, 130); 130 when incomplete."""
        if self.error is not None or not self.complete:  # incomplete, no error: Ctrl-C during --suggest
            return int(self.error.exit_code) if self.error is not None else int(ExitCode.INTERRUPTED)
        return _verdict_exit_code(self.verdict, strict)

    @property
    def passed(self) -> bool:
        """True exactly when ``mlfit check`` (without --strict) exits 0: every budget PASSes or is
        INCONCLUSIVE (the band straddles the limit: not shown to fail). ``exit_code(strict=True) == 0``
        is the stricter gate."""
        return self.exit_code() == 0

    def raise_for_error(self) -> RunResult:
        """Raise the error that stopped this model (an MlfitError with message, hint and exit code,
        the same line the CLI prints); return the result itself when there is none."""
        if self.error is None:
            return self
        kinds: dict[int, type[MlfitError]] = {int(ExitCode.USAGE): ConfigError, int(ExitCode.MODEL): ModelError}
        kind = kinds.get(self.error.exit_code, MlfitError)
        try:
            code = ExitCode(self.error.exit_code)
        except ValueError:
            code = ExitCode.MODEL
        raise kind(self.error.message, self.error.hint, code)

    def measurement_for(self, target: str) -> Measurement | None:
        """The measurement that judged ``target``: its configuration's (a v1 result: the one)."""
        for i, config in enumerate(self.configurations):
            if target in config.targets:
                return self.measurement if i == 0 else config.measurement
        return self.measurement


class ChangeStatus(str, Enum):
    """What a regression compare concluded for one metric."""

    REGRESSION = "regression"  # significant and larger than the minimum effect, in the worse direction
    IMPROVEMENT = "improvement"  # significant and larger than the minimum effect, in the better direction
    UNCHANGED = "unchanged"  # no change larger than the minimum effect could be shown
    INCONCLUSIVE = "inconclusive"  # a change may be there, but the evidence is too weak or too noisy
    NOT_TESTED = "not-tested"  # a single reading per run (cold start) or missing on one side: reported only


class MetricChange(_Frozen):
    """One metric of a model, base run against new run. ``change`` is relative: (new - base) / base."""

    metric: str
    unit: str = ""
    better: str = Field(default="lower", description="'lower' or 'higher': which direction is an improvement")
    base: float | None = None
    new: float | None = None
    change: float | None = None
    ci_low: float | None = Field(default=None, description="Lower end of the confidence interval of the change")
    ci_high: float | None = None
    p_value: float | None = None
    method: str = ""
    status: ChangeStatus
    reason: str = ""


class ModelComparison(_Frozen):
    """Every compared metric of one model."""

    model: str
    base_model: str
    same_file: bool = Field(description="Both runs measured a file with the same sha256")
    changes: list[MetricChange] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return any(c.status is ChangeStatus.REGRESSION for c in self.changes)


class Comparison(_Frozen):
    """A new report compared with a baseline report (``mlfit compare``, ``mlfit check --baseline``)."""

    base_path: str
    base_created: str
    min_effect: float = Field(description="Smallest relative change that counts (0.05 = 5%)")
    confidence: float
    method: str
    same_host: bool
    base_fingerprint: str | None = None
    new_fingerprint: str | None = None
    models: list[ModelComparison] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return any(m.regressed for m in self.models)


class Report(_Frozen):
    """The document every reporter renders: one result per model (one row per model and target).

    ``mlfit check`` of one model gives a report with one result; many models, many results.
    """

    schema_version: int = RESULT_SCHEMA_VERSION
    kind: str = "mlfit-report"
    mlfit_version: str
    created: str
    results: list[RunResult]
    notes: list[str] = Field(default_factory=list)
    complete: bool = True
    comparison: Comparison | None = Field(default=None, description="Regression compare against a baseline")

    @property
    def verdict(self) -> Verdict:
        return worst([r.verdict for r in self.results])

    def exit_code(self, strict: bool = False) -> int:
        """``mlfit check``'s exit code for many models: an error's code (the highest) outranks a failed
        budget (1), which outranks INCONCLUSIVE (4 under strict, else 0)."""
        errors = [r.exit_code() for r in self.results if r.error is not None or not r.complete]
        if errors:
            return max(errors)
        return _verdict_exit_code(self.verdict, strict)

    @property
    def passed(self) -> bool:
        """True exactly when ``mlfit check`` (without --strict) exits 0; see :meth:`RunResult.passed`."""
        return self.exit_code() == 0


def _verdict_exit_code(verdict: Verdict, strict: bool) -> int:
    if verdict is Verdict.FAIL:
        return int(ExitCode.BUDGET_FAILED)
    if verdict is Verdict.INCONCLUSIVE and strict:
        return int(ExitCode.INCONCLUSIVE)
    if verdict is Verdict.ERROR:
        return int(ExitCode.MODEL)
    return int(ExitCode.OK)


_SEVERITY = [Verdict.PASS, Verdict.INCONCLUSIVE, Verdict.FAIL, Verdict.ERROR]


def worst(verdicts: list[Verdict]) -> Verdict:
    return max(verdicts, key=_SEVERITY.index, default=Verdict.PASS)
