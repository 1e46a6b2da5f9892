"""Property-based fuzzing of the parent-side parsers (issue 6, case 11 and "Proof").

Whatever the input, each parser returns a valid object or raises mlfit's own error with a
location; never another exception, never a hang. Example counts are bounded so the whole
module runs in seconds; ``derandomize`` keeps CI runs reproducible.
"""

from __future__ import annotations

import json
import os
import re
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _hostile import external_model
from mlfit.catalog import units
from mlfit.catalog.loader import _validate
from mlfit.catalog.schema import Hardware, Profile
from mlfit.catalog.yamlload import load_yaml, load_yaml_text
from mlfit.errors import ConfigError, MlfitError, ModelError
from mlfit.formats import ModelFormat, onnx_problem, sniff
from mlfit.formats.onnx.safety import validate_onnx
from mlfit.inputspec import InputSpec, parse_input_flags

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LOCATION = re.compile(r"fuzz\.yaml:\d+:\d+")

# --- profile loader ---------------------------------------------------------------------------

BASE_PROFILE: dict[str, Any] = {
    "schema_version": 1, "id": "fuzz", "hardware": "rpi4-4gb", "runtimes": ["onnxruntime"], "threads": 2,
    "batch_size": 1, "budgets": {"latency": {"p95": "80 ms"}, "cold_start": "5 s", "peak_memory": "60%",
                                 "model_size": "100 MB", "throughput": "30/s"},
    "opset": {"min": 7, "max": 21}, "dtypes": ["float32"],
}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["50 mss", "1e99 B", "-1 GiB", "0 MiB", "60%", "150%", "nan ms", "p95", "1.5.3 s", "∞"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def _load_profile(text: str) -> Profile:
    return _validate(load_yaml_text(text, "fuzz.yaml"), Profile)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            out.extend(_paths(value, (*prefix, key)))
    return out


@FUZZ
@given(st.text(max_size=400))
def test_profile_loader_on_any_text(text: str) -> None:
    try:
        profile = _load_profile(text)
    except ConfigError as exc:
        assert LOCATION.search(exc.message), exc.message
    else:
        assert isinstance(profile, Profile)


@FUZZ
@given(st.data())
def test_profile_loader_on_mutated_profiles(data: st.DataObject) -> None:
    """Replace one value of a valid profile anywhere (or add a key): a Profile or a located error."""
    document = yaml.safe_load(yaml.safe_dump(BASE_PROFILE))
    path = data.draw(st.sampled_from(_paths(document)[1:]))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()):
        parent[path[-1]] = data.draw(values)
    else:
        parent[data.draw(st.text(min_size=1, max_size=10))] = data.draw(values)
    text = yaml.safe_dump(document, allow_unicode=True)
    try:
        profile = _load_profile(text)
    except ConfigError as exc:
        assert LOCATION.search(exc.message), exc.message
    else:
        assert profile.id == "fuzz"


@settings(FUZZ, max_examples=30)
@given(st.integers(min_value=1, max_value=4000), st.sampled_from(["[", "{a: ", "- "]))
def test_deep_nesting_is_a_located_error(depth: int, opener: str) -> None:
    try:
        _load_profile(opener * depth)
    except ConfigError as exc:
        assert LOCATION.search(exc.message), exc.message
        if depth > 40:
            assert "nested more than" in exc.message


def test_hardware_loader_on_a_file_of_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "fuzz.yaml"

    @FUZZ
    @given(st.binary(max_size=300))
    def check(data: bytes) -> None:
        path.write_bytes(data)
        try:
            _validate(load_yaml(path), Hardware)
        except ConfigError as exc:
            assert LOCATION.search(exc.message), exc.message

    check()


@FUZZ
@given(st.text(max_size=40),
       st.sampled_from([units.parse_duration, units.parse_size, units.parse_rate, units.parse_bandwidth,
                        units.parse_flops, units.parse_frequency]))
