"""Is this machine really the target it claims to be?

A worker that advertises ``mlfit-target-NAME`` says "my figures are NAME's own". That claim is
checked against the worker's own host facts, twice: by ``mlfit worker`` before it advertises
anything (a mismatch is refused unless ``--force-claim``), and by the client on the host facts
every result carries (a mismatch is never labelled measured on the target). The facts compared:

- CPU architecture, exactly (x86_64, aarch64, armv7; the usual aliases folded);
- core count: the hardware's cores must equal the cores this process may use (affinity and
  cgroup quota), or the machine's logical or physical cores;
- memory: the RAM the worker sees (capped by its cgroup limit) must be within -20 % / +10 % of
  the hardware file's RAM (the kernel and firmware keep some, so a 4 GiB Pi reports ~3.7 GiB);
- a discrete GPU: hardware with a GPU on an x86_64 machine needs an NVIDIA GPU the host sees
  (integrated GPUs, as on a Jetson, are not detectable this way and are not checked).

Host facts are what the worker reports: a hostile worker can lie about them, so they catch
mistakes (a laptop started with ``--target edge``), not attackers. That is why the client also
requires the claim to be authenticated (:mod:`mlfit.cluster.answers`): mutual TLS, with the
certificate the worker authenticated with naming ``mlfit-target-NAME`` (docs/scale.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlfit.catalog.schema import Hardware
    from mlfit.result import HostInfo

RAM_LOW, RAM_HIGH = 0.80, 1.10
_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64",
         "armv7": "armv7", "armv7l": "armv7", "armv8l": "armv7", "armhf": "armv7"}


def normalise_arch(machine: str) -> str:
    return _ARCH.get(machine.strip().lower(), machine.strip().lower())


def _gib(size: float) -> str:
    return f"{size / 2**30:.1f} GiB"


def mismatches(host: HostInfo, hardware: Hardware) -> list[str]:
    """Every way ``host`` differs from ``hardware`` beyond tolerance; empty when it matches."""
    found: list[str] = []
    arch = normalise_arch(host.arch)
    if arch != hardware.cpu.arch.value:
        found.append(f"architecture {host.arch} (the hardware is {hardware.cpu.arch.value})")
    counts = {host.cores_usable, host.cores_logical, host.cores_physical}
    if hardware.cpu.cores not in counts:
        found.append(f"{host.cores_usable} usable of {host.cores_logical} logical cores "
                     f"(the hardware has {hardware.cpu.cores})")
    ram = float(host.ram_bytes)
    if host.cgroup_memory_limit:
        ram = min(ram, float(host.cgroup_memory_limit))
    expected = float(hardware.memory.ram)
    if not RAM_LOW * expected <= ram <= RAM_HIGH * expected:
        found.append(f"{_gib(ram)} of memory (the hardware has {_gib(expected)}; "
                     f"accepted {_gib(RAM_LOW * expected)} to {_gib(RAM_HIGH * expected)})")
    gpus = [a for a in hardware.accelerators if a.kind == "gpu"]
    if gpus and arch == "x86_64" and not host.gpus:
        found.append(f"no NVIDIA GPU visible (the hardware has {gpus[0].name})")
    return found


def describe(host: HostInfo) -> str:
    return (f"{host.hostname}: {host.arch}, {host.cores_usable} usable cores, "
            f"{_gib(min(host.ram_bytes, host.cgroup_memory_limit or host.ram_bytes))}")
