#!/usr/bin/env bash
# The whole test suite, as CI runs it: dependencies, formatting, lints, every test.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/rkube-target}
export RKUBE_VENV=${RKUBE_VENV:-/var/cache/rkube-venv}
export PATH="$RKUBE_VENV/bin:$PATH"
export CARGO_TERM_COLOR=never

bash scripts/install-deps.sh

# The target dir is shared by every run on this machine and only grows (it reached 56 GB,
# half of it incremental caches, and a link then died with SIGBUS on a full disk). CI gains
# little from incremental caches: they go first when space runs low, everything after.
free_gb() { df -P --block-size=1G "$CARGO_TARGET_DIR" | awk 'NR == 2 { print $4 }'; }
mkdir -p "$CARGO_TARGET_DIR"
if [ "$(free_gb)" -lt 20 ]; then
  echo "== under 20 GB free: removing the incremental build caches"
  rm -rf "$CARGO_TARGET_DIR"/*/incremental
fi
if [ "$(free_gb)" -lt 10 ]; then
  echo "== still under 10 GB free: cargo clean"
  cargo clean
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast --profile ci
echo "== end-to-end suite again, on etcd instead of the embedded store"
RKUBE_TEST_DATASTORE=etcd cargo nextest run -p rkube --locked --no-fail-fast --profile ci
