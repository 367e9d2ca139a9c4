#!/usr/bin/env bash
# The main job against a local AWS emulator: starts moto, creates sample
# resources (EC2 in two regions, an ECS service at 2 tasks, an EKS nodegroup
# at 1/2/3), then shows cloudnap putting them to sleep and waking them
# exactly as they were. Stops what it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. build/env.sh

ensure_packages
ensure_moto
start_moto
trap stop_started EXIT

cargo build --locked --quiet
BIN=$CARGO_TARGET_DIR/debug/cloudnap
DEMO=$(mktemp -d)
trap 'stop_started; rm -rf "$DEMO"' EXIT
"$VENV/bin/python" build/seed_demo.py "$CLOUDNAP_MOTO_URL" "$DEMO"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
step() { echo; echo "\$ cloudnap $*"; "$BIN" --config-dir "$DEMO" "$@"; }
step check
step status
step sleep
step status
step wake
step status
