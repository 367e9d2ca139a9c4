#!/usr/bin/env bash
# The main job against a local AWS emulator. Starts moto, creates sample
# resources (EC2 in two regions, an ECS service at 2 tasks, an EKS nodegroup
# at 1/2/3), writes a demo config dir and runs cloudnap on it (under Xvfb if
# there is no display), printing state changes as they happen: after a minute
# without input the resources sleep; a key press, or
# `cloudnap --config-dir DIR send WAKE_NOW`, wakes them exactly as they were.
#
# Usage: ./build/demo.sh          interactive, until Ctrl-C
#        ./build/demo.sh --once   unattended: sleep from idleness, wake with
#                                 `send WAKE_NOW`, check capacities, exit 0
# Stops what it started on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. build/env.sh

ONCE=false
case "${1:-}" in
  --once) ONCE=true ;;
  "") ;;
  *) echo "usage: $0 [--once]" >&2; exit 2 ;;
esac

ensure_packages
ensure_moto
DEMO=$(mktemp -d)
DAEMON=
cleanup() {
  [ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
  stop_started
  rm -rf "$DEMO"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start_moto
if [ -z "${DISPLAY:-}" ]; then
  start_x
  echo "no display: running under Xvfb on $DISPLAY (wake with send WAKE_NOW)"
fi

# --tests: the same feature set as the test build (dev-dependencies turn on
# test features in tokio and the SDK), so CI compiles the AWS crates once.
cargo build --locked --quiet --tests
BIN=$CARGO_TARGET_DIR/debug/cloudnap
if $ONCE; then TIMEOUT=0.1 WARNING=0.05; else TIMEOUT=1 WARNING=0.25; fi
"$VENV/bin/python" build/seed_demo.py "$CLOUDNAP_MOTO_URL" "$DEMO" "$TIMEOUT" "$WARNING" "$(free_port)"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
cn() { "$BIN" --config-dir "$DEMO" "$@"; }

echo; echo "\$ cloudnap status"; cn status
echo
echo "Starting cloudnap. Resources sleep after $TIMEOUT min without keyboard/mouse/screen/audio activity."
echo "Wake them with a key press or: $BIN --config-dir $DEMO send WAKE_NOW"
RUST_LOG=${RUST_LOG:-warn,cloudnap=info} "$BIN" --config-dir "$DEMO" run &
DAEMON=$!

if ! $ONCE; then
  wait "$DAEMON"
  exit
fi

# Unattended: wait for sleep, wake by command, check every capacity.
state() { cn send --timeout 5 STATUS | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["result"]["state"])'; }
for _ in $(seq 300); do
  [ "$(state 2>/dev/null)" = asleep ] && break
  sleep 0.2
done
[ "$(state)" = asleep ] || { echo "demo: resources did not go to sleep" >&2; exit 1; }
echo; echo "\$ cloudnap status   (asleep)"; cn status
echo; echo "\$ cloudnap send WAKE_NOW"; cn send WAKE_NOW >/dev/null
echo; echo "\$ cloudnap status   (awake)"; cn status
cn --json status | "$VENV/bin/python" -c '
import json, sys
rows = json.load(sys.stdin)
want = {"EC2": {"type": "EC2", "running": True}, "ECS": {"type": "ECS", "desired": 2},
        "EKS": {"type": "EKS", "min": 1, "desired": 2, "max": 3}}
bad = [r for r in rows if r["capacity"] != want[r["resource"]["type"]]]
if bad or len(rows) != 4:
    sys.exit(f"demo: not restored exactly: {bad or rows}")
print("demo: all 4 resources slept and woke to exactly their earlier capacity")
'
