#!/usr/bin/env bash
# Builds the stripped release binaries into dist/ (cloudnap, and the
# credentials dialog cloudnap-credentials, which must sit beside it) and
# reports their sizes.
# Usage: ./build/build_executable.sh      (see README "Install" for the rest)
set -euo pipefail
cd "$(dirname "$0")/.."
. build/env.sh
ensure_packages
cargo build --release --locked --bin cloudnap --bin cloudnap-credentials
mkdir -p dist
for bin in cloudnap cloudnap-credentials; do
  install -m 755 "$CARGO_TARGET_DIR/release/$bin" "dist/$bin"
  # The release profile strips symbols; strip again in case an override did not.
  strip "dist/$bin" 2>/dev/null || true
  echo "dist/$bin: $(stat -c %s "dist/$bin" | numfmt --to=iec) ($(stat -c %s "dist/$bin") bytes)"
done
