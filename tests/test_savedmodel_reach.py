"""Real TensorFlow SavedModels, hostile and benign, judged by what loading and the chosen
signature reach (issue 11, item 1). Built once per session in a subprocess
(tests/savedmodel_models.py); the CLI runs as a real subprocess."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FAST, assert_no_traceback, run_mlfit
from mlfit.errors import ExitCode, ModelError
from mlfit.formats import ModelFormat
from mlfit.formats.registry import check_model
from mlfit.safety.savedmodel_scan import SavedModelError, scan_savedmodel
from savedmodel_models import HOSTILE, models

pytestmark = pytest.mark.slow

EXPECTED_OP = {
    "write_file": "WriteFile", "tf1_init_writes": "WriteFile", "print_to_file": "PrintV2",
    "print_stream_from_caller": "PrintV2", "fake_save_fn": "SaveV2", "duplicate_op": "WriteFile",
    "list_dir_dataset": "MatchingFiles", "dataset_from_graph": "DatasetFromGraph",
    "tf1_restore_elsewhere": "RestoreV2", "pbtxt_space": "WriteFile", "pbtxt_split": "WriteFile",
    "pbtxt_escape": "WriteFile", "pbtxt_quote": "WriteFile", "vocab_outside": "InitializeTableFromTextFileV2",
    "vocab_escape": "InitializeTableFromTextFileV2",
}  # fmt: skip


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return models(tmp_path_factory.getbasetemp())


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_savedmodel_is_refused_by_op_name(built: dict[str, Path], case: str) -> None:
    scan = scan_savedmodel(built[case])
    assert EXPECTED_OP[case] in scan.refused_ops, scan.problems
    with pytest.raises(ModelError) as info:
        check_model(built[case], ModelFormat.SAVEDMODEL, trust_model=False)
    assert EXPECTED_OP[case] in info.value.message and info.value.exit_code == ExitCode.MODEL


@pytest.mark.parametrize("case", ["write_file", "tf1_init_writes", "print_stream_from_caller", "fake_save_fn",
                                  "duplicate_op", "pbtxt_escape", "list_dir_dataset"])
def test_cli_refuses_with_one_line_and_no_side_effect(built: dict[str, Path], case: str) -> None:
    run = run_mlfit("check", built[case], "--target", "edge", "--dim", "batch=1", *FAST)
    assert_no_traceback(run)
    assert run.code == 3, run.output
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert EXPECTED_OP[case] in run.stderr and "--trust-model" in run.stderr
    assert not Path(built[f"sentinel_{case}"]).exists() if f"sentinel_{case}" in built else True


def test_the_attacks_are_real_when_trusted(built: dict[str, Path]) -> None:
    """With --trust-model the same files do what the scan said: the refusals are not false alarms."""
    sentinel = Path(built["sentinel_print_stream_from_caller"])
    run = run_mlfit("check", built["print_stream_from_caller"], "--target", "edge", "--dim", "batch=1",
                    "--trust-model", *FAST)
    assert_no_traceback(run)
    assert sentinel.exists(), run.output  # the print target set on the calling node was honoured
    sentinel.unlink()


@pytest.mark.parametrize("case", ["module_savedmodel", "keras_export", "keras_saved", "tf1_savedmodel",
                                  "vocab_asset"])
def test_real_exports_pass_the_allowlist(built: dict[str, Path], case: str) -> None:
    scan = scan_savedmodel(built[case])
    assert scan.problems == [] and scan.signature_found, scan.problems
    assert scan.layout == ("tf1" if case.startswith("tf1") else "tf2")
    # TensorFlow's own save function is in the library, but loading never reaches it.
    assert "SaveV2" not in scan.ops and "MergeV2Checkpoints" not in scan.ops
    if case == "vocab_asset":  # the table's initializer reads the model's own asset: allowed
        assert scan.ops.get("InitializeTableFromTextFileV2") == 1
    check_model(built[case], ModelFormat.SAVEDMODEL, trust_model=False)


def test_tf1_restore_reads_only_the_fed_prefix(built: dict[str, Path]) -> None:
    scan = scan_savedmodel(built["tf1_savedmodel"])
    assert scan.ops.get("RestoreV2") == 1  # the saver's restore, from the filename the loader feeds
    problems = scan_savedmodel(built["tf1_restore_elsewhere"]).problems
    assert any("RestoreV2" in p and "other than the one the loader restores" in p for p in problems)


def test_module_savedmodel_measures(built: dict[str, Path]) -> None:
    run = run_mlfit("check", built["module_savedmodel"], "--target", "edge", "--dim", "batch=1", *FAST)
    assert_no_traceback(run)
    assert run.code in (0, 1), run.output  # a verdict: the model was loaded and measured


def test_signature_choice_decides_what_is_judged(built: dict[str, Path]) -> None:
    # The hostile function is only behind 'serving_default'; a signature that does not exist reaches
    # nothing (the worker then refuses it by name), and loading alone runs no file op.
    assert scan_savedmodel(built["write_file"], "serving_default").refused_ops == ["WriteFile"]
    other = scan_savedmodel(built["write_file"], "no_such_signature")
    assert other.problems == [] and not other.signature_found


def test_descriptors_match_installed_tensorflow() -> None:
    code = ("from mlfit.safety.tf_descriptors import generate, descriptor_set; "
            "import sys; sys.exit(0 if generate() == descriptor_set() else 1)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_parser_never_imports_tensorflow(built: dict[str, Path]) -> None:
    code = ("import sys; from pathlib import Path; from mlfit.safety.savedmodel_scan import scan_savedmodel; "
            f"scan_savedmodel(Path({str(built['keras_export'])!r})); "
            "sys.exit(1 if 'tensorflow' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def _limited(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child under a 3 GB address-space limit."""
    limit = 3 * 1024**3

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          preexec_fn=cap)


def test_parser_cases_under_3gb_address_space(built: dict[str, Path], tmp_path: Path) -> None:
    """Hostile and huge inputs end in SavedModelError (or a judgement), never a crash, under 3 GB."""
    sparse = tmp_path / "sparse"
    sparse.mkdir()
    with (sparse / "saved_model.pb").open("wb") as fh:
        fh.truncate(100 * 1024**2)  # 100 MB of zeros
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / "saved_model.pbtxt").write_text("meta_graphs { graph_def { " + "library { " * 5000)
    cases = [str(sparse), str(deep), *(str(built[c]) for c in HOSTILE)]
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from mlfit.safety.savedmodel_scan import SavedModelError, scan_savedmodel\n"
        f"for case in {cases!r}:\n"
        "    try:\n"
        "        scan = scan_savedmodel(Path(case))\n"
        "        print('judged', case, scan.refused_ops)\n"
        "        assert scan.refused_ops, case\n"
        "    except SavedModelError as exc:\n"
        "        print('error', case, exc)\n"
    )
    proc = _limited(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"error {sparse}" in proc.stdout and f"error {deep}" in proc.stdout


def test_unreadable_and_odd_files(tmp_path: Path) -> None:
    import os

    fifo_dir = tmp_path / "fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / "saved_model.pb")
    with pytest.raises((SavedModelError, ModelError), match="not a regular file"):  # and no hang
        scan_savedmodel(fifo_dir)
    both = tmp_path / "both"
    both.mkdir()
    (both / "saved_model.pb").write_bytes(b"")  # TensorFlow reads the .pb first, even when empty
    (both / "saved_model.pbtxt").write_text('meta_graphs { graph_def { node { name: "w" op: "WriteFile" } } }')
    with pytest.raises(SavedModelError, match="no meta graph"):
        scan_savedmodel(both)
