/** Scalable mode in the core: configuration, PASID structures, each PGTT, faults with PASID (issue 13). */
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT as REPO } from '../helpers.js';
import assert from 'node:assert/strict';
import { Iommu, VtdError } from '../../src/index.js';
import { created, tracked, CTX_LO, DIR, FRCD, FSTS, GCMD, GCMD_SRTP, PGTT, PTAB, ROOT, RTADDR, SID, Tables, clearFaults, ctxEntry, frcd, pasidEntry, smUnit } from './sm-tables.js';

const hex = (v: bigint) => `0x${v.toString(16).padStart(16, '0')}`;
const caps = (u: Iommu) => [hex(u.mmioRead(0x08, 8)), hex(u.mmioRead(0x10, 8))];

test('CAP and ECAP are the trace format\'s scalable-mode table (QEMU 10), with and without ir', () => {
  const rows: [Parameters<typeof Iommu.create>[0], string, string][] = [
    [{ sm: true }, '0x00d2008c222f0606', '0x0000480080000f42'],
    [{ sm: true, pasid: true }, '0x00d2008c222f0606', '0x0000490080000f42'],
    [{ sm: true, flts: true }, '0x01d2008c222f0606', '0x0000880000000f42'],
    [{ sm: true, flts: true, pasid: true }, '0x01d2008c222f0606', '0x0000890000000f42'],
  ];
  const irBits = 0x00f00008n;
  for (const [o, cap, ecap] of rows) {
    assert.deepEqual(caps(Iommu.create({ aw: 48, ...o })), [cap, ecap], JSON.stringify(o));
    assert.deepEqual(caps(Iommu.create({ aw: 48, ir: true, ...o })), [cap, hex(BigInt(ecap) | irBits)], `${JSON.stringify(o)} ir`);
  }
  // Beyond QEMU: nest = NEST (26) + FLTS + SLTS + SRS + FS1GP; flts with aw 57 adds FS5LP (CAP bit 60).
  const [cap, ecap] = caps(Iommu.create({ aw: 48, sm: true, nest: true })).map(BigInt);
  assert.equal(ecap, 0x0000480080000f42n | (1n << 26n) | (1n << 47n));
  assert.equal(cap, 0x01d2008c222f0606n);
  const cap57 = BigInt(caps(Iommu.create({ aw: 57, sm: true, flts: true }))[0]);
  assert.equal((cap57 >> 60n) & 1n, 1n);
  assert.equal((cap57 >> 56n) & 1n, 1n);
  assert.equal((BigInt(caps(Iommu.create({ aw: 57, sm: true }))[0]) >> 60n) & 1n, 0n, 'FS5LP only with first-stage');
});

test('scalable-mode option rules are errors naming the rule', () => {
  const bad: [Parameters<typeof Iommu.create>[0], RegExp][] = [
    [{ aw: 48, flts: true }, /flts.*requires sm/],
    [{ aw: 48, pasid: true }, /pasid.*requires sm/],
    [{ aw: 48, nest: true }, /nest.*requires sm/],
    [{ aw: 48, sm: true, pasid: true, dt: true }, /pasid and dt/],
    [{ aw: 39, sm: true, flts: true }, /flts.*aw 48 or 57/],
    [{ aw: 39, sm: true, nest: true }, /nest.*aw 48 or 57/],
  ];
  for (const [o, re] of bad) assert.throws(() => Iommu.create(o), (e: unknown) => e instanceof VtdError && e.code === 'CONFIG' && re.test(e.message), JSON.stringify(o));
});

test('RTADDR.TTM and IQA.DW are writable only with sm; a legacy unit ignores TTM as before', () => {
  const legacy = Iommu.create({ aw: 48 });
  legacy.mmioWrite(RTADDR, 8, 0x100c00n);
  legacy.mmioWrite(0x90, 8, 0x200800n);
  assert.equal(legacy.mmioRead(RTADDR, 8), 0x100000n);
  assert.equal(legacy.mmioRead(0x90, 8), 0x200000n);
  const sm = Iommu.create({ aw: 48, sm: true });
  sm.mmioWrite(RTADDR, 8, 0x100400n);
  sm.mmioWrite(0x90, 8, 0x200800n);
  assert.equal(sm.mmioRead(RTADDR, 8), 0x100400n);
  assert.equal(sm.mmioRead(0x90, 8), 0x200800n);
});

test('PGTT 010: second-stage through the RID_PASID entry, cached like a legacy context', () => {
  const { u, t } = smUnit({}, { pgtt: PGTT.SS, slptr: 0x110000, did: 7 });
  t.mapSs(0x110000, 4, 0x5000, 0x777000, 1);
  u.writeGuest(0x110000, new Uint8Array(0x1000));
  t.mapSs(0x110000, 4, 0x5000, 0x777000, 1);
  const r = u.translate(SID, 0x5123, 'r');
  assert.ok(r.ok);
  assert.equal(r.gpa, 0x777123);
  const c0 = u.counters();
  assert.equal(u.translate(SID, 0x5456, 'r').gpa, 0x777456);
  const c1 = u.counters();
  assert.equal(c1['walk.ctxReads'], c0['walk.ctxReads'], 'the second request hits the context cache');
  assert.equal(c1['iotlb.hit'], c0['iotlb.hit'] + 1);
  // No write right: SM reason 85h, recorded without PASID.
  const w = u.translate(SID, 0x5000, 'w');
  assert.equal(w.fault, 0x85);
  const rec = frcd(u);
  assert.deepEqual([rec.f, rec.reason, rec.pp, rec.pasid, rec.read, rec.sid], [true, 0x85, false, 0, false, SID]);
  clearFaults(u);
  assert.equal(u.translate(SID, 0x9000, 'r').fault, 0x86, 'not present: no read permission');
  clearFaults(u);
  assert.equal(u.translate(SID, 2 ** 48, 'r').fault, 0x83, 'beyond the PASID entry\'s width');
});

