// Second-level paging entries (digest §4.2, §4.3), the same 64-bit format at
// every level:
//
//   63 ign | 62 TM | 61:52 ign | 51:HAW Rsvd | HAW-1:12 ADDR | 11 SNP | 10:8 ign
//   7 PS | 6:2 ign (see below) | 1 W | 0 R
//
// R = W = 0 means not present. PS = 1 at level 2 (2 MiB) or 3 (1 GiB) makes the
// entry a leaf (CAP.SLLPS advertises both); PS is reserved at levels 4 and 5 and
// is not a size bit at level 1. SNP (bit 11) is reserved in non-leaf entries,
// and in leaves unless ECAP.SC. TM (bit 62) is reserved unless ECAP.DT.
// Bits 6:2 are left ignored as QEMU 7.2 leaves them (digest §4.2 note X: the
// sources disagree, and faulting on them would reject tables Linux writes).
//
// The masks are computed once per configuration from the field constants and
// the configured width, then each check is one AND.

import { bitMask64, rangeMask64 } from "./bits";
import { entryAddrBits, hasFlag } from "./config";
import { tryAlloc } from "./alloc";
import { FLAG_DT, FLAG_SC } from "./abi";

// @ts-ignore: decorator
@inline export const SL_R_BIT: u32 = 0;
// @ts-ignore: decorator
@inline export const SL_W_BIT: u32 = 1;
// @ts-ignore: decorator
@inline export const SL_PS_BIT: u32 = 7;
// @ts-ignore: decorator
@inline export const SL_SNP_BIT: u32 = 11;
// @ts-ignore: decorator
@inline export const SL_TM_BIT: u32 = 62;
// @ts-ignore: decorator
@inline export const SL_ADDR_LO: u32 = 12;
// @ts-ignore: decorator
@inline export const SL_ADDR_END: u32 = 52;
// @ts-ignore: decorator
@inline export const SL_RW_MASK: u64 = 3;
/** Each table is 512 entries: a level consumes 9 bits of the address. */
// @ts-ignore: decorator
@inline export const SL_INDEX_BITS: u32 = 9;

/**
 * Address bit where the region one entry at `level` maps begins (digest
 * §4.1): 12 at level 1 (4 KiB), 21 at level 2 (2 MiB), 30 at level 3 (1 GiB),
 * and so on. The entry index at `level` is the 9 address bits from there.
 */
// @ts-ignore: decorator
@inline export function levelShift(level: u32): u32 {
  return SL_ADDR_LO + SL_INDEX_BITS * (level - 1);
}

/** Entry bits that hold an address (of a table or a page frame). */
// @ts-ignore: decorator
@inline export function slAddrMask(): u64 {
  return rangeMask64(SL_ADDR_LO, SL_ADDR_END);
}

/**
 * Reserved masks: `rsvdTable` + 8 * level for non-leaf entries (levels 2..5)
 * and the level-1 leaf; `rsvdLeaf` + 8 * level for PS=1 leaves (levels 2, 3).
 */
export let rsvdTable: usize = 0;
export let rsvdLeaf: usize = 0;

export function slpteInit(): bool {
  rsvdTable = tryAlloc(8 * 6);
  rsvdLeaf = tryAlloc(8 * 6);
  if (rsvdTable == 0 || rsvdLeaf == 0) return false;
  const addrRsvd = rangeMask64(entryAddrBits, SL_ADDR_END);
  // TM is a leaf field (meaningful with device-TLBs): reserved in every
  // non-leaf entry, and in leaves unless ECAP.DT (digest §4.2, §4.3).
  const tm = bitMask64(SL_TM_BIT);
  const leafTm: u64 = hasFlag(FLAG_DT) ? 0 : tm;
  const snp = bitMask64(SL_SNP_BIT);
  const leafSnp: u64 = hasFlag(FLAG_SC) ? 0 : snp;
  const table = addrRsvd | tm | snp;
  const leaf = addrRsvd | leafTm | leafSnp;
  // Level 1: always a leaf; bit 7 is not a size bit there.
  store<u64>(rsvdTable + 8, leaf);
  store<u64>(rsvdTable + 16, table);
  store<u64>(rsvdTable + 24, table);
  store<u64>(rsvdTable + 32, table | bitMask64(SL_PS_BIT));
  store<u64>(rsvdTable + 40, table | bitMask64(SL_PS_BIT));
  // Large leaves: the frame address must be aligned to the page size.
  store<u64>(rsvdLeaf + 16, leaf | rangeMask64(SL_ADDR_LO, levelShift(2)));
  store<u64>(rsvdLeaf + 24, leaf | rangeMask64(SL_ADDR_LO, levelShift(3)));
  return true;
}
