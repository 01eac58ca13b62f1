// Second-level paging entries (digest §4.2, §4.3), the same 64-bit format at
// every level:
//
//   63 ign | 62 TM | 61:52 ign | 51:HAW Rsvd | HAW-1:12 ADDR | 11 SNP | 10:8 ign
//   7 PS | 6:2 ign (see below) | 1 W | 0 R
//
// R = W = 0 means not present. PS = 1 makes the entry a leaf at the levels
// CAP.SLLPS advertises (level 2: 2 MiB, level 3: 1 GiB; this unit advertises
// both) and is reserved at the other levels above 1; it is not a size bit at
// level 1, where every entry is a leaf. SNP (bit 11) is reserved in non-leaf
// entries, and in leaves unless ECAP.SC. TM (bit 62) is reserved unless ECAP.DT.
// Bits 6:2 are left ignored as QEMU 7.2 leaves them (digest §4.2 note X: the
// sources disagree, and faulting on them would reject tables Linux writes).
//
// The masks are computed once per configuration from the field constants and
// the configured width, then each check is one AND.
//
// `classifyEntry` is the one rule for what an entry is; both walkers (the
// request walk in translate.ts, the range walk in rangewalk.ts) use it and
// differ only in what they do with the answer.

import { bit64, bitMask64, rangeMask64 } from "./bits";
import { entryAddrBits, hasFlag, SLLPS_VALUE } from "./config";
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
/** The index of an entry in its table: `(iova >> levelShift(level)) & SL_INDEX_MASK`. */
// @ts-ignore: decorator
@inline export const SL_INDEX_MASK: u64 = (<u64>1 << SL_INDEX_BITS) - 1;

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
 * Levels at which PS = 1 makes a leaf: bit `level` set (SLLPS bit 0 is level 2).
 * Kept in step with the reserved masks below, which make PS reserved elsewhere.
 */
// @ts-ignore: decorator
@inline const LARGE_LEAF_LEVELS: u32 = <u32>SLLPS_VALUE << 2;

/**
 * Reserved masks: `rsvdTable` + 8 * level for non-leaf entries (levels 2..5)
 * and the level-1 leaf; `rsvdLeaf` + 8 * level for PS=1 leaves (the levels of
 * LARGE_LEAF_LEVELS).
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
  for (let level: u32 = 2; level <= 5; level++) {
    if ((LARGE_LEAF_LEVELS >> level) & 1) {
      store<u64>(rsvdTable + (<usize>level << 3), table);
      // A large leaf's frame address must be aligned to its page size, so the
      // address bits of a well-formed leaf are its frame at every level.
      store<u64>(rsvdLeaf + (<usize>level << 3), leaf | rangeMask64(SL_ADDR_LO, levelShift(level)));
    } else {
      store<u64>(rsvdTable + (<usize>level << 3), table | bitMask64(SL_PS_BIT));
    }
  }
  return true;
}

// ---- Classification ---------------------------------------------------------

/** The entry points to the next table (`slEntryAddr` is its address). */
// @ts-ignore: decorator
@inline export const SLE_TABLE: u32 = 0;
/** The entry maps a page of `1 << levelShift(level)` bytes (`slEntryAddr` is its frame). */
// @ts-ignore: decorator
@inline export const SLE_LEAF: u32 = 1;
/** R = W = 0: the entry maps nothing; a request through it faults 5h (write) or 6h (read). */
// @ts-ignore: decorator
@inline export const SLE_NOT_PRESENT: u32 = 2;
/** Present with a reserved bit set (PS where no large leaf exists included): fault Ch. */
// @ts-ignore: decorator
@inline export const SLE_RESERVED: u32 = 3;

/**
 * What the entry read at `level` (1..5) is, under this configuration (digest
 * §4.2, §4.3): SLE_NOT_PRESENT, SLE_RESERVED, SLE_LEAF or SLE_TABLE. The rights
 * an entry grants are `entry & SL_RW_MASK` (R = bit 0, W = bit 1), ANDed along
 * the path by the walker.
 */
// @ts-ignore: decorator
@inline export function classifyEntry(entry: u64, level: u32): u32 {
  if ((entry & SL_RW_MASK) == 0) return SLE_NOT_PRESENT;
  const leaf = level == 1 || (((LARGE_LEAF_LEVELS >> level) & 1) != 0 && bit64(entry, SL_PS_BIT));
  const rsvd = load<u64>((leaf && level > 1 ? rsvdLeaf : rsvdTable) + (<usize>level << 3));
  if ((entry & rsvd) != 0) return SLE_RESERVED;
  return leaf ? SLE_LEAF : SLE_TABLE;
}

/**
 * The address a leaf or table entry yields: the next table, or the leaf's
 * frame. Valid for a well-formed entry only; a large leaf's frame needs no
 * further alignment, as its low address bits are reserved (slpteInit).
 */
// @ts-ignore: decorator
@inline export function slEntryAddr(entry: u64): u64 {
  return entry & slAddrMask();
}
