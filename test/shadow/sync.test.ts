/**
 * Shadow sync: after every invalidation the backend holds exactly the guest's
 * effective present mappings; the merged mode issues the fewest operations;
 * the QEMU-compatible mode reproduces QEMU 7.2's per-leaf behaviour, including
 * the EEXIST failure when a 2 MiB page is replaced by 4 KiB pages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Iommu } from '../../src/index.js';
import { ShadowSync, mergeRuns, type Run, type SyncMode } from '../../src/shadow/sync.js';
import { Type1Backend } from '../../src/shadow/type1.js';
import { RecordingBackend } from '../../src/shadow/recording.js';
import type { Backend } from '../../src/shadow/backend.js';

import { Guest, SID, DID, PML4 } from './guest.js';

function backendRuns(b: Backend): Run[] {
  return mergeRuns(b.mappings().map((m) => ({ iova: m.iova, size: m.size, gpa: m.hva, read: m.perm.read, write: m.perm.write })));
}

function setup(mode: SyncMode): { g: Guest; b: Type1Backend; s: ShadowSync } {
  const g = new Guest();
  const b = new Type1Backend();
  const s = new ShadowSync(g.iommu, b, { mode });
  s.attach(SID);
  return { g, b, s };
}

test('merged mode: a 1 MiB buffer of 4 KiB pages is one map; QEMU mode: 256', () => {
  for (const [mode, maps] of [['merged', 1], ['qemu', 256]] as const) {
    const { g, b, s } = setup(mode);
    g.map(0x10000000n, 0x20000000n, 0x100000n, 3n);
    assert.equal(s.metrics.maps, maps, mode);
    assert.deepEqual(backendRuns(b), g.effective());
    g.unmap(0x10000000n, 0x100000n);
    assert.deepEqual(b.mappings(), []);
    assert.equal(s.metrics.unmaps, mode === 'merged' ? 1 : 256);
  }
});

test('the EEXIST class of bug: replacing a 2 MiB page by 4 KiB pages under type1', () => {
  // QEMU-compatible: the changed leaf is unmapped over the new 4 KiB range,
  // which would bisect the 2 MiB mapping (EINVAL), then its map hits EEXIST.
  {
    const { g, b, s } = setup('qemu');
    g.map(0x40000000n, 0x80000000n, 0x200000n, 3n, true);
    assert.equal(s.metrics.maps, 1);
    g.map(0x40000000n, 0x90000000n, 0x200000n, 3n); // the PDE now points to a PT of 512 new pages
    assert.ok((s.metrics.errors.EINVAL ?? 0) >= 1, JSON.stringify(s.metrics.errors));
    assert.ok((s.metrics.errors.EEXIST ?? 0) >= 1, JSON.stringify(s.metrics.errors));
    assert.notDeepEqual(backendRuns(b), g.effective(), 'the host no longer matches the guest');
  }
  // Merged: the old run is unmapped whole, the new pages mapped as one run.
  {
    const { g, b, s } = setup('merged');
    g.map(0x40000000n, 0x80000000n, 0x200000n, 3n, true);
    g.map(0x40000000n, 0x90000000n, 0x200000n, 3n);
    assert.deepEqual(s.metrics.errors, {});
    assert.deepEqual(backendRuns(b), g.effective());
    assert.equal(b.mappings().length, 1);
  }
});

test('merged mode: operations equal the maximal changed runs', () => {
  const { g, b, s } = setup('merged');
  // Three disjoint runs, each mapped and invalidated at once: one map each.
  const runs: [bigint, bigint, bigint][] = [[0x1000000n, 0x5000000n, 0x8000n], [0x1100000n, 0x6000000n, 0x3000n], [0x2000000n, 0x7000000n, 0x1000n]];
  for (const [iova, gpa, size] of runs) g.map(iova, gpa, size, 3n);
  assert.equal(s.metrics.maps, 3);
  // Nothing changed: a domain-selective invalidation walks everything and issues nothing.
  g.invalidateDomain();
  assert.equal(s.metrics.maps, 3);
  assert.equal(s.metrics.unmaps, 0);
  // Unmapping the middle page of the first run: its mapping is unmapped whole
  // (type1 cannot bisect it) and the two remainders mapped: 1 unmap, 2 maps.
  g.unmap(0x1004000n, 0x1000n);
  assert.equal(s.metrics.unmaps, 1);
  assert.equal(s.metrics.maps, 5);
  // The remainders still map pages the guest never changed, yet they were
  // unmapped for a moment: two windows in which a DMA would fault on the host.
  assert.equal(s.metrics.unmappedWindows, 2);
  assert.deepEqual(backendRuns(b), g.effective());
  // Pages mapped one invalidation at a time stay separate mappings; a later
  // wider invalidation does not redo them.
  for (let o = 0n; o < 0x4000n; o += 0x1000n) g.map(0x3000000n + o, 0x9000000n + o, 0x1000n, 3n);
  const m = s.metrics.maps;
  g.invalidateDomain();
  assert.equal(s.metrics.maps, m);
  assert.equal(s.metrics.redundantAvoided > 0, true);
});

test('non-RAM guest-physical ranges are reported, not mapped', () => {
  const g = new Guest();
  const b = new Type1Backend();
  const s = new ShadowSync(g.iommu, b, { ram: [[0n, 0x40000000n]] });
  s.attach(SID);
  g.map(0x1000n, 0x50000000n, 0x1000n, 3n);
  assert.equal(s.metrics.notRam, 1);
  assert.deepEqual(b.mappings(), []);
});

const RUNS = Number(process.env.VTD_PROPERTY_RUNS ?? 100);

test('property: after every invalidation the backend equals the guest, and a well-behaved guest never causes a backend error (merged)', () => {
  const op = fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 63 }), fc.integer({ min: 1, max: 16 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 3 }));
  fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 25 }), (ops) => {
    const { g, b, s } = setup('merged');
    const rec = new RecordingBackend(b);
    void rec;
    for (const [isMap, page, pages, gpage, rw] of ops) {
      const iova = 0x1000000n + BigInt(page) * 0x1000n, size = BigInt(pages) * 0x1000n;
      if (isMap) g.map(iova, 0x8000000n + BigInt(gpage) * 0x1000n, size, BigInt(rw));
      else g.unmap(iova, size);
      assert.deepEqual(backendRuns(b), g.effective());
    }
    assert.deepEqual(s.metrics.errors, {});
  }), { numRuns: RUNS });
});

test('iommufd: the QEMU-compatible mode fails the same replacement with ENOENT (splitting unmap) then EEXIST; merged handles it', async () => {
  const { IommufdBackend } = await import('../../src/shadow/iommufd.js');
  for (const mode of ['qemu', 'merged'] as const) {
    const g = new Guest();
    const b = new IommufdBackend();
    const s = new ShadowSync(g.iommu, b, { mode });
    s.attach(SID);
    g.map(0x40000000n, 0x80000000n, 0x200000n, 3n, true);
    g.map(0x40000000n, 0x90000000n, 0x200000n, 3n);
    if (mode === 'qemu') {
      assert.ok((s.metrics.errors.ENOENT ?? 0) >= 1, JSON.stringify(s.metrics.errors));
      assert.ok((s.metrics.errors.EEXIST ?? 0) >= 1, JSON.stringify(s.metrics.errors));
      assert.notDeepEqual(backendRuns(b), g.effective());
    } else {
      assert.deepEqual(s.metrics.errors, {});
      assert.deepEqual(backendRuns(b), g.effective());
    }
  }
});

test('QEMU-compatible mode: a non-present entry is unmapped over its whole range (a freed page table: one 2 MiB unmap)', () => {
  const { g, b, s } = setup('qemu');
  g.map(0x40000000n, 0x80000000n, 0x200000n, 3n); // 512 leaves in one PT
  assert.equal(s.metrics.maps, 512);
  // Free the PT as Linux does when an unmap covers it whole: clear the PDE.
  const pd = g.tableOf(0x40000000n, 2);
  g.iommu.writeGuestQwords(pd + ((0x40000000n >> 21n) & 0x1ffn) * 8n, [0n]);
  g.invalidate(0x40000000n, 0x200000n);
  assert.equal(s.metrics.unmaps, 1);
  assert.equal(s.metrics.unmapBytes, 0x200000n);
  assert.deepEqual(b.mappings(), []);
  // Clearing leaves one by one instead costs one unmap per leaf.
  const q = setup('qemu');
  q.g.map(0x40000000n, 0x80000000n, 0x10000n, 3n);
  q.g.unmap(0x40000000n, 0x10000n);
  assert.equal(q.s.metrics.unmaps, 16);
});

test('a device assigned before its context exists is shadowed once the guest installs it', () => {
  const g = new Guest();
  const b = new Type1Backend();
  // Another requester id, not yet in any context table.
  const s = new ShadowSync(g.iommu, b, { mode: 'merged' });
  const other = 0x20; // 00:04.0
  s.attach(other);
  assert.deepEqual(s.shadowedDomains(), []);
  g.map(0x1000n, 0x5000n, 0x2000n, 3n);
  assert.deepEqual(b.mappings(), [], 'its domain is not shadowed yet');
  // The guest gives 00:04.0 a context in domain 3 and flushes it (device-selective).
  g.iommu.writeGuestQwords(0x2000 + (other & 0xff) * 16, [PML4 | 1n, (BigInt(DID) << 8n) | 2n]);
  g.iommu.mmioWrite(0x28, 8, 0xe000000000000000n | (BigInt(other) << 16n));
  assert.deepEqual(s.shadowedDomains(), [DID]);
  assert.deepEqual(backendRuns(b), g.effective());
});

/** One map per 4 KiB page of a run list, keyed by page iova. */
function pageMap(runs: readonly Run[]): Map<bigint, Run> {
  const m = new Map<bigint, Run>();
  for (const r of runs) for (let o = 0n; o < r.size; o += 0x1000n) m.set(r.iova + o, { iova: r.iova + o, size: 0x1000n, gpa: r.gpa + o, read: r.read, write: r.write });
  return m;
}

