// Tests of the cached-window model (windows.ts): which outcomes a caching unit may give between a table
// change and the invalidation that covers it (digest §7, §8).
// Run from the repository root:  node --import tsx --test test/model/windows.test.ts

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  RefModel,
  defaultModelConfig,
  isFaultSuppressed,
  leafShift,
  toModelMsi,
  type ContextWord,
  type InterruptTranslation,
  type Invalidation,
  type Irte,
  type LeafEntry,
  type ModelConfig,
  type ModelMsi,
} from './model.js';
import { CachedWindowModel, describeMsi, describeOutcome, outcomeOf, sameMsi, sameOutcome, toModelDma, type Outcome } from './windows.js';
import {
  REG, CCMD_ICC, IOTLB_IVT, GCMD_PERSISTENT, GCMD_QIE, GCMD_SRTP, GCMD_TE, G_DEVICE, G_DOMAIN, G_GLOBAL, G_PAGE,
  ccDesc, ccmdValue, contextEntry as encodeContext, contextEntryAddr, iotlbDesc, iotlbRegValue, iqaValue, ivaValue, rootEntry,
} from '../../src/guest/layout.js';

// ---------------------------------------------------------------------------
// Guest-side helpers (encodings from src/guest/layout.ts: digest §1.3, §3.3, §4.2, §7.2 - §7.5)
// ---------------------------------------------------------------------------

/** Anything that takes the guest's register and memory writes: RefModel, CachedWindowModel, ToyCachingUnit. */
interface Guest {
  mmioWrite(off: number, size: 4 | 8, val: bigint): void;
  mmioRead(off: number, size: 4 | 8): bigint;
  writeMem(gpa: bigint, bytes: Uint8Array): void;
}

function le(...qwords: bigint[]): Uint8Array {
  const out = new Uint8Array(8 * qwords.length);
  qwords.forEach((q, k) => {
    for (let b = 0; b < 8; b++) out[8 * k + b] = Number((q >> BigInt(8 * b)) & 0xffn);
  });
  return out;
}

const ROOT_TABLE = 0x100000n;
const CONTEXT_TABLE = 0x101000n;
const SID = 0x18; // 00:03.0
/** Tree A (3 levels, AW=1): 0x110000 -> 0x111000 -> 0x112000. Tree B: 0x120000 -> 0x121000 -> 0x122000. */
const TREE_A = 0x110000n;
const TREE_B = 0x120000n;
const FRAME_1 = 0x2000000n;
const FRAME_2 = 0x3000000n;

const TE = BigInt(GCMD_TE);
const SRTP = BigInt(GCMD_SRTP);
const QIE = BigInt(GCMD_QIE);
/** GSTS bits that are persistent GCMD commands (TE, QIE, IRE, CFI): a GCMD write must repeat them (§1.3). */
const PERSISTENT = BigInt(GCMD_PERSISTENT);

function gcmd(g: Guest, set: bigint, clear = 0n): void {
  const persistent = g.mmioRead(REG.GSTS, 4) & PERSISTENT;
  g.mmioWrite(REG.GCMD, 4, (persistent | set) & ~clear);
}

interface CtxOpts {
  did?: number;
  table?: bigint;
  tt?: number;
  fpd?: boolean;
  aw?: number;
  present?: boolean;
}

function contextEntry(o: CtxOpts): [bigint, bigint] {
  return encodeContext({ table: o.table ?? TREE_A, tt: o.tt, fpd: o.fpd, present: o.present, did: o.did ?? 5, aw: o.aw ?? 1 });
}

function setContext(g: Guest, sid: number, o: CtxOpts, contextTable = CONTEXT_TABLE): void {
  g.writeMem(contextEntryAddr(contextTable, sid & 0xff), le(...contextEntry(o)));
}

/** The two trees' upper levels; each tree's level-1 table starts empty (all pages not present). */
function buildTrees(g: Guest): void {
  for (const t of [TREE_A, TREE_B]) {
    g.writeMem(t, le(t + 0x1003n)); // L3[0] -> L2
    g.writeMem(t + 0x1000n, le(t + 0x2003n)); // L2[0] -> L1
  }
}

/** Sets the level-1 entry mapping iova `page` (< 2 MiB) in a tree. */
function setPte(g: Guest, tree: bigint, page: bigint, value: bigint): void {
  g.writeMem(tree + 0x2000n + 8n * ((page >> 12n) & 0x1ffn), le(value));
}

/** Sets the level-2 entry for the 2 MiB region `index` of a tree (index 0 holds the level-1 table pointer). */
function setPde(g: Guest, tree: bigint, index: bigint, value: bigint): void {
  g.writeMem(tree + 0x1000n + 8n * index, le(value));
}

/** Root table -> context table for bus 0, context entry of SID, TE on. */
function boot(g: Guest, ctx: CtxOpts = {}): void {
  g.writeMem(ROOT_TABLE, le(...rootEntry(CONTEXT_TABLE)));
  buildTrees(g);
  setContext(g, SID, ctx);
  g.mmioWrite(REG.RTADDR, 8, ROOT_TABLE);
  gcmd(g, SRTP);
  gcmd(g, TE);
}

// Register-based invalidations (§7.2, §7.3).
function ccGlobal(g: Guest): void {
  g.mmioWrite(REG.CCMD, 8, ccmdValue(G_GLOBAL, 0));
}
function ccDomain(g: Guest, did: number): void {
  g.mmioWrite(REG.CCMD, 8, ccmdValue(G_DOMAIN, did));
}
function ccDevice(g: Guest, sid: number, fm = 0, did = 0): void {
  g.mmioWrite(REG.CCMD, 8, ccmdValue(G_DEVICE, did, sid, fm));
}
function iotlbGlobal(g: Guest): void {
  g.mmioWrite(REG.IOTLB, 8, iotlbRegValue(G_GLOBAL, 0));
}
function iotlbDomain(g: Guest, did: number): void {
  g.mmioWrite(REG.IOTLB, 8, iotlbRegValue(G_DOMAIN, did));
}
function iotlbPage(g: Guest, did: number, addr: bigint, am = 0, ih = false): void {
  g.mmioWrite(REG.IVA, 8, ivaValue(addr, am, ih));
  g.mmioWrite(REG.IOTLB, 8, iotlbRegValue(G_PAGE, did));
}

// Queued invalidation (§7.4, §7.5): queue at 0x180000, QS=0 (256 descriptors).
const QUEUE = 0x180000n;
function enableQueue(g: Guest): void {
  g.mmioWrite(REG.IQA, 8, iqaValue(QUEUE, 0));
  g.mmioWrite(REG.IQT, 8, 0n);
  gcmd(g, QIE);
}
function submit(g: Guest, qw0: bigint, qw1: bigint): void {
  const tail = g.mmioRead(REG.IQT, 8);
  g.writeMem(QUEUE + tail, le(qw0, qw1));
  g.mmioWrite(REG.IQT, 8, (tail + 16n) % 0x1000n);
}
function qCc(g: Guest, gran: number, did = 0, sid = 0, fm = 0): void {
  submit(g, ...ccDesc(gran, did, sid, fm));
}
function qIotlb(g: Guest, gran: number, did = 0, addr = 0n, am = 0): void {
  submit(g, ...iotlbDesc(gran, did, ivaValue(addr, am)));
}

function cfg(over: Partial<ModelConfig> = {}): ModelConfig {
  return { ...defaultModelConfig, ...over };
}

const ok = (gpa: bigint): Outcome => ({ ok: true, gpa });
const fault = (reason: number): Outcome => ({ ok: false, fault: reason, reason, recorded: true });
const suppressed = (reason: number): Outcome => ({ ok: false, reason, recorded: false });

/** The allowed set, compared as a set (order aside from the fresh outcome first). */
function assertAllowed(w: CachedWindowModel, iova: bigint, dir: 'r' | 'w', want: Outcome[], sid = SID, len = 8): void {
  const got = w.allowedDma(sid, iova, len, dir);
  const show = (os: Outcome[]): string => os.map(describeOutcome).join(', ');
  assert.ok(sameOutcome(got[0]!, want[0]!), `fresh outcome: got [${show(got)}], want [${show(want)}] first`);
  assert.equal(got.length, want.length, `got [${show(got)}], want [${show(want)}]`);
  for (const o of want) assert.ok(got.some((g) => sameOutcome(g, o)), `missing ${describeOutcome(o)} in [${show(got)}]`);
}

/** A unit with SID's context (DID 5, tree A) and iova 0 mapped read/write to FRAME_1, after one read (cached). */
function warmUnit(over: Partial<ModelConfig> = {}, rights = 3n): CachedWindowModel {
  const w = new CachedWindowModel(cfg(over));
  boot(w);
  setPte(w, TREE_A, 0n, FRAME_1 | rights);
  w.dma(SID, 0n, 8, 'r');
  return w;
}