test('PGTT 100 passes through; PGTT the unit does not offer is 5Bh', () => {
  assert.equal(smUnit({}, { pgtt: PGTT.PT }).u.translate(SID, 0x1234567, 'w').gpa, 0x1234567);
  assert.equal(smUnit({}, { pgtt: PGTT.FS, fsptr: 0x120000 }).u.translate(SID, 0, 'r').fault, 0x5b, 'first-stage without flts');
  assert.equal(smUnit({ flts: true }, { pgtt: PGTT.SS, slptr: 0x110000 }).u.translate(SID, 0, 'r').fault, 0x5b, 'second-stage with flts only');
  assert.equal(smUnit({ flts: true }, { pgtt: PGTT.NESTED, slptr: 0x110000 }).u.translate(SID, 0, 'r').fault, 0x5b, 'nested without nest');
  assert.equal(smUnit({}, { pgtt: 5 }).u.translate(SID, 0, 'r').fault, 0x5b, 'reserved PGTT');
  assert.equal(smUnit({ pt: false }, { pgtt: PGTT.PT }).u.translate(SID, 0, 'r').fault, 0x5b, 'pass-through without pt');
  assert.equal(smUnit({}, { pgtt: PGTT.SS, slptr: 0x110000, aw: 3 }).u.translate(SID, 0, 'r').fault, 0x5b, 'AW outside SAGAW');
  assert.equal(smUnit({ flts: true }, { pgtt: PGTT.FS, fsptr: 0x120000, fspm: 1 }).u.translate(SID, 0, 'r').fault, 0x5b, '5-level without FS5LP');
});

function fsUnit(opts: Parameters<typeof Iommu.create>[0] = {}, pe: Partial<Parameters<typeof pasidEntry>[0]> = {}) {
  const s = smUnit({ flts: true, pasid: true, ...opts }, { pgtt: PGTT.FS, fsptr: 0x120000, did: 3, ...pe });
  s.u.writeGuest(0x120000, new Uint8Array(0x1000));
  return s;
}

test('PGTT 001: 4-level first stage, Accessed on every entry used, Dirty on the leaf of a write only', () => {
  const { u, t } = fsUnit();
  const at = t.mapFs(0x120000, 4, 0x7000, 0x888000);
  const r = u.translate(SID, 0x7abc, 'r');
  assert.ok(r.ok);
  assert.equal(r.gpa, 0x888abc);
  for (const a of at) assert.equal(t.read(a) & 0x60n, 0x20n, `A set, D clear at 0x${a.toString(16)}`);
  assert.equal(u.counters()['walk.adWrites'], 4);
  assert.ok(u.translate(SID, 0x7000, 'w').ok);
  assert.equal(t.read(at[3]) & 0x60n, 0x60n, 'D on the leaf');
  assert.equal(t.read(at[2]) & 0x40n, 0n, 'no D above the leaf');
  assert.equal(u.counters()['walk.adWrites'], 5, 'only the clear D is written');
  // A probe writes nothing.
  const at2 = t.mapFs(0x120000, 4, 0x9000, 0x999000);
  assert.ok(u.probe(SID, 0x9000, 'w').ok);
  assert.equal(t.read(at2[3]) & 0x60n, 0n);
});

test('first stage: A/D are written only when the whole translation succeeds', () => {
  const { u, t } = fsUnit();
  const at = t.mapFs(0x120000, 4, 0x7000, 0x888000, 5n); // P | US: read-only
  assert.equal(u.translate(SID, 0x7000, 'w').fault, 0x85);
  for (const a of at) assert.equal(t.read(a) & 0x60n, 0n, 'nothing written after a fault');
  clearFaults(u);
  const at3 = t.mapFs(0x120000, 4, 0x3000, 0xfee00000 - 0x1000 * 0 + 0x0, 7n);
  assert.equal(u.translate(SID, 0x3000, 'r').fault, 0x87, 'output in the interrupt range');
  assert.equal(t.read(at3[3]) & 0x20n, 0n);
});

test('first stage: large pages, reserved bits, canonical addresses', () => {
  const { u, t } = fsUnit();
  t.mapFs(0x120000, 4, 0x40000000, 0x80000000, 7n, 3); // 1 GiB (FS1GP)
  assert.equal(u.translate(SID, 0x40000000 + 0x123456, 'r').gpa, 0x80123456);
  t.mapFs(0x120000, 4, 0x200000, 0x600000, 7n, 2); // 2 MiB
  assert.equal(u.translate(SID, 0x2abcde, 'r').gpa, 0x6abcde);
  const bad = t.mapFs(0x120000, 4, 0x400000, 0x900000);
  t.write(bad[3], t.read(bad[3]) | (1n << 50n)); // above aw 48
  assert.equal(u.translate(SID, 0x400000, 'r').fault, 0x72);
  clearFaults(u);
  assert.equal(u.translate(SID, 0x800000000000, 'r').fault, 0x80, 'bit 47 set, 63:48 clear');
  clearFaults(u);
  assert.equal(u.translate(SID, 0x5000000, 'r').fault, 0x71, 'not present');
  clearFaults(u);
  // A canonical high-half address walks (index from bits 47:12).
  t.mapFs(0x120000, 4, 0xffff800000001000n, 0xaaa000);
  assert.equal(u.translate(SID, 0xffff800000001010n, 'r').gpa, 0xaaa010);
});

test('first stage: user/supervisor, SRE, WPE, execute', () => {
  const { u, t } = fsUnit();
  t.mapFs(0x120000, 4, 0x7000, 0x888000, 3n); // supervisor page, writable
  assert.equal(u.translate(SID, 0x7000, 'r', 1, { pasid: 0 }).fault, 0x81, 'user request to a supervisor page');
  clearFaults(u);
  assert.ok(u.translate(SID, 0x7000, 'w', 1, { pasid: 0, priv: true }).ok === false, 'SRS is not offered with flts: no supervisor requests');
  assert.equal(frcd(u).reason, 0x5d);
  clearFaults(u);
  // Without ECAP.SRS the PASID entry's SRE is a reserved bit (5Ah), also for a user request.
  const sre = fsUnit({}, { sre: true });
  sre.t.mapFs(0x120000, 4, 0x7000, 0x888000, 7n);
  assert.equal(sre.u.translate(SID, 0x7000, 'r', 1, { pasid: 0 }).fault, 0x5a, 'SRE without ECAP.SRS');
  clearFaults(u);
  assert.equal(u.translate(SID, 0x7000, 'r', 1, { pasid: 0, exe: true }).fault, 0x5c, 'ECAP.ERS = 0: execute requests are refused');
  const rec = frcd(u);
  assert.deepEqual([rec.pp, rec.pasid, rec.exe, rec.priv], [true, 0, true, false]);
  // With nest (SRS offered): supervisor requests, and WPE for supervisor writes to read-only pages.
  const n = smUnit({ nest: true, pasid: true }, { pgtt: PGTT.FS, fsptr: 0x120000, sre: true });
  n.u.writeGuest(0x120000, new Uint8Array(0x1000));
  n.t.mapFs(0x120000, 4, 0x7000, 0x888000, 1n); // supervisor, read-only
  assert.equal(n.u.translate(SID, 0x7000, 'w', 1, { pasid: 0, priv: true }).gpa, 0x888000, 'WPE = 0: allowed');
  const w = smUnit({ nest: true, pasid: true }, { pgtt: PGTT.FS, fsptr: 0x120000, sre: true, wpe: true });
  w.u.writeGuest(0x120000, new Uint8Array(0x1000));
  w.t.mapFs(0x120000, 4, 0x7000, 0x888000, 1n);
  assert.equal(w.u.translate(SID, 0x7000, 'w', 1, { pasid: 0, priv: true }).fault, 0x85, 'WPE = 1: refused');
  const s = smUnit({ nest: true, pasid: true }, { pgtt: PGTT.FS, fsptr: 0x120000 });
  assert.equal(s.u.translate(SID, 0x7000, 'r', 1, { pasid: 0, priv: true }).fault, 0x5d, 'SRE clear');
});

