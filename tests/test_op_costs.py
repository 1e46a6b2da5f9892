"""Every op family has a static cost (issue 21 item 1): table-driven over small real models built
with onnx.helper (tests/op_family_models.py), each run once through onnxruntime so the graph is
valid, then analysed statically: the node's cost is known, its MACs are the family's formula and
its FLOPs at least twice that (or the per-element count)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

import op_family_models as fam
from mlfit.analysis.costs import op_cost
from mlfit.analysis.graph import analyze_onnx


@pytest.mark.parametrize("family", sorted(fam.CASES))
def test_each_op_family_has_a_static_cost(family: str, tmp_path: Path) -> None:
    case = fam.CASES[family]()
    path = fam.save(case.model, tmp_path / f"{family}.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    session.run(None, case.feeds)  # a graph the runtime accepts and runs
    facts = analyze_onnx(path)
    node = next(n for n in facts["nodes"] if n["op"] == case.op)
    assert node["cost_known"], node
    assert node["macs"] == case.macs, (family, node["macs"], case.macs)
    assert node["flops"] >= case.flops_at_least > 0, (family, node["flops"])
    assert facts["shape_inference"]["nodes_with_unknown_cost"] == 0 or family in ("If", "Loop", "Scan")


def test_recurrent_and_loop_nodes_run_their_steps_in_sequence(tmp_path: Path) -> None:
    lstm = analyze_onnx(fam.save(fam.recurrent("LSTM", seq=12).model, tmp_path / "l.onnx"))
    assert next(n for n in lstm["nodes"] if n["op"] == "LSTM")["steps"] == 12
    looped = analyze_onnx(fam.save(fam.loop(trips=5).model, tmp_path / "loop.onnx"))
    node = next(n for n in looped["nodes"] if n["op"] == "Loop")
    assert node["steps"] >= 5 and node["flops"] == node["matrix_flops"] == 2 * 5 * 32 * 32


def test_a_loop_without_a_static_trip_count_has_no_static_cost(tmp_path: Path) -> None:
    case = fam.loop(trips=5)
    model = case.model
    model.graph.input.append(fam.helper.make_tensor_value_info("M2", fam.TensorProto.INT64, []))
    model.graph.node[0].input[0] = "M2"  # the trip count now comes from the caller
    facts = analyze_onnx(fam.save(model, tmp_path / "dyn_loop.onnx"))
    assert not next(n for n in facts["nodes"] if n["op"] == "Loop")["cost_known"]


def test_the_tree_ensemble_counts_trees_times_depth() -> None:
    assert op_cost("TreeEnsembleClassifier", [[3, 8]], [[3]], {"trees": 10, "depth": 6}) == (2 * 3 * 10 * 6, 0, True)
    assert op_cost("TreeEnsembleClassifier", [[3, 8]], [[3]], {})[2] is False


def test_einsum_with_an_ellipsis_and_a_single_operand() -> None:
    _, macs, known = op_cost("Einsum", [[2, 3, 4, 5], [5, 6]], [[2, 3, 4, 6]], {"equation": "...ij,jk->...ik"})
    assert known and macs == 2 * 3 * 4 * 5 * 6
    assert op_cost("Einsum", [[4, 5]], [[5, 4]], {"equation": "ij->ji"}) == (20, 0, True)


def test_motivating_models_are_costed(tmp_path: Path) -> None:
    """The int8 CRNN (ConvInteger, MatMulInteger, DynamicQuantizeLSTM) and the skl2onnx forest: every node
    has a static cost; the forest's bytes are the visited tree nodes, not 80 B."""
    fp32 = fam.save(fam.crnn(), tmp_path / "crnn.onnx")
    q = fam.quantize_int8(fp32, tmp_path / "crnn_int8.onnx")
    facts = analyze_onnx(q)
    ops = set(facts["ops"])
    assert {"com.microsoft::DynamicQuantizeLSTM", "ConvInteger", "MatMulInteger"} <= ops, ops
    unknown = [n["op"] for n in facts["nodes"] if not n["cost_known"]]
    assert not unknown, unknown
    lstm = next(n for n in facts["nodes"] if n["op"].endswith("DynamicQuantizeLSTM"))
    assert lstm["macs"] > 0 and lstm["steps"] == 32
    forest = analyze_onnx(fam.save(fam.random_forest(trees=40, depth=8), tmp_path / "rf.onnx"))
    tree = next(n for n in forest["nodes"] if n["op"].endswith("TreeEnsembleClassifier"))
    assert tree["cost_known"] and tree["flops"] >= 2 * 40 * 4
    assert tree["bytes_read"] >= 40 * 4 * 64


def test_a_tree_table_that_loops_is_walked_once(tmp_path: Path) -> None:
    """A hostile tree table whose branches point back at the root: walked once per entry, not forever."""
    case = fam.tree_ensemble()
    node = case.model.graph.node[0]
    for a in node.attribute:
        if a.name in ("nodes_truenodeids", "nodes_falsenodeids"):
            del a.ints[:]
            a.ints.extend([1, 2, 0, 0, 0, 0, 0, 0, 0, 0] if a.name == "nodes_truenodeids" else [0] * 10)
    facts = analyze_onnx(fam.save(case.model, tmp_path / "loop_tree.onnx"))
    tree = next(n for n in facts["nodes"] if n["op"].endswith("TreeEnsembleRegressor"))
    assert tree["flops"] > 0
