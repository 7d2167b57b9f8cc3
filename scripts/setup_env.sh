#!/usr/bin/env bash
# Create or reuse the project's virtual environment in .venv and install what is needed.
# torch==2.13.0 is installed first (the CPU build on our machines), then the project with its
# extras; every other requirement is satisfiable by that torch, so no CUDA wheels are pulled.
# Idempotent: a stamp file records the hash of pyproject.toml; nothing is reinstalled unless it changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${AVBENCH_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.avbench-installed"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null; then
  echo "[setup] installing torch==2.13.0" >&2
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
fi
echo "[setup] installing avfusion-bench and its extras" >&2
"$VENV/bin/python" -m pip install -q -e ".[dev,dnsmos]"
echo "$want" > "$stamp"
