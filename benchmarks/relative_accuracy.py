"""Is a variant's figure relative to its original known more tightly than either absolute figure?

    python benchmarks/relative_accuracy.py

For `check --suggest` (item 14): a variant and its original are projected onto the same device by
the same fitted device model, so one might expect their errors to be correlated and the ratio
variant / original to be known much more tightly than either figure. This measures it on the
device-truth table, as a user's device would see it: every source's rows are predicted by a fit
that never saw that source (leave-one-source-out, `devicemodel.leave_group_out`), then, for
pairs of rows of the same source and device that differ in one thing (the thread count, or the
precision, of the same model), the error of the predicted ratio is set beside the errors of the
two absolute predictions. Errors are |log(predicted / published)|, shown as percentages.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_devices as bd


def _pct(log_error: float) -> str:
    return f"{math.exp(log_error) - 1:.0%}"


def main() -> int:
    from mlfit.analysis import devicemodel as dm

    work = Path(tempfile.gettempdir()) / "mlfit-relative-accuracy"
    (work / "devices").mkdir(parents=True, exist_ok=True)
    meta, data = bd.usable_rows(bd.load_truth(), work)
    predicted = dm.leave_group_out(data, [str(r["source"]) for r in meta])
    by_key: dict[str, list[tuple[dict[str, object], float, float]]] = {}
    for row, (prediction, truth) in zip(meta, predicted, strict=True):
        by_key.setdefault(f"{row['source']}|{row['device']}|{row['model']}", []).append(
            (row, prediction.value, truth))
    pairs: dict[str, list[tuple[float, float, float]]] = {"threads": [], "precision": []}
    for rows in by_key.values():
        for i, (a, pa, ta) in enumerate(rows):
            for b, pb, tb in rows[i + 1:]:
                same = {k: a[k] == b[k] for k in ("threads", "precision", "batch", "runtime", "input")}
                for varied in pairs:
                    if not same[varied] and all(v for k, v in same.items() if k != varied):
                        ratio_error = abs(math.log((pb / pa) / (tb / ta)))
                        pairs[varied].append((ratio_error, abs(math.log(pa / ta)), abs(math.log(pb / tb))))
    print("| pairs differing in | pairs | median ratio error | median absolute error (both rows) | "
          "largest ratio error | largest absolute error |")
    print("|---|---|---|---|---|---|")
    for varied, found in pairs.items():
        if not found:
            print(f"| {varied} | 0 | - | - | - | - |")
            continue
        ratio = sorted(r for r, _, _ in found)
        absolute = sorted([x for _, x, _ in found] + [y for _, _, y in found])
        print(f"| {varied} | {len(found)} | {_pct(ratio[len(ratio) // 2])} | {_pct(absolute[len(absolute) // 2])} | "
              f"{_pct(ratio[-1])} | {_pct(absolute[-1])} |")
    runtimes = sorted({f"{r['runtime']} {r['precision']} on {r['device']}" for r in meta})
    print("\nrows by runtime, precision and device:", "; ".join(runtimes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