test('5-level first stage with aw 57', () => {
  const { u, t } = smUnit({ aw: 57, flts: true }, { pgtt: PGTT.FS, fsptr: 0x120000, fspm: 1 });
  u.writeGuest(0x120000, new Uint8Array(0x1000));
  const iova = (1n << 52n) | 0x3000n;
  t.mapFs(0x120000, 5, iova, 0x444000);
  assert.equal(u.translate(SID, iova, 'r').gpa, 0x444000);
  assert.equal(u.translate(SID, 1n << 56n, 'r').fault, 0x80, 'bit 56 set alone is not canonical');
});

test('PGTT 011 nested: tables and output through the second stage, the fault of the stage that failed', () => {
  const SL = 0x110000, FS_GPA = 0x3000000;
  const mk = () => {
    const s = smUnit({ nest: true, pasid: true }, { pgtt: PGTT.NESTED, slptr: SL, fsptr: FS_GPA, did: 9 });
    s.u.writeGuest(SL, new Uint8Array(0x1000));
    return s;
  };
  // Guest-physical layout: FS tables at FS_GPA.. (gpa = hpa + 0x1000000 offset through SL), data gpa 0x5000000 -> hpa 0x666000.
  const { u, t } = mk();
  const fsHost = [0x2000000, 0x2001000, 0x2002000, 0x2003000];
  const fsGpa = fsHost.map((h) => h + 0x1000000);
  for (let i = 0; i < 4; i++) { u.writeGuest(fsHost[i], new Uint8Array(0x1000)); t.mapSs(SL, 4, fsGpa[i], fsHost[i], 3); }
  // FS entries hold guest-physical addresses.
  const iova = 0x7000;
  t.write(fsHost[0] + 0, BigInt(fsGpa[1]) | 7n);
  t.write(fsHost[1] + 0, BigInt(fsGpa[2]) | 7n);
  t.write(fsHost[2] + 0, BigInt(fsGpa[3]) | 7n);
  t.write(fsHost[3] + 7 * 8, 0x5000000n | 7n);
  t.mapSs(SL, 4, 0x5000000, 0x666000, 3);
  const r = u.translate(SID, iova + 0x10, 'w');
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.gpa, 0x666010);
  assert.equal(t.read(fsHost[3] + 7 * 8) & 0x60n, 0x60n, 'A and D written at the host address of the FS entry');
  // Final output not mapped in the second stage: 86h (read).
  t.write(fsHost[3] + 8 * 8, 0x5001000n | 7n);
  assert.equal(u.translate(SID, 0x8000, 'r').fault, 0x86);
  clearFaults(u);
  // A first-stage table the second stage does not map: 76h (75h for the top table).
  t.write(fsHost[2] + 8, 0x7000000n | 7n); // iova 0x200000 -> level-1 table at gpa 0x7000000 (unmapped)
  assert.equal(u.translate(SID, 0x200000, 'r').fault, 0x76);
  clearFaults(u);
  // The FS entry needs A but its page is read-only in the second stage: 77h, nothing written.
  t.mapSs(SL, 4, fsGpa[3], fsHost[3], 1);
  t.write(fsHost[3] + 9 * 8, 0x5000000n | 7n);
  assert.equal(u.translate(SID, 0x9000, 'r', 1, { pasid: 0 }).fault, 0x77);
  assert.equal(t.read(fsHost[3] + 9 * 8) & 0x20n, 0n);
  // First stage not present: 71h.
  clearFaults(u);
  assert.equal(u.translate(SID, 0x1000, 'r', 1, { pasid: 0 }).fault, 0x71);
  // Top table not mapped by the second stage.
  const m = mk();
  assert.equal(m.u.translate(SID, 0x1000, 'r').fault, 0x75);
});

