#!/usr/bin/env bash
# Set up nanodet-mcu on a Debian/Ubuntu machine: the Arm toolchain, QEMU, clang (fuzzing), cmake (the RT projects'
# build.sh), and a venv in .venv.
# Idempotent; used by the README's first command and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=""
for tool in arm-none-eabi-gcc qemu-system-arm clang cmake; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages for:$missing"
  # Another apt (unattended upgrades on a fresh machine) may hold the locks: wait for it instead of failing.
  # install waits on the dpkg lock by itself (DPkg::Lock::Timeout); update has no such option, so it is retried.
  for try in $(seq 30); do
    $SUDO apt-get update && break
    [ "$try" -lt 30 ] || exit 1
    echo "setup: apt-get update failed (another apt running?), retrying in 10 s"; sleep 10
  done
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
    gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm \
    gcc g++ make cmake clang libclang-rt-14-dev python3-venv
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
# setuptools >= 77 builds the package (SPDX licence); the wheel check in the tests builds with this venv's.
.venv/bin/pip install --quiet --upgrade pip 'setuptools>=77'
.venv/bin/pip install --quiet -e '.[test,pyocd]'
echo "nanodet-mcu ready: $(.venv/bin/nanodet-mcu --version)"
