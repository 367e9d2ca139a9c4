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
# Wayland sessions for the Wayland and GNOME detectors (tests/wayland.rs,
# tests/gnome.rs, tests/kde.rs).
start_sway
start_mutter
start_kwin
# A panel and a notification daemon users run, on a display of their own
# (tests/panel.rs).
start_xfce_panel
# DISPLAY, DBUS_SESSION_BUS_ADDRESS and XDG_RUNTIME_DIR are a test desktop:
# the tests use it instead of starting their own (tests/common/mod.rs).
export CLOUDNAP_TEST_DESKTOP=1
mkdir -p "$CARGO_TARGET_DIR/test-artifacts"
export CLOUDNAP_ARTIFACTS="$CARGO_TARGET_DIR/test-artifacts"

cargo fmt --all -- --check
# One full build, not an edit loop: no incremental caches (2.5 GB of the
# debug build's 9.5 GB; a CI run once failed for a full disk).
export CARGO_INCREMENTAL=0
# Windows: every target checked with warnings denied, and the debug
# cloudnap.exe that tests/windows.rs runs under Wine. It compiles at low
# priority beside everything else: while the Linux tests compile it takes the
# core they leave idle (each build has long stretches of one huge crate, the
# AWS SDK's), and while they run (mostly waiting on real timeouts) it takes
# what they leave. Only tests/windows.rs waits for it.
nice -n 19 build/windows.sh ci > "$CLOUDNAP_CACHE/windows.log" 2>&1 &
windows=$!
linux=0
cargo test --locked --no-run || linux=$?
if [ "$linux" != 0 ]; then
  wait "$windows" || cat "$CLOUDNAP_CACHE/windows.log"
  exit "$linux"
fi
# The Wayland, GNOME and KDE scenarios spend ~3 minutes waiting out real idle
# timeouts, each in its own compositor and with only that compositor's idle
# source on: they run beside the other tests rather than after them.
apart=" gnome wayland kde "
apart_exes=$(cargo test --locked --no-run $(printf -- '--test %s ' $apart) 2>&1 |
  sed -n 's/^ *Executable .*(\(.*\))$/\1/p')
if [ "$(wc -w <<< "$apart_exes")" != "$(wc -w <<< "$apart")" ]; then
  echo "the executables of$apart were not found: $apart_exes" >&2
  exit 1
fi
(for exe in $apart_exes; do "$exe" || exit; done) > "$CLOUDNAP_CACHE/test-apart.log" 2>&1 &
apart_pid=$!
others=()
for t in tests/*.rs; do
  name=$(basename "$t" .rs)
  [[ $apart == *" $name "* || $name == windows ]] || others+=(--test "$name")
done
status=0
cargo test --locked --no-fail-fast --lib --bins "${others[@]}" 2>&1 | tee "$CLOUDNAP_CACHE/test.log" || status=1
cargo test --locked --doc 2>&1 | tee -a "$CLOUDNAP_CACHE/test.log" || status=1
if wait "$windows"; then
  tail -3 "$CLOUDNAP_CACHE/windows.log"
  CLOUDNAP_WINDOWS_EXE=$(tail -1 "$CLOUDNAP_CACHE/windows.log")
  export CLOUDNAP_WINDOWS_EXE
  cargo test --locked --test windows 2>&1 | tee -a "$CLOUDNAP_CACHE/test.log" || status=1
else
  cat "$CLOUDNAP_CACHE/windows.log"
  echo "build/windows.sh ci failed" >&2
  status=1
fi
wait "$apart_pid" || status=1
cat "$CLOUDNAP_CACHE/test-apart.log"
[ "$status" = 0 ] || exit 1
# The README's demo, unattended: sleep from idleness, wake by command.
./build/demo.sh --once
