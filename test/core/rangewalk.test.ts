/** The range walk (shadow sync support): present leaf mappings over an IOVA range, side-effect free. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Iommu, type LeafMapping, DEFAULT_WALK_ENTRIES, DEFAULT_WALK_LEAVES } from '../../src/index.js';

const SID = 0x18;
const TABLE = 0x200000n;

function unit(aw: 39 | 48 = 48): Iommu {
  const u = Iommu.create({ aw, ram: 0x10000000 });
  u.writeGuestQwords(0x100000, [0x101001n, 0n]);
  u.mmioWrite(0x20, 8, 0x100000n);
  u.mmioWrite(0x18, 4, 0x40000000);
  return u;
}

test('contextOf reads the context without side effects', () => {
  const u = unit();
  u.writeGuestQwords(0x101180, [TABLE | 1n, (7n << 8n) | 2n]);
  assert.deepEqual(u.contextOf(SID), { ok: true, did: 7, table: TABLE, levels: 4, passThrough: false, fpd: false });
  assert.deepEqual(u.contextOf(0x20), { ok: false, fault: 2 });
  assert.equal(u.mmioRead32(0x34), 0, 'nothing recorded');
});

test('walkRange finds 4 KiB, 2 MiB and 1 GiB leaves with their effective rights, pruning absent subtrees', () => {
  const u = unit();
  // PML4[0] -> PDPT; PDPT[0] -> PD; PDPT[1] = 1 GiB page (read-only); PD[0] -> PT (read-only); PD[1] = 2 MiB page.
  u.writeGuestQwords(TABLE, [0x201003n]);
  u.writeGuestQwords(0x201000, [0x202003n, 0x40000081n]);
  u.writeGuestQwords(0x202000, [0x203001n, 0x600083n]);
  u.writeGuestQwords(0x203000, [0x7000003n, 0n, 0x7002002n]);
  const r = u.walkRange(TABLE, 4, 0n, 1n << 48n);
  const m = r.mappings.map((x) => [x.iova, x.gpa, x.size, x.read, x.write]);
  assert.deepEqual(m, [
    [0x0n, 0x7000000n, 0x1000n, true, false], // PT[0] rw under a read-only PD entry: read-only
    // PT[2] is write-only under the read-only PD entry: no right survives, nothing mapped
    [0x200000n, 0x600000n, 0x200000n, true, true],
    [0x40000000n, 0x40000000n, 0x40000000n, true, false],
  ]);
  // Every entry of each table on the way is read (VT-d tables have no presence bitmap): 4 tables.
  assert.equal(r.entriesRead, 4 * 512);
  // A sub-range.
  const s = u.walkRange(TABLE, 4, 0x1000n, 0x300000n);
  assert.deepEqual(s.mappings.map((x) => x.iova), [0x200000n]);
});

test('malformed entries map nothing and are counted', () => {
  const u = unit();
  u.writeGuestQwords(TABLE, [0x201003n]);
  u.writeGuestQwords(0x201000, [0x202003n]);
  u.writeGuestQwords(0x202000, [0x203003n]);
  u.writeGuestQwords(0x203000, [0x7000003n, 0x7001003n | (1n << 50n), 0x20000000003n /* table above RAM is fine for a leaf */]);
  const r = u.walkRange(TABLE, 4, 0n, 0x3000n);
  assert.deepEqual(r.mappings.map((x) => x.iova), [0n, 0x2000n]);
  assert.equal(r.malformed, 1);
});

test('a walk larger than one output block resumes until done', () => {
  const u = unit(39);
  // 3 levels: 3000 pages in PTs under PD[0..5].
  u.writeGuestQwords(TABLE, [0x201003n]);
  u.writeGuestQwords(0x201000, Array.from({ length: 6 }, (_, i) => 0x210003n + BigInt(i) * 0x1000n));
  for (let t = 0; t < 6; t++) u.writeGuestQwords(0x210000 + t * 0x1000, Array.from({ length: 500 }, (_, i) => (0x8000000n + BigInt(t * 500 + i) * 0x1000n) | 3n));
  const r = u.walkRange(TABLE, 3, 0n, 1n << 39n);
  assert.equal(r.mappings.length, 3000);
  assert.deepEqual(r.mappings.slice(0, 2).map((x) => x.gpa), [0x8000000n, 0x8001000n]);
  assert.ok(r.mappings.every((x, i) => i === 0 || x.iova > r.mappings[i - 1].iova), 'sorted, no duplicates');
});

