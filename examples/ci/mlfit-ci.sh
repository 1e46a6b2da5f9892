#!/usr/bin/env bash
# mlfit in CI: check a model against deployment targets and, optionally, against a baseline.
#
#   mlfit-ci.sh MODEL BASELINE [TARGET...]          (targets default to: edge)
#
# BASELINE is one of:
#   a git ref (e.g. the pull request's base branch): that ref's MODEL is measured first, on this
#     same runner, so the regression compare sets like against like (a baseline from another
#     machine would compare the machines);
#   a stored result, FILE.json (from `mlfit check --json`): compared as it is;
#   "" (empty): no baseline, budgets only.
# Reports go to $MLFIT_REPORTS (default: reports/):
#   mlfit.json  the full result (schema: schemas/report.schema.json)
#   mlfit.xml   JUnit: one test case per target and budget, one per compared metric
#   mlfit.html  self-contained report with plots, to keep as an artifact
#   mlfit.md    Markdown (or $MLFIT_SUMMARY), appended to $GITHUB_STEP_SUMMARY when that is set
# Extra flags for both runs (inputs, threads, timing) come from $MLFIT_FLAGS, e.g. "--threads 1";
# MLFIT_STRICT=true makes INCONCLUSIVE verdicts exit 4 instead of 0. MLFIT_LFS=true fetches Git LFS
# objects (`git lfs pull`) in the checkout and in the baseline's; a model that is still an LFS pointer
# is an error naming the fix (exit 3), never a run that quietly drops its baseline.
# The exit code is mlfit's: 0 pass; 1 a budget failed or a regression; 2 usage; 3 model error;
# 4 inconclusive under --strict. Any non-zero code fails the job.
#
# MODEL, BASELINE and the targets may come from a pull request (a branch name, a path): they are
# data, never options or code. A value that starts with "-" or holds a control character (a
# newline) is refused with exit 2; every value is quoted and follows "--" where it meets a command
# line; a git baseline must be a valid ref name (git check-ref-format) and MODEL a path inside the
# repository.
set -uo pipefail

refuse() { echo "mlfit-ci: $1" >&2; exit 2; }
# One value from the job's inputs: plain data, or exit 2 naming it.
check_value() {
  case "$2" in
    -*) refuse "$1 '$2' starts with '-' (it would be read as an option); give a name or path" ;;
  esac
  if [[ "$2" == *[[:cntrl:]]* ]]; then
    refuse "$1 holds a control character (a newline?); give one name or path"
  fi
}

model=${1:?usage: mlfit-ci.sh MODEL BASELINE [TARGET...]}
base=${2?usage: mlfit-ci.sh MODEL BASELINE [TARGET...]}
shift 2
[ $# -gt 0 ] || set -- edge
check_value MODEL "$model"
check_value BASELINE "$base"
for target in "$@"; do check_value TARGET "$target"; done
mlfit=${MLFIT:-mlfit}
reports=${MLFIT_REPORTS:-reports}
summary=${MLFIT_SUMMARY:-$reports/mlfit.md}
read -r -a flags <<< "${MLFIT_FLAGS:-}"
case "${MLFIT_STRICT:-false}" in true|1|yes) flags+=(--strict) ;; esac
targets=()
for target in "$@"; do targets+=(--target "$target"); done
check_value MLFIT_REPORTS "$reports"
check_value MLFIT_SUMMARY "$summary"
mkdir -p -- "$reports"

lfs=false
case "${MLFIT_LFS:-false}" in true|1|yes) lfs=true ;; esac
# The first line of a Git LFS pointer (the LFS spec): what a checkout without its LFS objects holds.
is_lfs_pointer() {
  [ -f "$1" ] && [ "$(head -c 43 -- "$1" 2>/dev/null)" = "version https://git-lfs.github.com/spec/v1" ]
}
if [ "$lfs" = true ]; then
  git lfs pull || refuse "MLFIT_LFS=true but \`git lfs pull\` failed (is git-lfs installed?)"
fi

work=$(mktemp -d)
# shellcheck disable=SC2317  # called by the trap
cleanup() { git worktree remove --force "$work/base" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT

baseline=()
if [ -z "$base" ]; then
  echo "mlfit-ci: no baseline given; checking the budgets only" >&2
elif [[ "$base" == *.json ]]; then
  if [ -f "$base" ]; then
    baseline=(--baseline "$base")
  else
    echo "mlfit-ci: baseline $base does not exist; checking without a baseline" >&2
  fi
elif ! git check-ref-format --allow-onelevel "$base" >/dev/null 2>&1; then
  refuse "BASELINE '$base' is neither FILE.json nor a valid git ref name"
elif [[ "$model" == /* || "/$model/" == */../* ]]; then
  echo "mlfit-ci: MODEL '$model' leaves the repository; checking without a baseline" >&2
elif git fetch --quiet --depth=1 -- origin "$base" 2>/dev/null \
    && git worktree add --quiet --detach -- "$work/base" FETCH_HEAD 2>/dev/null \
    && [ -e "$work/base/$model" ]; then
  if [ "$lfs" = true ]; then
    git -C "$work/base" lfs pull || refuse "\`git lfs pull\` failed in the baseline's checkout ($base)"
  fi
  if is_lfs_pointer "$work/base/$model"; then
    echo "mlfit-ci: $model on $base is a Git LFS pointer, not the model; set MLFIT_LFS=true (the action's" \
      "\`lfs: true\` input) so that the baseline is measured, not skipped" >&2
    exit 3
  fi
  echo "mlfit-ci: measuring $model from $base as the baseline" >&2
  "$mlfit" check "${targets[@]}" ${flags[@]+"${flags[@]}"} --quiet \
    --json "$reports/baseline.json" -- "$work/base/$model" >/dev/null
  status=$?
  if [ "$status" -le 1 ] || [ "$status" -eq 4 ]; then  # a verdict, not a broken run: usable as a baseline
    baseline=(--baseline "$reports/baseline.json")
  else
    echo "mlfit-ci: the baseline run failed (exit $status); checking without a baseline" >&2
  fi
else
  echo "mlfit-ci: no $model on $base; checking without a baseline" >&2
fi

"$mlfit" check "${targets[@]}" ${flags[@]+"${flags[@]}"} ${baseline[@]+"${baseline[@]}"} \
  --output json="$reports/mlfit.json" \
  --output junit="$reports/mlfit.xml" \
  --output html="$reports/mlfit.html" \
  --output markdown="$summary" \
  -- "$model"
status=$?
# The step summary is appended to, never replaced: other steps of the job may have written to it.
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$summary" ]; then
  cat -- "$summary" >> "$GITHUB_STEP_SUMMARY"
fi
exit "$status"