test('requests with PASID: PASIDE, directory size, TTM 0, fault records with PP/PV', () => {
  const { u } = smUnit({ pasid: true }, { pgtt: PGTT.PT, did: 2 }, { paside: false });
  assert.equal(u.translate(SID, 0x1000, 'r').gpa, 0x1000, 'a request without PASID is not subject to PASIDE');
  assert.equal(u.translate(SID, 0x1000, 'w', 1, { pasid: 5 }).fault, 0x45);
  const rec = frcd(u);
  assert.deepEqual([rec.reason, rec.pp, rec.pasid, rec.read], [0x45, true, 5, false]);

  const big = smUnit({ pasid: true }, { pgtt: PGTT.PT }, { pdts: 0 });
  assert.equal(big.u.translate(SID, 0, 'r', 1, { pasid: 128 * 64 }).fault, 0x46, 'directory index 128 with 128 entries');
  const ok = smUnit({ pasid: true }, { pgtt: PGTT.PT }, { pdts: 1 }, 128 * 64);
  assert.equal(ok.u.translate(SID, 0x42, 'r', 1, { pasid: 128 * 64 }).gpa, 0x42, 'PDTS 1: 256 entries');
  assert.equal(ok.u.translate(SID, 0, 'r', 1, { pasid: 0xfffff, priv: true }).fault, 0x46);
  assert.deepEqual([frcd(ok.u).pasid, frcd(ok.u).priv], [0xfffff, true]);

  // Without ECAP.PASID (option pasid) no request with PASID is accepted, whatever PASIDE says: 45h.
  const nop = smUnit({}, { pgtt: PGTT.PT });
  assert.equal(nop.u.translate(SID, 0x1000, 'r', 1, { pasid: 0 }).fault, 0x45, 'PASIDE set, ECAP.PASID clear');
  assert.equal(nop.u.translate(SID, 0x1000, 'r').gpa, 0x1000, 'requests without PASID still translate');

  // A request with PASID to 0xFEEx_xxxx is a memory request, translated (spec §3.14); without PASID it
  // is an interrupt request (a write) or blocked (a read).
  const SL = 0x110000;
  const irq = smUnit({ pasid: true }, { pgtt: PGTT.SS, slptr: SL });
  irq.u.writeGuest(SL, new Uint8Array(0x1000));
  irq.t.mapSs(SL, 4, 0xfee00000, 0x500000, 3);
  assert.equal(irq.u.translate(SID, 0xfee00010, 'w', 4, { pasid: 0 }).gpa, 0x500010, 'a write with PASID');
  assert.equal(irq.u.translate(SID, 0xfee00010, 'r', 4, { pasid: 0 }).gpa, 0x500010, 'a read with PASID');
  assert.equal(irq.u.translate(SID, 0xfee00010, 'w', 4).interrupt, true, 'a write without PASID');
  const pt = smUnit({ pasid: true }, { pgtt: PGTT.PT });
  assert.equal(pt.u.translate(SID, 0xfee00000, 'w', 4, { pasid: 0 }).fault, 0x87, 'pass-through output in the interrupt range');
  pt.u.mmioWrite(GCMD, 4, 0); // TE = 0
  assert.equal(pt.u.translate(SID, 0xfee00000, 'w', 4, { pasid: 0 }).gpa, 0xfee00000, 'TE = 0: a request with PASID is memory, untranslated');

  // TTM = 00 on a scalable-mode unit: a request with PASID is 31h.
  const leg = tracked(Iommu.create({ aw: 48, sm: true, pasid: true }));
  leg.mmioWrite(RTADDR, 8, BigInt(ROOT));
  leg.mmioWrite(GCMD, 4, GCMD_SRTP);
  leg.mmioWrite(GCMD, 4, 0x80000000);
  assert.equal(leg.translate(SID, 0, 'r', 1, { pasid: 1 }).fault, 0x31);
  // Host misuse.
  const legacyUnit = Iommu.create({ aw: 48 });
  assert.throws(() => legacyUnit.translate(SID, 0, 'r', 1, { pasid: 1 }), /scalable-mode unit/);
  assert.throws(() => leg.translate(SID, 0, 'r', 1, { pasid: 1 << 20 }), /0\.\.0xfffff/);
  assert.throws(() => leg.translate(SID, 0, 'r', 1, { priv: true }), /go with a pasid/);
});

test('scalable-mode root, context, directory and PASID-entry faults', () => {
  const cases: [string, (u: Iommu) => void, number][] = [
    ['root not present', (u) => u.writeGuestQwords(ROOT, [0n, 0n]), 0x39],
    ['root reserved', (u) => u.writeGuestQwords(ROOT, [BigInt(CTX_LO) | 3n, 0n]), 0x3a],
    ['context not present', (u) => u.writeGuestQwords(CTX_LO + SID * 32, ctxEntry({ p: false })), 0x41],
    ['context reserved', (u) => u.writeGuestQwords(CTX_LO + SID * 32, ctxEntry({ rsvd: true })), 0x42],
    ['context QW2 reserved', (u) => u.writeGuestQwords(CTX_LO + SID * 32 + 16, [1n]), 0x42],
    ['context DTE without dt', (u) => u.writeGuestQwords(CTX_LO + SID * 32, ctxEntry({ dte: true })), 0x42],
    ['context PRE (no ECAP.PRS)', (u) => u.writeGuestQwords(CTX_LO + SID * 32, ctxEntry({ pre: true })), 0x42],
    ['root reserved bits in the half not used', (u) => u.writeGuestQwords(ROOT, [BigInt(CTX_LO) | 1n, 2n]), 0x3a],
    ['RID_PASID beyond the directory', (u) => u.writeGuestQwords(CTX_LO + SID * 32, ctxEntry({ ridPasid: 128 * 64 })), 0x48],
    ['PASID entry QW5 reserved', (u) => u.writeGuestQwords(PTAB + 40, [1n]), 0x5a],
    ['PASID entry ERE (no ECAP.ERS)', (u) => u.writeGuestQwords(PTAB, pasidEntry({ pgtt: PGTT.PT, ere: true })), 0x5a],
    ['PASID entry memory type (no ECAP.MTS)', (u) => u.writeGuestQwords(PTAB + 8, [1n | (1n << 30n)]), 0x5a],
    ['PASID entry QW2 bit 5', (u) => u.writeGuestQwords(PTAB + 16, [0x20n]), 0x5a],
    ['PASID entry reserved bits before an unsupported PGTT', (u) => u.writeGuestQwords(PTAB, pasidEntry({ pgtt: PGTT.FS, rsvd: true })), 0x5a],
    ['PASID entry with an unsupported PGTT', (u) => u.writeGuestQwords(PTAB, pasidEntry({ pgtt: PGTT.FS })), 0x5b],
    ['directory not present', (u) => u.writeGuestQwords(DIR, [0n]), 0x51],
    ['directory reserved', (u) => u.writeGuestQwords(DIR, [BigInt(PTAB) | 5n]), 0x52],
    ['PASID entry not present', (u) => u.writeGuestQwords(PTAB, pasidEntry({ pgtt: PGTT.PT, p: false })), 0x59],
    ['PASID entry reserved', (u) => u.writeGuestQwords(PTAB, pasidEntry({ pgtt: PGTT.PT, rsvd: true })), 0x5a],
    ['root table outside RAM', (u) => { u.mmioWrite(RTADDR, 8, 0x20000000n | 0x400n); u.mmioWrite(GCMD, 4, (GCMD_SRTP | 0x80000000) >>> 0); }, 0x38],
    ['context table outside RAM', (u) => u.writeGuestQwords(ROOT, [0x20000001n, 0n]), 0x40],
    ['directory outside RAM', (u) => u.writeGuestQwords(CTX_LO + SID * 32, ctxEntry({ dir: 0x20000000 })), 0x50],
    ['PASID table outside RAM', (u) => u.writeGuestQwords(DIR, [0x20000001n]), 0x58],
    ['second-stage table outside RAM', (u) => u.writeGuestQwords(PTAB, pasidEntry({ pgtt: PGTT.SS, slptr: 0x20000000 })), 0x7b],
    ['TTM 10', (u) => { u.mmioWrite(RTADDR, 8, BigInt(ROOT) | 0x800n); u.mmioWrite(GCMD, 4, (GCMD_SRTP | 0x80000000) >>> 0); }, 0x30],
  ];
  for (const [name, mutate, reason] of cases) {
    const { u } = smUnit({}, { pgtt: PGTT.PT });
    mutate(u);
    assert.equal(u.translate(SID, 0x1000, 'r').fault, reason, name);
    assert.equal(frcd(u).reason, reason, `${name}: recorded`);
  }
  const fs = smUnit({ flts: true }, { pgtt: PGTT.FS, fsptr: 0x20000000 });
  assert.equal(fs.u.translate(SID, 0x1000, 'r').fault, 0x73, 'first-stage top table outside RAM');
});

