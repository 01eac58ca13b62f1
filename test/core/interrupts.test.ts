/** Interrupt remapping through the embedder API (digest §9). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Iommu, type MsiResult } from '../../src/index.js';

const IRT = 0x190000, QUEUE = 0x180000, SID = 0x18;

/** A unit with QI and remapping enabled over an IRT of 2^(s+1) entries holding `entries` (index -> [lo, hi]). */
function irUnit(entries: Record<number, [bigint, bigint]>, opts: Parameters<typeof Iommu.create>[0] = {}, s = 3, eime = false): Iommu {
  const u = Iommu.create({ aw: 48, ir: true, ...opts });
  for (const [i, [lo, hi]] of Object.entries(entries)) u.writeGuestQwords(IRT + Number(i) * 16, [lo, hi]);
  u.mmioWrite(0x90, 8, BigInt(QUEUE));
  u.mmioWrite(0x18, 4, 0x04000000); // QIE
  u.mmioWrite(0xb8, 8, BigInt(IRT) | BigInt(s) | (eime ? 0x800n : 0n));
  u.mmioWrite(0x18, 4, 0x05000000); // SIRTP
  u.mmioWrite(0x18, 4, 0x06000000); // IRE
  return u;
}

/** A remapped IRTE: vector, destination (xAPIC: bits 47:40), optional fields. */
function irte(vector: number, dest: number, f: { fpd?: boolean; dm?: number; rh?: number; tm?: number; dlm?: number; x2apic?: boolean } = {}): bigint {
  const dst = f.x2apic ? BigInt(dest) << 32n : BigInt(dest) << 40n;
  return dst | (BigInt(vector) << 16n) | (BigInt(f.dlm ?? 0) << 5n) | (BigInt(f.tm ?? 0) << 4n) | (BigInt(f.rh ?? 0) << 3n)
    | (BigInt(f.dm ?? 0) << 2n) | (f.fpd ? 2n : 0n) | 1n;
}

const remappable = (index: number, shv = false) => (0xfee00000 | ((index & 0x7fff) << 5) | 0x10 | (shv ? 8 : 0) | ((index >> 15) << 2)) >>> 0;

function delivered(r: MsiResult): { dest: number; vector: number } {
  assert.ok(r.ok && !r.posted, `not delivered: ${JSON.stringify(r, (_, v) => typeof v === 'bigint' ? v.toString(16) : v)}`);
  return { dest: r.destination, vector: r.vector };
}

test('remapped delivery decodes the IRTE', () => {
  const u = irUnit({ 5: [irte(0x42, 7, { dm: 1, rh: 1, tm: 1, dlm: 1 }), 0n] });
  const r = u.remapMsi(SID, remappable(5), 0);
  assert.ok(r.ok && !r.posted);
  assert.equal(r.addr, 0xfee0700cn);
  assert.equal(r.data, 0xc142);
  assert.deepEqual([r.destination, r.vector, r.deliveryMode, r.triggerMode, r.destinationMode, r.redirectionHint, r.index], [7, 0x42, 1, 1, 1, 1, 5]);
});

test('sub-handles index from the handle; data bits 31:16 must be 0 with SHV', () => {
  const u = irUnit({ 3: [irte(0x30, 1), 0n], 5: [irte(0x50, 2), 0n] });
  assert.equal(delivered(u.remapMsi(SID, remappable(3, true), 2)).vector, 0x50);
  const bad = u.remapMsi(SID, remappable(3, true), 0x10002);
  assert.deepEqual(bad, { ok: false, fault: 0x20, reason: 0x20 });
  assert.equal(u.mmioRead(0x220, 8), 0n, 'FI undefined (0) for 20h');
});

test('IOAPIC remappable RTEs become remappable MSIs with SHV = 0', () => {
  const u = irUnit({ 9: [irte(0x61, 3, { tm: 1 }), 0n], 0x8001: [irte(0x62, 4), 0n] }, {}, 15);
  // RTE: vector 0x61, trigger level, remappable format (bit 48), handle 9 in 63:49.
  const rte = (9n << 49n) | (1n << 48n) | (1n << 15n) | 0x61n;
  assert.deepEqual(delivered(u.remapIoapic(0xff00, rte)), { dest: 3, vector: 0x61 });
  // Handle bit 15 comes from RTE bit 11.
  const rte2 = (1n << 49n) | (1n << 48n) | (1n << 11n) | 0x62n;
  assert.deepEqual(delivered(u.remapIoapic(null, rte2)), { dest: 4, vector: 0x62 });
});

