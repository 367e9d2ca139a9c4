# Shared setup for build/*.sh: packages, the moto venv, starting and stopping
# helper processes. Source it; it defines functions and sets no traps.

CLOUDNAP_CACHE=${CLOUDNAP_CACHE:-$HOME/.cache/cloudnap}
mkdir -p "$CLOUDNAP_CACHE"
# One warm target dir outside the clone: CI clones afresh, the cache stays.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CLOUDNAP_CACHE/target}
VENV=$CLOUDNAP_CACHE/venv
STARTED_PIDS=()

# Debian packages the build and tests need: toolchain helpers, Python for
# moto, X11 libraries for the detectors, Xvfb/openbox/xdotool to test them,
# and headless sway (typed into with wtype), mutter (driven through its
# RemoteDesktop D-Bus API with python3-dbus) and kwin_wayland (typed into
# through build/kwin/fake-input.c, built with wayland-scanner from
# plasma-wayland-protocols) for the Wayland detectors;
# nc and openssl for the documented ways of sending signed commands;
# OpenSSH's client and server for wake on connect (tests/ssh_proxy.rs);
# Debian's Rust with its std source, mingw-w64 and Wine for the Windows
# build and its smoke tests (build/windows.sh, tests/windows.rs);
# dpkg-dev and man-db for the Debian package and its test (build/deb.sh,
# tests/package.rs); xfce4-panel and dunst, a panel and a notification
# daemon users run (tests/panel.rs).
APT_PACKAGES=(ca-certificates curl gcc pkg-config python3 python3-venv
  libx11-dev libxtst-dev libxi-dev libxcb1-dev libdbus-1-dev
  libclang-dev libpipewire-0.3-dev libgbm-dev libegl-dev libwayland-dev libxrandr-dev
  libasound2-dev libegl-mesa0 libgl1-mesa-dri
  xvfb openbox xdotool x11-utils pulseaudio pulseaudio-utils sox
  haskell-gtk-sni-tray-utils imagemagick dbus-x11 dbus-bin
  sway wtype foot mutter dbus-user-session python3-dbus python3-gi
  netcat-openbsd openssl chromium openssh-server openssh-client
  kwin-wayland plasma-wayland-protocols libwayland-bin
  rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 wine64
  dpkg-dev man-db xfce4-panel dunst)

ensure_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  # dunst is started by the tests that use it (start_xfce_panel). Started by
  # D-Bus activation on the shared test desktop instead, by any notification
  # there, it would draw on the screen that the screen detector's tests
  # watch: its activation file is diverted out of the way (dpkg keeps it so).
  local dunst=/usr/share/dbus-1/services/org.knopwob.dunst.service
  if [ -e "$dunst" ]; then
    dpkg-divert --quiet --local --rename --add "$dunst"
  fi
  if ! command -v cargo >/dev/null; then
    echo "cargo not found: install a Rust toolchain (1.90 or newer, e.g. with rustup)" >&2
    exit 1
  fi
}

