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
# A second moto that checks credentials, for "wrong key" tests.
start_moto CLOUDNAP_MOTO_AUTH_URL INITIAL_NO_AUTH_ACTION_COUNT=0
start_x
start_tray_host
start_pulse
# Wayland sessions for the Wayland and GNOME detectors (tests/wayland.rs, tests/gnome.rs).
start_sway
start_mutter
# DISPLAY, DBUS_SESSION_BUS_ADDRESS and XDG_RUNTIME_DIR are a test desktop:
# the tests use it instead of starting their own (tests/common/mod.rs).
export CLOUDNAP_TEST_DESKTOP=1
mkdir -p "$CARGO_TARGET_DIR/test-artifacts"
export CLOUDNAP_ARTIFACTS="$CARGO_TARGET_DIR/test-artifacts"

cargo fmt --all -- --check
# Windows: every target compiled with warnings denied, and the debug
# cloudnap.exe that tests/windows.rs runs under Wine. It compiles while the
# Linux tests do: each build has long stretches of one huge crate (the AWS
# SDK's) that leave a core idle.
build/windows.sh ci > "$CLOUDNAP_CACHE/windows.log" 2>&1 &
windows=$!
linux=0
cargo test --locked --no-run || linux=$?
if ! wait "$windows"; then
  cat "$CLOUDNAP_CACHE/windows.log"
  echo "build/windows.sh ci failed" >&2
  exit 1
fi
tail -3 "$CLOUDNAP_CACHE/windows.log"
[ "$linux" = 0 ] || exit "$linux"
CLOUDNAP_WINDOWS_EXE=$(tail -1 "$CLOUDNAP_CACHE/windows.log")
export CLOUDNAP_WINDOWS_EXE
cargo test --locked --no-fail-fast 2>&1 | tee "$CLOUDNAP_CACHE/test.log"
# The README's demo, unattended: sleep from idleness, wake by command.
./build/demo.sh --once
