// Front cache: the last translations of (SID, 4 KiB page), for the fast path.
//
// The architecture tags the IOTLB by domain, so a hit normally costs the
// context-cache lookup (SID -> DID, width, type) and then a DID-tagged IOTLB
// probe. This direct-mapped cache keyed by (SID, page) holds the final answer
// of such a translation, so a repeated request costs one probe, as in a plain
// hash table.
//
// It is an implementation cache layered on the two architected ones and never
// widens what they allow: it is filled only from a translation that went
// through both (both enabled), it holds only successful translations on pages
// away from the interrupt range, and every context-cache or IOTLB
// invalidation of any granularity empties it (a generation bump, O(1)). An
// entry whose IOTLB entry was evicted may stay: that translation was valid
// and has not been invalidated, which is an allowed outcome.
//
// Slot (32 bytes, `fcSlots` of them, power of two):
//   0: u64 key = page (IOVA >> 12, < 2^45) << 16 | SID     8: u64 frame (51:12) | W (1) | R (0)
//  16: u32 generation (0 = never filled)                   20: pad

import { tryAlloc } from "./alloc";

let fcBase: usize = 0;
let fcMask: u32 = 0; // slots - 1; fcBase == 0 when off
/** Current generation; slots from another generation are empty. Starts at 1. */
let fcGen: u32 = 1;

export function frontCacheInit(slots: u32): bool {
  if (slots == 0) return true;
  const n = <u32>1 << (31 - clz<u32>(slots));
  fcBase = tryAlloc(<usize>n * 32);
  fcMask = n - 1;
  return fcBase != 0;
}

// @ts-ignore: decorator
@inline function slotOf(key: u64): usize {
  return fcBase + ((<usize>(<u32>((key * 0x9E3779B97F4A7C15) >> 32) & fcMask)) << 5);
}

/**
 * The cached frame | W | R for (sid, iova), or 0. `iova` must be below 2^57
 * (the caller checks), so the key never aliases.
 */
// @ts-ignore: decorator
@inline export function frontLookup(sid: u32, iova: u64): u64 {
  if (fcBase == 0) return 0;
  const key = ((iova >> 12) << 16) | <u64>sid;
  const s = slotOf(key);
  return select<u64>(load<u64>(s, 8), 0, load<u64>(s) == key && load<u32>(s, 16) == fcGen);
}

export function frontFill(sid: u32, iova: u64, value: u64): void {
  if (fcBase == 0 || (iova >> 57) != 0) return;
  const key = ((iova >> 12) << 16) | <u64>sid;
  const s = slotOf(key);
  store<u64>(s, key);
  store<u64>(s, value, 8);
  store<u32>(s, fcGen, 16);
}

/** Empties the front cache (every invalidation does). */
export function frontFlush(): void {
  if (fcBase == 0) return;
  fcGen++;
  if (fcGen == 0) { // wrapped: old generations could match again
    memory.fill(fcBase, 0, (<usize>fcMask + 1) << 5);
    fcGen = 1;
  }
}
