// The core's ABI, and nothing else: thin numeric exports over the unit.
//
// No export takes or returns a 64-bit integer (JavaScript would need BigInt):
// 64-bit values cross as two u32 halves, or as an f64 for guest-physical
// addresses (always below 2^52, so exact). Bulk data crosses through blocks of
// linear memory whose addresses the host asks for once (`layout*`).

import { setPageBudget, tryAlloc } from "./alloc";
import { COUNTER_COUNT, COUNTER_NAMES, counterBase, countN, C_TRANSLATE, C_TRANSLATE_OK, C_CTX_HIT, C_IOTLB_HIT } from "./counters";
import { ccLiveCount } from "./ctxcache";
import { eventBase } from "./events";
import { memAddRegion, memInRam, memFrameCount, copyIn, copyOut, GPA_LIMIT } from "./guestmem";
import { iotlbCapacity, iotlbLive } from "./iotlb";
import { translate as translateOne, translateFast, outAddr, outAddr2, splitLen, setProbing, probeDid, readContext, walkValue, walkLevel, ctxWordOut, ctxDidOut, setRequest, NO_PASID } from "./translate";
import { smMode } from "./config";
import { irRemap, irRemapIoapic, irOutAddr, irOutData, irIndex } from "./irstate";
import { rangeWalk, rwResume, rwEntries, rwBad } from "./rangewalk";
import { configureUnit, isConfigured, mmioRead as unitRead, mmioWrite as unitWrite } from "./unit";
import { BATCH_BAD_REQUEST, BATCH_CAP, CFG_NO_MEMORY, BATCH_RECORD, BREQ_IOVA, BREQ_LEN, BREQ_SID, BREQ_WRITE, BREQ_PASID, BREQ_PRIV, BREQ_EXE, BREQ_PASID_LO_SHIFT, BREQ_PASID_HI_SHIFT, BREQ_LEN_MASK, TREQ_WRITE, TREQ_PRIV, TREQ_EXE, TREQ_PASID, PASID_MAX, BRESP_OUT, BRESP_STATUS, IO_SIZE, MAX_REQUEST_LEN, MEM_BAD_LENGTH, MEM_EXHAUSTED, MEM_OK, MEM_OUTSIDE_RAM, RANGE_CAP, RESULT_VALUE, RESULT_WORD2, RESULT_WORD3, ST_INVALID } from "./abi";


let ioBuf: usize = 0;
let result: usize = 0; // 16 bytes: u64 value (two halves), u32 extra
let batchReq: usize = 0;
let batchResp: usize = 0;
let counterSave: usize = 0; // a copy of the counters while a probe runs

/**
 * Configures the unit once. `flags`: config.ts FLAG_*. `iotlbEntries` 0
 * disables the IOTLB; `contextCache` 0 disables the context cache.
 * `maxPages`: linear-memory budget in 64 KiB pages (guest frames included).
 * Returns 0 or a CFG_* error (unit.ts).
 */
export function configure(aw: u32, flags: u32, nfr: u32, iotlbEntries: u32, contextCache: u32, maxPages: i32): i32 {
  setPageBudget(maxPages);
  if (ioBuf == 0) {
    ioBuf = tryAlloc(IO_SIZE);
    result = tryAlloc(16);
    batchReq = tryAlloc(<usize>BATCH_CAP * 16);
    batchResp = tryAlloc(<usize>BATCH_CAP * 16);
    counterSave = tryAlloc(<usize>COUNTER_COUNT << 3);
    if (ioBuf == 0 || result == 0 || batchReq == 0 || batchResp == 0 || counterSave == 0) return CFG_NO_MEMORY;
  }
  return configureUnit(aw, flags, nfr, iotlbEntries, contextCache != 0);
}

/** Declares guest RAM [start, end). Returns 0, or 1 when refused (bad range, table full). */
export function addRamRegion(start: f64, end: f64): i32 {
  if (!(start >= 0) || !(end > start) || end > <f64>GPA_LIMIT) return 1;
  return memAddRegion(<u64>start, <u64>end) ? 0 : 1;
}