// ---------------------------------------------------------------------------
// Unit tests of the window semantics
// ---------------------------------------------------------------------------

describe('windows: IOTLB entries', () => {
  test('a PTE changed without invalidation: old and new allowed; page-selective invalidation leaves only the new', () => {
    const w = warmUnit();
    assertAllowed(w, 0x10n, 'r', [ok(FRAME_1 | 0x10n)]);
    setPte(w, TREE_A, 0n, FRAME_2 | 3n);
    assertAllowed(w, 0x10n, 'r', [ok(FRAME_2 | 0x10n), ok(FRAME_1 | 0x10n)]);
    assertAllowed(w, 0x10n, 'w', [ok(FRAME_2 | 0x10n), ok(FRAME_1 | 0x10n)]);
    iotlbPage(w, 5, 0n);
    assertAllowed(w, 0x10n, 'r', [ok(FRAME_2 | 0x10n)]);
  });

  test('unmap without invalidation: the stale frame is still allowed, and so is the fault', () => {
    const w = warmUnit();
    setPte(w, TREE_A, 0n, 0n);
    assertAllowed(w, 0n, 'w', [fault(5), ok(FRAME_1)]);
    iotlbPage(w, 5, 0n, 0, true); // IH=1: only leaves changed; still covers the leaf
    assertAllowed(w, 0n, 'w', [fault(5)]);
  });

  test('a domain-selective invalidation of another DID does not collapse the window; of this DID it does', () => {
    const w = warmUnit();
    setPte(w, TREE_A, 0n, FRAME_2 | 3n);
    iotlbDomain(w, 6);
    assertAllowed(w, 0n, 'r', [ok(FRAME_2), ok(FRAME_1)]);
    iotlbDomain(w, 5);
    assertAllowed(w, 0n, 'r', [ok(FRAME_2)]);
  });

  test('page-selective: another page or another DID does not cover; AM widens the range; global covers all', () => {
    const w = warmUnit();
    setPte(w, TREE_A, 0x3000n, FRAME_1 | 0x3003n);
    w.dma(SID, 0x3000n, 8, 'r');
    setPte(w, TREE_A, 0n, FRAME_2 | 3n);
    setPte(w, TREE_A, 0x3000n, FRAME_2 | 0x3003n);
    iotlbPage(w, 5, 0x1000n); // page 1: covers neither
    iotlbPage(w, 6, 0n); // other domain
    assertAllowed(w, 0n, 'r', [ok(FRAME_2), ok(FRAME_1)]);
    iotlbPage(w, 5, 0x2000n, 1); // pages 2-3: covers 0x3000 only
    assertAllowed(w, 0x3000n, 'r', [ok(FRAME_2 | 0x3000n)]);
    assertAllowed(w, 0n, 'r', [ok(FRAME_2), ok(FRAME_1)]);
    iotlbPage(w, 5, 0x3000n, 2); // ADDR is aligned down to 2^(AM+12): pages 0-3
    assertAllowed(w, 0n, 'r', [ok(FRAME_2)]);
    w.dma(SID, 0n, 8, 'r');
    setPte(w, TREE_A, 0n, FRAME_1 | 3n);
    iotlbGlobal(w);
    assertAllowed(w, 0n, 'r', [ok(FRAME_1)]);
    assert.ok(w.isSettled() === false); // the context stays cached: only an IOTLB invalidation ran
  });

  test('a 2 MiB leaf is invalidated by a page-selective invalidation of one 4 KiB page inside it', () => {
    const w = new CachedWindowModel(cfg());
    boot(w);
    setPde(w, TREE_A, 1n, 0x4000000n | 0x83n); // iova 0x200000 - 0x3fffff -> 0x4000000, 2 MiB, RW
    w.dma(SID, 0x234567n, 8, 'r');
    assert.deepEqual(
      w.possibleLeaves(5).map((c) => c.leaf),
      [{ iovaBase: 0x200000n, frame: 0x4000000n, level: 2, r: true, w: true }],
    );
    setPde(w, TREE_A, 1n, 0x6000000n | 0x83n);
    assertAllowed(w, 0x3ff000n, 'w', [ok(0x61ff000n), ok(0x41ff000n)]); // the cached leaf maps the whole 2 MiB
    iotlbPage(w, 5, 0x1000n); // outside the large page: no effect
    assertAllowed(w, 0x3ff000n, 'r', [ok(0x61ff000n), ok(0x41ff000n)]);
    iotlbPage(w, 5, 0x3ff000n); // the last 4 KiB page inside it
    assertAllowed(w, 0x200000n, 'r', [ok(0x6000000n)]);
  });

  test('rights: a cached read-only leaf does not serve a write: only the fresh outcome for a write', () => {
    const w = warmUnit({}, 1n); // read-only, cached by the read
    setPte(w, TREE_A, 0n, FRAME_2 | 3n); // now read/write elsewhere, not invalidated
    assertAllowed(w, 0n, 'w', [ok(FRAME_2)]); // the core re-walks: the stale read-only leaf is no answer
    assertAllowed(w, 0n, 'r', [ok(FRAME_2), ok(FRAME_1)]);
    const v = warmUnit({}, 1n);
    assertAllowed(v, 0n, 'w', [fault(5)]); // the tables still refuse the write
    const x = warmUnit({}, 2n); // write-only: the read faulted, nothing cached
    assert.deepEqual(x.possibleLeaves(), []);
  });

  test('a leaf whose output faults Eh is still remembered (the core fills before that check)', () => {
    const w = new CachedWindowModel(cfg());
    boot(w);
    setPte(w, TREE_A, 0n, 0xfee00003n);
    assert.deepEqual(w.dma(SID, 0n, 8, 'r'), fault(0xe));
    setPte(w, TREE_A, 0n, FRAME_1 | 3n);
    assertAllowed(w, 0n, 'r', [ok(FRAME_1), fault(0xe)]);
  });

  test('a cached leaf is checked against the interrupt range with this request\'s length, within its page', () => {
    const w = new CachedWindowModel(cfg());
    boot(w);
    setPte(w, TREE_A, 0n, 0xfedff003n);
    w.dma(SID, 0n, 8, 'r');
    setPte(w, TREE_A, 0n, FRAME_1 | 3n);
    // A page request through the cached leaf ends at 0xfedfffff at most, short of 0xfee00000: no Eh.
    assertAllowed(w, 0x800n, 'r', [ok(FRAME_1 | 0x800n), ok(0xfedff800n)], SID, 2048);
    // A request crossing into the next page is two page requests (RefModel.dma); this model takes one page at a time.
    assert.throws(() => w.allowedDma(SID, 0x800n, 4096, 'r'), /crosses a 4 KiB boundary/);
  });
});

