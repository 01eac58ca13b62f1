// The cached-window model: the SET of DMA outcomes a caching VT-d unit may give.
// (Scalable mode: see "Scalable mode" below, after the legacy description.)
//
// RefModel (model.ts) is a unit that caches nothing, so it gives exactly one answer: the "fresh" one, from
// the tables in memory now. The Wasm core caches (a context cache by SID, an IOTLB by DID, page and leaf
// level), and between a guest's change to a present entry and the invalidation that covers it, hardware
// may use the old entry or the new one (digest §7.1, §7.7). So the core's answer is one of several, and a
// test can only check that it lies in the set this class computes.
//
// How the set is built. The class remembers every entry the core MIGHT hold:
//   * a context entry (sid -> {DID, AW, SLPTPTR, TT, FPD}) each time one that passed every check was used;
//   * an IOTLB leaf ((DID, level, page) -> {frame, R, W}) each time a walk produced one whose rights allowed
//     the access.
// It forgets an entry only when an invalidation that covers it completes (§7.2, §7.3, §7.5). It cannot know
// whether the core still holds a remembered entry (the IOTLB is bounded and evicts), so "remembered" means
// "may be present". Then:
//
//   allowedDma = the fresh outcome (RefModel's walk of the current tables)
//              + for each context C in {remembered contexts of this SID} + {the fresh context}:
//                  (a) each remembered leaf of C's DID that contains the IOVA and whose cached rights allow
//                      the access: the outcome of using it (an IOTLB hit: no walk)
//                  (b) a walk of the CURRENT tables from C's SLPTPTR with C's AW (an IOTLB miss)
//
// Steps 0-1 of §5.1 (interrupt range, TE) come before any cache; pass-through and the input width check
// come from the context and before the IOTLB (§5.1 steps 4-5). All of these rules are RefModel's own code
// (translateBeforeContext, translateInContext), so the fresh model and the windows cannot drift apart.
//
// What is never remembered (§7.1, §8.1, §8.3): a not-present or faulting root/context entry, and a leaf
// whose walk faulted or whose rights refused the access. The core caches none of these in either caching
// mode, so a not-present -> present change takes effect at once, with no invalidation, also with CM=1.
// An IOTLB hit whose cached rights refuse the access is not an outcome: the core walks again, which is (b).
//
// What is deliberately NOT flushed: SRTP (a new root table) and TE changes. The core keeps its caches
// across both, and software must invalidate after them (§7.7: Linux does a global context and IOTLB
// invalidation after SRTP). A context cached under the old root table therefore stays usable.
//
// Choices made where the brief and the core leave a detail open (each errs towards a larger set, which
// can only make a correct core pass; a smaller set could fail it):
//   * A context is remembered whenever an outcome may have come through it, whether the request then
//     succeeded or faulted further down (the core fills its context cache as soon as the context entry
//     passes its checks, before the width check and the walk; the entry is present and valid either way).
//   * A walked leaf is remembered also when the output then overlaps the interrupt range (Eh): the core
//     fills the IOTLB before that check, and the leaf itself is a present, valid entry.
//   * When several ways (paths) give the outcome the core chose, commitDma remembers what every one of them
//     may have cached.
//   * The core keeps one context per SID and one leaf per (DID, level, page); this model keeps every value
//     seen since the last covering invalidation.
// Not modelled, because the core has none: paging-structure caches (non-leaf entries; the invalidation
// hint IH is therefore ignored), device-TLBs, cached not-present entries.
//
// Scalable mode (latched TTM 01; docs/DESIGN.md "Scalable-mode caches"). What the core may hold:
//   * per SID, the RID_PASID PASID entry of a request without PASID (its context cache doubles as the PASID
//     cache), remembered as a PasidEntryWord once it passed every check up to 5Bh, whatever followed;
//   * second-stage leaves tagged by the PASID entry's DID (the legacy `leaves`), for requests with or without
//     PASID, remembered when a walk's rights allowed the access;
//   * first-stage and nested translations tagged by (DID, PASID) (FsLeaf), remembered when the request
//     completed; a hit serves a request only when it covers it (RefModel.translateScalableTail), else the
//     unit walks.
// Requests with PASID read the root, context, directory and PASID entries on every request. So:
//
//   allowedDma = the fresh outcome
//              + for each PASID entry E in {the fresh one} + {remembered ones of this SID, without PASID only}:
//                  (a) each remembered leaf of E (second stage: E's DID; first stage: E's DID and PASID)
//                      that serves the request: the outcome of using it
//                  (b) the walk of the current tables through E
//
// Forgetting (each a subset of what the core drops, so the set is never too small): a context-cache
// invalidation drops remembered PASID entries (global: all; domain: those of the DID; device: the SIDs
// under FM); PASID-cache (type 7): global all, domain those of the DID, PASID-selective those of the DID
// and PASID; IOTLB (type 2 or register): second-stage and first-stage leaves of the DID (global: all; page-
// selective: those pages); PASID-based IOTLB (type 6): the first-stage leaves of (DID, PASID) (or pages).
// A/D flags: a walk sets them, a hit does not; when the chosen outcome came from both kinds of path the
// caller says which flag writes the unit made (commitDma's `chooseFlagWrites`). Changing the latched TTM
// while anything is remembered is not modelled (an error): software invalidates after SRTP.
//
// Interrupt remapping (§9.6) has one cache, the interrupt entry cache (IEC). Decision (the core's): an IRTE
// is cached by its index once it has passed every check (present, reserved bits, source validation when the
// request had a requester id), and stays until an IEC invalidation covers it (descriptor 0x4: global, or the
// 2^IM entries from IIDX aligned down, §7.5). SIRTP does not flush it (software invalidates after SIRTP,
// §9.1), and neither do IRE or CFI changes. So:
//
//   allowedMsi = the fresh outcome (RefModel.msi: the IRTE read from the latched table now)
//              + for each remembered IRTE of the request's index: the outcome of using it, with the
//                entry's own checks repeated as the core repeats them on a hit (P and reserved bits under
//                the current EIME and CAP.PI; source validation for THIS request's sid: an entry cached
//                for one requester may fail SVT for another, 26h), and its FPD.
//
// The steps before the IRTE (IRES, the address and data checks, CFIS / EIME for a compatibility-format
// message, the index against the latched table size) use no cache, so they are always fresh; a cached
// IRTE is never read from memory, so it also answers when the table is now unreadable (23h fresh).

