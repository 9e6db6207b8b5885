#!/usr/bin/env bash
# Builds rkube and runs `rkube server` (the main job) with any extra flags given.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/rkube-target}
bash scripts/install-deps.sh
cargo build --release --locked -p rkube
exec "$CARGO_TARGET_DIR/release/rkube" server "$@"
