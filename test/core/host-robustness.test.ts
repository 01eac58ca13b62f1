/**
 * The embedder API under misuse and at its edges (issue 11): DMAs that cross a 4 KiB boundary, batch
 * views across memory growth, embedder code that throws, argument checks before allocation, probe
 * built from translate's steps, the queued-invalidation counters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Iommu, TranslateResult, VtdError, type IommuEvent } from '../../src/index.js';
import { externalMemoryUnit } from '../helpers.js';

const RTADDR = 0x20, GCMD = 0x18, FSTS = 0x34, IQH = 0x80, IQT = 0x88, IQA = 0x90;
const SID = 0x18; // 00:03.0
const FRCD = 0x220; // the one fault-recording register (nfr 1), at the QEMU offset

/** 4-level tables mapping iova 0x1000 * i -> 0x2000000 + 0x1000 * i (i < n), context TT `tt`. */
function unitWithTables(opts: Parameters<typeof Iommu.create>[0] = {}, n = 2, tt = 0n): Iommu {
  const u = Iommu.create({ aw: 48, ...opts });
  u.writeGuestQwords(0x100000, [0x101001n, 0n]);
  u.writeGuestQwords(0x101000 + (SID & 0xff) * 16, [0x110001n | (tt << 2n), (5n << 8n) | 2n]);
  u.writeGuestQwords(0x110000, [0x111003n]);
  u.writeGuestQwords(0x111000, [0x112003n]);
  u.writeGuestQwords(0x112000, [0x113003n]);
  u.writeGuestQwords(0x113000, Array.from({ length: n }, (_, i) => (0x2000000n + BigInt(i) * 0x1000n) | 3n));
  u.mmioWrite(RTADDR, 8, 0x100000n);
  u.mmioWrite(GCMD, 4, 0x40000000);
  u.mmioWrite(GCMD, 4, 0x80000000);
  return u;
}

const isVtd = (code: string) => (e: unknown) => e instanceof VtdError && e.code === code;

// ---- item 4: requests that cross a 4 KiB boundary ----------------------------------------------

test('a DMA crossing into an unmapped page faults on that page, as its own request would', () => {
  const u = unitWithTables({}, 2); // 0x0 and 0x1000 mapped, 0x2000 not
  const r = u.translate(SID, 0x1ff0, 'w', 32);
  assert.equal(r.ok, false);
  assert.equal(r.fault, 5, 'write to a not-present entry');
  assert.equal(u.mmioRead(FRCD, 8), 0x2000n, 'the record names the page that faulted');
  // Every byte in a mapped page: completes, contiguous.
  const v = unitWithTables({}, 3);
  const ok = v.translate(SID, 0x1ff0, 'w', 32);
  assert.ok(ok.ok);
  assert.equal(ok.gpa, 0x2001ff0);
  assert.equal(ok.split, 0);
  // A one-byte request at the end of a page does not cross.
  assert.ok(u.translate(SID, 0x1fff, 'w', 1).ok);
  // A whole page from an unaligned start crosses too: 4096 bytes from 0x1800 need 0x2000.
  assert.equal(u.translate(SID, 0x1800, 'r', 4096).fault, 6);
});

test('a crossing DMA whose pages map to discontiguous frames reports both pieces', () => {
  const u = unitWithTables({}, 2);
  u.writeGuestQwords(0x113010, [0x5000003n]); // iova 0x2000 -> 0x5000000
  const r = u.translate(SID, 0x1ff0, 'r', 32);
  assert.ok(r.ok);
  assert.equal(r.gpa, 0x2001ff0);
  assert.equal(r.split, 16, '16 bytes before the boundary');
  assert.equal(r.gpa2, 0x5000000);
  assert.equal(r.gpa2Big, 0x5000000n);
  // The reused result object does not keep a stale split.
  const tr = new TranslateResult();
  u.translateInto(SID, 0x1ff0, 'r', 32, tr);
  assert.equal(tr.split, 16);
  u.translateInto(SID, 0x1000, 'r', 32, tr);
  assert.equal(tr.split, 0);
  // The batch path: the same answer, split in the fourth response word.
  const b = u.batch;
  b.set(0, SID, 0x1ff0, 'r', 32);
  b.set(1, SID, 0x2ff0, 'r', 32); // 0x3000 unmapped
  assert.equal(b.run(2), 1);
  assert.equal(b.gpa(0), 0x2001ff0);
  assert.equal(b.split(0), 16);
  assert.equal(b.status(1), 0x106);
});