describe('windows: context entries', () => {
  test('a context changed without context invalidation: both contexts allowed; device-selective collapses it', () => {
    const w = warmUnit(); // DID 5, tree A, iova 0 -> FRAME_1 cached
    setPte(w, TREE_B, 0n, FRAME_2 | 3n);
    setContext(w, SID, { did: 6, table: TREE_B });
    assertAllowed(w, 0n, 'r', [ok(FRAME_2), ok(FRAME_1)]);
    iotlbDomain(w, 5); // the old domain's leaves go; the old context still walks tree A
    assertAllowed(w, 0n, 'r', [ok(FRAME_2), ok(FRAME_1)]);
    setPte(w, TREE_A, 0n, 0n);
    assertAllowed(w, 0n, 'r', [ok(FRAME_2), fault(6)]); // old context, fresh walk of tree A
    ccDevice(w, SID);
    assertAllowed(w, 0n, 'r', [ok(FRAME_2)]);
  });

  test('context invalidation does not touch the IOTLB: a leaf of the reused DID still hits', () => {
    const w = warmUnit();
    setPte(w, TREE_B, 0n, FRAME_2 | 3n);
    setContext(w, SID, { did: 5, table: TREE_B }); // same DID, new tables
    ccGlobal(w);
    assertAllowed(w, 0n, 'r', [ok(FRAME_2), ok(FRAME_1)]);
    iotlbDomain(w, 5);
    assertAllowed(w, 0n, 'r', [ok(FRAME_2)]);
    assert.ok(w.isSettled()); // allowedDma commits nothing
    w.dma(SID, 0n, 8, 'r'); // now the new context and its leaf may be cached
    assert.deepEqual(w.possibleContexts(SID), [{ did: 5, aw: 1, slptptr: TREE_B, tt: 0, fpd: false }]);
    assert.equal(w.possibleLeaves(5).length, 1);
  });

  test('domain-selective context invalidation: by the cached entry\'s DID; device-selective honours FM', () => {
    const w = warmUnit();
    setContext(w, SID, { present: false });
    ccDomain(w, 6);
    assertAllowed(w, 0n, 'r', [fault(2), ok(FRAME_1)]);
    ccDevice(w, SID ^ 0x4, 0); // 00:03.4: FM 0 does not reach 00:03.0
    assertAllowed(w, 0n, 'r', [fault(2), ok(FRAME_1)]);
    ccDevice(w, SID ^ 0x4, 1); // FM 1 ignores SID bit 2
    assert.deepEqual(w.possibleContexts(SID), []);
    // The IOTLB leaf needs a context of DID 5 to be reached; none is left, so only the fresh fault.
    assertAllowed(w, 0n, 'r', [fault(2)]);
    const v = warmUnit();
    setContext(v, SID, { present: false });
    ccDomain(v, 5);
    assertAllowed(v, 0n, 'r', [fault(2)]);
  });

  test('FPD of a cached context: the stale context suppresses, the fresh one records', () => {
    const w = new CachedWindowModel(cfg());
    boot(w, { fpd: true });
    setPte(w, TREE_A, 0n, FRAME_1 | 1n);
    w.dma(SID, 0n, 8, 'r');
    setContext(w, SID, { fpd: false });
    assertAllowed(w, 0n, 'w', [fault(5), suppressed(5)]);
    w.commitDma(SID, 0n, 8, 'w', suppressed(5));
    assert.equal(w.mmioRead(0x34, 4), 0n); // nothing recorded
    w.commitDma(SID, 0n, 8, 'w', fault(5));
    assert.equal(w.mmioRead(0x34, 4), 2n); // PPF
    assert.equal(w.mmioRead(0x228, 8), 0x8000000500000018n);
  });

  test('pass-through context cached, then made translated without invalidation: identity still allowed', () => {
    const w = new CachedWindowModel(cfg());
    boot(w, { tt: 2 });
    assert.deepEqual(w.dma(SID, 0x5000n, 8, 'w'), ok(0x5000n));
    setPte(w, TREE_A, 0x5000n, FRAME_1 | 3n);
    setContext(w, SID, { tt: 0 });
    assertAllowed(w, 0x5000n, 'w', [ok(FRAME_1), ok(0x5000n)]);
    // Also beyond the input width: pass-through has no width check (§5.1 step 5).
    assertAllowed(w, 1n << 40n, 'r', [fault(4), ok(1n << 40n)]);
  });

  test('a context remembered after a faulting walk (the context itself was valid)', () => {
    const w = new CachedWindowModel(cfg());
    boot(w); // iova 0 not mapped
    assert.deepEqual(w.dma(SID, 0n, 8, 'r'), fault(6));
    assert.equal(w.possibleContexts(SID).length, 1);
    assert.deepEqual(w.possibleLeaves(), []);
  });
});

describe('windows: what needs no invalidation, and what does not flush', () => {
  for (const cm of [false, true]) {
    test(`CM=${cm ? 1 : 0}: not-present -> present needs no invalidation (a failed DMA is never cached)`, () => {
      const w = new CachedWindowModel(cfg({ cm }));
      boot(w, { present: false });
      assert.deepEqual(w.dma(SID, 0n, 8, 'r'), fault(2));
      setContext(w, SID, {});
      assert.deepEqual(w.allowedDma(SID, 0n, 8, 'r'), [fault(6)]);
      w.dma(SID, 0n, 8, 'r');
      setPte(w, TREE_A, 0n, FRAME_1 | 3n);
      assert.deepEqual(w.allowedDma(SID, 0n, 8, 'r'), [ok(FRAME_1)]);
      // Root entry not present -> present, also without invalidation.
      const v = new CachedWindowModel(cfg({ cm }));
      boot(v);
      v.writeMem(ROOT_TABLE, le(0n, 0n));
      v.dma(SID, 0n, 8, 'r');
      v.writeMem(ROOT_TABLE, le(CONTEXT_TABLE | 1n, 0n));
      assert.deepEqual(v.allowedDma(SID, 0n, 8, 'r'), [fault(6)]);
    });
  }

  test('SRTP does not flush: a context cached under the old root table stays usable until invalidated', () => {
    const w = warmUnit();
    w.mmioWrite(REG.RTADDR, 8, 0x150000n); // an empty root table
    gcmd(w, SRTP);
    assertAllowed(w, 0n, 'r', [fault(1), ok(FRAME_1)]);
    ccGlobal(w);
    assertAllowed(w, 0n, 'r', [fault(1)]); // the IOTLB leaf has no context left to reach it
    iotlbGlobal(w);
    assert.ok(w.isSettled());
  });

  test('TE off: only the untranslated outcome; TE on again: the caches are as before', () => {
    const w = warmUnit();
    setPte(w, TREE_A, 0n, FRAME_2 | 3n);
    gcmd(w, 0n, TE);
    assert.deepEqual(w.allowedDma(SID, 0x10n, 8, 'r'), [ok(0x10n)]);
    gcmd(w, TE);
    assertAllowed(w, 0x10n, 'r', [ok(FRAME_2 | 0x10n), ok(FRAME_1 | 0x10n)]);
  });

  test('the interrupt range is decided before any cache', () => {
    const w = warmUnit();
    setContext(w, SID, { present: false });
    assert.deepEqual(w.allowedDma(SID, 0xfee00000n, 4, 'w'), [ok(0xfee00000n)]);
    assert.deepEqual(w.allowedDma(SID, 0xfee00000n, 4, 'r'), [{ ok: false, reason: 0, recorded: false }]);
  });
});

describe('windows: queued invalidation and the register interface', () => {
  test('descriptors 0x1 and 0x2 collapse the window as the registers do; an invalid one does not', () => {
    const w = warmUnit();
    enableQueue(w);
    setPte(w, TREE_B, 0n, FRAME_2 | 3n);
    setContext(w, SID, { did: 6, table: TREE_B });
    qIotlb(w, 3, 5, 0n, 19); // AM 19 > MAMV: IQE, not performed
    assert.equal(w.mmioRead(0x34, 4) & 0x10n, 0x10n);
    assertAllowed(w, 0n, 'r', [ok(FRAME_2), ok(FRAME_1)]);
    // Recover: disable the queue (IQH := 0), clear IQE, enable it again with an empty queue.
    gcmd(w, 0n, QIE);
    w.mmioWrite(0x34, 4, 0x10n);
    enableQueue(w);
    qCc(w, 3, 5, SID, 0); // device-selective
    assertAllowed(w, 0n, 'r', [ok(FRAME_2)]); // the DID-5 leaf is unreachable without a DID-5 context
    assert.equal(w.possibleLeaves(5).length, 1);
    qIotlb(w, 3, 5, 0n, 0);
    assert.equal(w.possibleLeaves(5).length, 0);
  });

  test('register commands are ignored while QI is enabled; the command acts when the dword holding IVT is written', () => {
    const w = warmUnit();
    enableQueue(w);
    setPte(w, TREE_A, 0n, FRAME_2 | 3n);
    iotlbGlobal(w);
    assertAllowed(w, 0n, 'r', [ok(FRAME_2), ok(FRAME_1)]);
    gcmd(w, 0n, QIE);
    w.mmioWrite(0xf8, 4, 0n); // low dword only: no command
    assertAllowed(w, 0n, 'r', [ok(FRAME_2), ok(FRAME_1)]);
    w.mmioWrite(0xfc, 4, 0x90000000n); // high dword: IVT | IIRG global
    assertAllowed(w, 0n, 'r', [ok(FRAME_2)]);
  });

  test('the RefModel reports the invalidations it performs, with their fields', () => {
    const m = new RefModel(cfg());
    const seen: Invalidation[] = [];
    m.setInvalidationListener((inv) => seen.push(inv));
    ccDevice(m, 0x1234, 2, 7);
    ccDomain(m, 9);
    m.mmioWrite(REG.CCMD, 8, CCMD_ICC); // CIRG 00: not performed
    iotlbPage(m, 3, 0x12345000n, 2, true);
    m.mmioWrite(REG.IVA, 8, 19n);
    m.mmioWrite(REG.IOTLB, 8, IOTLB_IVT | (3n << 60n)); // AM 19 > MAMV: not performed
    enableQueue(m);
    qCc(m, 1);
    qIotlb(m, 2, 4);
    qIotlb(m, 3, 4, 0x7000n, 1);
    assert.deepEqual(seen, [
      { cache: 'context', granularity: 'device', did: 7, sid: 0x1234, fm: 2 },
      { cache: 'context', granularity: 'domain', did: 9 },
      { cache: 'iotlb', granularity: 'page', did: 3, addr: 0x12344000n, am: 2, ih: true },
      { cache: 'context', granularity: 'global' },
      { cache: 'iotlb', granularity: 'domain', did: 4 },
      { cache: 'iotlb', granularity: 'page', did: 4, addr: 0x6000n, am: 1, ih: false },
    ]);
  });
});

