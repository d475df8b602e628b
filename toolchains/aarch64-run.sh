#!/bin/sh
# CMAKE_CROSSCOMPILING_EMULATOR of toolchains/aarch64.cmake:
#   aarch64-run.sh --sysroot=DIR PROGRAM ARGS...
# runs an AArch64 ELF program under qemu-user with DIR as its library prefix, and anything
# else as it is: FindPython runs the build machine's Python through the emulator (CMake
# policy CMP0190), and that Python is what the build needs (nanobind, the build's tools).
sysroot=${1#--sysroot=}
shift
if [ -f "$1" ] && [ "$(od -An -tx1 -N20 "$1" | tr -d ' \n' | cut -c1-8,37-40)" = 7f454c46b700 ]; then
  for qemu in qemu-aarch64-static qemu-aarch64; do
    if command -v "$qemu" >/dev/null 2>&1; then
      exec "$qemu" -L "${sysroot:-/usr/aarch64-linux-gnu}" "$@"
    fi
  done
  echo "aarch64-run.sh: no qemu-aarch64(-static) to run $1" >&2
  exit 127
fi
exec "$@"