test('source-id validation: SVT 1 with SQ masks, SVT 2 bus ranges, SVT 3 reserved', () => {
  const hi = (svt: number, sq: number, sid: number) => (BigInt(svt) << 18n) | (BigInt(sq) << 16n) | BigInt(sid);
  const u = irUnit({
    0: [irte(0x30, 1), hi(1, 0, 0x18)], 1: [irte(0x31, 1), hi(1, 3, 0x1f)],
    2: [irte(0x32, 1), hi(2, 0, 0x0102)], 3: [irte(0x33, 1), hi(3, 0, 0x18)],
  });
  assert.ok(u.remapMsi(0x18, remappable(0), 0).ok);
  assert.equal((u.remapMsi(0x19, remappable(0), 0) as { fault?: number }).fault, 0x26);
  assert.ok(u.remapMsi(0x1a, remappable(1), 0).ok, 'SQ=3 ignores the function');
  assert.ok(u.remapMsi(0x100, remappable(2), 0).ok, 'bus 1 within 1..2');
  assert.ok(u.remapMsi(0x218, remappable(2), 0).ok, 'bus 2 within 1..2');
  assert.equal((u.remapMsi(0x318, remappable(2), 0) as { reason: number }).reason, 0x26);
  assert.equal((u.remapMsi(0x18, remappable(3), 0) as { reason: number }).reason, 0x24);
  // A source without a requester id is not validated.
  assert.ok(u.remapMsi(null, remappable(0), 0).ok);
});

test('FPD suppresses 22h, 24h and 26h only', () => {
  const u = irUnit({ 0: [2n, 0n], 1: [irte(0x31, 1, { fpd: true }) | (1n << 12n), 0n] });
  assert.deepEqual(u.remapMsi(SID, remappable(0), 0), { ok: false, reason: 0x22 });
  assert.deepEqual(u.remapMsi(SID, remappable(1), 0), { ok: false, reason: 0x24 });
  assert.equal(u.mmioRead32(0x34), 0, 'nothing recorded');
  assert.deepEqual(u.remapMsi(SID, remappable(16), 0), { ok: false, fault: 0x21, reason: 0x21 });
  assert.equal(u.mmioRead(0x220, 8), 16n << 48n);
});

test('the interrupt entry cache holds IRTEs until invalidated', () => {
  const u = irUnit({ 0: [irte(0x30, 1), 0n] });
  assert.equal(delivered(u.remapMsi(SID, remappable(0), 0)).vector, 0x30);
  u.writeGuestQwords(IRT, [irte(0x99, 2)]);
  // Before invalidation the cached entry is still used (an allowed outcome).
  assert.equal(delivered(u.remapMsi(SID, remappable(0), 0)).vector, 0x30);
  assert.equal(u.counters()['iec.hit'], 1);
  // Index-selective invalidation of entry 0 (descriptor 0x4, G = 1), then a wait.
  u.writeGuestQwords(QUEUE, [0x14n, 0n, 0x100000025n, 0x181000n]);
  u.mmioWrite(0x88, 8, 0x20n);
  assert.equal(delivered(u.remapMsi(SID, remappable(0), 0)).vector, 0x99);
});

test('x2APIC destinations with EIME; compatibility format blocked with EIME', () => {
  const u = irUnit({ 0: [irte(0x3a, 0x21, { x2apic: true }), 0n], 1: [irte(0x3b, 0x12345678, { x2apic: true }), 0n] }, { eim: true }, 0, true);
  assert.equal(u.remapMsi(SID, remappable(0), 0).ok && (u.remapMsi(SID, remappable(0), 0) as { addr: bigint }).addr, 0xfee21000n);
  const r = u.remapMsi(SID, remappable(1), 0);
  assert.ok(r.ok && !r.posted);
  assert.equal(r.destination, 0x12345678);
  assert.equal(r.addr, (0x123456n << 40n) | 0xfee78000n);
  u.mmioWrite(0x18, 4, 0x06800000); // CFI: still blocked because EIME = 1
  assert.equal((u.remapMsi(SID, 0xfee01000, 0x41) as { fault?: number }).fault, 0x25);
});

