"""The GPU path on a machine with a CUDA GPU: measured vs projected GPU-server figures.

- With onnxruntime-gpu and a CUDA GPU: `mlfit check` measures the GPU target on this
  host's GPU (CUDAExecutionProvider); the roofline projection mlfit would make without a
  GPU is printed beside it.
- Without onnxruntime-gpu but with PyTorch + torchvision on CUDA: the same architectures
  (torchvision's ResNet-50 and MobileNetV2, random weights, fp32, eager) are timed with CUDA
  events and compared with mlfit's roofline for the equivalent ONNX graphs. A different
  runtime than onnxruntime's CUDA EP: a sanity check of the roofline's scale, not of ORT.
- Otherwise: says so and exits 0 (the test suite never needs a GPU).

    PYTHONPATH=src python benchmarks/gpu_check.py [--target gpu-h100] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)

from mlfit.analysis.graph import analyze_onnx  # noqa: E402
from mlfit.analysis.project import gpu_roofline  # noqa: E402
from mlfit.catalog.loader import resolve_target  # noqa: E402
from mlfit.measure.host import detect_gpus  # noqa: E402
from mlfit.zoo import builders  # noqa: E402


def _ort_gpu() -> bool:
    try:
        import importlib.metadata

        importlib.metadata.version("onnxruntime-gpu")
    except Exception:
        return False
    return bool(detect_gpus())


def _torch_cuda() -> bool:
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _models(folder: Path, batch: int) -> list[tuple[str, Path, str]]:
    return [
        ("ResNet-50 @224", builders.save(builders.resnet50(batch="batch"), folder / "r50.onnx"), "resnet50"),
        (
            "MobileNetV2 1.0 @224",
            builders.save(builders.mobilenet_v2(batch="batch"), folder / "mbv2.onnx"),
            "mobilenet_v2",
        ),
    ]


def _torch_time(arch: str, batch: int) -> float:
    import torch
    import torchvision

    torch.backends.cudnn.benchmark = True
    model = getattr(torchvision.models, arch)(weights=None).eval().cuda()
    x = torch.randn(batch, 3, 224, 224)
    times = []
    with torch.inference_mode():
        for i in range(60):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(x.cuda(non_blocking=False)).cpu()  # the host<->device copies count, as in a served request
            end.record()
            torch.cuda.synchronize()
            if i >= 10:
                times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="gpu-h100")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    target = resolve_target(args.target)
    acc = next(a for a in target.hardware.accelerators if a.kind == "gpu")
    batch = target.profile.batch_size
    gpus = detect_gpus()
    if not gpus and not _torch_cuda():
        print("no CUDA GPU here: nothing to compare (the projection path is covered by the test suite)")
        return 0
    lines = [
        f"# GPU check: measured vs projected ({args.target}: {acc.name})",
        "",
        f"Host GPU(s): {', '.join(gpus) or 'visible to PyTorch'}.",
        "",
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlfit-gpu-") as tmp:
        for name, path, arch in _models(Path(tmp), batch):
            facts = {b: analyze_onnx(path, dims={"batch": b}) for b in (1, batch)}
            proj = {b: gpu_roofline(facts[b], acc, 1)[0] for b in (1, batch)}
            if _ort_gpu():
                run = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "mlfit",
                        "check",
                        str(path),
                        "--dim",
                        "batch=1",
                        "--target",
                        args.target,
                        "--json",
                        "-",
                        "--quiet",
                    ],
                    capture_output=True,
                    text=True,
                )
                result = json.loads(run.stdout)["results"][0]
                m = result["targets"][0]
                p50 = next(c for c in m["checks"] if c["metric"].startswith("latency."))["value"]
                measured = {1: p50}
                how = "mlfit check, onnxruntime-gpu CUDAExecutionProvider"
            else:
                measured = {b: _torch_time(arch, b) for b in (1, batch)}
                how = "PyTorch eager fp32 + cuDNN (torchvision architecture), CUDA events incl. copies"
            for b in sorted(measured):
                band = proj[b]
                rows.append((name, b, measured[b], band, how))
                print(
                    f"{name} batch {b}: measured {measured[b] * 1e3:.3f} ms ({how}); projected "
                    f"{band.value * 1e3:.3f} ms [{band.lower * 1e3:.3f} – {band.upper * 1e3:.3f}]",
                    flush=True,
                )
    lines += [
        "| model | batch | measured | projected [band] | ratio projected/measured | in band "
        "| measured with |",
        "|---|---:|---:|---:|---:|:---:|---|",
    ]
    for name, b, meas, band, how in rows:
        inside = band.lower <= meas <= band.upper
        lines.append(
            f"| {name} | {b} | {meas * 1e3:.3f} ms | {band.value * 1e3:.3f} ms "
            f"[{band.lower * 1e3:.3f} – {band.upper * 1e3:.3f}] | {band.value / meas:.2f} | "
            f"{'yes' if inside else 'no'} | {how} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
