/**
 * Properties (fast-check) of scalable mode, core against the plain-TypeScript reference model (issue 13 item 8),
 * in the shape of test/core/properties.test.ts: random scalable-mode layouts (root, context, PASID-directory
 * and PASID entries with every PGTT, first- and second-stage paging entries, hostile values among them), random
 * registers (TTM, DW) and requests with and without PASID give identical results through the public API; the
 * Accessed/Dirty flags the unit writes into first-stage entries are the same bytes; random 256-bit descriptors
 * leave the same queue state; no input, however hostile, traps the core.
 *
 * No table changes after a request here, so a caching core and the cacheless model must agree exactly (the
 * only memory the requests change is A/D flags, which no outcome depends on but the nested 77h: a flag that is
 * already set needs no write).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Iommu, TranslateResult, VtdError } from '../../src/index.js';
import { RefModel, defaultModelConfig, type ModelConfig, type ModelDmaRequest } from './model.js';

const RAM = 0x4000000n; // 64 MiB
const ROOT = 0x100000n;
const CONTEXT_TABLES = 0x110000n; // bus b, half h: CONTEXT_TABLES + (2b + h) * 4 KiB
const DIRECTORIES = 0x120000n; // one 4 KiB directory per SID index
const PASID_TABLES = 0x130000n; // PASID_TABLES + k * 4 KiB
const PASID_TABLE_COUNT = 4;
const POOL = 0x200000n; // paging-structure frames: POOL + k * 4 KiB
const POOL_FRAMES = 24;
const QUEUE = 0x180000n;
const STATUS = 0x190000n;
const SIDS = [0x0018, 0x0019, 0x0088, 0x0100, 0x01f8];
const PASIDS = [0, 1, 2, 3, 64, 65];
const MASK64 = (1n << 64n) - 1n;

type Options = { aw: 48 | 57; flts: boolean; pasid: boolean; nest: boolean; ir: boolean; nfr: number; caches: boolean };
type Unit = { core: Iommu; model: RefModel; opts: Options };

function makeUnit(o: Options): Unit {
  const core = Iommu.create({
    aw: o.aw, sm: true, flts: o.flts, pasid: o.pasid, nest: o.nest, ir: o.ir, nfr: o.nfr, ram: RAM,
    iotlbEntries: o.caches ? 256 : 0, contextCache: o.caches,
  });
  const cfg: ModelConfig = { ...defaultModelConfig, aw: o.aw, sm: true, flts: o.flts, pasid: o.pasid, nest: o.nest, ir: o.ir, nfr: o.nfr, ram: RAM };
  return { core, model: new RefModel(cfg), opts: o };
}

function writeQ(u: Unit, gpa: bigint, q: bigint[]): void {
  u.core.writeGuestQwords(gpa, q);
  const b = new Uint8Array(q.length * 8);
  const dv = new DataView(b.buffer);
  q.forEach((v, i) => dv.setBigUint64(i * 8, v, true));
  u.model.writeMem(gpa, b);
}

function mmio(u: Unit, off: number, size: 4 | 8, v: bigint): void {
  u.core.mmioWrite(off, size, v);
  u.model.mmioWrite(off, size, v);
}

function outcome(r: TranslateResult): string {
  if (r.ok) return `ok ${r.gpaBig.toString(16)}`;
  return r.fault !== undefined ? `fault ${r.fault}` : 'blocked';
}

function modelOutcome(m: ReturnType<RefModel['dma']>): string {
  if (m.ok) return `ok ${m.gpa.toString(16)}`;
  return m.fault !== undefined ? `fault ${m.fault}` : 'blocked';
}

// ---- Generators ---------------------------------------------------------------

const u64 = fc.bigInt({ min: 0n, max: MASK64 });
const junkArb = (weight: number): fc.Arbitrary<bigint> =>
  fc.oneof({ weight, arbitrary: fc.constant(0n) }, { weight: 1, arbitrary: u64 }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 63 }).map((b) => 1n << BigInt(b)) });

const optionsArb: fc.Arbitrary<Options> = fc.record({
  aw: fc.constantFrom<48 | 57>(48, 57),
  flts: fc.boolean(), pasid: fc.boolean(), nest: fc.boolean(), ir: fc.boolean(),
  nfr: fc.integer({ min: 1, max: 3 }), caches: fc.boolean(),
});

/** A paging entry usable as first- or second-stage (the low bits carry both formats' flags), mostly well formed. */
const pagingEntryArb: fc.Arbitrary<bigint> = fc.oneof(
  { weight: 6, arbitrary: fc.record({
    frame: fc.integer({ min: 0, max: POOL_FRAMES - 1 }), low: fc.integer({ min: 0, max: 0x7f }), ps: fc.integer({ min: 0, max: 5 }), xd: fc.integer({ min: 0, max: 7 }),
  }).map(({ frame, low, ps, xd }) => (POOL + BigInt(frame) * 0x1000n) | BigInt(low) | 1n | (ps === 0 ? 0x80n : 0n) | (xd === 0 ? 1n << 63n : 0n)) },
  { weight: 2, arbitrary: fc.constant(0n) },
  { weight: 1, arbitrary: u64 },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x3ff }).map((x) => (BigInt(x) << 21n) | 0x87n) }, // a large page somewhere
  { weight: 1, arbitrary: fc.integer({ min: 12, max: 63 }).map((b) => POOL | 7n | (1n << BigInt(b))) }, // one odd bit
  { weight: 1, arbitrary: fc.constant(0x0000fffffffff000n | 7n) }, // beyond RAM
);

