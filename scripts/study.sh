#!/usr/bin/env bash
# The reference study (benchmark/presets/study.yaml) in one command, from a fresh clone:
#   1. build the study's synthetic corpus and run its lip-information check (what the lips alone
#      tell about the speech on held-out speakers; the report shows it beside each model's video gain)
#   2. the whole study in one run (every system x 3 training seeds, LDEM on the grid, MCEM on the
#      headline cell through enhance.subsets)  -> runs/study, reports/study/
#   3. the oracle-noise check of the A-VAE (is its loss on a noise the prior's or the NMF's?) and
#      the report again with it
#   (STUDY_OUT=runs/NAME puts the run in runs/NAME and its report in reports/NAME, e.g. for the
#   real-corpus twin: STUDY_OUT=runs/study-grid bash scripts/study.sh --set corpus.name=grid ...)
# Resumable: rerun after an interruption and finished jobs are reused. Extra arguments go to the
# corpus and run commands (e.g. --set training.device=cuda --set enhance.device=cuda on a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PY=.venv/bin/python
OUT=${STUDY_OUT:-runs/study}
start=$(date +%s)
$PY run_benchmark.py corpus build --preset study --no-progress "$@"   # with its lip check
$PY run_benchmark.py run --preset study --out "$OUT" --report-dir "reports/$(basename "$OUT")" "$@"
# 3. speech prior or noise model? the A-VAE of every seed at 0 dB (clean video) again with the true
#    noise variance (~3 min), then the report again with that section
$PY run_benchmark.py noise-check "$OUT" --models a-vae --snr 0 --no-progress
$PY run_benchmark.py report "$OUT" --out "reports/$(basename "$OUT")" --no-progress
echo "[study] finished in $(( ($(date +%s) - start) / 60 )) min" >&2
