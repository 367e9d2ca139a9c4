#!/usr/bin/env bash
# Builds the stripped release binary into dist/cloudnap and reports its size.
# Usage: ./build/build_executable.sh      (see README "Install" for the rest)
set -euo pipefail
cd "$(dirname "$0")/.."
. build/env.sh
ensure_packages
cargo build --release --locked --bin cloudnap
mkdir -p dist
# The release profile strips symbols; strip again in case a profile override did not.
install -m 755 "$CARGO_TARGET_DIR/release/cloudnap" dist/cloudnap
strip dist/cloudnap 2>/dev/null || true
echo "dist/cloudnap: $(stat -c %s dist/cloudnap | numfmt --to=iec) ($(stat -c %s dist/cloudnap) bytes)"
