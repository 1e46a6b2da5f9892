"""docs/reference.md is generated from the catalog schema and kept current; `targets show` prints
YAML that `targets validate` accepts and that resolves to the same target (every built-in one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO, run_cli
from mlfit.catalog.describe import quantity_text, render_reference
from mlfit.catalog.loader import builtin_names, load_hardware_file, resolve_target
from mlfit.catalog.units import parse_bandwidth, parse_duration, parse_rate, parse_size

REGENERATE = "regenerate it: PYTHONPATH=src python -m mlfit.catalog.describe > docs/reference.md"


def test_reference_page_is_up_to_date() -> None:
    page = REPO / "docs" / "reference.md"
    assert page.is_file(), REGENERATE
    assert page.read_text() == render_reference(), f"docs/reference.md is out of date; {REGENERATE}"


def test_reference_names_every_field_with_its_unit() -> None:
    text = render_reference()
    for row in ("| `batch_size` | whole number | `1` |", "| `latency` | map `p50` / `p90` / `p95` / `p99` → "
                "duration (`80 ms`)", "| `bandwidth` | bandwidth (`25.6 GB/s`) | **required** |",
                "| `peak_memory` | size (`1 GiB`) or share of available RAM (`60%`)"):
        assert row in text


@pytest.mark.parametrize(("value", "parser", "text"), [
    (0.08, parse_duration, "80 ms"), (5.0, parse_duration, "5 s"), (2**30, parse_size, "1 GiB"),
    (100e6, parse_size, "100 MB"), (4.5e9, parse_bandwidth, "4.5 GB/s"), (30.0, parse_rate, "30/s"),
    (350 * 2**20, parse_size, "350 MiB")])
def test_quantities_are_written_as_people_write_them(value: float, parser, text: str) -> None:
    assert quantity_text(value, parser) == text and parser(text) == pytest.approx(value)


@pytest.mark.parametrize("name", builtin_names("profiles"))
def test_targets_show_round_trips_through_validate(name: str, tmp_path: Path) -> None:
    shown = run_cli("targets", "show", name)
    assert shown.code == 0, shown.output
    assert "0.08" not in shown.stdout  # no raw floats where a unit belongs
    profile_file = tmp_path / f"{name}.yaml"
    profile_file.write_text(shown.stdout)
    hardware = run_cli("targets", "show", name, "--hardware")
    hardware_file = tmp_path / f"{name}-hw.yaml"
    hardware_file.write_text(hardware.stdout)
    valid = run_cli("targets", "validate", profile_file, hardware_file)
    assert valid.code == 0, valid.output
    original, again = resolve_target(name), resolve_target(str(profile_file))
    assert _rounded(again.profile.model_dump(mode="json")) == _rounded(original.profile.model_dump(mode="json"))
    assert _rounded(load_hardware_file(hardware_file).model_dump(mode="json")) == \
        _rounded(original.hardware.model_dump(mode="json"))


def _rounded(value: object) -> object:
    """Numbers to 12 significant digits: '80 ms' parses to 0.08 give or take the last bit."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
