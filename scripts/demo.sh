#!/usr/bin/env bash
# Set up (if needed) and train the demo: yolo12n on the embedded synthetic chest X-rays (CPU).
# Extra arguments are Hydra overrides: bash scripts/demo.sh train.epochs=5
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m xray_exp.train "$@"
