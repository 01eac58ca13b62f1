// Guest-physical memory as the remapping unit sees it (issue: "Guest memory").
//
// Two modes, chosen at configure():
// * sparse (default): the guest-physical space (up to 2^52 bytes) lives in the
//   core's linear memory, one 4 KiB frame per guest frame that was ever written
//   with non-zero data. Frames are found through an open-addressing hash index
//   keyed by guest frame number (gfn); frames never written read as zeros. A
//   1 TiB guest whose tables use a few MB costs a few MB.
// * external: the embedder owns guest memory; the core calls the imported
//   `guestRead` / `guestWrite` for every access.
//
// In both modes the unit's own accesses are confined to the RAM regions the
// host declared (the trace header's `ram`, or regions an embedder adds): an
// access outside them fails as a memory access does, and the caller turns that
// into the architected fault. A guest can therefore never make the core touch
// linear memory outside what it was given.
//
// Frame index layout (INDEX_SLOT bytes per slot, `indexCap` slots, power of 2):
//
//    0        8        16
//    ├────────┼────────┤
//    │ gfn+1  │ frame  │   gfn+1 == 0 marks an empty slot; frame = linear address
//    └────────┴────────┘

import { tryAlloc } from "./alloc";
import { hasFlag } from "./config";
import { FLAG_EXTERNAL_MEMORY } from "./abi";

// @ts-ignore: decorator
@external("env", "guestRead")
declare function hostGuestRead(gpa: f64, dst: usize, len: u32): i32;
// @ts-ignore: decorator
@external("env", "guestWrite")
declare function hostGuestWrite(gpa: f64, src: usize, len: u32): i32;

// @ts-ignore: decorator
@inline const FRAME_SHIFT: u32 = 12;
// @ts-ignore: decorator
@inline const FRAME_SIZE: u32 = 1 << FRAME_SHIFT;
// @ts-ignore: decorator
@inline const INDEX_SLOT: u32 = 16;
/** Frames are carved from chunks of this many, to keep allocator overhead off each frame. */
// @ts-ignore: decorator
@inline const FRAMES_PER_CHUNK: u32 = 16;
/** Most RAM regions a host may declare. */
// @ts-ignore: decorator
@inline export const MAX_REGIONS: i32 = 16;
/** Highest guest-physical address the unit can reach: 2^52 (x86 physical width). */
// @ts-ignore: decorator
@inline export const GPA_LIMIT: u64 = <u64>1 << 52;

let indexBase: usize = 0;
let indexCap: u32 = 0; // slots, power of two
let indexBits: u32 = 0;
let frameCount: u32 = 0;
let chunkNext: usize = 0;
let chunkLeft: u32 = 0;

let regionCount: i32 = 0;
let regionBase: usize = 0; // MAX_REGIONS x {u64 start, u64 end}
/** Fast path for the common single region [0, end). */
let singleEnd: u64 = 0;

/** Scratch for external-mode accesses and unaligned reads. */
let scratch: usize = 0;

export function memInit(): bool {
  regionBase = tryAlloc(<usize>MAX_REGIONS * 16);
  scratch = tryAlloc(16);
  if (regionBase == 0 || scratch == 0) return false;
  regionCount = 0;
  singleEnd = 0;
  if (hasFlag(FLAG_EXTERNAL_MEMORY)) return true;
  return indexRebuild(1024);
}

/** Declares [start, end) as guest RAM. Returns false when the table is full or the range is bad. */
export function memAddRegion(start: u64, end: u64): bool {
  if (end <= start || end > GPA_LIMIT || regionCount >= MAX_REGIONS) return false;
  const p = regionBase + (<usize>regionCount << 4);
  store<u64>(p, start);
  store<u64>(p, end, 8);
  regionCount++;
  singleEnd = regionCount == 1 && start == 0 ? end : 0;
  return true;
}

export function memRegionCount(): i32 {
  return regionCount;
}

export function memFrameCount(): u32 {
  return frameCount;
}

/** True when every byte of [gpa, gpa + len) is guest RAM. */
export function memInRam(gpa: u64, len: u64): bool {
  const end = gpa + len;
  if (end < gpa) return false; // wraps
  if (end <= singleEnd) return true;
  for (let i = 0; i < regionCount; i++) {
    const p = regionBase + (<usize>i << 4);
    if (gpa >= load<u64>(p) && end <= load<u64>(p, 8)) return true;
  }
  return false;
}

// @ts-ignore: decorator
@inline function hashGfn(gfn: u64): u32 {
  return <u32>((gfn * 0x9E3779B97F4A7C15) >> (64 - indexBits));
}

/** Linear address of the frame holding `gfn`, or 0 when it was never written. */
// @ts-ignore: decorator
@inline function frameLookup(gfn: u64): usize {
  const key = gfn + 1;
  const mask = indexCap - 1;
  let i = hashGfn(gfn);
  while (true) {
    const slot = indexBase + (<usize>i << 4);
    const k = load<u64>(slot);
    if (k == key) return <usize>load<u64>(slot, 8);
    if (k == 0) return 0;
    i = (i + 1) & mask;
  }
}

function indexInsert(gfn: u64, frame: usize): void {
  const mask = indexCap - 1;
  let i = hashGfn(gfn);
  while (true) {
    const slot = indexBase + (<usize>i << 4);
    if (load<u64>(slot) == 0) {
      store<u64>(slot, gfn + 1);
      store<u64>(slot, <u64>frame, 8);
      return;
    }
    i = (i + 1) & mask;
  }
}

