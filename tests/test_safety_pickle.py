"""The static pickle scan: globals listed without unpickling; hostile files never run."""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import FAST, assert_no_traceback, run_mlfit
from format_models import models
from mlfit.errors import ExitCode, ModelError
from mlfit.formats import ModelFormat, sniff
from mlfit.formats.registry import check_model
from mlfit.safety import dangerous
from mlfit.safety.pickle_scan import PickleScanError, scan_pickle


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return models(tmp_path_factory.getbasetemp())


def test_hostile_pickle_lists_os_system_and_never_runs(built: dict[str, Path]) -> None:
    scan = scan_pickle(built["hostile_pkl"])
    assert any(g.endswith(".system") for g in scan.globals), scan.globals
    for key in ("hostile_pkl", "hostile_joblib"):
        run = run_mlfit("check", built[key], "--target", "weak-cpu", *FAST)
        assert run.code == ExitCode.MODEL, run.output
        assert_no_traceback(run)
        assert "system" in run.stderr and "--trust-model" in run.stderr and "skops" in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1
    assert not built["sentinel"].exists()


@pytest.mark.parametrize(
    "key", ["joblib", "joblib_zlib", "joblib_gzip", "joblib_bz2", "joblib_xz", "joblib_lzma"]
)
def test_joblib_files_scan_to_their_estimators(built: dict[str, Path], key: str) -> None:
    assert sniff(built[key]) is ModelFormat.PICKLE
    scan = scan_pickle(built[key])
    assert "sklearn.linear_model._logistic.LogisticRegression" in scan.globals
    assert "sklearn.pipeline.Pipeline" in scan.globals
    assert scan.arrays > 0  # raw array bytes were stepped over, not parsed as opcodes
    assert (scan.compression is None) == (key == "joblib")
    assert not any(dangerous(g) for g in scan.globals)


def test_plain_joblib_is_refused_with_its_globals(built: dict[str, Path]) -> None:
    with pytest.raises(ModelError) as info:
        check_model(built["joblib"], ModelFormat.PICKLE, trust_model=False)
    assert "LogisticRegression" in info.value.message
    assert info.value.exit_code == ExitCode.MODEL
    check_model(built["joblib"], ModelFormat.PICKLE, trust_model=True)  # trusted: no scan, no error


def test_object_array_nested_pickle_is_scanned(tmp_path: Path) -> None:
    import joblib
    import numpy as np

    path = tmp_path / "objects.joblib"
    joblib.dump({"a": np.array([io.BytesIO, 1], dtype=object), "b": np.arange(5.0)}, path)
    scan = scan_pickle(path)
    assert "_io.BytesIO" in scan.globals  # found inside the object array's nested pickle
    assert scan.arrays == 2


def test_stack_global_and_protocols(tmp_path: Path) -> None:
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps({"f": print, "x": [1, 2.5, "s"]}, protocol=protocol))
        assert sniff(path) is ModelFormat.PICKLE
        assert "builtins.print" in scan_pickle(path).globals


def test_truncated_and_garbage_pickles_are_refused(tmp_path: Path) -> None:
    data = pickle.dumps({"x": list(range(50))}, protocol=4)
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(PickleScanError):
        scan_pickle(cut)
    with pytest.raises(ModelError, match="cannot be scanned"):
        check_model(cut, ModelFormat.PICKLE, trust_model=False)


def test_scan_never_imports_the_modules_it_names(tmp_path: Path) -> None:
    import sys

    path = tmp_path / "fake.pkl"
    # A global in a module that does not exist: a real unpickler would try to import it.
    path.write_bytes(b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x0fno_such_mod_xyz\x8c\x01f\x93)R.")
    assert scan_pickle(path).globals == ["no_such_mod_xyz.f"]
    assert "no_such_mod_xyz" not in sys.modules


# --- the scan reads what joblib's unpickler reads (issue 11, item 3) ---------------------------

