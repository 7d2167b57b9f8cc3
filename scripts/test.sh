#!/usr/bin/env bash
# Command 2 of the README: set up the environment (if needed) and run the test suite.
# Slow tests are excluded by default; `scripts/test.sh --slow` runs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
args=()
for a in "$@"; do
  if [ "$a" = "--slow" ]; then args+=(-m "slow or not slow"); else args+=("$a"); fi
done
exec .venv/bin/python -m pytest -q "${args[@]}"