const tableArb = fc.integer({ min: 0, max: POOL_FRAMES - 1 }).map((k) => POOL + BigInt(k) * 0x1000n);

/** A PASID-table entry: PGTT weighted to the valid ones, hostile bits sometimes. */
const pasidEntryArb: fc.Arbitrary<bigint[]> = fc.record({
  p: fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  fpd: fc.boolean(),
  aw: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(1, 2) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 7 }) }),
  pgtt: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(1, 2, 3, 4) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 7 }) }),
  slptptr: tableArb, flptr: tableArb,
  did: fc.integer({ min: 0, max: 0xffff }),
  sre: fc.boolean(), wpe: fc.boolean(), flpm: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 3 }) }),
  junk: fc.array(junkArb(12), { minLength: 8, maxLength: 8 }),
}).map((f) => {
  const q = [
    (f.p ? 1n : 0n) | (f.fpd ? 2n : 0n) | (BigInt(f.aw) << 2n) | (BigInt(f.pgtt) << 6n) | f.slptptr,
    BigInt(f.did),
    (f.sre ? 1n : 0n) | (BigInt(f.flpm) << 2n) | (f.wpe ? 0x10n : 0n) | f.flptr,
    0n, 0n, 0n, 0n, 0n,
  ];
  return q.map((v, i) => v | f.junk[i]!);
});

const contextArb = (sidIndex: number): fc.Arbitrary<bigint[]> => fc.record({
  p: fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  fpd: fc.boolean(), paside: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  pdts: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 7 }) }),
  ridPasid: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...PASIDS) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xfffff }) }),
  ridPriv: fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  junk: fc.array(junkArb(16), { minLength: 4, maxLength: 4 }),
}).map((c) => [
  (DIRECTORIES + BigInt(sidIndex) * 0x1000n) | (c.p ? 1n : 0n) | (c.fpd ? 2n : 0n) | (c.paside ? 8n : 0n) | (BigInt(c.pdts) << 9n) | c.junk[0]!,
  BigInt(c.ridPasid) | (c.ridPriv ? 1n << 20n : 0n) | c.junk[1]!,
  c.junk[2]!, c.junk[3]!,
]);

const layoutArb = fc.record({
  // Per bus 0 and 1: each half present (the normal case), absent, or odd.
  roots: fc.array(fc.tuple(fc.constantFrom(0, 1, 1, 1, 2), fc.constantFrom(0, 1, 1, 1, 2), junkArb(3)), { minLength: 2, maxLength: 2 }),
  contexts: fc.tuple(...SIDS.map((_, i) => contextArb(i))),
  // Directory entries 0 and 1 of each SID's directory: (table k | flags).
  directories: fc.array(fc.tuple(fc.integer({ min: 0, max: PASID_TABLE_COUNT - 1 }), fc.constantFrom(0n, 1n, 1n, 1n, 3n), junkArb(10)), { minLength: 2 * SIDS.length, maxLength: 2 * SIDS.length }),
  // PASID entries: (table k, index 0..3, entry).
  pasidEntries: fc.array(fc.tuple(fc.integer({ min: 0, max: PASID_TABLE_COUNT - 1 }), fc.integer({ min: 0, max: 3 }), pasidEntryArb), { maxLength: 16 }),
  entries: fc.array(fc.tuple(fc.integer({ min: 0, max: POOL_FRAMES - 1 }), fc.integer({ min: 0, max: 3 }), pagingEntryArb), { maxLength: 120 }),
  ttm: fc.oneof({ weight: 12, arbitrary: fc.constant(1n) }, { weight: 1, arbitrary: fc.constantFrom(0n, 2n, 3n) }),
});

