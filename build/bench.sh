#!/usr/bin/env bash
# Benchmarks (not tests): builds the release binary and the load generator,
# then prints a table measured on this run.
set -euo pipefail
cd "$(dirname "$0")/.."
. build/env.sh
ensure_packages
cargo build --release --locked --quiet
cargo build --release --quiet --manifest-path build/bench/Cargo.toml
BIN=$CARGO_TARGET_DIR/release/cloudnap
echo "release binary: $(stat -c %s "$BIN" | numfmt --to=iec) ($BIN)"
"$CARGO_TARGET_DIR/release/cloudnap-bench" "$BIN" "${1:-5}"
