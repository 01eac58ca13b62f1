/** The embedder API: registers at every width, guest memory, translation paths, events. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Iommu, TranslateResult, VtdError, type IommuEvent } from '../../src/index.js';
import { externalMemoryUnit } from '../helpers.js';

const RTADDR = 0x20, GCMD = 0x18, GSTS = 0x1c, FSTS = 0x34, FECTL = 0x38, FEDATA = 0x3c, FEADDR = 0x40;
const SID = 0x18; // 00:03.0

/** A unit with 4-level tables mapping iova 0x1000 * i -> 0x2000000 + 0x1000 * i (i < n), R/W per `perm`. */
function unitWithTables(opts: Parameters<typeof Iommu.create>[0] = {}, n = 4, perm = 3n): Iommu {
  const u = Iommu.create({ aw: 48, ...opts });
  u.writeGuestQwords(0x100000, [0x101001n, 0n]);
  u.writeGuestQwords(0x101000 + (SID & 0xff) * 16, [0x110001n, (5n << 8n) | 2n]);
  u.writeGuestQwords(0x110000, [0x111003n]);
  u.writeGuestQwords(0x111000, [0x112003n]);
  u.writeGuestQwords(0x112000, [0x113003n]);
  u.writeGuestQwords(0x113000, Array.from({ length: n }, (_, i) => (0x2000000n + BigInt(i) * 0x1000n) | perm));
  u.mmioWrite(RTADDR, 8, 0x100000n);
  u.mmioWrite(GCMD, 4, 0x40000000);
  u.mmioWrite(GCMD, 4, 0x80000000);
  return u;
}

test('capability registers follow the configuration (QEMU 7.2 values)', () => {
  assert.equal(Iommu.create({ aw: 39 }).mmioRead(0x8, 8), 0x00d2008c22260206n);
  assert.equal(Iommu.create({ aw: 48 }).mmioRead(0x8, 8), 0x00d2008c222f0606n);
  assert.equal(Iommu.create({ aw: 39, cm: true }).mmioRead(0x8, 8), 0x00d2008c22260286n);
  assert.equal(Iommu.create({ aw: 48, cm: true, ir: true, eim: true }).mmioRead(0x8, 8), 0x00d2008c222f0686n);
  assert.equal(Iommu.create({ ir: true }).mmioRead(0x10, 8), 0xf00f4an);
  assert.equal(Iommu.create({}).mmioRead(0x10, 8), 0xf42n);
  assert.equal(Iommu.create({ ir: true, eim: true }).mmioRead(0x10, 8), 0xf00f5an);
  assert.equal(Iommu.create({ dt: true, ir: true }).mmioRead(0x10, 8), 0xf00f4en);
  assert.equal(Iommu.create({ sc: true, ir: true }).mmioRead(0x10, 8), 0xf00fcan);
  assert.equal(Iommu.create({ pt: false, ir: true }).mmioRead(0x10, 8), 0xf00f0an);
  // Extensions beyond QEMU: aw 57 (SAGAW bit 11, MGAW 56) and more fault records.
  const cap57 = Iommu.create({ aw: 57 }).mmioRead(0x8, 8);
  assert.equal((cap57 >> 8n) & 0x1fn, 0b01110n);
  assert.equal((cap57 >> 16n) & 0x3fn, 56n);
  assert.equal((Iommu.create({ nfr: 8 }).mmioRead(0x8, 8) >> 40n) & 0xffn, 7n);
  assert.equal(Iommu.create({}).mmioRead32(0), 0x10);
});

test('every access width and alignment inside the block has a defined answer', () => {
  const u = Iommu.create({ aw: 48 });
  u.mmioWrite(RTADDR, 8, 0x123456789000n);
  assert.equal(u.mmioRead(RTADDR, 1), 0x00n);
  assert.equal(u.mmioRead(RTADDR + 1, 1), 0x90n);
  assert.equal(u.mmioRead(RTADDR + 1, 2), 0x7890n);
  assert.equal(u.mmioRead(RTADDR + 3, 8), 0x123456n); // bytes 3..10: RTADDR's upper bytes, then CCMD (0)
  // A byte write changes only its byte.
  u.mmioWrite(RTADDR + 5, 1, 0xab);
  assert.equal(u.mmioRead(RTADDR, 8), 0xab3456789000n);
  // Undefined offsets read 0 and ignore writes, at any width.
  for (const off of [0x30, 0x4c, 0x100, 0x218, 0x230, 0x7f8, 0xffc]) {
    u.mmioWrite(off, 4, 0xffffffff);
    assert.equal(u.mmioRead(off, 4), 0n, `offset 0x${off.toString(16)}`);
  }
  u.mmioWrite(0xfff, 1, 0xff);
  assert.equal(u.mmioRead(0xfff, 1), 0n);
  // Read-only registers ignore writes.
  u.mmioWrite(0x8, 8, 0n);
  assert.equal(u.mmioRead(0x8, 8), 0x00d2008c222f0606n);
  // GCMD reads 0; its effect shows in GSTS.
  u.mmioWrite(GCMD, 4, 0x40000000);
  assert.equal(u.mmioRead32(GCMD), 0);
  assert.equal(u.mmioRead32(GSTS), 0x40000000);
});

