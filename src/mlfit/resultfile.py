"""Reading a result file written by any mlfit up to this version: bounded, strict, one-line errors."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from mlfit import safeio
from mlfit.errors import ConfigError
from mlfit.result import RESULT_SCHEMA_VERSION, Report

# JSON values a result file may hold (raw samples and per-node costs included).
REPORT_MAX_VALUES = 8_000_000


def load_report(path: Path) -> Report:
    """Read a report JSON written by any mlfit up to this version."""
    if not path.exists():
        raise ConfigError(f"result file '{path}' does not exist")
    # A baseline committed with Git LFS and checked out without it: an error naming the fix, never
    # a run that quietly goes on without its baseline.
    safeio.refuse_lfs_pointer(path, "the result file", ConfigError)
    # Regular file, size and value count capped before parsing (a baseline may come from a pull request).
    raw = safeio.read_bounded(path, "report", "the result file", ConfigError)
    try:
        data = safeio.loads_bounded(raw, path, "the result file", ConfigError, max_values=REPORT_MAX_VALUES)
    except ConfigError as exc:
        reason = exc.message.removeprefix(f"{path}: ")
        raise ConfigError(f"{path}: not a readable mlfit result ({reason})",
                          "give a result JSON written by mlfit --json or --output json=PATH") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if not isinstance(version, int):
        raise ConfigError(f"{path}: not an mlfit result (no schema_version)")
    bad = safeio.non_finite_field(data)  # json.loads reads NaN, Infinity and 1e999 as floats: refuse them
    if bad is not None:
        raise ConfigError(f"{path}: invalid mlfit result at {bad}: NaN or Infinity is not a measurement",
                          "mlfit never writes them; regenerate the file with mlfit --json")
    if version > RESULT_SCHEMA_VERSION:
        raise ConfigError(f"{path}: result schema_version {version} is newer than this mlfit reads "
                          f"({RESULT_SCHEMA_VERSION})", "install a newer mlfit from its repository")
    try:
        return Report.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: invalid mlfit result at {loc}: {first['msg']}") from None
