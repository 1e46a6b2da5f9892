"""`--help` groups options by panel and shows examples for every command, within 80 columns."""

from __future__ import annotations

import os

import pytest

from conftest import run_cli

COMMANDS = [["check"], ["profile"], ["inspect"], ["schema"], ["calibrate"], ["report"], ["compare"], ["worker"],
            ["targets", "show"], ["targets", "validate"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_has_examples_within_80_columns(command: list[str]) -> None:
    run = run_cli(*command, "--help", env={**os.environ, "COLUMNS": "80"})
    assert run.code == 0, run.output
    examples = run.stdout.split("Examples:\n", 1)
    assert len(examples) == 2, run.stdout
    assert all(line.startswith("  mlfit ") for line in examples[1].strip("\n").splitlines())
    assert max(len(line) for line in run.stdout.splitlines()) <= 80


def test_check_help_is_grouped_by_panel() -> None:
    text = run_cli("check", "--help", env={**os.environ, "COLUMNS": "80"}).stdout
    headings = [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings[:2] == ["Arguments", "Options"]
    for panel in ("Inputs", "Model", "Measurement", "Load", "Output", "Examples"):
        assert panel in headings
    inputs = text.split("\nInputs:\n", 1)[1].split("\n\n", 1)[0]
    assert "--dim" in inputs and "--batch" in inputs and "--strict" not in inputs
