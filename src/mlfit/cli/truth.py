"""``mlfit truth``: the device truth store (add, list, remove) and the per-device refit (fit).

Rows measured on a device teach the device model that device (docs/projection.md, "Learning
your devices"); the store is data only, validated when read, written atomically."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="The device truth store: figures measured on your devices, and the refit that learns "
                  "from them (docs/projection.md).", no_args_is_help=True)

TruthFile = Annotated[Path | None, typer.Option(
    "--truth", help="The truth store (default: $MLFIT_TRUTH, else truth.json in the user's cache folder).")]


def _say(text: str) -> None:
    from mlfit.errors import printable

    sys.stdout.write(printable(text) + "\n")


def _hardware(ref: str) -> Any:
    from mlfit.catalog.loader import resolve_hardware

    return resolve_hardware(ref)


@app.command()
def add(
    results: Annotated[list[Path], typer.Argument(help="Result JSON files (mlfit check/profile --json).",
                                                  metavar="RESULT.json...", show_default=False)],
    as_measured_on: Annotated[str | None, typer.Option(
        "--as-measured-on", help="The results were measured on a machine you state is this hardware (built-in "
        "name or hardware YAML): recorded as user-stated, never as verified.")] = None,
    truth: TruthFile = None,
) -> None:
    """Add the rows of RESULT files measured on a device (a verified `mlfit worker`, or --as-measured-on)."""
    from mlfit.truth.rows import merge, rows_from_file
    from mlfit.truth.store import read_store, store_path, write_store

    hw = _hardware(as_measured_on) if as_measured_on is not None else None
    path = store_path(truth)
    store, _ = read_store(path)
    new = [row for result in results for row in rows_from_file(result, hw)]  # all checked before writing any
    rows, notes = merge(store.rows, new)
    write_store(path, store.model_copy(update={"rows": rows}))
    for note in notes:
        _say(f"mlfit: {note}")
    for row in new:
        if row in rows and row not in store.rows:
            _say(f"added {row.id}: {row.model} on {row.hardware.id} ({row.provenance.value}), {row.runtime} "
                 f"{row.precision} {row.threads} thread(s), {row.seconds * 1e3:.3g} ms")
    _say(f"{path}: {len(rows)} rows")


@app.command("list")
def list_rows(
    truth: TruthFile = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """List the store's rows."""
    from mlfit.truth.store import read_store, store_path

    path = store_path(truth)
    store, _ = read_store(path)
    if json_out:
        sys.stdout.write(store.model_dump_json(indent=1) + "\n")
        return
    _say(f"{path}: {len(store.rows)} rows")
    for r in store.rows:
        _say(f"{r.id}  {r.hardware.id:<24} {r.provenance.value:<18} {r.model:<28} {r.runtime} {r.precision} "
             f"t{r.threads} b{r.batch}  {r.seconds * 1e3:.4g} ms  {r.added}")


@app.command()
def remove(
    ids: Annotated[list[str], typer.Argument(help="Row ids (or unique prefixes) from `mlfit truth list`.",
                                             metavar="ID...", show_default=False)],
    truth: TruthFile = None,
) -> None:
    """Remove rows from the store (refit afterwards: `mlfit truth fit`)."""
    from mlfit.errors import ConfigError
    from mlfit.truth.store import read_store, store_path, write_store

    path = store_path(truth)
    store, _ = read_store(path)
    gone: set[str] = set()
    for key in ids:
        match = [r.id for r in store.rows if r.id.startswith(key)]
        if len(match) != 1:
            raise ConfigError(f"'{key}' matches {len(match)} rows of {path}",
                              "give an id (or a unique prefix) from `mlfit truth list`")
        gone.add(match[0])
    write_store(path, store.model_copy(update={"rows": [r for r in store.rows if r.id not in gone]}))
    _say(f"removed {len(gone)} rows; {path}: {len(store.rows) - len(gone)} rows (refit with `mlfit truth fit`)")


@app.command()
def fit(
    hardware: Annotated[str | None, typer.Option(
        "--hardware", help="Refit this device only (built-in name or hardware YAML); default every device in "
        "the store.")] = None,
    truth: TruthFile = None,
) -> None:
    """Refit each device's constants on the published table plus the store's rows for it; print the
    errors before and after (leave one model out), and save the fit beside the store."""
    from mlfit.errors import ConfigError
    from mlfit.truth.fit import fit_device
    from mlfit.truth.rows import device_record
    from mlfit.truth.store import fit_path, read_store, store_path

    path = store_path(truth)
    if hardware is not None:
        hw = _hardware(hardware)
        devices = [(device_record(hw), hw.name)]
    else:
        store, _ = read_store(path)
        latest = {r.hardware.id: (r.hardware, r.hardware_name) for r in store.rows}
        devices = list(latest.values())
        if not devices:
            raise ConfigError(f"{path}: the truth store has no rows", "add results with `mlfit truth add`")
    for device, name in devices:
        outcome = fit_device(path, device, name)
        record = outcome.fit
        _say(f"{record.hardware}: {len(record.used)} rows ({record.user_stated} user-stated)")
        _say(f"  {'row':<13}{'model':<30}{'measured':>10}  {'error before':>12}  {'after (leave-one-model-out)':>27}")
        for row, before, after in outcome.rows:
            _say(f"  {row.id:<13}{row.model[:29]:<30}{row.seconds * 1e3:>8.3g}ms  {before:>12.0%}  "
                 f"{'-' if after is None else format(after, '.0%'):>27}")
        for ex in record.excluded:
            _say(f"  not used: {ex.id}: {ex.reason}")
        how = f" ({record.band})" if record.band else " (the committed band: rows of fewer than 3 models)"
        _say(f"  {record.summary}; band x{_band(record.params):.2f} either side{how}")
    _say(f"fit saved: {fit_path(path)} (checks projecting to these devices use it)")


def _band(params: dict[str, Any]) -> float:
    import math

    return math.exp(float(params.get("band_log", 0.0)))