def test_unit_parsers(text: str, parse: Any) -> None:
    try:
        value = parse(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert 0 < value <= 1e18


# --- input-spec parser ------------------------------------------------------------------------

flag_text = st.text(alphabet=string.printable + "µ∞é", max_size=30)


@FUZZ
@given(st.lists(flag_text, max_size=3), st.lists(flag_text, max_size=3), st.lists(flag_text, max_size=3),
       st.lists(flag_text, max_size=3), st.lists(flag_text, max_size=2))
def test_input_spec_parser(dims: list[str], shapes: list[str], values_: list[str], ranges: list[str],
                           data: list[str]) -> None:
    try:
        spec = parse_input_flags(dims=dims, shapes=shapes, values=values_, ranges=ranges, data=data)
    except ConfigError as exc:
        assert re.match(r"--(dim|shape|value|range|data)\b", exc.message), exc.message  # names the flag
    else:
        assert isinstance(spec, InputSpec)
        assert all(v > 0 for v in spec.dims.values())
        assert all(low < high for low, high in spec.ranges.values())


@FUZZ
@given(st.from_regex(r"[a-z_]{1,8}=[0-9x, ]{0,12}", fullmatch=True))
def test_shape_flag_near_misses(text: str) -> None:
    try:
        spec = parse_input_flags(shapes=[text])
    except ConfigError as exc:
        assert exc.message.startswith("--shape")
    else:
        assert all(d > 0 for shape in spec.shapes.values() for d in shape)


# --- model files: magic sniffing, ONNX structure, external data -------------------------------


@FUZZ
@given(st.binary(max_size=2000))
def test_onnx_structure_check_on_any_bytes(data: bytes) -> None:
    problem = onnx_problem(data)
    assert problem is None or isinstance(problem, str)


def test_sniff_on_random_files(tmp_path: Path) -> None:
    @FUZZ
    @given(st.binary(max_size=400),
           st.sampled_from([".onnx", ".tflite", ".h5", ".keras", ".pkl", ".skops", ""]),
           st.sampled_from([b"", b"PK\x03\x04", b"\x89HDF\r\n\x1a\n", b"\x80\x04", b"\x08\x07", b"1234TFL3"]))
    def check(data: bytes, suffix: str, magic: bytes) -> None:
        path = tmp_path / f"model{suffix}"
        path.write_bytes(magic + data)
        try:
            found = sniff(path)
        except ModelError as exc:
            assert ("not a valid" in exc.message or "cannot read" in exc.message
                    or "parses as two formats" in exc.message or "zip archive" in exc.message)
        else:
            assert isinstance(found, ModelFormat)

    check()


def test_onnx_validation_on_random_files(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"

    @FUZZ
    @given(st.binary(max_size=600))
    def check(data: bytes) -> None:
        path.write_bytes(data)
        try:
            validate_onnx(path)
        except ModelError as exc:
            assert exc.message

    check()


def test_external_data_locations(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "w.bin").write_bytes(b"\0" * 64)
    (tmp_path / "outside.bin").write_bytes(b"\0" * 64)
    pieces = st.sampled_from(["..", ".", "sub", "w.bin", "outside.bin", "", "/", "\\", "~", "C:", "%2e%2e",
                              "\x00", "models", "//", "sub/../sub"])

    @FUZZ
    @given(st.lists(pieces, min_size=1, max_size=5), st.sampled_from(["/", "\\"]),
           st.one_of(st.none(), st.integers(min_value=-5, max_value=100)))
    def check(parts: list[str], sep: str, length: int | None) -> None:
        location = sep.join(parts)
        model = external_model(folder, location, elements=16, length=length)
        try:
            safety = validate_onnx(model)
        except MlfitError as exc:
            assert isinstance(exc, ModelError) and exc.message
        else:
            # Accepted: the data really is inside the model's folder and large enough.
            real = (folder / location).resolve()
            assert folder.resolve() in real.parents
            assert real.stat().st_size >= (length if length is not None else 64)
            assert safety.external_bytes == (length if length is not None else 64)

    check()


@pytest.mark.parametrize("location", ["sub/w.bin", "./sub/w.bin"])
def test_external_data_inside_is_accepted(tmp_path: Path, location: str) -> None:
    """The control for the property above: valid locations pass."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "w.bin").write_bytes(b"\0" * 64)
    assert validate_onnx(external_model(tmp_path, location)).external_files == (location,)


# --- pickle scan (src/mlfit/safety): never unpickles, never another exception --------------


def test_pickle_scan_on_random_and_mutated_pickles(tmp_path: Path) -> None:
    import gzip
    import pickle

    from mlfit.formats.registry import check_model
    from mlfit.safety.pickle_scan import PickleScan, PickleScanError, scan_pickle

    path = tmp_path / "model.pkl"
    seeds = [pickle.dumps({"w": [1.0, 2.0], "name": "m"}, protocol=p) for p in (2, 4, 5)]

    @FUZZ
    @given(st.sampled_from(seeds), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
           st.binary(max_size=64), st.booleans())
    def check(seed: bytes, flips: list[tuple[int, int]], tail: bytes, compress: bool) -> None:
        data = bytearray(seed)
        for index, value in flips:
            data[index % len(data)] = value
        payload = bytes(data) + tail
        path.write_bytes(gzip.compress(payload) if compress else payload)
        try:
            scan = scan_pickle(path)
        except PickleScanError:
            pass
        else:
            assert isinstance(scan, PickleScan)
        with pytest.raises(ModelError):  # without --trust-model, a pickle is always refused
            check_model(path, ModelFormat.PICKLE, trust_model=False)

    check()


def test_keras_and_savedmodel_scans_on_random_content(tmp_path: Path) -> None:
    """The other static scans: a .keras zip with random config text, and a saved_model.pb of
    random protobuf-ish bytes. Each passes or is refused with mlfit's ModelError."""
    import json
    import zipfile

    from mlfit.formats.registry import check_model

    keras_path = tmp_path / "model.keras"
    folder = tmp_path / "saved"
    folder.mkdir()
    config_text = st.one_of(st.text(max_size=200), st.integers(1, 100_000).map(lambda n: "[" * n), st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12)),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
            st.sampled_from(["class_name", "config", "module", "layers", "name", "safe_mode", "function"]),
            inner, max_size=4), max_leaves=20).map(json.dumps))

    @FUZZ
    @given(config_text, st.binary(max_size=300))
    def check(config: str, pb: bytes) -> None:
        with zipfile.ZipFile(keras_path, "w") as archive:
            archive.writestr("config.json", config)
            archive.writestr("metadata.json", "{}")
        (folder / "saved_model.pb").write_bytes(pb)
        for path, fmt in ((keras_path, ModelFormat.KERAS), (folder, ModelFormat.SAVEDMODEL)):
            try:
                check_model(path, fmt, trust_model=False)
            except ModelError as exc:
                assert exc.message

    check()


