// Model-only tests of scalable mode (issue 13): hand-built scalable-mode tables with known answers, for each
// PGTT and each fault reason the unit reports. They use the reference model alone (no Wasm build).
// Run from the repository root:  node --import tsx --test test/model/scalable.test.ts

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { RefModel, defaultModelConfig, type Invalidation, type ModelConfig, type ModelDmaRequest } from './model.js';
import { replayWithModel } from './replay-model.js';

const RAM = 0x10000000n; // 256 MiB
const ROOT = 0x100000n;
const CTX_LOWER = 0x101000n; // devfn 0-127
const CTX_UPPER = 0x102000n; // devfn 128-255
const DIR = 0x103000n;
const PASID_TABLE = 0x104000n;
const QUEUE = 0x180000n;
const SID = 0x0018; // 00:03.0
const SID_UPPER = 0x0088; // 00:11.0, devfn 136: the upper context table

function cfg(over: Partial<ModelConfig> = {}): ModelConfig {
  return { ...defaultModelConfig, aw: 48, sm: true, ram: RAM, ...over };
}

function le(...qwords: bigint[]): Uint8Array {
  const b = new Uint8Array(8 * qwords.length);
  const dv = new DataView(b.buffer);
  qwords.forEach((q, i) => dv.setBigUint64(8 * i, q, true));
  return b;
}

function qword(m: RefModel, gpa: bigint): bigint {
  return new DataView(m.readMem(gpa, 8).buffer).getBigUint64(0, true);
}

interface PasidEntryFields {
  p?: boolean;
  fpd?: boolean;
  aw?: number;
  pgtt: number;
  slptptr?: bigint;
  did?: number;
  sre?: boolean;
  ere?: boolean;
  wpe?: boolean;
  flpm?: number;
  flptr?: bigint;
  /** Raw bits ORed into QW0..QW7. */
  extra?: bigint[];
}

/** The eight quadwords of a PASID-table entry (§3.6). */
function pasidEntry(f: PasidEntryFields): bigint[] {
  const q = [
    (f.p === false ? 0n : 1n) | (f.fpd ? 2n : 0n) | (BigInt(f.aw ?? 2) << 2n) | (BigInt(f.pgtt) << 6n) | (f.slptptr ?? 0n),
    BigInt(f.did ?? 1),
    (f.sre ? 1n : 0n) | (f.ere ? 2n : 0n) | (BigInt(f.flpm ?? 0) << 2n) | (f.wpe ? 0x10n : 0n) | (f.flptr ?? 0n),
    0n, 0n, 0n, 0n, 0n,
  ];
  (f.extra ?? []).forEach((x, i) => (q[i]! |= x));
  return q;
}

interface Layout {
  /** The context entry's QW0 and QW1 (default: present, PASIDE, PDTS 0, the directory, RID_PASID 0). */
  ctx?: [bigint, bigint, bigint?, bigint?];
  /** PASID -> entry (its directory entry is made present unless `dir` says otherwise). */
  entries?: Record<number, PasidEntryFields>;
  /** Directory index -> raw directory entry. */
  dir?: Record<number, bigint>;
  /** Root entry of bus 0 (default: both halves present). */
  root?: [bigint, bigint];
  /** RTADDR.TTM to latch (default 01). */
  ttm?: bigint;
}

function defaultContext(ridPasid = 0n): [bigint, bigint] {
  return [DIR | 0x8n | 1n, ridPasid];
}

/** A scalable-mode unit with TE on and the layout written. */
function smUnit(over: Partial<ModelConfig>, l: Layout = {}): RefModel {
  const m = new RefModel(cfg({ pasid: true, ...over }));
  const [rlo, rhi] = l.root ?? [CTX_LOWER | 1n, CTX_UPPER | 1n];
  m.writeMem(ROOT, le(rlo, rhi));
  const ctx = l.ctx ?? defaultContext();
  const ctxQwords = [ctx[0], ctx[1], ctx[2] ?? 0n, ctx[3] ?? 0n];
  m.writeMem(CTX_LOWER + 32n * BigInt(SID & 0x7f), le(...ctxQwords));
  m.writeMem(CTX_UPPER + 32n * BigInt(SID_UPPER & 0x7f), le(...ctxQwords));
  for (const [pasidText, f] of Object.entries(l.entries ?? {})) {
    const pasid = Number(pasidText);
    const dirIndex = pasid >> 6;
    const table = PASID_TABLE + 0x1000n * BigInt(dirIndex % 16);
    if (l.dir?.[dirIndex] === undefined) m.writeMem(DIR + 8n * BigInt(dirIndex), le(table | 1n));
    m.writeMem(table + 64n * BigInt(pasid & 63), le(...pasidEntry(f)));
  }
  for (const [i, v] of Object.entries(l.dir ?? {})) m.writeMem(DIR + 8n * BigInt(i), le(v));
  m.mmioWrite(0x20, 8, ROOT | ((l.ttm ?? 1n) << 10n));
  m.mmioWrite(0x18, 4, 0x40000000n); // SRTP
  m.mmioWrite(0x18, 4, 0x80000000n); // TE
  return m;
}

