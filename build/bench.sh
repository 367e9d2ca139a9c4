#!/usr/bin/env bash
# Benchmarks (not tests): builds the release binary and the bench driver,
# starts Xvfb at 1920x1080, PulseAudio and moto, seeds 200 resources in 3
# regions, 1000 more, and a small fleet for the wake test, then prints a table measured
# on this run (src/bin/cloudnap-bench/ says what each row is).
# Usage: ./build/bench.sh [LOAD_SECONDS=5] [IDLE_SECONDS=60]
# CLOUDNAP_BENCH_BASELINE=/path/to/an/older/release/cloudnap adds STATUS
# throughput against it, in alternating runs. CLOUDNAP_BENCH_ONLY=idle,wake,world,report
# runs only those parts.
set -euo pipefail
cd "$(dirname "$0")/.."
. build/env.sh
ensure_packages
ensure_moto
FLEET=$(mktemp -d) WAKE=$(mktemp -d) FLEET_1000=$(mktemp -d)
trap 'stop_started; rm -rf "$FLEET" "$WAKE" "$FLEET_1000"' EXIT
X_SCREEN=1920x1080x24 start_x
start_pulse
start_tray_host
start_sway
start_moto
cargo build --release --locked --quiet --features bench
BIN=$CARGO_TARGET_DIR/release/cloudnap
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
"$VENV/bin/python" build/bench/seed_fleet.py "$CLOUDNAP_MOTO_URL" "$FLEET" 200
"$VENV/bin/python" build/bench/seed_fleet.py "$CLOUDNAP_MOTO_URL" "$FLEET_1000" 1000 big
"$VENV/bin/python" build/seed_demo.py "$CLOUDNAP_MOTO_URL" "$WAKE" 0.05 0.02 0 >/dev/null
"$CARGO_TARGET_DIR/release/cloudnap-bench" "$BIN" "${1:-5}" "${2:-60}" "$FLEET" "$WAKE" "$FLEET_1000"
