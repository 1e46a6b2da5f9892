"""`mlfit truth fit`: refit one device's constants on the published table plus the store's rows for
it, save the fit beside the store; and the fits a check's projections use.

Rows are checked before they teach: a row whose result file still exists at its path with other
bytes than when it was added (edited since) is refused and named; rows of one hardware id with
other hardware figures (the hardware file was edited between adds) are named and left out; rows
the others put 5x off are named and left out (:func:`mlfit.analysis.deviceadapt.adapt`).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlfit.analysis.deviceadapt import ActiveFit
from mlfit.analysis.devicemodel import Config, Structure
from mlfit.errors import ConfigError
from mlfit.truth.schema import DeviceFit, DeviceRecord, ExcludedRow, FitFile, RowProvenance, TruthRow
from mlfit.truth.store import digest, fit_path, read_fits, read_store, write_fits


@dataclass(frozen=True)
class FitOutcome:
    """One device refitted: the record saved, and the row-level lines to print."""

    fit: DeviceFit
    rows: list[tuple[TruthRow, float, float | None]] = field(default_factory=list)  # row, |err| before, after


def _edited(row: TruthRow) -> str:
    """Why the row's result file refutes it, or "" (a file gone is not checked: a CI runner has only the store)."""
    from mlfit import safeio

    path = Path(row.result_path)
    if not path.is_file():
        return ""
    try:
        now = digest(safeio.read_bounded(path, "report", "the result file", ConfigError))
    except ConfigError as exc:
        return f"its result file cannot be read to check it ({exc.message}); refused"
    if now != row.result_sha256:
        return f"its result file {path} was edited since it was added (sha256 differs); refused"
    return ""


def _rows_for(rows: Sequence[TruthRow], device: DeviceRecord) -> tuple[list[TruthRow], list[ExcludedRow]]:
    used, excluded = [], []
    for row in rows:
        if row.hardware.id != device.id:
            continue
        if row.hardware != device:
            excluded.append(ExcludedRow(id=row.id, reason=f"measured on '{device.id}' with other hardware figures "
                                        "(the hardware file changed since); left out"))
        elif why := _edited(row):
            excluded.append(ExcludedRow(id=row.id, reason=why))
        else:
            used.append(row)
    return used, excluded


def _data(row: TruthRow) -> tuple[Structure, Config, float]:
    from mlfit.analysis import deviceadapt as da
    from mlfit.analysis import devicemodel as dm

    config = dm.Config(da.device_from_dict(row.hardware.model_dump()), row.runtime, row.precision, row.threads,
                       row.batch)
    return da.structure_from_dict(row.structure.model_dump()), config, row.seconds


def fit_device(store: Path, device: DeviceRecord, hardware_name: str = "") -> FitOutcome:
    """Refit ``device`` from the store at ``store`` and save it in the fit file beside it."""
    from mlfit.analysis import deviceadapt as da
    from mlfit.analysis import devicemodel as dm

    base = dm.fitted()
    table = da.table_rows()
    if base is None or not table:
        raise ConfigError("this mlfit has no committed device-model fit to adapt", "reinstall mlfit")
    truth, store_sha = read_store(store)
    used, excluded = _rows_for(truth.rows, device)
    if not used:
        known = sorted({r.hardware.id for r in truth.rows})
        refused = f" ({len(excluded)} refused; {excluded[0].id}: {excluded[0].reason})" if excluded else ""
        raise ConfigError(f"{store}: no usable rows measured on '{device.id}'{refused}",
                          f"add results with `mlfit truth add`; the store has rows for: {', '.join(known) or 'none'}")
    data = [_data(r) for r in used]
    adapted = da.adapt(table, data, [r.id for r in used], base)
    excluded += [ExcludedRow(id=i, reason=why) for i, why in adapted.excluded]
    kept = [r for r in used if r.id in adapted.used]
    stated = sum(1 for r in kept if r.provenance is RowProvenance.USER_STATED)
    record = DeviceFit(
        hardware=device.id, hardware_name=hardware_name or next((r.hardware_name for r in kept), ""), device=device,
        params=dm.params_to_dict(adapted.params), device_terms=da.terms_to_dict(adapted.device_terms),
        used=list(adapted.used), user_stated=stated, excluded=excluded,
        error_before=list(adapted.before), error_after=list(adapted.after),
        median_error_before=adapted.median_before, median_error_after=adapted.median_after,
        summary=adapted.summary(stated), band=adapted.band.describe() if adapted.band else "",
        store_sha256=store_sha,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    fits = read_fits(fit_path(store))
    write_fits(fit_path(store), FitFile(fits={**fits.fits, device.id: record}))
    return FitOutcome(record, [(r, b, a) for r, b, a in zip(kept, adapted.before, adapted.after, strict=True)])


def active_fits(store: Path) -> dict[str, ActiveFit]:
    """The adapted fits a check's projections use (hardware id -> deviceadapt.ActiveFit); empty
    when no fit file is beside the store."""
    from mlfit.analysis import deviceadapt as da
    from mlfit.analysis import devicemodel as dm

    path = fit_path(store)
    if not path.exists():
        return {}
    fits = read_fits(path)
    store_sha = read_store(store)[1] if store.exists() else ""
    out: dict[str, ActiveFit] = {}
    for hw, record in fits.fits.items():
        stale = ("" if not store_sha or store_sha == record.store_sha256 else
                 f"the truth store {store} changed since this fit ({record.created}); run `mlfit truth fit "
                 f"--hardware {hw}` to use its new rows")
        out[hw] = da.ActiveFit(da.device_from_dict(record.device.model_dump()), dm.params_from_dict(record.params),
                               da.terms_from_dict(record.device_terms), len(record.used), record.summary, stale,
                               record.band)
    return out