test('accesses the bus cannot issue are host errors with a code', () => {
  const u = Iommu.create();
  const isMmio = (e: unknown) => e instanceof VtdError && e.code === 'MMIO_ACCESS';
  assert.throws(() => u.mmioRead(0, 3 as 4), isMmio);
  assert.throws(() => u.mmioRead(0xffc, 8), isMmio);
  assert.throws(() => u.mmioWrite(0x1000, 4, 0), isMmio);
  assert.throws(() => u.mmioWrite(-4, 4, 0), isMmio);
});

test('register writes: write-1-to-clear, write-only and read-only fields', () => {
  const u = Iommu.create({ aw: 48 });
  // CCMD: FM and SID are write-only, CAIG is read-only and reports the granularity done.
  u.mmioWrite(0x28, 8, 0xe000000302001234n);
  assert.equal(u.mmioRead(0x28, 8), 0x7800000000001234n);
  // IVA is write-only.
  u.mmioWrite(0xf0, 8, 0x12345000n);
  assert.equal(u.mmioRead(0xf0, 8), 0n);
  // A 32-bit write to the low half of CCMD does not run the command.
  u.mmioWrite(0x28, 4, 0x5);
  assert.equal(u.mmioRead(0x28, 8), 0x7800000000000005n);
  // FEDATA keeps 15:0, FEADDR 31:2.
  u.mmioWrite(FEDATA, 4, 0xffffffff);
  u.mmioWrite(FEADDR, 4, 0xffffffff);
  assert.equal(u.mmioRead32(FEDATA), 0xffff);
  assert.equal(u.mmioRead32(FEADDR), 0xfffffffc);
  // FEUADDR is writable only with EIM.
  u.mmioWrite(0x44, 4, 0x12);
  assert.equal(u.mmioRead32(0x44), 0);
  const e = Iommu.create({ ir: true, eim: true });
  e.mmioWrite(0x44, 4, 0x12);
  assert.equal(e.mmioRead32(0x44), 0x12);
});

test('translation: result fields, offsets, and the fault record', () => {
  const u = unitWithTables({}, 2, 1n); // read-only pages
  const r = u.translate(SID, 0x1abc, 'r', 4);
  assert.ok(r.ok);
  assert.equal(r.gpa, 0x2001abc);
  assert.equal(r.gpaBig, 0x2001abcn);
  const w = u.translate(SID, 0x1abc, 'w', 4);
  assert.equal(w.ok, false);
  assert.equal(w.fault, 5);
  assert.equal(u.mmioRead32(FSTS), 0x2);
  assert.equal(u.mmioRead(0x220, 8), 0x1000n);
  assert.equal(u.mmioRead(0x228, 8), 0x8000000500000018n);
  // Probe walks without side effects.
  const p = u.probe(SID, 0x1000, 'r');
  assert.deepEqual(p, { ok: true, status: 0, gpa: 0x2001000n, leaf: 0x2001001n, level: 1, did: 5 });
  assert.deepEqual(u.probe(SID, 0x5000, 'r'), { ok: false, fault: 6, reason: 6, status: 0x106 });
  assert.equal(u.mmioRead32(FSTS), 0x2);
});

test('the fault event reaches the host as an MSI with its address and data', () => {
  const u = unitWithTables();
  const events: IommuEvent[] = [];
  u.on((e) => events.push(e));
  u.mmioWrite(FEADDR, 4, 0xfee00000);
  u.mmioWrite(FEDATA, 4, 0x51);
  u.mmioWrite(FECTL, 4, 0); // unmask
  u.translate(SID, 0x9000, 'r');
  assert.deepEqual(events, [{ type: 'fault-interrupt', addr: 0xfee00000n, data: 0x51 }]);
  assert.equal(u.mmioRead32(FECTL), 0);
  // Masked: IP stays set until unmasked, then the message is sent.
  const m = unitWithTables();
  const ev2: IommuEvent[] = [];
  m.on((e) => ev2.push(e));
  m.translate(SID, 0x9000, 'w');
  assert.equal(m.mmioRead32(FECTL), 0xc0000000);
  assert.equal(ev2.length, 0);
  m.mmioWrite(FECTL, 4, 0);
  assert.equal(ev2.length, 1);
  assert.equal(m.mmioRead32(FECTL), 0);
});

