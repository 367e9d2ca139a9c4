#!/usr/bin/env bash
# Sets up everything the tests need (idempotently), then runs every test.
# Usage: ./build/test.sh   (as root on Debian, or with the packages already installed)
set -euo pipefail
cd "$(dirname "$0")/.."
. build/env.sh

ensure_packages
ensure_moto
trap stop_started EXIT
start_moto
start_x
start_pulse

cargo fmt --all -- --check
cargo test --locked --no-fail-fast 2>&1 | tee "$CLOUDNAP_CACHE/test.log"