describe('windows: commitDma', () => {
  test('an outcome outside the allowed set throws and changes nothing', () => {
    const w = warmUnit();
    assert.throws(() => w.commitDma(SID, 0n, 8, 'r', ok(FRAME_2)), /not allowed/);
    assert.throws(() => w.commitDma(SID, 0n, 8, 'r', fault(6)), /not allowed/);
    assert.throws(() => w.commitDma(SID, 0n, 8, 'r', { ok: false, fault: 7, reason: 6, recorded: true }), /malformed/);
    assert.equal(w.mmioRead(0x34, 4), 0n);
  });

  test('a recorded fault of a stale path is recorded exactly as RefModel.dma records a fresh one', () => {
    // Window: fresh walk succeeds; the stale context (tree A, now unmapped) faults 6h at 0x7000.
    const w = new CachedWindowModel(cfg({ nfr: 2 }));
    boot(w);
    w.dma(SID, 0x7000n, 8, 'r'); // fault 6h, recorded; the context is remembered
    setPte(w, TREE_B, 0x7000n, FRAME_2 | 3n);
    setContext(w, SID, { did: 6, table: TREE_B });
    w.mmioWrite(0x22c, 4, 0x80000000n); // free the first record
    assertAllowed(w, 0x7000n, 'r', [ok(FRAME_2), fault(6)]);
    w.commitDma(SID, 0x7000n, 8, 'r', fault(6));
    // Reference: the same two faults through a plain RefModel whose tables fault fresh.
    const m = new RefModel(cfg({ nfr: 2 }));
    boot(m);
    m.dma(SID, 0x7000n, 8, 'r');
    m.mmioWrite(0x22c, 4, 0x80000000n);
    m.dma(SID, 0x7000n, 8, 'r');
    assert.deepEqual(faultRegisters(w, 2), faultRegisters(m, 2));
    assert.equal(w.mmioRead(0x238, 8), 0xc000000600000018n); // the second record, round robin
  });

  test('toModelDma gives the RefModel / trace form', () => {
    assert.deepEqual(toModelDma(ok(5n)), { ok: true, gpa: 5n });
    assert.deepEqual(toModelDma(fault(5)), { ok: false, fault: 5 });
    assert.deepEqual(toModelDma(suppressed(5)), { ok: false });
  });
});

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

// A small world that random actions mutate: root tables R0 (bus 0 -> context table C0) and R1 (-> C1),
// four devices, trees A and B whose level-1 and level-2 entries change, and probes that reach 4 KiB pages,
// a 2 MiB region, the width limit and the interrupt range.
const SIDS = [0x08, 0x09, 0x10, 0x18];
const ROOTS = [ROOT_TABLE, 0x102000n];
const CONTEXT_TABLES = [CONTEXT_TABLE, 0x103000n];
const TREES = [TREE_A, TREE_B];
const CONTEXT_CHOICES: CtxOpts[] = [
  { present: false },
  { did: 1, table: TREE_A },
  { did: 2, table: TREE_B },
  { did: 1, table: TREE_B },
  { did: 2, table: TREE_A, fpd: true },
  { did: 3, tt: 2 },
  { present: false, fpd: true },
  { did: 1, table: TREE_A, aw: 2 }, // AW 2 not in SAGAW (aw 39): 3h
  { did: 2, table: 0xfff0000n }, // SLPTPTR above RAM: 3h at the top level
];
const PTE_CHOICES = [0n, FRAME_1 | 1n, FRAME_1 | 2n, FRAME_1 | 3n, FRAME_2 | 3n, FRAME_2 | 1n, (1n << 45n) | FRAME_1 | 3n, 0xfee00003n, 0xfedff003n];
const PDE1_CHOICES = [0n, 0x4000000n | 0x83n, 0x6000000n | 0x81n, 0x4000000n | 0x80n];
/** Mostly the four mapped pages (where stale entries arise), plus the 2 MiB region, the width limit, the interrupt range. */
const IOVAS = [0n, 0x800n, 0x1000n, 0x2010n, 0x3000n, 0x3800n, 0x200000n, 0x3ff800n, 1n << 39n, 0xfee00000n];
// Page requests only (the windows model answers one page request at a time): 2048 bytes from any of IOVAS stay in their page.
const LENS = [8, 2048];

type Action =
  | { kind: 'dma'; sid: number; iova: number; len: number; dir: 'r' | 'w'; pick: number }
  | { kind: 'ctx'; table: number; sid: number; value: number }
  | { kind: 'pte'; tree: number; slot: number; value: number }
  | { kind: 'pde'; tree: number; value: number }
  | { kind: 'srtp'; root: number }
  | { kind: 'te'; on: boolean }
  | { kind: 'cc'; gran: number; did: number; sid: number; fm: number }
  | { kind: 'iotlb'; gran: number; did: number; page: number; am: number }
  | { kind: 'flushAll' };

const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('dma' as const),
      sid: fc.nat(SIDS.length - 1),
      iova: fc.nat(IOVAS.length - 1),
      len: fc.nat(LENS.length - 1),
      dir: fc.constantFrom<'r' | 'w'>('r', 'w'),
      pick: fc.nat(7),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('ctx' as const), table: fc.nat(1), sid: fc.nat(SIDS.length - 1), value: fc.nat(CONTEXT_CHOICES.length - 1) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('pte' as const), tree: fc.nat(1), slot: fc.nat(3), value: fc.nat(PTE_CHOICES.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pde' as const), tree: fc.nat(1), value: fc.nat(PDE1_CHOICES.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('srtp' as const), root: fc.nat(1) }) },
  // Mostly on: with TE off every request has one outcome, so long off periods would hide the caches.
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('te' as const), on: fc.constantFrom(true, true, true, false) }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('cc' as const), gran: fc.integer({ min: 1, max: 3 }), did: fc.nat(3), sid: fc.nat(SIDS.length - 1), fm: fc.nat(3) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('iotlb' as const),
      gran: fc.constantFrom(1, 2, 3, 3, 3),
      did: fc.nat(3),
      // Pages near the mapped ones and the 2 MiB region, mostly with small masks, so that an invalidation
      // often covers some remembered leaves and misses others.
      page: fc.oneof(fc.constantFrom(0, 1, 2, 3, 0x200, 0x3ff), fc.nat(0x3ff)),
      am: fc.oneof(fc.nat(2), fc.nat(10)),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'flushAll' as const }) },
);

/**
 * Sets up the world on every guest: both root tables, both trees with pages 0-3 mapped read/write (tree A
 * to FRAME_1, tree B to FRAME_2), all contexts DID 1 on tree A, TE on.
 */
function bootWorld(guests: Guest[], useQueue: boolean): void {
  for (const g of guests) {
    for (let r = 0; r < 2; r++) g.writeMem(ROOTS[r]!, le(CONTEXT_TABLES[r]! | 1n, 0n));
    buildTrees(g);
    for (let page = 0n; page < 4n; page++) {
      setPte(g, TREE_A, page << 12n, (FRAME_1 + (page << 12n)) | 3n);
      setPte(g, TREE_B, page << 12n, (FRAME_2 + (page << 12n)) | 3n);
    }
    for (const sid of SIDS) for (const t of CONTEXT_TABLES) setContext(g, sid, { did: 1, table: TREE_A }, t);
    g.mmioWrite(REG.RTADDR, 8, ROOT_TABLE);
    gcmd(g, SRTP);
    gcmd(g, TE);
    if (useQueue) enableQueue(g);
  }
}

