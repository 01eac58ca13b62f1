#!/bin/sh
# Installs what the QEMU conformance tests (test/qemu/qemu.test.ts) need, from
# Debian's packages, if it is missing: qemu-system-x86 (QEMU 7.2 on Debian 12)
# and binutils (GNU as and ld, to build firmware/vtd-fw.bin); also xz-utils,
# which the real-trace tests use to read ../shared/realtraces/*.xz.
# Idempotent: does nothing when all are there. Recommended packages (SeaBIOS, OVMF, iPXE, the
# GTK front end) are skipped: the harness boots its own firmware, and the only
# data file QEMU reads (kvmvapic.bin) comes with a hard dependency.
set -eu

missing=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$missing qemu-system-x86"
{ command -v as >/dev/null 2>&1 && command -v ld >/dev/null 2>&1; } || missing="$missing binutils"
command -v xz >/dev/null 2>&1 || missing="$missing xz-utils"

if [ -z "$missing" ]; then
  echo "install-qemu.sh: already installed: $(qemu-system-x86_64 --version | head -n 1)"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "install-qemu.sh: need root (or sudo) to install:$missing" >&2
    exit 1
  fi
fi

echo "install-qemu.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# shellcheck disable=SC2086 # $missing is a list of package names
$sudo apt-get install -y -q --no-install-recommends $missing
qemu-system-x86_64 --version | head -n 1