def _filler(size: int) -> bytes:
    """Opcodes that leave the stack as they found it, exactly ``size`` bytes long (size >= 2)."""
    out = b""
    while size % 2:
        out += b"K\x010"  # BININT1 1, POP: 3 bytes
        size -= 3
    return out + b"N0" * (size // 2)  # NONE, POP


def _size_mismatch_joblib(path: Path, sentinel: Path) -> Path:
    """A real joblib file whose array dtype says 'V64' while its pickled state gives 8-byte
    elements: joblib reads 8 bytes per element, a scan that trusts the code skips 64, and
    ``os.system`` sits in the difference."""
    import joblib
    import numpy as np

    count = 16
    joblib.dump({"weights": np.zeros(count, dtype="V8"), "scale": 2.5}, path, protocol=2)
    data = path.read_bytes()
    code = b"X\x02\x00\x00\x00V8"  # BINUNICODE 'V8', protocol 2 has no frames to fix up
    assert data.count(code) == 1
    data = data.replace(code, b"X\x03\x00\x00\x00V64")
    command = f"touch {sentinel}".encode()
    hidden = (b"\x8c\x02os\x8c\x06system\x93" + b"\x8c" + bytes([len(command)]) + command + b"\x85R0")
    hidden += _filler(count * 56 - len(hidden))
    end = data.index(b"\x00" * (count * 8)) + count * 8  # the array bytes joblib wrote
    path.write_bytes(data[:end] + hidden + data[end:])
    return path


def test_array_size_mismatch_hides_nothing(tmp_path: Path) -> None:
    sentinel = tmp_path / "PWNED"
    path = _size_mismatch_joblib(tmp_path / "model.joblib", sentinel)
    scan = scan_pickle(path)
    assert "posix.system" in scan.globals or "os.system" in scan.globals, scan.globals
    assert scan.inconsistencies and "declares 64-byte elements" in scan.inconsistencies[0]
    run = run_mlfit("check", path, "--target", "weak-cpu", *FAST)
    assert_no_traceback(run)
    assert run.code == ExitCode.MODEL, run.output
    assert len(run.stderr.strip().splitlines()) == 1
    assert "os.system" in run.stderr and "inconsistent" in run.stderr
    assert "numpy.dtype" in run.stderr  # every global, also those before the hidden one
    assert not sentinel.exists()


def _framed_joblib(path: Path, sentinel: Path) -> Path:
    """A joblib file whose wrapper BUILD sits inside a pickle frame that also holds ``os.system``.

    pickle._Unframer (what joblib reads with) takes the array bytes from after the frame and
    then runs the rest of the frame; a reader that ignores frames takes the hidden call as
    array bytes."""
    import struct

    import joblib
    import numpy as np

    array = np.arange(4, dtype="f8")
    joblib.dump(array, path, protocol=2)  # no frames: PROTO 2, opcodes, BUILD, padding, bytes, rest
    data = path.read_bytes()
    start = data.index(array.tobytes())
    build = data.rindex(b"b", 0, start)  # the wrapper's BUILD; the padding byte and padding follow
    padding, rest = data[build + 1 : start], data[start + len(array.tobytes()) :]
    command = f"touch {sentinel}".encode()
    hidden = b"\x8c\x02os\x8c\x06system\x93\x8c" + bytes([len(command)]) + command + b"\x85R0"
    frame = data[2 : build + 1] + hidden + rest
    path.write_bytes(data[:2] + b"\x95" + struct.pack("<Q", len(frame)) + frame + padding + array.tobytes())
    return path


def test_array_bytes_inside_a_frame_come_from_after_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    sentinel = tmp_path / "PWNED"
    path = _framed_joblib(tmp_path / "framed.joblib", sentinel)
    scan = scan_pickle(path)
    assert any(g.endswith(".system") for g in scan.globals), scan.globals
    assert scan.arrays == 1 and not scan.inconsistencies
    with pytest.raises(ModelError, match="system"):
        check_model(path, ModelFormat.PICKLE, trust_model=False)
    assert not sentinel.exists()
    # and joblib really does run it, with the array intact
    proc = subprocess.run([sys.executable, "-c", f"import joblib; print(joblib.load({str(path)!r}).sum())"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "6.0" in proc.stdout, proc.stderr
    assert sentinel.exists()


def test_wrapper_tricks_and_truncation_are_refused(tmp_path: Path) -> None:
    import joblib
    import numpy as np

    path = tmp_path / "a.joblib"
    joblib.dump({"w": np.ones(1000)}, path, protocol=2)
    data = path.read_bytes()
    cut = tmp_path / "cut.joblib"
    cut.write_bytes(data[: len(data) - 4000])
    with pytest.raises(PickleScanError, match="truncated"):
        scan_pickle(cut)
    overflow = tmp_path / "overflow.joblib"
    shape = b"J\x00\x00\x00\x40J\x00\x00\x00\x40J\x00\x00\x00\x40\x87"  # (2^30, 2^30, 2^30) as BININTs
    old_shape = b"M\xe8\x03\x85"  # BININT2 1000, TUPLE1
    assert data.count(old_shape) == 1
    overflow.write_bytes(data.replace(old_shape, shape))
    with pytest.raises(PickleScanError, match="overflows"):
        scan_pickle(overflow)


def _su(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


@pytest.mark.parametrize(("body", "reason"), [
    # the wrapper class called through REDUCE (joblib only ever uses NEWOBJ with no arguments)
    (_su("joblib.numpy_pickle") + _su("NumpyArrayWrapper") + b"\x93)R", "never writes"),
    # the wrapper class passed as an argument to something else
    (_su("builtins") + _su("list") + b"\x93" + _su("joblib.numpy_pickle") + _su("NumpyArrayWrapper")
     + b"\x93\x85R", "never writes"),
    # a numpy dtype given its state twice
    (_su("numpy") + _su("dtype") + b"\x93" + _su("f8") + b"\x89\x88\x87R" + b"K\x03\x85bK\x03\x85b",
     "state twice"),
    # an old-style wrapper that reads its array from another file
    (_su("joblib.numpy_pickle_compat") + _su("NDArrayWrapper") + b"\x93", "another file"),
    # a memo key that was never stored
    (b"h\x07", "never stored"),
])  # fmt: skip
def test_what_joblib_never_writes_is_refused(tmp_path: Path, body: bytes, reason: str) -> None:
    path = tmp_path / "odd.pkl"
    path.write_bytes(b"\x80\x04" + body + b".")
    with pytest.raises(PickleScanError, match=reason):
        scan_pickle(path)
    with pytest.raises(ModelError, match="cannot be scanned"):
        check_model(path, ModelFormat.PICKLE, trust_model=False)


def test_scanners_under_a_3gb_address_space(tmp_path: Path) -> None:
    """Hostile pickles and flatbuffers claiming huge sizes end in mlfit's own errors under a
    3 GB address-space limit (RLIMIT_AS), never a MemoryError traceback or a crash."""
    import resource
    import subprocess
    import sys

    sentinel = tmp_path / "PWNED"
    cases = {
        "mismatch": _size_mismatch_joblib(tmp_path / "m.joblib", sentinel),
        "framed": _framed_joblib(tmp_path / "f.joblib", sentinel),
        "petabyte": tmp_path / "p.pkl",
        "frame_claim": tmp_path / "fc.pkl",
        "tflite": tmp_path / "t.tflite",
    }
    cases["petabyte"].write_bytes(b"\x80\x05\x96" + (2**56).to_bytes(8, "little") + b"xx.")
    cases["frame_claim"].write_bytes(b"\x80\x04\x95" + (2**40).to_bytes(8, "little") + b"N.")
    # a TFLite root table whose operator_codes vector claims 2^31 entries
    cases["tflite"].write_bytes(b"\x10\x00\x00\x00TFL3" + b"\x08\x00\x08\x00\x04\x00\x08\x00"
                                + b"\x08\x00\x00\x00\x04\x00\x00\x00" + b"\xff\xff\xff\x7f" + b"\x00" * 16)
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from mlfit.safety.pickle_scan import PickleScanError, scan_pickle\n"
        "from mlfit.safety.tflite_scan import TFLiteScanError, scan_tflite\n"
        f"for name, path in {({k: str(v) for k, v in cases.items()})!r}.items():\n"
        "    try:\n"
        "        found = scan_tflite(Path(path)).refused if name == 'tflite' else scan_pickle(Path(path)).globals\n"
        "        print('scanned', name, found)\n"
        "    except (PickleScanError, TFLiteScanError) as exc:\n"
        "        print('refused', name, exc)\n"
    )

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3))

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, preexec_fn=cap)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == len(cases), proc.stdout
    assert any(line.startswith("scanned mismatch") and "system" in line for line in lines)
    assert not sentinel.exists()


