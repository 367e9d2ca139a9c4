#!/usr/bin/env bash
# Benchmarks (not tests): builds the release binary and the load generator,
# starts Xvfb at 1920x1080 and PulseAudio so every detector runs, then prints
# a table measured on this run.
# Usage: ./build/bench.sh [LOAD_SECONDS=5] [IDLE_SECONDS=60]
set -euo pipefail
cd "$(dirname "$0")/.."
. build/env.sh
ensure_packages
trap stop_started EXIT
X_SCREEN=1920x1080x24 start_x
start_pulse
cargo build --release --locked --quiet
cargo build --release --quiet --manifest-path build/bench/Cargo.toml
BIN=$CARGO_TARGET_DIR/release/cloudnap
echo "release binary: $(stat -c %s "$BIN" | numfmt --to=iec) ($BIN)"
"$CARGO_TARGET_DIR/release/cloudnap-bench" "$BIN" "${1:-5}" "${2:-60}"
