#!/usr/bin/env bash
# The Windows zip: cloudnap.exe, cloudnap-credentials.exe and a short README.
# Usage: build/windows-zip.sh [--from DIR] [--out DIR]
#   --from DIR  take the two exes from DIR (e.g. a debug cross-build) instead
#               of a release build (build/windows.sh release)
#   --out DIR   where to write cloudnap-VERSION-windows-x86_64.zip (default dist/)
# Prints the zip's path on the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

from= out=dist
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--from DIR] [--out DIR]" >&2; exit 2 ;;
  esac
done
[ -n "$from" ] || from=$(build/windows.sh release | tail -1)

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dir=$work/cloudnap-$version
mkdir -p "$dir"
for exe in cloudnap.exe cloudnap-credentials.exe; do
  # `build/windows.sh ci` leaves an empty cloudnap-credentials.exe (type-checked only).
  if [ "$(head -c 2 "$from/$exe" 2>/dev/null)" != MZ ]; then
    echo "$from/$exe is not a Windows executable (build it: build/windows.sh release)" >&2
    exit 1
  fi
  install -m 644 "$from/$exe" "$dir/$exe"
  x86_64-w64-mingw32-strip "$dir/$exe"
done
# CRLF line ends: Notepad is what opens it.
sed 's/$/\r/' >"$dir/README.txt" <<TEXT
cloudnap $version for Windows (x86_64)

cloudnap puts your AWS dev resources to sleep while you are away and wakes
them, exactly as they were, when you come back.

Install: keep both exes in one folder, e.g. %LOCALAPPDATA%\\Programs\\cloudnap\\
(cloudnap.exe opens the credentials dialog, cloudnap-credentials.exe, from
beside itself).

First steps, in a terminal in that folder:
  cloudnap credentials   AWS keys, checked with STS and saved as a profile
  cloudnap check         writes settings.json and services.yaml the first time
                         (in %APPDATA%\\cloudnap\\config\\) and checks them
  cloudnap run           the tray icon and the idle timer

Start at logon, for your user only:
  schtasks /Create /TN cloudnap /SC ONLOGON /RL LIMITED /TR "\"%LOCALAPPDATA%\\Programs\\cloudnap\\cloudnap.exe\" run"

cloudnap --help lists every command; the full documentation is docs/ in the
source repository (docs/install.md, Install (Windows)).
TEXT
mkdir -p "$out"
zip=$(realpath "$out")/cloudnap-$version-windows-x86_64.zip
rm -f "$zip"
(cd "$work" && python3 -m zipfile -c "$zip" "cloudnap-$version")
echo "$zip"
