#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one short command (about 7-8 minutes on one H100), for a GPU host
# without Ultralytics or Hydra installed: train-only images/s, GPU utilisation and peak memory of yolo12n for
# the gpu preset vs bare Ultralytics vs the reference settings, the preset with the gray loader off, and the
# loader's per-core figures on that host's CPU. JSON and logs go to $OUT (a result folder of your choice) or
# outputs/bench. Prepare the wheels first with scripts/bench/device_wheels.sh (see there for the run line).
#
#   bash scripts/bench/device_gpu.sh            # on the GPU machine, PYTHONPATH set as device_wheels.sh says
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-outputs/bench}
mkdir -p "$out"
py=${PYTHON:-python3}
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
nproc > "$out/nproc.txt"
$py -c "import torch, ultralytics; print('torch', torch.__version__, 'ultralytics', ultralytics.__version__)" \
  > "$out/versions.txt" 2>&1 || { cat "$out/versions.txt"; exit 1; }
# 1. preset (gray loader on) vs bare vs reference, 3 epochs of 4096 images at 640 px each
timeout 330 $py -m xray_exp.bench gpu --models yolo12n --variants preset bare reference --epochs 3 --unique 256 \
  --timeout 150 --out-dir "$out" > "$out/gpu.log" 2>&1
# 2. the preset with Ultralytics' own 3-channel pipeline, to isolate the gray loader on the GPU
timeout 130 $py -m xray_exp.bench gpu --models yolo12n --variants preset --epochs 3 --unique 256 --timeout 120 \
  --preset-override hardware.gray_loader=false --out-dir "$out" > "$out/gpu-rgb.log" 2>&1
# 3. the input pipeline per core on this CPU (16 cores)
timeout 90 $py -m xray_exp.bench loader --workers 0 8 14 16 --images 1024 --batch 64 --batches 6 --out-dir "$out" \
  > "$out/loader.log" 2>&1
tail -n 25 "$out/gpu.log" "$out/gpu-rgb.log" "$out/loader.log"