test('FPD of the context, directory or PASID entry suppresses qualified scalable-mode faults', () => {
  for (const where of ['ctx', 'dir', 'pe'] as const) {
    const { u } = smUnit({}, { pgtt: PGTT.SS, slptr: 0x110000, fpd: where === 'pe' }, { fpd: where === 'ctx' });
    if (where === 'dir') u.writeGuestQwords(DIR, [BigInt(PTAB) | 3n]);
    u.writeGuest(0x110000, new Uint8Array(0x1000));
    const r = u.translate(SID, 0x1000, 'r');
    assert.equal(r.fault, undefined, where);
    assert.equal(r.faultReason, 0x86, where);
    assert.equal(frcd(u).f, false, `${where}: nothing recorded`);
  }
  // A not-present PASID entry's FPD is honoured; a root fault is never suppressed.
  const { u } = smUnit({}, { pgtt: PGTT.PT, p: false, fpd: true });
  assert.equal(u.translate(SID, 0, 'r').faultReason, 0x59);
  assert.equal(frcd(u).f, false);
  u.writeGuestQwords(ROOT, [0n, 0n]);
  u.mmioWrite(0x28 + 4, 4, 0xa0000000); // CCMD global (ICC | CIRG 01)
  assert.equal(u.translate(SID, 0, 'r').fault, 0x39);
});

test('the upper context table serves devfn 128-255', () => {
  const { u } = smUnit({}, { pgtt: PGTT.PT });
  const sid = 0x0190; // 01:... no: bus 1 devfn 0x90
  u.writeGuestQwords(ROOT + 16, [0n, 0x105001n]);
  u.writeGuestQwords(0x105000 + (0x90 - 128) * 32, ctxEntry());
  assert.equal(u.translate(sid, 0xabc, 'r').gpa, 0xabc);
  assert.equal(u.translate(0x0110, 0xabc, 'r').fault, 0x39, 'the lower half of the same root entry is not present');
});

test('hostile scalable-mode tables never trap', () => {
  // First-stage tables that point to themselves at every level.
  const { u, t } = fsUnit();
  t.write(0x120000, 0x120000n | 7n);
  const r = u.translate(SID, 0, 'w');
  assert.equal(r.ok, true, 'a self-map is a valid (odd) translation');
  assert.equal(r.gpa, 0x120000);
  // PDTS 7 (2^14 directory entries) with the largest PASID: one read, not a scan.
  const s = smUnit({ pasid: true }, { pgtt: PGTT.PT }, { pdts: 7 });
  assert.equal(s.u.translate(SID, 0, 'r', 1, { pasid: 0xfffff }).fault, 0x51);
  // Random junk in every structure.
  let seed = 1;
  const rnd = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return BigInt(seed) << 33n ^ BigInt(seed * 7 & 0x7fffffff); };
  for (let i = 0; i < 60; i++) {
    const z = smUnit({ nest: true, pasid: true }, { pgtt: (i % 5) + 0 });
    z.u.writeGuestQwords(CTX_LO + SID * 32, [rnd() & ~0x1f0n | 1n, rnd() & 0xfffffn, 0n, 0n]);
    z.u.writeGuestQwords(PTAB, [rnd() & 0xffffffffffn, rnd(), rnd() & 0xfffff0ffn, 0n]);
    for (const dir of ['r', 'w'] as const) {
      z.u.translate(SID, Number(rnd() & 0xffffffffn), dir);
      z.u.translate(SID, Number(rnd() & 0xffffffffn), dir, 1, { pasid: Number(rnd() & 0xfffffn), priv: i % 2 === 0 });
    }
  }
});

test('fault records of requests with PASID; collapsing still by SID', () => {
  const { u } = smUnit({ pasid: true }, { pgtt: PGTT.SS, slptr: 0x110000 }, {}, 77);
  u.writeGuest(0x110000, new Uint8Array(0x1000));
  assert.equal(u.translate(SID, 0x4000, 'w', 1, { pasid: 77 }).fault, 0x85);
  const rec = frcd(u);
  assert.deepEqual([rec.reason, rec.pp, rec.pasid, rec.priv, rec.exe, rec.fi], [0x85, true, 77, false, false, 0x4000n]);
  assert.equal(u.mmioRead32(FSTS) & 2, 2);
  assert.deepEqual(u.faultRecords(), [{ index: 0, reason: 0x85, sid: SID, addr: 0x4000n, read: false, pasid: 77, priv: false, exe: false }]);
  // A request without PASID: no pasid in the record.
  const v = smUnit({ pasid: true, nfr: 2 }, { pgtt: PGTT.SS, slptr: 0x110000 });
  v.u.writeGuest(0x110000, new Uint8Array(0x1000));
  v.u.translate(SID, 0x6000, 'r');
  assert.deepEqual(v.u.faultRecords(), [{ index: 0, reason: 0x86, sid: SID, addr: 0x6000n, read: true }]);
  void FRCD;
});

