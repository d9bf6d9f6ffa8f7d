#!/usr/bin/env bash
# Set up nanodet-mcu on a Debian/Ubuntu machine: the Arm toolchain, QEMU, clang (fuzzing), and a venv in .venv.
# Idempotent; used by the README's first command and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v arm-none-eabi-gcc >/dev/null || ! command -v qemu-system-arm >/dev/null || ! command -v clang >/dev/null; then
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
    gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm \
    gcc g++ make clang libclang-rt-14-dev python3-venv
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'
echo "nanodet-mcu ready: $(.venv/bin/nanodet-mcu --version)"
