"""Item 9, beyond the table: projections of models the fit never saw anything like, built here.

    python benchmarks/bench_beyond_table.py [--quick] [--work DIR]

Four models outside the truth table's classic vision networks, each checked as a user would
(``mlfit check MODEL --target edge --target weak-cpu --json``):

- an int8 dynamically quantized CRNN (two convolutions, an LSTM, a classifier), quantized with
  ``onnxruntime.quantization.quantize_dynamic`` (ConvInteger, MatMulInteger, DynamicQuantizeLSTM);
- a random forest converted with skl2onnx (ai.onnx.ml TreeEnsembleClassifier);
- a transformer encoder (mlfit's zoo: BERT-style, 4 layers, d 256, seq 128);
- one network (Keras MobileNetV2 0.35 @96, random weights) exported to ONNX (tf2onnx) and to TFLite.

For each: the projected p50 over this host's fastest call (the measured minimum at the same
configuration), on the Raspberry Pi 4 (``edge``; goal >= 1.0: a Pi 4 is slower than this host
in every respect) and on the 2-vCPU cloud VM (``weak-cpu``; goal >= 1/3); and for the network
exported twice, the TFLite projection over the ONNX one (goal within 1.5x either way).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import benchlib as bl

NUMBER = 9
TITLE = "Projection beyond the table"
TARGETS = ("edge", "weak-cpu")
GOALS = {"edge": 1.0, "weak-cpu": 1 / 3}
FORMAT_AGREEMENT = 1.5

_KERAS_PAIR = r"""
import sys
import keras
import tensorflow as tf
import tf2onnx

keras.utils.set_random_seed(0)
net = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=1000)
spec = [tf.TensorSpec((1, 96, 96, 3), tf.float32, name="image")]
tf2onnx.convert.from_keras(net, input_signature=spec, opset=17, output_path=sys.argv[1])
open(sys.argv[2], "wb").write(tf.lite.TFLiteConverter.from_keras_model(net).convert())
"""


def _crnn(path: Path) -> None:
    """Conv(1->32) ReLU MaxPool, Conv(32->64) ReLU MaxPool over a 64 mel x 128 frame spectrogram,
    then an LSTM (hidden 128) over the 32 frames left, and a 20-class classifier per frame; fp32,
    then dynamically quantized to int8."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.05).astype(np.float32), name)

    hidden, feats, frames = 128, 64 * 16, 32
    inits = [
        weight("w1", 32, 1, 3, 3), weight("b1", 32), weight("w2", 64, 32, 3, 3), weight("b2", 64),
        weight("lw", 1, 4 * hidden, feats), weight("lr", 1, 4 * hidden, hidden), weight("lb", 1, 8 * hidden),
        weight("fc", hidden, 20), weight("fb", 20),
        numpy_helper.from_array(np.array([frames, 1, feats], np.int64), "seq_shape"),
        numpy_helper.from_array(np.array([frames, hidden], np.int64), "out_shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["mel", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),  # [1, 64, 16, 32]
        helper.make_node("Transpose", ["p2"], ["t"], perm=[3, 0, 1, 2]),  # [32 frames, 1, 64, 16]
        helper.make_node("Reshape", ["t", "seq_shape"], ["seq"]),
        helper.make_node("LSTM", ["seq", "lw", "lr", "lb"], ["y"], hidden_size=hidden),
        helper.make_node("Reshape", ["y", "out_shape"], ["h"]),
        helper.make_node("MatMul", ["h", "fc"], ["logits0"]),
        helper.make_node("Add", ["logits0", "fb"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "crnn", [helper.make_tensor_value_info("mel", TensorProto.FLOAT,
                                                                           [1, 1, 64, 128])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [frames, 20])], inits)
    fp32 = path.with_name("crnn_fp32.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(fp32))
    quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)


def _forest(path: Path) -> None:
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 32)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.int64) + (x[:, 3] > 1)
    forest = RandomForestClassifier(n_estimators=200, max_depth=12, random_state=0).fit(x, y)
    onx = to_onnx(forest, x[:1], options={id(forest): {"zipmap": False}}, target_opset=17)
    path.write_bytes(onx.SerializeToString())