type Layout = typeof layoutArb extends fc.Arbitrary<infer T> ? T : never;

const dmaArb = fc.record({
  sid: fc.constantFrom(...SIDS),
  idx: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 5, maxLength: 5 }),
  off: fc.integer({ min: 0, max: 0xfff }),
  // Mostly small addresses; sometimes anything, or a canonical upper-half address.
  big: fc.oneof({ weight: 8, arbitrary: fc.constant(0n) }, { weight: 1, arbitrary: u64 }, { weight: 1, arbitrary: fc.bigInt({ min: 0xffff800000000000n, max: MASK64 }) }),
  len: fc.constantFrom(1, 4, 8, 64, 2048, 4096),
  w: fc.boolean(),
  pasid: fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 3, arbitrary: fc.constantFrom(...PASIDS) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xfffff }) }),
  priv: fc.boolean(), exe: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
}).map((d) => ({
  sid: d.sid,
  iova: d.big !== 0n ? d.big : d.idx.reduce((a, x, l) => a | (BigInt(x) << BigInt(12 + 9 * l)), 0n) | BigInt(d.off),
  len: d.len, dir: (d.w ? 'w' : 'r') as 'r' | 'w',
  req: d.pasid === undefined ? undefined : ({ pasid: d.pasid, priv: d.priv, exe: d.exe } as ModelDmaRequest),
}));

type Dma = typeof dmaArb extends fc.Arbitrary<infer T> ? T : never;

/**
 * Requests with PASID go to every unit: one without ECAP.PASID (option `pasid`) refuses them with 45h
 * (docs/DESIGN.md "Scalable mode"), which core and model must agree on too.
 */
function usable(_u: Unit, d: Dma): Dma {
  return d;
}

function applyLayout(u: Unit, l: Layout): void {
  l.roots.forEach(([lower, upper, junk], bus) => {
    const half = (kind: number, h: number): bigint => (kind === 0 ? 0n : (CONTEXT_TABLES + BigInt(2 * bus + h) * 0x1000n) | 1n | (kind === 2 ? junk : 0n));
    writeQ(u, ROOT + BigInt(bus) * 16n, [half(lower, 0), half(upper, 1)]);
  });
  SIDS.forEach((sid, i) => {
    const bus = sid >> 8;
    const devfn = sid & 0xff;
    const table = CONTEXT_TABLES + BigInt(2 * bus + (devfn >= 128 ? 1 : 0)) * 0x1000n;
    writeQ(u, table + BigInt(devfn % 128) * 32n, l.contexts[i]!);
    for (const d of [0, 1]) {
      const [k, flags, junk] = l.directories[2 * i + d]!;
      writeQ(u, DIRECTORIES + BigInt(i) * 0x1000n + BigInt(d) * 8n, [(PASID_TABLES + BigInt(k) * 0x1000n) | flags | junk]);
    }
  });
  for (const [k, index, q] of l.pasidEntries) writeQ(u, PASID_TABLES + BigInt(k) * 0x1000n + BigInt(index) * 64n, q);
  for (const [frame, index, value] of l.entries) writeQ(u, POOL + BigInt(frame) * 0x1000n + BigInt(index) * 8n, [value]);
  mmio(u, 0x20, 8, ROOT | (l.ttm << 10n));
  mmio(u, 0x18, 4, 0x40000000n); // SRTP
  mmio(u, 0x18, 4, 0x80000000n); // TE
}

const FAULT_REGS: [number, 4 | 8][] = [[0x34, 4], [0x38, 4], [0x220, 8], [0x228, 8]];

function compareRegs(u: Unit, what: string): void {
  for (const [off, size] of FAULT_REGS) {
    assert.equal(u.core.mmioRead(off, size), u.model.mmioRead(off, size), `${what}: register 0x${off.toString(16)}`);
  }
}

