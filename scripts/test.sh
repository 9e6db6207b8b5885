#!/usr/bin/env bash
# The whole test suite, as CI runs it: dependencies, formatting, lints, every test.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/rkube-target}
export RKUBE_VENV=${RKUBE_VENV:-/var/cache/rkube-venv}
export PATH="$RKUBE_VENV/bin:$PATH"
export CARGO_TERM_COLOR=never

bash scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast --profile ci
echo "== end-to-end suite again, on etcd instead of the embedded store"
RKUBE_TEST_DATASTORE=etcd cargo nextest run -p rkube --locked --no-fail-fast --profile ci
