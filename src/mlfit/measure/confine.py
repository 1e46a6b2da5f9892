"""The worker's own check that it runs under the container's limits, done before it imports a
runtime: the parent wrote the limits, but only the worker can see where it actually is. Figures
are labelled *emulated* only when this confirmation matches what was asked (issue 18: a cpuset
write that failed once left the worker in no cgroup at all while its figures were labelled
emulated)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlfit.measure import cgroup


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cpus(text: str | None) -> frozenset[int] | None:
    from mlfit.catalog.units import parse_cpuset

    try:
        return parse_cpuset(text) if text else None
    except ValueError:
        return None


def _memory_matches(read: str | None, wanted: int) -> bool:
    # The kernel keeps whole pages: what it reads back is the request rounded down to a page.
    try:
        value = int(read or "")
    except ValueError:
        return False
    return wanted - 65536 < value <= wanted


def _readback(expected: dict[str, Any]) -> dict[str, str | None]:
    """The limits this process is under, as its own cgroup files say (v1 or v2)."""
    if expected.get("version") in (2, -1):
        folders = cgroup.v2_own_folders()
        folder = folders[0] if folders else Path("/nonexistent")
        quota, _, period = (_read(folder / "cpu.max") or "").partition(" ")
        return {"quota": quota, "period": period, "memory": _read(folder / "memory.max"),
                "cpuset": _read(folder / "cpuset.cpus")}
    dirs = cgroup.v1_dirs()
    none = Path("/nonexistent")
    return {"quota": _read(dirs.get("cpu", none) / "cpu.cfs_quota_us"),
            "period": _read(dirs.get("cpu", none) / "cpu.cfs_period_us"),
            "memory": _read(dirs.get("memory", none) / "memory.limit_in_bytes"),
            "cpuset": _read(dirs.get("cpuset", none) / "cpuset.cpus")}


def confirm(expected: dict[str, Any]) -> str | None:
    """None when this process sits in the cgroup made for it with the limits asked; else what
    differs, in words."""
    own = cgroup.own_paths()
    systemd = expected.get("version") == -1
    for controller, path in dict(expected.get("paths") or {}).items():
        actual = own.get(controller)
        matches = (actual or "").endswith("/" + str(path)) if systemd else actual == path
        if not matches:
            label = f"{controller} cgroup" if controller else "cgroup"
            return f"the worker is in {label} '{actual or 'none'}', not in '{path}' made for it"
    got = _readback(expected)
    quota, period, memory, cpuset = (expected.get(k) for k in ("cpu_quota_us", "cpu_period_us", "memory", "cpuset"))
    if quota is not None and (got["quota"] != str(quota) or got["period"] != str(period)):
        return (f"its CPU quota reads {got['quota'] or 'nothing'}/{got['period'] or '?'} us, "
                f"not the {quota}/{period} us asked")
    if memory is not None and not _memory_matches(got["memory"], int(memory)):
        return f"its memory limit reads {got['memory'] or 'nothing'}, not the {int(memory)} bytes asked"
    if cpuset and _cpus(got["cpuset"]) != _cpus(str(cpuset)):
        return f"its cpuset reads '{got['cpuset'] or 'nothing'}', not the '{cpuset}' asked"
    return None
