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

const SID = 0x18, DID = 3, PML4 = 0x100000n;

/** A minimal guest driver: 4-level tables from a pool, page-selective invalidation after each change (CM = 1). */
class Guest {
  readonly iommu = Iommu.create({ aw: 48, cm: true, ram: 1 << 30 });
  private next = 0x200000n;
  private readonly tables = new Map<bigint, bigint>(); // (level << 48 | index path) -> table address

  constructor() {
    this.iommu.writeGuestQwords(0x1000, [0x2001n, 0n]); // root: bus 0 -> context table 0x2000
    this.iommu.writeGuestQwords(0x2000 + (SID & 0xff) * 16, [PML4 | 1n, (BigInt(DID) << 8n) | 2n]);
    this.iommu.mmioWrite(0x20, 8, 0x1000n);
    this.iommu.mmioWrite(0x18, 4, 0x40000000);
    this.iommu.mmioWrite(0x18, 4, 0x80000000);
  }

  private read(addr: bigint): bigint {
    return new DataView(this.iommu.readGuest(addr, 8).buffer).getBigUint64(0, true);
  }

  /** The PT (level-1 table) for `iova`, created when `create`. */
  private pt(iova: bigint, create: boolean): bigint | undefined {
    let table = PML4;
    for (let level = 4; level >= 2; level--) {
      const slot = table + ((iova >> BigInt(12 + 9 * (level - 1))) & 0x1ffn) * 8n;
      let e = this.read(slot);
      if ((e & 3n) === 0n || (level === 2 && (e & 0x80n))) {
        if (!create) return undefined;
        const t = this.next;
        this.next += 0x1000n;
        e = t | 3n;
        this.iommu.writeGuestQwords(slot, [e]);
      }
      table = e & 0xffffffffff000n;
    }
    return table;
  }

  /** Maps 4 KiB pages; `pde2m` writes a 2 MiB leaf instead (iova and gpa 2 MiB aligned, size 2 MiB). */
  map(iova: bigint, gpa: bigint, size: bigint, rw: bigint, pde2m = false): void {
    if (pde2m) {
      this.pt(iova, true); // make sure the PD exists; then overwrite the PDE with a leaf
      let table = PML4;
      for (let level = 4; level >= 3; level--) table = this.read(table + ((iova >> BigInt(12 + 9 * (level - 1))) & 0x1ffn) * 8n) & 0xffffffffff000n;
      this.iommu.writeGuestQwords(table + ((iova >> 21n) & 0x1ffn) * 8n, [gpa | 0x80n | rw]);
    } else {
      for (let o = 0n; o < size; o += 0x1000n) this.iommu.writeGuestQwords(this.pt(iova + o, true)! + (((iova + o) >> 12n) & 0x1ffn) * 8n, [(gpa + o) | rw]);
    }
    this.invalidate(iova, size);
  }

  unmap(iova: bigint, size: bigint): void {
    for (let o = 0n; o < size; o += 0x1000n) {
      const pt = this.pt(iova + o, false);
      if (pt !== undefined) this.iommu.writeGuestQwords(pt + (((iova + o) >> 12n) & 0x1ffn) * 8n, [0n]);
    }
    this.invalidate(iova, size);
  }

  /** Page-selective invalidation covering [iova, iova + size): the smallest aligned 2^AM block. */
  invalidate(iova: bigint, size: bigint): void {
    let am = 0;
    while (((iova >> BigInt(12 + am)) << BigInt(12 + am)) + (1n << BigInt(12 + am)) < iova + size) am++;
    if (am > 18) return this.invalidateDomain();
    this.iommu.mmioWrite(0xf0, 8, ((iova >> BigInt(12 + am)) << BigInt(12 + am)) | BigInt(am));
    this.iommu.mmioWrite(0xf8, 8, 0xb000000000000000n | (BigInt(DID) << 32n));
  }

  invalidateDomain(): void {
    this.iommu.mmioWrite(0xf8, 8, 0xa000000000000000n | (BigInt(DID) << 32n));
  }

  /** The guest's effective present mappings, as maximal runs. */
  effective(): Run[] {
    return mergeRuns(this.iommu.walkRange(PML4, 4, 0n, 1n << 48n).mappings.map((m) => ({ iova: m.iova, size: m.size, gpa: m.gpa, read: m.read, write: m.write })));
  }
}

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