/** Applies a non-DMA action to every guest (the same register and memory writes). */
function applyGuestAction(guests: Guest[], a: Exclude<Action, { kind: 'dma' }>, useQueue: boolean): void {
  for (const g of guests) {
    switch (a.kind) {
      case 'ctx':
        setContext(g, SIDS[a.sid]!, CONTEXT_CHOICES[a.value]!, CONTEXT_TABLES[a.table]);
        break;
      case 'pte':
        setPte(g, TREES[a.tree]!, BigInt(a.slot) << 12n, PTE_CHOICES[a.value]!);
        break;
      case 'pde':
        setPde(g, TREES[a.tree]!, 1n, PDE1_CHOICES[a.value]!);
        break;
      case 'srtp':
        g.mmioWrite(REG.RTADDR, 8, ROOTS[a.root]!);
        gcmd(g, SRTP);
        break;
      case 'te':
        gcmd(g, a.on ? TE : 0n, a.on ? 0n : TE);
        break;
      case 'cc':
        if (useQueue) qCc(g, a.gran, a.did, SIDS[a.sid]!, a.fm);
        else if (a.gran === 1) ccGlobal(g);
        else if (a.gran === 2) ccDomain(g, a.did);
        else ccDevice(g, SIDS[a.sid]!, a.fm, a.did);
        break;
      case 'iotlb': {
        const addr = BigInt(a.page) << 12n;
        if (useQueue) qIotlb(g, a.gran, a.did, addr, a.am);
        else if (a.gran === 1) iotlbGlobal(g);
        else if (a.gran === 2) iotlbDomain(g, a.did);
        else iotlbPage(g, a.did, addr, a.am);
        break;
      }
      case 'flushAll':
        if (useQueue) {
          qCc(g, 1);
          qIotlb(g, 1);
        } else {
          ccGlobal(g);
          iotlbGlobal(g);
        }
        break;
    }
  }
}

/** The fault-reporting registers: FSTS, FECTL, and every FRCD. */
function faultRegisters(g: Guest, nfr: number): bigint[] {
  const regs = [g.mmioRead(0x34, 4), g.mmioRead(0x38, 4)];
  for (let i = 0; i < nfr; i++) regs.push(g.mmioRead(0x220 + 16 * i, 8), g.mmioRead(0x228 + 16 * i, 8));
  return regs;
}

/**
 * A toy caching unit, written independently of CachedWindowModel the way the Wasm core caches
 * (assembly/translate.ts, iotlb.ts, ctxcache.ts): one context per SID, filled whenever the context entry
 * passes its checks; an IOTLB of bounded capacity keyed by (DID, level, page), probed 4 KiB first, filled
 * after a walk whose rights allow the access (before the Eh check), entries evicted at random. It shares
 * only the RefModel's fresh primitives (steps 0-1, context read, walk).
 */
class ToyCachingUnit implements Guest {
  readonly ref: RefModel;
  private readonly ctxCache = new Map<number, ContextWord>();
  private readonly iotlb = new Map<string, { did: number; leaf: LeafEntry }>();

  constructor(
    private readonly cfg: ModelConfig,
    private readonly capacity: number,
    private readonly random: () => number,
  ) {
    this.ref = new RefModel(cfg);
    this.ref.setInvalidationListener((inv) => this.invalidate(inv));
  }

  mmioWrite(off: number, size: 4 | 8, val: bigint): void {
    this.ref.mmioWrite(off, size, val);
  }
  mmioRead(off: number, size: 4 | 8): bigint {
    return this.ref.mmioRead(off, size);
  }
  writeMem(gpa: bigint, bytes: Uint8Array): void {
    this.ref.writeMem(gpa, bytes);
  }

  /** Drops a random cached entry of either cache (a cache may lose anything at any time). */
  evictSomething(): void {
    const keys = [...this.iotlb.keys()];
    const sids = [...this.ctxCache.keys()];
    const n = keys.length + sids.length;
    if (n === 0) return;
    const i = Math.floor(this.random() * n);
    if (i < keys.length) this.iotlb.delete(keys[i]!);
    else this.ctxCache.delete(sids[i - keys.length]!);
  }

  dma(sid: number, iova: bigint, len: number, dir: 'r' | 'w'): Outcome {
    const o = this.translate(sid, iova, len, dir);
    if (!o.ok && o.recorded) this.ref.recordFault(sid, iova, dir, o.reason);
    return o;
  }

  private translate(sid: number, iova: bigint, len: number, dir: 'r' | 'w'): Outcome {
    const early = this.ref.translateBeforeContext(iova, len, dir);
    if (early !== null) return outcomeOf(early);
    let ctx = this.ctxCache.get(sid);
    if (ctx === undefined) {
      const c = this.ref.lookupContext(sid);
      if (c.kind === 'fault') return outcomeOf({ kind: 'fault', reason: c.reason, fpd: c.fpd });
      ctx = c.ctx;
      this.ctxCache.set(sid, ctx);
    }
    const faultOf = (reason: number): Outcome => outcomeOf({ kind: 'fault', reason, fpd: ctx.fpd });
    if (ctx.tt === 2) return { ok: true, gpa: iova };
    if (iova >> BigInt(Math.min(this.cfg.aw, 30 + 9 * ctx.aw)) !== 0n) return faultOf(4);
    const write = dir === 'w';
    let hit: LeafEntry | undefined;
    for (let level = 1; level <= 3 && hit === undefined; level++) {
      hit = this.iotlb.get(`${ctx.did}/${level}/${iova >> BigInt(leafShift(level))}`)?.leaf;
    }
    if (hit !== undefined && (write ? hit.w : hit.r)) {
      const gpa = hit.frame | (iova & ((1n << BigInt(leafShift(hit.level))) - 1n));
      const last = gpa + BigInt(len) - 1n;
      if (gpa <= 0xfeefffffn && last >= 0xfee00000n) return faultOf(0xe);
      return { ok: true, gpa };
    }
    const walked = this.ref.translateInContext(ctx, iova, len, dir);
    if (walked.filled !== undefined) this.fill(ctx.did, walked.filled);
    return outcomeOf(walked.t);
  }

  private fill(did: number, leaf: LeafEntry): void {
    const key = `${did}/${leaf.level}/${leaf.iovaBase >> BigInt(leafShift(leaf.level))}`;
    if (!this.iotlb.has(key) && this.iotlb.size >= this.capacity) {
      const keys = [...this.iotlb.keys()];
      this.iotlb.delete(keys[Math.floor(this.random() * keys.length)]!);
    }
    this.iotlb.set(key, { did, leaf });
  }

  private invalidate(inv: Invalidation): void {
    if (inv.cache === 'iec') return; // no interrupt entry cache in this toy (see ToyIecUnit)
    if (inv.cache === 'context') {
      for (const [sid, c] of [...this.ctxCache]) {
        const mask = [0, 4, 6, 7][inv.granularity === 'device' ? inv.fm : 0]!;
        const covered =
          inv.granularity === 'global' ||
          (inv.granularity === 'domain' && c.did === inv.did) ||
          (inv.granularity === 'device' && (sid & ~mask) === (inv.sid & ~mask));
        if (covered) this.ctxCache.delete(sid);
      }
      return;
    }
    for (const [key, e] of [...this.iotlb]) {
      let covered = inv.granularity === 'global' || e.did === inv.did;
      if (covered && inv.granularity === 'page') {
        const size = 1n << BigInt(leafShift(e.leaf.level));
        const span = 1n << BigInt(12 + inv.am);
        covered = e.leaf.iovaBase < inv.addr + span && inv.addr < e.leaf.iovaBase + size;
      }
      if (covered) this.iotlb.delete(key);
    }
  }
}