# A Python venv with moto[server], the local AWS emulator.
# The aws CLI (v1, from PyPI) beside it: tests/sso_login.rs checks that it
# signs in with the SSO token cache `cloudnap login` writes.
ensure_moto() {
  if [ ! -x "$VENV/bin/moto_server" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q 'moto[server]==5.*'
  fi
  if [ ! -x "$VENV/bin/aws" ]; then
    # Keep moto's botocore: the aws CLI release that fits it.
    "$VENV/bin/pip" install -q awscli "botocore==$("$VENV/bin/python" -c 'import botocore; print(botocore.__version__)')"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_moto [VAR [NAME=VALUE...]]: starts moto on a free loopback port with
# the given environment and exports its URL as VAR (default CLOUDNAP_MOTO_URL).
start_moto() {
  local var=${1:-CLOUDNAP_MOTO_URL}
  shift || true
  local port; port=$(free_port)
  # MOTO_ECS_SERVICE_RUNNING: ECS services of up to 10 tasks run them all
  # (rolloutState COMPLETED), as on AWS once a deployment is done; moto's
  # default (none running, IN_PROGRESS) is a deployment that never ends,
  # which cloudnap's busy veto leaves running.
  env MOTO_ECS_SERVICE_RUNNING=10 "$@" "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$CLOUDNAP_CACHE/moto-$var.log" 2>&1 &
  local moto=$!
  STARTED_PIDS+=($moto)
  export "$var=http://127.0.0.1:$port"
  for _ in $(seq 300); do
    curl -fs "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && return 0
    kill -0 $moto 2>/dev/null || break
    sleep 0.2
  done
  echo "moto_server did not start; see $CLOUDNAP_CACHE/moto-$var.log" >&2
  return 1
}

# Starts Xvfb on a free display, with RECORD (on by default) and openbox as
# the window manager; exports DISPLAY.
start_x() {
  # Xvfb picks the free display number itself and writes it to fd 3 when
  # it accepts connections (no race with another run starting an X server);
  # -noreset: no server reset when the last client leaves, which would drop
  # a client connecting at that moment (openbox, just after dbus-launch).
  local displayfd n=
  displayfd=$(mktemp)
  Xvfb -displayfd 3 -noreset -screen 0 "${X_SCREEN:-1280x800x24}" -nolisten tcp \
    3>"$displayfd" >"$CLOUDNAP_CACHE/xvfb.log" 2>&1 &
  local xvfb=$!
  STARTED_PIDS+=($xvfb)
  # Generous limits here and below: a loaded machine (parallel builds) is slow.
  for _ in $(seq 600); do
    n=$(cat "$displayfd")
    [ -n "$n" ] || ! kill -0 $xvfb 2>/dev/null && break
    sleep 0.05
  done
  rm -f "$displayfd"
  if [ -z "$n" ]; then
    echo "Xvfb did not start; see $CLOUDNAP_CACHE/xvfb.log" >&2
    return 1
  fi
  export DISPLAY=":$n"
  # A private session bus (the tray and notifications use D-Bus); no
  # accessibility bus, which GTK (the tray host) would otherwise start and leave behind.
  eval "$(dbus-launch --sh-syntax)"
  export NO_AT_BRIDGE=1
  STARTED_PIDS+=("$DBUS_SESSION_BUS_PID")
  openbox >"$CLOUDNAP_CACHE/openbox.log" 2>&1 &
  local openbox=$!
  STARTED_PIDS+=($openbox)
  # Managing windows once it has announced itself on the root window.
  for _ in $(seq 600); do
    xprop -root _NET_SUPPORTING_WM_CHECK 2>/dev/null | grep -q 'window id' && return 0
    kill -0 $openbox 2>/dev/null || break
    sleep 0.05
  done
  echo "openbox did not start; see $CLOUDNAP_CACHE/openbox.log" >&2
  return 1
}

# Starts a StatusNotifierItem tray host (with its own watcher) as a bar at
# the top right of the screen, like a desktop panel's tray area.
start_tray_host() {
  local host
  : >"$CLOUDNAP_CACHE/sni-tray.log"
  # Its own watcher can lose a start-up race on a loaded machine (the host
  # calls the watcher's name before owning it, then exits): start it again.
  for _ in 1 2 3; do
    gtk-sni-tray-standalone --watcher --top --end --size 32 \
      >>"$CLOUDNAP_CACHE/sni-tray.log" 2>&1 &
    host=$!
    STARTED_PIDS+=($host)
    for _ in $(seq 300); do
      dbus-send --session --print-reply --dest=org.freedesktop.DBus / \
        org.freedesktop.DBus.NameHasOwner string:org.kde.StatusNotifierWatcher 2>/dev/null |
        grep -q true && return 0
      kill -0 $host 2>/dev/null || break
      sleep 0.1
    done
    kill -0 $host 2>/dev/null && break # running, but no watcher after 30 s
  done
  echo "the tray host did not start; see $CLOUDNAP_CACHE/sni-tray.log" >&2
  return 1
}

# Starts a private PulseAudio with a null sink `vsink` as the default
# output (its monitor is what the audio detector hears) and a second null
# sink `micsink` standing in for a microphone.
start_pulse() {
  # The socket is $XDG_RUNTIME_DIR/pulse/native. (Do not set
  # PULSE_RUNTIME_PATH: the pulseaudio crate behind cpal misreads it.)
  export XDG_RUNTIME_DIR="$CLOUDNAP_CACHE/xdg-$$"
  mkdir -p -m 700 "$XDG_RUNTIME_DIR"
  pulseaudio --daemonize=yes --exit-idle-time=-1 --log-target=stderr 2>"$CLOUDNAP_CACHE/pulse.log"
  PULSE_STARTED=1
  for _ in $(seq 300); do
    pactl info >/dev/null 2>&1 && break
    sleep 0.1
  done
  if ! pactl info >/dev/null 2>&1; then
    echo "PulseAudio did not start; see $CLOUDNAP_CACHE/pulse.log" >&2
    return 1
  fi
  pactl load-module module-null-sink sink_name=vsink >/dev/null
  pactl load-module module-null-sink sink_name=micsink >/dev/null
  pactl set-default-sink vsink
  pactl set-default-source micsink.monitor
}

# The unprivileged user the compositors run as (sway refuses to run as root).
DESKTOP_USER=cloudnap-desktop

ensure_desktop_user() {
  id "$DESKTOP_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$DESKTOP_USER"
}

# Starts headless sway (pixman renderer, no input devices, no Xwayland) as
# $DESKTOP_USER with a foot terminal focused; exports its runtime dir and
# socket name as CLOUDNAP_SWAY_RUNTIME_DIR and CLOUDNAP_SWAY_DISPLAY.
start_sway() {
  ensure_desktop_user
  local dir=/tmp/cloudnap-sway-$$
  mkdir -p -m 700 "$dir"
  printf 'xwayland disable\nexec foot\n' >"$dir/sway.conf"
  chown -R "$DESKTOP_USER" "$dir"
  # setpriv and env exec in place: $! is sway itself.
  setpriv --reuid="$DESKTOP_USER" --regid="$DESKTOP_USER" --init-groups \
    env HOME="$(getent passwd "$DESKTOP_USER" | cut -d: -f6)" XDG_RUNTIME_DIR="$dir" \
    WLR_BACKENDS=headless WLR_LIBINPUT_NO_DEVICES=1 WLR_RENDERER=pixman \
    sway -c "$dir/sway.conf" >"$CLOUDNAP_CACHE/sway.log" 2>&1 &
  STARTED_PIDS+=($!)
  export CLOUDNAP_SWAY_RUNTIME_DIR=$dir
  for _ in $(seq 100); do
    local sock
    sock=$(find "$dir" -maxdepth 1 -name 'wayland-*' -type s -printf '%f\n' 2>/dev/null | head -1)
    if [ -n "$sock" ] && swaymsg -s "$dir"/sway-ipc.*.sock -t get_tree 2>/dev/null | grep -q '"app_id": "foot"'; then
      export CLOUDNAP_SWAY_DISPLAY=$sock
      return 0
    fi
    sleep 0.1
  done
  echo "sway (with foot) did not start; see $CLOUDNAP_CACHE/sway.log" >&2
  return 1
}

# Starts headless mutter (GNOME's compositor) in a session bus of its own;
# exports that bus's address, its runtime dir and Wayland socket as
# CLOUDNAP_MUTTER_BUS, CLOUDNAP_MUTTER_RUNTIME_DIR and CLOUDNAP_MUTTER_DISPLAY.
start_mutter() {
  local dir=/tmp/cloudnap-mutter-$$
  mkdir -p -m 700 "$dir"
  # dbus-run-session stops the bus when mutter (whose pid is kept) exits.
  dbus-run-session -- sh -c 'echo "$DBUS_SESSION_BUS_ADDRESS" >"$0/bus"; echo $$ >"$0/pid"
    XDG_RUNTIME_DIR="$0" exec mutter --headless --wayland --no-x11 --virtual-monitor 1280x800' \
    "$dir" >"$CLOUDNAP_CACHE/mutter.log" 2>&1 &
  for _ in $(seq 100); do
    if [ -s "$dir/bus" ] && [ -S "$dir/wayland-0" ] &&
      DBUS_SESSION_BUS_ADDRESS=$(cat "$dir/bus") gdbus call --session \
        --dest org.gnome.Mutter.IdleMonitor --object-path /org/gnome/Mutter/IdleMonitor/Core \
        --method org.gnome.Mutter.IdleMonitor.GetIdletime >/dev/null 2>&1; then
      STARTED_PIDS+=("$(cat "$dir/pid")")
      export CLOUDNAP_MUTTER_BUS CLOUDNAP_MUTTER_RUNTIME_DIR=$dir CLOUDNAP_MUTTER_DISPLAY=wayland-0
      CLOUDNAP_MUTTER_BUS=$(cat "$dir/bus")
      return 0
    fi
    sleep 0.1
  done
  echo "mutter did not start; see $CLOUDNAP_CACHE/mutter.log" >&2
  return 1
}

# Starts headless kwin_wayland (KDE Plasma's compositor, --virtual) in a
# D-Bus session bus of its own, with its lock screen (so it serves
# org.freedesktop.ScreenSaver) but no automatic locking; builds the
# fake-input client that types into it. Exports CLOUDNAP_KWIN_BUS,
# CLOUDNAP_KWIN_RUNTIME_DIR, CLOUDNAP_KWIN_DISPLAY and CLOUDNAP_KWIN_KEY (the
# client: one key per run). See ../shared/HEADLESS.md's KDE section.
start_kwin() {
  local dir=/tmp/cloudnap-kwin-$$ xml=/usr/share/plasma-wayland-protocols/fake-input.xml
  mkdir -p -m 700 "$dir" "$dir/home/.config"
  wayland-scanner client-header "$xml" "$dir/fake-input-client-protocol.h"
  wayland-scanner private-code "$xml" "$dir/fake-input-protocol.c"
  gcc -O2 -Wall -I"$dir" -o "$dir/kwin-fake-input" build/kwin/fake-input.c \
    "$dir/fake-input-protocol.c" $(pkg-config --cflags --libs wayland-client) || return 1
  # A copy: the installed binary's file capability (cap_sys_resource) is
  # refused in containers; the copy has none.
  cp /usr/bin/kwin_wayland "$dir/"
  printf '[Daemon]\nAutolock=false\nLockOnResume=false\n' >"$dir/home/.config/kscreenlockerrc"
  # KWIN_WAYLAND_NO_PERMISSION_CHECKS: org_kde_kwin_fake_input for any client.
  HOME=$dir/home KWIN_WAYLAND_NO_PERMISSION_CHECKS=1 dbus-run-session -- sh -c \
    'echo "$DBUS_SESSION_BUS_ADDRESS" >"$0/bus"; echo $$ >"$0/pid"
    XDG_RUNTIME_DIR="$0" exec "$0/kwin_wayland" --virtual --width 1280 --height 800 --socket wayland-kwin' \
    "$dir" >"$CLOUDNAP_CACHE/kwin.log" 2>&1 &
  for _ in $(seq 150); do
    if [ -s "$dir/bus" ] && [ -S "$dir/wayland-kwin" ] &&
      DBUS_SESSION_BUS_ADDRESS=$(cat "$dir/bus") gdbus call --session \
        --dest org.freedesktop.ScreenSaver --object-path /ScreenSaver \
        --method org.freedesktop.ScreenSaver.GetActive >/dev/null 2>&1; then
      STARTED_PIDS+=("$(cat "$dir/pid")")
      export CLOUDNAP_KWIN_BUS CLOUDNAP_KWIN_RUNTIME_DIR=$dir CLOUDNAP_KWIN_DISPLAY=wayland-kwin
      export CLOUDNAP_KWIN_KEY=$dir/kwin-fake-input
      CLOUDNAP_KWIN_BUS=$(cat "$dir/bus")
      return 0
    fi
    sleep 0.2
  done
  echo "kwin_wayland did not start; see $CLOUDNAP_CACHE/kwin.log" >&2
  return 1
}

# Starts a second X display of its own (Xvfb, session bus, openbox) with
# the panel and notification daemon users run: xfce4-panel (its
# notification area hosts StatusNotifierItems, build/xfce/xfce4-panel.xml)
# and dunst (whose context menu, `dunstctl context`, picks the action whose
# label is in $HOME/dunst-pick, through build/xfce/dunst-pick.sh as its
# dmenu). Exports CLOUDNAP_XFCE_DISPLAY, CLOUDNAP_XFCE_BUS and
# CLOUDNAP_XFCE_HOME; the caller's DISPLAY and session bus are kept.
start_xfce_panel() {
  local dir=/tmp/cloudnap-xfce-$$ saved_display=${DISPLAY-} saved_bus=${DBUS_SESSION_BUS_ADDRESS-}
  local saved_bus_pid=${DBUS_SESSION_BUS_PID-}
  mkdir -p -m 700 "$dir/home/.config/xfce4/xfconf/xfce-perchannel-xml" "$dir/home/.config/dunst"
  cp build/xfce/xfce4-panel.xml "$dir/home/.config/xfce4/xfconf/xfce-perchannel-xml/"
  printf '[global]\n    dmenu = %s\n' "$PWD/build/xfce/dunst-pick.sh" >"$dir/home/.config/dunst/dunstrc"
  # The bus too runs with this HOME: it starts xfconfd, which reads the panel's
  # configuration.
  HOME=$dir/home XDG_CONFIG_HOME=$dir/home/.config start_x || return 1
  export CLOUDNAP_XFCE_DISPLAY=$DISPLAY CLOUDNAP_XFCE_BUS=$DBUS_SESSION_BUS_ADDRESS CLOUDNAP_XFCE_HOME=$dir/home
  HOME=$dir/home XDG_CONFIG_HOME=$dir/home/.config xfce4-panel >"$CLOUDNAP_CACHE/xfce4-panel.log" 2>&1 &
  STARTED_PIDS+=($!)
  HOME=$dir/home XDG_CONFIG_HOME=$dir/home/.config dunst >"$CLOUDNAP_CACHE/dunst.log" 2>&1 &
  STARTED_PIDS+=($!)
  local ok=
  for _ in $(seq 300); do
    if dbus-send --session --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.ListNames 2>/dev/null |
      grep -q '"org.kde.StatusNotifierWatcher"' && HOME=$dir/home dunstctl is-paused >/dev/null 2>&1; then
      ok=1
      break
    fi
    sleep 0.1
  done
  DISPLAY=$saved_display DBUS_SESSION_BUS_ADDRESS=$saved_bus DBUS_SESSION_BUS_PID=$saved_bus_pid
  [ -n "$saved_display" ] || unset DISPLAY
  [ -n "$saved_bus" ] || unset DBUS_SESSION_BUS_ADDRESS DBUS_SESSION_BUS_PID
  [ -n "$ok" ] && return 0
  echo "xfce4-panel or dunst did not start; see $CLOUDNAP_CACHE/xfce4-panel.log, dunst.log" >&2
  return 1
}

stop_started() {
  if [ -n "${PULSE_STARTED:-}" ]; then
    pulseaudio --kill 2>/dev/null || true
    # The server may still be writing there as it exits: try again once.
    rm -rf "$XDG_RUNTIME_DIR" 2>/dev/null || { sleep 1; rm -rf "$XDG_RUNTIME_DIR"; } || true
  fi
  for pid in "${STARTED_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
