#!/usr/bin/env bash
# Builds the stripped release binaries into dist/ (cloudnap, and the
# credentials dialog cloudnap-credentials, which must sit beside it) and
# reports their sizes. With --windows: cloudnap.exe and
# cloudnap-credentials.exe, cross-built with Debian's Rust and mingw-w64
# (build/windows.sh).
# Usage: ./build/build_executable.sh [--windows]   (see docs/install.md for the rest)
set -euo pipefail
cd "$(dirname "$0")/.."
. build/env.sh
ensure_packages
mkdir -p dist
case "${1:-}" in
  "")
    cargo build --release --locked --bin cloudnap --bin cloudnap-credentials
    from=$CARGO_TARGET_DIR/release
    ext=
    strip=strip
    ;;
  --windows)
    from=$(build/windows.sh release | tail -1)
    ext=.exe
    strip=x86_64-w64-mingw32-strip
    ;;
  *)
    echo "usage: $0 [--windows]" >&2
    exit 2
    ;;
esac
for bin in cloudnap cloudnap-credentials; do
  install -m 755 "$from/$bin$ext" "dist/$bin$ext"
  # The release profile strips symbols; strip again in case an override did not.
  "$strip" "dist/$bin$ext" 2>/dev/null || true
  echo "dist/$bin$ext: $(stat -c %s "dist/$bin$ext" | numfmt --to=iec) ($(stat -c %s "dist/$bin$ext") bytes)"
done
