// PASID-tagged IOTLB (VT-d spec §6.2.1; digest §7.1): first-stage and nested
// translations, tagged by domain id, PASID, page number and leaf level. The
// second-stage-only translations keep the DID-tagged IOTLB (iotlb.ts).
//
// Direct-mapped; each slot is 32 bytes:
//
//   0: u64 VPN = IOVA >> levelShift(level) (the whole address: canonical high
//      halves included)
//   8: u32 tag = V (31) | level (22:20) | PASID (19:0)     (0 = empty)
//  12: u16 DID        14: u16 rights: FS_W (0) | FS_U (1) | DIRTY (2) | SS_R (3) | SS_W (4)
//  16: u64 output frame (the host page of `level`, nested: of the smaller stage)
//  24: u64 0
//
// An entry is filled only from a translation that succeeded and whose
// Accessed flags are set; DIRTY says the leaf's Dirty flag is set. A hit that
// would need more than the entry records (a user request to a supervisor
// page, a write the rights or the Dirty flag do not cover) is a miss: the
// request walks again and faults or updates the flags as a walk does.

import { tryAlloc } from "./alloc";
import { count, C_IOTLB_INVALIDATED } from "./counters";
import { levelShift, SL_ADDR_LO } from "./slpte";

// @ts-ignore: decorator
@inline export const PT_FS_W: u32 = 1;
// @ts-ignore: decorator
@inline export const PT_FS_U: u32 = 2;
// @ts-ignore: decorator
@inline export const PT_DIRTY: u32 = 4;
// @ts-ignore: decorator
@inline export const PT_SS_R: u32 = 8;
// @ts-ignore: decorator
@inline export const PT_SS_W: u32 = 16;
// @ts-ignore: decorator
@inline const TAG_VALID: u32 = 1 << 31;
// @ts-ignore: decorator
@inline const TAG_LEVEL_SHIFT: u32 = 20;
// @ts-ignore: decorator
@inline const SLOT: u32 = 32;

let ptBase: usize = 0;
let ptMask: u32 = 0; // slots - 1; ptBase 0 when off
let ptLive: u32 = 0;

/** `slots` rounded down to a power of two; 0 disables it. */
export function pasidTlbInit(slots: u32): bool {
  if (slots == 0) return true;
  const n = <u32>1 << (31 - clz<u32>(slots));
  ptBase = tryAlloc(<usize>n * SLOT);
  ptMask = n - 1;
  return ptBase != 0;
}

// @ts-ignore: decorator
@inline function slotOf(vpn: u64, tag: u32, did: u32): usize {
  const h = (vpn ^ (<u64>tag << 24) ^ (<u64>did << 45)) * 0x9E3779B97F4A7C15;
  return ptBase + ((<usize>(<u32>(h >> 32) & ptMask)) * SLOT);
}

/** After a hit: the entry's level, output frame and rights. */
export let ptHitLevel: u32 = 0;
export let ptHitFrame: u64 = 0;
export let ptHitRights: u32 = 0;

/** Looks up (did, pasid, iova) at levels 1-3; true on a hit (ptHit*). */
export function pasidTlbLookup(did: u32, pasid: u32, iova: u64): bool {
  if (ptBase == 0 || ptLive == 0) return false;
  for (let level: u32 = 1; level <= 3; level++) {
    const vpn = iova >> levelShift(level);
    const tag = TAG_VALID | (level << TAG_LEVEL_SHIFT) | pasid;
    const s = slotOf(vpn, tag, did);
    if (load<u32>(s, 8) == tag && load<u64>(s) == vpn && <u32>load<u16>(s, 12) == did) {
      ptHitLevel = level;
      ptHitFrame = load<u64>(s, 16);
      ptHitRights = load<u16>(s, 14);
      return true;
    }
  }
  return false;
}

export function pasidTlbFill(did: u32, pasid: u32, iova: u64, level: u32, frame: u64, rights: u32): void {
  if (ptBase == 0) return;
  const vpn = iova >> levelShift(level);
  const tag = TAG_VALID | (level << TAG_LEVEL_SHIFT) | pasid;
  const s = slotOf(vpn, tag, did);
  if (load<u32>(s, 8) == 0) ptLive++;
  store<u64>(s, vpn);
  store<u32>(s, tag, 8);
  store<u16>(s, <u16>did, 12);
  store<u16>(s, <u16>rights, 14);
  store<u64>(s, frame, 16);
}

/**
 * Drops entries: every one (`all`), or those of `did` with `pasid` (ANY_PASID: any), and with
 * `pages` > 0 only those overlapping the `pages` 4 KiB pages from `first` (a page number).
 */
export function pasidTlbInvalidate(all: bool, did: u32, pasid: u32, first: u64, pages: u64): void {
  if (ptBase == 0 || ptLive == 0) return;
  const end = ptBase + (<usize>ptMask + 1) * SLOT;
  for (let s = ptBase; s < end; s += SLOT) {
    const tag = load<u32>(s, 8);
    if (tag == 0) continue;
    if (!all) {
      if (<u32>load<u16>(s, 12) != did) continue;
      if (pasid != ANY_PASID && (tag & 0xfffff) != pasid) continue;
      if (pages != 0) {
        const level = (tag >> TAG_LEVEL_SHIFT) & 7;
        const shift = levelShift(level) - SL_ADDR_LO;
        const lo = load<u64>(s) << shift;
        const hi = lo + (<u64>1 << shift) - 1;
        if (lo > first + pages - 1 || hi < first) continue;
      }
    }
    store<u32>(s, 0, 8);
    ptLive--;
    count(C_IOTLB_INVALIDATED);
  }
}

/** pasidTlbInvalidate: any PASID of the DID. */
// @ts-ignore: decorator
@inline export const ANY_PASID: u32 = 0xffffffff;
