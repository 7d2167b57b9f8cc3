#!/usr/bin/env bash
# The GPU checks of issue 17, for a session that has a CUDA device (never run by the tests).
#
#   bash scripts/gpu_check.sh                         # every step
#   bash scripts/gpu_check.sh agreement curve         # some steps: agreement curve profile flags smoke repro
#
# Steps, each under its own time limit (seconds; override with e.g. GPU_CHECK_LIMIT_SMOKE=400):
#   agreement  CUDA vs CPU estimates of 4 utterances x 3 s, published defaults, random-init A-VAE
#              (`python -m benchmark.perf --agreement`): PEEM (no sampling) must agree to an SI-SDR
#              of the CUDA estimate against the CPU one >= 30 dB; MCEM / VEM / LDEM draw from CUDA
#              generators on CUDA, so only their quality is compared (paired SI-SDR difference within
#              0.3 dB or its 95 % CI including 0). The tolerances: benchmark/perf.py (AGREE_*).
#   curve      the batch-size curve on CUDA: B = 1 16 128 512, every algorithm, published defaults
#   profile    time per EM iteration by kind of operator on CUDA (batch 128, 5 iterations)
#   flags      each EM speed option (TF32, bf16 decoder, torch.compile incl. CUDA graphs) against the
#              exact default on CUDA: time and paired SI-SDR difference (`perf --flag-effects`)
#   smoke      the smoke preset end to end on CUDA (training and enhancement), without PESQ
#   repro      what stays bit-identical from CPU to GPU: a reduced smoke run on the CPU and on CUDA,
#              every artifact compared (`python -m benchmark.reproducibility --devices cpu cuda
#              --variants cuda`; README "Reproducibility")
# A failing step is reported and the next one still runs (a step whose device is absent fails:
# benchmark.perf exits 2 when it has nothing to run). Each step's output goes to
# <dir>/<step>.log and one line per step (exit status, seconds) to <dir>/summary.txt, where <dir>
# is $OUT/gpu_check when OUT is set (the device machine's result folder), else a temporary folder.
# Model for agreement/curve/profile: CHECKPOINT=path (default: random-init a-vae).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
if [ -n "${OUT:-}" ]; then DIR="$OUT/gpu_check"; else DIR=$(mktemp -d -t gpu_check.XXXXXX); fi
mkdir -p "$DIR"
SUMMARY="$DIR/summary.txt"
RUN_DIR="${GPU_CHECK_RUN_DIR:-}"  # the smoke run's folder (default: a fresh temporary folder)
MODEL=()
[ -n "${CHECKPOINT:-}" ] && MODEL=(--checkpoint "$CHECKPOINT")
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(agreement curve profile flags smoke repro)
failed=0

{
  echo "gpu_check $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not available"
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda available:", torch.cuda.is_available())' 2>&1 || true
} | tee "$SUMMARY"

# step NAME LIMIT_S COMMAND...: run it with a time limit, log it, record its status and duration.
step() {
  local name=$1 limit=$2 rc t0
  shift 2
  t0=$(date +%s)
  echo "== $name (limit ${limit}s): $*" >"$DIR/$name.log"
  if timeout --kill-after=10 "$limit" "$@" >>"$DIR/$name.log" 2>&1; then rc=0; else rc=$?; failed=1; fi
  tail -n 40 "$DIR/$name.log"
  echo "$name: exit $rc$([ "$rc" -eq 124 ] && echo ' (time limit)'), $(( $(date +%s) - t0 )) s" | tee -a "$SUMMARY"
}

for s in "${STEPS[@]}"; do
  case "$s" in
    agreement) step agreement "${GPU_CHECK_LIMIT_AGREEMENT:-120}" "$PY" -m benchmark.perf --agreement \
                 --devices cpu cuda --n-utts 4 --duration 3 --algorithms peem mcem vem ldem ${MODEL[@]+"${MODEL[@]}"} ;;
    curve)     step curve "${GPU_CHECK_LIMIT_CURVE:-200}" "$PY" -m benchmark.perf --batch-sizes 1 16 128 512 \
                 --devices cuda --n-utts 8 --duration 3 --algorithms mcem ldem vem peem ${MODEL[@]+"${MODEL[@]}"} ;;
    profile)   step profile "${GPU_CHECK_LIMIT_PROFILE:-60}" "$PY" -m benchmark.perf --profile --profile-batch 128 \
                 --profile-iters 5 --devices cuda --n-utts 8 --duration 3 --algorithms mcem ldem vem peem ${MODEL[@]+"${MODEL[@]}"} ;;
    flags)     step flags "${GPU_CHECK_LIMIT_FLAGS:-150}" "$PY" -m benchmark.perf --flag-effects \
                 --devices cuda --n-utts 16 --duration 3 --algorithms mcem ldem ${MODEL[@]+"${MODEL[@]}"} ;;
    smoke)     [ -n "$RUN_DIR" ] || RUN_DIR=$(mktemp -d -t gpu_check_run.XXXXXX)
               step smoke "${GPU_CHECK_LIMIT_SMOKE:-240}" "$PY" run_benchmark.py run --preset smoke --out "$RUN_DIR/smoke" \
                 --report-dir "$RUN_DIR/report" --no-progress --set training.device=cuda --set enhance.device=cuda \
                 --set "metrics.names=[si_sdr,stoi,estoi,sdr]" ;;
    repro)     step repro "${GPU_CHECK_LIMIT_REPRO:-150}" "$PY" -m benchmark.reproducibility --devices cpu cuda \
                 --variants cuda --out "$DIR/repro" ;;
    *) echo "$s: unknown step (agreement curve profile flags smoke repro)" | tee -a "$SUMMARY"; failed=1 ;;
  esac
done
echo "summary: $SUMMARY${RUN_DIR:+; smoke run folder: $RUN_DIR}" | tee -a "$SUMMARY"
exit "$failed"
