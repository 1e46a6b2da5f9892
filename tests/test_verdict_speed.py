"""The node profile costs only what the verdict reads (issue 22, time to verdict).

The projection starts from the single-thread profile's uncontended figures, so a check profiles
nodes at one thread only (a second profiled session at the measured thread count cost 0.2-0.3 s
and changed no projection), and onnxruntime's trace is read without a JSON parse of every event.
The tests measure a real model, project it with and without the multi-thread profile, and read
real onnxruntime traces both ways. No absolute time is asserted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from conftest import FAST, run_mlfit
from mlfit import api
from mlfit.analysis.graph import analyze_onnx
from mlfit.analysis.project import project
from mlfit.measure import nodeprofile
from mlfit.modelref import identify
from mlfit.options import MeasureOptions
from mlfit.run.plan import plan_measurement

_OPTIONS = {"min_time": float(FAST[1]), "max_time": float(FAST[3]), "warmup": int(FAST[5])}


def test_the_node_profile_is_one_thread_unless_more_are_asked_for(small_cnn_model: Path) -> None:
    ref, targets = identify(small_cnn_model), api.resolve_targets(["edge", "weak-cpu"])
    default = plan_measurement(ref, targets, MeasureOptions(threads=2))[0].settings
    assert default.profile_nodes and default.profile_threads == [1]
    asked = plan_measurement(ref, targets, MeasureOptions(threads=2, extra={"profile_threads": [2, 1]}))[0]
    assert asked.settings.profile_threads == [1, 2]


def test_the_projection_reads_only_the_single_thread_profile(small_cnn_model: Path) -> None:
    # Measured once with both counts profiled; projected with the full profile and with its
    # single-thread part alone: the same bands, so the second profiled session informed nothing.
    opts = MeasureOptions(threads=2, extra={"profile_threads": [1, 2]}, **_OPTIONS)  # type: ignore[arg-type]
    r = api.check(small_cnn_model, ["edge", "weak-cpu"], options=opts)
    assert r.error is None and r.measurement is not None and r.node_profile is not None, r.error
    assert set(r.node_profile.by_threads) == {"1", "2"}
    alone = r.node_profile.model_copy(update={"by_threads": {"1": r.node_profile.by_threads["1"]}})
    static = analyze_onnx(small_cnn_model)
    for target in api.resolve_targets(["edge", "weak-cpu"]):
        both = project(target, r.measurement, r.node_profile, static, r.calibration, r.host)
        one = project(target, r.measurement, alone, static, r.calibration, r.host)
        assert both is not None and one is not None
        assert both.latency == one.latency, target.name
        assert both.method == one.method


def test_a_default_check_profiles_one_thread(small_cnn_model: Path) -> None:
    r = api.check(small_cnn_model, ["edge"], options=MeasureOptions(**_OPTIONS))  # type: ignore[arg-type]
    assert r.error is None and r.node_profile is not None and r.node_profile.error is None
    assert list(r.node_profile.by_threads) == ["1"]
    one = r.node_profile.by_threads["1"]
    assert one.runs >= nodeprofile.MIN_RUNS_ONE_THREAD and one.nodes_us_low and one.node_us_low
    assert r.measurement is not None and r.measurement.contention is not None
    assert r.measurement.contention.reference is not None  # the reference kernel still ran beside it
    assert r.targets and r.targets[0].projection is not None


@pytest.fixture(scope="module")
def trace(small_cnn_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real onnxruntime profile of 8 runs of the small CNN."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path_factory.mktemp("trace") / "ort")
    session = ort.InferenceSession(str(small_cnn_model), sess_options=so, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    feed = {inp.name: np.random.default_rng(0).random([int(d) for d in inp.shape], dtype=np.float32)}
    for _ in range(8):
        session.run(None, feed)
    return Path(session.end_profiling())


def _parsed_with_json(path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as m:
        m.setattr(nodeprofile, "read_trace", lambda p: json.loads(Path(p).read_text()))
        return nodeprofile._parse(str(path), 3)


def test_the_trace_reads_as_the_json_parser_reads_it(trace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = nodeprofile._parse(str(trace), 3)
    assert fast == _parsed_with_json(trace, monkeypatch)
    totals, per_node, info = fast
    assert len(totals) == 5 and per_node and all(facts["op"] for facts in info.values())
    assert nodeprofile._events(trace.read_text())  # the line reader itself read it, not the fallback


def test_a_trace_in_another_layout_goes_through_the_json_parser(trace: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # the same events, written as one JSON document with other spacing (another onnxruntime's)
    other = tmp_path / "other.json"
    other.write_text(json.dumps(json.loads(trace.read_text()), indent=1))
    assert nodeprofile._events(other.read_text()) == []
    assert nodeprofile._parse(str(other), 3) == _parsed_with_json(trace, monkeypatch)


_PROBE = """
import os
from pathlib import Path

Path(os.environ["MLFIT_TEST_PLUGIN_MARKS"], str(os.getpid())).touch()  # loaded: pydantic looked up its plugins


class _Probe:
    def new_schema_validator(self, *args, **kwargs):
        return None, None, None


plugin = _Probe()
"""


def _probe_plugin(folder: Path) -> Path:
    """A real pydantic plugin, installed by its entry point, that marks each process that loads it."""
    folder.mkdir()
    (folder / "mlfit_probe_plugin.py").write_text(_PROBE)
    info = folder / "mlfit_probe_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlfit-probe-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pydantic]\nprobe = mlfit_probe_plugin:plugin\n")
    return folder


def test_the_cli_and_its_worker_skip_pydantic_plugins_unless_the_user_set_them(tiny_model: Path,
                                                                              tmp_path: Path) -> None:
    # was: the CLI and each worker scanned every installed package's entry points for pydantic plugins
    # (0.03-0.04 s of CPU each, in this environment) for plugins that observe an application's models
    plugins = _probe_plugin(tmp_path / "site")
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), str(plugins)) if p)
    counts = {}
    for label, extra in (("default", {}), ("user's choice", {"PYDANTIC_DISABLE_PLUGINS": ""})):
        marks = tmp_path / f"marks-{len(counts)}"
        marks.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
        env.update(PYTHONPATH=path, MLFIT_TEST_PLUGIN_MARKS=str(marks), **extra)
        run = run_mlfit("check", tiny_model, "--target", "edge", *FAST, env=env)
        assert run.code in (0, 1), run.output
        counts[label] = len(list(marks.iterdir()))
    assert counts["default"] == 0
    assert counts["user's choice"] >= 2  # the CLI and its worker both loaded the plugin
