#!/usr/bin/env bash
# The reference study (benchmark/presets/study.yaml) in one command, from a fresh clone:
#   1. the LDEM grid (every system, 3 training seeds)            -> runs/study, reports/study/
#   2. MCEM at published settings on the headline cell (-5 dB, clean video), reusing every trained
#      model and LDEM job of pass 1 (content-hashed)              -> reports/study-mcem/
#   then the corpus's lip-information check (what the lips alone tell about the speech on held-out
#      speakers; the report shows it beside each model's video gain)
#   3. pass 1's command again: every job is cached, so it only restores runs/study/results.parquet
#      to the whole grid (pass 2 leaves its own subset there) and rewrites reports/study/.
# Resumable: rerun after an interruption and finished jobs are reused. Extra arguments go to every
# pass (e.g. --set training.device=cuda --set enhance.device=cuda on a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PY=.venv/bin/python
$PY run_benchmark.py run --preset study --out runs/study "$@"
$PY run_benchmark.py corpus check --preset study --no-progress
$PY run_benchmark.py run --preset study --out runs/study --report-dir reports/study-mcem \
  --set "enhance.algorithms=[ldem, mcem]" --set "conditions.snrs_db=[-5.0]" \
  --set "conditions.corruptions=[none]" "$@"
$PY run_benchmark.py run --preset study --out runs/study "$@"