test('property: merged mode issues exactly one unmap per backend mapping that changed and one map per maximal run to (re)map, with type1 and iommufd', async () => {
  const { IommufdBackend } = await import('../../src/shadow/iommufd.js');
  const op = fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 63 }), fc.integer({ min: 1, max: 16 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 3 }));
  fc.assert(fc.property(fc.boolean(), fc.array(op, { minLength: 1, maxLength: 25 }), (fd, ops) => {
    const g = new Guest();
    const b: Backend = fd ? new IommufdBackend() : new Type1Backend();
    const s = new ShadowSync(g.iommu, b, { mode: 'merged' });
    s.attach(SID);
    for (const [isMap, page, pages, gpage, rw] of ops) {
      const before = b.mappings().map((m) => ({ iova: m.iova, size: m.size, gpa: m.hva, read: m.perm.read, write: m.perm.write }));
      const maps0 = s.metrics.maps, unmaps0 = s.metrics.unmaps;
      const iova = 0x1000000n + BigInt(page) * 0x1000n, size = BigInt(pages) * 0x1000n;
      if (isMap) g.map(iova, 0x8000000n + BigInt(gpage) * 0x1000n, size, BigInt(rw));
      else g.unmap(iova, size);
      // Independent expectation from the states before and after.
      const after = pageMap(g.effective());
      const same = (p: Run | undefined, q: Run) => p !== undefined && p.gpa === q.gpa && p.read === q.read && p.write === q.write;
      const changed = before.filter((m) => [...pageMap([m]).values()].some((p) => !same(after.get(p.iova), p)));
      const covered = pageMap(before);
      const toMap: Run[] = [];
      for (const [at, p] of after) {
        if (!covered.has(at) || changed.some((m) => at >= m.iova && at < m.iova + m.size)) toMap.push(p);
      }
      assert.equal(s.metrics.unmaps - unmaps0, changed.length, 'one unmap per changed backend mapping');
      assert.equal(s.metrics.maps - maps0, mergeRuns(toMap).length, 'one map per maximal run to map');
      assert.deepEqual(backendRuns(b), g.effective());
    }
    assert.deepEqual(s.metrics.errors, {});
  }), { numRuns: RUNS });
});

test('property: the QEMU-compatible mode keeps the backend equal to a 4 KiB-only guest, one operation per leaf', () => {
  const op = fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 63 }), fc.integer({ min: 1, max: 16 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 3 }));
  fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 25 }), (ops) => {
    const { g, b, s } = setup('qemu');
    for (const [isMap, page, pages, gpage, rw] of ops) {
      const iova = 0x1000000n + BigInt(page) * 0x1000n, size = BigInt(pages) * 0x1000n;
      if (isMap) g.map(iova, 0x8000000n + BigInt(gpage) * 0x1000n, size, BigInt(rw));
      else g.unmap(iova, size);
      assert.deepEqual(backendRuns(b), g.effective());
      assert.ok(b.mappings().every((m) => m.size === 0x1000n));
    }
    assert.deepEqual(s.metrics.errors, {});
  }), { numRuns: RUNS });
});
