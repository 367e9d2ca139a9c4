#!/usr/bin/env bash
# The test environment of one integration-test binary, started on request:
# tests/common/mod.rs runs this when build/test.sh has not exported one, so
# a plain `cargo test` works (once build/test.sh has installed the packages
# and the moto venv).
#
# Usage: build/test-env.sh [PART...]
# Protocol: each argument, then each line on stdin, names one part to start:
#   moto        moto_server              -> CLOUDNAP_MOTO_URL
#   moto-auth   moto checking keys       -> CLOUDNAP_MOTO_AUTH_URL
#   x           Xvfb, D-Bus, openbox     -> DISPLAY DBUS_SESSION_BUS_ADDRESS NO_AT_BRIDGE
#   tray        a StatusNotifier host (starts x first if needed)
#   pulse       PulseAudio, null sinks   -> XDG_RUNTIME_DIR
#   sway        headless sway + foot     -> CLOUDNAP_SWAY_DISPLAY CLOUDNAP_SWAY_RUNTIME_DIR
#   mutter      headless mutter + bus    -> CLOUDNAP_MUTTER_BUS CLOUDNAP_MUTTER_RUNTIME_DIR CLOUDNAP_MUTTER_DISPLAY
#   kwin        headless kwin_wayland + bus, fake-input client
#                                        -> CLOUDNAP_KWIN_BUS CLOUDNAP_KWIN_RUNTIME_DIR CLOUDNAP_KWIN_DISPLAY CLOUDNAP_KWIN_KEY
#   xfce        own Xvfb + bus, xfce4-panel, dunst
#                                        -> CLOUDNAP_XFCE_DISPLAY CLOUDNAP_XFCE_BUS CLOUDNAP_XFCE_HOME
# and is answered on stdout by NAME=value lines, then READY, or by one line
# ERROR <why>. When stdin closes (the test process exited, even by SIGKILL)
# or the parent process is gone, everything started is stopped.
set -uo pipefail
cd "$(dirname "$0")/.."
. build/env.sh

# Answers go to fd 3; everything started gets stdout = stderr and no fd 3, so
# no background process holds the answer pipe.
exec 3>&1 1>&2
PARENT=$PPID
trap stop_started EXIT
trap 'exit 130' INT TERM HUP

MISSING="run ./build/test.sh once first (it installs moto and the test packages)"

# need CMD...: ERROR unless every command exists.
need() {
  local c
  for c in "$@"; do
    if ! command -v "$c" >/dev/null; then
      echo "ERROR $MISSING; missing: $c" >&3
      return 1
    fi
  done
}

answer() {
  local v
  for v in "$@"; do echo "$v=${!v}" >&3; done
  echo READY >&3
}

# Started in this script (the test process never passes its own desktop in).
X_STARTED=

start_part() {
  case "$1" in
    moto | moto-auth)
      if [ ! -x "$VENV/bin/moto_server" ]; then
        echo "ERROR $MISSING; missing: $VENV/bin/moto_server" >&3
        return
      fi
      need curl python3 || return
      local var=CLOUDNAP_MOTO_URL
      local env=()
      if [ "$1" = moto-auth ]; then
        var=CLOUDNAP_MOTO_AUTH_URL
        env=(INITIAL_NO_AUTH_ACTION_COUNT=0)
      fi
      start_moto "$var" "${env[@]}" 3>&- || { echo "ERROR moto_server did not start; see $CLOUDNAP_CACHE/moto-$var.log" >&3; return; }
      answer "$var"
      ;;
    x)
      need Xvfb xprop dbus-launch openbox xdotool xmessage import || return
      if [ -z "$X_STARTED" ]; then
        start_x 3>&- || { echo "ERROR Xvfb did not start; see $CLOUDNAP_CACHE/xvfb.log" >&3; return; }
        X_STARTED=1
      fi
      answer DISPLAY DBUS_SESSION_BUS_ADDRESS NO_AT_BRIDGE
      ;;
    tray)
      need gtk-sni-tray-standalone dbus-send || return
      if [ -z "$X_STARTED" ]; then
        need Xvfb xprop dbus-launch openbox xdotool xmessage import || return
        start_x 3>&- || { echo "ERROR Xvfb did not start; see $CLOUDNAP_CACHE/xvfb.log" >&3; return; }
        X_STARTED=1
      fi
      start_tray_host 3>&- || { echo "ERROR the tray host did not start; see $CLOUDNAP_CACHE/sni-tray.log" >&3; return; }
      answer DISPLAY DBUS_SESSION_BUS_ADDRESS NO_AT_BRIDGE
      ;;
    pulse)
      need pulseaudio pactl paplay sox || return
      start_pulse 3>&- || { echo "ERROR PulseAudio did not start; see $CLOUDNAP_CACHE/pulse.log" >&3; return; }
      answer XDG_RUNTIME_DIR
      ;;
    sway)
      need sway foot wtype swaymsg setpriv || return
      start_sway 3>&- || { echo "ERROR sway did not start; see $CLOUDNAP_CACHE/sway.log" >&3; return; }
      answer CLOUDNAP_SWAY_DISPLAY CLOUDNAP_SWAY_RUNTIME_DIR
      ;;
    mutter)
      need mutter dbus-run-session gdbus || return
      start_mutter 3>&- || { echo "ERROR mutter did not start; see $CLOUDNAP_CACHE/mutter.log" >&3; return; }
      answer CLOUDNAP_MUTTER_BUS CLOUDNAP_MUTTER_RUNTIME_DIR CLOUDNAP_MUTTER_DISPLAY
      ;;
    kwin)
      need kwin_wayland dbus-run-session gdbus wayland-scanner gcc pkg-config || return
      start_kwin 3>&- || { echo "ERROR kwin_wayland did not start; see $CLOUDNAP_CACHE/kwin.log" >&3; return; }
      answer CLOUDNAP_KWIN_BUS CLOUDNAP_KWIN_RUNTIME_DIR CLOUDNAP_KWIN_DISPLAY CLOUDNAP_KWIN_KEY
      ;;
    xfce)
      need Xvfb xprop dbus-launch openbox xfce4-panel dunst dunstctl || return
      start_xfce_panel 3>&- || { echo "ERROR xfce4-panel or dunst did not start; see $CLOUDNAP_CACHE/xfce4-panel.log" >&3; return; }
      answer CLOUDNAP_XFCE_DISPLAY CLOUDNAP_XFCE_BUS CLOUDNAP_XFCE_HOME
      ;;
    *)
      echo "ERROR unknown part '$1'" >&3
      ;;
  esac
}

# Parts named as arguments are started right away, in order.
for part in "$@"; do start_part "$part"; done

while true; do
  if read -r -t 1 part; then
    [ -n "$part" ] && start_part "$part"
  elif [ $? -le 128 ]; then
    break # EOF: the test process closed its end or exited
  else
    # A timeout: is the test process still there? (If it died, this
    # script was handed to another parent.)
    read -r _ _ _ ppid _ </proc/$$/stat
    [ "$ppid" = "$PARENT" ] || break
  fi
done
