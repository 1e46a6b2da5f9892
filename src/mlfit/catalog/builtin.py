"""Where the built-in catalog lives, and the summary ``mlfit targets`` lists, read without pydantic.

Listing the built-in targets through the validated models costs most of the command's start-up:
importing pydantic and building the catalog models is about 0.1 s of CPU, three times the listing
itself. The catalog shipped with mlfit is validated by its tests (tests/test_catalog.py), so the
listing reads only the fields it shows, with the same bounded YAML loader and the same unit
parsers the models use. Anything this reader does not expect (a container limit, hardware that is
not a built-in id, a value of another shape) makes it return None, and the caller lists through the
validated models instead: the table is the same either way, and an error is reported by the
loader that owns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlfit.catalog import units
from mlfit.catalog.yamlload import load_yaml
from mlfit.errors import MlfitError

_PERCENTILES = ("p50", "p90", "p95", "p99")
_ARCHES = ("x86_64", "aarch64", "armv7")


def catalog_dir(kind: str) -> Path:
    """The built-in ``hardware`` or ``profiles`` folder: in the wheel, or the source tree."""
    packaged = Path(__file__).resolve().parent.parent / "_catalog" / kind
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / kind


def builtin_names(kind: str) -> list[str]:
    return sorted(p.stem for p in catalog_dir(kind).glob("*.yaml"))


@dataclass(frozen=True)
class TargetRow:
    """One line of ``mlfit targets``: the target and what it is checked on, as printed."""

    name: str
    hardware: str
    cpu: str
    ram: str
    accelerator: str
    budgets: str


def budget_summary(latency: dict[str, float], peak_memory: str | None, throughput: float | None) -> str:
    """'p95<=80ms, mem<=1.0 GiB, >=10/s': latency limits in seconds, memory as described."""
    return ", ".join([f"{p}<={v * 1e3:g}ms" for p, v in latency.items()]
                     + ([f"mem<={peak_memory}"] if peak_memory else [])
                     + ([f">={throughput:g}/s"] if throughput else []))


def builtin_rows() -> list[TargetRow] | None:
    """The built-in targets' rows, or None when a file needs the validated models to be read."""
    hardware: dict[str, dict[str, Any]] = {}
    rows = []
    try:
        for name in builtin_names("profiles"):
            profile = load_yaml(catalog_dir("profiles") / f"{name}.yaml").data
            if not isinstance(profile, dict) or "container" in profile:
                return None  # a container's memory limit becomes the budget: the models know how
            ref = profile["hardware"]
            if not isinstance(ref, str) or ref == "host" or ref.endswith((".yaml", ".yml")) or any(
                    sep in ref for sep in "/\\"):
                return None  # this machine, or a file of its own: the models describe those
            if ref not in hardware:
                hardware[ref] = load_yaml(catalog_dir("hardware") / f"{ref}.yaml").data
            row = _row(profile, hardware[ref])
            if row is None:
                return None
            rows.append(row)
    except (MlfitError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # the validated path reports it properly
    return rows


def _row(profile: dict[str, Any], hw: dict[str, Any]) -> TargetRow | None:
    cpu = hw["cpu"]
    cores, arch = cpu["cores"], cpu["arch"]
    if not isinstance(cores, int) or isinstance(cores, bool) or arch not in _ARCHES:
        return None
    budgets = profile.get("budgets") or {}
    latency = budgets.get("latency") or {}
    if not all(key in _PERCENTILES for key in latency):
        return None
    peak = budgets.get("peak_memory")
    throughput = budgets.get("throughput")
    accelerators = hw.get("accelerators") or []
    return TargetRow(
        name=str(profile["id"]), hardware=str(hw["id"]), cpu=f"{cores}x {arch}",
        ram=units.format_size(units.parse_size(hw["memory"]["ram"])),
        accelerator=", ".join(str(a["name"]) for a in accelerators) or "-",
        budgets=budget_summary({p: units.parse_duration(v) for p, v in latency.items()},
                               None if peak is None else _describe_memory(peak),
                               None if throughput is None else units.parse_rate(throughput)))


def _describe_memory(value: object) -> str:
    # As schema.MemoryBudget.describe: a share of RAM stays a share, anything else is a size.
    if isinstance(value, str) and value.strip().endswith("%"):
        fraction = float(value.strip()[:-1].strip()) / 100
        if not 0 < fraction <= 1:
            raise ValueError(value)
        return f"{fraction * 100:g}% of available RAM"
    return units.format_size(units.parse_size(value))