test('posted-format IRTEs are reported as posted interrupts with CAP.PI', () => {
  const pda = 0x12345678c0n;
  const lo = ((pda & 0xffffffffn) >> 6n) << 38n | (0x55n << 16n) | (1n << 15n) | (1n << 14n) | 1n;
  const hi = (pda >> 32n) << 32n;
  const u = irUnit({ 0: [lo, hi] }, { pi: true });
  assert.equal((u.mmioRead(0x8, 8) >> 59n) & 1n, 1n, 'CAP.PI');
  assert.deepEqual(u.remapMsi(SID, remappable(0), 0), { ok: true, posted: true, descriptor: pda, vector: 0x55, urgent: true, index: 0 });
  // Without CAP.PI, IM is reserved: 24h.
  const q = irUnit({ 0: [lo, hi] });
  assert.equal((q.remapMsi(SID, remappable(0), 0) as { fault?: number }).fault, 0x24);
});

test('remapping off: every message passes unchanged', () => {
  const u = Iommu.create({ ir: true });
  const r = u.remapMsi(SID, remappable(3), 0x1234);
  assert.ok(r.ok && !r.posted);
  assert.equal(r.addr, BigInt(remappable(3)));
  assert.equal(r.data, 0x1234);
  assert.equal(r.index, undefined);
});

// ---- Properties against the reference model ------------------------------------------------

import fc from 'fast-check';
import { RefModel, defaultModelConfig, type ModelMsi } from '../model/model.js';
import { CachedWindowModel, describeMsi } from '../model/windows.js';

const RUNS = Number(process.env.VTD_PROPERTY_RUNS ?? 200);

function coreMsi(r: MsiResult): ModelMsi {
  if (!r.ok) return r.fault !== undefined ? { ok: false, fault: r.fault } : { ok: false };
  if (r.posted) return { ok: true, posted: true, descriptor: r.descriptor, vector: r.vector, urgent: r.urgent };
  return { ok: true, addr: r.addr, data: r.data };
}

const irteArb = fc.oneof(
  { weight: 5, arbitrary: fc.record({ v: fc.integer({ min: 0, max: 255 }), d: fc.integer({ min: 0, max: 255 }), dm: fc.integer({ min: 0, max: 1 }),
    fpd: fc.boolean(), im: fc.boolean(), svt: fc.integer({ min: 0, max: 3 }), sq: fc.integer({ min: 0, max: 3 }), sid: fc.constantFrom(0x18, 0x19, 0x20, 0x0102, 0x0001) })
    .map((e) => [(BigInt(e.d) << 40n) | (BigInt(e.v) << 16n) | (e.im ? 1n << 15n : 0n) | (BigInt(e.dm) << 2n) | (e.fpd ? 2n : 0n) | 1n,
      (BigInt(e.svt) << 18n) | (BigInt(e.sq) << 16n) | BigInt(e.sid)] as [bigint, bigint]) },
  { weight: 1, arbitrary: fc.tuple(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })) },
  { weight: 1, arbitrary: fc.constant([0n, 0n] as [bigint, bigint]) },
);

const msiArb = fc.record({
  sid: fc.constantFrom<number | null>(0x18, 0x19, 0x20, 0x100, 0x318, null),
  index: fc.integer({ min: 0, max: 20 }), shv: fc.boolean(), sub: fc.integer({ min: 0, max: 4 }), compat: fc.boolean(),
  junk: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 0xffff }) }),
  wild: fc.oneof({ weight: 12, arbitrary: fc.constant(0n) }, { weight: 1, arbitrary: fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }) }),
}).map((m) => {
  const addr = m.wild !== 0n ? m.wild
    : m.compat ? BigInt((0xfee00000 | (m.index << 12)) >>> 0)
    : BigInt((0xfee00000 | ((m.index & 0x7fff) << 5) | 0x10 | (m.shv ? 8 : 0)) >>> 0);
  return { sid: m.sid, addr, data: ((m.shv ? m.sub : 0x41) | (m.junk << 16)) >>> 0 };
});

const setupArb = fc.record({ eim: fc.boolean(), eime: fc.boolean(), s: fc.integer({ min: 0, max: 4 }), cfi: fc.boolean(), pi: fc.boolean() });

function programBoth(core: Iommu, model: { writeMem(g: bigint, b: Uint8Array): void; mmioWrite(o: number, s: 4 | 8, v: bigint): void },
  table: [bigint, bigint][], su: { eim: boolean; eime: boolean; s: number; cfi: boolean }): void {
  table.forEach(([lo, hi], i) => {
    core.writeGuestQwords(IRT + i * 16, [lo, hi]);
    const b = new Uint8Array(16);
    new DataView(b.buffer).setBigUint64(0, lo, true);
    new DataView(b.buffer).setBigUint64(8, hi, true);
    model.writeMem(BigInt(IRT + i * 16), b);
  });
  const w = (o: number, s: 4 | 8, v: bigint) => { core.mmioWrite(o, s, v); model.mmioWrite(o, s, v); };
  w(0x90, 8, BigInt(QUEUE));
  w(0x18, 4, 0x04000000n);
  w(0xb8, 8, BigInt(IRT) | BigInt(su.s) | (su.eime ? 0x800n : 0n));
  w(0x18, 4, 0x05000000n);
  w(0x18, 4, su.cfi ? 0x06800000n : 0x06000000n);
}

