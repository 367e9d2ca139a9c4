#!/usr/bin/env bash
# The Debian package: both binaries, the icon, the XDG autostart entry, the
# systemd user unit, the man pages and the bash/zsh/fish completions (the last
# two written by the binary itself from its clap definitions:
# `cloudnap package-files`). Depends are the shared libraries the binaries
# link (dpkg-shlibdeps) plus the ones the credentials dialog loads at run time.
# Usage: build/deb.sh [--from DIR] [--out DIR] [--fast]
#   --from DIR  take cloudnap and cloudnap-credentials from DIR (e.g. a debug
#               build, as tests/package.rs does) instead of a release build
#               (build/build_executable.sh, into dist/)
#   --out DIR   where to write cloudnap_VERSION_ARCH.deb (default dist/)
#   --fast      gzip -1 instead of xz (for tests)
# Prints the .deb's path on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

from= out=dist compress=(-Zxz)
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --fast) compress=(-Zgzip -z1); shift ;;
    *) echo "usage: $0 [--from DIR] [--out DIR] [--fast]" >&2; exit 2 ;;
  esac
done
if [ -z "$from" ]; then
  ./build/build_executable.sh >&2
  from=dist
fi

# The version is the binary's own (`cloudnap --version`: the crate's).
version=$("$from/cloudnap" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root

install -d "$root/DEBIAN"
for bin in cloudnap cloudnap-credentials; do
  install -Dm755 "$from/$bin" "$root/usr/bin/$bin"
  strip "$root/usr/bin/$bin"
done
install -Dm644 assets/active.png "$root/usr/share/icons/hicolor/64x64/apps/cloudnap.png"
# The session entries start the installed binary, not ~/.local/bin's.
sed 's|^Exec=.*|Exec=cloudnap run|' build/cloudnap.desktop |
  install -Dm644 /dev/stdin "$root/etc/xdg/autostart/cloudnap.desktop"
sed -e 's|^ExecStart=.*|ExecStart=/usr/bin/cloudnap run|' \
  -e 's|^# systemd user unit: .*|# systemd user unit: systemctl --user enable --now cloudnap|' build/cloudnap.service |
  install -Dm644 /dev/stdin "$root/usr/lib/systemd/user/cloudnap.service"

"$from/cloudnap" package-files "$work/gen" >/dev/null
install -Dm644 "$work/gen/cloudnap.bash" "$root/usr/share/bash-completion/completions/cloudnap"
install -Dm644 "$work/gen/_cloudnap" "$root/usr/share/zsh/vendor-completions/_cloudnap"
install -Dm644 "$work/gen/cloudnap.fish" "$root/usr/share/fish/vendor_completions.d/cloudnap.fish"
install -d "$root/usr/share/man/man1"
for page in "$work"/gen/*.1; do
  gzip -9n <"$page" >"$root/usr/share/man/man1/$(basename "$page").gz"
done
install -d "$root/usr/share/doc/cloudnap"
printf 'cloudnap\n\nLicense: MIT\n' >"$root/usr/share/doc/cloudnap/copyright"

# dpkg-shlibdeps reads a debian/control, even an empty one.
mkdir -p "$work/debian"
: >"$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O "$root/usr/bin/cloudnap" "$root/usr/bin/cloudnap-credentials" |
  sed -n 's/^shlibs:Depends=//p')
# Loaded at run time (dlopen) by the credentials dialog (winit, wgpu) and the
# Wayland detectors.
dlopened="libegl1, libx11-xcb1, libxcursor1, libxi6, libxkbcommon0, libxkbcommon-x11-0, libwayland-client0"
echo /etc/xdg/autostart/cloudnap.desktop >"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/control" <<EOF
Package: cloudnap
Version: $version
Architecture: $arch
Maintainer: cloudnap developers <cloudnap@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Section: utils
Priority: optional
Depends: $shlibs, $dlopened
Recommends: libegl-mesa0 | libvulkan1, xdg-utils
Description: puts your AWS dev resources to sleep while you are away
 A tray daemon that stops a developer's AWS resources (EC2, ECS, EKS node
 groups, RDS, Auto Scaling groups) while the developer is away and restores
 exactly what it stopped when they come back.
EOF

mkdir -p "$out"
deb=$out/cloudnap_${version}_$arch.deb
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb" >&2
echo "$deb"