test('a sparse terabyte costs what is mapped', () => {
  const u = unit();
  u.writeGuestQwords(TABLE, [0x201003n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n]);
  u.writeGuestQwords(0x201000 + 8 * 300, [0x202003n]);
  u.writeGuestQwords(0x202000 + 8 * 5, [0x203003n]);
  u.writeGuestQwords(0x203000 + 8 * 7, [0x9000003n]);
  const r = u.walkRange(TABLE, 4, 0n, 1n << 40n);
  assert.deepEqual(r.mappings.map((x) => x.iova), [(300n << 30n) | (5n << 21n) | (7n << 12n)]);
  assert.equal(r.entriesRead, 2 + 3 * 512, 'PML4 entries 0-1 (the range ends at 2^40), then one table per level');
});

test('property: walkRange agrees with per-page probes', () => {
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 3 }), fc.boolean()), { maxLength: 40 }),
    fc.integer({ min: 0, max: 63 }), fc.integer({ min: 1, max: 64 }),
    (leaves, a, b) => {
      const u = unit(39);
      // 3 levels; PDPT[0] -> PD; PD[0..3] -> PT or a 2 MiB page (kind).
      u.writeGuestQwords(TABLE, [0x201003n]);
      const pd: bigint[] = [];
      for (let i = 0; i < 4; i++) pd.push(i === 3 ? 0x1600083n : 0x210003n + BigInt(i) * 0x1000n);
      u.writeGuestQwords(0x201000, pd);
      for (const [t, idx, rw, junk] of leaves) {
        if (t === 3) continue;
        u.writeGuestQwords(0x210000 + t * 0x1000 + idx * 8, [(0x9000000n + BigInt(t * 16 + idx) * 0x1000n) | BigInt(rw) | (junk ? 1n << 45n : 0n)]);
      }
      const start = BigInt(Math.min(a, a + b)) << 16n, end = BigInt(a + b) << 16n;
      const got = u.walkRange(TABLE, 3, start, end).mappings;
      // Brute force: every 4 KiB page of the range, probed for read and for write.
      const ctx = u.contextOf(SID); // no context: probe through a temporary context entry
      assert.equal(ctx.ok, false);
      u.writeGuestQwords(0x101180, [TABLE | 1n, (1n << 8n) | 1n]);
      u.mmioWrite(0x18, 4, 0x80000000); // probe answers as a request does: translation must be on to walk
      const expected = new Map<bigint, [bigint, boolean, boolean]>();
      for (let p = start & ~0xfffn; p < end; p += 0x1000n) {
        const r = u.probe(SID, p, 'r'), w = u.probe(SID, p, 'w');
        const ok = r.ok ? r : w.ok ? w : undefined;
        if (!ok) continue;
        const leafShift = 12n + 9n * BigInt(ok.level - 1);
        const frame = ok.leaf & ((1n << 52n) - 1n) & ~((1n << leafShift) - 1n);
        expected.set(p, [frame | (p & ((1n << leafShift) - 1n)), r.ok, w.ok]);
      }
      const covered = new Map<bigint, [bigint, boolean, boolean]>();
      for (const m of got as LeafMapping[]) {
        for (let p = m.iova; p < m.iova + m.size; p += 0x1000n) {
          if (p >= (start & ~0xfffn) && p < end) covered.set(p, [m.gpa + (p - m.iova), m.read, m.write]);
        }
      }
      assert.deepEqual(covered, expected);
    }), { numRuns: 100 });
});

// ---- hostile tables (issue 11): the work and the output of a walk are bounded ----