test('property: random interrupt tables and MSIs, core (caches off) equals the model', () => {
  fc.assert(fc.property(setupArb, fc.array(irteArb, { minLength: 21, maxLength: 21 }), fc.array(msiArb, { minLength: 1, maxLength: 30 }), (su, table, msis) => {
    const eim = su.eim;
    const core = Iommu.create({ aw: 48, ir: true, eim, pi: su.pi, contextCache: false });
    const model = new RefModel({ ...defaultModelConfig, aw: 48, ir: true, eim, pi: su.pi });
    programBoth(core, model, table, su);
    for (const [i, m] of msis.entries()) {
      assert.equal(describeMsi(coreMsi(core.remapMsi(m.sid, m.addr, m.data))), describeMsi(model.msi(m.sid, m.addr, m.data)), `msi ${i}`);
      if (i % 5 === 4) {
        core.mmioWrite(0x22c, 4, 0x80000000);
        core.mmioWrite(0x34, 4, 0x7f);
        model.mmioWrite(0x22c, 4, 0x80000000n);
        model.mmioWrite(0x34, 4, 0x7fn);
      }
    }
    for (const off of [0x34, 0x38, 0x220, 0x224, 0x228, 0x22c]) assert.equal(core.mmioRead(off, 4), model.mmioRead(off, 4), `register 0x${off.toString(16)}`);
  }), { numRuns: RUNS });
});

test('property: with the interrupt entry cache, IRTE edits and IEC invalidations stay within the allowed outcomes', () => {
  const editArb = fc.oneof(
    fc.record({ k: fc.constant('msi' as const), m: msiArb }),
    fc.record({ k: fc.constant('edit' as const), i: fc.integer({ min: 0, max: 20 }), e: irteArb }),
    fc.record({ k: fc.constant('iec' as const), global: fc.boolean(), index: fc.integer({ min: 0, max: 20 }), im: fc.integer({ min: 0, max: 3 }) }),
  );
  fc.assert(fc.property(setupArb, fc.array(irteArb, { minLength: 21, maxLength: 21 }), fc.array(editArb, { minLength: 1, maxLength: 40 }), (su, table, ops) => {
    const core = Iommu.create({ aw: 48, ir: true, eim: su.eim, pi: su.pi });
    const w = new CachedWindowModel({ ...defaultModelConfig, aw: 48, ir: true, eim: su.eim, pi: su.pi });
    programBoth(core, w, table, su);
    let tail = 0;
    for (const op of ops) {
      if (op.k === 'msi') {
        const got = coreMsi(core.remapMsi(op.m.sid, op.m.addr, op.m.data));
        const allowed = w.allowedMsi(op.m.sid, op.m.addr, op.m.data);
        assert.ok(allowed.some((a) => describeMsi(a) === describeMsi(got)), `core ${describeMsi(got)}; allowed ${allowed.map(describeMsi).join(', ')}`);
        w.commitMsi(op.m.sid, op.m.addr, op.m.data, got);
      } else if (op.k === 'edit') {
        core.writeGuestQwords(IRT + op.i * 16, op.e);
        const b = new Uint8Array(16);
        new DataView(b.buffer).setBigUint64(0, op.e[0], true);
        new DataView(b.buffer).setBigUint64(8, op.e[1], true);
        w.writeMem(BigInt(IRT + op.i * 16), b);
      } else {
        const lo = op.global ? 0x4n : 0x14n | (BigInt(op.im) << 27n) | (BigInt(op.index) << 32n);
        const at = QUEUE + tail * 16;
        core.writeGuestQwords(at, [lo, 0n]);
        const b = new Uint8Array(16);
        new DataView(b.buffer).setBigUint64(0, lo, true);
        w.writeMem(BigInt(at), b);
        tail = (tail + 1) % 256;
        core.mmioWrite(0x88, 8, BigInt(tail) << 4n);
        w.mmioWrite(0x88, 8, BigInt(tail) << 4n);
      }
      for (const off of [0x34, 0x80, 0x228]) assert.equal(core.mmioRead(off, 4), w.mmioRead(off, 4), `register 0x${off.toString(16)}`);
    }
  }), { numRuns: RUNS });
});