test('batch requests with PASID; requests without keep their meaning', () => {
  const { u, t } = smUnit({ pasid: true }, { pgtt: PGTT.SS, slptr: 0x110000, did: 4 }, {}, 0x12345);
  u.writeGuestQwords(DIR, [BigInt(PTAB) | 1n]);
  u.writeGuestQwords(PTAB, pasidEntry({ pgtt: PGTT.PT, did: 5 }));
  u.writeGuest(0x110000, new Uint8Array(0x1000));
  // PASID 0x12345 lives in directory entry 0x48d: give it its own table.
  u.writeGuestQwords(DIR + 0x48d * 8, [0x106001n]);
  u.writeGuestQwords(0x106000 + (0x12345 & 63) * 64, pasidEntry({ pgtt: PGTT.SS, slptr: 0x110000, did: 4 }));
  u.writeGuestQwords(CTX_LO + SID * 32, ctxEntry({ pdts: 7 }));
  t.mapSs(0x110000, 4, 0x3000, 0x999000, 3);
  const b = u.batch;
  b.set(0, SID, 0x3010, 'r', 16, { pasid: 0x12345 });
  b.set(1, SID, 0x3010, 'r', 16);
  b.set(2, SID, 0x4000, 'w', 1, { pasid: 0x12345, priv: true });
  assert.equal(b.run(3), 2);
  assert.equal(b.gpa(0), 0x999010);
  assert.equal(b.gpa(1), 0x3010, 'without PASID: RID_PASID 0 is pass-through');
  assert.equal(b.status(2) & 0xff, 0x5d);
  assert.deepEqual([frcd(u).pasid, frcd(u).priv], [0x12345, true]);
  // The single-call path agrees.
  assert.equal(u.translate(SID, 0x3020, 'r', 4, { pasid: 0x12345 }).gpa, 0x999020);
});

test('interrupt remapping is unaffected by scalable mode', () => {
  const { u } = smUnit({ ir: true }, { pgtt: PGTT.PT });
  const IRT = 0x190000;
  u.writeGuestQwords(IRT + 5 * 16, [(7n << 40n) | (0x42n << 16n) | 1n, 0n]);
  u.mmioWrite(0xb8, 8, BigInt(IRT) | 3n);
  u.mmioWrite(GCMD, 4, 0x81000000); // TE | SIRTP
  u.mmioWrite(GCMD, 4, 0x82000000); // TE | IRE
  const r = u.remapMsi(SID, (0xfee00000 | (5 << 5) | 0x10) >>> 0, 0);
  assert.ok(r.ok && !r.posted);
  assert.deepEqual([r.destination, r.vector], [7, 0x42]);
  const bad = u.remapMsi(SID, (0xfee00000 | (6 << 5) | 0x10) >>> 0, 0);
  assert.deepEqual(bad, { ok: false, fault: 0x22, reason: 0x22 });
  assert.equal(u.translate(SID, 0x1234, 'r').gpa, 0x1234, 'DMA still translates');
});

test('second-stage and first-stage entry faults below the top table', () => {
  const ss = smUnit({}, { pgtt: PGTT.SS, slptr: 0x110000 });
  ss.u.writeGuest(0x110000, new Uint8Array(0x1000));
  ss.t.write(0x110000, 0x20000003n); // level-3 table outside RAM
  assert.equal(ss.u.translate(SID, 0x1000, 'r').fault, 0x78);
  clearFaults(ss.u);
  ss.t.write(0x110000, 0x120003n | (1n << 50n)); // reserved address bit (aw 48)
  assert.equal(ss.u.translate(SID, 0x1000, 'r').fault, 0x7a);
  const fs = smUnit({ flts: true }, { pgtt: PGTT.FS, fsptr: 0x120000 });
  fs.u.writeGuest(0x120000, new Uint8Array(0x1000));
  fs.t.write(0x120000, 0x20000007n);
  assert.equal(fs.u.translate(SID, 0x1000, 'r').fault, 0x70);
  // Nested: a first-stage table address beyond the second stage's width (AW 39 = 3 levels).
  const n = smUnit({ nest: true }, { pgtt: PGTT.NESTED, slptr: 0x110000, aw: 1, fsptr: 0x120000 });
  n.u.writeGuestQwords(PTAB, pasidEntry({ pgtt: PGTT.NESTED, slptr: 0x110000, aw: 1, fsptr: 0x8000000000 }));
  assert.equal(n.u.translate(SID, 0x1000, 'r').fault, 0x74);
});

test('QI with IQA.DW = 1: 256-bit descriptors, PASID-based IOTLB (6) and PASID-cache (7) invalidation', () => {
  const Q = 0x180000;
  const { u, t } = smUnit({ cm: true }, { pgtt: PGTT.SS, slptr: 0x110000, did: 7 });
  u.writeGuest(0x110000, new Uint8Array(0x1000));
  t.mapSs(0x110000, 4, 0x5000, 0x777000, 3);
  const events: unknown[] = [];
  u.on((e) => { if (e.type === 'invalidation') events.push(e); });
  u.mmioWrite(0x90, 8, BigInt(Q) | 0x800n); // DW = 1, QS 0: 128 descriptors of 32 bytes
  u.mmioWrite(GCMD, 4, (0x04000000 | 0x80000000) >>> 0); // QIE (TE kept)
  let slot = 0;
  const submit = (...q: bigint[]) => {
    u.writeGuestQwords(Q + slot * 32, [...q, 0n, 0n, 0n, 0n].slice(0, 4));
    slot++;
    u.mmioWrite(0x88, 8, BigInt(slot * 32));
  };
  assert.equal(u.translate(SID, 0x5000, 'r').gpa, 0x777000);
  t.mapSs(0x110000, 4, 0x5000, 0x778000, 3); // changed: the IOTLB may still hold the old one
  // Type 6, page-selective within PASID 0 of DID 7.
  submit(0x6n | (3n << 4n) | (7n << 16n), 0x5000n);
  assert.equal(u.translate(SID, 0x5000, 'r').gpa, 0x778000, 'the page was invalidated');
  assert.deepEqual(events.at(-1), { type: 'invalidation', cache: 'pasid-iotlb', granularity: 3, did: 7, pasid: 0, addr: 0x5000n, am: 0, ih: 0 });
  // Type 7, PASID-selective: a changed PASID entry (now pass-through) becomes visible.
  u.writeGuestQwords(PTAB, pasidEntry({ pgtt: PGTT.PT, did: 7 }));
  assert.equal(u.translate(SID, 0x5000, 'r').gpa, 0x778000, 'the cached PASID entry may still be used');
  submit(0x7n | (1n << 4n) | (7n << 16n) | (0n << 32n), 0n);
  assert.equal(u.translate(SID, 0x5000, 'r').gpa, 0x5000);
  assert.deepEqual(events.at(-1), { type: 'invalidation', cache: 'pasid-cache', granularity: 1, did: 7, pasid: 0, addr: 0n, am: 0, ih: 0 });
  // Type 6 all of a PASID, type 7 domain and global: accepted, reported.
  submit(0x6n | (2n << 4n) | (7n << 16n) | (3n << 32n), 0n);
  submit(0x7n | (0n << 4n) | (7n << 16n), 0n);
  submit(0x7n | (3n << 4n), 0n);
  assert.deepEqual(events.slice(-3).map((e) => { const v = e as { cache: string; granularity: number }; return [v.cache, v.granularity]; }),
    [['pasid-iotlb', 2], ['pasid-cache', 0], ['pasid-cache', 3]]);
  assert.equal(u.mmioRead32(FSTS) & 0x10, 0, 'no queue error so far');
  assert.equal(u.mmioRead(0x80, 8), BigInt(slot * 32), 'IQH advanced by 32 bytes per descriptor');
  // A 128-bit type with QW2 set: IQE, IQH stays on it.
  u.writeGuestQwords(Q + slot * 32, [0x2n | (1n << 4n), 0n, 1n, 0n]);
  u.mmioWrite(0x88, 8, BigInt((slot + 1) * 32));
  assert.equal(u.mmioRead32(FSTS) & 0x10, 0x10);
  assert.equal(u.mmioRead(0x80, 8), BigInt(slot * 32));
});