def _miscount_pickle(path: Path, sentinel: Path) -> Path:
    """Issue 18 item 14's red-team file: a joblib model whose unpickling runs ``os.system``
    while a scanner that pops one item too many after FROZENSET and after ADDITEMS reads
    ``collections.OrderedDict`` at the STACK_GLOBAL.

    The unpickler's stack: collections, OrderedDict, os, system; ``MARK FROZENSET POP`` and
    ``EMPTY_SET MARK ADDITEMS POP`` each leave it as it was; STACK_GLOBAL takes os.system,
    which REDUCE calls. The pickle is appended to a real joblib dump's opcodes."""
    import joblib

    def text(value: str) -> bytes:
        return b"\x8c" + bytes([len(value)]) + value.encode()

    command = f"touch {sentinel}".encode()
    payload = (text("collections") + text("OrderedDict") + text("os") + text("system")
               + b"(\x910" + b"\x8f(\x900" + b"\x93" + b"\x8c" + bytes([len(command)]) + command + b"\x85R0")
    joblib.dump({"scale": 2.5}, path, protocol=4)
    data = path.read_bytes()
    assert data.startswith(b"\x80\x04\x95")  # PROTO 4, FRAME: the payload goes right after the frame
    body = data[11:]
    path.write_bytes(b"\x80\x04" + payload + body)
    return path


