"""Hostile and mistaken YAML (issue 6, case 9): each rejected quickly with file:line:column,
exit 2, and nothing measured (no report written, no worker started)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from conftest import FAST, assert_no_traceback, run_cli
from mlfit.catalog.loader import resolve_target
from mlfit.errors import ConfigError

PROFILE = """\
schema_version: 1
id: custom
hardware: {hardware}
runtimes: [onnxruntime]
threads: 2
budgets:
  latency: {{p95: 80 ms}}
  peak_memory: 512 MiB
"""

HARDWARE = """\
schema_version: 1
id: board
name: A board
cpu:
  arch: aarch64
  model: Cortex-A72
  cores: 4
  frequency: 1.5 GHz
  peak_fp32: 48 GFLOPS
  source: datasheet
memory:
  ram: 4 GiB
  os_reserved: 350 MiB
  bandwidth: 4.5 GB/s
  source: datasheet
storage:
  size: 32 GB
  source: datasheet
"""

BOMB = """\
schema_version: 1
id: bomb
hardware: rpi4-4gb
runtimes: [onnxruntime]
a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
"""


BASE = PROFILE.format(hardware="rpi4-4gb")


# (case id, profile text, hardware text or None, expected line:column, expected words)
CASES = [
    ("typo-memroy", PROFILE.format(hardware="board.yaml"), HARDWARE.replace("memory:", "memroy:"),
     "board.yaml:11:1", "unknown key 'memroy' (did you mean 'memory'?)"),
    ("unknown-key", BASE + "colour: blue\n", None, ":9:1", "unknown key 'colour'"),
    ("duplicate-key", BASE.replace("threads: 2\n", "threads: 2\nthreads: 4\n"),
     None, ":6:1", "duplicate key 'threads'"),
    ("wrong-unit", BASE.replace("80 ms", "50 mss"), None, ":7:",
     "unknown duration unit 'mss'"),
    ("bool-for-number", BASE.replace("threads: 2", "threads: yes"), None, ":5:",
     "expected a whole number, got a boolean"),
    ("bool-for-size", BASE.replace("512 MiB", "true"), None, ":8:",
     "expected a size"),
    ("negative-size", BASE.replace("512 MiB", "-512 MiB"), None, ":8:",
     "expected a size such as '512 MiB', got '-512 MiB'"),
    ("zero-size", BASE.replace("512 MiB", "0 MiB"), None, ":8:",
     "must be greater than zero"),
    ("1e99", BASE.replace("512 MiB", "1e99 B"), None, ":8:", "out of range"),
    ("1e99-threads", BASE.replace("threads: 2", "threads: 1e99"), None, ":5:",
     "threads"),
    ("python-tag", BASE.replace("threads: 2", "threads: !!python/object:os.system 1"),
     None, ":5:", "tag 'tag:yaml.org,2002:python/object:os.system' is not allowed"),
    ("python-apply", "!!python/object/apply:os.system ['touch pwned']\n", None, ":1:1", "is not allowed"),
    ("alias-bomb", BOMB, None, ":", "alias bomb"),
    ("not-a-mapping", "- just\n- a list\n", None, ":1:1", "expected a mapping"),
    ("two-documents", BASE + "---\nid: again\n", None, ":1:1",
     "expected exactly one YAML document"),
    ("bad-yaml", "id: [unclosed\n", None, ":2:1", "invalid YAML"),
    ("missing-hardware-file", PROFILE.format(hardware="nowhere/board.yaml"), None, "",
     "hardware file"),
]


def _write_case(tmp_path: Path, profile: str, hardware: str | None) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(profile)
    if hardware is not None:
        (tmp_path / "board.yaml").write_text(hardware)
    return path


@pytest.mark.parametrize(("case", "profile", "hardware", "where", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_yaml_is_a_located_config_error(tmp_path: Path, case: str, profile: str, hardware: str | None,
                                            where: str, words: str) -> None:
    path = _write_case(tmp_path, profile, hardware)
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        resolve_target(str(path))
    elapsed = time.monotonic() - start
    message = info.value.one_line()
    assert words in message, message
    assert where in message, message
    if case != "missing-hardware-file":
        assert re.search(r"\.yaml:\d+:\d+: ", message), message  # file:line:column
    assert elapsed < 5  # generous: the point is "not minutes", not a benchmark


@pytest.mark.parametrize("case", ["typo-memroy", "duplicate-key", "python-tag", "alias-bomb"])
def test_bad_yaml_through_the_cli_exits_2_and_measures_nothing(tmp_path: Path, tiny_model: Path,
                                                               case: str) -> None:
    _, profile, hardware, where, words = next(c for c in CASES if c[0] == case)
    path = _write_case(tmp_path, profile, hardware)
    out = tmp_path / "report.json"
    run = run_cli("check", tiny_model, "--target", path, "--json", out, *FAST)
    assert_no_traceback(run)
    assert run.code == 2, run.output
    assert words in run.stderr and where in run.stderr
    assert not out.exists()  # nothing measured, nothing reported
    assert (tmp_path / "pwned").exists() is False


def test_fifty_megabyte_profile_is_refused_before_parsing(tmp_path: Path, tiny_model: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("w") as fh:
        fh.write(BASE)
        fh.write("# padding\n" * (5 * 2**20))
    assert path.stat().st_size > 50 * 10**6
    run = run_cli("check", tiny_model, "--target", path, *FAST)
    assert_no_traceback(run)
    assert run.code == 2
    assert re.search(r"huge\.yaml:1:1: file is \d+ bytes, over the \d+-byte limit", run.stderr), run.stderr


def test_a_valid_profile_loads(tmp_path: Path) -> None:
    """The control: the corpus above fails for its mutation, not for the base documents."""
    path = _write_case(tmp_path, PROFILE.format(hardware="board.yaml"), HARDWARE)
    target = resolve_target(str(path))
    assert target.hardware.id == "board" and target.profile.threads == 2