test('QI rules for PASID-based descriptors: IQE in legacy mode, with DW = 0, for bad granularities; IQT bit 4 with DW = 1', () => {
  const Q = 0x180000;
  const run = (opts: Parameters<typeof Iommu.create>[0], dw: boolean, desc: bigint[], tail?: number, ttm = opts.sm === true ? 1n : 0n) => {
    const u = tracked(Iommu.create({ aw: 48, ...opts }));
    u.writeGuestQwords(Q, desc);
    u.mmioWrite(RTADDR, 8, BigInt(ROOT) | (ttm << 10n));
    u.mmioWrite(GCMD, 4, GCMD_SRTP);
    u.mmioWrite(0x90, 8, BigInt(Q) | (dw ? 0x800n : 0n));
    u.mmioWrite(GCMD, 4, 0x04000000);
    u.mmioWrite(0x88, 8, BigInt(tail ?? (dw ? 32 : 16)));
    return u.mmioRead32(FSTS) & 0x10;
  };
  const piotlb = [0x6n | (2n << 4n) | (1n << 16n), 0n, 0n, 0n];
  assert.equal(run({ sm: true }, true, piotlb), 0, 'valid');
  assert.equal(run({}, false, piotlb), 0x10, 'legacy unit');
  assert.equal(run({ sm: true }, true, piotlb, undefined, 0n), 0x10, 'a scalable-mode unit in legacy mode (TTM 00)');
  assert.equal(run({ sm: true }, false, [0x7n | (3n << 4n), 0n], 16), 0x10, 'type 7 in a 128-bit queue (DW = 0)');
  assert.equal(run({ sm: true }, false, piotlb), 0x10, 'DW = 0');
  assert.equal(run({ sm: true }, true, [0x6n | (1n << 4n), 0n, 0n, 0n]), 0x10, 'type 6 G = 01');
  assert.equal(run({ sm: true }, true, [0x6n | (3n << 4n), 19n, 0n, 0n]), 0x10, 'type 6 AM > MAMV');
  assert.equal(run({ sm: true }, true, [0x7n | (2n << 4n), 0n, 0n, 0n]), 0x10, 'type 7 G = 10');
  assert.equal(run({ sm: true }, true, [0x7n | (3n << 4n), 1n, 0n, 0n]), 0x10, 'type 7 QW1 reserved');
  assert.equal(run({ sm: true }, true, [0x7n | (3n << 4n) | (1n << 60n), 0n, 0n, 0n]), 0x10, 'type 7 QW0 63:52 reserved');
  assert.equal(run({ sm: true }, true, [0x5n | (1n << 4n), 0n, 0n, 0n], 16), 0x10, 'IQT bit 4 with DW = 1');
  assert.equal(run({ sm: true }, true, [0x5n | (1n << 4n), 0n, 0n, 0n], 32), 0, 'a wait descriptor in a 256-bit slot');
});

test('context-cache invalidation under scalable-mode tables drops the cached PASID entries', () => {
  const { u } = smUnit({}, { pgtt: PGTT.PT, did: 3 });
  assert.equal(u.translate(SID, 0x5000, 'r').gpa, 0x5000);
  u.writeGuestQwords(PTAB, pasidEntry({ pgtt: PGTT.PT, did: 3, p: false }));
  u.mmioWrite(0x28 + 4, 4, 0xc0000000 >>> 0); // CCMD domain-selective (DID 0): over-invalidates in SM
  assert.equal(u.translate(SID, 0x5000, 'r').fault, 0x59);
});

/** A QI (DW = 1) on unit `u` at 0x180000; returns submit(qw0, qw1). */
function queue(u: Iommu): (qw0: bigint, qw1: bigint) => void {
  const Q = 0x180000;
  u.mmioWrite(0x90, 8, BigInt(Q) | 0x800n);
  u.mmioWrite(GCMD, 4, (0x04000000 | 0x80000000) >>> 0);
  let slot = 0;
  return (qw0, qw1) => {
    u.writeGuestQwords(Q + slot * 32, [qw0, qw1, 0n, 0n]);
    slot++;
    u.mmioWrite(0x88, 8, BigInt(slot * 32));
    assert.equal(u.mmioRead32(FSTS) & 0x10, 0, 'descriptor accepted');
  };
}

