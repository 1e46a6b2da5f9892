"""Output formats and where they go: ``--output FORMAT=PATH`` (repeatable), ``--json PATH``.

Every destination is checked for writability before measuring; files are written atomically.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path

from mlfit.errors import ConfigError
from mlfit.report.atomic import check_writable, write_atomic
from mlfit.result import Report


class OutputFormat(str, Enum):
    JSON = "json"


def renderer(fmt: OutputFormat) -> Callable[[Report], str | bytes]:
    """Map every format to its pure reporter (exhaustive: a test walks every member)."""
    if fmt is OutputFormat.JSON:
        from mlfit.report.json import render_json

        return render_json
    raise AssertionError(f"no renderer for {fmt}")  # pragma: no cover


def parse_outputs(specs: list[str] | None, json_path: str | None) -> list[tuple[OutputFormat, str]]:
    outputs: list[tuple[OutputFormat, str]] = []
    for spec in specs or []:
        if "=" not in spec:
            raise ConfigError(f"--output '{spec}': expected FORMAT=PATH",
                              f"formats: {', '.join(f.value for f in OutputFormat)}")
        name, path = spec.split("=", 1)
        try:
            fmt = OutputFormat(name.strip().lower())
        except ValueError:
            raise ConfigError(f"--output '{spec}': unknown format '{name}'",
                              f"formats: {', '.join(f.value for f in OutputFormat)}") from None
        if not path:
            raise ConfigError(f"--output '{spec}': empty path")
        outputs.append((fmt, path))
    if json_path:
        outputs.append((OutputFormat.JSON, json_path))
    for _, path in outputs:
        if path != "-":
            check_writable(Path(path))
    return outputs


def write_outputs(report: Report, outputs: list[tuple[OutputFormat, str]]) -> None:
    for fmt, path in outputs:
        data = renderer(fmt)(report)
        if path == "-":
            text = data.decode() if isinstance(data, bytes) else data
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            write_atomic(Path(path), data)