def _encoder(path: Path) -> None:
    from mlfit.zoo import builders

    builders.save(builders.bert_encoder(layers=4, d_model=256, heads=4, ff=1024, seq=128, vocab=8000), path)


def build(work: Path) -> dict[str, Path]:
    """Every model of the section, built once per work folder."""
    folder = work / "beyond"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.onnx" for name in ("crnn_int8", "forest", "encoder")}
    for name, make in (("crnn_int8", _crnn), ("forest", _forest), ("encoder", _encoder)):
        if not paths[name].exists():
            make(paths[name])
    paths["mnv2_onnx"], paths["mnv2_tflite"] = folder / "mnv2_035_96.onnx", folder / "mnv2_035_96.tflite"
    if not paths["mnv2_tflite"].exists():
        proc = bl.run([bl.PY, "-c", _KERAS_PAIR, str(paths["mnv2_onnx"]), str(paths["mnv2_tflite"])],
                      env={"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}, timeout=600)
        if proc.rc != 0:
            raise RuntimeError(f"the Keras export failed: {proc.last_error_line()}")
    return paths


def _check(path: Path, quick: bool) -> dict[str, Any]:
    """One `mlfit check` of both targets: per target the projected p50 band, its method, and the
    host's fastest call at the configuration measured."""
    timing = ("--min-time", "0.3", "--max-time", "2") if quick else ("--min-time", "2", "--max-time", "10")
    run = bl.mlfit("check", str(path), *(a for t in TARGETS for a in ("--target", t)), *timing)
    if run.report is None:
        return {"error": run.proc.last_error_line() or f"exit {run.proc.rc}"}
    result = run.report["results"][0]
    if result.get("error"):
        return {"error": result["error"]["message"]}
    out: dict[str, Any] = {"targets": {}}
    # Each configuration's own measurement where several ran; one configuration's is the result's.
    fastest = {c["label"]: c["measurement"]["latency"]["min"] for c in result.get("configurations") or []
               if c.get("measurement")}
    default_fastest = (result.get("measurement") or {}).get("latency", {}).get("min")
    for report in result["targets"]:
        proj = report.get("projection") or {}
        p50 = (proj.get("latency") or {}).get("p50")
        label = next((c["label"] for c in result.get("configurations") or [] if report["target"] in c["targets"]),
                     None)
        out["targets"][report["target"]] = {
            "p50": p50, "method": proj.get("method", "not projected"),
            "fastest": fastest.get(label, default_fastest) if label is not None else default_fastest,
            "unknown": ((result.get("analysis") or {}).get("shape_inference") or {}).get("nodes_with_unknown_cost"),
        }
    return out


def _method(text: str) -> str:
    """The estimator a projection names first (``device model``, ``host-scaled``, ``device model +
    host-scaled, xN apart``), or the older methods' first words."""
    head = text.split(":")[0]
    if head.startswith(("device model", "host-scaled")):
        return head
    if text.startswith("per-node"):
        return "host per-node"
    if text.startswith("whole-model"):
        return "host whole-model"
    return text.split(" (")[0][:40]


def body(work: Path, quick: bool) -> tuple[str, list[bl.Row]]:
    bl.ensure_calibrated()
    paths = build(work)
    names = {"crnn_int8": "CRNN + LSTM, int8 dynamic (ORT quantize_dynamic)", "forest": "random forest, skl2onnx",
             "encoder": "transformer encoder (4 x d256, seq 128)", "mnv2_onnx": "MobileNetV2 0.35 @96, ONNX (tf2onnx)",
             "mnv2_tflite": "MobileNetV2 0.35 @96, TFLite"}
    checked = {key: _check(paths[key], quick) for key in names}
    table: list[list[object]] = []
    held: dict[str, list[bool]] = {t: [] for t in TARGETS}
    for key, label in names.items():
        found = checked[key]
        if "error" in found:
            table.append([label, "-", "-", "-", f"error: {found['error']}", "-", "-"])
            continue
        for target in TARGETS:
            entry = found["targets"].get(target) or {}
            p50, fastest = entry.get("p50"), entry.get("fastest")
            if not p50 or not fastest:
                table.append([label, target, "-", bl.fmt_time(fastest or 0), "not projected", "-", "-"])
                held[target].append(False)
                continue
            ratio = p50["value"] / fastest
            ok = ratio >= GOALS[target]
            held[target].append(ok)
            table.append([label, target, f"{bl.fmt_time(p50['value'])} [{bl.fmt_time(p50['lower'])} - "
                          f"{bl.fmt_time(p50['upper'])}]", bl.fmt_time(fastest), f"{ratio:.2f}",
                          "yes" if ok else "**no**", _method(entry.get("method", ""))])
    pair: list[list[object]] = []
    agree: list[bool] = []
    a, b = checked["mnv2_onnx"], checked["mnv2_tflite"]
    for target in TARGETS:
        pa = ((a.get("targets") or {}).get(target) or {}).get("p50")
        pb = ((b.get("targets") or {}).get(target) or {}).get("p50")
        if pa and pb:
            r = pb["value"] / pa["value"]
            agree.append(1 / FORMAT_AGREEMENT <= r <= FORMAT_AGREEMENT)
            pair.append([target, bl.fmt_time(pa["value"]), bl.fmt_time(pb["value"]), f"{r:.2f}",
                         "yes" if agree[-1] else "**no**"])
    text = [
        "Models the team builds itself, none like a row of the truth table. Ratio: projected p50 (centre) over "
        "this host's fastest call at the same configuration; goals: >= 1.0 on the Pi 4 (`edge`), >= 1/3 on the "
        "2-vCPU VM (`weak-cpu`). Method: which estimator gave the projected figure.",
        "",
        bl.table(["model", "target", "projected p50 [band]", "host fastest", "ratio", "goal", "method"], table),
        "",
        "One network, two formats (projected p50, TFLite over ONNX; goal within 1.5x):",
        "",
        bl.table(["target", "ONNX", "TFLite", "TFLite / ONNX", "within 1.5x"], pair),
    ]
    rows = [
        bl.Row("9. beyond the table, Pi 4", "projected / host fastest >= 1.0",
               f"{sum(held['edge'])} of {len(held['edge'])}", bl.met(all(held["edge"]) if held["edge"] else None)),
        bl.Row("9. beyond the table, 2-vCPU VM", "projected / host fastest >= 1/3",
               f"{sum(held['weak-cpu'])} of {len(held['weak-cpu'])}",
               bl.met(all(held["weak-cpu"]) if held["weak-cpu"] else None)),
        bl.Row("9. beyond the table, one network ONNX vs TFLite", "within 1.5x",
               f"{sum(agree)} of {len(agree)} targets", bl.met(all(agree) if agree else None)),
    ]
    return "\n".join(text), rows


def run(work: Path, quick: bool) -> bl.Section:
    return bl.timed_section(NUMBER, TITLE, lambda: body(work, quick))


def with_devices(work: Path, quick: bool) -> bl.Section:
    """Item 9 of `make bench`: the published devices, then this section under its own heading."""
    import bench_devices

    def both() -> tuple[str, list[bl.Row]]:
        devices_text, devices_rows = bench_devices.body(work, quick)
        beyond_text, beyond_rows = body(work, quick)
        return f"{devices_text.rstrip()}\n\n### {TITLE}\n\n{beyond_text}", [*devices_rows, *beyond_rows]

    return bl.timed_section(NUMBER, bench_devices.TITLE, both)


if __name__ == "__main__":
    sys.exit(bl.main_for(run, __doc__.splitlines()[0]))
