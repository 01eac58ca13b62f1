#!/bin/sh
# Builds firmware/out/vtd-fw.bin (64 KiB, reset vector at the top) from
# vtd-fw.S with GNU as and ld (Debian package binutils).  Idempotent; safe to
# run concurrently (the image is written under a temporary name and renamed).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/out"
for tool in as ld; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build.sh: '$tool' not found; install it with: apt-get install -y binutils" >&2
    exit 1
  fi
done
mkdir -p "$out"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
as --32 -o "$tmp/vtd-fw.o" "$here/vtd-fw.S"
# Link at the address the image is mapped at, so absolute references (the
# far jump, the GDT/IDT bases) come out right; emit a flat binary.
ld -m elf_i386 -Ttext=0xffff0000 -e _start --oformat binary -o "$tmp/vtd-fw.bin" "$tmp/vtd-fw.o"
size=$(wc -c < "$tmp/vtd-fw.bin")
if [ "$size" -ne 65536 ]; then
  echo "build.sh: image is $size bytes, expected 65536" >&2
  exit 1
fi
mv -f "$tmp/vtd-fw.bin" "$out/vtd-fw.bin"
echo "$out/vtd-fw.bin"
