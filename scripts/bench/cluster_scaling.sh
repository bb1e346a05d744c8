#!/usr/bin/env bash
# Tune trials/minute on 1 vs 2 worker hosts: the same smoke search on the namespace cluster
# (scripts/cluster_sim.sh: a head without task CPUs, 1-CPU workers), once per worker count. Root only.
#
#   sudo bash scripts/bench/cluster_scaling.sh [trials=8] [out=/tmp/xr-scaling]
#
# Prints one line per worker count (trials, the tune's wall time, trials/minute) and the scaling ratio;
# writes <out>/scaling.json. Same command both times: tune.max_concurrent=2, 1 CPU per trial.
set -euo pipefail
cd "$(dirname "$0")/../.."
trials=${1:-8}
out=${2:-/tmp/xr-scaling}
PY=${PY:-$PWD/.venv/bin/python}
export RAY=${RAY:-$(dirname "$PY")/ray} PYTHONPATH=${PYTHONPATH:-$PWD} XRAY_SIM_PREFIX=xrbench XRAY_SIM_SUBNET=10.213.77
rm -rf "$out" && mkdir -p "$out"
trap 'bash scripts/cluster_sim.sh down >/dev/null' EXIT
declare -A rate
for workers in 1 2; do
  export XRAY_SIM_WORKERS=$workers XRAY_SIM_DIR=/tmp/xrbench-$workers
  bash scripts/cluster_sim.sh up >/dev/null
  sleep 3
  root=$out/w$workers
  bash scripts/cluster_sim.sh exec head env RAY_ADDRESS=10.213.77.10:6379 XRAY_EXP_ROOT="$root" "$PY" -m xray_exp.ray_main \
    mode=tune debug=smoke post.samples=0 'post.eval_splits=[test]' post.n_boot=0 tracking=disabled tune.scheduler=fifo \
    tune.num_samples="$trials" tune.max_concurrent=2 tune.cpus_per_trial=1 tune.name=scaling \
    tune.metric=ultralytics/val/box_loss tune.direction=minimize >"$out/w$workers.log" 2>&1
  bash scripts/cluster_sim.sh down >/dev/null
  seconds=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['wall_time_s'])" "$root/outputs/tune/scaling/summary.json")
  rate[$workers]=$("$PY" -c "print(round($trials / ($seconds / 60), 2))")
  echo "workers=$workers trials=$trials tune_wall_s=$seconds trials_per_min=${rate[$workers]}"
done
ratio=$("$PY" -c "print(round(${rate[2]} / ${rate[1]}, 2))")
echo "scaling 2 vs 1 worker hosts: x$ratio"
echo "{\"trials\": $trials, \"trials_per_min\": {\"1\": ${rate[1]}, \"2\": ${rate[2]}}, \"ratio\": $ratio}" >"$out/scaling.json"
