"""Pydantic models of the two catalog file kinds: hardware (what a machine IS) and
profiles (what a deployment REQUIRES).

Catalog file format history (``schema_version``):
  1 - first version.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from mlfit.catalog import units

CATALOG_SCHEMA_VERSION = 1

Duration = Annotated[float, BeforeValidator(units.parse_duration)]
Size = Annotated[float, BeforeValidator(units.parse_size)]
Frequency = Annotated[float, BeforeValidator(units.parse_frequency)]
Flops = Annotated[float, BeforeValidator(units.parse_flops)]
Bandwidth = Annotated[float, BeforeValidator(units.parse_bandwidth)]
Rate = Annotated[float, BeforeValidator(units.parse_rate)]
Cpus = Annotated[float, BeforeValidator(units.parse_cpus)]
MemoryLimit = Annotated[float, BeforeValidator(units.parse_memory_limit)]
# A cpuset is checked when read (backwards ranges, CPUs past any host, duplicates, empty) and
# kept in the kernel's own spelling ('0-3,6').
Cpuset = Annotated[str, BeforeValidator(lambda v: units.format_cpuset(units.parse_cpuset(v)))]
Source = Annotated[str, Field(min_length=3, description="Where the numbers come from: a datasheet, "
                                                      "a benchmark reference, or 'measured'.")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, defer_build=True)


def _positive_int(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("expected a whole number, got a boolean")
    return value


PositiveInt = Annotated[int, BeforeValidator(_positive_int), Field(gt=0, le=4096)]


class Arch(str, Enum):
    X86_64 = "x86_64"
    AARCH64 = "aarch64"
    ARMV7 = "armv7"


class Cpu(_Strict):
    arch: Arch
    model: str
    cores: PositiveInt
    frequency: Frequency
    peak_fp32: Flops = Field(description="Dense fp32 peak of all cores, FLOP/s")
    sustained_fp32: Flops | None = Field(
        None, description="fp32 GEMM throughput the runtime sustains on all cores, FLOP/s (e.g. measured by "
        "`mlfit calibrate --emit-hardware`); projection uses it instead of assuming an efficiency")
    isa: list[str] = Field(default_factory=list, description="ISA features: avx2, avx512f, neon, ...")
    source: Source


class Memory(_Strict):
    ram: Size
    os_reserved: Size = Field(description="What the OS and other services keep")
    bandwidth: Bandwidth
    source: Source

    @model_validator(mode="after")
    def _reserved_below_ram(self) -> Memory:
        if self.os_reserved >= self.ram:
            raise ValueError("os_reserved must be smaller than ram")
        return self

    @property
    def available(self) -> float:
        return self.ram - self.os_reserved


class Storage(_Strict):
    size: Size
    source: Source


class Accelerator(_Strict):
    kind: Literal["gpu", "npu"]
    name: str
    memory: Size
    peak_fp32: Flops
    peak_fp16: Flops | None = None
    peak_int8: Flops | None = None
    bandwidth: Bandwidth
    host_link_bandwidth: Bandwidth = Field(description="Host-to-device copy bandwidth (PCIe or shared memory)")
    execution_provider: str = Field(description="onnxruntime execution provider, e.g. CUDAExecutionProvider")
    source: Source


class Hardware(_Strict):
    """A machine: CPU, memory, storage and accelerators, every number with its source."""

    schema_version: Literal[1] = 1
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    name: str
    cpu: Cpu
    memory: Memory
    storage: Storage
    accelerators: list[Accelerator] = Field(default_factory=list)


class Percentile(str, Enum):
    P50 = "p50"
    P90 = "p90"
    P95 = "p95"
    P99 = "p99"

    @property
    def quantile(self) -> float:
        return int(self.value[1:]) / 100


# MLPerf LoadGen's early-stopping minimums: below these a percentile is not meaningful.
MIN_SAMPLES = {Percentile.P50: 1, Percentile.P90: 64, Percentile.P95: 130, Percentile.P99: 662}


def _memory_budget(value: object) -> object:
    if isinstance(value, str) and value.strip().endswith("%"):
        number = value.strip()[:-1].strip()
        try:
            fraction = float(number) / 100
        except ValueError:
            raise ValueError(f"expected a percentage such as '60%', got '{value}'") from None
        if not 0 < fraction <= 1:
            raise ValueError(f"a share of RAM must be within (0%, 100%], got '{value}'")
        return {"fraction_of_ram": fraction}
    return {"absolute": units.parse_size(value)}


class MemoryBudget(_Strict):
    absolute: float | None = None
    fraction_of_ram: float | None = None

    def limit_bytes(self, hardware: Hardware) -> float:
        if self.absolute is not None:
            return self.absolute
        assert self.fraction_of_ram is not None
        return self.fraction_of_ram * hardware.memory.available

    def describe(self) -> str:
        if self.absolute is not None:
            return units.format_size(self.absolute)
        return f"{(self.fraction_of_ram or 0) * 100:g}% of available RAM"


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, dict) else value


class LoadLatencyBudget(_Strict):
    """Latency under load: "p99 <= 50 ms at 100 requests per second" is {at: 100/s, p99: 50 ms}."""

    at: Rate = Field(description="Request rate (Poisson arrivals) the latency limits hold at, e.g. 100/s")
    p50: Duration | None = None
    p90: Duration | None = None
    p95: Duration | None = None
    p99: Duration | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> LoadLatencyBudget:
        if not self.limits():
            raise ValueError("give at least one percentile limit beside 'at', e.g. {at: 100/s, p99: 50 ms}")
        return self

    def limits(self) -> dict[Percentile, float]:
        """Percentile -> maximum latency in seconds, for the percentiles this budget sets."""
        return {p: v for p in Percentile if (v := getattr(self, p.value)) is not None}


ColdStartPart = Literal["process_start", "import", "load", "first_inference"]
COLD_START_PARTS: tuple[ColdStartPart, ...] = ("process_start", "import", "load", "first_inference")


class Budgets(_Strict):
    latency: dict[Percentile, Duration] = Field(default_factory=dict,
                                               description="Percentile -> maximum, e.g. {p95: 80 ms}")
    cold_start: Duration | None = Field(None, description="What a fresh process pays before its first answer: "
                                        "the parts in cold_start_parts (all of them unless it says)")
    # A fresh pod pays every part; a profile whose runtime is already imported (a warm server loading
    # models on demand) names the parts that count (docs/profiles.md).
    cold_start_parts: list[ColdStartPart] = Field(
        default_factory=lambda: list(COLD_START_PARTS), min_length=1,
        description="Parts of the cold start the budget counts: process_start (interpreter and imports until "
                    "the runtime's), import (the runtime), load (the model), first_inference")
    peak_memory: Annotated[MemoryBudget | None, BeforeValidator(_memory_budget)] = Field(
        None, description="Absolute ('512 MiB') or a share of available RAM ('60%')")
    model_size: Size | None = None
    throughput: Rate | None = Field(None, description="Minimum inferences per second at the profile's batch size")
    load_latency: Annotated[list[LoadLatencyBudget], BeforeValidator(_one_or_many)] = Field(
        default_factory=list, description="Latency percentiles under a request rate: {at: 100/s, p99: 50 ms} "
                                          "(or a list of them); measured with the server scenario")
    sustains: Rate | None = Field(None, description="Minimum request rate served while keeping up "
                                                    "(and within load_latency limits when given)")


class OpsetRange(_Strict):
    min: PositiveInt = 1
    max: PositiveInt = 30


class Runtime(str, Enum):
    ONNXRUNTIME = "onnxruntime"
    TENSORFLOW = "tensorflow"
    TFLITE = "tflite"
    SKLEARN = "sklearn"


class Container(_Strict):
    """The limits of the container the model is deployed in (a Kubernetes pod's ``resources``,
    ``docker run --cpus/--memory``). A target with a container is measured *emulated*: on this
    host, in a cgroup with these limits."""

    cpu: Cpus | None = Field(None, description="CPU limit in cores: 0.5, '500m' (the CFS quota)")
    memory: MemoryLimit | None = Field(None, description="Memory limit: '512 MiB' or '512Mi' (the OOM killer's)")
    cpuset: Cpuset | None = Field(None, description="CPUs the container may run on, e.g. '0-1'")
    cpu_request: Cpus | None = Field(None, description="CPU request (scheduling only; recorded, not imposed)")
    memory_request: MemoryLimit | None = Field(None, description="Memory request (recorded, not imposed)")
    source: str = Field("", description="Where the limits come from (a manifest and container name)")

    @model_validator(mode="after")
    def _some_limit(self) -> Container:
        if self.cpu is None and self.memory is None and not self.cpuset:
            raise ValueError("give at least one limit: cpu, memory or cpuset")
        return self

    def cpus_allowed(self) -> int | None:
        """Number of CPUs in the cpuset, when one is given."""
        if not self.cpuset:
            return None
        return len(units.parse_cpuset(self.cpuset))


class Profile(_Strict):
    """A deployment: which hardware, what runs there, and the budgets a model must meet."""

    schema_version: Literal[1] = 1
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""
    hardware: str = Field(description="Built-in hardware id, a path to a hardware YAML file, or 'host' (this "
                                      "machine: the target is measured here, under the container's limits)")
    runtimes: list[Runtime] = Field(min_length=1)
    runtime_version: str | None = Field(None, description="onnxruntime version deployed on the target, if pinned")
    execution_provider: str = "CPUExecutionProvider"
    threads: PositiveInt = 1
    batch_size: PositiveInt = 1
    budgets: Budgets = Field(default_factory=Budgets)
    opset: OpsetRange = Field(default_factory=OpsetRange)
    container: Container | None = Field(None, description="Container limits; the target is then measured "
                                          "emulated, in a cgroup with these limits")
    dtypes: list[str] = Field(default_factory=lambda: ["float32", "int64", "int32", "bool", "int8", "uint8"])

    @field_validator("dtypes")
    @classmethod
    def _known_dtypes(cls, value: list[str]) -> list[str]:
        known = {"float32", "float16", "bfloat16", "float64", "int8", "uint8", "int16", "uint16", "int32",
                 "int64", "uint32", "uint64", "bool", "string"}
        for dtype in value:
            if dtype not in known:
                raise ValueError(f"unknown dtype '{dtype}'; use one of {', '.join(sorted(known))}")
        return value


def with_container_budget(profile: Profile) -> Profile:
    """A container's memory limit is the peak-memory budget when the profile sets none: the
    OOM killer enforces it whatever the budgets say. (Here, beside the types it reads, so both
    the profile loader and the manifest reader use it without importing each other.)"""
    container = profile.container
    if container is None or container.memory is None or profile.budgets.peak_memory is not None:
        return profile
    budgets = profile.budgets.model_copy(update={"peak_memory": MemoryBudget(absolute=container.memory)})
    return profile.model_copy(update={"budgets": budgets})
