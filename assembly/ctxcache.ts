// Context cache (digest §7.1): context entries that passed every check,
// tagged by source id and domain id. Only present, valid entries are cached
// (caching mode allows more; this unit never caches a not-present or faulting
// entry, which every mode permits).
//
// Direct-mapped by SID: 65536 slots of 16 bytes, so a lookup is one load.
//
//   0: u64 word = SLPTPTR (63:12) | AW (6:4) | TT (3:2) | FPD (1) | V (0)   (0 = empty)
//   8: u16 DID   10: u8 input width (min(aw, AGAW), for the fast path)   11: u8 pad
//  12: u32 position in the valid list
//
// A list of the SIDs that hold an entry lets domain-selective and global
// invalidation visit only live entries.
//
// Scalable mode: an entry is the RID_PASID PASID entry of the SID (DID = the
// PASID entry's). Second-stage and pass-through entries use the word above
// (TT 0 or 2). First-stage and nested ones use TT = 3 (CC_TT_FIRST_STAGE,
// reserved in legacy contexts) with the word's bits 31:12 holding RID_PASID,
// and the PASID entry's QW0 and QW2 in a side table of 16 bytes per SID
// (allocated with scalable mode only). The fast path declines TT 2 and 3.

import { tryAlloc } from "./alloc";
import { count, countN, C_CTX_INVALIDATED } from "./counters";
import { CTXW_AW_SHIFT, CTXW_FPD_BIT, CTXW_TT_SHIFT } from "./abi";

// @ts-ignore: decorator
@inline const SLOTS: u32 = 65536;
// @ts-ignore: decorator
@inline export const CC_VALID: u64 = 1;
// @ts-ignore: decorator
@inline export const CC_FPD_BIT: u32 = CTXW_FPD_BIT;
// @ts-ignore: decorator
@inline export const CC_TT_SHIFT: u32 = CTXW_TT_SHIFT;
// @ts-ignore: decorator
@inline export const CC_AW_SHIFT: u32 = CTXW_AW_SHIFT;

/** TT value of a cached first-stage or nested PASID entry (scalable mode). */
// @ts-ignore: decorator
@inline export const CC_TT_FIRST_STAGE: u64 = 3;
/** The RID_PASID field of a CC_TT_FIRST_STAGE word. */
// @ts-ignore: decorator
@inline export const CC_RID_PASID_SHIFT: u32 = 12;

let ccBase: usize = 0;
let ccSide: usize = 0; // scalable mode: u64 PASID entry QW0, u64 QW2 per SID
let ccList: usize = 0; // u16 SIDs
let ccLive: u32 = 0;
/** When false the unit caches no context entries (every request reads the tables). */
export let ccEnabled: bool = true;

export function ctxCacheInit(enabled: bool, scalable: bool): bool {
  ccEnabled = enabled;
  ccBase = tryAlloc(<usize>SLOTS * 16);
  ccList = tryAlloc(<usize>SLOTS * 2);
  if (scalable && enabled) {
    ccSide = tryAlloc(<usize>SLOTS * 16);
    if (ccSide == 0) return false;
  }
  ccLive = 0;
  return ccBase != 0 && ccList != 0;
}

/** Scalable mode: stores the PASID entry words a CC_TT_FIRST_STAGE entry of `sid` stands for (before ccFill). */
export function ccFillSide(sid: u32, qw0: u64, qw2: u64): void {
  if (ccSide == 0) return;
  store<u64>(ccSide + (<usize>sid << 4), qw0);
  store<u64>(ccSide + (<usize>sid << 4), qw2, 8);
}

// @ts-ignore: decorator
@inline export function ccSideQw0(sid: u32): u64 {
  return load<u64>(ccSide + (<usize>sid << 4));
}
// @ts-ignore: decorator
@inline export function ccSideQw2(sid: u32): u64 {
  return load<u64>(ccSide + (<usize>sid << 4), 8);
}
// @ts-ignore: decorator
@inline export function ccHasSide(): bool {
  return ccSide != 0;
}

// @ts-ignore: decorator
@inline export function ccWord(sid: u32): u64 {
  return load<u64>(ccBase + (<usize>sid << 4));
}

// @ts-ignore: decorator
@inline export function ccDid(sid: u32): u32 {
  return load<u16>(ccBase + (<usize>sid << 4), 8);
}

/** Input-address width of the cached context: an IOVA at or above 2^width faults 4h. */
// @ts-ignore: decorator
@inline export function ccWidth(sid: u32): u64 {
  return <u64>load<u8>(ccBase + (<usize>sid << 4), 10);
}

export function ccFill(sid: u32, word: u64, did: u32, width: u32): void {
  if (!ccEnabled) return;
  const p = ccBase + (<usize>sid << 4);
  if (load<u64>(p) == 0) {
    store<u32>(p, ccLive, 12);
    store<u16>(ccList + (<usize>ccLive << 1), <u16>sid);
    ccLive++;
  }
  store<u64>(p, word | CC_VALID);
  store<u16>(p, <u16>did, 8);
  store<u8>(p, <u8>width, 10);
}

function ccRemove(sid: u32): void {
  const p = ccBase + (<usize>sid << 4);
  if (load<u64>(p) == 0) return;
  const pos = load<u32>(p, 12);
  ccLive--;
  const lastSid = <u32>load<u16>(ccList + (<usize>ccLive << 1));
  store<u16>(ccList + (<usize>pos << 1), <u16>lastSid);
  store<u32>(ccBase + (<usize>lastSid << 4), pos, 12);
  store<u64>(p, 0);
  count(C_CTX_INVALIDATED);
}

export function ccInvalidateAll(): void {
  for (let i: u32 = 0; i < ccLive; i++) {
    const sid = <u32>load<u16>(ccList + (<usize>i << 1));
    store<u64>(ccBase + (<usize>sid << 4), 0);
  }
  countN(C_CTX_INVALIDATED, ccLive);
  ccLive = 0;
}

export function ccInvalidateDomain(did: u32): void {
  let i: u32 = 0;
  while (i < ccLive) {
    const sid = <u32>load<u16>(ccList + (<usize>i << 1));
    if (ccDid(sid) == did) ccRemove(sid); // the last entry moved into position i
    else i++;
  }
}

/** Device-selective: SID with the function mask (FM 1/2/3 ignore SID bit 2, bits 2:1, bits 2:0). */
export function ccInvalidateDevice(sid: u32, fm: u32): void {
  const ignore: u32 = fm == 0 ? 0 : (fm == 1 ? 0b100 : (fm == 2 ? 0b110 : 0b111));
  const base = sid & ~ignore;
  for (let f: u32 = 0; f < 8; f++) {
    if ((f & ~ignore) != 0) continue;
    ccRemove(base | f);
  }
}

export function ccLiveCount(): u32 {
  return ccLive;
}
