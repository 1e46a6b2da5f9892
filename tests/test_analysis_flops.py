"""Static analysis: FLOPs/MACs and parameters agree with the published figures of well-known
networks (built here with random weights), shapes follow the input spec, and the activation
sweep and largest-tensor lists are consistent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import assert_no_traceback, run_cli
from mlfit.analysis.costs import op_cost
from mlfit.analysis.graph import analyze_onnx
from mlfit.zoo import builders


def _within(value: float, published: float, tolerance: float = 0.10) -> bool:
    return abs(value - published) <= tolerance * published


@pytest.fixture(scope="module")
def mobilenet(models_dir: Path) -> dict:
    return analyze_onnx(
        builders.save(builders.mobilenet_v2(width=1.0, resolution=224), models_dir / "mbv2.onnx")
    )


@pytest.fixture(scope="module")
def resnet(models_dir: Path) -> dict:
    return analyze_onnx(builders.save(builders.resnet50(), models_dir / "resnet50.onnx"))


def test_mobilenet_v2_matches_published_figures(mobilenet: dict) -> None:
    # Sandler et al. 2018, Table 4: MobileNetV2 1.0 @ 224: 300M multiply-adds, 3.4M parameters.
    assert _within(mobilenet["macs"], 300e6), mobilenet["macs"]
    assert _within(mobilenet["parameters"], 3.4e6), mobilenet["parameters"]
    assert mobilenet["flops"] >= 2 * mobilenet["macs"]


def test_resnet50_matches_published_figures(resnet: dict) -> None:
    # He et al. 2016 (ResNet-50: ~4.1G multiply-adds at 224x224), 25.6M parameters.
    assert _within(resnet["macs"], 4.1e9), resnet["macs"]
    assert _within(resnet["parameters"], 25.6e6), resnet["parameters"]


def test_per_node_costs_sum_to_totals(resnet: dict) -> None:
    nodes = resnet["nodes"]
    assert sum(n["macs"] for n in nodes) == resnet["macs"]
    assert sum(n["flops"] for n in nodes) == resnet["flops"]
    assert all(n["bytes_read"] > 0 and n["bytes_written"] > 0 for n in nodes)
    assert resnet["op_costs"]["Conv"]["flops"] > 0.9 * resnet["flops"]
    assert resnet["shape_inference"]["nodes_with_unknown_cost"] == 0


def test_activation_peak_and_largest_tensors(resnet: dict) -> None:
    # The first conv's output (1x64x112x112 fp32, 3.2 MB) is live at once with its input:
    # the peak is at least that, and far below the sum of every activation.
    assert resnet["activation_peak_bytes"] >= 64 * 112 * 112 * 4
    every = sum(n["bytes_written"] for n in resnet["nodes"])
    assert resnet["activation_peak_bytes"] < every / 4
    sizes = [i["bytes"] for i in resnet["top_initializers"]]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == 5
    assert resnet["top_initializers"][0]["bytes"] == 512 * 512 * 3 * 3 * 4  # a last-stage 3x3 conv weight
    assert resnet["top_activations"][0]["bytes"] >= resnet["top_activations"][-1]["bytes"]


def test_symbolic_dims_follow_the_input_spec(cnn_model: Path) -> None:
    one = analyze_onnx(cnn_model)
    four = analyze_onnx(cnn_model, dims={"batch": 4})
    assert one["shape_inference"]["assumed_dims"] == {"batch": 1}
    assert four["shape_inference"]["assumed_dims"] == {}
    assert four["macs"] == 4 * one["macs"]
    assert four["activation_peak_bytes"] > 3 * one["activation_peak_bytes"]
    assert one["dynamic_dims"] == ["batch"]


def test_transformer_costs_grow_with_sequence(transformer_model: Path) -> None:
    short = analyze_onnx(transformer_model, dims={"seq": 16})
    long = analyze_onnx(transformer_model, dims={"seq": 64})
    assert long["macs"] > 4 * short["macs"] * 0.99  # linear layers x4, attention x16
    assert "int64" in short["dtypes"] and "float32" in short["dtypes"]


def test_op_cost_for_fused_and_prepacked_nodes() -> None:
    # Shapes as onnxruntime's profiler reports them for a fused conv and a prepacked Gemm.
    flops, macs, known = op_cost("FusedConv", [[1, 16, 80, 80], [16, 1, 3, 3], [16]], [[1, 16, 80, 80]])
    assert known and macs == 16 * 80 * 80 * 9 and flops == 2 * macs + 16 * 80 * 80
    flops, macs, known = op_cost("Gemm", [[1, 1280], [1000]], [[1, 1000]])
    assert known and macs == 1280 * 1000
    assert op_cost("Reshape", [[1, 4]], [[4]]) == (0, 0, True)
    assert op_cost("Conv", [None], [None])[2] is False


def test_inspect_shows_flops_and_activations(cnn_model: Path) -> None:
    run = run_cli("inspect", cnn_model)
    assert_no_traceback(run)
    assert run.code == 0, run.output
    assert "FLOPs per inference" in run.stdout and "MACs" in run.stdout
    assert "peak activations" in run.stdout
    as_json = run_cli("inspect", cnn_model, "--json")
    facts = json.loads(as_json.stdout)
    assert facts["macs"] > 0 and facts["nodes"] and facts["activation_peak_bytes"] > 0