test('invalidations are reported to the host as events', () => {
  const u = unitWithTables({ cm: true });
  const ev: IommuEvent[] = [];
  u.on((e) => ev.push(e));
  u.mmioWrite(0xf0, 8, 0x4002n); // IVA: 0x4000, AM 2
  u.mmioWrite(0xf8, 8, 0xb000000500000000n); // page-selective, DID 5
  u.mmioWrite(0x28, 8, 0xe000000000180005n); // context device-selective
  assert.deepEqual(ev, [
    { type: 'invalidation', cache: 'iotlb', granularity: 3, did: 5, sid: 0, fm: 0, addr: 0x4000n, am: 2, ih: 0 },
    { type: 'invalidation', cache: 'context', granularity: 3, did: 5, sid: 0x18, fm: 0, addr: 0n, am: 0, ih: 0 },
  ]);
});

test('batch path and single-call path give the same answers', () => {
  const u = unitWithTables({ iotlbEntries: 0 }, 8);
  const b = u.batch;
  const iovas = [0x0, 0x1008, 0x7ff0, 0x8000, 0x1000000000000, 0x3004];
  iovas.forEach((iova, i) => b.set(i, SID, iova, i % 2 ? 'w' : 'r', 8));
  const ok = b.run(iovas.length);
  const tr = new TranslateResult();
  let ok2 = 0;
  iovas.forEach((iova, i) => {
    u.translateInto(SID, iova, i % 2 ? 'w' : 'r', 8, tr);
    if (tr.ok) ok2++;
    assert.equal(b.status(i), tr.status, `status ${i}`);
    if (tr.ok) assert.equal(b.gpa(i), tr.gpa);
  });
  assert.equal(ok, ok2);
  assert.equal(ok, 4);
});

test('a 1 TiB guest whose tables use a few pages costs a few pages', () => {
  const u = Iommu.create({ aw: 48, ram: 2 ** 40 });
  const before = u.stats().memoryBytes;
  // Tables scattered across the whole terabyte.
  for (let i = 0; i < 64; i++) u.writeGuestQwords(i * 2 ** 34 + 0x1000, [BigInt(i) | 1n]);
  const s = u.stats();
  assert.equal(s.guestFrames, 64);
  assert.ok(s.memoryBytes - before <= 1 << 20, `grew by ${s.memoryBytes - before} bytes`);
  assert.deepEqual([...u.readGuest(63 * 2 ** 34 + 0x1000, 2)], [63 | 1, 0]);
  // Never-written memory reads as zeros and costs nothing; writing zeros stays sparse.
  assert.deepEqual([...u.readGuest(2 ** 39, 4)], [0, 0, 0, 0]);
  u.writeGuest(2 ** 39, new Uint8Array(8192));
  assert.equal(u.stats().guestFrames, 64);
});

test('guest memory outside RAM is a host error; the unit reads it as a memory error', () => {
  const u = Iommu.create({ aw: 48, ram: 0x200000 });
  assert.throws(() => u.writeGuest(0x1ffffc, new Uint8Array(8)), (e: unknown) => e instanceof VtdError && e.code === 'GUEST_MEMORY');
  assert.throws(() => u.readGuest(0x200000, 1), (e: unknown) => e instanceof VtdError && e.code === 'GUEST_MEMORY');
  u.mmioWrite(RTADDR, 8, 0x300000n); // root table beyond RAM
  u.mmioWrite(GCMD, 4, 0x40000000);
  u.mmioWrite(GCMD, 4, 0x80000000);
  assert.equal(u.translate(SID, 0x1000, 'r').fault, 0x8);
});

