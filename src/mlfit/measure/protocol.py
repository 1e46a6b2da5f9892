"""What the parent sends the worker and what comes back (JSON files + JSON-line events).

The worker writes one JSON object per line on stdout: ``{"event": "phase", "phase": ...}``
when it enters a phase and ``{"event": "progress", ...}`` now and then; its final answer
goes to the result file, so a crash can never leave half a result in the pipe. While the timed loop runs, the
worker also appends its samples to ``SAMPLES_FILE`` in the scratch folder (raw int64), and
reports ``{"event": "timing", "name": ..., "value": ...}`` for each cold-start figure, so
the parent keeps partial timings when it has to stop the worker.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlfit.inputspec import InputSpec
from mlfit.measure.scenarios import ScenarioSettings
from mlfit.records import MemoryTimeline, NodeProfile
from mlfit.result import Emulation, ErrorInfo, Measurement, TensorInfo

SAMPLES_FILE = "samples.i64"


class Phase(str, Enum):
    START = "start"
    IMPORT = "import"
    LOAD = "load"
    INPUTS = "inputs"
    FIRST_INFERENCE = "first_inference"
    WARMUP = "warmup"
    MEASURE = "measure"
    THROUGHPUT = "throughput"
    PROFILE = "profile"
    SCENARIO = "scenario"
    DONE = "done"

    @property
    def doing(self) -> str:
        """What the worker was doing, for messages: 'crashed while ...'."""
        return {
            Phase.START: "starting",
            Phase.IMPORT: "importing the runtime",
            Phase.LOAD: "creating the session",
            Phase.INPUTS: "preparing inputs",
            Phase.FIRST_INFERENCE: "running the first inference",
            Phase.WARMUP: "warming up",
            Phase.MEASURE: "measuring latency",
            Phase.THROUGHPUT: "measuring batched throughput",
            Phase.PROFILE: "profiling nodes",
            Phase.SCENARIO: "running the load scenario",
            Phase.DONE: "finishing",
        }[self]


class MeasureSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    warmup_iterations: int = 10
    warmup_time_s: float = 0.3
    min_samples: int = 130
    min_time_s: float = 1.0
    max_time_s: float = 30.0
    batch_size: int | None = None  # measure batched throughput too, when the batch dim is free
    profile_nodes: bool = False  # node-level timings for projection (onnxruntime)
    profile_threads: list[int] = Field(default_factory=list)
    load: ScenarioSettings = Field(default_factory=ScenarioSettings)  # server/offline/max-qps/batch sweep
    # A file the parent creates when its own work beside the worker is done (mlfit.run.overlap):
    # the worker waits for it, idle, between its warm-up and the timed loop.
    hold_path: str | None = None


class WorkerRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    model_path: str
    runtime: str
    threads: int
    execution_provider: str = "CPUExecutionProvider"
    trust_model: bool = False
    trust_types: list[str] = Field(default_factory=list)
    signature: str = "serving_default"
    method: str = "predict"
    custom_op_libraries: list[str] = Field(default_factory=list)
    enable_arena: bool = True
    input_spec: InputSpec = Field(default_factory=InputSpec)
    settings: MeasureSettings = Field(default_factory=MeasureSettings)
    scratch_dir: str
    confinement: dict[str, Any] | None = Field(
        None, description="Under container limits: the cgroup and limits the worker must confirm from inside "
                          "before it imports a runtime (mlfit.measure.confine)")
    # Seconds each phase may take, enforced by the worker's own watchdog (mlfit.lifeline) a little
    # later than by the parent, so the deadlines hold when the parent has died; empty: no bound.
    phase_deadlines_s: dict[str, float] = Field(default_factory=dict)


class WorkerResponse(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    measurement: Measurement | None = None
    inputs: list[TensorInfo] = Field(default_factory=list)
    inputs_used: list[TensorInfo] = Field(default_factory=list)
    outputs: list[TensorInfo] = Field(default_factory=list)
    node_profile: NodeProfile | None = None
    error: ErrorInfo | None = None
    emulation: Emulation | None = Field(None, description="Set by the parent for a run under container limits")
    timeline: MemoryTimeline | None = Field(None, description="Polled RSS of the worker over time, with phase "
                                                           "marks, for plots; never used for peaks")
