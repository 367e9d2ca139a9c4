#!/usr/bin/env bash
# Windows, cross-built here with Debian's Rust (rustc-web, whose std source
# -Zbuild-std compiles for the target) and mingw-w64.
# Usage: build/windows.sh ci        what CI needs, each dependency compiled once: every
#                                   target (lib, bins, tests, unit tests) checked with
#                                   warnings denied, and the debug cloudnap.exe that
#                                   tests/windows.rs runs, with the Wine test shim beside
#                                   it; prints the exe's path on the last line
#        build/windows.sh check     type-checks every target, warnings denied (no exe)
#        build/windows.sh build     the debug cloudnap.exe and the shim only
#        build/windows.sh release   release cloudnap.exe and cloudnap-credentials.exe;
#                                   prints their directory on the last line
# The target dir is $CLOUDNAP_CACHE/target-win (CLOUDNAP_WIN_TARGET_DIR overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
. build/env.sh

TARGET=x86_64-pc-windows-gnu
WIN_TARGET_DIR=${CLOUDNAP_WIN_TARGET_DIR:-$CLOUDNAP_CACHE/target-win}
DEBUG_DIR=$WIN_TARGET_DIR/$TARGET/debug

# Debian's toolchain, not a rustup one earlier in PATH; RUSTC_BOOTSTRAP
# unlocks -Zbuild-std (there is no prebuilt Windows std in Debian) and
# -Zwarnings, which fails the build on any warning of this crate without
# changing the flags it is compiled with (a warm cache stays warm). The test
# targets never run on Windows: build/wine/rustc-tests-no-codegen.sh
# type-checks them without generating code. The debug build has no debug info
# and no symbol table: the exe is only run by the smoke tests, and without its
# COFF symbols it is a third of the size (for this target rustc emits no
# per-function sections, so mingw's ld keeps every function), quicker to link
# and for Wine to load. std is built without its backtrace symbolizer
# (-Zbuild-std-features without "backtrace": no gimli, object, addr2line); a
# panic prints its message, a backtrace only frame addresses (the release exe
# has no symbols anyway).
wcargo() {
  env PATH=/usr/bin:/bin:/usr/sbin:/sbin RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
    RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$WIN_TARGET_DIR" CARGO_PROFILE_DEV_DEBUG=0 \
    CARGO_PROFILE_DEV_STRIP=symbols \
    RUSTC_WRAPPER="$PWD/build/wine/rustc-tests-no-codegen.sh" \
    /usr/bin/cargo "$1" --target "$TARGET" -Zbuild-std=std,panic_abort -Zbuild-std-features=panic-unwind \
    -Zwarnings --config 'build.warnings="deny"' --locked "${@:2}"
}

# Wine 8 lacks bcryptprimitives.dll: the test-only shim goes beside the exe.
shim() {
  x86_64-w64-mingw32-gcc -shared -O2 -o "$DEBUG_DIR/bcryptprimitives.dll" \
    build/wine/bcryptprimitives.c -ladvapi32
  echo "$DEBUG_DIR/cloudnap.exe"
}

case "${1:-}" in
  ci)
    # One cargo run: the exes built (the dev profile, as `build`), every test
    # target and unit test type-checked only (the wrapper above).
    # cloudnap-credentials.exe, which no test runs under Wine, is type-checked
    # only (`release` builds it).
    CLOUDNAP_CHECK_ONLY=cloudnap_credentials wcargo test --no-run
    shim
    ;;
  check)
    wcargo check --all-targets
    ;;
  build)
    # With a test target: the dependencies' features, hence builds, are ci's.
    wcargo build --bin cloudnap --test windows
    shim
    ;;
  release)
    wcargo build --release --bin cloudnap --bin cloudnap-credentials
    echo "$WIN_TARGET_DIR/$TARGET/release"
    ;;
  *)
    echo "usage: $0 ci|check|build|release" >&2
    exit 2
    ;;
esac