/** The paging-structure pool as bytes: where the unit writes Accessed/Dirty flags. */
function comparePool(u: Unit, what: string): void {
  for (let k = 0; k < POOL_FRAMES; k++) {
    const gpa = POOL + BigInt(k) * 0x1000n;
    assert.deepEqual(u.core.readGuest(gpa, 0x20), u.model.readMem(gpa, 0x20), `${what}: paging entries in frame 0x${gpa.toString(16)}`);
  }
}

function describeDma(d: Dma): string {
  return JSON.stringify({ ...d, iova: d.iova.toString(16) });
}

const RUNS = Number(process.env.VTD_PROPERTY_RUNS ?? 200);

// ---- Properties ----------------------------------------------------------------------

test('scalable mode: random layouts and requests with and without PASID: core (caches on and off) equals the model', () => {
  fc.assert(fc.property(optionsArb, layoutArb, fc.array(dmaArb, { minLength: 1, maxLength: 40 }), (o, layout, dmas) => {
    const u = makeUnit(o);
    applyLayout(u, layout);
    const r = new TranslateResult();
    dmas.forEach((raw, i) => {
      const d = usable(u, raw);
      u.core.translateInto(d.sid, d.iova, d.dir, d.len, r, d.req);
      assert.equal(outcome(r), modelOutcome(u.model.dma(d.sid, d.iova, d.len, d.dir, d.req)), `dma ${i} ${describeDma(d)}`);
      if (i % 7 === 0) { // service faults now and then, as a driver would
        for (let rec = 0; rec < o.nfr; rec++) mmio(u, 0x22c + 16 * rec, 4, 0x80000000n);
        mmio(u, 0x34, 4, 0x7fn);
      }
      compareRegs(u, `after dma ${i} ${describeDma(d)}`);
    });
    comparePool(u, 'after the requests');
  }), { numRuns: RUNS });
});

test('scalable mode: probe answers what translate answers, with and without PASID (caches off)', () => {
  fc.assert(fc.property(optionsArb, layoutArb, fc.array(dmaArb, { minLength: 1, maxLength: 30 }), (o, layout, dmas) => {
    const u = makeUnit({ ...o, caches: false });
    applyLayout(u, layout);
    for (const raw of dmas) {
      const d = usable(u, raw);
      const p = u.core.probe(d.sid, d.iova, d.dir, d.req);
      const t = u.core.translate(d.sid, d.iova, d.dir, 1, d.req);
      assert.equal(p.status, t.status, `status of ${describeDma(d)}`);
      if (p.ok) assert.equal(p.gpa, t.gpaBig, `gpa of ${describeDma(d)}`);
    }
  }), { numRuns: RUNS });
});

/** A descriptor for a 256-bit (or 128-bit) slot: mostly well formed types 1, 2, 4, 5, 6, 7, sometimes anything. */
const descriptorArb: fc.Arbitrary<bigint[]> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ g: fc.integer({ min: 0, max: 3 }), did: fc.integer({ min: 0, max: 0xffff }), sid: fc.constantFrom(...SIDS) })
    .map(({ g, did, sid }) => [0x1n | (BigInt(g) << 4n) | (BigInt(did) << 16n) | (BigInt(sid) << 32n), 0n, 0n, 0n]) },
  { weight: 2, arbitrary: fc.record({ g: fc.integer({ min: 0, max: 3 }), did: fc.integer({ min: 0, max: 0xffff }), am: fc.integer({ min: 0, max: 20 }), addr: fc.integer({ min: 0, max: 0xfffff }) })
    .map(({ g, did, am, addr }) => [0x2n | (BigInt(g) << 4n) | (BigInt(did) << 16n), (BigInt(addr) << 12n) | BigInt(am), 0n, 0n]) },
  { weight: 3, arbitrary: fc.record({ g: fc.integer({ min: 0, max: 3 }), did: fc.integer({ min: 0, max: 0xffff }), pasid: fc.constantFrom(...PASIDS), am: fc.integer({ min: 0, max: 20 }), ih: fc.boolean(), addr: fc.integer({ min: 0, max: 0xfffff }) })
    .map(({ g, did, pasid, am, ih, addr }) => [0x6n | (BigInt(g) << 4n) | (BigInt(did) << 16n) | (BigInt(pasid) << 32n), (BigInt(addr) << 12n) | (ih ? 0x40n : 0n) | BigInt(am), 0n, 0n]) },
  { weight: 3, arbitrary: fc.record({ g: fc.integer({ min: 0, max: 3 }), did: fc.integer({ min: 0, max: 0xffff }), pasid: fc.constantFrom(...PASIDS) })
    .map(({ g, did, pasid }) => [0x7n | (BigInt(g) << 4n) | (BigInt(did) << 16n) | (BigInt(pasid) << 32n), 0n, 0n, 0n]) },
  { weight: 1, arbitrary: fc.constant<bigint[]>([0x4n, 0n, 0n, 0n]) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffff }).map((data) => [0x25n | (BigInt(data) << 32n), STATUS, 0n, 0n]) },
  { weight: 1, arbitrary: fc.array(u64, { minLength: 4, maxLength: 4 }) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 3 }), u64).map(([i, junk]) => { const q = [0x7n | (3n << 4n), 0n, 0n, 0n]; q[i] = q[i]! | junk; return q; }) },
);