# --- bounded readers (src/mlfit/safeio.py) and the ONNX wire walk (issue 11) ---------------


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner, max_size=5),
    max_leaves=30).map(lambda v: json.dumps(v).encode())), st.integers(1, 60))
def test_bounded_json_on_any_bytes(data: bytes, max_values: int) -> None:
    """Any bytes: a value, or mlfit's ModelError; never more values than the bound."""
    from mlfit.safeio import loads_bounded

    try:
        value = loads_bounded(data, "fuzz.json", "fuzz", max_values=max_values)
    except ModelError as exc:
        assert "fuzz.json" in exc.message
    else:
        assert len(json.dumps(value)) >= 1


def test_bounded_zip_reader_on_random_archives(tmp_path: Path) -> None:
    """Random members, sizes, compressions and bit flips: config bytes within the cap, or ModelError."""
    import io
    import zipfile

    from mlfit import safeio

    path = tmp_path / "model.keras"

    @FUZZ
    @given(st.binary(max_size=400), st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                                                     zipfile.ZIP_LZMA]),
           st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=4), st.integers(1, 500))
    def check(payload: bytes, compression: int, flips: list[tuple[int, int]], cap: int) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
            archive.writestr("config.json", payload)
            archive.writestr("metadata.json", "{}")
        data = bytearray(buffer.getvalue())
        for index, value in flips:
            data[index % len(data)] = value
        path.write_bytes(bytes(data))
        os.environ["MLFIT_MAX_ZIP_JSON"] = str(cap)
        try:
            with open(path, "rb") as fh, safeio.open_zip(fh, path) as archive:
                read = safeio.read_zip_member(archive, "config.json", path)
        except (ModelError, KeyError):
            pass
        else:
            assert len(read) <= cap
        finally:
            del os.environ["MLFIT_MAX_ZIP_JSON"]

    check()