def test_the_frozenset_additems_miscount_names_os_system(tmp_path: Path) -> None:
    """The refusal names the call that would really run (os.system), never the decoy; the
    tracing unpickler (the real find_class, stubbed imports) agrees name for name."""
    from _pickle_fuzz import trace

    sentinel = tmp_path / "PWNED"
    path = _miscount_pickle(tmp_path / "model.joblib", sentinel)
    scan = scan_pickle(path)
    looked_up, done = trace(path.read_bytes())
    assert done and looked_up == ["os.system"]
    assert scan.globals == looked_up
    with pytest.raises(ModelError) as caught:
        check_model(path, ModelFormat.PICKLE, trust_model=False)
    assert "os.system" in caught.value.message and "OrderedDict" not in caught.value.message
    assert not sentinel.exists()


@pytest.mark.parametrize("build", [_size_mismatch_joblib, _miscount_pickle], ids=["size-mismatch", "miscount"])
def test_the_attacks_are_real(tmp_path: Path, build: Callable[[Path, Path], Path]) -> None:
    """joblib itself runs the hidden call (and returns the model as if nothing happened): the
    scan must neither skip those bytes nor misread the stack."""
    import subprocess
    import sys

    sentinel = tmp_path / "PWNED"
    path = build(tmp_path / "model.joblib", sentinel)
    proc = subprocess.run([sys.executable, "-c", f"import joblib; print(joblib.load({str(path)!r})['scale'])"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "2.5" in proc.stdout, proc.stderr
    assert sentinel.exists()


@pytest.mark.parametrize(("proto", "expected"), [(2, "subprocess.getoutput"), (4, "commands.getoutput")])
def test_python2_names_are_renamed_for_stack_global_as_find_class_does(tmp_path: Path, proto: int,
                                                                       expected: str) -> None:
    """find_class renames Python 2 names while the protocol in force is below 3, for GLOBAL and
    STACK_GLOBAL alike; PROTO may even change it midway."""
    from _pickle_fuzz import trace

    stack_global = b"\x8c\x08commands\x8c\x09getoutput\x93"
    data = b"\x80" + bytes([proto]) + stack_global + b"0" + b"c__builtin__\neval\n."
    path = tmp_path / "p.pkl"
    path.write_bytes(data)
    want = [expected, "builtins.eval" if proto < 3 else "__builtin__.eval"]
    assert scan_pickle(path).globals == want == trace(data)[0]
    switched = b"\x80\x04" + stack_global + b"0\x80\x02" + stack_global + b"."
    path.write_bytes(switched)
    assert scan_pickle(path).globals == ["commands.getoutput", "subprocess.getoutput"] == trace(switched)[0]


@pytest.mark.parametrize(("body", "reason"), [
    (b"\x80\x04K\x01K\x02\x93N.", "not plain strings"),  # a name that is not a str
    (b"\x80\x02\x82\x01N.", "extension registry"),  # EXT1: the name is not in the file
    (b"\x80\x04Pid\n.", "persistent id"),
    (b"\x80\x05\x97.", "out-of-band buffer"),
    (b"\x80\x04\x8c\x02os\x8c\x06system(\x93.", "underflow"),  # STACK_GLOBAL reaching below a MARK
    (b"\x80\x04\x8c\x02osq\x00(\x94.", "underflow"),  # MEMOIZE with nothing above the MARK
    (b"\x80\x04\x8f\x90N.", "MARK"),  # ADDITEMS with no MARK
    (b"\x80\x02U\x02\xe9\xe9N.", "not ASCII"),  # the loader decodes Python 2 strings as ASCII
    (b"\x80\x02cos\nsy\\x73tem\n.", ""),  # listed as the loader reads it: the raw line, no escapes
])
def test_what_cannot_be_followed_is_refused_as_unscannable(tmp_path: Path, body: bytes, reason: str) -> None:
    path = tmp_path / "p.pkl"
    path.write_bytes(body)
    if not reason:
        assert scan_pickle(path).globals == ["os.sy\\x73tem"]
        return
    with pytest.raises(PickleScanError, match=reason):
        scan_pickle(path)
    with pytest.raises(ModelError, match="cannot be scanned"):
        check_model(path, ModelFormat.PICKLE, trust_model=False)