test('the batch path checks lengths: 0 and above 4096 are host errors, earlier requests were translated', () => {
  const u = unitWithTables({}, 2);
  const b = u.batch;
  assert.throws(() => b.set(0, SID, 0x1000, 'r', 0), isVtd('ARGUMENT'));
  assert.throws(() => b.set(0, SID, 0x1000, 'r', 1 << 20), isVtd('ARGUMENT'));
  b.set(0, SID, 0x1000, 'r', 8);
  b.set(1, SID, 0x1000, 'r', 8);
  b.requests[1 * 4 + 3] = 1 << 20; // 1 MiB, written straight into the block
  b.set(2, SID, 0x1000, 'r', 8);
  b.responses[0 * 4 + 2] = 0xdead;
  b.responses[2 * 4 + 2] = 0xbeef;
  assert.throws(() => b.run(3), (e: unknown) => e instanceof VtdError && e.code === 'ARGUMENT' && e.details.index === 1 && e.details.len === 1 << 20);
  assert.equal(b.status(0), 0, 'request 0 was translated');
  assert.equal(b.status(2), 0xbeef, 'request 2 was not');
  b.requests[1 * 4 + 3] = 0;
  assert.throws(() => b.run(2), (e: unknown) => e instanceof VtdError && e.details.index === 1 && e.details.len === 0);
  assert.throws(() => u.translate(SID, 0x1000, 'r', 0), isVtd('ARGUMENT'));
  assert.throws(() => u.translate(SID, 0x1000, 'r', 4097), isVtd('ARGUMENT'));
});

// ---- item 5: batch views survive memory growth ---------------------------------------------------

test('a BatchPath taken before guest memory grows keeps working', () => {
  const u = unitWithTables({}, 2);
  const b = u.batch;
  const before = u.stats().memoryBytes;
  const frame = new Uint8Array(4096).fill(0xa5);
  for (let i = 0; i < 4000; i++) u.writeGuest(0x4000000 + i * 4096, frame);
  assert.ok(u.stats().memoryBytes > before, 'memory grew');
  b.set(0, SID, 0x1008, 'w', 8);
  b.set(1, SID, 0x9000, 'r', 8);
  assert.equal(b.run(2), 1);
  assert.equal(b.status(0), 0);
  assert.equal(b.gpa(0), 0x2001008);
  assert.equal(b.status(1), 0x106);
  assert.equal(b.requests.length, b.capacity * 4, 'the getter gives a live view');
});

// ---- item 6: embedder code that throws ------------------------------------------------------------

/** Queues `n` global IOTLB invalidations (each raises an invalidation event) in a 4096-entry queue. */
function queueInvalidations(u: Iommu, n: number): void {
  const q: bigint[] = [];
  for (let i = 0; i < n; i++) q.push(0x12n, 0n); // type 2, G = 01 (global)
  u.writeGuestQwords(0x300000, q);
  u.mmioWrite(IQA, 8, 0x300000n | 4n); // QS 4: 2^12 descriptors
  u.mmioWrite(GCMD, 4, (0x80000000 | 0x04000000) >>> 0); // keep TE, set QIE
  u.mmioWrite(IQT, 8, BigInt(n) << 4n);
}

test('a listener that throws while the event ring overflows: the error reaches the embedder, the unit lives on', () => {
  const u = unitWithTables({}, 2);
  const boom = new Error('listener failed');
  const seen: IommuEvent[] = [];
  let calls = 0;
  u.on((e) => { seen.push(e); if (++calls === 1) throw boom; });
  const other: IommuEvent[] = [];
  u.on((e) => other.push(e));
  assert.throws(() => queueInvalidations(u, 2048), (e: unknown) => e === boom);
  assert.equal(u.mmioRead(IQH, 8), 2048n << 4n, 'every descriptor was processed before the listener ran');
  assert.equal(seen.length, 2048, 'every event was still delivered');
  assert.equal(other.length, 2048, 'to every listener');
  assert.ok(u.translate(SID, 0x1000, 'r').ok, 'the unit is usable');
  assert.equal(u.counters()['iotlbInv.global'], 2048);
});

test('a listener may call the unit: events arrive after the call that raised them', () => {
  const u = unitWithTables({}, 2);
  let inner = 0;
  u.on((e) => { if (e.type === 'invalidation') inner += u.translate(SID, 0x1000, 'r').ok ? 1 : 0; });
  queueInvalidations(u, 1500);
  assert.equal(inner, 1500);
});