test('first-stage translations are cached tagged by DID and PASID; type 6 drops them by PASID and page', () => {
  const { u, t } = smUnit({ flts: true, pasid: true }, { pgtt: PGTT.FS, fsptr: 0x120000, did: 3 });
  u.writeGuest(0x120000, new Uint8Array(0x1000));
  // PASID 1: same DID, its own first-stage tables.
  u.writeGuestQwords(PTAB + 64, pasidEntry({ pgtt: PGTT.FS, fsptr: 0x130000, did: 3 }));
  u.writeGuest(0x130000, new Uint8Array(0x1000));
  t.mapFs(0x120000, 4, 0x7000, 0x888000);
  t.mapFs(0x130000, 4, 0x7000, 0x999000);
  const submit = queue(u);
  assert.equal(u.translate(SID, 0x7000, 'r').gpa, 0x888000);
  assert.equal(u.translate(SID, 0x7000, 'r', 1, { pasid: 1 }).gpa, 0x999000, 'PASID 1 is not served PASID 0\'s entry');
  const c0 = u.counters();
  assert.equal(u.translate(SID, 0x7004, 'r').gpa, 0x888004);
  assert.equal(u.translate(SID, 0x7008, 'r', 1, { pasid: 1 }).gpa, 0x999008);
  const c1 = u.counters();
  assert.equal(c1['walk.firstStage'], c0['walk.firstStage'], 'both hit');
  assert.equal(c1['iotlb.hit'], c0['iotlb.hit'] + 2);
  // A write after a read fill walks again to set Dirty, then hits.
  const at = t.mapFs(0x120000, 4, 0x7000, 0x888000, 7n | 0x20n);
  assert.ok(u.translate(SID, 0x7000, 'w').ok);
  assert.equal(t.read(at[3]) & 0x40n, 0x40n, 'D set by the walk a write needs');
  assert.equal(u.counters()['walk.firstStage'], c1['walk.firstStage'] + 1);
  // Remap both PASIDs; invalidate PASID 1 only (all of it in DID 3): PASID 1 sees the new frame.
  t.mapFs(0x120000, 4, 0x7000, 0x111000);
  t.mapFs(0x130000, 4, 0x7000, 0x222000);
  submit(0x6n | (2n << 4n) | (3n << 16n) | (1n << 32n), 0n);
  assert.equal(u.translate(SID, 0x7000, 'r', 1, { pasid: 1 }).gpa, 0x222000);
  assert.ok([0x888000, 0x111000].includes(u.translate(SID, 0x7000, 'r').gpa), 'PASID 0: the old entry or the new one');
  // Page-selective for PASID 0, AM 1 (two pages from 0x6000): the new frame.
  submit(0x6n | (3n << 4n) | (3n << 16n), 0x6000n | 1n);
  assert.equal(u.translate(SID, 0x7000, 'r').gpa, 0x111000);
});

test('a first-stage RID_PASID entry is cached per SID: hits read no structure; type 7 makes a change visible', () => {
  const { u, t } = fsUnit({ pasid: false });
  t.mapFs(0x120000, 4, 0x7000, 0x888000);
  assert.equal(u.translate(SID, 0x7000, 'r').gpa, 0x888000);
  const c0 = u.counters();
  assert.equal(u.translate(SID, 0x7010, 'r').gpa, 0x888010);
  const c1 = u.counters();
  assert.deepEqual([c1['walk.rootReads'] - c0['walk.rootReads'], c1['walk.firstStage'] - c0['walk.firstStage'], c1['ctx.hit'] - c0['ctx.hit']], [0, 0, 1]);
  // New first-stage tables in the PASID entry: visible after a PASID-cache and a PASID-IOTLB invalidation.
  u.writeGuest(0x130000, new Uint8Array(0x1000));
  t.mapFs(0x130000, 4, 0x7000, 0x999000);
  u.writeGuestQwords(PTAB, pasidEntry({ pgtt: PGTT.FS, fsptr: 0x130000, did: 3 }));
  assert.ok([0x888000, 0x999000].includes(u.translate(SID, 0x7000, 'r').gpa), 'old or new before invalidation');
  const submit = queue(u);
  submit(0x7n | (1n << 4n) | (3n << 16n), 0n);
  submit(0x6n | (2n << 4n) | (3n << 16n), 0n);
  assert.equal(u.translate(SID, 0x7000, 'r').gpa, 0x999000);
});

test('cached first-stage entries never widen rights: user vs supervisor, read-only, nested second-stage rights', () => {
  const { u, t } = smUnit({ nest: true, pasid: true }, { pgtt: PGTT.FS, fsptr: 0x120000, sre: true });
  u.writeGuest(0x120000, new Uint8Array(0x1000));
  t.mapFs(0x120000, 4, 0x7000, 0x888000, 1n); // supervisor, read-only
  assert.ok(u.translate(SID, 0x7000, 'r', 1, { pasid: 0, priv: true }).ok);
  assert.equal(u.translate(SID, 0x7000, 'r', 1, { pasid: 0 }).fault, 0x81, 'a user request is not served by the supervisor fill');
  clearFaults(u);
  t.mapFs(0x120000, 4, 0x8000, 0x889000, 5n); // user, read-only
  assert.ok(u.translate(SID, 0x8000, 'r').ok);
  assert.equal(u.translate(SID, 0x8000, 'w').fault, 0x85, 'a write is not served by the read fill');
  // Nested: the second stage grants read only; a write after a cached read faults in the second stage.
  const SL = 0x110000;
  const n = smUnit({ nest: true }, { pgtt: PGTT.NESTED, slptr: SL, fsptr: 0x120000, did: 4 });
  n.u.writeGuest(SL, new Uint8Array(0x1000));
  n.u.writeGuest(0x120000, new Uint8Array(0x1000));
  for (let p = 0x120000; p < 0x128000; p += 0x1000) n.t.mapSs(SL, 4, p, p, 3); // identity for the FS tables
  const fsPages = new Tables(n.u, 0x300000); // first-stage tables, identity-mapped by the second stage
  for (let p = 0x300000; p < 0x304000; p += 0x1000) n.t.mapSs(SL, 4, p, p, 3);
  fsPages.mapFs(0x120000, 4, 0x7000, 0x5000000);
  n.t.mapSs(SL, 4, 0x5000000, 0x666000, 1);
  assert.equal(n.u.translate(SID, 0x7000, 'r').gpa, 0x666000);
  assert.equal(n.u.translate(SID, 0x7000, 'w').fault, 0x85, 'second stage read-only');
  // A type 2 domain invalidation of the second stage's DID drops the nested entry.
  n.t.mapSs(SL, 4, 0x5000000, 0x667000, 3);
  clearFaults(n.u);
  const submit = queue(n.u);
  submit(0x2n | (2n << 4n) | (4n << 16n), 0n);
  assert.equal(n.u.translate(SID, 0x7000, 'w').gpa, 0x667000);
});

test('every scalable-mode fault reason the core declares is raised by these tests', () => {
  const src = readFileSync(join(REPO, 'assembly', 'faults.ts'), 'utf8');
  const declared = [...src.matchAll(/^@inline export const (FR_SM_[A-Z0-9_]+): u32 = (0x[0-9a-f]+);$/gim)].map((m) => [m[1], Number(m[2])] as const);
  assert.ok(declared.length >= 30, 'the SM reasons are read from the core');
  const seen = new Set<number>();
  for (const u of created) {
    for (const [k, v] of Object.entries(u.counters())) if (k.startsWith('fault.reason.') && v > 0) seen.add(Number(k.slice('fault.reason.'.length)));
  }
  assert.deepEqual(declared.filter(([, r]) => !seen.has(r)).map(([n, r]) => `${n} (0x${r.toString(16)})`), []);
});