import {
  RefModel,
  type FlagWrite,
  type FsLeaf,
  type ModelDmaRequest,
  type PasidEntryWord,
  isFaultSuppressed,
  toModelMsi,
  type InterruptTranslation,
  type Irte,
  type ModelMsi,
  leafContains,
  leafShift,
  type ContextWord,
  type Invalidation,
  type LeafEntry,
  type ModelConfig,
  type ModelDma,
  type ModelEvent,
  type Translation,
} from './model.js';

// ---------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------

/**
 * The outcome of one DMA request.
 *   ok:     completes at `gpa` (a translated address, the input address when untranslated or pass-through,
 *           or the interrupt address of a write to 0xFEEx_xxxx).
 *   not ok: `reason` is the fault reason (§5.2), or REASON_BLOCKED (0) for a request blocked without a
 *           remapping fault (a read of the interrupt range). `recorded` says whether the fault is recorded
 *           (§6.3: a fault is recorded unless FPD suppresses it; whether a record is then free is the fault
 *           registers' business). `fault` is present exactly when `recorded`, equal to `reason`: the field
 *           RefModel.dma and the trace format report.
 */
export type Outcome = { ok: true; gpa: bigint } | { ok: false; fault?: number; reason: number; recorded: boolean };

/** `reason` of a request blocked without a remapping fault. Fault reasons start at 1 (§5.2). */
export const REASON_BLOCKED = 0;

/** The outcome of a translation (before recording), in the canonical Outcome form. */
export function outcomeOf(t: Translation): Outcome {
  switch (t.kind) {
    case 'ok':
      return { ok: true, gpa: t.gpa };
    case 'blocked':
      return { ok: false, reason: REASON_BLOCKED, recorded: false };
    case 'fault':
      return isFaultSuppressed(t.reason, t.fpd)
        ? { ok: false, reason: t.reason, recorded: false }
        : { ok: false, fault: t.reason, reason: t.reason, recorded: true };
  }
}

/** The outcome as RefModel.dma and the trace format report it. */
export function toModelDma(o: Outcome): ModelDma {
  if (o.ok) return { ok: true, gpa: o.gpa };
  return o.recorded ? { ok: false, fault: o.reason } : { ok: false };
}

/** Two outcomes are the same when they complete at the same address, or fail with the same reason and recording. */
export function sameOutcome(a: Outcome, b: Outcome): boolean {
  if (a.ok || b.ok) return a.ok && b.ok && a.gpa === b.gpa;
  return a.reason === b.reason && a.recorded === b.recorded;
}