// ---- Layout of the shared blocks (read once by the host) --------------------
export function layoutIo(): usize { return ioBuf; }
export function layoutIoSize(): u32 { return IO_SIZE; }
export function layoutResult(): usize { return result; }
export function layoutBatchRequests(): usize { return batchReq; }
export function layoutBatchResponses(): usize { return batchResp; }
export function layoutBatchCapacity(): u32 { return BATCH_CAP; }
export function layoutEvents(): usize { return eventBase; }
export function layoutCounters(): usize { return counterBase; }
export function layoutCounterCount(): u32 { return COUNTER_COUNT; }
export function layoutCounterNames(): usize { return changetype<usize>(COUNTER_NAMES); }
export function layoutCounterNamesLength(): i32 { return COUNTER_NAMES.length; }

// ---- Registers ------------------------------------------------------------------

/** Reads `size` (1, 2, 4, 8) bytes at `off` into the result block; the host validated the access. */
export function mmioRead(off: u32, size: u32): void {
  const v = unitRead(off, size);
  store<u64>(result, v, RESULT_VALUE);
}

export function mmioWrite(off: u32, size: u32, lo: u32, hi: u32): void {
  unitWrite(off, size, (<u64>hi << 32) | <u64>lo);
}

// ---- Guest memory (the guest CPU's accesses) --------------------------------------


/** Copies `len` bytes from the staging buffer to guest memory at `gpa`. */
export function writeGuest(gpa: f64, len: u32): i32 {
  if (len > IO_SIZE) return MEM_BAD_LENGTH;
  if (!(gpa >= 0) || gpa >= <f64>GPA_LIMIT) return MEM_OUTSIDE_RAM;
  const a = <u64>gpa;
  if (!memInRam(a, len)) return MEM_OUTSIDE_RAM;
  return copyIn(a, ioBuf, len) ? MEM_OK : MEM_EXHAUSTED;
}

/** Copies `len` bytes of guest memory at `gpa` into the staging buffer. */
export function readGuest(gpa: f64, len: u32): i32 {
  if (len > IO_SIZE) return MEM_BAD_LENGTH;
  if (!(gpa >= 0) || gpa >= <f64>GPA_LIMIT) return MEM_OUTSIDE_RAM;
  const a = <u64>gpa;
  if (!memInRam(a, len)) return MEM_OUTSIDE_RAM;
  return copyOut(a, ioBuf, len) ? MEM_OK : MEM_EXHAUSTED;
}

// ---- Translation --------------------------------------------------------------------

/**
 * Translates one DMA request of `len` bytes (1..4096; anything else is ST_INVALID). Returns the
 * status (translate.ts ST_*); the output address is in the result block. For a request that crossed
 * a 4 KiB boundary and completed, the result block's second u64 is the output of the first byte
 * after the boundary (not written otherwise).
 */
export function translate(sid: u32, iovaLo: u32, iovaHi: u32, len: u32, isWrite: u32): u32 {
  const iova = (<u64>iovaHi << 32) | <u64>iovaLo;
  let st: u32 = 0;
  if (len - 1 < MAX_REQUEST_LEN && translateFast(sid & 0xffff, iova, len, isWrite != 0)) countFastHits(1);
  else {
    st = translateOne(sid & 0xffff, iova, len, isWrite != 0);
    if (st == 0 && (<u32>iova & 0xfff) + len > 0x1000) store<u64>(result, outAddr2, RESULT_WORD2); // words 2 and 3
  }
  store<u64>(result, outAddr, RESULT_VALUE);
  return st;
}

/**
 * As `translate`, for a request with PASID `pasid` (scalable mode): `flags` TREQ_WRITE, TREQ_PRIV
 * (supervisor), TREQ_EXE (execute). Requests with PASID never take the fast path (it serves
 * requests without PASID only). ST_INVALID on a unit without scalable mode or for a PASID above
 * 20 bits or a bad length.
 */
export function translatePasid(sid: u32, iovaLo: u32, iovaHi: u32, len: u32, flags: u32, pasid: u32): u32 {
  if (!smMode || pasid > PASID_MAX) return ST_INVALID;
  const iova = (<u64>iovaHi << 32) | <u64>iovaLo;
  setRequest(pasid, (flags & TREQ_PRIV) != 0, (flags & TREQ_EXE) != 0);
  const st = translateOne(sid & 0xffff, iova, len, (flags & TREQ_WRITE) != 0);
  setRequest(NO_PASID, false, false);
  if (st == 0 && (<u32>iova & 0xfff) + len > 0x1000) store<u64>(result, outAddr2, RESULT_WORD2);
  store<u64>(result, outAddr, RESULT_VALUE);
  return st;
}

