// IOTLB (digest §7.1): leaf translations tagged by domain id, page number and
// leaf level, so 2 MiB and 1 GiB pages hit as one entry each.
//
// 4-way set associative; each set is one 64-byte line of four 16-byte ways:
//
//   0: u64 key   = VPN << 19 | DID << 3 | level     (level 1..3; 0 = empty way)
//   8: u64 value = frame address (51:12) | NEAR_INTR (2) | W (1) | R (0)
//      NEAR_INTR: the page overlaps 0xFEE00000-0xFEEFFFFF, so a hit must check
//      the output against the interrupt range (fault Eh); other pages need not.
//
// VPN = IOVA >> levelShift(level) (slpte.ts). The IOVA passed the width check
// before any lookup, so VPN < 2^45 and the key never aliases.
// Replacement evicts one way per set, round-robin (never the whole table,
// unlike QEMU 7.2). A hit costs the hash, one 64-byte line, and compares.
// There is no paging-structure cache: a miss walks from the top, so the
// invalidation hint (IH) needs no handling.

import { tryAlloc } from "./alloc";
import { count, countN, C_IOTLB_EVICT, C_IOTLB_FILL, C_IOTLB_INVALIDATED } from "./counters";
import { levelShift, SL_ADDR_LO } from "./slpte";

// @ts-ignore: decorator
@inline const WAYS: u32 = 4;
// @ts-ignore: decorator
@inline const WAY_BYTES: u32 = 16;
// @ts-ignore: decorator
@inline const SET_BYTES: u32 = WAYS * WAY_BYTES;
// @ts-ignore: decorator
@inline export const KEY_DID_SHIFT: u32 = 3;
// @ts-ignore: decorator
@inline export const V_NEAR_INTR: u64 = 4;
/** Bits of an entry value that are not the frame address. */
// @ts-ignore: decorator
@inline export const V_FLAGS: u64 = 7;
// @ts-ignore: decorator
@inline export const KEY_VPN_SHIFT: u32 = 19;

let tlbBase: usize = 0;
let tlbVictim: usize = 0; // u8 per set: next way to replace
let setCount: u32 = 0; // power of two, 0 = caching off
let setBits: u32 = 0;
/** Live entries per level (index 1..3): levels with none are not probed. */
let liveAtLevel: usize = 0;
let liveTotal: u32 = 0;

/** Allocates an IOTLB of `entries` (rounded down to a power of two, multiple of 4; 0 = none). */
export function iotlbInit(entries: u32): bool {
  liveAtLevel = tryAlloc(16);
  if (liveAtLevel == 0) return false;
  if (entries < WAYS) {
    setCount = 0;
    return true;
  }
  let sets = entries / WAYS;
  sets = <u32>1 << (31 - clz<u32>(sets));
  setCount = sets;
  setBits = 31 - clz<u32>(sets);
  tlbBase = tryAlloc(<usize>sets * SET_BYTES + 64);
  tlbVictim = tryAlloc(<usize>sets);
  if (tlbBase == 0 || tlbVictim == 0) return false;
  tlbBase = (tlbBase + 63) & ~(<usize>63); // one set per cache line
  return true;
}

export function iotlbCapacity(): u32 {
  return setCount * WAYS;
}

export function iotlbLive(): u32 {
  return liveTotal;
}

// @ts-ignore: decorator
@inline export function iotlbEnabled(): bool {
  return setCount != 0;
}

// @ts-ignore: decorator
@inline export function makeKey(vpn: u64, did: u32, level: u32): u64 {
  return (vpn << KEY_VPN_SHIFT) | (<u64>did << KEY_DID_SHIFT) | <u64>level;
}

// @ts-ignore: decorator
@inline function setOf(key: u64): usize {
  // Hash without the level bits so the three page sizes of one region spread.
  // Two shifts so that one set (setBits 0) indexes 0: a single shift by 64
  // would wrap to a shift by 0 in Wasm.
  const h = <u32>((((key >> KEY_DID_SHIFT) * 0x9E3779B97F4A7C15) >> (63 - setBits)) >> 1);
  return tlbBase + <usize>h * SET_BYTES;
}

// @ts-ignore: decorator
@inline function probe(key: u64): u64 {
  // Branch-free: a hit lands in any of the four ways at random, so an
  // early-return chain mispredicts about once per lookup. A key is in at most
  // one way of its set, so OR-ing the selected values yields the hit or 0.
  const s = setOf(key);
  return select<u64>(load<u64>(s, 8), 0, load<u64>(s) == key)
    | select<u64>(load<u64>(s, 24), 0, load<u64>(s, 16) == key)
    | select<u64>(load<u64>(s, 40), 0, load<u64>(s, 32) == key)
    | select<u64>(load<u64>(s, 56), 0, load<u64>(s, 48) == key);
}

/** Level of the last hit (1..3), valid after iotlbLookup returned non-zero. */
export let hitLevel: u32 = 0;

/**
 * Looks up the translation of `iova` in domain `did`: the entry value
 * (frame | W | R, never 0 for a live entry since R or W is set) or 0 on a miss.
 */
// @ts-ignore: decorator
@inline export function iotlbLookup4k(did: u32, iova: u64): u64 {
  return probe(makeKey(iova >> 12, did, 1));
}