export function describeOutcome(o: Outcome): string {
  if (o.ok) return `ok 0x${o.gpa.toString(16)}`;
  if (o.reason === REASON_BLOCKED) return 'blocked';
  return `fault 0x${o.reason.toString(16)}${o.recorded ? '' : ' (suppressed)'}`;
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

/** A remembered IOTLB entry: the leaf and the domain it was filled under (its tag, with level and page). */
export interface CachedLeaf {
  did: number;
  leaf: LeafEntry;
}

/** Two interrupt outcomes are the same when every reported field is (a suppressed fault has none). */
export function sameMsi(a: ModelMsi, b: ModelMsi): boolean {
  if (!a.ok || !b.ok) return !a.ok && !b.ok && a.fault === b.fault;
  if ('posted' in a || 'posted' in b) {
    return 'posted' in a && 'posted' in b && a.descriptor === b.descriptor && a.vector === b.vector && a.urgent === b.urgent;
  }
  return a.addr === b.addr && a.data === b.data;
}

export function describeMsi(m: ModelMsi): string {
  if (m.ok && 'posted' in m) return `posted 0x${m.descriptor.toString(16)} vector 0x${m.vector.toString(16)}${m.urgent ? ' urgent' : ''}`;
  if (m.ok) return `delivered 0x${m.addr.toString(16)} / 0x${m.data.toString(16)}`;
  return m.fault === undefined ? 'blocked (suppressed)' : `fault 0x${m.fault.toString(16)}`;
}

/** One way the unit may answer an interrupt request, and the IRTE it may have cached on that way. */
interface MsiPath {
  t: InterruptTranslation;
  /** The IRTE read from memory on this way when it passed every check: what the IEC may now hold. */
  fill?: { index: number; irte: Irte };
}

function irteKey(e: Irte): string {
  return `${e.lo}/${e.hi}`;
}

/** One way the unit may answer a request, and what it may have cached on that way. */
interface Path {
  outcome: Outcome;
  /** The valid context the way went through (fresh or remembered); absent when decided before any context or by a context fault. */
  ctx?: ContextWord;
  /** The leaf a walk on this way produced that the IOTLB may keep. */
  fill?: CachedLeaf;
  /** Scalable mode: the PASID entry a context cache may keep (a request without PASID), the first-stage translation a PASID-tagged IOTLB may keep, the A/D writes made. */
  pe?: PasidEntryWord;
  fsFill?: FsLeaf;
  flagWrites?: FlagWrite[];
}

function pasidEntryKey(e: PasidEntryWord): string {
  return `${e.pasid}/${e.did}/${e.fpd}/${e.pgtt}/${e.ss.top}/${e.ss.aw}/${e.qw2}`;
}

function fsLeafKey(l: FsLeaf): string {
  return `${l.level}/${l.iovaBase}/${l.frame}/${l.fsW}/${l.fsU}/${l.dirty}/${l.ssR}/${l.ssW}`;
}

function flagWritesKey(w: FlagWrite[] | undefined): string {
  return (w ?? []).map((f) => `${f.addr}:${f.set}`).join(',');
}

/** Scalable-mode fault reasons of the walk's legacy codes (the core's smReason): a remembered context is used under TTM 01 too. */
const TTM_SCALABLE = 1;

function contextKey(c: ContextWord): string {
  return `${c.did}/${c.aw}/${c.slptptr}/${c.tt}/${c.fpd}`;
}

function leafKey(l: LeafEntry): string {
  return `${l.level}/${l.iovaBase}/${l.frame}/${l.r}/${l.w}`;
}

/** The SIDs a device-selective context invalidation names: FM 1, 2, 3 ignore SID bit 2, bits 2:1, bits 2:0 (§7.2). */
function functionMaskMatches(sid: number, target: number, fm: number): boolean {
  const ignored = [0b000, 0b100, 0b110, 0b111][fm & 3]!;
  return (sid & ~ignored) === (target & ~ignored);
}

export class CachedWindowModel {
  /** The fresh, cacheless model underneath; it owns the registers, the memory and the fault records. Use its dma() only for a fresh answer that is not committed. */
  readonly ref: RefModel;
  /** sid -> (context key -> context): the contexts the core's context cache may hold for that SID. */
  private readonly contexts = new Map<number, Map<string, ContextWord>>();
  /** did -> (leaf key -> leaf): the leaves the core's IOTLB may hold for that domain. */
  private readonly leaves = new Map<number, Map<string, LeafEntry>>();
  /** interrupt index -> (IRTE key -> IRTE): the entries the core's interrupt entry cache may hold at that index. */
  private readonly irtes = new Map<number, Map<string, Irte>>();
  /** Scalable mode: sid -> (key -> RID_PASID PASID entry) the context cache may hold. */
  private readonly pasidEntries = new Map<number, Map<string, PasidEntryWord>>();
  /** Scalable mode: `${did}/${pasid}` -> (key -> first-stage or nested translation) the PASID-tagged IOTLB may hold. */
  private readonly fsLeaves = new Map<string, Map<string, FsLeaf>>();
  /** The latched TTM under which the remembered entries were used (null: nothing remembered under a TTM yet). */
  private rememberedTtm: number | null = null;

  constructor(cfg: ModelConfig) {
    this.ref = new RefModel(cfg);
    // The RefModel reports each invalidation when it is performed, which for this serial unit is when it
    // completes: before CCMD.ICC / IOTLB.IVT read 0, and before any later descriptor (wait included) runs.
    this.ref.setInvalidationListener((inv) => this.invalidate(inv));
  }

  // ----- pass-through to the RefModel ------------------------------------------

  get events(): ModelEvent[] {
    return this.ref.events;
  }

  mmioWrite(off: number, size: 4 | 8, val: bigint): void {
    this.ref.mmioWrite(off, size, val); // invalidations reach this.invalidate through the listener
  }

  mmioRead(off: number, size: 4 | 8): bigint {
    return this.ref.mmioRead(off, size);
  }

  /** A guest table write changes nothing remembered: it is the invalidation after it that does (§7.7). */
  writeMem(gpa: bigint, bytes: Uint8Array): void {
    this.ref.writeMem(gpa, bytes);
  }

  readMem(gpa: bigint, len: number): Uint8Array {
    return this.ref.readMem(gpa, len);
  }

  // ----- the window -----------------------------------------------------------

  /**
   * The outcomes permitted now for the request, without duplicates. The first is always the fresh outcome
   * (what RefModel.dma would answer). Changes nothing.
   */
  allowedDma(sid: number, iova: bigint, len: number, dir: 'r' | 'w', req?: ModelDmaRequest): Outcome[] {
    const out: Outcome[] = [];
    for (const p of this.paths(sid, iova, len, dir, req)) {
      if (!out.some((o) => sameOutcome(o, p.outcome))) out.push(p.outcome);
    }
    return out;
  }

  /** The fresh outcome alone: allowedDma(...)[0]. */
  freshDma(sid: number, iova: bigint, len: number, dir: 'r' | 'w', req?: ModelDmaRequest): Outcome {
    return this.paths(sid, iova, len, dir, req)[0]!.outcome;
  }

  /**
   * Makes the model follow the outcome the core chose for this request. Throws unless it is allowed. A
   * recorded fault is recorded in the RefModel's fault registers exactly as RefModel.dma records its own
   * (§6.3); whatever the core may have cached on the way to this outcome is remembered.
   */
  commitDma(
    sid: number,
    iova: bigint,
    len: number,
    dir: 'r' | 'w',
    outcome: Outcome,
    req?: ModelDmaRequest,
    chooseFlagWrites?: (candidates: FlagWrite[][]) => FlagWrite[],
  ): void {
    if (!outcome.ok && outcome.fault !== undefined && (!outcome.recorded || outcome.fault !== outcome.reason)) {
      throw new Error('malformed outcome: `fault`, when given, must equal `reason` and needs `recorded`');
    }
    const paths = this.paths(sid, iova, len, dir, req);
    const matching = paths.filter((p) => sameOutcome(p.outcome, outcome));
    if (matching.length === 0) {
      const allowed = this.allowedDma(sid, iova, len, dir, req).map(describeOutcome).join(', ');
      throw new Error(
        `outcome ${describeOutcome(outcome)} not allowed for sid 0x${sid.toString(16)} iova 0x${iova.toString(16)} ` +
          `len ${len} ${dir}; allowed: ${allowed}`,
      );
    }
    // Scalable mode: the A/D writes the unit made (a walk makes them, a hit does not).
    const writeSets = new Map<string, FlagWrite[]>();
    for (const p of matching) writeSets.set(flagWritesKey(p.flagWrites), p.flagWrites ?? []);
    let writes: FlagWrite[] = [...writeSets.values()][0]!;
    if (writeSets.size > 1) {
      if (chooseFlagWrites === undefined) throw new Error('the outcome may have come with different Accessed/Dirty writes: pass chooseFlagWrites');
      writes = chooseFlagWrites([...writeSets.values()]);
      if (!writeSets.has(flagWritesKey(writes))) throw new Error('chooseFlagWrites returned writes no path makes');
    }
    if (matching.some((p) => p.ctx !== undefined || p.fill !== undefined || p.pe !== undefined || p.fsFill !== undefined)) {
      this.rememberedTtm = this.ref.latchedTranslationTableMode;
    }
    for (const p of matching) {
      if (p.ctx !== undefined) this.rememberContext(sid, p.ctx);
      if (p.fill !== undefined) this.rememberLeaf(p.fill);
      if (p.pe !== undefined) this.rememberPasidEntry(sid, p.pe);
      if (p.fsFill !== undefined) this.rememberFsLeaf(p.fsFill);
    }
    this.ref.applyFlagWrites(writes);
    if (!outcome.ok && outcome.recorded) this.ref.recordFault(sid, iova, dir, outcome.reason, req);
  }

  /**
   * A whole request: computes the allowed outcomes, lets `pick` choose one (default: the fresh one),
   * commits it and returns it.
   */
  dma(sid: number, iova: bigint, len: number, dir: 'r' | 'w', pick: (allowed: Outcome[]) => Outcome = (a) => a[0]!, req?: ModelDmaRequest): Outcome {
    const chosen = pick(this.allowedDma(sid, iova, len, dir, req));
    this.commitDma(sid, iova, len, dir, chosen, req, (c) => c[0]!);
    return chosen;
  }

  // ----- the interrupt window --------------------------------------------------------

  /**
   * The interrupt outcomes permitted now for the request (RefModel.msi's arguments), without duplicates. The
   * first is always the fresh outcome (what RefModel.msi would answer). Changes nothing.
   */
  allowedMsi(sid: number | null, addr: bigint, data: number): ModelMsi[] {
    const out: ModelMsi[] = [];
    for (const p of this.msiPaths(sid, addr, data)) {
      const m = toModelMsi(p.t);
      if (!out.some((o) => sameMsi(o, m))) out.push(m);
    }
    return out;
  }

  /**
   * Makes the model follow the interrupt outcome the core chose. Throws unless it is allowed. A recorded
   * fault is recorded in the RefModel's fault registers exactly as RefModel.msi records its own; an IRTE the
   * core may have cached on the way to this outcome is remembered.
   */
  commitMsi(sid: number | null, addr: bigint, data: number, outcome: ModelMsi): void {
    const paths = this.msiPaths(sid, addr, data);
    const matching = paths.filter((p) => sameMsi(toModelMsi(p.t), outcome));
    if (matching.length === 0) {
      const allowed = this.allowedMsi(sid, addr, data).map(describeMsi).join(', ');
      const from = sid === null ? 'no requester id' : `sid 0x${sid.toString(16)}`;
      throw new Error(
        `interrupt outcome ${describeMsi(outcome)} not allowed for ${from} addr 0x${addr.toString(16)} data 0x${data.toString(16)}; allowed: ${allowed}`,
      );
    }
    for (const p of matching) if (p.fill !== undefined) this.rememberIrte(p.fill.index, p.fill.irte);
    const t = matching[0]!.t;
    // Every path of one request has the same index, so a recorded reason has one record whichever path gave it.
    if (!outcome.ok && outcome.fault !== undefined && t.kind === 'fault') this.ref.recordInterruptFault(sid, t.reason, t.index);
  }

  /** A whole interrupt request: lets `pick` choose among the allowed outcomes (default: the fresh one), commits it and returns it. */
  msi(sid: number | null, addr: bigint, data: number, pick: (allowed: ModelMsi[]) => ModelMsi = (a) => a[0]!): ModelMsi {
    const chosen = pick(this.allowedMsi(sid, addr, data));
    this.commitMsi(sid, addr, data, chosen);
    return chosen;
  }

  // ----- what the core may hold (for tests and diagnostics) ---------------------

  /** The IRTEs the core's interrupt entry cache may hold at `index` (copies). */
  possibleIrtes(index: number): Irte[] {
    return [...(this.irtes.get(index)?.values() ?? [])].map((e) => ({ ...e }));
  }

  /** The contexts the core may hold for `sid` (copies). */
  possibleContexts(sid: number): ContextWord[] {
    return [...(this.contexts.get(sid)?.values() ?? [])].map((c) => ({ ...c }));
  }

  /** The IOTLB entries the core may hold, for one domain or all (copies). */
  possibleLeaves(did?: number): CachedLeaf[] {
    const out: CachedLeaf[] = [];
    for (const [d, byKey] of this.leaves) {
      if (did !== undefined && d !== did) continue;
      for (const leaf of byKey.values()) out.push({ did: d, leaf: { ...leaf } });
    }
    return out;
  }

  /** True when nothing is remembered: every request has exactly one allowed outcome, the fresh one. */
  isSettled(): boolean {
    return this.contexts.size === 0 && this.leaves.size === 0 && this.irtes.size === 0 && this.pasidEntries.size === 0 && this.fsLeaves.size === 0;
  }

  /** Scalable mode: the RID_PASID PASID entries the core's context cache may hold for `sid` (copies). */
  possiblePasidEntries(sid: number): PasidEntryWord[] {
    return [...(this.pasidEntries.get(sid)?.values() ?? [])].map((e) => ({ ...e, ss: { ...e.ss } }));
  }

  /** Scalable mode: the first-stage or nested translations the core's PASID-tagged IOTLB may hold (copies). */
  possibleFsLeaves(): FsLeaf[] {
    return [...this.fsLeaves.values()].flatMap((m) => [...m.values()].map((l) => ({ ...l })));
  }

  // ----- internals --------------------------------------------------------------

  /**
   * Every way the unit may answer the request. The first path is the fully fresh one (fresh context,
   * fresh walk); the rest use a remembered context and/or a remembered leaf.
   */
  private paths(sid: number, iova: bigint, len: number, dir: 'r' | 'w', req?: ModelDmaRequest): Path[] {
    this.ref.checkRequest(sid, iova, len, req);
    // A request that crosses a 4 KiB boundary is two page requests (RefModel.dma); the windows model
    // answers one page request at a time, so its caller must split such a request itself.
    if (Number(iova & 0xfffn) + len > 0x1000) throw new Error(`windows model: [0x${iova.toString(16)}, +${len}) crosses a 4 KiB boundary; request each page on its own`);
    const ttm = this.ref.latchedTranslationTableMode;
    if (this.rememberedTtm !== null && this.rememberedTtm !== ttm && !this.isSettled()) {
      throw new Error('windows model: the latched TTM changed while cached entries may be held (software invalidates after SRTP)');
    }
    const withPasid = req?.pasid !== undefined;
    // §5.1 steps 0-1: the interrupt range and TE=0 are decided before any cache is consulted (a request with
    // PASID is never an interrupt request: with TE = 0 it is untranslated memory).
    if (withPasid) {
      const early = this.ref.translateBeforeContext(0n, 1, dir);
      if (early !== null) return [{ outcome: { ok: true, gpa: iova } }];
    } else {
      const early = this.ref.translateBeforeContext(iova, len, dir);
      if (early !== null) return [{ outcome: outcomeOf(early) }];
    }
    if (ttm === TTM_SCALABLE) return this.scalablePaths(sid, iova, len, dir, req);
    // Legacy mode with a request with PASID (31h), or a TTM the unit lacks (30h): decided before any cache.
    if (withPasid || ttm !== 0) return [{ outcome: outcomeOf(this.ref.translateFresh(sid, iova, len, dir, req)) }];

    const paths: Path[] = [];
    const contexts: ContextWord[] = [];
    // A context-cache miss reads the root and context entries now; a fault there is not cached (§7.1).
    const fresh = this.ref.lookupContext(sid);
    if (fresh.kind === 'fault') paths.push({ outcome: outcomeOf({ kind: 'fault', reason: fresh.reason, fpd: fresh.fpd }) });
    else contexts.push(fresh.ctx);
    // A context-cache hit uses the remembered context and reads neither root nor context entry.
    for (const c of this.contexts.get(sid)?.values() ?? []) {
      if (!contexts.some((k) => contextKey(k) === contextKey(c))) contexts.push(c);
    }

    const write = dir === 'w';
    for (const ctx of contexts) {
      // (b) An IOTLB miss: walk the current tables from this context. For the fresh context this is the
      // fresh outcome, and it comes first.
      const walked = this.ref.translateInContext(ctx, iova, len, dir);
      paths.push({
        outcome: outcomeOf(walked.t),
        ctx,
        fill: walked.filled === undefined ? undefined : { did: ctx.did, leaf: walked.filled },
      });
      // (a) An IOTLB hit: a remembered leaf of this context's domain that maps the IOVA and whose cached
      // rights allow the access (with rights that refuse it the core walks again, which is (b)).
      // translateInContext still applies pass-through and the width check first, as the core does.
      for (const leaf of this.leaves.get(ctx.did)?.values() ?? []) {
        if (!leafContains(leaf, iova) || !(write ? leaf.w : leaf.r)) continue;
        paths.push({ outcome: outcomeOf(this.ref.translateInContext(ctx, iova, len, dir, leaf).t), ctx });
      }
    }
    return paths;
  }

  /** Scalable mode (latched TTM 01): the paths through the fresh and the remembered PASID entries. */
  private scalablePaths(sid: number, iova: bigint, len: number, dir: 'r' | 'w', req?: ModelDmaRequest): Path[] {
    const paths: Path[] = [];
    const withPasid = req?.pasid !== undefined;
    const entries: PasidEntryWord[] = [];
    const fresh = this.ref.lookupScalable(sid, req);
    if (fresh.kind === 'fault') paths.push({ outcome: outcomeOf(fresh.t) });
    else entries.push(fresh.pe);
    // Only requests without PASID use the context cache (their RID_PASID entry).
    if (!withPasid) {
      for (const e of this.pasidEntries.get(sid)?.values() ?? []) {
        if (!entries.some((k) => pasidEntryKey(k) === pasidEntryKey(e))) entries.push(e);
      }
    }
    const write = dir === 'w';
    for (const pe of entries) {
      const keep = withPasid ? undefined : pe;
      // (b) the walk through this entry (for the fresh entry: the fresh outcome, first).
      const walked = this.ref.translateScalableTail(pe, iova, len, dir, req)!;
      paths.push({
        outcome: outcomeOf(walked.t),
        pe: keep,
        fill: walked.ssFill === undefined ? undefined : { did: pe.did, leaf: walked.ssFill },
        fsFill: walked.fsFill,
        flagWrites: walked.t.kind === 'ok' ? walked.t.flagWrites : undefined,
      });
      // (a) the hits: second-stage leaves of the DID, first-stage ones of the (DID, PASID).
      if (pe.pgtt === 2) {
        for (const leaf of this.leaves.get(pe.did)?.values() ?? []) {
          if (!leafContains(leaf, iova) || !(write ? leaf.w : leaf.r)) continue;
          paths.push({ outcome: outcomeOf(this.ref.translateScalableTail(pe, iova, len, dir, req, { ss: leaf })!.t), pe: keep });
        }
      } else if (pe.pgtt === 1 || pe.pgtt === 3) {
        for (const l of this.fsLeaves.get(`${pe.did}/${pe.pasid}`)?.values() ?? []) {
          if (!leafContains({ iovaBase: l.iovaBase, frame: l.frame, level: l.level, r: true, w: true }, iova)) continue;
          const hit = this.ref.translateScalableTail(pe, iova, len, dir, req, { fs: l });
          if (hit !== null) paths.push({ outcome: outcomeOf(hit.t), pe: keep });
        }
      }
    }
    return paths;
  }

  /**
   * Every way the unit may answer an interrupt request: first the fresh one (the IRTE read now), then one
   * per remembered IRTE of the request's index (an IEC hit: nothing read, the entry's checks repeated).
   */
  private msiPaths(sid: number | null, addr: bigint, data: number): MsiPath[] {
    this.ref.checkInterruptRequest(sid, addr, data);
    const step = this.ref.interruptIndex(addr, data);
    if (step.kind !== 'index') return [{ t: step }];
    const { index } = step;
    // An IEC miss: the entry read now (23h when it cannot be read); cached only when it passed every check.
    const fresh = this.ref.remapFresh(sid, index);
    const fill = fresh.t.kind !== 'fault' && fresh.irte !== undefined ? { index, irte: fresh.irte } : undefined;
    const paths: MsiPath[] = [{ t: fresh.t, fill }];
    for (const cached of this.irtes.get(index)?.values() ?? []) paths.push({ t: this.ref.remapWithIrte(sid, index, cached) });
    return paths;
  }

  private rememberIrte(index: number, irte: Irte): void {
    let byKey = this.irtes.get(index);
    if (byKey === undefined) this.irtes.set(index, (byKey = new Map()));
    byKey.set(irteKey(irte), { ...irte });
  }

  private rememberContext(sid: number, ctx: ContextWord): void {
    let byKey = this.contexts.get(sid);
    if (byKey === undefined) this.contexts.set(sid, (byKey = new Map()));
    byKey.set(contextKey(ctx), { ...ctx });
  }

  private rememberPasidEntry(sid: number, pe: PasidEntryWord): void {
    let byKey = this.pasidEntries.get(sid);
    if (byKey === undefined) this.pasidEntries.set(sid, (byKey = new Map()));
    byKey.set(pasidEntryKey(pe), { ...pe, ss: { ...pe.ss } });
  }

  private rememberFsLeaf(l: FsLeaf): void {
    const tag = `${l.did}/${l.pasid}`;
    let byKey = this.fsLeaves.get(tag);
    if (byKey === undefined) this.fsLeaves.set(tag, (byKey = new Map()));
    byKey.set(fsLeafKey(l), { ...l });
  }

  /** Forgets the first-stage leaves of `did` (and `pasid`, when given) that map any of the 2^am pages from `addr` (all when addr is null). */
  private forgetFsLeaves(did: number | null, pasid: number | null, addr: bigint | null, am = 0): void {
    for (const [tag, byKey] of this.fsLeaves) {
      const [d, p] = tag.split('/').map(Number) as [number, number];
      if ((did !== null && d !== did) || (pasid !== null && p !== pasid)) continue;
      for (const [key, l] of byKey) {
        if (addr !== null) {
          const first = addr >> 12n;
          const last = first + (1n << BigInt(am)) - 1n;
          const lo = l.iovaBase >> 12n;
          const hi = lo + (1n << BigInt(leafShift(l.level) - 12)) - 1n;
          if (lo > last || hi < first) continue;
        }
        byKey.delete(key);
      }
      if (byKey.size === 0) this.fsLeaves.delete(tag);
    }
  }

  private forgetPasidEntries(covered: (sid: number, e: PasidEntryWord) => boolean): void {
    for (const [sid, byKey] of this.pasidEntries) {
      for (const [key, e] of byKey) if (covered(sid, e)) byKey.delete(key);
      if (byKey.size === 0) this.pasidEntries.delete(sid);
    }
  }

  private rememberLeaf(fill: CachedLeaf): void {
    let byKey = this.leaves.get(fill.did);
    if (byKey === undefined) this.leaves.set(fill.did, (byKey = new Map()));
    byKey.set(leafKey(fill.leaf), { ...fill.leaf });
  }

  /**
   * An invalidation completed: forget what it covers. Context invalidations cover only contexts, IOTLB
   * invalidations only leaves (§7.1; §7.2 says software follows a context invalidation with an IOTLB one),
   * IEC invalidations only IRTEs.
   */
  private invalidate(inv: Invalidation): void {
    // Scalable mode (each forgets a subset of what the core drops; see the header).
    if (inv.cache === 'pasid') {
      if (inv.granularity === 'global') this.pasidEntries.clear();
      else if (inv.granularity === 'domain') this.forgetPasidEntries((_, e) => e.did === inv.did);
      else this.forgetPasidEntries((_, e) => e.did === inv.did && e.pasid === inv.pasid);
      return;
    }
    if (inv.cache === 'piotlb') {
      if (inv.granularity === 'pasid') this.forgetFsLeaves(inv.did, inv.pasid, null);
      else this.forgetFsLeaves(inv.did, inv.pasid, inv.addr, inv.am);
      return;
    }
    if (inv.cache === 'context') {
      if (inv.granularity === 'global') this.pasidEntries.clear();
      else if (inv.granularity === 'domain') this.forgetPasidEntries((_, e) => e.did === inv.did);
      else this.forgetPasidEntries((sid) => functionMaskMatches(sid, inv.sid, inv.fm));
    }
    if (inv.cache === 'iotlb') {
      if (inv.granularity === 'global') this.fsLeaves.clear();
      else if (inv.granularity === 'domain') this.forgetFsLeaves(inv.did, null, null);
      else this.forgetFsLeaves(inv.did, null, inv.addr, inv.am);
    }
    if (inv.cache === 'iec') {
      if (inv.granularity === 'global') {
        this.irtes.clear();
      } else {
        // Index-selective (§7.5): the 2^IM entries from IIDX, which the RefModel reports aligned down.
        const count = 2 ** inv.im;
        for (const index of [...this.irtes.keys()]) if (index >= inv.index && index < inv.index + count) this.irtes.delete(index);
      }
      return;
    }
    if (inv.cache === 'context') {
      switch (inv.granularity) {
        case 'global':
          this.contexts.clear();
          return;
        case 'domain': // every context of that DID, whatever its SID
          this.forgetContexts((_, c) => c.did === inv.did);
          return;
        case 'device': // the SID under the function mask, whatever the DID (as the core does it)
          this.forgetContexts((sid) => functionMaskMatches(sid, inv.sid, inv.fm));
          return;
      }
    }
    switch (inv.granularity) {
      case 'global':
        this.leaves.clear();
        return;
      case 'domain':
        this.leaves.delete(inv.did);
        return;
      case 'page': {
        // Page-selective (§7.3): the 2^AM 4 KiB pages from ADDR (aligned). A leaf is covered when any page it
        // maps lies in that range, so a 2 MiB or 1 GiB leaf containing one invalidated page goes too.
        const byKey = this.leaves.get(inv.did);
        if (byKey === undefined) return;
        const first = inv.addr >> 12n;
        const last = first + (1n << BigInt(inv.am)) - 1n;
        for (const [key, leaf] of byKey) {
          const lo = leaf.iovaBase >> 12n;
          const hi = lo + (1n << BigInt(leafShift(leaf.level) - 12)) - 1n;
          if (lo <= last && hi >= first) byKey.delete(key);
        }
        if (byKey.size === 0) this.leaves.delete(inv.did);
        return;
      }
    }
  }

  private forgetContexts(covered: (sid: number, c: ContextWord) => boolean): void {
    for (const [sid, byKey] of this.contexts) {
      for (const [key, c] of byKey) if (covered(sid, c)) byKey.delete(key);
      if (byKey.size === 0) this.contexts.delete(sid);
    }
  }
}
