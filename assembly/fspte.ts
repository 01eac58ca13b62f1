// First-stage paging entries (VT-d spec §9.7, x86-64 4- and 5-level paging;
// the same 64-bit format at every level):
//
//   63 XD | 62:52 ign | 51:HAW Rsvd | HAW-1:12 ADDR | 11:9 ign | 8 G | 7 PS (PAT at level 1)
//   6 D | 5 A | 4 PCD | 3 PWT | 2 U/S | 1 R/W | 0 P
//
// P = 0: not present (71h). PS = 1 makes a leaf at level 2 (2 MiB) and, with
// CAP.FS1GP, level 3 (1 GiB); it is reserved at levels 4 and 5 and at level 3
// without FS1GP. A large leaf's address is its frame: bit 12 is its PAT bit and
// the bits between 13 and the page size are reserved. Levels 1 and 2 (leaf)
// hold D; G is ignored. XD is an execute-disable bit (this unit refuses
// execute requests before any walk: ECAP.ERS = 0, docs/DESIGN.md).
//
// The masks are computed once per configuration; each check is one AND.

import { bit64, bitMask64, rangeMask64 } from "./bits";
import { entryAddrBits, fs1gp } from "./config";
import { tryAlloc } from "./alloc";
import { levelShift } from "./slpte";

// @ts-ignore: decorator
@inline export const FS_P_BIT: u32 = 0;
// @ts-ignore: decorator
@inline export const FS_RW_BIT: u32 = 1;
// @ts-ignore: decorator
@inline export const FS_US_BIT: u32 = 2;
// @ts-ignore: decorator
@inline export const FS_A_BIT: u32 = 5;
// @ts-ignore: decorator
@inline export const FS_D_BIT: u32 = 6;
// @ts-ignore: decorator
@inline export const FS_PS_BIT: u32 = 7;
// @ts-ignore: decorator
@inline export const FS_LARGE_PAT_BIT: u32 = 12;
// @ts-ignore: decorator
@inline export const FS_ADDR_LO: u32 = 12;
// @ts-ignore: decorator
@inline export const FS_ADDR_END: u32 = 52;
// @ts-ignore: decorator
@inline export const FS_XD_BIT: u32 = 63;

/** Reserved masks: fsRsvdTable + 8 * level (non-leaf and level-1 entries), fsRsvdLeaf + 8 * level (PS = 1 leaves). */
let fsRsvdTable: usize = 0;
let fsRsvdLeaf: usize = 0;
/** Levels at which PS = 1 makes a leaf: bit `level` set. */
let fsLargeLevels: u32 = 0;

export function fsInit(): bool {
  fsRsvdTable = tryAlloc(8 * 6);
  fsRsvdLeaf = tryAlloc(8 * 6);
  if (fsRsvdTable == 0 || fsRsvdLeaf == 0) return false;
  fsLargeLevels = (1 << 2) | (fs1gp ? 1 << 3 : 0);
  const addrRsvd = rangeMask64(entryAddrBits, FS_ADDR_END);
  store<u64>(fsRsvdTable + 8, addrRsvd); // level 1: bit 7 is PAT
  for (let level: u32 = 2; level <= 5; level++) {
    const large = ((fsLargeLevels >> level) & 1) != 0;
    store<u64>(fsRsvdTable + (<usize>level << 3), addrRsvd | (large ? 0 : bitMask64(FS_PS_BIT)));
    store<u64>(fsRsvdLeaf + (<usize>level << 3), addrRsvd | rangeMask64(FS_LARGE_PAT_BIT + 1, levelShift(level)));
  }
  return true;
}

/** The entry points to the next table. */
// @ts-ignore: decorator
@inline export const FSE_TABLE: u32 = 0;
/** The entry maps a page of `1 << levelShift(level)` bytes. */
// @ts-ignore: decorator
@inline export const FSE_LEAF: u32 = 1;
/** P = 0 (71h). */
// @ts-ignore: decorator
@inline export const FSE_NOT_PRESENT: u32 = 2;
/** A reserved bit is set (72h). */
// @ts-ignore: decorator
@inline export const FSE_RESERVED: u32 = 3;

/** What a first-stage entry read at `level` (1..5) is under this configuration. */
// @ts-ignore: decorator
@inline export function classifyFs(entry: u64, level: u32): u32 {
  if (!bit64(entry, FS_P_BIT)) return FSE_NOT_PRESENT;
  const leaf = level == 1 || (((fsLargeLevels >> level) & 1) != 0 && bit64(entry, FS_PS_BIT));
  const rsvd = load<u64>((leaf && level > 1 ? fsRsvdLeaf : fsRsvdTable) + (<usize>level << 3));
  if ((entry & rsvd) != 0) return FSE_RESERVED;
  return leaf ? FSE_LEAF : FSE_TABLE;
}

/** The next table's address, or a leaf's frame (well-formed entries only). */
// @ts-ignore: decorator
@inline export function fsEntryAddr(entry: u64, level: u32): u64 {
  return entry & rangeMask64(level > 1 && bit64(entry, FS_PS_BIT) ? levelShift(level) : FS_ADDR_LO, FS_ADDR_END);
}
