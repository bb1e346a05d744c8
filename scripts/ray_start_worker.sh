#!/usr/bin/env bash
# Join a worker machine to the Ray cluster started by scripts/ray_start_head.sh.
#
#   RAY_AUTH_TOKEN_PATH=/path/to/token bash scripts/ray_start_worker.sh HEAD_IP:6379
#   RAY_AUTH_TOKEN=<token> bash scripts/ray_start_worker.sh HEAD_IP:6379 --num-gpus 8 --block
#
# Needs the head's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, or ~/.ray/auth_token), the same repo and
# .venv as the head (bash scripts/setup.sh), and the data/outputs paths the runs use (shared filesystem).
# Further arguments go to `ray start` (e.g. --num-gpus, --resources, --block). Stop: .venv/bin/ray stop.
set -euo pipefail
cd "$(dirname "$0")/.."
RAY=${RAY:-.venv/bin/ray}
if [[ $# -lt 1 || "$1" == -* ]]; then
  echo "usage: bash scripts/ray_start_worker.sh HEAD_IP:PORT [ray start flags]" >&2
  exit 2
fi
address=$1
shift
export RAY_USAGE_STATS_ENABLED=0
export RAY_AUTH_MODE=token
if [[ -z "${RAY_AUTH_TOKEN:-}" ]]; then
  token_file=${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}
  if [[ ! -s "$token_file" ]]; then
    echo "ERROR: no Ray auth token: $token_file is missing. Fix: copy the head's token file here and set" \
         "RAY_AUTH_TOKEN_PATH=<file> (or RAY_AUTH_TOKEN=<token>); the head prints where it is." >&2
    exit 2
  fi
fi
echo "xray_exp: joining the Ray cluster at $address"
exec "$RAY" start --address="$address" --disable-usage-stats "$@"
