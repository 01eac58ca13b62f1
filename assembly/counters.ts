// Built-in counters, u64 each, at `counterBase` in linear memory; the host
// reads them through a typed-array view (two u32 halves each) without a call.
// Their names are exported as one string (`counterNames`), one per line, in
// index order, so the host never retypes the list.

import { tryAlloc } from "./alloc";

// @ts-ignore: decorator
@inline export const C_TRANSLATE: u32 = 0;
// @ts-ignore: decorator
@inline export const C_TRANSLATE_OK: u32 = 1;
// @ts-ignore: decorator
@inline export const C_UNTRANSLATED: u32 = 2; // TE off
// @ts-ignore: decorator
@inline export const C_PASSTHROUGH: u32 = 3;
// @ts-ignore: decorator
@inline export const C_INTERRUPT_RANGE: u32 = 4;
// @ts-ignore: decorator
@inline export const C_CTX_HIT: u32 = 5;
// @ts-ignore: decorator
@inline export const C_CTX_MISS: u32 = 6;
// @ts-ignore: decorator
@inline export const C_IOTLB_HIT: u32 = 7;
// @ts-ignore: decorator
@inline export const C_IOTLB_MISS: u32 = 8;
// @ts-ignore: decorator
@inline export const C_IOTLB_FILL: u32 = 9;
// @ts-ignore: decorator
@inline export const C_IOTLB_EVICT: u32 = 10;
// @ts-ignore: decorator
@inline export const C_IOTLB_INVALIDATED: u32 = 11; // entries removed by invalidation
// @ts-ignore: decorator
@inline export const C_CTX_INVALIDATED: u32 = 12;
// @ts-ignore: decorator
@inline export const C_WALKS: u32 = 13;
// @ts-ignore: decorator
@inline export const C_WALK_L1: u32 = 14; // entries read at level 1..5: 14..18
// @ts-ignore: decorator
@inline export const C_ROOT_READS: u32 = 19;
// @ts-ignore: decorator
@inline export const C_CTX_READS: u32 = 20;
// @ts-ignore: decorator
@inline export const C_FAULTS: u32 = 21;
// @ts-ignore: decorator
@inline export const C_FAULTS_RECORDED: u32 = 22;
// @ts-ignore: decorator
@inline export const C_FAULTS_FPD: u32 = 23;
// @ts-ignore: decorator
@inline export const C_FAULTS_COLLAPSED: u32 = 24;
// @ts-ignore: decorator
@inline export const C_FAULTS_OVERFLOW: u32 = 25;
// @ts-ignore: decorator
@inline export const C_FAULT_EVENTS: u32 = 26;
// @ts-ignore: decorator
@inline export const C_CCMD_GLOBAL: u32 = 27; // 27..29 global, domain, device
// @ts-ignore: decorator
@inline export const C_IOTLB_GLOBAL: u32 = 30; // 30..32 global, domain, page
/** Descriptor types: the 4-bit type field of QW0 (qi.ts), so the per-type block has one slot for each value. */
// @ts-ignore: decorator
@inline export const QI_DESC_TYPES: u32 = 16;
// @ts-ignore: decorator
@inline export const C_QI_DESC: u32 = 33; // 33..48: descriptors processed by type 0..15
// The counters after the per-type block are placed from its end, so a type index (0..QI_DESC_TYPES-1)
// can never land on one of them.
// @ts-ignore: decorator
@inline export const C_QI_ERRORS: u32 = C_QI_DESC + QI_DESC_TYPES;
// @ts-ignore: decorator
@inline export const C_COMPLETION_EVENTS: u32 = C_QI_ERRORS + 1;
// @ts-ignore: decorator
@inline export const C_REG_READS: u32 = C_QI_ERRORS + 2;
// @ts-ignore: decorator
@inline export const C_REG_WRITES: u32 = C_QI_ERRORS + 3;
// @ts-ignore: decorator
@inline export const C_IR_REQUESTS: u32 = C_QI_ERRORS + 4;
// @ts-ignore: decorator
@inline export const C_IR_REMAPPED: u32 = C_QI_ERRORS + 5;
// @ts-ignore: decorator
@inline export const C_IR_COMPAT: u32 = C_QI_ERRORS + 6; // compatibility format passed through (CFIS)
// @ts-ignore: decorator
@inline export const C_IR_POSTED: u32 = C_QI_ERRORS + 7;
// @ts-ignore: decorator
@inline export const C_IR_FAULTS: u32 = C_QI_ERRORS + 8;
// @ts-ignore: decorator
@inline export const C_IEC_HIT: u32 = C_QI_ERRORS + 9;
// @ts-ignore: decorator
@inline export const C_IEC_MISS: u32 = C_QI_ERRORS + 10;
/** Range walks (shadow sync, rangewalk.ts), apart from the request walks of `C_WALKS`. */
// @ts-ignore: decorator
@inline export const C_RANGE_WALKS: u32 = C_QI_ERRORS + 11;
/** Entries the range walks read (all levels), apart from `C_WALK_L1`.. which count request walks. */
// @ts-ignore: decorator
@inline export const C_RANGE_WALK_ENTRIES: u32 = C_QI_ERRORS + 12; // 61
/** First-stage walks (PGTT 001 and 011), apart from `C_WALKS` which counts second-stage walks. */
// @ts-ignore: decorator
@inline export const C_FS_WALKS: u32 = C_QI_ERRORS + 13; // 62
/** Accessed/Dirty updates the unit wrote to first-stage entries. */
// @ts-ignore: decorator
@inline export const C_AD_WRITES: u32 = C_QI_ERRORS + 14; // 63: the last named counter; the block ends before 64
// @ts-ignore: decorator
@inline export const C_FAULT_REASON: u32 = 64; // 64..319: faults by reason code 0..255
// @ts-ignore: decorator
@inline export const COUNTER_COUNT: u32 = 320;