/** Builds tables from `pool` mapping `iova` to `frame` through `levels` levels (leaf at `leafLevel`); returns the top table. */
function mapPage(
  m: RefModel,
  pool: bigint,
  iova: bigint,
  frame: bigint,
  levels: number,
  nonLeaf: bigint,
  leaf: bigint,
  leafLevel = 1,
): bigint {
  for (let level = levels; level >= leafLevel; level--) {
    const table = pool + 0x1000n * BigInt(levels - level);
    const index = (iova >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
    const entry = level === leafLevel ? frame | leaf | (leafLevel > 1 ? 0x80n : 0n) : (table + 0x1000n) | nonLeaf;
    m.writeMem(table + 8n * index, le(entry));
  }
  return pool;
}

const FS_TOP = 0x300000n;
const SS_TOP = 0x400000n;
const FS = { P: 1n, RW: 2n, US: 4n, A: 0x20n, D: 0x40n, XD: 1n << 63n };

function dma(m: RefModel, iova: bigint, dir: 'r' | 'w', req?: ModelDmaRequest, sid = SID): ReturnType<RefModel['dma']> {
  return m.dma(sid, iova, 8, dir, req);
}

function faultOf(m: RefModel, iova: bigint, dir: 'r' | 'w', req?: ModelDmaRequest, sid = SID): number | undefined {
  const r = dma(m, iova, dir, req, sid);
  assert.equal(r.ok, false, `expected a fault, got ${JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`);
  return r.ok ? undefined : r.fault;
}

// ---------------------------------------------------------------------------

describe('scalable mode: configuration', () => {
  const read = (over: Partial<ModelConfig>): [bigint, bigint] => {
    const m = new RefModel(cfg(over));
    return [m.mmioRead(0x08, 8), m.mmioRead(0x10, 8)];
  };

  test('CAP / ECAP are the contract table (QEMU 10), with and without ir', () => {
    assert.deepEqual(read({}), [0x00d2008c222f0606n, 0x0000480080000f42n]);
    assert.deepEqual(read({ pasid: true }), [0x00d2008c222f0606n, 0x0000490080000f42n]);
    assert.deepEqual(read({ flts: true }), [0x01d2008c222f0606n, 0x0000880000000f42n]);
    assert.deepEqual(read({ flts: true, pasid: true }), [0x01d2008c222f0606n, 0x0000890000000f42n]);
    assert.deepEqual(read({ ir: true }), [0x00d2008c222f0606n, 0x0000480080f00f4an]);
    assert.deepEqual(read({ ir: true, pasid: true }), [0x00d2008c222f0606n, 0x0000490080f00f4an]);
    assert.deepEqual(read({ ir: true, flts: true }), [0x01d2008c222f0606n, 0x0000880000f00f4an]);
    assert.deepEqual(read({ ir: true, flts: true, pasid: true }), [0x01d2008c222f0606n, 0x0000890000f00f4an]);
  });

  test('nest: FLTS, SLTS, SRS and NEST (26) with FS1GP; aw 57 adds CAP.FS5LP (60) to first-stage units', () => {
    assert.deepEqual(read({ nest: true }), [0x01d2008c222f0606n, 0x0000c80084000f42n]);
    const [cap57] = read({ aw: 57, flts: true });
    assert.equal((cap57 >> 60n) & 1n, 1n);
    assert.equal((cap57 >> 56n) & 1n, 1n);
    const [cap57sl] = read({ aw: 57 });
    assert.equal((cap57sl >> 60n) & 1n, 0n, 'no FS5LP without first-stage');
  });

  test('option rules: flts, pasid, nest need sm; pasid excludes dt; flts and nest need aw 48 or 57', () => {
    assert.throws(() => new RefModel(cfg({ sm: false, flts: true })), /flts requires sm/);
    assert.throws(() => new RefModel(cfg({ sm: false, pasid: true })), /pasid requires sm/);
    assert.throws(() => new RefModel(cfg({ sm: false, nest: true })), /nest requires sm/);
    assert.throws(() => new RefModel(cfg({ pasid: true, dt: true })), /exclude/);
    assert.throws(() => new RefModel(cfg({ aw: 39, flts: true })), /aw 48 or 57/);
    assert.throws(() => new RefModel(cfg({ aw: 39, nest: true })), /aw 48 or 57/);
    assert.doesNotThrow(() => new RefModel(cfg({ aw: 39 })));
  });

  test('RTADDR.TTM and IQA.DW are writable only with sm; a request with PASID needs sm', () => {
    const sm = new RefModel(cfg());
    sm.mmioWrite(0x20, 8, ROOT | 0xc00n);
    sm.mmioWrite(0x90, 8, QUEUE | 0x800n);
    assert.equal(sm.mmioRead(0x20, 8), ROOT | 0xc00n);
    assert.equal(sm.mmioRead(0x90, 8), QUEUE | 0x800n);
    const legacy = new RefModel(cfg({ sm: false }));
    legacy.mmioWrite(0x20, 8, ROOT | 0xc00n);
    legacy.mmioWrite(0x90, 8, QUEUE | 0x800n);
    assert.equal(legacy.mmioRead(0x20, 8), ROOT);
    assert.equal(legacy.mmioRead(0x90, 8), QUEUE);
    assert.throws(() => legacy.dma(SID, 0x1000n, 8, 'r', { pasid: 1 }), /scalable mode/);
    assert.throws(() => sm.dma(SID, 0x1000n, 8, 'r', { pasid: 0x100000 }), /PASID/);
    assert.throws(() => sm.dma(SID, 0x1000n, 8, 'r', { priv: true }), /go with a pasid/);
  });

  test('TTM is latched by SRTP: written without SRTP it changes nothing; TTM 00 keeps the legacy walk and codes', () => {
    const m = smUnit({}, { ttm: 0n }); // legacy: the root entry at bus 0 is read as a legacy one
    // Legacy root: hi must be 0 -> Ah (the scalable root has UP set in hi).
    assert.equal(faultOf(m, 0x1000n, 'r'), 0xa);
    m.mmioWrite(0x20, 8, ROOT | 0x400n); // TTM 01 written, not latched
    assert.equal(faultOf(m, 0x1000n, 'r'), 0xa);
    m.mmioWrite(0x18, 4, 0xc0000000n); // SRTP with TE kept on
    assert.equal(faultOf(m, 0x1000n, 'r'), 0x51, 'now scalable: RID_PASID 0 has no directory entry');
  });
});

describe('scalable mode: structure faults (30h - 5Dh)', () => {
  const slEntry: PasidEntryFields = { pgtt: 2, aw: 2, slptptr: SS_TOP };

  test('30h: a latched TTM of 10 or 11; 31h: a request with PASID under TTM 00 (recorded with PP, PV)', () => {
    for (const ttm of [2n, 3n]) {
      const m = smUnit({}, { ttm });
      assert.equal(faultOf(m, 0x1000n, 'r'), 0x30);
    }
    const m = smUnit({}, { ttm: 0n });
    assert.equal(faultOf(m, 0x1000n, 'w', { pasid: 0x12345 }), 0x31);
    assert.equal(m.mmioRead(0x228, 8), (1n << 63n) | (0x12345n << 40n) | (1n << 31n) | (0x31n << 32n) | BigInt(SID));
  });

  test('38h root entry beyond RAM; 39h the half used not present (LP for devfn < 128, UP above); 3Ah reserved bits', () => {
    const beyond = smUnit({});
    beyond.mmioWrite(0x20, 8, RAM | 0x400n);
    beyond.mmioWrite(0x18, 4, 0xc0000000n);
    assert.equal(faultOf(beyond, 0x1000n, 'r'), 0x38);
    const upOnly = smUnit({}, { root: [0n, CTX_UPPER | 1n], entries: { 0: slEntry } });
    assert.equal(faultOf(upOnly, 0x1000n, 'r'), 0x39);
    assert.equal(faultOf(upOnly, 0x1000n, 'r', undefined, SID_UPPER), 0x86, 'the upper half is used for devfn 136 (then 86h: no mapping)');
    const lpOnly = smUnit({}, { root: [CTX_LOWER | 1n, 0n] });
    assert.equal(faultOf(lpOnly, 0x1000n, 'r', undefined, SID_UPPER), 0x39);
    for (const root of [[CTX_LOWER | 3n, CTX_UPPER | 1n], [CTX_LOWER | 1n, CTX_UPPER | 1n | (1n << 50n)]] as [bigint, bigint][]) {
      assert.equal(faultOf(smUnit({}, { root }), 0x1000n, 'r'), 0x3a);
    }
  });

  test('40h context beyond RAM; 41h not present (FPD of the absent entry suppresses it); 42h reserved, never suppressed', () => {
    assert.equal(faultOf(smUnit({}, { root: [RAM | 1n, 0n] }), 0x1000n, 'r'), 0x40);
    assert.equal(faultOf(smUnit({}, { ctx: [DIR, 0n] }), 0x1000n, 'r'), 0x41);
    assert.deepEqual(dma(smUnit({}, { ctx: [DIR | 2n, 0n] }), 0x1000n, 'r'), { ok: false });
    const reserved: Array<[bigint, bigint, bigint?, bigint?]> = [
      [DIR | 1n | 0x20n, 0n], // bit 5
      [DIR | 1n | 0x10n, 0n], // PRE (no page requests)
      [DIR | 1n | 4n, 0n], // DTE without ECAP.DT
      [DIR | 1n | (1n << 48n), 0n], // PASIDDIRPTR above HAW
      [DIR | 1n, 1n << 21n], // QW1 63:21
      [DIR | 1n, 0n, 1n], // QW2
      [DIR | 1n, 0n, 0n, 1n << 63n], // QW3
    ];
    for (const ctx of reserved) {
      const m = smUnit({}, { ctx: [ctx[0] | 2n, ctx[1], ctx[2], ctx[3]] }); // FPD set: still recorded
      assert.equal(faultOf(m, 0x1000n, 'r'), 0x42, `context ${ctx.map((q) => q?.toString(16)).join('/')}`);
    }
    assert.equal(faultOf(smUnit({ pasid: false, dt: true }, { ctx: [DIR | 1n | 4n, 0n], entries: { 0: slEntry } }), 0x1000n, 'r'), 0x86, 'DTE with ECAP.DT is a field');
  });

  test('45h PASIDE clear (or no ECAP.PASID); 46h PASID beyond the directory; 48h RID_PASID beyond it', () => {
    assert.equal(faultOf(smUnit({}, { ctx: [DIR | 1n, 0n] }), 0x1000n, 'r', { pasid: 1 }), 0x45);
    assert.equal(faultOf(smUnit({ pasid: false }), 0x1000n, 'r', { pasid: 1 }), 0x45);
    // PDTS 0: 128 directory entries = PASIDs 0 .. 0x1fff; PDTS 7 covers every 20-bit PASID.
    const m = smUnit({}, { entries: { 0x1fff: slEntry } });
    assert.equal(faultOf(m, 0x1000n, 'r', { pasid: 0x1fff }), 0x86, 'the last PASID of the directory is in range');
    assert.equal(faultOf(m, 0x1000n, 'r', { pasid: 0x2000 }), 0x46);
    const wide = smUnit({}, { ctx: [DIR | 1n | 8n | (7n << 9n), 0n] });
    assert.equal(faultOf(wide, 0x1000n, 'r', { pasid: 0xfffff }), 0x51, 'PDTS 7: in range, directory entry absent');
    assert.equal(faultOf(smUnit({}, { ctx: [DIR | 1n, 0x2000n] }), 0x1000n, 'r'), 0x48);
  });

  test('50h directory entry beyond RAM; 51h not present (its FPD suppresses); 52h reserved', () => {
    assert.equal(faultOf(smUnit({}, { ctx: [(RAM - 0x1000n) | 9n | (7n << 9n), 0n] }), 0x1000n, 'r', { pasid: 0x3ffc0 }), 0x50);
    assert.equal(faultOf(smUnit({}, { dir: { 0: PASID_TABLE } }), 0x1000n, 'r'), 0x51);
    assert.deepEqual(dma(smUnit({}, { dir: { 0: PASID_TABLE | 2n } }), 0x1000n, 'r'), { ok: false });
    assert.equal(faultOf(smUnit({}, { dir: { 0: PASID_TABLE | 1n | 4n } }), 0x1000n, 'r'), 0x52);
    assert.equal(faultOf(smUnit({}, { dir: { 0: PASID_TABLE | 1n | (1n << 48n) } }), 0x1000n, 'r'), 0x52);
  });

  test('58h PASID entry beyond RAM; 59h not present (its FPD suppresses); 5Ah reserved bits', () => {
    assert.equal(faultOf(smUnit({}, { dir: { 0: RAM | 1n } }), 0x1000n, 'r', { pasid: 63 }), 0x58);
    assert.equal(faultOf(smUnit({}, { entries: { 0: { ...slEntry, p: false } } }), 0x1000n, 'r'), 0x59);
    assert.deepEqual(dma(smUnit({}, { entries: { 0: { ...slEntry, p: false, fpd: true } } }), 0x1000n, 'r'), { ok: false });
    const reserved: bigint[][] = [
      [0x20n], // SLEE without ECAP.ERS
      [0x200n], // SLADE
      [0x400n], // 11:10
      [1n << 48n], // SLPTPTR above HAW
      [0n, 1n << 16n], // QW1 22:16
      [0n, 1n << 25n], // QW1 memory-type fields
      [0n, 0n, 2n], // ERE without ECAP.ERS
      [0n, 0n, 0x80n], // EAFE
      [0n, 0n, 0x20n], // QW2 bit 5
      [0n, 0n, 0n, 1n], // QW3
      [0n, 0n, 0n, 0n, 0n, 0n, 0n, 1n << 63n], // QW7
    ];
    for (const extra of reserved) {
      // The FPD of an entry whose reserved bits are set does not count (docs/DESIGN.md "Scalable mode").
      const m = smUnit({}, { entries: { 0: { ...slEntry, fpd: true, extra } } });
      assert.equal(faultOf(m, 0x1000n, 'r'), 0x5a, 'FPD of an entry with reserved bits');
      const m2 = smUnit({}, { entries: { 0: { ...slEntry, extra } } });
      assert.equal(faultOf(m2, 0x1000n, 'r'), 0x5a, `extra ${extra.map((q) => q.toString(16))}`);
    }
    // SRE is reserved without ECAP.SRS (flts alone), a field with it.
    assert.equal(faultOf(smUnit({ flts: true }, { entries: { 0: { pgtt: 1, flptr: FS_TOP, sre: true } } }), 0x1000n, 'r'), 0x5a);
    assert.equal(faultOf(smUnit({}, { entries: { 0: { ...slEntry, sre: true } } }), 0x1000n, 'r'), 0x86);
    // Pointer bits above HAW are reserved only in the pointers the PGTT names.
    assert.equal(faultOf(smUnit({ flts: true }, { entries: { 0: { pgtt: 1, flptr: FS_TOP, extra: [0n, 0n, 1n << 50n] } } }), 0x1000n, 'r'), 0x5a, 'FLPTR above HAW');
    assert.equal(faultOf(smUnit({}, { entries: { 0: { ...slEntry, extra: [0n, 0n, 1n << 50n] } } }), 0x1000n, 'r'), 0x86, 'FLPTR of a second-stage entry');
    assert.equal(faultOf(smUnit({ flts: true }, { entries: { 0: { pgtt: 1, flptr: FS_TOP, extra: [1n << 48n] } } }), 0x1000n, 'r'), 0x71, 'SLPTPTR of a first-stage entry');
    // The directory entry's FPD does not count when its reserved bits are set either.
    assert.equal(faultOf(smUnit({}, { dir: { 0: PASID_TABLE | 7n }, entries: { 0: slEntry } }), 0x1000n, 'r'), 0x52);
  });

  test('5Bh: a PGTT the unit does not support, a reserved PGTT, an AW outside SAGAW, FLPM 01 without FS5LP', () => {
    const cases: Array<[Partial<ModelConfig>, PasidEntryFields]> = [
      [{}, { pgtt: 1, flptr: FS_TOP }], // first-stage without flts
      [{ flts: true }, slEntry], // second-stage with flts
      [{ flts: true }, { ...slEntry, pgtt: 3 }], // nested without nest
      [{}, { ...slEntry, pgtt: 0 }],
      [{}, { ...slEntry, pgtt: 5 }],
      [{}, { ...slEntry, pgtt: 7 }],
      [{}, { ...slEntry, aw: 3 }], // 57-bit tables under aw 48
      [{ pt: false }, { pgtt: 4 }],
      [{ flts: true }, { pgtt: 1, flptr: FS_TOP, flpm: 1 }], // 5-level without FS5LP (aw 48)
      [{ flts: true }, { pgtt: 1, flptr: FS_TOP, flpm: 2 }], // FLPM 10: a reserved encoding
      [{ flts: true }, { pgtt: 1, flptr: FS_TOP, flpm: 3 }], // FLPM 11
    ];
    for (const [over, f] of cases) assert.equal(faultOf(smUnit(over, { entries: { 0: f } }), 0x1000n, 'r'), 0x5b, JSON.stringify(over) + ` pgtt ${f.pgtt}`);
  });

  test('5Dh supervisor request with SRE clear; 5Ch execute with ERE clear, checked first; RID_PRIV not acted on', () => {
    const m = smUnit({}, { entries: { 5: slEntry } });
    assert.equal(faultOf(m, 0x1000n, 'r', { pasid: 5, priv: true }), 0x5d);
    assert.equal(faultOf(m, 0x1000n, 'r', { pasid: 5, exe: true }), 0x5c);
    assert.equal(faultOf(m, 0x1000n, 'r', { pasid: 5, priv: true, exe: true }), 0x5c, '5Ch before 5Dh');
    assert.equal(faultOf(smUnit({}, { ctx: [DIR | 9n, 5n | (1n << 20n)], entries: { 5: slEntry } }), 0x1000n, 'r'), 0x86, 'RID_PRIV: still a user request');
    assert.equal(faultOf(smUnit({ ers: true }, { entries: { 5: { ...slEntry, sre: true } } }), 0x1000n, 'r', { pasid: 5, priv: true, exe: true }), 0x5c);
  });
});

describe('scalable mode: second-stage (PGTT 010) and pass-through (100)', () => {
  function slUnit(leafRights = 3n, over: Partial<ModelConfig> = {}): RefModel {
    const m = smUnit(over, { ctx: defaultContext(7n), entries: { 7: { pgtt: 2, aw: 2, slptptr: SS_TOP, did: 3 }, 9: { pgtt: 2, aw: 1, slptptr: SS_TOP + 0x10000n } } });
    mapPage(m, SS_TOP, 0x12345000n, 0x7654000n, 4, 3n, leafRights);
    mapPage(m, SS_TOP + 0x10000n, 0x12345000n, 0x5555000n, 3, 3n, leafRights);
    return m;
  }

  test('a request without PASID goes through RID_PASID; one with PASID through its own entry (and its AW)', () => {
    const m = slUnit();
    assert.deepEqual(dma(m, 0x12345678n, 'w'), { ok: true, gpa: 0x7654678n });
    assert.deepEqual(dma(m, 0x12345678n, 'r', { pasid: 7 }), { ok: true, gpa: 0x7654678n });
    assert.deepEqual(dma(m, 0x12345678n, 'r', { pasid: 9 }), { ok: true, gpa: 0x5555678n });
    assert.equal(faultOf(m, 0x12345678n, 'r', { pasid: 8 }), 0x59);
  });

  test('85h / 86h missing rights (not-present too), 83h beyond the width, 7Ah reserved, 78h / 7Bh unreadable tables', () => {
    assert.equal(faultOf(slUnit(1n), 0x12345000n, 'w'), 0x85);
    assert.equal(faultOf(slUnit(2n), 0x12345000n, 'r'), 0x86);
    assert.equal(faultOf(slUnit(), 0x22345000n, 'w'), 0x85, 'not present');
    assert.equal(faultOf(slUnit(), 1n << 48n, 'r'), 0x83);
    assert.equal(faultOf(slUnit(), 1n << 39n, 'r', { pasid: 9 }), 0x83, 'a 3-level entry: 39 bits');
    assert.equal(faultOf(slUnit(3n | (1n << 60n) | (1n << 50n)), 0x12345000n, 'r'), 0x7a);
    const m = slUnit();
    m.writeMem(SS_TOP + 0x2000n + 8n * 0x91n, le(RAM | 3n));
    assert.equal(faultOf(m, 0x12345000n, 'r'), 0x78);
    const top = smUnit({}, { entries: { 0: { pgtt: 2, aw: 2, slptptr: RAM } } });
    assert.equal(faultOf(top, 0x1000n, 'r'), 0x7b);
  });

  test('87h: an output in the interrupt range; with PASID the input range 0xFEEx_xxxx is memory like any other', () => {
    const m = slUnit();
    mapPage(m, SS_TOP, 0x5000n, 0xfee00000n, 4, 3n, 3n);
    assert.equal(faultOf(m, 0x5000n, 'w'), 0x87);
    const pt = smUnit({}, { ctx: defaultContext(2n), entries: { 2: { pgtt: 4 } } });
    assert.deepEqual(dma(pt, 0x123456789n, 'w'), { ok: true, gpa: 0x123456789n }, 'pass-through: identity, no width check');
    assert.deepEqual(dma(pt, 0xfee00000n, 'w'), { ok: true, gpa: 0xfee00000n }, 'without PASID: an interrupt request');
    assert.deepEqual(dma(pt, 0xfee00000n, 'r'), { ok: false }, 'without PASID: a read there is blocked without a fault');
    assert.equal(faultOf(pt, 0xfee00000n, 'w', { pasid: 2 }), 0x87);
  });

  test('FPD of the context, the directory entry or the PASID entry suppresses the walk faults', () => {
    for (const l of [
      { ctx: [DIR | 0xbn, 0n] as [bigint, bigint], entries: { 0: { pgtt: 2, slptptr: SS_TOP } } },
      { dir: { 0: PASID_TABLE | 3n }, entries: { 0: { pgtt: 2, slptptr: SS_TOP } } },
      { entries: { 0: { pgtt: 2, slptptr: SS_TOP, fpd: true } } },
    ]) {
      const m = smUnit({}, l);
      assert.deepEqual(dma(m, 0x1000n, 'r'), { ok: false });
      assert.equal(m.mmioRead(0x34, 4), 0n);
    }
  });
});

describe('scalable mode: first-stage (PGTT 001)', () => {
  const fsUser = FS.P | FS.RW | FS.US;
  function fsUnit(over: Partial<ModelConfig> = {}, pe: Partial<PasidEntryFields> = {}): RefModel {
    return smUnit({ flts: true, ...over }, { entries: { 0: { pgtt: 1, flptr: FS_TOP, ...pe }, 4: { pgtt: 1, flptr: FS_TOP, ...pe } } });
  }

  test('4 KiB, 2 MiB and 1 GiB pages; A set in every entry on a read, D only in the leaf of a write', () => {
    const m = fsUnit();
    mapPage(m, FS_TOP, 0x40201000n, 0x7777000n, 4, fsUser, fsUser);
    assert.deepEqual(dma(m, 0x40201abcn, 'r'), { ok: true, gpa: 0x7777abcn });
    const tables = [FS_TOP + 8n * 0n, FS_TOP + 0x1000n + 8n * 1n, FS_TOP + 0x2000n + 8n * 1n, FS_TOP + 0x3000n + 8n * 1n];
    for (const t of tables) assert.equal(qword(m, t) & (FS.A | FS.D), FS.A, `A only, at 0x${t.toString(16)}`);
    assert.deepEqual(dma(m, 0x40201abcn, 'w'), { ok: true, gpa: 0x7777abcn });
    assert.equal(qword(m, tables[3]!) & (FS.A | FS.D), FS.A | FS.D);
    assert.equal(qword(m, tables[2]!) & FS.D, 0n, 'no D in a non-leaf entry');

    const big = fsUnit();
    mapPage(big, FS_TOP, 0x80000000n, 0x40000000n, 4, fsUser, fsUser, 3);
    mapPage(big, FS_TOP + 0x10000n, 0x1000000000n, 0x600000n, 4, fsUser, fsUser, 2);
    big.writeMem(FS_TOP + 8n * 0n, le((FS_TOP + 0x1000n) | fsUser)); // both share PML4E 0... keep the first tree
    assert.deepEqual(dma(big, 0x80123456n, 'r'), { ok: true, gpa: 0x40123456n });
  });

  test('a 2 MiB page; frame bits 20:13 of a large page are reserved, bit 12 (PAT) is not', () => {
    const m = fsUnit();
    mapPage(m, FS_TOP, 0x40200000n, 0x600000n, 4, fsUser, fsUser, 2);
    assert.deepEqual(dma(m, 0x40212345n, 'w'), { ok: true, gpa: 0x612345n });
    m.writeMem(FS_TOP + 0x2000n + 8n * 1n, le(0x600000n | 0x1000n | 0x80n | fsUser));
    assert.deepEqual(dma(m, 0x40212345n, 'r'), { ok: true, gpa: 0x612345n });
    m.writeMem(FS_TOP + 0x2000n + 8n * 1n, le(0x600000n | 0x2000n | 0x80n | fsUser));
    assert.equal(faultOf(m, 0x40212345n, 'r'), 0x72);
  });

  test('no flag is written when the request faults', () => {
    const m = fsUnit();
    mapPage(m, FS_TOP, 0x1000n, 0x7777000n, 4, fsUser, FS.P | FS.US);
    assert.equal(faultOf(m, 0x1000n, 'w'), 0x85);
    assert.equal(qword(m, FS_TOP) & FS.A, 0n);
  });

  test('80h non-canonical; 71h not present; 72h reserved (PS in a PML4E, address above HAW); 73h / 70h unreadable', () => {
    const m = fsUnit();
    mapPage(m, FS_TOP, 0x1000n, 0x7777000n, 4, fsUser, fsUser);
    assert.equal(faultOf(m, 1n << 47n, 'r'), 0x80);
    assert.deepEqual(dma(m, 0xffff800000001000n, 'r').ok, false);
    assert.equal(faultOf(m, 0xffff800000001000n, 'r'), 0x71, 'canonical upper half: PML4E 256 is absent');
    assert.equal(faultOf(m, 0x2000n, 'r'), 0x71);
    m.writeMem(FS_TOP, le((FS_TOP + 0x1000n) | fsUser | 0x80n));
    assert.equal(faultOf(m, 0x1000n, 'r'), 0x72);
    m.writeMem(FS_TOP, le((FS_TOP + 0x1000n) | fsUser | (1n << 48n)));
    assert.equal(faultOf(m, 0x1000n, 'r'), 0x72);
    m.writeMem(FS_TOP, le(RAM | fsUser));
    assert.equal(faultOf(m, 0x1000n, 'r'), 0x70);
    assert.equal(faultOf(fsUnit({}, { flptr: RAM }), 0x1000n, 'r'), 0x73);
  });

  test('81h a user request to a supervisor page; 85h a write to a read-only page; WPE decides for supervisor writes', () => {
    // nest gives ECAP.SRS, so SRE can be set (flts alone has no supervisor requests, as QEMU 10).
    const m = smUnit({ nest: true }, { entries: { 1: { pgtt: 1, flptr: FS_TOP, sre: true }, 2: { pgtt: 1, flptr: FS_TOP, sre: true, wpe: true } } });
    mapPage(m, FS_TOP, 0x1000n, 0x7777000n, 4, FS.P | FS.RW | FS.US, FS.P); // leaf: supervisor, read-only
    assert.equal(faultOf(m, 0x1000n, 'r', { pasid: 1 }), 0x81);
    assert.equal(m.mmioRead(0x228, 8), (1n << 63n) | (1n << 62n) | (1n << 40n) | (1n << 31n) | (0x81n << 32n) | BigInt(SID), 'F, T read, PP, PV 1');
    m.mmioWrite(0x22c, 4, 0x80000000n); // clear F: the next fault of this SID is recorded, not collapsed
    assert.deepEqual(dma(m, 0x1000n, 'r', { pasid: 1, priv: true }), { ok: true, gpa: 0x7777000n });
    assert.deepEqual(dma(m, 0x1000n, 'w', { pasid: 1, priv: true }), { ok: true, gpa: 0x7777000n }, 'WPE = 0');
    assert.equal(faultOf(m, 0x1000n, 'w', { pasid: 2, priv: true }), 0x85, 'WPE = 1');
    assert.equal(m.mmioRead(0x228, 8), (1n << 63n) | (2n << 40n) | (1n << 31n) | (1n << 29n) | (0x85n << 32n) | BigInt(SID), 'F, T write, PP, PRIV, PV 2');
    m.mmioWrite(0x22c, 4, 0x80000000n);
    m.writeMem(FS_TOP + 0x3000n + 8n, le(0x7777000n | FS.P | FS.US));
    assert.equal(faultOf(m, 0x1000n, 'w', { pasid: 1 }), 0x85);
  });

  test('82h an execute request to an XD page (ERE set, a model-only ers unit); PRIV and EXE in the record', () => {
    const m = smUnit({ nest: true, ers: true }, { entries: { 1: { pgtt: 1, flptr: FS_TOP, sre: true, ere: true } } });
    mapPage(m, FS_TOP, 0x1000n, 0x7777000n, 4, FS.P | FS.RW | FS.US, FS.P | FS.US | FS.XD);
    assert.deepEqual(dma(m, 0x1000n, 'r', { pasid: 1 }), { ok: true, gpa: 0x7777000n });
    assert.equal(faultOf(m, 0x1000n, 'r', { pasid: 1, exe: true, priv: true }), 0x82);
    assert.equal(m.mmioRead(0x228, 8), (1n << 63n) | (1n << 62n) | (1n << 40n) | (7n << 29n) | (0x82n << 32n) | BigInt(SID));
  });

  test('5-level first stage (aw 57, FLPM 01): 57-bit canonical input', () => {
    const m = smUnit({ aw: 57, flts: true }, { entries: { 0: { pgtt: 1, flptr: FS_TOP, flpm: 1 } } });
    const iova = 0x00ff000000001000n; // bit 55 set: only 5-level paging reaches it
    mapPage(m, FS_TOP, iova, 0x7777000n, 5, fsUser, fsUser);
    assert.deepEqual(dma(m, iova, 'r'), { ok: true, gpa: 0x7777000n });
    assert.equal(faultOf(m, 1n << 56n, 'r'), 0x80);
  });

  test('1 GiB pages: a PDPE with PS is a leaf (FS1GP); frame bits 29:13 reserved', () => {
    const m = fsUnit();
    mapPage(m, FS_TOP, 0x80000000n, 0x40000000n, 4, fsUser, fsUser, 3);
    assert.deepEqual(dma(m, 0x80123456n, 'r'), { ok: true, gpa: 0x40123456n });
    m.writeMem(FS_TOP + 0x1000n + 8n * 2n, le(0x40000000n | 0x100000n | 0x80n | fsUser));
    assert.equal(faultOf(m, 0x80123456n, 'r'), 0x72);
  });
});

describe('scalable mode: nested (PGTT 011)', () => {
  // First-stage tables at guest-physical FS_TOP.. are placed by the second stage at +0x1000000.
  const SHIFT = 0x1000000n;
  /** The guest-physical page the first stage maps iova 0x1000 to: in the same 2 MiB as the tables, so one second-stage leaf table maps all. */
  const OUT = 0x3f0000n;
  function nestedUnit(ssRights = 3n, tableRights = 3n, over: Partial<ModelConfig> = {}): RefModel {
    const m = smUnit({ nest: true, ...over }, { entries: { 0: { pgtt: 3, aw: 2, slptptr: SS_TOP, flptr: FS_TOP } } });
    const fsUser = FS.P | FS.RW | FS.US;
    for (let k = 0n; k < 4n; k++) {
      // the first-stage table k, at guest-physical FS_TOP + k * 4 KiB, lies at FS_TOP + SHIFT + k * 4 KiB
      const gpaTable = FS_TOP + 0x1000n * k;
      mapPage(m, SS_TOP + 0x10000n * k, gpaTable, gpaTable + SHIFT, 4, 3n, tableRights);
    }
    // Each second-stage tree has its own top; merge them under one top table at SS_TOP by hand:
    // all four gpas share the PML4E, PDPE and PDE indexes (0, 0, 1), so one tree suffices.
    for (let k = 1n; k < 4n; k++) m.writeMem(SS_TOP + 0x3000n + 8n * ((FS_TOP + 0x1000n * k) >> 12n & 0x1ffn), le((FS_TOP + 0x1000n * k + SHIFT) | tableRights));
    // The first-stage tables themselves (at their host addresses), mapping iova 0x1000 to guest page 0x50000.
    for (let level = 4; level >= 1; level--) {
      const k = BigInt(4 - level);
      const entry = level === 1 ? OUT | fsUser : (FS_TOP + 0x1000n * (k + 1n)) | fsUser;
      m.writeMem(FS_TOP + SHIFT + 0x1000n * k + 8n * (level === 1 ? 1n : 0n), le(entry));
    }
    // The output page 0x50000 through the second stage to 0x9990000.
    m.writeMem(SS_TOP + 0x3000n + 8n * ((OUT >> 12n) & 0x1ffn), le(0x9990000n | ssRights));
    return m;
  }

  test('both stages: tables and output translated; A/D written at the tables\' host addresses', () => {
    const m = nestedUnit();
    assert.deepEqual(dma(m, 0x1abcn, 'w'), { ok: true, gpa: 0x9990abcn });
    assert.equal(qword(m, FS_TOP + SHIFT + 0x3000n + 8n) & (FS.A | FS.D), FS.A | FS.D);
    assert.equal(qword(m, FS_TOP + SHIFT) & FS.A, FS.A);
    assert.equal(qword(m, FS_TOP) & FS.A, 0n, 'nothing at the untranslated guest-physical address');
  });

  test('85h / 86h: the output refused by the second stage; 77h: a flag to set in a table it maps read-only', () => {
    assert.equal(faultOf(nestedUnit(1n), 0x1000n, 'w'), 0x85);
    assert.equal(faultOf(nestedUnit(2n), 0x1000n, 'r'), 0x86);
    const ro = nestedUnit(3n, 1n);
    assert.equal(faultOf(ro, 0x1000n, 'r'), 0x77);
    assert.equal(qword(ro, FS_TOP + SHIFT) & FS.A, 0n);
    // 77h comes before the output's own second-stage check (the walk sets flags on its way down).
    assert.equal(faultOf(nestedUnit(1n, 1n), 0x1000n, 'w'), 0x77);
  });

  test('83h: an output address beyond the second stage\'s width (the request\'s address, not a table\'s: not 74h)', () => {
    const m = nestedUnit(3n, 3n, { aw: 57 }); // first-stage entries hold 52-bit addresses; the second stage (AW 2) takes 48
    m.writeMem(FS_TOP + SHIFT + 0x3000n + 8n, le((1n << 49n) | FS.P | FS.RW | FS.US));
    assert.equal(faultOf(m, 0x1000n, 'r'), 0x83);
  });

  test('75h / 76h: a first-stage table the second stage does not map; 74h: a table address beyond its width', () => {
    const top = nestedUnit();
    top.writeMem(SS_TOP + 0x3000n + 8n * ((FS_TOP >> 12n) & 0x1ffn), le(0n));
    assert.equal(faultOf(top, 0x1000n, 'r'), 0x75);
    const lower = nestedUnit();
    lower.writeMem(SS_TOP + 0x3000n + 8n * (((FS_TOP + 0x2000n) >> 12n) & 0x1ffn), le(0n));
    assert.equal(faultOf(lower, 0x1000n, 'r'), 0x76);
    const beyond = nestedUnit();
    beyond.writeMem(FS_TOP + SHIFT, le((1n << 47n) | FS.P | FS.RW | FS.US)); // a PDPT at gpa 2^47, inside HAW 48, beyond nothing
    assert.equal(faultOf(beyond, 0x1000n, 'r'), 0x76, 'unmapped in the second stage');
    const awUnit = smUnit({ nest: true }, { entries: { 0: { pgtt: 3, aw: 1, slptptr: SS_TOP, flptr: 1n << 40n } } });
    assert.equal(faultOf(awUnit, 0x1000n, 'r'), 0x74, 'FLPTR beyond a 39-bit second stage');
  });
});

describe('scalable mode: invalidation queue', () => {
  function queueUnit(over: Partial<ModelConfig> = {}, ttm = 1n, dw = true): { m: RefModel; seen: Invalidation[] } {
    const m = smUnit(over, { ttm });
    const seen: Invalidation[] = [];
    m.setInvalidationListener((inv) => seen.push(inv));
    m.mmioWrite(0x90, 8, QUEUE | (dw ? 0x800n : 0n));
    m.mmioWrite(0x88, 8, 0n);
    m.mmioWrite(0x18, 4, 0x84000000n); // TE, QIE
    return { m, seen };
  }

  test('DW = 1: 256-bit slots, IQH in steps of 32; types 6 and 7 with every granularity', () => {
    const { m, seen } = queueUnit();
    const slots = [
      [0x6n | (2n << 4n) | (5n << 16n) | (0x123n << 32n), 0n],
      [0x6n | (3n << 4n) | (5n << 16n) | (0x123n << 32n), 0x40000n | 2n | 0x40n],
      [0x7n | (0n << 4n) | (5n << 16n), 0n],
      [0x7n | (1n << 4n) | (5n << 16n) | (0x77n << 32n), 0n],
      [0x7n | (3n << 4n), 0n],
      [0x1n | (1n << 4n), 0n],
    ];
    m.writeMem(QUEUE, le(...slots.flatMap(([a, b]) => [a!, b!, 0n, 0n])));
    m.mmioWrite(0x88, 8, BigInt(32 * slots.length));
    assert.equal(m.mmioRead(0x80, 8), BigInt(32 * slots.length));
    assert.equal(m.mmioRead(0x34, 4), 0n);
    assert.deepEqual(seen, [
      { cache: 'piotlb', granularity: 'pasid', did: 5, pasid: 0x123 },
      { cache: 'piotlb', granularity: 'page', did: 5, pasid: 0x123, addr: 0x40000n, am: 2, ih: true },
      { cache: 'pasid', granularity: 'domain', did: 5 },
      { cache: 'pasid', granularity: 'pasid', did: 5, pasid: 0x77 },
      { cache: 'pasid', granularity: 'global' },
      { cache: 'context', granularity: 'global' },
    ]);
  });

  test('IQE: reserved granularities, QW2 / QW3 set, IQT bit 4 with DW = 1, AM beyond MAMV', () => {
    const bad: bigint[][] = [
      [0x6n | (0n << 4n), 0n, 0n, 0n],
      [0x6n | (1n << 4n), 0n, 0n, 0n],
      [0x6n | (3n << 4n), 19n, 0n, 0n],
      [0x7n | (2n << 4n), 0n, 0n, 0n],
      [0x7n | (3n << 4n), 1n, 0n, 0n],
      [0x7n | (3n << 4n) | (1n << 60n), 0n, 0n, 0n],
      [0x5n | 0x20n, QUEUE + 0x800n, 1n, 0n],
      [0x1n | (1n << 4n), 0n, 0n, 1n],
      [0x8n, 0n, 0n, 0n], // PASID-based device-TLB without ECAP.DT
    ];
    for (const slot of bad) {
      const { m } = queueUnit();
      m.writeMem(QUEUE, le(...slot));
      m.mmioWrite(0x88, 8, 0x20n);
      assert.equal(m.mmioRead(0x34, 4), 0x10n, `slot ${slot.map((q) => q.toString(16))}`);
      assert.equal(m.mmioRead(0x80, 8), 0n);
    }
    const { m } = queueUnit();
    m.writeMem(QUEUE, le(0x7n | (3n << 4n), 0n, 0n, 0n));
    m.mmioWrite(0x88, 8, 0x10n);
    assert.equal(m.mmioRead(0x34, 4), 0x10n, 'IQT bit 4');
    const dt = queueUnit({ dt: true, pasid: false }).m;
    dt.writeMem(QUEUE, le(0x8n | (0x18n << 16n), 0x1000n, 0n, 0n));
    dt.mmioWrite(0x88, 8, 0x20n);
    assert.equal(dt.mmioRead(0x34, 4), 0n, 'type 8 with ECAP.DT');
  });

  test('legacy mode (TTM 00): PASID-based descriptors are IQE; so they are in a 128-bit queue (DW = 0) in scalable mode', () => {
    for (const type of [0x6n | (2n << 4n), 0x7n | (3n << 4n)]) {
      const { m } = queueUnit({}, 0n, false);
      m.writeMem(QUEUE, le(type, 0n));
      m.mmioWrite(0x88, 8, 0x10n);
      assert.equal(m.mmioRead(0x34, 4), 0x10n);
    }
    // They are 256-bit descriptors (docs/DESIGN.md "Scalable mode"): IQE with DW = 0, IQH on the first.
    for (const type of [0x6n | (2n << 4n) | (9n << 16n) | (3n << 32n), 0x7n | (3n << 4n)]) {
      const { m, seen } = queueUnit({}, 1n, false);
      m.writeMem(QUEUE, le(type, 0n));
      m.mmioWrite(0x88, 8, 0x10n);
      assert.equal(m.mmioRead(0x34, 4), 0x10n);
      assert.equal(m.mmioRead(0x80, 8), 0n);
      assert.deepEqual(seen, []);
    }
  });
});

describe('scalable mode: trace replay on the model', () => {
  test('header keys sm, flts, pasid, nest; dma pasid / priv / exe; the option rules are errors', () => {
    const ops = [
      { op: 'mem', gpa: '0x100000', q: ['0x101001', '0x0'] },
      { op: 'mem', gpa: '0x101300', q: ['0x103009', '0x0', '0x0', '0x0'] }, // 00:03.0: PASIDE, directory 0x103000
      { op: 'mem', gpa: '0x103000', q: ['0x104001'] },
      { op: 'mem', gpa: '0x104140', q: ['0x4109', '0x1', '0x0', '0x0', '0x0', '0x0', '0x0', '0x0'] }, // PASID 5: PGTT 100, aw 2
      { op: 'wr', reg: '0x20', size: 8, val: '0x100400' },
      { op: 'wr', reg: '0x18', size: 4, val: '0x40000000' },
      { op: 'wr', reg: '0x18', size: 4, val: '0x80000000' },
      { op: 'dma', sid: '00:03.0', iova: '0x1234', len: 8, dir: 'r', pasid: 5 },
      { op: 'dma', sid: '00:03.0', iova: '0x1234', len: 8, dir: 'r', pasid: 5, priv: true },
      { op: 'dma', sid: '00:03.0', iova: '0x1234', len: 8, dir: 'w' },
      { op: 'rd', reg: '0x228', size: 8 },
    ];
    const header = { 'vtd-trace': 1, iommu: { aw: 48, sm: true, pasid: true }, devices: ['00:03.0'] };
    const lines = replayWithModel([header, ...ops].map((o) => JSON.stringify(o)).join('\n'));
    assert.deepEqual(lines.map((l) => JSON.parse(l) as unknown), [
      { i: 7, op: 'dma', ok: true, gpa: '0x1234' },
      { i: 8, op: 'dma', ok: false, fault: '0x5d' },
      { i: 9, op: 'dma', ok: false, fault: '0x59' }, // through RID_PASID 0: no PASID entry 0
      // The record of 5Dh (59h from the same SID collapses into it): F, T read, PV 5, PP, PRIV.
      { i: 10, op: 'rd', val: '0x' + ((1n << 63n) | (5n << 40n) | (1n << 31n) | (1n << 29n) | (1n << 62n) | (0x5dn << 32n) | 0x18n).toString(16) },
    ]);
    const bad = (iommu: object, more = ''): string => `${JSON.stringify({ 'vtd-trace': 1, iommu, devices: ['00:03.0'] })}\n${more}`;
    assert.throws(() => replayWithModel(bad({ flts: true })), /flts requires sm/);
    assert.throws(() => replayWithModel(bad({ sm: true, pasid: true, dt: true })), /exclude/);
    assert.throws(() => replayWithModel(bad({ sm: true }, '{"op":"dma","sid":"00:03.0","iova":"0x0","len":1,"dir":"r","priv":true}')), /go with a "pasid"/);
    assert.throws(() => replayWithModel(bad({}, '{"op":"dma","sid":"00:03.0","iova":"0x0","len":1,"dir":"r","pasid":1}')), /scalable mode/);
  });
});
