"""Output formats and where they go: ``--output FORMAT=PATH`` (repeatable), ``--json PATH``.

Every destination is checked for writability before measuring; files are written atomically.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mlfit.errors import ConfigError
from mlfit.report.atomic import check_writable, write_set
from mlfit.report.interface import OutputFormat
from mlfit.report.registry import format_names, parse_format, reporter
from mlfit.result import Report


def renderer(fmt: OutputFormat) -> Callable[[Report], str | bytes]:
    """The pure render function of ``fmt`` (a lookup in :mod:`mlfit.report.registry`)."""
    return reporter(fmt).render


def refuse_overwriting_inputs(outputs: Sequence[tuple[OutputFormat, str]],
                              inputs: Sequence[str | Path | None]) -> None:
    """A report is never written over an input: the model file, anything inside a SavedModel
    folder, a --baseline, --data or profile file (the same file by path, symlink or hard link).
    ConfigError (exit 2) before anything is measured."""
    from mlfit.formats.registry import folder_format
    from mlfit.safeio import inside

    for _, out in outputs:
        if out == "-":
            continue
        target = Path(out)
        real = target.resolve()
        for given in inputs:
            if given is None or str(given) in ("", "-"):
                continue
            source = Path(given)
            if not source.exists():
                continue
            source_real = source.resolve()
            if source_real.is_dir():
                if folder_format(source_real) is not None and inside(real, source_real):
                    raise ConfigError(f"output '{out}' is inside the model folder '{given}'; refused before measuring "
                                      "(a report must never change the model)", "write the report outside the folder")
                continue
            same = real == source_real
            if not same and target.exists():
                with contextlib.suppress(OSError):
                    same = os.path.samefile(target, source)
            if same:
                raise ConfigError(f"output '{out}' is the input '{given}'; refused before measuring (the report "
                                  "would replace it)", "write the report to another path")


def parse_outputs(specs: list[str] | None, json_path: str | None,
                  inputs: Sequence[str | Path | None] = ()) -> list[tuple[OutputFormat, str]]:
    """``--output FORMAT=PATH`` and ``--json PATH``, checked for writability and against the
    command's ``inputs`` (never written over) before anything is measured."""
    outputs: list[tuple[OutputFormat, str]] = []
    for spec in specs or []:
        if "=" not in spec:
            raise ConfigError(f"--output '{spec}': expected FORMAT=PATH", f"formats: {format_names()}")
        name, path = spec.split("=", 1)
        fmt = parse_format(name, spec)
        if not path:
            raise ConfigError(f"--output '{spec}': empty path")
        outputs.append((fmt, path))
    if json_path:
        outputs.append((OutputFormat.JSON, json_path))
    seen: set[str] = set()
    for _, path in outputs:
        if path == "-":
            continue
        key = str(Path(path).resolve())
        if key in seen:
            raise ConfigError(f"--output: '{path}' is given twice", "give each format its own file")
        seen.add(key)
        check_writable(Path(path))
    if sum(1 for _, path in outputs if path == "-") > 1:
        raise ConfigError("--output: only one format can go to stdout ('-')", "write the others to files")
    refuse_overwriting_inputs(outputs, inputs)
    return outputs


def write_outputs(report: Report, outputs: list[tuple[OutputFormat, str]]) -> None:
    """Render every requested format first, then write the files as a set (every temporary file,
    then the renames): a reporter bug or a failed write leaves no mix of new and old files."""
    rendered = [(renderer(fmt)(report), path) for fmt, path in outputs]
    write_set([(Path(path), data) for data, path in rendered if path != "-"])
    for data, path in rendered:
        if path == "-":
            text = data.decode() if isinstance(data, bytes) else data
            sys.stdout.write(text)
            sys.stdout.flush()