/** The counters a fast-path hit stands for, added once per call rather than once per request. */
function countFastHits(n: u32): void {
  countN(C_TRANSLATE, n);
  countN(C_CTX_HIT, n);
  countN(C_IOTLB_HIT, n);
  countN(C_TRANSLATE_OK, n);
}


/**
 * Translates `n` requests from the request block into the response block.
 *   request  (16 B): u32 iova lo | u32 iova hi | u32 sid (15:0) | write (bit 16) | u32 len (1..4096)
 *   response (16 B): u32 out lo  | u32 out hi  | u32 status     | u32 split
 * `split` is 0, or for a completed request whose two pages (it crossed a 4 KiB boundary) map to
 * frames that are not contiguous, the bytes at `out`; the rest starts at the translation of
 * iova + split. Returns the number of requests that completed (status 0), or BATCH_BAD_REQUEST | i when
 * request i has a length outside 1..4096: requests before i were translated, i and later were not.
 */
export function translateBatch(n: u32): u32 {
  if (n > BATCH_CAP) n = BATCH_CAP;
  let ok: u32 = 0;
  let fast: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const q = batchReq + <usize>i * BATCH_RECORD;
    const s = batchResp + <usize>i * BATCH_RECORD;
    const w = load<u32>(q, BREQ_SID);
    const iova = load<u64>(q, BREQ_IOVA);
    let len = load<u32>(q, BREQ_LEN);
    let st: u32 = 0;
    let split: u32 = 0;
    if ((w & BREQ_PASID) != 0) {
      // A request with PASID (abi.ts BREQ_PASID): its PASID is split over the two words.
      const lenBits = len & BREQ_LEN_MASK;
      if (!smMode || lenBits - 1 >= MAX_REQUEST_LEN) {
        countFastHits(fast);
        return BATCH_BAD_REQUEST | i;
      }
      setRequest((w >>> BREQ_PASID_LO_SHIFT) | ((len >>> BREQ_PASID_HI_SHIFT) << (32 - BREQ_PASID_LO_SHIFT)),
        (w & BREQ_PRIV) != 0, (w & BREQ_EXE) != 0);
      st = translateOne(w & 0xffff, iova, lenBits, (w & BREQ_WRITE) != 0);
      setRequest(NO_PASID, false, false);
      store<u64>(s, outAddr, BRESP_OUT);
      store<u64>(s, <u64>st | (<u64>splitLen << 32), BRESP_STATUS);
      if (st == 0) ok++;
      continue;
    }
    if (len - 1 >= MAX_REQUEST_LEN) { // len 0 wraps
      countFastHits(fast);
      return BATCH_BAD_REQUEST | i;
    }
    if (translateFast(w & 0xffff, iova, len, (w & BREQ_WRITE) != 0)) fast++;
    else {
      st = translateOne(w & 0xffff, iova, len, (w & BREQ_WRITE) != 0);
      split = splitLen;
    }
    store<u64>(s, outAddr, BRESP_OUT);
    store<u64>(s, <u64>st | (<u64>split << 32), BRESP_STATUS); // BRESP_SPLIT is the word after BRESP_STATUS
    if (st == 0) ok++;
  }
  countFastHits(fast);
  return ok;
}

/**
 * Probes a one-byte request without side effects (`flags` as translatePasid's, plus TREQ_PASID when
 * `pasid` is the request's PASID; no Accessed/Dirty writes either): the request path of `translate` itself (translate.ts
 * `probing`), run without cache lookups or fills and without recording a fault; the counters are
 * restored afterwards. Returns the status `translate` would return on a unit with empty caches; the
 * result block holds the output address, then the leaf level (0 when no table was walked: translation
 * off, pass-through, the interrupt range) and the context's DID. The leaf entry (frame | W | R) is in
 * the response block's first u64.
 */