describe('windows: properties', () => {
  test('the class against itself: any allowed outcome commits; fresh first; settled after a full flush', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.integer({ min: 1, max: 3 }), fc.array(actionArb, { minLength: 10, maxLength: 80, size: 'max' }), (useQueue, alwaysFresh, nfr, actions) => {
        const w = new CachedWindowModel(cfg({ nfr }));
        const fresh = new RefModel(cfg({ nfr })); // the cacheless unit fed the same writes
        bootWorld([w, fresh], useQueue);
        // While every committed outcome was the fresh one, the fault registers of both must agree.
        let inStep = true;
        for (const a of actions) {
          if (a.kind !== 'dma') {
            applyGuestAction([w, fresh], a, useQueue);
            if (a.kind === 'flushAll') {
              assert.ok(w.isSettled(), 'a global context and IOTLB invalidation forgets everything');
              for (const sid of SIDS) for (const iova of IOVAS) assert.equal(w.allowedDma(sid, iova, 8, 'r').length, 1);
            }
            continue;
          }
          const sid = SIDS[a.sid]!;
          const iova = IOVAS[a.iova]!;
          const len = LENS[a.len]!;
          const allowed = w.allowedDma(sid, iova, len, a.dir);
          assert.ok(allowed.length >= 1);
          for (let i = 0; i < allowed.length; i++) {
            for (let j = i + 1; j < allowed.length; j++) assert.ok(!sameOutcome(allowed[i]!, allowed[j]!), 'no duplicates');
          }
          // The first allowed outcome is the cacheless unit's answer.
          const freshAnswer = fresh.dma(sid, iova, len, a.dir);
          assert.deepEqual(toModelDma(allowed[0]!), freshAnswer);
          const chosen = alwaysFresh ? allowed[0]! : allowed[a.pick % allowed.length]!;
          if (!sameOutcome(chosen, allowed[0]!)) inStep = false;
          w.commitDma(sid, iova, len, a.dir, chosen);
          // What was just used may now be cached: the same request may give the same outcome again.
          assert.ok(
            w.allowedDma(sid, iova, len, a.dir).some((o) => sameOutcome(o, chosen)),
            `${describeOutcome(chosen)} not reproducible`,
          );
          if (inStep) assert.deepEqual(faultRegisters(w, nfr), faultRegisters(fresh, nfr), 'fault registers');
          // An outcome that is not allowed is refused.
          const bogus: Outcome = { ok: true, gpa: 0xdead000n };
          if (!allowed.some((o) => sameOutcome(o, bogus))) assert.throws(() => w.commitDma(sid, iova, len, a.dir, bogus));
        }
      }),
      { numRuns: 300 },
    );
  });

  test('a toy caching unit (bounded IOTLB, random eviction) always answers inside the window', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.tuple(actionArb, fc.nat(7)), { minLength: 10, maxLength: 80, size: 'max' }),
        fc.integer(),
        (useQueue, capacity, nfr, steps, seed) => {
          let state = seed >>> 0 || 1;
          const random = (): number => {
            state ^= state << 13;
            state ^= state >>> 17;
            state ^= state << 5;
            state >>>= 0;
            return state / 2 ** 32;
          };
          const w = new CachedWindowModel(cfg({ nfr }));
          const toy = new ToyCachingUnit(cfg({ nfr }), capacity, random);
          bootWorld([w, toy], useQueue);
          for (const [a, evict] of steps) {
            if (evict === 0) toy.evictSomething(); // one step in eight: caches also lose entries on their own
            if (a.kind !== 'dma') {
              applyGuestAction([w, toy], a, useQueue);
              continue;
            }
            const sid = SIDS[a.sid]!;
            const iova = IOVAS[a.iova]!;
            const len = LENS[a.len]!;
            const allowed = w.allowedDma(sid, iova, len, a.dir);
            const got = toy.dma(sid, iova, len, a.dir);
            assert.ok(
              allowed.some((o) => sameOutcome(o, got)),
              `toy answered ${describeOutcome(got)}; allowed: ${allowed.map(describeOutcome).join(', ')}`,
            );
            w.commitDma(sid, iova, len, a.dir, got);
            assert.deepEqual(faultRegisters(w, nfr), faultRegisters(toy, nfr), 'fault registers follow the committed outcomes');
          }
          assert.deepEqual(w.events, toy.ref.events);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('isFaultSuppressed: only qualified reasons, only with FPD', () => {
    for (let reason = 1; reason <= 0xe; reason++) {
      assert.equal(isFaultSuppressed(reason, false), false);
      assert.equal(isFaultSuppressed(reason, true), ![1, 8, 9, 0xa, 0xb].includes(reason), `reason ${reason}`);
    }
  });
});

// ---------------------------------------------------------------------------
// The interrupt entry cache (§9.6, §7.5 descriptor 0x4)
// ---------------------------------------------------------------------------

const IRT_A = 0x190000n;
const IRT_B = 0x1a0000n;
const SIRTP = 1n << 24n;
const IRE = 1n << 25n;
const CFI = 1n << 23n;

interface IrteOpts {
  present?: boolean;
  fpd?: boolean;
  vector?: number;
  /** Raw DST field (IRTE 63:32); xAPIC APIC id in its bits 15:8. */
  dst?: number;
  svt?: number;
  sq?: number;
  sid?: number;
  lo?: bigint;
}

function irteWords(o: IrteOpts = {}): [bigint, bigint] {
  const lo = (o.present === false ? 0n : 1n) | (o.fpd ? 2n : 0n) | (BigInt(o.vector ?? 0x30) << 16n) | (BigInt(o.dst ?? 0x100) << 32n) | (o.lo ?? 0n);
  return [lo, (BigInt(o.svt ?? 0) << 18n) | (BigInt(o.sq ?? 0) << 16n) | BigInt(o.sid ?? 0)];
}

function setIrte(g: Guest, index: number, o: IrteOpts, table = IRT_A): void {
  g.writeMem(table + 16n * BigInt(index), le(...irteWords(o)));
}

/** IRTA := table (S, EIME), then SIRTP. */
function latchIrt(g: Guest, table = IRT_A, s = 3, eime = false): void {
  g.mmioWrite(0xb8, 8, table | (eime ? 0x800n : 0n) | BigInt(s));
  gcmd(g, SIRTP);
}

/** Descriptor 0x4: global when `index` is undefined, else index-selective (IIDX, IM). */
function qIec(g: Guest, index?: number, im = 0): void {
  if (index === undefined) submit(g, 0x4n, 0n);
  else submit(g, 0x14n | (BigInt(im) << 27n) | (BigInt(index) << 32n), 0n);
}

/** The remappable-format address of HANDLE `handle` (SHV = 0). */
function handleAddr(handle: number): bigint {
  return 0xfee00000n | (BigInt(handle & 0x7fff) << 5n) | 0x10n | (BigInt(handle >> 15) << 2n);
}

/** Interrupt remapping on: IRT A (16 entries, xAPIC), the queue, SIRTP, IRE. */
function irBoot(g: Guest, entries: Record<number, IrteOpts> = {}, eime = false): void {
  for (const [index, o] of Object.entries(entries)) setIrte(g, Number(index), o);
  enableQueue(g);
  latchIrt(g, IRT_A, 3, eime);
  gcmd(g, IRE);
}

function irWindow(entries: Record<number, IrteOpts> = {}, over: Partial<ModelConfig> = {}, eime = false): CachedWindowModel {
  const w = new CachedWindowModel(cfg({ ir: true, ...over }));
  irBoot(w, entries, eime);
  return w;
}

/** The delivered message for an xAPIC destination and vector (fixed, edge, physical). */
const dlv = (dest: number, vector: number): ModelMsi => ({ ok: true, addr: 0xfee00000n | (BigInt(dest) << 12n), data: 0x4000 | vector });
const irFault = (reason: number): ModelMsi => ({ ok: false, fault: reason });
const irSuppressed: ModelMsi = { ok: false };

function assertAllowedMsi(w: CachedWindowModel, sid: number | null, addr: bigint, want: ModelMsi[], data = 0): void {
  const got = w.allowedMsi(sid, addr, data);
  const show = (ms: ModelMsi[]): string => ms.map(describeMsi).join(', ');
  assert.ok(sameMsi(got[0]!, want[0]!), `fresh outcome: got [${show(got)}], want [${show(want)}] first`);
  assert.equal(got.length, want.length, `got [${show(got)}], want [${show(want)}]`);
  for (const m of want) assert.ok(got.some((g) => sameMsi(g, m)), `missing ${describeMsi(m)} in [${show(got)}]`);
}

