#!/usr/bin/env bash
# Command 1 of the README: set up the environment (if needed) and run the `smoke` preset end to
# end on the built-in synthetic corpus. Extra arguments are passed to `run_benchmark.py run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python run_benchmark.py run --preset smoke --out runs/smoke "$@"