function indexRebuild(newCap: u32): bool {
  const oldBase = indexBase;
  const oldCap = indexCap;
  const base = tryAlloc(<usize>newCap * INDEX_SLOT);
  if (base == 0) return false;
  indexBase = base;
  indexCap = newCap;
  indexBits = 32 - clz<u32>(newCap - 1);
  for (let i: u32 = 0; i < oldCap; i++) {
    const slot = oldBase + (<usize>i << 4);
    const k = load<u64>(slot);
    if (k != 0) indexInsert(k - 1, <usize>load<u64>(slot, 8));
  }
  return true;
}

/** The frame for `gfn`, created zero-filled if needed; 0 when memory is exhausted. */
function frameForWrite(gfn: u64): usize {
  const f = frameLookup(gfn);
  if (f != 0) return f;
  // Keep the index at most half full so probes stay short.
  if ((frameCount + 1) * 2 > indexCap) {
    if (indexCap >= 0x40000000 || !indexRebuild(indexCap << 1)) return 0;
  }
  if (chunkLeft == 0) {
    const c = tryAlloc(<usize>FRAME_SIZE * FRAMES_PER_CHUNK);
    if (c == 0) return 0;
    chunkNext = c;
    chunkLeft = FRAMES_PER_CHUNK;
  }
  const frame = chunkNext;
  chunkNext += FRAME_SIZE;
  chunkLeft--;
  indexInsert(gfn, frame);
  frameCount++;
  return frame;
}

// ---- The unit's own accesses (table walks, descriptors, status writes) ----

/** Set by the unit's accessors when an access failed; callers test it right after. */
export let memError: bool = false;

/**
 * Reads the 8 bytes at `gpa` for the unit. On failure returns 0 and sets
 * memError. `gpa` is 8-byte aligned for every architected structure, but any
 * address is handled.
 */
export function unitRead64(gpa: u64): u64 {
  if (!memInRam(gpa, 8)) {
    memError = true;
    return 0;
  }
  memError = false;
  if (hasFlag(FLAG_EXTERNAL_MEMORY)) {
    if (hostGuestRead(<f64>gpa, scratch, 8) != 0) {
      memError = true;
      return 0;
    }
    return load<u64>(scratch);
  }
  const off = <u32>gpa & (FRAME_SIZE - 1);
  if (off <= FRAME_SIZE - 8) {
    const f = frameLookup(gpa >> FRAME_SHIFT);
    return f == 0 ? 0 : load<u64>(f + off);
  }
  // Straddles two frames.
  copyOut(gpa, scratch, 8);
  return load<u64>(scratch);
}

/** Writes a 32-bit value for the unit (invalidation-wait status). False on failure. */
export function unitWrite32(gpa: u64, value: u32): bool {
  if (!memInRam(gpa, 4)) return false;
  store<u32>(scratch, value);
  return copyIn(gpa, scratch, 4);
}

/** Writes a 64-bit value for the unit (first-stage Accessed/Dirty updates). False on failure. */
export function unitWrite64(gpa: u64, value: u64): bool {
  if (!memInRam(gpa, 8)) return false;
  store<u64>(scratch, value);
  return copyIn(gpa, scratch, 8);
}

// ---- Host (guest CPU) accesses ----------------------------------------------

/** Copies `len` bytes from linear memory `src` to guest `gpa`. False when out of memory or refused. */
export function copyIn(gpa: u64, src: usize, len: u32): bool {
  if (hasFlag(FLAG_EXTERNAL_MEMORY)) return hostGuestWrite(<f64>gpa, src, len) == 0;
  let done: u32 = 0;
  while (done < len) {
    const a = gpa + done;
    const off = <u32>a & (FRAME_SIZE - 1);
    let n = FRAME_SIZE - off;
    if (n > len - done) n = len - done;
    let f = frameLookup(a >> FRAME_SHIFT);
    if (f == 0) {
      // Writing zeros to a frame that reads as zeros changes nothing: keep it sparse.
      if (allZero(src + done, n)) {
        done += n;
        continue;
      }
      f = frameForWrite(a >> FRAME_SHIFT);
      if (f == 0) return false;
    }
    memory.copy(f + off, src + done, n);
    done += n;
  }
  return true;
}

/** Copies `len` bytes of guest memory at `gpa` to linear memory `dst`. False when refused. */
export function copyOut(gpa: u64, dst: usize, len: u32): bool {
  if (hasFlag(FLAG_EXTERNAL_MEMORY)) return hostGuestRead(<f64>gpa, dst, len) == 0;
  let done: u32 = 0;
  while (done < len) {
    const a = gpa + done;
    const off = <u32>a & (FRAME_SIZE - 1);
    let n = FRAME_SIZE - off;
    if (n > len - done) n = len - done;
    const f = frameLookup(a >> FRAME_SHIFT);
    if (f == 0) memory.fill(dst + done, 0, n);
    else memory.copy(dst + done, f + off, n);
    done += n;
  }
  return true;
}

function allZero(p: usize, n: u32): bool {
  let i: u32 = 0;
  for (; i + 8 <= n; i += 8) if (load<u64>(p + i) != 0) return false;
  for (; i < n; i++) if (load<u8>(p + i) != 0) return false;
  return true;
}
