#!/usr/bin/env bash
# Wheels the GPU benchmark needs on an offline GPU host that has Python 3.12, torch, OpenCV, matplotlib,
# numpy, PyYAML, psutil and nvidia-ml-py but no package index access. Writes .whl/ (git-ignored), ~56 MB;
# run it where PyPI is reachable, then copy the checkout with .whl/ to the GPU host.
#
#   bash scripts/bench/device_wheels.sh
#   # then on the GPU host, in the checkout (docs/benchmarks.md, section 6):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 && bash scripts/bench/device_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
pin() { grep -i "^$1==" constraints.txt; }
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "$(pin ultralytics)" "$(pin ultralytics-thop)" "$(pin polars)" "$(pin polars-runtime-32)" \
  "$(pin hydra-core)" "$(pin omegaconf)"
ls -l .whl
du -sh .whl