export const COUNTER_NAMES: string =
  "translate\ntranslate.ok\ntranslate.untranslated\ntranslate.passthrough\ntranslate.interruptRange\n" +
  "ctx.hit\nctx.miss\niotlb.hit\niotlb.miss\niotlb.fill\niotlb.evict\niotlb.invalidated\nctx.invalidated\n" +
  "walk.count\nwalk.level1\nwalk.level2\nwalk.level3\nwalk.level4\nwalk.level5\nwalk.rootReads\nwalk.ctxReads\n" +
  "fault.count\nfault.recorded\nfault.fpdSuppressed\nfault.collapsed\nfault.overflow\nfault.events\n" +
  "ccmd.global\nccmd.domain\nccmd.device\niotlbInv.global\niotlbInv.domain\niotlbInv.page\n" +
  "qi.type0\nqi.context\nqi.iotlb\nqi.devtlb\nqi.iec\nqi.wait\nqi.type6\nqi.type7\nqi.type8\nqi.type9\nqi.type10\nqi.type11\nqi.type12\nqi.type13\nqi.type14\nqi.type15\n" +
  "qi.errors\nqi.completionEvents\nreg.reads\nreg.writes\n" +
  "ir.requests\nir.remapped\nir.compatPassed\nir.posted\nir.faults\niec.hit\niec.miss\n" +
  "rangeWalk.count\nrangeWalk.entries\nwalk.firstStage\nwalk.adWrites";

export let counterBase: usize = 0;

export function countersInit(): bool {
  counterBase = tryAlloc(<usize>COUNTER_COUNT * 8);
  return counterBase != 0;
}

// @ts-ignore: decorator
@inline export function count(i: u32): void {
  const p = counterBase + (<usize>i << 3);
  store<u64>(p, load<u64>(p) + 1);
}

// @ts-ignore: decorator
@inline export function countN(i: u32, n: u64): void {
  const p = counterBase + (<usize>i << 3);
  store<u64>(p, load<u64>(p) + n);
}