test('scalable mode: random descriptors (DW 0 and 1, TTM 00 and 01) leave the same queue, status and events; requests still agree', () => {
  fc.assert(fc.property(
    optionsArb, layoutArb, fc.boolean(), fc.array(fc.array(descriptorArb, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 4 }),
    fc.array(fc.integer({ min: 0, max: 1 }), { minLength: 4, maxLength: 4 }), fc.array(dmaArb, { maxLength: 10 }),
    (o, layout, dw, batches, tailQuirks, dmas) => {
      const u = makeUnit(o);
      applyLayout(u, layout);
      const slot = dw ? 32 : 16;
      mmio(u, 0x90, 8, QUEUE | (dw ? 0x800n : 0n));
      mmio(u, 0x88, 8, 0n);
      mmio(u, 0x18, 4, 0x84000000n); // TE, QIE
      let tail = 0;
      batches.forEach((batch, b) => {
        for (const q of batch) {
          writeQ(u, QUEUE + BigInt(tail), dw ? q : q.slice(0, 2));
          tail += slot;
        }
        // Now and then a tail with bit 4 set under DW = 1 (half a descriptor).
        const written = BigInt(tail) | (dw && tailQuirks[b] === 1 && b === batches.length - 1 ? 0x10n : 0n);
        mmio(u, 0x88, 8, written);
        for (const [off, size] of [[0x80, 8], [0x88, 8], [0x34, 4], [0x38, 4], [0x9c, 4], [0xa0, 4]] as [number, 4 | 8][]) {
          assert.equal(u.core.mmioRead(off, size), u.model.mmioRead(off, size), `after batch ${b}: register 0x${off.toString(16)}`);
        }
        assert.deepEqual(u.core.readGuest(STATUS, 4), u.model.readMem(STATUS, 4), `after batch ${b}: wait status`);
        if ((u.model.mmioRead(0x34, 4) & 0x10n) !== 0n) {
          // A queue error stops the queue: clear IQE and skip past the bad slot, as Linux repairs it.
          mmio(u, 0x34, 4, 0x10n);
          tail = Number(u.model.mmioRead(0x80, 8));
          mmio(u, 0x88, 8, BigInt(tail));
        }
      });
      const r = new TranslateResult();
      dmas.forEach((raw, i) => {
        const d = usable(u, raw);
        u.core.translateInto(d.sid, d.iova, d.dir, d.len, r, d.req);
        assert.equal(outcome(r), modelOutcome(u.model.dma(d.sid, d.iova, d.len, d.dir, d.req)), `dma ${i} ${describeDma(d)}`);
      });
      compareRegs(u, 'after the descriptors and requests');
    }), { numRuns: RUNS });
});

test('scalable mode: hostile layouts and requests never trap the core; bad host input is a VtdError', () => {
  fc.assert(fc.property(optionsArb, layoutArb, fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffff }), u64, fc.integer({ min: 1, max: 4096 }), fc.boolean(), fc.integer({ min: 0, max: 0xfffff }), fc.boolean(), fc.boolean()), { maxLength: 30 }),
    (o, layout, reqs) => {
      const u = makeUnit({ ...o, pasid: true, caches: true });
      applyLayout(u, layout);
      for (const [sid, iova, len, w, pasid, priv, exe] of reqs) {
        const r = u.core.translate(sid, iova, w ? 'w' : 'r', len, { pasid, priv, exe });
        assert.equal(typeof r.status, 'number');
        u.core.translate(sid, iova, w ? 'w' : 'r', len);
      }
      assert.throws(() => u.core.translate(0x18, 0n, 'r', 1, { pasid: 0x100000 }), VtdError, 'a PASID beyond 20 bits');
    }), { numRuns: RUNS });
});
