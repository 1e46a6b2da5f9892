"""The built-in catalog loads, every number is sourced, and broken files are refused with a location."""

from pathlib import Path

import pytest

from mlfit.catalog.loader import builtin_names, builtin_targets, catalog_dir, load_profile_file, resolve_target
from mlfit.catalog.schema import Hardware
from mlfit.errors import ConfigError

REQUIRED_TARGETS = {"weak-cpu", "edge", "gpu-server"}
REQUIRED_HARDWARE = {"weak-cpu-2vcpu", "rpi4-4gb", "rpi5-8gb", "jetson-orin-nano-8gb", "t4-server", "h100-server"}


def test_builtins_resolve() -> None:
    names = {t.name for t in builtin_targets()}
    assert names >= REQUIRED_TARGETS
    assert set(builtin_names("hardware")) >= REQUIRED_HARDWARE
    assert {"l4-server"} <= set(builtin_names("hardware"))


@pytest.mark.parametrize("name", builtin_names("hardware"))
def test_every_hardware_section_has_a_source(name: str) -> None:
    from mlfit.catalog.loader import load_hardware_file

    hw: Hardware = load_hardware_file(catalog_dir("hardware") / f"{name}.yaml")
    sections = [hw.cpu, hw.memory, hw.storage, *hw.accelerators]
    for section in sections:
        assert len(section.source) > 10, f"{name}: {type(section).__name__} has no real source"


def test_gpu_targets_have_accelerators() -> None:
    target = resolve_target("gpu-server")
    assert target.hardware.accelerators[0].name == "NVIDIA T4"
    assert target.profile.execution_provider == "CUDAExecutionProvider"


def _profile(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(body)
    return path


GOOD = """\
schema_version: 1
id: mine
hardware: rpi4-4gb
runtimes: [onnxruntime]
budgets:
  latency: {p95: 80 ms}
  peak_memory: 60%
"""


def test_user_profile_with_builtin_hardware(tmp_path: Path) -> None:
    target = resolve_target(str(_profile(tmp_path, GOOD)))
    assert target.hardware.id == "rpi4-4gb"
    assert target.profile.budgets.peak_memory is not None
    limit = target.profile.budgets.peak_memory.limit_bytes(target.hardware)
    assert limit == pytest.approx(0.6 * target.hardware.memory.available)


def test_user_profile_with_user_hardware(tmp_path: Path) -> None:
    hw = (catalog_dir("hardware") / "rpi4-4gb.yaml").read_text().replace("id: rpi4-4gb", "id: my-board")
    (tmp_path / "board.yaml").write_text(hw)
    target = resolve_target(str(_profile(tmp_path, GOOD.replace("rpi4-4gb", "board.yaml"))))
    assert target.hardware.id == "my-board"


@pytest.mark.parametrize(
    ("body", "location", "fragment"),
    [
        (GOOD.replace("peak_memory", "peak_memroy"), ":7:3", "did you mean 'peak_memory'"),
        (GOOD + "colour: red\n", ":8:1", "unknown key 'colour'"),
        (GOOD + "runtimes: [tflite]\n", ":8:1", "duplicate key 'runtimes'"),
        (GOOD.replace("80 ms", "80 mss"), ":6:18", "unknown duration unit 'mss'"),
        (GOOD.replace("80 ms", "true"), ":6:18", "duration"),
        (GOOD.replace("60%", "-1 GiB"), ":7:16", "size"),
        (GOOD.replace("60%", "0 GiB"), ":7:16", "greater than zero"),
        (GOOD.replace("80 ms", "1e99 s"), ":6:18", "out of range"),
        (GOOD.replace("id: mine", "id: !!python/object:os.system mine"), ":2:5", "tag"),
        (GOOD + "threads: yes\n", ":8:10", "threads"),
        ("a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
         "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e]\n",
         ":", "alias bomb"),
        ("id: [unclosed\n", ":", "invalid YAML"),
    ],
)
def test_rejections_have_file_line_column(tmp_path: Path, body: str, location: str, fragment: str) -> None:
    path = _profile(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_profile_file(path)
    text = info.value.one_line()
    assert text.startswith(str(path) + location), text
    assert fragment in text


def test_missing_hardware_reference(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown hardware 'rpi9'"):
        resolve_target(str(_profile(tmp_path, GOOD.replace("rpi4-4gb", "rpi9"))))


def test_unknown_target_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_target("egde")
    assert "did you mean 'edge'" in info.value.one_line()
    assert "weak-cpu" in info.value.one_line()


def test_oversized_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (2 << 20))
    with pytest.raises(ConfigError, match="over the"):
        load_profile_file(path)


def test_listing_reads_the_shown_fields_as_the_models_do() -> None:
    """`mlfit targets` reads the built-in files without pydantic (issue 22): same rows as the models give."""
    from mlfit.catalog.builtin import builtin_rows
    from mlfit.cli.targets import _validated_rows

    rows = builtin_rows()
    assert rows is not None and {r.name for r in rows} >= REQUIRED_TARGETS
    assert rows == _validated_rows()


@pytest.mark.parametrize("profile_extra, hardware", [
    ("container: {memory: 512 MiB}\n", "rpi4-4gb"),  # the limit becomes the budget: the models decide
    ("", "host"),  # this machine
    ("budgets: {latency: {p42: 5 ms}}\n", "rpi4-4gb"),  # not a percentile: the models report it
    ("budgets: {peak_memory: lots}\n", "rpi4-4gb"),
])
def test_listing_leaves_what_it_does_not_read_to_the_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            profile_extra: str, hardware: str) -> None:
    from mlfit.catalog import builtin

    real = builtin.catalog_dir("hardware")
    (tmp_path / "hardware").mkdir()
    (tmp_path / "hardware" / "rpi4-4gb.yaml").write_text((real / "rpi4-4gb.yaml").read_text())
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "p.yaml").write_text(
        f"schema_version: 1\nid: p\nhardware: {hardware}\nruntimes: [onnxruntime]\n{profile_extra}")
    monkeypatch.setattr(builtin, "catalog_dir", lambda kind: tmp_path / kind)
    assert builtin.builtin_rows() is None
    (tmp_path / "profiles" / "p.yaml").write_text(
        "schema_version: 1\nid: p\nhardware: rpi4-4gb\nruntimes: [onnxruntime]\n")
    rows = builtin.builtin_rows()
    assert rows is not None and [(r.name, r.hardware, r.budgets) for r in rows] == [("p", "rpi4-4gb", "")]
