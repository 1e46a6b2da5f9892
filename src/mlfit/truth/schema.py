"""The truth store's and the fit file's formats: data only, validated when read.

Store history (``STORE_SCHEMA_VERSION``):
  1 - first version: one row per (result, target) measured on a device.
Fit file history (``FIT_SCHEMA_VERSION``):
  1 - first version: one adapted fit per hardware id, with the rows it used and its errors.
  2 - ``band``: how the adapted band was set (the order statistic of the device's own
      leave-one-model-out residuals, or "" for the committed band); errors after are leave-one-model-out.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

STORE_SCHEMA_VERSION = 1
FIT_SCHEMA_VERSION = 2


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class RowProvenance(str, Enum):
    """Who says the row was measured on its hardware."""

    VERIFIED = "measured-on-target"  # a cluster worker whose host facts matched the target
    USER_STATED = "user-stated"  # `--as-measured-on`: the user says this machine is that hardware


class StructureRecord(_Frozen):
    """What of the model the device model reads (mlfit.analysis.devicemodel.Structure)."""

    dense_flops: float = Field(ge=0)
    depthwise_flops: float = Field(ge=0)
    other_bytes: float = Field(ge=0)
    kernels: int = Field(ge=0)
    dense_kernels: int = Field(0, ge=0)
    matmul_flops: float = Field(0.0, ge=0)
    dense_bytes: float = Field(0.0, ge=0)
    # the part of other_bytes and kernels in activations fused into their convolution (0: a record
    # written before they were counted apart)
    fused_bytes: float = Field(0.0, ge=0)
    fused_kernels: int = Field(0, ge=0)


class DeviceRecord(_Frozen):
    """The hardware figures the device model uses (mlfit.analysis.devicemodel.Device)."""

    id: str = Field(min_length=1, max_length=200)
    kind: Literal["cpu", "gpu"]
    arch: str
    peak_core: float = Field(gt=0)
    cores: int = Field(ge=1)
    frequency: float = Field(gt=0)
    bandwidth: float = Field(gt=0)
    dotprod: bool
    peak_fp16: float | None = None
    peak_int8: float | None = None
    core: str = ""
    fp16: bool = False


class TruthRow(_Frozen):
    """One measurement of one model on one device."""

    id: str = Field(min_length=1, max_length=64)
    added: str
    provenance: RowProvenance
    hardware: DeviceRecord
    hardware_name: str = ""
    model: str
    model_sha256: str
    model_format: str
    structure: StructureRecord
    runtime: str
    runtime_version: str = ""
    threads: int = Field(ge=1)
    precision: Literal["fp32", "fp16", "int8"]
    batch: int = Field(1, ge=1)
    seconds: float = Field(gt=0, description="Uncontended p50 per call: the device model's target quantity")
    basis: str = Field("", description="How `seconds` was read from the result")
    p50_wall_s: float | None = Field(None, gt=0)
    mean_s: float | None = Field(None, gt=0)
    samples: int = Field(0, ge=0)
    target: str = Field("", description="The target the result judged, for a row measured on a target")
    result_path: str
    result_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    host_fingerprint: str = ""


class TruthStore(_Frozen):
    schema_version: int = STORE_SCHEMA_VERSION
    rows: list[TruthRow] = Field(default_factory=list)


class ExcludedRow(_Frozen):
    id: str
    reason: str


class DeviceFit(_Frozen):
    """One device's adapted constants (mlfit.analysis.devicemodel.Params as a dict) and their record."""

    hardware: str
    hardware_name: str = ""
    device: DeviceRecord
    params: dict[str, Any]
    device_terms: dict[str, Any] = Field(default_factory=dict, description="The device's own scales per term")
    used: list[str]
    user_stated: int = Field(0, ge=0)
    excluded: list[ExcludedRow] = Field(default_factory=list)
    error_before: list[float] = Field(default_factory=list, description="|relative error|, committed fit")
    error_after: list[float] = Field(default_factory=list, description="|relative error|, leave-one-model-out adapted")
    median_error_before: float = Field(ge=0)
    median_error_after: float = Field(ge=0)
    summary: str
    band: str = Field("", description="How the band was set from the device's own residuals; '': the committed band "
                      "(rows of fewer than 3 models)")
    store_sha256: str = Field(description="The store the fit was made from: a later change is said")
    created: str


class FitFile(_Frozen):
    schema_version: int = FIT_SCHEMA_VERSION
    fits: dict[str, DeviceFit] = Field(default_factory=dict)
