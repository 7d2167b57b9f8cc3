#!/usr/bin/env bash
# The reference study (benchmark/presets/study.yaml) in one command, from a fresh clone:
#   1. build the study's synthetic corpus and run its lip-information check (what the lips alone
#      tell about the speech on held-out speakers; the report shows it beside each model's video gain)
#   2. the whole study in one run (every system x 3 training seeds, LDEM on the grid, MCEM on the
#      headline cell through enhance.subsets)  -> runs/study, reports/study/
#   (STUDY_OUT=runs/NAME puts the run in runs/NAME and its report in reports/NAME, e.g. for the
#   real-corpus twin: STUDY_OUT=runs/study-grid bash scripts/study.sh --set corpus.name=grid ...)
# Resumable: rerun after an interruption and finished jobs are reused. Extra arguments go to both
# commands (e.g. --set training.device=cuda --set enhance.device=cuda on a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PY=.venv/bin/python
OUT=${STUDY_OUT:-runs/study}
start=$(date +%s)
$PY run_benchmark.py corpus build --preset study --no-progress "$@"   # with its lip check
$PY run_benchmark.py run --preset study --out "$OUT" --report-dir "reports/$(basename "$OUT")" "$@"
echo "[study] finished in $(( ($(date +%s) - start) / 60 )) min" >&2