test('a guestMemory hook that throws: the access fails as the bus would, then a GUEST_MEMORY_HOOK error', () => {
  const boom = new Error('hook failed');
  let failAt = -1;
  const { unit: u } = externalMemoryUnit((gpa) => { if (gpa === failAt) throw boom; return true; });
  failAt = 0x100000; // the root entry
  assert.throws(() => u.translate(SID, 0x123, 'r'),
    (e: unknown) => e instanceof VtdError && e.code === 'GUEST_MEMORY_HOOK' && (e as Error & { cause?: unknown }).cause === boom);
  assert.equal(u.mmioRead32(FSTS) & 2, 2, 'the failed root read was recorded as a fault');
  assert.equal(Number((u.mmioRead(FRCD + 8, 8) >> 32n) & 0xffn), 0x8, 'fault 8h: root entry read failed');
  failAt = -1;
  const r = u.translate(SID, 0x123, 'w');
  assert.ok(r.ok, 'the unit is usable');
  assert.equal(r.gpa, 0x7000123);
});

// ---- item 7: arguments checked before anything is allocated -------------------------------------

test('guest-memory entry points check their arguments before allocating', () => {
  const u = Iommu.create({ aw: 48 });
  assert.throws(() => u.readGuest(0, 2 ** 33), isVtd('ARGUMENT'));
  assert.throws(() => u.readGuest(0, -1), isVtd('ARGUMENT'));
  assert.throws(() => u.readGuest(2 ** 52 - 4, 8), isVtd('GUEST_MEMORY'));
  assert.throws(() => u.writeGuest(0, [1, 2] as unknown as Uint8Array), isVtd('ARGUMENT'));
  assert.throws(() => u.writeGuestQwords(0, [1 as unknown as bigint]), isVtd('ARGUMENT'));
  assert.throws(() => u.writeGuestQwords(0, 'abc' as unknown as bigint[]), isVtd('ARGUMENT'));
  assert.throws(() => u.mmioWrite(0x20, 8, 'x' as unknown as bigint), isVtd('ARGUMENT'));
  assert.throws(() => u.mmioRead(0x20, 3 as 4), isVtd('MMIO_ACCESS'));
  assert.throws(() => u.mmioRead(0xffc, 8), isVtd('MMIO_ACCESS'));
  assert.throws(() => u.translate(0x10000, 0, 'r'), isVtd('ARGUMENT'));
  assert.throws(() => u.translate(SID, 2n ** 64n, 'r'), isVtd('ARGUMENT'));
  assert.throws(() => u.translate(SID, -1, 'r'), isVtd('ARGUMENT'));
  assert.throws(() => u.probe(SID, 0, 'x' as 'r'), isVtd('ARGUMENT'));
  assert.throws(() => u.batch.set(4096, SID, 0, 'r'), isVtd('ARGUMENT'));
});

// ---- item 8: probe is translate's path -------------------------------------------------------------

test('probe answers as translate does: pass-through, address width', () => {
  const pt = unitWithTables({}, 2, 2n); // TT = 10b: pass-through
  const p = pt.probe(SID, 0x5000, 'r');
  assert.equal(p.ok, true);
  assert.equal(p.ok && p.gpa, 0x5000n);
  assert.equal(p.ok && p.level, 0);
  assert.equal(pt.translate(SID, 0x5000, 'r').gpa, 0x5000);
  const u = unitWithTables({}, 2);
  assert.deepEqual(u.probe(SID, 2 ** 50, 'r'), { ok: false, fault: 4, reason: 4, status: 0x104 });
  assert.equal(u.translate(SID, 2 ** 50, 'r').fault, 4);
  // No side effects: nothing recorded beyond translate's own fault, counters unchanged by probes.
  const c = u.counters();
  u.probe(SID, 0x9000, 'w');
  u.probe(SID, 0x1000, 'r');
  assert.deepEqual(u.counters(), c);
});

// ---- item 9: the per-type descriptor counters --------------------------------------------------

test('a descriptor of type 0xF is counted as type 15, and the queue error once', () => {
  const u = unitWithTables({}, 2);
  u.writeGuestQwords(0x300000, [0xfn, 0n]);
  u.mmioWrite(IQA, 8, 0x300000n);
  u.mmioWrite(GCMD, 4, (0x80000000 | 0x04000000) >>> 0);
  u.mmioWrite(IQT, 8, 0x10n);
  assert.equal(u.mmioRead32(FSTS) & 0x10, 0x10, 'IQE');
  const c = u.counters();
  assert.equal(c['qi.type15'], 1);
  assert.equal(c['qi.errors'], 1);
  assert.equal(c['qi.completionEvents'], 0);
});
