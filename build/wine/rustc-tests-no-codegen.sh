#!/bin/sh
# RUSTC_WRAPPER of the Windows build (build/windows.sh): this package's test
# targets never run on Windows, so they are type-checked only (every lint,
# warnings denied, no code generation: -Zno-codegen), and an empty file is left
# where the exe would go, so cargo finds its output and the target stays fresh
# until its code changes. Everything else is compiled as asked.
rustc=$1
shift
[ -n "$CARGO_PRIMARY_PACKAGE" ] || exec "$rustc" "$@"
name= out= extra= test=
prev=
for arg in "$@"; do
  case "$prev" in
    --crate-name) name=$arg ;;
    --out-dir) out=$arg ;;
    -C) case "$arg" in extra-filename=*) extra=${arg#extra-filename=} ;; esac ;;
  esac
  [ "$arg" = --test ] && test=1
  prev=$arg
done
# CLOUDNAP_CHECK_ONLY: crate names checked the same way (bins the tests never run).
case " ${CLOUDNAP_CHECK_ONLY:-} " in *" $name "*) test=1 ;; esac
[ -n "$test" ] && [ -n "$name" ] && [ -n "$out" ] || exec "$rustc" "$@"
"$rustc" "$@" -Zno-codegen || exit
: > "$out/$name$extra.exe"
