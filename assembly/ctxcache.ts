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

let ccBase: usize = 0;
let ccList: usize = 0; // u16 SIDs
let ccLive: u32 = 0;
/** When false the unit caches no context entries (every request reads the tables). */
export let ccEnabled: bool = true;

export function ctxCacheInit(enabled: bool): bool {
  ccEnabled = enabled;
  ccBase = tryAlloc(<usize>SLOTS * 16);
  ccList = tryAlloc(<usize>SLOTS * 2);
  ccLive = 0;
  return ccBase != 0 && ccList != 0;
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