test('guest memory owned by the embedder (external mode)', () => {
  const reads: number[] = [];
  const { unit: u, mem } = externalMemoryUnit((gpa) => { reads.push(gpa); return gpa < 0x10000000; });
  const r = u.translate(SID, 0x123, 'w');
  assert.ok(r.ok);
  assert.equal(r.gpa, 0x7000123);
  assert.ok(reads.includes(0x113000));
  // Writes by the guest CPU go to the embedder too.
  u.writeGuest(0x5000, new Uint8Array([1, 2, 3]));
  assert.equal(mem.get(0x5002), 3);
  // The embedder refusing a read is a memory error for the unit: fault 8h.
  u.mmioWrite(RTADDR, 8, 0x20000000n);
  u.mmioWrite(GCMD, 4, 0xc0000000);
  u.mmioWrite(0x28, 8, 0xa000000000000000n);
  assert.equal(u.translate(SID, 0x123, 'r').fault, 0x8);
});

test('protected memory regions block DMA without a fault record (option pmr)', () => {
  const u = Iommu.create({ aw: 48, pmr: true });
  assert.equal((u.mmioRead(0x8, 8) >> 5n) & 3n, 3n); // PLMR | PHMR
  u.mmioWrite(0x68, 4, 0x00200000); // PLMBASE 2 MiB
  u.mmioWrite(0x6c, 4, 0x00200000); // PLMLIMIT: one 2 MiB region
  assert.ok(u.translate(SID, 0x200000, 'r').ok);
  u.mmioWrite(0x64, 4, 0x80000000);
  assert.equal(u.mmioRead32(0x64), 0x80000001); // EPM | PRS
  const r = u.translate(SID, 0x3fffff, 'w');
  assert.equal(r.ok, false);
  assert.equal(r.fault, undefined);
  assert.ok(r.blockedWithoutFault);
  assert.ok(u.translate(SID, 0x400000, 'w').ok);
  assert.equal(u.mmioRead32(FSTS), 0);
  // Without the option the registers are absent (read 0), as on QEMU.
  const q = Iommu.create({});
  q.mmioWrite(0x64, 4, 0x80000000);
  assert.equal(q.mmioRead32(0x64), 0);
});

test('options are validated', () => {
  const isCfg = (e: unknown) => e instanceof VtdError && (e.code === 'CONFIG' || e.code === 'UNSUPPORTED');
  assert.throws(() => Iommu.create({ aw: 40 as 39 }), isCfg);
  assert.throws(() => Iommu.create({ nfr: 0 }), isCfg);
  assert.throws(() => Iommu.create({ flts: true }), isCfg); // flts needs sm
  assert.throws(() => Iommu.create({ eim: true }), isCfg);
  assert.throws(() => Iommu.create({ ramRegions: [] }), isCfg);
  assert.throws(() => Iommu.create({ ramRegions: [[0x2000, 0x1000]] }), isCfg);
  assert.throws(() => Iommu.create().translate(0x10000, 0, 'r'), (e: unknown) => e instanceof VtdError && e.code === 'ARGUMENT');
  assert.throws(() => Iommu.create().translate(0, 0, 'r', 0), (e: unknown) => e instanceof VtdError && e.code === 'ARGUMENT');
});

test('counters name what happened', () => {
  const u = unitWithTables();
  u.translate(SID, 0x0, 'r');
  u.translate(SID, 0x0, 'r');
  u.translate(SID, 0x9000, 'r');
  const c = u.counters();
  assert.equal(c['translate'], 3);
  assert.equal(c['iotlb.hit'], 1);
  assert.equal(c['walk.level4'], 2);
  assert.equal(c['fault.reason.0x06'], 1);
});

test('write-1-to-clear bits ignore writes of 0 (FSTS.PFO, ICS.IWC, FRCD.F)', () => {
  const u = unitWithTables();
  u.translate(SID, 0x9000, 'r'); // recorded
  u.translate(0x20, 0x9000, 'r'); // another requester: the one record is busy -> PFO
  assert.equal(u.mmioRead32(FSTS), 0x3);
  u.mmioWrite(FSTS, 4, 0);
  u.mmioWrite(0x228, 8, 0n);
  assert.equal(u.mmioRead32(FSTS), 0x3);
  assert.equal(u.mmioRead(0x228, 8) >> 63n, 1n);
  u.mmioWrite(FSTS, 4, 1);
  assert.equal(u.mmioRead32(FSTS), 0x2);
  u.mmioWrite(0x22c, 4, 0x80000000);
  assert.equal(u.mmioRead32(FSTS), 0x0);
});

test('probe applies the cumulative rights as a request would', () => {
  const u = unitWithTables({}, 1, 1n); // one read-only page
  assert.equal(u.probe(SID, 0x10, 'r').ok, true);
  assert.deepEqual(u.probe(SID, 0x10, 'w'), { ok: false, fault: 5, reason: 5, status: 0x105 });
  assert.equal(u.mmioRead32(FSTS), 0, 'nothing recorded');
});