test('a self-referencing table: walkRange stops at its leaf budget and says where to resume', () => {
  const u = unit(39);
  // One page whose 512 entries all point at itself: 512^3 leaves of 4 KiB, all mapping that page.
  u.writeGuestQwords(TABLE, Array.from({ length: 512 }, () => TABLE | 3n));
  const r = u.walkRange(TABLE, 3, 0n, 1n << 39n, { maxLeaves: 5000 });
  assert.equal(r.complete, false);
  assert.equal(r.mappings.length, 5000);
  assert.equal(r.resume, 5000n << 12n, 'the first leaf not returned');
  assert.ok(r.mappings.every((m, i) => m.iova === BigInt(i) << 12n && m.gpa === TABLE));
  // Resuming from there gives the next leaves.
  const s = u.walkRange(TABLE, 3, r.resume, 1n << 39n, { maxLeaves: 3 });
  assert.deepEqual(s.mappings.map((m) => m.iova), [5000n << 12n, 5001n << 12n, 5002n << 12n]);
  // With no options the defaults still bound it.
  const d = u.walkRange(TABLE, 3, 0n, 1n << 39n);
  assert.equal(d.complete, false);
  assert.ok(d.mappings.length <= DEFAULT_WALK_LEAVES && d.entriesRead <= DEFAULT_WALK_ENTRIES + 3);
});

test('fan-out onto an empty table: the entry budget bounds the work of a walk that finds no leaf', () => {
  for (const levels of [4, 5]) {
    const u = unit(levels === 5 ? 57 : 48);
    // Every entry of each level points at the next level's table; the last table is empty:
    // 512^levels entries read, not one leaf.
    const tables = Array.from({ length: levels }, (_, i) => TABLE + BigInt(i) * 0x1000n);
    for (let i = 0; i < levels - 1; i++) u.writeGuestQwords(tables[i], Array.from({ length: 512 }, () => tables[i + 1] | 3n));
    const end = 1n << BigInt(12 + 9 * levels);
    const r = u.walkRange(TABLE, levels, 0n, end, { maxEntries: 100000 });
    assert.equal(r.complete, false);
    assert.equal(r.mappings.length, 0);
    assert.ok(r.entriesRead >= 100000 && r.entriesRead <= 100000 + levels, `entries read ${r.entriesRead}`);
    assert.ok(r.resume > 0n && r.resume < end);
    // Resuming makes progress and stays within its budget too.
    const s = u.walkRange(TABLE, levels, r.resume, end, { maxEntries: 10 });
    assert.ok(s.resume > r.resume && s.entriesRead <= 10 + levels);
  }
});

test('a budget too small to reach a leaf still makes progress (no resume loop)', () => {
  const u = unit(39);
  u.writeGuestQwords(TABLE, Array.from({ length: 512 }, () => TABLE | 3n));
  let at = 0n;
  for (let k = 0; k < 5; k++) {
    const r = u.walkRange(TABLE, 3, at, 1n << 39n, { maxEntries: 1 });
    assert.ok(r.resume > at, `call ${k} resumed at ${r.resume}`);
    at = r.resume;
  }
});

test('range walks count under rangeWalk.*, never in the request walk counters (walk.*)', () => {
  const u = unit();
  u.writeGuestQwords(TABLE, [0x201003n]);
  u.writeGuestQwords(0x201000, [0x202003n, 0x40000081n]);
  u.writeGuestQwords(0x202000, [0x203003n]);
  u.writeGuestQwords(0x203000, [0x7000003n]);
  const r = u.walkRange(TABLE, 4, 0n, 1n << 48n);
  const s = u.walkRange(TABLE, 4, 0n, 0x2000n);
  const c = u.counters();
  assert.equal(c['rangeWalk.entries'], r.entriesRead + s.entriesRead);
  assert.equal(c['rangeWalk.count'], 2);
  for (const n of ['walk.count', 'walk.level1', 'walk.level2', 'walk.level3', 'walk.level4', 'walk.level5']) assert.equal(c[n], 0, n);
  // A request walk still counts there, and only there.
  u.writeGuestQwords(0x101180, [TABLE | 1n, (7n << 8n) | 2n]);
  u.mmioWrite(0x18, 4, 0x80000000); // TE
  assert.equal(u.translate(SID, 0x123, 'r').gpa, 0x7000123);
  const d = u.counters();
  assert.deepEqual([d['walk.count'], d['walk.level4'], d['walk.level3'], d['walk.level2'], d['walk.level1']], [1, 1, 1, 1, 1]);
  assert.equal(d['rangeWalk.entries'], c['rangeWalk.entries']);
});
