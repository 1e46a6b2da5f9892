"""``mlfit calibrate``: measure this host once (GEMM, convolution, bandwidth, per-call overhead),
cache it per host fingerprint, and optionally write a hardware YAML with the measured figures."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer


def _emit_hardware(data: dict[str, Any], path: Path, hw_id: str | None, name: str | None) -> None:
    import math

    import psutil
    import yaml

    from mlfit.analysis.calibrate import per_thread
    from mlfit.report.atomic import write_atomic

    cores = int(data["cores_usable"])
    gemm_all = per_thread(data["gemm_flops"], cores)
    peak_core = data.get("peak_fp32_per_core") or 0.0
    peak = max(peak_core * cores, gemm_all)  # the peak can never be below what was sustained
    bandwidth = max(float(v) for v in data["bandwidth"].values())
    ram = int(data.get("ram_bytes") or psutil.virtual_memory().total)
    disk = psutil.disk_usage(str(Path.home())).total
    fingerprint = data["fingerprint"]
    source = (f"measured by mlfit calibrate on {data['created']} "
              f"(host fingerprint {fingerprint}, {data['runtime']})")
    doc = {
        "schema_version": 1,
        "id": hw_id or f"host-{fingerprint}",
        "name": name or f"{data['cpu_model']} ({cores} cores, measured)",
        "cpu": {
            "arch": data["arch"] if data["arch"] in ("x86_64", "aarch64", "armv7") else "x86_64",
            "model": data["cpu_model"],
            "cores": cores,
            "frequency": f"{(data.get('frequency_mhz') or 1000) / 1000:.3f} GHz",
            "peak_fp32": f"{peak / 1e9:.1f} GFLOPS",
            "sustained_fp32": f"{gemm_all / 1e9:.1f} GFLOPS",
            "isa": list(data.get("isa", [])),
            "source": source
            + ("; peak derived from the clock and ISA flags" if peak_core else "")
            + "; sustained_fp32 is onnxruntime fp32 GEMM at all cores",
        },
        "memory": {
            "ram": f"{ram / 2**30:.1f} GiB",
            "os_reserved": f"{max(256, math.ceil(ram * 0.1 / 2**20))} MiB",
            "bandwidth": f"{bandwidth / 1e9:.1f} GB/s",
            "source": source
            + "; bandwidth: onnxruntime Add over 32 MiB arrays (triad-like), best thread count; "
            "os_reserved: 10% of RAM, adjust to your system",
        },
        "storage": {"size": f"{disk / 1e9:.0f} GB", "source": source + " (size of the home file system)"},
    }
    text = (
        "# Written by `mlfit calibrate --emit-hardware`: figures measured on this machine.\n"
        + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    )
    write_atomic(path, text)


def register(app: typer.Typer) -> None:
    @app.command()
    def calibrate(
        force: Annotated[
            bool, typer.Option("--force", help="Measure again even if a cached calibration exists.")
        ] = False,
        emit_hardware: Annotated[
            Path | None,
            typer.Option(
                "--emit-hardware",
                help="Also write a hardware YAML with these figures marked 'measured': run it on "
                "the real device to add your own hardware with real numbers.",
            ),
        ] = None,
        hw_id: Annotated[
            str | None, typer.Option("--id", help="id for --emit-hardware (default host-FINGERPRINT).")
        ] = None,
        name: Annotated[str | None, typer.Option("--name", help="name for --emit-hardware.")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print the calibration as JSON.")] = False,
    ) -> None:
        """Measure this host (fp32 GEMM and convolution at 1..N threads, memory bandwidth, per-call overhead).

        Takes at most 20 s; cached per host fingerprint in $XDG_CACHE_HOME/mlfit (~/.cache/mlfit) and
        redone automatically when the fingerprint changes. `mlfit check` uses it to project onto targets.
        """
        import json

        from mlfit.analysis.calibrate import cache_path, load_or_calibrate

        if not json_out:
            sys.stderr.write("mlfit: calibrating this host (at most 20 s) ...\n" if force else "")
        data, cached = load_or_calibrate(force=force)
        if emit_hardware is not None:
            _emit_hardware(data, emit_hardware, hw_id, name)
        if json_out:
            sys.stdout.write(json.dumps(data, indent=2) + "\n")
            return
        path = cache_path(data["fingerprint"])
        lines = [
            f"host {data['cpu_model']} ({data['arch']}, {data['cores_usable']} usable cores), "
            f"{data['runtime']}",
            ("cached calibration from " if cached else "measured now, ") + f"{data['created']}: {path}",
        ]
        for t in data["threads"]:
            lines.append(
                f"  {t:>3} thread(s): GEMM {data['gemm_flops'][str(t)] / 1e9:7.1f} GFLOP/s, "
                f"conv {data['conv_flops'][str(t)] / 1e9:7.1f} GFLOP/s, "
                f"bandwidth {data['bandwidth'][str(t)] / 1e9:6.1f} GB/s"
            )
        lines.append(
            f"  per-call overhead {data['call_overhead_s'] * 1e6:.1f} µs; estimated peak "
            + (
                f"{data['peak_fp32_per_core'] / 1e9:.1f} GFLOP/s per core"
                if data.get("peak_fp32_per_core")
                else "unknown"
            )
        )
        if emit_hardware is not None:
            lines.append(f"hardware file written: {emit_hardware} (use it from a profile's 'hardware:' key)")
        sys.stdout.write("\n".join(lines) + "\n")