export function probe(sid: u32, iovaLo: u32, iovaHi: u32, flags: u32, pasid: u32): u32 {
  if ((flags & TREQ_PASID) != 0 && (!smMode || pasid > PASID_MAX)) return ST_INVALID;
  const saved = counterSave;
  memory.copy(saved, counterBase, <usize>COUNTER_COUNT << 3);
  setProbing(true);
  if ((flags & TREQ_PASID) != 0) setRequest(pasid, (flags & TREQ_PRIV) != 0, (flags & TREQ_EXE) != 0);
  const st = translateOne(sid & 0xffff, (<u64>iovaHi << 32) | <u64>iovaLo, 1, (flags & TREQ_WRITE) != 0);
  setRequest(NO_PASID, false, false);
  const did = probeDid;
  setProbing(false);
  memory.copy(counterBase, saved, <usize>COUNTER_COUNT << 3);
  store<u64>(result, outAddr, RESULT_VALUE);
  store<u32>(result, walkLevel, RESULT_WORD2);
  store<u32>(result, did, RESULT_WORD3);
  store<u64>(batchResp, walkValue);
  return st;
}

// ---- Shadow sync support ------------------------------------------------------------

/**
 * Reads the context of `sid` without side effects (no cache, no fault
 * recorded). Returns 0 with the result block holding u64 table | AW << 4 | TT << 2 | FPD << 1
 * and u32 DID at offset 8, or the fault reason a request would get.
 */
export function contextOf(sid: u32): u32 {
  const r = readContext(sid & 0xffff);
  if (r != 0) return r;
  store<u64>(result, ctxWordOut, RESULT_VALUE);
  store<u32>(result, ctxDidOut, RESULT_WORD2);
  return 0;
}

/** Records per walkRange call: the response block holds them (32 bytes each). */
export function layoutRangeCapacity(): u32 { return RANGE_CAP; }

/**
 * The present leaf mappings of the table at (tableHi:tableLo) with `levels`
 * levels over [start, end) (end 0 = 2^64), into the response block
 * (rangewalk.ts records), reading about `budget` entries at most. Returns the
 * count; the result block holds the IOVA to resume from (== end when done),
 * the entries read and the entries skipped as malformed.
 */
export function walkRange(tableLo: u32, tableHi: u32, levels: u32, startLo: u32, startHi: u32, endLo: u32, endHi: u32, budget: u32): u32 {
  const n = rangeWalk((<u64>tableHi << 32) | <u64>tableLo, levels, (<u64>startHi << 32) | <u64>startLo,
    (<u64>endHi << 32) | <u64>endLo, batchResp, RANGE_CAP, budget);
  store<u64>(result, rwResume, RESULT_VALUE);
  store<u32>(result, rwEntries, RESULT_WORD2);
  store<u32>(result, rwBad, RESULT_WORD3);
  return n;
}

// ---- Interrupt remapping -------------------------------------------------------------

/**
 * An MSI write of `data` to address (addrHi:addrLo) from `sid` (`hasSid` 0 for
 * a source without a requester id). Returns 0 (delivered: the interrupt in
 * compatibility format in the result block: u64 address, u32 data, u32 index),
 * 0x1000 (posted: descriptor address, vector | urgent << 8), or a fault status.
 */
export function remapMsi(sid: u32, hasSid: u32, addrLo: u32, addrHi: u32, data: u32): u32 {
  const st = irRemap(sid & 0xffff, hasSid != 0, (<u64>addrHi << 32) | <u64>addrLo, data);
  store<u64>(result, irOutAddr, RESULT_VALUE);
  store<u32>(result, irOutData, RESULT_WORD2);
  store<u32>(result, irIndex, RESULT_WORD3);
  return st;
}

/** An IOAPIC redirection-table entry (rteHi:rteLo) as the IOAPIC sends it. Results as remapMsi. */
export function remapIoapic(sid: u32, hasSid: u32, rteLo: u32, rteHi: u32): u32 {
  const st = irRemapIoapic(sid & 0xffff, hasSid != 0, (<u64>rteHi << 32) | <u64>rteLo);
  store<u64>(result, irOutAddr, RESULT_VALUE);
  store<u32>(result, irOutData, RESULT_WORD2);
  store<u32>(result, irIndex, RESULT_WORD3);
  return st;
}

// ---- Introspection ------------------------------------------------------------------
export function configured(): bool { return isConfigured(); }
export function guestFrames(): u32 { return memFrameCount(); }
export function iotlbEntries(): u32 { return iotlbCapacity(); }
export function iotlbLiveEntries(): u32 { return iotlbLive(); }
export function contextCacheLiveEntries(): u32 { return ccLiveCount(); }
export function memoryPages(): i32 { return memory.size(); }
