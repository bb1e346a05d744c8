#!/usr/bin/env bash
# Start the head node of a Ray cluster for xray_exp (Ray 2.60: token authentication, usage stats off).
#
#   bash scripts/ray_start_head.sh                                  # this machine, GCS port 6379
#   bash scripts/ray_start_head.sh --num-gpus 4 --port 6380 --block # any further `ray start` flags
#
# Several machines (same repo and .venv on each, data and outputs on a shared filesystem at the same path,
# or ray.storage_path=s3://... for checkpoints):
#   1. head:      bash scripts/ray_start_head.sh
#                 -> prints HEAD_IP:PORT and the token file; copy the token to every worker machine and
#                    every machine that submits runs (it is a password: scp it, don't paste it in tickets)
#   2. workers:   RAY_AUTH_TOKEN_PATH=/path/to/token bash scripts/ray_start_worker.sh HEAD_IP:6379
#                 (or RAY_AUTH_TOKEN=<token>; or put it at ~/.ray/auth_token)
#   3. runs:      RAY_ADDRESS=HEAD_IP:6379 .venv/bin/python -m xray_exp.ray_main mode=tune ...
#                 (or ray.address=HEAD_IP:6379; on the head itself ray.address=auto)
#                 `.venv/bin/ray job submit --address http://HEAD_IP:8265 --entrypoint-num-gpus 1 -- python -m
#                 xray_exp.ray_main ...` runs the driver on a GPU node (post-training then uses that GPU).
#   4. stop:      .venv/bin/ray stop   on each machine (stops this user's Ray processes there), or end the
#                 `--block` process.
# Open between the machines: the GCS port (6379), 8265 (dashboard/jobs), and the node/object manager and
# worker ports (pin them with --node-manager-port, --object-manager-port, --min-worker-port/--max-worker-port).
# Where a hostname resolves to 127.0.0.1, export GLOO_SOCKET_IFNAME=<interface> (and NCCL_SOCKET_IFNAME) before
# this script and ray_start_worker.sh: Ray Train's process group would otherwise dial loopback. More: docs/cluster.md
# (shared storage or ray.storage_path=s3://..., GPUs per trial, node failures); a multi-host cluster on one
# machine for trying all this: scripts/cluster_sim.sh.
#
# Token: RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH when set, else ~/.ray/auth_token (generated when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
RAY=${RAY:-.venv/bin/ray}
export RAY_USAGE_STATS_ENABLED=0
export RAY_AUTH_MODE=token

port=6379
block=0
for ((i = 1; i <= $#; i++)); do
  arg=${!i}
  case "$arg" in
    --port=*) port=${arg#--port=} ;;
    --port) j=$((i + 1)); port=${!j} ;;
    --block) block=1 ;;
  esac
done

if [[ -n "${RAY_AUTH_TOKEN:-}" ]]; then
  token_hint="the RAY_AUTH_TOKEN value of this shell"
elif [[ -n "${RAY_AUTH_TOKEN_PATH:-}" ]]; then
  [[ -s "$RAY_AUTH_TOKEN_PATH" ]] || { echo "ERROR: RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH is empty or missing" >&2; exit 2; }
  token_hint="$RAY_AUTH_TOKEN_PATH"
else
  if [[ ! -s "$HOME/.ray/auth_token" ]]; then
    "$RAY" get-auth-token --generate >/dev/null
  fi
  token_hint="$HOME/.ray/auth_token"
fi

has_port=0
for arg in "$@"; do [[ "$arg" == --port || "$arg" == --port=* ]] && has_port=1; done
extra=()
[[ $has_port == 1 ]] || extra+=(--port="$port")

echo "xray_exp: starting the Ray head (GCS port $port, token authentication; token: $token_hint)"
echo "xray_exp: workers join with  RAY_AUTH_TOKEN_PATH=<copy of the token> bash scripts/ray_start_worker.sh <this machine's IP>:$port"
if [[ $block == 1 ]]; then
  exec "$RAY" start --head --disable-usage-stats "${extra[@]}" "$@"
fi
"$RAY" start --head --disable-usage-stats "${extra[@]}" "$@"
echo "xray_exp: drivers use  RAY_ADDRESS=<this machine's IP>:$port  (or ray.address=auto on this machine)"
