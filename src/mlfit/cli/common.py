"""Options shared by several commands, and the helpers that turn them into API values."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

Dims = Annotated[list[str] | None, typer.Option("--dim", help="Fill a symbolic dim everywhere: NAME=VALUE "
                                                "(repeatable), e.g. --dim batch=1.", rich_help_panel="Inputs")]
Shapes = Annotated[list[str] | None, typer.Option("--shape", help="Set an input's whole shape: "
                                                  "INPUT=1x3x224x224 (repeatable).", rich_help_panel="Inputs")]
Values = Annotated[list[str] | None, typer.Option("--value", help="Give an input a constant value: "
                                                  "INPUT=16000 (repeatable).", rich_help_panel="Inputs")]
Ranges = Annotated[list[str] | None, typer.Option("--range", help="Bound random values: INPUT=LOW:HIGH "
                                                  "(repeatable); keep embedding indices in range.",
                                                  rich_help_panel="Inputs")]
Data = Annotated[list[str] | None, typer.Option("--data", help="Real samples: FILE.npz (arrays by input name) "
                                                "or INPUT=FILE.npy; cycled through.", rich_help_panel="Inputs")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for generated inputs.", rich_help_panel="Inputs")]
Batch = Annotated[int | None, typer.Option("--batch", min=1, help="Fill every input's free leading (batch) dim "
                                           "with N (default: the targets' batch_size; 1 without a target).",
                                           rich_help_panel="Inputs")]


def input_spec(dim: list[str] | None, shape: list[str] | None, value: list[str] | None,
               range_: list[str] | None, data: list[str] | None, seed: int) -> Any:
    from mlfit.inputspec import parse_input_flags

    return parse_input_flags(dims=dim, shapes=shape, values=value, ranges=range_, data=data, seed=seed)


# In a log (not a terminal) only the phases that can take long get a line: the runtime's import (17 s
# for TensorFlow) and the timed loop. A failure or timeout in any phase names it in its error.
LOGGED_PHASES = ("import", "measure")


class Progress:
    """Phase progress on stderr: a spinner on a terminal, a line per long phase in CI logs.
    ``label`` is plain text (escaped here for rich's markup). Quiet, it shows nothing and imports
    no rich: the check hands the worker its request sooner (issue 22)."""

    def __init__(self, label: str, quiet: bool = False) -> None:
        self.console: Any = None
        self.label = label
        self.quiet = quiet
        self.status: Any = None
        self.interactive = False
        if not quiet:
            from rich.console import Console
            from rich.markup import escape

            self.console = Console(stderr=True)
            self.interactive = self.console.is_terminal
            self.label = escape(label)

    def __enter__(self) -> Progress:
        if not self.quiet and self.interactive:
            self.status = self.console.status(f"{self.label}: starting")
            self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.__exit__(None, None, None)

    def __call__(self, event: dict[str, object]) -> None:
        if self.quiet:
            return
        from mlfit.measure.protocol import Phase

        kind = event.get("event")
        if kind == "phase":
            text = f"{self.label}: {Phase(str(event['phase'])).doing}"
        elif kind == "progress":
            text = f"{self.label}: measuring latency ({event.get('n')} samples, {float(event.get('elapsed', 0)):.1f} s)"  # type: ignore[arg-type]
        elif kind == "configuration":  # one worker run per deployment configuration (mlfit.run.configs)
            text = f"{self.label}: configuration {event.get('text')}"
        else:
            return
        if self.status is not None:
            self.status.update(text)
        elif kind == "configuration" or (kind == "phase" and event["phase"] in LOGGED_PHASES):
            sys.stderr.write(text + "\n")
            sys.stderr.flush()


def parse_memory_limit(text: str | None, targets: Sequence[Any]) -> int | None:
    """``--memory-limit``: a size ('2 GiB') or 'target' (the smallest target's available RAM)."""
    from mlfit.catalog.units import parse_size
    from mlfit.errors import ConfigError

    if text is None:
        return None
    if text.strip().lower() == "target":
        if not targets:
            raise ConfigError("--memory-limit target: no --target to take the memory from",
                              "give a size such as --memory-limit 2GiB")
        return int(min(t.hardware.memory.available for t in targets))
    try:
        return int(parse_size(text))
    except ValueError as exc:
        raise ConfigError(f"--memory-limit '{text}': {exc}", "for example --memory-limit 2GiB or "
                          "--memory-limit target") from None