describe('windows: interrupt entry cache', () => {
  test('an IRTE changed without invalidation: old and new allowed; index-selective (aligned) and global collapse it', () => {
    const w = irWindow({ 0: { vector: 0x30 }, 5: { vector: 0x35 } });
    assert.deepEqual(w.msi(SID, handleAddr(0), 0), dlv(1, 0x30));
    assert.deepEqual(w.possibleIrtes(0), [{ lo: irteWords({ vector: 0x30 })[0], hi: 0n }]);
    setIrte(w, 0, { vector: 0x99, dst: 0xc00 });
    assertAllowedMsi(w, SID, handleAddr(0), [dlv(0xc, 0x99), dlv(1, 0x30)]);
    qIec(w, 1); // entry 1 only
    qIec(w, 2, 1); // entries 2-3
    assertAllowedMsi(w, SID, handleAddr(0), [dlv(0xc, 0x99), dlv(1, 0x30)]);
    qIec(w, 3, 2); // IIDX aligned down to 4 entries: 0-3
    assertAllowedMsi(w, SID, handleAddr(0), [dlv(0xc, 0x99)]);
    w.msi(SID, handleAddr(0), 0);
    w.msi(SID, handleAddr(5), 0);
    setIrte(w, 0, { vector: 0x77 });
    setIrte(w, 5, { vector: 0x75 });
    qIec(w, 5, 0);
    assertAllowedMsi(w, SID, handleAddr(5), [dlv(1, 0x75)]);
    assertAllowedMsi(w, SID, handleAddr(0), [dlv(1, 0x77), dlv(0xc, 0x99)]);
    qIec(w); // global
    assertAllowedMsi(w, SID, handleAddr(0), [dlv(1, 0x77)]);
    assert.ok(w.isSettled());
  });

  test('the sub-handle: the cache is by interrupt index, however the index was formed', () => {
    const w = irWindow({ 6: { vector: 0x36 } });
    w.msi(SID, handleAddr(4) | 0x8n, 2); // SHV: 4 + 2
    setIrte(w, 6, { vector: 0x66 });
    assertAllowedMsi(w, SID, handleAddr(6), [dlv(1, 0x66), dlv(1, 0x36)]);
  });

  test('not present -> present needs no invalidation; an entry that failed a check is never cached', () => {
    for (const bad of [{ present: false }, { lo: 1n << 13n }, { svt: 1, sid: 0x20 }, { svt: 3 }] as IrteOpts[]) {
      const w = irWindow({ 0: bad });
      const first = w.msi(SID, handleAddr(0), 0);
      assert.equal(first.ok, false);
      assert.ok(w.isSettled(), JSON.stringify(first));
      setIrte(w, 0, { vector: 0x40 });
      assertAllowedMsi(w, SID, handleAddr(0), [dlv(1, 0x40)]);
    }
  });

  test('present -> not present without invalidation: the stale entry still delivers', () => {
    const w = irWindow({ 0: {} });
    w.msi(SID, handleAddr(0), 0);
    setIrte(w, 0, { present: false });
    assertAllowedMsi(w, SID, handleAddr(0), [irFault(0x22), dlv(1, 0x30)]);
    setIrte(w, 0, { present: false, fpd: true });
    assertAllowedMsi(w, SID, handleAddr(0), [irSuppressed, dlv(1, 0x30)]);
  });

  test('a cached entry repeats source validation for this request, with its own FPD', () => {
    // Cached from a request without a requester id: SVT was not checked then.
    const w = irWindow({ 0: { svt: 1, sid: SID } });
    assert.deepEqual(w.msi(null, handleAddr(0), 0), dlv(1, 0x30));
    assert.equal(w.possibleIrtes(0).length, 1);
    setIrte(w, 0, { svt: 0 }); // no check any more, not invalidated
    assertAllowedMsi(w, 0x20, handleAddr(0), [dlv(1, 0x30), irFault(0x26)]);
    assertAllowedMsi(w, SID, handleAddr(0), [dlv(1, 0x30)]); // both entries deliver the same for 00:03.0
    // The FPD of the cached entry decides.
    const v = irWindow({ 0: { svt: 2, sid: 0x0000, fpd: true } });
    v.msi(SID, handleAddr(0), 0);
    setIrte(v, 0, {});
    assertAllowedMsi(v, 0x0118, handleAddr(0), [dlv(1, 0x30), irSuppressed]);
  });

  test('a recorded fault of a cached entry is recorded exactly as RefModel.msi records a fresh one', () => {
    const w = irWindow({ 9: { svt: 1, sid: SID } }, { nfr: 2 });
    w.msi(SID, handleAddr(9), 0);
    setIrte(w, 9, {});
    w.commitMsi(0x20, handleAddr(9), 0, irFault(0x26));
    const m = new RefModel(cfg({ ir: true, nfr: 2 }));
    irBoot(m, { 9: { svt: 1, sid: SID } });
    m.msi(SID, handleAddr(9), 0);
    assert.deepEqual(m.msi(0x20, handleAddr(9), 0), irFault(0x26));
    assert.deepEqual(faultRegisters(w, 2), faultRegisters(m, 2));
    assert.equal(w.mmioRead(0x220, 8), 9n << 48n);
    assert.equal(w.mmioRead(0x228, 8), 0x8000002600000020n);
  });

  test('SIRTP does not flush: a moved or unreadable table, the cached entry still answers; the size check is fresh', () => {
    const w = irWindow({ 5: { vector: 0x35 } });
    w.msi(SID, handleAddr(5), 0);
    latchIrt(w, IRT_B); // entry 5 of table B: not present
    assertAllowedMsi(w, SID, handleAddr(5), [irFault(0x22), dlv(1, 0x35)]);
    latchIrt(w, 0x20000000n); // above the 256 MiB of RAM
    assertAllowedMsi(w, SID, handleAddr(5), [irFault(0x23), dlv(1, 0x35)]);
    latchIrt(w, IRT_A, 1); // 4 entries: index 5 is beyond the table before any cache is consulted
    assertAllowedMsi(w, SID, handleAddr(5), [irFault(0x21)]);
    latchIrt(w, IRT_A, 3);
    assertAllowedMsi(w, SID, handleAddr(5), [dlv(1, 0x35)]);
    qIec(w);
    assert.ok(w.isSettled());
  });

  test('a cached entry is checked again under the EIME latched now', () => {
    const w = irWindow({ 0: { dst: 0x21 } }, { eim: true }, true); // x2APIC: destination 0x21
    assert.deepEqual(w.msi(SID, handleAddr(0), 0), dlv(0x21, 0x30));
    setIrte(w, 0, { dst: 0x300 });
    latchIrt(w, IRT_A, 3, false); // xAPIC: DST bits 39:32 of the cached entry are reserved now
    assertAllowedMsi(w, SID, handleAddr(0), [dlv(3, 0x30), irFault(0x24)]);
  });

  test('IRES = 0 and compatibility-format messages are decided before the cache', () => {
    const w = irWindow({ 0: {} });
    w.msi(SID, handleAddr(0), 0);
    setIrte(w, 0, { vector: 0x50 });
    gcmd(w, CFI);
    assertAllowedMsi(w, SID, 0xfee01000n, [{ ok: true, addr: 0xfee01000n, data: 0x41 }], 0x41);
    gcmd(w, 0n, IRE);
    assert.deepEqual(w.allowedMsi(SID, handleAddr(0), 0), [{ ok: true, addr: handleAddr(0), data: 0 }]);
    gcmd(w, IRE); // on again: the cache is as before
    assertAllowedMsi(w, SID, handleAddr(0), [dlv(1, 0x50), dlv(1, 0x30)]);
  });

  test('an invalid IEC descriptor (IM > MHMV) is not performed and does not collapse the window', () => {
    const w = irWindow({ 0: {} });
    w.msi(SID, handleAddr(0), 0);
    setIrte(w, 0, { vector: 0x31 });
    qIec(w, 0, 16);
    assert.equal(w.mmioRead(0x34, 4) & 0x10n, 0x10n);
    assertAllowedMsi(w, SID, handleAddr(0), [dlv(1, 0x31), dlv(1, 0x30)]);
  });

  test('IEC invalidations do not touch the DMA caches, nor context / IOTLB invalidations the IEC', () => {
    const w = warmUnit({ ir: true });
    irBoot(w, { 0: {} });
    w.msi(SID, handleAddr(0), 0);
    setIrte(w, 0, { vector: 0x31 });
    setPte(w, TREE_A, 0n, FRAME_2 | 3n);
    qCc(w, 1);
    qIotlb(w, 1);
    assertAllowedMsi(w, SID, handleAddr(0), [dlv(1, 0x31), dlv(1, 0x30)]);
    w.dma(SID, 0n, 8, 'r');
    setPte(w, TREE_A, 0n, FRAME_1 | 3n);
    qIec(w);
    assertAllowed(w, 0n, 'r', [ok(FRAME_1), ok(FRAME_2)]);
    assertAllowedMsi(w, SID, handleAddr(0), [dlv(1, 0x31)]);
  });

  test('commitMsi: an outcome outside the set throws and records nothing; msi() follows `pick`', () => {
    const w = irWindow({ 0: {} });
    assert.throws(() => w.commitMsi(SID, handleAddr(0), 0, dlv(2, 0x30)), /not allowed/);
    assert.throws(() => w.commitMsi(SID, handleAddr(0), 0, irFault(0x22)), /not allowed/);
    assert.ok(w.isSettled());
    w.msi(SID, handleAddr(0), 0);
    setIrte(w, 0, { present: false });
    assert.deepEqual(w.msi(SID, handleAddr(0), 0, (a) => a[1]!), dlv(1, 0x30));
    assert.equal(w.mmioRead(0x34, 4), 0n);
    assert.deepEqual(w.msi(SID, handleAddr(0), 0), irFault(0x22));
    assert.equal(w.mmioRead(0x34, 4), 2n);
  });

  test('sameMsi / describeMsi', () => {
    const posted: ModelMsi = { ok: true, posted: true, descriptor: 0x1000n, vector: 3, urgent: false };
    assert.ok(sameMsi(posted, { ...posted }));
    assert.ok(!sameMsi(posted, { ...posted, urgent: true }));
    assert.ok(!sameMsi(posted, dlv(1, 3)));
    assert.ok(!sameMsi(irFault(0x22), irSuppressed));
    assert.ok(sameMsi(irSuppressed, { ok: false }));
    assert.equal(describeMsi(posted), 'posted 0x1000 vector 0x3');
    assert.equal(describeMsi(irFault(0x26)), 'fault 0x26');
    assert.equal(describeMsi(irSuppressed), 'blocked (suppressed)');
  });
});