def test_onnx_walk_on_mutated_models(tmp_path: Path) -> None:
    """A real model with bytes flipped, cut or appended: a census, or mlfit's refusal; the walk
    never raises anything else and never reads outside the file."""
    from mlfit.formats.onnx.safety import Census, OnnxWalkError, walk_model
    from mlfit.zoo import builders

    seed = builders.tiny_add().SerializeToString()
    external = external_model(tmp_path / "ext", "w.bin").read_bytes()
    (tmp_path / "ext" / "w.bin").write_bytes(b"\0" * 64)
    path = tmp_path / "ext" / "model.onnx"

    @FUZZ
    @given(st.sampled_from([seed, external]), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)),
                                                      max_size=6),
           st.integers(0, 400), st.binary(max_size=40))
    def check(base: bytes, flips: list[tuple[int, int]], cut: int, tail: bytes) -> None:
        data = bytearray(base)
        for index, value in flips:
            data[index % len(data)] = value
        path.write_bytes(bytes(data[: max(1, len(data) - cut % 20)]) + tail)
        try:
            census = walk_model(path)
        except (OnnxWalkError, ModelError):
            pass
        else:
            assert isinstance(census, Census) and census.nodes >= 0

    check()


@FUZZ
@given(st.text(max_size=80))
def test_report_text_cannot_break_a_line_a_cell_or_markup(text: str) -> None:
    """Any name: printable() leaves no control/escape/bidi character; a Markdown cell has no
    unescaped pipe, backtick or '<', and stays on one line."""
    import unicodedata

    from mlfit.errors import printable
    from mlfit.report.markdown import cell

    shown = printable(text)
    assert "\n" not in shown and "\r" not in shown and "\x1b" not in shown
    assert not any(unicodedata.category(ch) == "Cc" for ch in shown)
    rendered = cell(text)
    assert "\n" not in rendered
    unescaped = re.sub(r"\\.", "", rendered)  # drop every backslash escape
    assert not set(unescaped) & set("|`<[]*_&")


def test_pickle_scan_names_exactly_what_the_unpickler_looks_up(tmp_path: Path) -> None:
    """Issue 18 item 14: well-formed opcode programs (protocols 0-5, MARK fences, memo, frames,
    Python 2 names, PROTO midway) against a tracing unpickler (the real ``find_class`` with
    stubbed imports). When the scan accepts a program, its globals are the tracer's lookups,
    in order; refused or not, one list is always a prefix of the other (both read in stream
    order), so a refusal never names a decoy in place of the call that would run."""
    from _pickle_fuzz import program, trace
    from mlfit.safety.pickle_scan import PickleScanError, scan_pickle

    path = tmp_path / "fuzz.pkl"
    seen = {"equal": 0, "refused": 0}

    @settings(max_examples=400, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.integers(0, 63), st.integers(0, 2**20)), min_size=8, max_size=60),
           st.integers(0, 5), st.booleans())
    def check(choices: list[tuple[int, int]], proto: int, framed: bool) -> None:
        data = program(choices, proto, framed)
        path.write_bytes(data)
        looked_up, done = trace(data)
        try:
            names = scan_pickle(path).globals
        except PickleScanError as exc:
            seen["refused"] += 1
            names = exc.globals_seen
        else:
            if done:
                assert names == looked_up, data
                seen["equal"] += bool(names)
            else:
                assert names[: len(looked_up)] == looked_up, data
        shortest = min(len(names), len(looked_up))
        assert names[:shortest] == looked_up[:shortest], data

    check()
    assert seen["equal"] >= 100, seen  # most programs load to their end and name globals
