#!/bin/sh
# Installs the programs the tests run, from Debian's packages, when one is
# missing; `npm test` (scripts/test.mjs) runs it before any test.
#
#   qemu-system-x86_64  package qemu-system-x86 (QEMU 7.2 on Debian 12), for the
#                       differential tests against QEMU's intel-iommu
#   as, ld              package binutils, to build firmware/out/vtd-fw.bin
#   xz                  package xz-utils, to read test/fixtures/realtraces/*.xz
#
# Usage: sh scripts/install-test-deps.sh [--check]
#   With everything present it prints one line and exits 0 (no apt, no network).
#   Otherwise it installs the missing packages with apt-get, as root, or through
#   sudo when sudo needs no password. When it cannot (not root and no such sudo,
#   no apt-get, apt-get failing) it exits 1 and names the command to run.
#   --check only reports: exit 0 when all is present, 1 (with the command) when not.
#   VTD_QEMU, when set, names the QEMU the tests run (src/qemu/harness.ts): it
#   is checked instead of qemu-system-x86_64 on the PATH, never installed.
#
# Recommended packages (SeaBIOS, OVMF, iPXE, the GTK front end) are not
# installed: the harness boots its own firmware, and the one data file QEMU
# reads (kvmvapic.bin) comes with a hard dependency.
set -u

me="install-test-deps.sh"
uid=$(id -u)
if [ "$uid" = 0 ]; then run_as_root="sh scripts/install-test-deps.sh"
else run_as_root="sudo sh scripts/install-test-deps.sh"; fi

missing_pkgs=""
missing_cmds=""
need() { # need PACKAGE COMMAND...
  pkg=$1
  shift
  absent=""
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || absent="$absent $c"
  done
  if [ -n "$absent" ]; then
    missing_cmds="$missing_cmds$absent"
    missing_pkgs="$missing_pkgs $pkg"
  fi
}
qemu=${VTD_QEMU:-qemu-system-x86_64}
if [ -n "${VTD_QEMU:-}" ] && ! command -v "$VTD_QEMU" >/dev/null 2>&1; then
  echo "$me: VTD_QEMU=$VTD_QEMU is not a program that can be run; set it to QEMU 7.2's qemu-system-x86_64, or unset it" >&2
  exit 1
fi
need qemu-system-x86 "$qemu"
need binutils as ld
need xz-utils xz

if [ -z "$missing_pkgs" ]; then
  echo "$me: test dependencies present ($("$qemu" --version 2>/dev/null | head -n 1), as, ld, xz)"
  exit 0
fi

cannot() { # cannot REASON
  {
    echo "$me: the tests need$missing_cmds, which this machine does not have, and $1."
    echo "Install them (Debian packages:$missing_pkgs), from the repository root:"
    echo "    $run_as_root"
    echo "then run npm test again."
  } >&2
  exit 1
}

if [ "${1:-}" = "--check" ]; then
  cannot "--check installs nothing"
fi

sudo=""
if [ "$uid" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    sudo="sudo -n"
  else
    cannot "installing them needs root (this is user $uid, without password-less sudo)"
  fi
fi
command -v apt-get >/dev/null 2>&1 ||
  cannot "there is no apt-get here (install QEMU 7.2's qemu-system-x86_64, binutils and xz with this system's package manager)"

echo "$me: installing$missing_pkgs with apt-get"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q || cannot "apt-get update failed (exit $?)"
# shellcheck disable=SC2086 # lists of package names
$sudo apt-get install -y -q --no-install-recommends $missing_pkgs ||
  cannot "apt-get install failed (exit $?)"

missing_pkgs=""
missing_cmds=""
need qemu-system-x86 "$qemu"
need binutils as ld
need xz-utils xz
[ -z "$missing_pkgs" ] || cannot "they are still missing after apt-get install"
echo "$me: installed: $(qemu-system-x86_64 --version | head -n 1)"
