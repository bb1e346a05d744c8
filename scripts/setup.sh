#!/usr/bin/env bash
# Create .venv and install xray_exp with the pinned, tested dependency set (constraints.txt).
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.xray_exp-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # pip resolves torch/torchvision 2.14.1/0.29.1 from its configured index; wheels kept in a local folder
  # are used with PIP_FIND_LINKS=/path/to/wheels bash scripts/setup.sh (pip's own variable).
  # The full install (research workstation): training, service and development extras in one command.
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[train,serve,dev]"
  echo "$want" > "$stamp"
fi
.venv/bin/python -c "import xray_exp, torch, ultralytics, hydra, mlflow, ray; print('xray_exp environment ready:', 'torch', torch.__version__, '| ultralytics', ultralytics.__version__)"