// A small interrupt world: two tables of four entries, requesters with and without an id, IRTE values that
// deliver, fault, carry FPD, need source validation, or are valid only in one EIME mode.
const IR_SIDS: Array<number | null> = [null, 0x18, 0x20, 0x118];
const IR_TABLES = [IRT_A, IRT_B, 0x20000000n /* above RAM */];
const IRTE_CHOICES: IrteOpts[] = [
  { present: false },
  { vector: 0x30 },
  { vector: 0x31, dst: 0x200 },
  { vector: 0x32, svt: 1, sid: 0x18 },
  { vector: 0x33, svt: 1, sq: 3, sid: 0x1f, fpd: true },
  { vector: 0x34, svt: 2, sid: 0x0001 },
  { vector: 0x35, dst: 0x21 }, // x2APIC destination 0x21: reserved bits in xAPIC mode
  { vector: 0x36, lo: 1n << 12n, fpd: true },
  { present: false, fpd: true },
];

type IrAction =
  | { kind: 'msi'; sid: number; index: number; shv: boolean; pick: number }
  | { kind: 'irte'; table: number; index: number; value: number }
  | { kind: 'iec'; global: boolean; index: number; im: number }
  | { kind: 'sirtp'; table: number; s: number; eime: boolean }
  | { kind: 'ire'; on: boolean }
  | { kind: 'clearFaults' };

const irActionArb: fc.Arbitrary<IrAction> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({ kind: fc.constant('msi' as const), sid: fc.nat(IR_SIDS.length - 1), index: fc.nat(4), shv: fc.boolean(), pick: fc.nat(7) }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('irte' as const), table: fc.nat(1), index: fc.nat(3), value: fc.nat(IRTE_CHOICES.length - 1) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('iec' as const), global: fc.boolean(), index: fc.nat(7), im: fc.nat(2) }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('sirtp' as const), table: fc.constantFrom(0, 0, 1, 1, 2), s: fc.constantFrom(0, 1, 1, 3), eime: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('ire' as const), on: fc.constantFrom(true, true, true, false) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'clearFaults' as const }) },
);

/**
 * A toy interrupt entry cache, written the way the Wasm core caches (assembly/irstate.ts): one IRTE per
 * index, filled after a fresh read that passed every check, used on a hit with the entry's checks repeated,
 * dropped by a covering IEC invalidation or at random. Shares only the RefModel's fresh primitives.
 */
class ToyIecUnit implements Guest {
  readonly ref: RefModel;
  private readonly iec = new Map<number, Irte>();

  constructor(cfg: ModelConfig, private readonly random: () => number) {
    this.ref = new RefModel(cfg);
    this.ref.setInvalidationListener((inv) => {
      if (inv.cache !== 'iec') return;
      if (inv.granularity === 'global') this.iec.clear();
      else for (let k = 0; k < 2 ** inv.im; k++) this.iec.delete(inv.index + k);
    });
  }

  mmioWrite(off: number, size: 4 | 8, val: bigint): void {
    this.ref.mmioWrite(off, size, val);
  }
  mmioRead(off: number, size: 4 | 8): bigint {
    return this.ref.mmioRead(off, size);
  }
  writeMem(gpa: bigint, bytes: Uint8Array): void {
    this.ref.writeMem(gpa, bytes);
  }

  evictSomething(): void {
    const keys = [...this.iec.keys()];
    if (keys.length > 0) this.iec.delete(keys[Math.floor(this.random() * keys.length)]!);
  }

  msi(sid: number | null, addr: bigint, data: number): ModelMsi {
    const step = this.ref.interruptIndex(addr, data);
    let t: InterruptTranslation;
    if (step.kind !== 'index') {
      t = step;
    } else {
      const hit = this.iec.get(step.index);
      if (hit !== undefined) {
        t = this.ref.remapWithIrte(sid, step.index, hit);
      } else {
        const fresh = this.ref.remapFresh(sid, step.index);
        t = fresh.t;
        if (t.kind !== 'fault' && fresh.irte !== undefined) this.iec.set(step.index, fresh.irte);
      }
    }
    const m = toModelMsi(t);
    if (t.kind === 'fault' && !m.ok && m.fault !== undefined) this.ref.recordInterruptFault(sid, t.reason, t.index);
    return m;
  }
}

function irBootWorld(guests: Guest[]): void {
  for (const g of guests) {
    for (const table of [IRT_A, IRT_B]) for (let index = 0; index < 4; index++) setIrte(g, index, IRTE_CHOICES[1 + index]!, table);
    enableQueue(g);
    latchIrt(g, IRT_A, 1);
    gcmd(g, IRE);
  }
}

function applyIrAction(guests: Guest[], a: Exclude<IrAction, { kind: 'msi' }>): void {
  for (const g of guests) {
    switch (a.kind) {
      case 'irte':
        setIrte(g, a.index, IRTE_CHOICES[a.value]!, IR_TABLES[a.table]);
        break;
      case 'iec':
        qIec(g, a.global ? undefined : a.index, a.im);
        break;
      case 'sirtp':
        latchIrt(g, IR_TABLES[a.table], a.s, a.eime);
        break;
      case 'ire':
        gcmd(g, a.on ? IRE : 0n, a.on ? 0n : IRE);
        break;
      case 'clearFaults':
        for (let i = 0; i < 2; i++) g.mmioWrite(0x22c + 16 * i, 4, 0x80000000n);
        g.mmioWrite(0x34, 4, 0x7dn);
        break;
    }
  }
}

/** The request of an msi action: the index as HANDLE, or as HANDLE 1 + SUBHANDLE when SHV (index 0 then uses HANDLE 0). */
function irRequest(a: Extract<IrAction, { kind: 'msi' }>): { addr: bigint; data: number } {
  if (!a.shv || a.index === 0) return { addr: handleAddr(a.index), data: 0 };
  return { addr: handleAddr(1) | 0x8n, data: a.index - 1 };
}

describe('windows: interrupt entry cache properties', () => {
  test('a toy IEC (random eviction) always answers inside the window; fresh first; the class against itself', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.array(fc.tuple(irActionArb, fc.nat(7)), { minLength: 10, maxLength: 80, size: 'max' }), fc.integer(), (useToy, steps, seed) => {
        let state = seed >>> 0 || 1;
        const random = (): number => {
          state ^= state << 13;
          state ^= state >>> 17;
          state ^= state << 5;
          state >>>= 0;
          return state / 2 ** 32;
        };
        const config = cfg({ ir: true, eim: true, nfr: 2 });
        const w = new CachedWindowModel(config);
        const toy = new ToyIecUnit(config, random);
        const fresh = new RefModel(config); // the cacheless unit: its answers, not its fault registers
        irBootWorld([w, toy, fresh]);
        for (const [a, evict] of steps) {
          if (evict === 0) toy.evictSomething();
          if (a.kind !== 'msi') {
            applyIrAction([w, toy, fresh], a);
            if (a.kind === 'iec' && a.global) assert.ok(w.isSettled(), 'a global IEC invalidation forgets every IRTE');
            continue;
          }
          const sid = IR_SIDS[a.sid]!;
          const { addr, data } = irRequest(a);
          const allowed = w.allowedMsi(sid, addr, data);
          for (let i = 0; i < allowed.length; i++) {
            for (let j = i + 1; j < allowed.length; j++) assert.ok(!sameMsi(allowed[i]!, allowed[j]!), 'no duplicates');
          }
          assert.deepEqual(allowed[0], fresh.msi(sid, addr, data), 'the first allowed outcome is the cacheless answer');
          const chosen = useToy ? toy.msi(sid, addr, data) : allowed[a.pick % allowed.length]!;
          assert.ok(
            allowed.some((m) => sameMsi(m, chosen)),
            `answered ${describeMsi(chosen)}; allowed: ${allowed.map(describeMsi).join(', ')}`,
          );
          w.commitMsi(sid, addr, data, chosen);
          assert.ok(w.allowedMsi(sid, addr, data).some((m) => sameMsi(m, chosen)), `${describeMsi(chosen)} not reproducible`);
          if (useToy) assert.deepEqual(faultRegisters(w, 2), faultRegisters(toy, 2), 'fault registers follow the committed outcomes');
        }
        if (useToy) assert.deepEqual(w.events, toy.ref.events);
      }),
      { numRuns: 300 },
    );
  });
});