// @ts-ignore: decorator
@inline export function iotlbLookup(did: u32, iova: u64): u64 {
  if (setCount == 0) return 0; // no IOTLB configured (setOf would hash into nothing)
  let v = probe(makeKey(iova >> 12, did, 1));
  if (v != 0) {
    hitLevel = 1;
    return v;
  }
  if (load<u32>(liveAtLevel, 8) != 0) {
    v = probe(makeKey(iova >> 21, did, 2));
    if (v != 0) {
      hitLevel = 2;
      return v;
    }
  }
  if (load<u32>(liveAtLevel, 12) != 0) {
    v = probe(makeKey(iova >> 30, did, 3));
    if (v != 0) {
      hitLevel = 3;
      return v;
    }
  }
  return 0;
}

// @ts-ignore: decorator
@inline function adjustLive(level: u32, delta: i32): void {
  const p = liveAtLevel + (<usize>level << 2);
  store<u32>(p, <u32>(<i32>load<u32>(p) + delta));
  liveTotal = <u32>(<i32>liveTotal + delta);
}

export function iotlbFill(did: u32, iova: u64, level: u32, value: u64): void {
  if (setCount == 0) return;
  const shift = levelShift(level);
  const frame = value & ~V_FLAGS;
  if (frame <= 0xfeefffff && frame + ((<u64>1 << shift) - 1) >= 0xfee00000) value |= V_NEAR_INTR;
  const key = makeKey(iova >> shift, did, level);
  const s = setOf(key);
  let way: u32 = WAYS;
  for (let w: u32 = 0; w < WAYS; w++) {
    const k = load<u64>(s + w * WAY_BYTES);
    if (k == key) { // refresh in place
      store<u64>(s + w * WAY_BYTES, value, 8);
      return;
    }
    if (k == 0 && way == WAYS) way = w;
  }
  if (way == WAYS) {
    const vi = tlbVictim + ((s - tlbBase) / SET_BYTES);
    way = load<u8>(vi);
    store<u8>(vi, <u8>((way + 1) & (WAYS - 1)));
    const old = load<u64>(s + way * WAY_BYTES);
    adjustLive(<u32>(old & 7), -1);
    count(C_IOTLB_EVICT);
  }
  store<u64>(s + way * WAY_BYTES, key);
  store<u64>(s + way * WAY_BYTES, value, 8);
  adjustLive(level, 1);
  count(C_IOTLB_FILL);
}

export function iotlbInvalidateAll(): void {
  if (setCount == 0) return;
  memory.fill(tlbBase, 0, <usize>setCount * SET_BYTES);
  countN(C_IOTLB_INVALIDATED, liveTotal);
  memory.fill(liveAtLevel, 0, 16);
  liveTotal = 0;
}

// @ts-ignore: decorator
@inline function dropWay(p: usize): void {
  adjustLive(<u32>(load<u64>(p) & 7), -1);
  store<u64>(p, 0);
  store<u64>(p, 0, 8);
  count(C_IOTLB_INVALIDATED);
}

export function iotlbInvalidateDomain(did: u32): void {
  if (setCount == 0 || liveTotal == 0) return;
  const end = tlbBase + <usize>setCount * SET_BYTES;
  for (let p = tlbBase; p < end; p += WAY_BYTES) {
    const k = load<u64>(p);
    if (k != 0 && <u32>((k >> KEY_DID_SHIFT) & 0xffff) == did) dropWay(p);
  }
}

/** Removes the entry with `key` if present. */
function dropKey(key: u64): void {
  const s = setOf(key);
  for (let w: u32 = 0; w < WAYS; w++) {
    if (load<u64>(s + w * WAY_BYTES) == key) dropWay(s + w * WAY_BYTES);
  }
}

/**
 * Page-selective invalidation (digest §7.3): every entry of `did` whose page
 * overlaps the 2^am 4 KiB pages containing `addr`, including large pages.
 */
export function iotlbInvalidatePages(did: u32, addr: u64, am: u32): void {
  if (setCount == 0 || liveTotal == 0) return;
  const first = (addr >> 12) & ~((<u64>1 << am) - 1); // first 4 KiB page number
  const pages: u64 = <u64>1 << am;
  // Few pages: probe each candidate; many: one pass over the table.
  if (pages <= <u64>(setCount)) {
    for (let v = first; v < first + pages; v++) dropKey(makeKey(v, did, 1));
    if (load<u32>(liveAtLevel, 8) != 0) {
      const a = first >> 9, b = (first + pages - 1) >> 9;
      for (let v = a; v <= b; v++) dropKey(makeKey(v, did, 2));
    }
    if (load<u32>(liveAtLevel, 12) != 0) {
      const a = first >> 18, b = (first + pages - 1) >> 18;
      for (let v = a; v <= b; v++) dropKey(makeKey(v, did, 3));
    }
    return;
  }
  const last = first + pages - 1;
  const end = tlbBase + <usize>setCount * SET_BYTES;
  for (let p = tlbBase; p < end; p += WAY_BYTES) {
    const k = load<u64>(p);
    if (k == 0 || <u32>((k >> KEY_DID_SHIFT) & 0xffff) != did) continue;
    const level = <u32>(k & 7);
    const shift = levelShift(level) - SL_ADDR_LO; // 4 KiB pages per entry, log 2
    const lo = (k >> KEY_VPN_SHIFT) << shift; // first 4 KiB page of the entry
    const hi = lo + (<u64>1 << shift) - 1;
    if (lo <= last && hi >= first) dropWay(p);
  }
}
