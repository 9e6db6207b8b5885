#!/usr/bin/env bash
# Measures rkube's scheduler with the project's API benchmark harness, ../shared/kbench,
# the way upstream's figure in ../shared/design.md was measured: `kbench sched` registers
# the nodes and creates every pod while no scheduler runs, then starts `rkube scheduler`
# and times it until every pod is bound (pods/s from the scheduler's start, and from the
# first to the last binding).
#
#   scripts/kbench-sched.sh [RUNS]        # NODES=5000 PODS=10000 by default
#
# Each run gets a fresh `rkube server --disable-scheduler` (its own data dir and a free
# port) that is stopped afterwards; results go to $OUT (default ./kbench-results).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KBENCH_SRC=${KBENCH_SRC:-$ROOT/../shared/kbench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/rkube-target}
KBENCH_TARGET=${KBENCH_TARGET:-/var/cache/kbench-target}
RUNS=${1:-1}
NODES=${NODES:-5000}
PODS=${PODS:-10000}
OUT=${OUT:-$PWD/kbench-results}

[ -f "$KBENCH_SRC/Cargo.toml" ] || { echo "kbench-sched: no kbench at $KBENCH_SRC (set KBENCH_SRC)" >&2; exit 1; }
cargo build --release --locked -p rkube --manifest-path "$ROOT/Cargo.toml"
CARGO_TARGET_DIR=$KBENCH_TARGET cargo build --release --manifest-path "$KBENCH_SRC/Cargo.toml"
RKUBE=$CARGO_TARGET_DIR/release/rkube
KBENCH=$KBENCH_TARGET/release/kbench
mkdir -p "$OUT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

WORK=""
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
  SERVER=""
  WORK=""
}
trap cleanup EXIT

for run in $(seq "$RUNS"); do
  WORK=$(mktemp -d /tmp/rkube-kbench.XXXXXX)
  PORT=$(free_port)
  TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  echo "$TOKEN,kbench,kbench,system:masters" > "$WORK/tokens.csv"
  "$RKUBE" server --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" --disable-scheduler \
    --node-monitor-grace-period 1h --token-auth-file "$WORK/tokens.csv" > "$WORK/server.log" 2>&1 &
  SERVER=$!
  CA=$WORK/data/pki/ca.crt
  ready=""
  for _ in $(seq 300); do
    if [ -f "$CA" ] && curl -sf --cacert "$CA" -H "Authorization: Bearer $TOKEN" \
        "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
      ready=1
      break
    fi
    kill -0 "$SERVER" 2>/dev/null || { echo "kbench-sched: rkube server exited:" >&2; tail "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$ready" ] || { echo "kbench-sched: rkube server not ready after 30 s:" >&2; tail "$WORK/server.log" >&2; exit 1; }
  cat > "$WORK/scheduler.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: rkube, cluster: {server: "https://127.0.0.1:$PORT", certificate-authority: "$CA"}}]
users: [{name: kbench, user: {token: "$TOKEN"}}]
contexts: [{name: rkube, context: {cluster: rkube, user: kbench}}]
current-context: rkube
EOF
  KBENCH_SERVER=https://127.0.0.1:$PORT KBENCH_CA=$CA KBENCH_TOKEN=$TOKEN \
    "$KBENCH" --label rkube --out-dir "$OUT" sched --nodes "$NODES" --pods "$PODS" \
    --cpu "server=$SERVER" --rss "server=$SERVER" --log "$WORK/scheduler.log" -- \
    "$RKUBE" scheduler --kubeconfig "$WORK/scheduler.kubeconfig" --leader-elect=false |
    grep '^SUMMARY'
  cleanup
done
