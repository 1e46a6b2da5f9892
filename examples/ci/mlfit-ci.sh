#!/usr/bin/env bash
# mlfit in CI: check a model against deployment targets and against the base branch's model.
#
#   mlfit-ci.sh MODEL BASE_REF [TARGET...]          (targets default to: edge)
#
# The base branch's model is measured first, on this same runner, so the regression compare
# sets like against like (a baseline from another machine would compare the machines). Then
# the new model is checked; reports go to $MLFIT_REPORTS (default: reports/):
#   mlfit.json  the full result (schema: schemas/report.schema.json)
#   mlfit.xml   JUnit: one test case per target and budget, one per compared metric
#   mlfit.html  self-contained report with plots, to keep as an artifact
#   Markdown    to $MLFIT_SUMMARY, else $GITHUB_STEP_SUMMARY, else reports/mlfit.md
# Extra flags for both runs (inputs, threads, timing) come from $MLFIT_FLAGS, e.g. "--dim batch=1".
# The exit code is mlfit's: 0 pass; 1 a budget failed or a regression; 2 usage; 3 model error;
# 4 inconclusive under --strict. Any non-zero code fails the job.
set -uo pipefail

model=${1:?usage: mlfit-ci.sh MODEL BASE_REF [TARGET...]}
base_ref=${2:?usage: mlfit-ci.sh MODEL BASE_REF [TARGET...]}
shift 2
[ $# -gt 0 ] || set -- edge
reports=${MLFIT_REPORTS:-reports}
summary=${MLFIT_SUMMARY:-${GITHUB_STEP_SUMMARY:-$reports/mlfit.md}}
read -r -a flags <<< "${MLFIT_FLAGS:-}"
targets=()
for target in "$@"; do targets+=(--target "$target"); done
mkdir -p "$reports"

work=$(mktemp -d)
cleanup() { git worktree remove --force "$work/base" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT

baseline=()
if git fetch --quiet --depth=1 origin "$base_ref" 2>/dev/null \
    && git worktree add --quiet --detach "$work/base" FETCH_HEAD 2>/dev/null \
    && [ -e "$work/base/$model" ]; then
  echo "mlfit-ci: measuring $model from $base_ref as the baseline" >&2
  mlfit check "$work/base/$model" "${targets[@]}" ${flags[@]+"${flags[@]}"} --quiet \
    --json "$reports/baseline.json" >/dev/null
  status=$?
  if [ "$status" -le 1 ] || [ "$status" -eq 4 ]; then  # a verdict, not a broken run: usable as a baseline
    baseline=(--baseline "$reports/baseline.json")
  else
    echo "mlfit-ci: the baseline run failed (exit $status); checking without a baseline" >&2
  fi
else
  echo "mlfit-ci: no $model on $base_ref; checking without a baseline" >&2
fi

mlfit check "$model" "${targets[@]}" ${flags[@]+"${flags[@]}"} ${baseline[@]+"${baseline[@]}"} \
  --output json="$reports/mlfit.json" \
  --output junit="$reports/mlfit.xml" \
  --output html="$reports/mlfit.html" \
  --output markdown="$summary"
