#!/usr/bin/env bash
# A multi-host Ray cluster on one Linux machine: each "host" is a network namespace with its own IP on a
# private bridge; a head and N workers started by scripts/ray_start_head.sh / ray_start_worker.sh (token auth).
# The repository, .venv and outputs are shared (namespaces separate the network, not the filesystem), as a
# real cluster mounts them. Needs root and iproute2. Nothing is routed beyond the private /24.
#
#   sudo bash scripts/cluster_sim.sh up        # bridge + namespaces xrsim-head, xrsim-w1, xrsim-w2; Ray on each
#   sudo bash scripts/cluster_sim.sh env       # the lines to export for a driver (RAY_ADDRESS, token path)
#   sudo bash scripts/cluster_sim.sh exec head .venv/bin/python -m xray_exp.ray_main mode=tune ...   # a driver
#   sudo bash scripts/cluster_sim.sh kill w2   # a host disappears: every process of its namespace, SIGKILL
#   sudo bash scripts/cluster_sim.sh start w2  # ... and comes back (Ray worker restarted in it)
#   sudo bash scripts/cluster_sim.sh down      # stop everything, delete namespaces and bridge (idempotent)
#
# Settings (environment): XRAY_SIM_PREFIX (xrsim; <= 8 characters: interface names), XRAY_SIM_SUBNET
# (10.213.0 -> bridge .1, head .10, workers .11, .12, ...), XRAY_SIM_WORKERS (2), XRAY_SIM_HEAD_CPUS (0),
# XRAY_SIM_WORKER_CPUS (1), XRAY_SIM_OBJECT_STORE_BYTES (100000000), XRAY_SIM_DIR (/tmp/<prefix>: Ray temp
# dirs, logs, the token), RAY (the `ray` executable; default .venv/bin/ray), RAY_AUTH_TOKEN (default: a new
# random token in $XRAY_SIM_DIR/token). The head's GCS is <subnet>.10:6379, its dashboard/job API
# http://<subnet>.10:8265 (reachable from this machine through the bridge).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${XRAY_SIM_PREFIX:-xrsim}
SUBNET=${XRAY_SIM_SUBNET:-10.213.0}
WORKERS=${XRAY_SIM_WORKERS:-2}
DIR=${XRAY_SIM_DIR:-/tmp/$PREFIX}
RAY=${RAY:-$PWD/.venv/bin/ray}
BRIDGE=${PREFIX}br
HEAD_IP=$SUBNET.10
export RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0 RAY_USAGE_STATS_ENABLED=0
# Torch's process group (Ray Train) on the namespace's interface: the hostname, shared by all namespaces,
# would resolve to loopback (real clusters whose hostnames do the same set these too)
export GLOO_SOCKET_IFNAME=eth0 NCCL_SOCKET_IFNAME=eth0

die() { echo "ERROR: $*" >&2; exit 2; }
nodes() { echo head; for ((i = 1; i <= WORKERS; i++)); do echo "w$i"; done; }
node_ip() { [[ $1 == head ]] && echo "$HEAD_IP" || echo "$SUBNET.$((10 + ${1#w}))"; }
ns() { echo "$PREFIX-$1"; }

token_env() {
  if [[ -z "${RAY_AUTH_TOKEN:-}" ]]; then
    [[ -s $DIR/token ]] || { umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/token"; }
    export RAY_AUTH_TOKEN_PATH=$DIR/token
  fi
}

make_host() {  # namespace + veth pair on the bridge, loopback up, only the /24 route
  local name=$1 ip; ip=$(node_ip "$1")
  ip netns add "$(ns "$name")"
  ip link add "${PREFIX}-${name}h" type veth peer name eth0 netns "$(ns "$name")"
  ip link set "${PREFIX}-${name}h" master "$BRIDGE" up
  ip -n "$(ns "$name")" addr add "$ip/24" dev eth0
  ip -n "$(ns "$name")" link set eth0 up
  ip -n "$(ns "$name")" link set lo up
}

start_node() {
  local name=$1 ip; ip=$(node_ip "$1")
  mkdir -p "$DIR/$name"
  local common=(--node-ip-address="$ip" --temp-dir="$DIR/$name" --object-store-memory="${XRAY_SIM_OBJECT_STORE_BYTES:-100000000}"
                --num-gpus=0)
  if [[ $name == head ]]; then
    ip netns exec "$(ns head)" env RAY="$RAY" bash scripts/ray_start_head.sh --port=6379 --dashboard-host=0.0.0.0 \
      --num-cpus="${XRAY_SIM_HEAD_CPUS:-0}" "${common[@]}" >"$DIR/head.log" 2>&1 \
      || { tail -30 "$DIR/head.log" >&2; die "the Ray head did not start (log: $DIR/head.log)"; }
  else
    ip netns exec "$(ns "$name")" env RAY="$RAY" bash scripts/ray_start_worker.sh "$HEAD_IP:6379" \
      --num-cpus="${XRAY_SIM_WORKER_CPUS:-1}" "${common[@]}" >"$DIR/$name.log" 2>&1 \
      || { tail -30 "$DIR/$name.log" >&2; die "the Ray worker $name did not start (log: $DIR/$name.log)"; }
  fi
}

kill_node() {  # every process in the namespace: what a host that loses power does
  local pids
  pids=$(ip netns pids "$(ns "$1")" 2>/dev/null || true)
  [[ -n $pids ]] && kill -9 $pids 2>/dev/null || true
  for _ in $(seq 50); do [[ -z $(ip netns pids "$(ns "$1")" 2>/dev/null || true) ]] && return 0; sleep 0.1; done
}

up() {
  [[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
  command -v ip >/dev/null || die "needs iproute2 (ip)"
  [[ -x $RAY ]] || die "no ray executable at $RAY (set RAY=... or run scripts/setup.sh)"
  ip netns list | grep -q "^$PREFIX-" && die "namespaces $PREFIX-* exist: run '$0 down' first"
  mkdir -p "$DIR"
  token_env
  ip link add "$BRIDGE" type bridge
  ip addr add "$SUBNET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for name in $(nodes); do make_host "$name"; done
  for name in $(nodes); do start_node "$name"; done
  echo "xray_exp: cluster up: head $HEAD_IP, workers $(for n in $(nodes); do [[ $n == head ]] || printf '%s ' "$(node_ip "$n")"; done)"
  print_env
}

print_env() {
  token_env
  echo "RAY_ADDRESS=$HEAD_IP:6379"
  echo "RAY_JOB_ADDRESS=http://$HEAD_IP:8265"
  [[ -n "${RAY_AUTH_TOKEN_PATH:-}" ]] && echo "RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH"
  echo "# a driver on the head: bash $0 exec head <command>"
}

down() {
  for name in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX-" || true); do
    kill_node "${name#"$PREFIX"-}"
    ip netns del "$name" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$PREFIX-" || true); do
    ip link del "$link" 2>/dev/null || true
  done
  echo "xray_exp: cluster $PREFIX down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) print_env ;;
  kill) [[ -n "${2:-}" ]] || die "usage: $0 kill <node>"; kill_node "$2"; echo "xray_exp: host $2 killed" ;;
  start) [[ -n "${2:-}" ]] || die "usage: $0 start <node>"; token_env; start_node "$2"; echo "xray_exp: host $2 started" ;;
  exec) [[ -n "${2:-}" && -n "${3:-}" ]] || die "usage: $0 exec <node> <command...>"; node=$2; shift 2
        token_env; exec ip netns exec "$(ns "$node")" "$@" ;;
  *) die "usage: $0 up|down|env|kill <node>|start <node>|exec <node> <command...>" ;;
esac
