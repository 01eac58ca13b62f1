#!/bin/sh
# Installs the programs the tests run, from Debian's packages, when one is
# missing; `npm test` (scripts/test.mjs) runs it before any test.
#
#   qemu-system-x86_64  package qemu-system-x86 (QEMU 7.2 on Debian 12), for the
#                       differential tests against QEMU's intel-iommu
#   as, ld              package binutils, to build firmware/out/vtd-fw.bin
#   xz                  package xz-utils, to read test/fixtures/realtraces/*.xz
#   QEMU 10             the second reference: Debian 13's qemu-system-x86 in a
#                       minimal Debian 13 root at /opt/vtd-wasm/qemu10, run with
#                       `chroot DIR qemu-system-x86_64` (it cannot be installed
#                       beside 7.2). When the root is absent it is created with
#                         debootstrap --variant=minbase --include=qemu-system-x86 trixie DIR MIRROR
#                       (package debootstrap, installed first; MIRROR is the
#                       Debian mirror apt itself uses; about 5 minutes, ~400 MB).
#                       VTD_QEMU10_ROOT names another directory for it.
#
# Usage: sh scripts/install-test-deps.sh [--check]
#   With everything present it prints one line and exits 0 (no apt, no network).
#   Otherwise it installs the missing packages with apt-get, as root, or through
#   sudo when sudo needs no password. When it cannot (not root and no such sudo,
#   no apt-get, apt-get failing) it exits 1 and names the command to run.
#   --check only reports: exit 0 when all is present, 1 (with the command) when not.
#   VTD_QEMU, when set, names the QEMU the tests run (src/qemu/harness.ts): it
#   is checked instead of qemu-system-x86_64 on the PATH, never installed.
#   The QEMU 10 root is checked with `chroot DIR qemu-system-x86_64 --version`
#   (it must say 10.x); a directory that exists but holds no QEMU is never
#   written into (the script stops and names it). chroot needs root, so the
#   tests against QEMU 10 do too.
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

root10=${VTD_QEMU10_ROOT:-/opt/vtd-wasm/qemu10}
sudo=""
qemu10_version() {
  $sudo chroot "$root10" qemu-system-x86_64 --version 2>/dev/null | head -n 1
}
qemu10_ok() {
  case "$(qemu10_version)" in "QEMU emulator version 10."*) return 0 ;; esac
  return 1
}
# What the QEMU 10 root needs: nothing; "create" (absent or empty); or "bad: REASON".
qemu10_state() {
  if [ -x "$root10/usr/bin/qemu-system-x86_64" ]; then
    if qemu10_ok; then echo ok
    elif [ "$uid" != 0 ]; then echo needs-root
    else echo "bad: chroot $root10 qemu-system-x86_64 --version does not say QEMU 10.x (it says: $(qemu10_version)); remove $root10 or set VTD_QEMU10_ROOT to another directory"
    fi
  elif [ ! -e "$root10" ] || [ -z "$(ls -A "$root10" 2>/dev/null)" ]; then echo create
  else echo "bad: $root10 exists but holds no QEMU (a debootstrap that failed half-way leaves such a directory): remove it (rm -rf $root10) and run this again, or set VTD_QEMU10_ROOT to another directory"
  fi
}
state10=$(qemu10_state)
case "$state10" in bad:*)
  echo "$me: ${state10#bad: }" >&2
  exit 1
esac
[ "$state10" = create ] && { command -v debootstrap >/dev/null 2>&1 || need debootstrap debootstrap; }

needs_root10() {
  echo "$me: QEMU 10 in $root10 runs under chroot, which needs root (this is user $uid): run the tests as root" >&2
  exit 1
}
if [ -z "$missing_pkgs" ] && [ "$state10" = needs-root ]; then needs_root10; fi
if [ -z "$missing_pkgs" ] && [ "$state10" = ok ]; then
  echo "$me: test dependencies present ($("$qemu" --version 2>/dev/null | head -n 1), $(qemu10_version) in $root10, as, ld, xz)"
  exit 0
fi

what_missing="$missing_cmds"
[ "$state10" = create ] && what_missing="$what_missing QEMU 10 (a Debian 13 root at $root10)"
cannot() { # cannot REASON
  {
    echo "$me: the tests need$what_missing, which this machine does not have, and $1."
    if [ -n "$missing_pkgs" ]; then
      echo "Install them (Debian packages:$missing_pkgs), from the repository root:"
    else
      echo "Create it, from the repository root:"
    fi
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
  cannot "there is no apt-get here (install QEMU 7.2's qemu-system-x86_64, binutils, xz and debootstrap with this system's package manager)"

export DEBIAN_FRONTEND=noninteractive
if [ -n "$missing_pkgs" ]; then
  echo "$me: installing$missing_pkgs with apt-get"
  $sudo apt-get update -q || cannot "apt-get update failed (exit $?)"
  # shellcheck disable=SC2086 # lists of package names
  $sudo apt-get install -y -q --no-install-recommends $missing_pkgs ||
    cannot "apt-get install failed (exit $?)"

  missing_pkgs=""
  missing_cmds=""
  need qemu-system-x86 "$qemu"
  need binutils as ld
  need xz-utils xz
  [ "$state10" = create ] && need debootstrap debootstrap
  [ -z "$missing_pkgs" ] || cannot "they are still missing after apt-get install"
  echo "$me: installed: $("$qemu" --version | head -n 1)"
fi
[ "$state10" = needs-root ] && needs_root10

if [ "$state10" = create ]; then
  # The mirror apt uses for Debian itself (not the security archive), as apt lists it.
  mirror=$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null | grep -v -e security -e '^$' | head -n 1)
  mirror=${mirror%/}
  [ -n "$mirror" ] || cannot "apt-get indextargets names no Debian mirror to debootstrap from"
  echo "$me: creating QEMU 10's Debian 13 root: debootstrap --variant=minbase --include=qemu-system-x86 trixie $root10 $mirror (about 5 minutes)"
  $sudo debootstrap --variant=minbase --include=qemu-system-x86 trixie "$root10" "$mirror" ||
    cannot "debootstrap failed (exit $?); remove what it left (rm -rf $root10) before trying again"
  qemu10_ok || cannot "chroot $root10 qemu-system-x86_64 --version does not say QEMU 10.x after debootstrap (it says: $(qemu10_version))"
  echo "$me: installed: $(qemu10_version) in $root10"
  [ "$uid" = 0 ] || echo "$me: note: the tests against QEMU 10 run it with chroot, which needs root: run them as root" >&2
fi
