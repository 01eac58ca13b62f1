/**
 * VFIO backend models for shadow sync: every errno rule of VFIO type1 v2 and
 * iommufd IOAS with a hand-made case (and the order the kernel checks them
 * in), the success cases, the QEMU "vfio_dma_map ... = -17 (File exists)"
 * reproduction, the v2 bisect rule, dma_entry_limit and memlock, the
 * recorder's JSON lines, and a fast-check property against a plain reference
 * model (mappings never overlap and equal the model; stats stay consistent).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import {
  Type1Backend, IommufdBackend, RecordingBackend, replayLog, parseLog, excludeRanges, sizeBucket,
  HISTOGRAM_BUCKETS, U64_MAX, type Backend, type BackendResult, type Errno, type Perm,
} from '../../src/shadow/index.js';
import { VtdError } from '../../src/errors.js';

const RW: Perm = { read: true, write: true };
const RO: Perm = { read: true, write: false };
const NONE: Perm = { read: false, write: false };
const K4 = 0x1000n;
const M2 = 0x200000n;
const G1 = 0x40000000n;
const HVA = 0x7f0000000000n;

function ok(r: BackendResult, size = 0n): void {
  assert.ok(r.ok, `expected success, got ${r.ok ? '' : `${r.errno}: ${r.reason}`}`);
  assert.equal(r.size, size);
}

function err(r: BackendResult, errno: Errno): void {
  assert.ok(!r.ok, `expected ${errno}, got success`);
  assert.equal(r.errno, errno, r.reason);
  assert.ok(r.reason.length > 0);
}

function spans(b: Backend): string[] {
  return b.mappings().map((m) => `${m.iova.toString(16)}+${m.size.toString(16)}`);
}

// ======================================================================= type1

describe('VFIO type1 v2: map', () => {
  test('a successful map adds one mapping; adjacent contiguous maps are not merged', () => {
    const b = new Type1Backend();
    ok(b.map(0x100000n, 0x2000n, HVA, RW));
    ok(b.map(0x102000n, 0x1000n, HVA + 0x2000n, RW)); // abuts with contiguous vaddr and same perm
    assert.deepEqual(b.mappings(), [
      { iova: 0x100000n, size: 0x2000n, hva: HVA, perm: RW },
      { iova: 0x102000n, size: 0x1000n, hva: HVA + 0x2000n, perm: RW },
    ]);
    // each is its own vfio_dma: the second can be unmapped alone
    ok(b.unmap(0x102000n, 0x1000n), 0x1000n);
    assert.deepEqual(spans(b), ['100000+2000']);
  });

  test('EINVAL: size 0', () => err(new Type1Backend().map(0n, 0n, HVA, RW), 'EINVAL'));
  test('EINVAL: iova, size or vaddr not aligned to the smallest page size', () => {
    const b = new Type1Backend();
    err(b.map(0x800n, K4, HVA, RW), 'EINVAL');
    err(b.map(0n, 0x1800n, HVA, RW), 'EINVAL');
    err(b.map(0n, K4, HVA + 0x10n, RW), 'EINVAL');
    assert.equal(b.mappings().length, 0);
  });
  test('EINVAL: neither read nor write', () => err(new Type1Backend().map(0n, K4, HVA, NONE), 'EINVAL'));
  test('read-only and write-only mappings are fine', () => {
    const b = new Type1Backend();
    ok(b.map(0n, K4, HVA, RO));
    ok(b.map(K4, K4, HVA, { read: false, write: true }));
  });
  test('EOVERFLOW: iova + size - 1 wraps, or vaddr does', () => {
    const b = new Type1Backend({ aperture: [0n, U64_MAX], reserved: [] });
    err(b.map(U64_MAX - K4 + 1n, 2n * K4, HVA, RW), 'EOVERFLOW');
    err(b.map(0n, 2n * K4, U64_MAX - K4 + 1n, RW), 'EOVERFLOW');
    // the very last page is fine: iova + size - 1 == U64_MAX does not wrap
    ok(b.map(U64_MAX - K4 + 1n, K4, HVA, RW));
    ok(b.map(0n, K4, U64_MAX - K4 + 1n, RW));
  });
  test('EINVAL for a wrap with overflowErrno: EINVAL (kernels before the check_add_overflow rework)', () => {
    const b = new Type1Backend({ overflowErrno: 'EINVAL' });
    err(b.map(U64_MAX - K4 + 1n, 2n * K4, HVA, RW), 'EINVAL');
    err(b.unmap(U64_MAX - K4 + 1n, 2n * K4), 'EINVAL');
  });
  test('EOVERFLOW is checked before alignment (unaligned and wrapping)', () => {
    err(new Type1Backend().map(U64_MAX - 0x800n, 2n * K4, HVA, RW), 'EOVERFLOW');
  });
  test('EINVAL: outside the aperture', () => {
    const b = new Type1Backend({ aperture: [0n, (1n << 39n) - 1n] });
    err(b.map((1n << 39n) - K4, 2n * K4, HVA, RW), 'EINVAL'); // straddles the end
    err(b.map(1n << 39n, K4, HVA, RW), 'EINVAL');
    ok(b.map((1n << 39n) - K4, K4, HVA, RW)); // the last page inside
    const c = new Type1Backend({ aperture: [0x100000n, (1n << 48n) - 1n] });
    err(c.map(0n, K4, HVA, RW), 'EINVAL');
  });
  test('EINVAL: overlapping the reserved x86 MSI window', () => {
    const b = new Type1Backend();
    err(b.map(0xfee00000n, K4, HVA, RW), 'EINVAL');
    err(b.map(0xfed00000n, 0x200000n, HVA, RW), 'EINVAL'); // runs into it
    err(b.map(0xfeeff000n, 0x2000n, HVA, RW), 'EINVAL'); // runs out of it
    ok(b.map(0xfedff000n, K4, HVA, RW)); // just below
    ok(b.map(0xfef00000n, K4, HVA, RW)); // just above
    assert.deepEqual(excludeRanges([0n, 0xffffffffn], [[0xfee00000n, 0xfeefffffn]]), [[0n, 0xfedfffffn], [0xfef00000n, 0xffffffffn]]);
  });
  test('EEXIST: any overlap with an existing mapping, no replace', () => {
    const b = new Type1Backend();
    ok(b.map(0x10000n, 0x4000n, HVA, RW));
    err(b.map(0x10000n, 0x4000n, HVA, RW), 'EEXIST'); // identical
    err(b.map(0xf000n, 0x2000n, HVA, RW), 'EEXIST'); // covers the first page
    err(b.map(0x13000n, 0x2000n, HVA, RW), 'EEXIST'); // covers the last page
    err(b.map(0x8000n, 0x10000n, HVA, RW), 'EEXIST'); // covers all of it
    ok(b.map(0xf000n, K4, HVA, RW)); // adjacent below
    ok(b.map(0x14000n, K4, HVA, RW)); // adjacent above
    assert.equal(b.stats().errors.EEXIST, 4);
  });
  test('EEXIST reproduction: a 2 MiB mapping, then a 4 KiB map inside it (QEMU: vfio_dma_map ... = -17 (File exists))', () => {
    const b = new Type1Backend();
    ok(b.map(0x40000000n, M2, HVA, RW)); // guest superpage mirrored
    // guest replaces the superpage by 4 KiB pages; the host unmap did not cover it
    err(b.map(0x40001000n, K4, HVA + 0x1000n, RW), 'EEXIST');
    // an unmap of just the 4 KiB is refused too (bisect), so the VMM must unmap the whole 2 MiB
    err(b.unmap(0x40001000n, K4), 'EINVAL');
    ok(b.unmap(0x40000000n, M2), M2);
    for (let i = 0n; i < 512n; i++) ok(b.map(0x40000000n + i * K4, K4, HVA + i * K4, RW));
    assert.equal(b.mappings().length, 512);
  });
  test('ENOSPC: live mappings already at dma_entry_limit', () => {
    const b = new Type1Backend({ dmaEntryLimit: 2 });
    ok(b.map(0n, K4, HVA, RW));
    ok(b.map(K4, K4, HVA, RW));
    err(b.map(2n * K4, K4, HVA, RW), 'ENOSPC');
    ok(b.unmap(0n, K4), K4); // dma_avail++
    ok(b.map(2n * K4, K4, HVA, RW));
    assert.equal(new Type1Backend({ dmaEntryLimit: 0 }).map(0n, K4, HVA, RW).ok, false);
  });
  test('ENOSPC at the default dma_entry_limit of 65535', () => {
    const b = new Type1Backend();
    for (let i = 0n; i < 65535n; i++) assert.ok(b.map(i * K4, K4, HVA + i * K4, RW).ok);
    err(b.map(65535n * K4, K4, HVA, RW), 'ENOSPC');
    assert.equal(b.stats().liveMappings, 65535);
  });
  test('the check order: EEXIST and ENOSPC come before the aperture/reserved EINVAL', () => {
    const b = new Type1Backend({ dmaEntryLimit: 2 });
    ok(b.map(0xfed00000n, 0x100000n, HVA, RW)); // right below the MSI window
    err(b.map(0xfedff000n, 0x2000n, HVA, RW), 'EEXIST'); // overlaps it and the MSI window
    ok(b.map(0n, K4, HVA, RW));
    err(b.map(0xfee00000n, K4, HVA, RW), 'ENOSPC'); // full: ENOSPC, not the reserved-region EINVAL
  });
  test('ENOMEM: pinned bytes after the map would exceed the memlock limit', () => {
    const b = new Type1Backend({ memlockLimitKiB: 16n });
    ok(b.map(0n, 0x3000n, HVA, RW));
    err(b.map(0x10000n, 0x2000n, HVA, RW), 'ENOMEM'); // 12K + 8K > 16K
    ok(b.map(0x10000n, K4, HVA, RW)); // exactly at the limit
    assert.equal(b.stats().pinnedBytes, 0x4000n);
    err(b.map(0x20000n, K4, HVA, RW), 'ENOMEM');
    ok(b.unmap(0n, 0x3000n), 0x3000n); // unpinned
    ok(b.map(0x20000n, 0x3000n, HVA, RW));
    // per mapping: the same vaddr mapped twice is pinned (counted) twice
    const c = new Type1Backend({ memlockLimitKiB: 8n });
    ok(c.map(0n, K4, HVA, RW));
    ok(c.map(K4, K4, HVA, RW));
    err(c.map(2n * K4, K4, HVA, RW), 'ENOMEM');
  });
  test('memlock limit rounds down to whole pages (rlimit >> PAGE_SHIFT)', () => {
    const b = new Type1Backend({ memlockLimitKiB: 7n });
    ok(b.map(0n, K4, HVA, RW));
    err(b.map(K4, K4, HVA, RW), 'ENOMEM');
    err(new Type1Backend({ memlockLimitKiB: 0n }).map(0n, K4, HVA, RW), 'ENOMEM');
  });
  test('page sizes: the smallest supported size is the alignment; sub-4K sizes are advertised as 4K', () => {
    const b = new Type1Backend({ pageSizes: M2 | G1 });
    assert.equal(b.pageSize, M2);
    err(b.map(0n, K4, HVA, RW), 'EINVAL');
    ok(b.map(0n, M2, HVA, RW));
    err(b.unmap(0n, K4), 'EINVAL');
    assert.equal(new Type1Backend({ pageSizes: 0x200n | M2 }).pageSize, K4);
  });
  test('bad options and arguments throw VtdError', () => {
    assert.throws(() => new Type1Backend({ pageSizes: 0n }), VtdError);
    assert.throws(() => new Type1Backend({ dmaEntryLimit: -1 }), VtdError);
    assert.throws(() => new Type1Backend({ memlockLimitKiB: -1n }), VtdError);
    assert.throws(() => new Type1Backend({ aperture: [10n, 1n] }), VtdError);
    assert.throws(() => new Type1Backend().map(-1n, K4, HVA, RW), VtdError);
    assert.throws(() => new Type1Backend().unmap(0n, 1n << 64n), VtdError);
  });
});

describe('VFIO type1 v2: unmap', () => {
  function three(): Type1Backend {
    const b = new Type1Backend();
    ok(b.map(0x10000n, 0x2000n, HVA, RW));
    ok(b.map(0x12000n, 0x1000n, HVA, RW));
    ok(b.map(0x20000n, 0x4000n, HVA, RW));
    return b;
  }
  test('EINVAL: size 0', () => err(three().unmap(0x10000n, 0n), 'EINVAL'));
  test('EINVAL: iova or size not aligned', () => {
    const b = three();
    err(b.unmap(0x10800n, K4), 'EINVAL');
    err(b.unmap(0x10000n, 0x2800n), 'EINVAL');
    assert.equal(b.mappings().length, 3);
  });
  test('EOVERFLOW: iova + size - 1 wraps', () => err(three().unmap(U64_MAX - K4 + 1n, 2n * K4), 'EOVERFLOW'));
  test('bisect: 4 KiB out of a 2 MiB mapping is EINVAL and unmaps nothing', () => {
    const b = new Type1Backend();
    ok(b.map(0x200000n, M2, HVA, RW));
    err(b.unmap(0x201000n, K4), 'EINVAL'); // start inside, end inside
    err(b.unmap(0x200000n, K4), 'EINVAL'); // starts at it, ends inside
    err(b.unmap(0x3ff000n, K4), 'EINVAL'); // starts inside, ends at its end
    assert.deepEqual(spans(b), ['200000+200000']);
  });
  test('bisect: a range starting inside one mapping or ending inside another is EINVAL; nothing is removed', () => {
    const b = three();
    err(b.unmap(0x11000n, 0x10000n), 'EINVAL'); // start bisects 0x10000+0x2000
    err(b.unmap(0x10000n, 0x12000n), 'EINVAL'); // end (0x21fff) bisects 0x20000+0x4000
    assert.equal(b.mappings().length, 3);
  });
  test('an unmap of an empty range succeeds with size 0', () => {
    const b = three();
    ok(b.unmap(0x30000n, 0x10000n), 0n);
    ok(b.unmap(0x13000n, 0xd000n), 0n); // the gap between mappings
    assert.equal(b.mappings().length, 3);
    assert.equal(b.stats().unmaps, 2);
  });
  test('an unmap covering several mappings removes them and returns the sum', () => {
    const b = three();
    ok(b.unmap(0x10000n, 0x3000n), 0x3000n); // exactly two
    ok(b.unmap(0n, 0x100000n), 0x4000n); // a large range around the last one
    assert.equal(b.mappings().length, 0);
    const c = three();
    ok(c.unmap(0x8000n, 0x20000n), 0x7000n); // all three, with gaps
  });
  test('unmapAll (VFIO_DMA_UNMAP_FLAG_ALL) removes everything and returns the size', () => {
    const b = three();
    ok(b.unmapAll(), 0x7000n);
    assert.equal(b.mappings().length, 0);
    ok(b.unmapAll(), 0n);
    const s = b.stats();
    assert.equal(s.liveMappings, 0);
    assert.equal(s.pinnedBytes, 0n);
    assert.equal(s.unmappedBytes, 0x7000n);
  });
});

// ===================================================================== iommufd

describe('iommufd IOAS: map', () => {
  test('EOVERFLOW: iova or length >= ULONG_MAX; user VA + length overflows; iova + length - 1 overflows', () => {
    const b = new IommufdBackend({ aperture: [0n, U64_MAX], reserved: [] });
    err(b.map(U64_MAX, K4, HVA, RW), 'EOVERFLOW');
    err(b.map(0n, U64_MAX, HVA, RW), 'EOVERFLOW');
    err(b.map(0n, 2n * K4, U64_MAX - K4 + 1n, RW), 'EOVERFLOW');
    err(b.map(0n, K4, U64_MAX - K4 + 1n, RW), 'EOVERFLOW'); // uptr + length == 2^64 overflows (not length - 1)
    err(b.map(U64_MAX - K4 + 1n, 2n * K4, HVA, RW), 'EOVERFLOW');
    ok(b.map(U64_MAX - K4 + 1n, K4, HVA, RW)); // the last page
  });
  test('EINVAL: no permission, zero length, unaligned length/iova/user VA', () => {
    const b = new IommufdBackend();
    err(b.map(0n, K4, HVA, NONE), 'EINVAL');
    err(b.map(0n, 0n, HVA, RW), 'EINVAL');
    err(b.map(0n, 0x1800n, HVA, RW), 'EINVAL');
    err(b.map(0x800n, K4, HVA, RW), 'EINVAL');
    err(b.map(0n, K4, HVA + 0x10n, RW), 'EINVAL');
    assert.equal(b.mappings().length, 0);
    assert.equal(b.stats().errors.EINVAL, 5);
  });
  test('EINVAL: reserved region (MSI window) or outside the aperture', () => {
    const b = new IommufdBackend({ aperture: [0x1000n, (1n << 39n) - 1n] });
    err(b.map(0xfee00000n, K4, HVA, RW), 'EINVAL');
    err(b.map(0n, K4, HVA, RW), 'EINVAL');
    err(b.map(1n << 39n, K4, HVA, RW), 'EINVAL');
    ok(b.map(0x1000n, K4, HVA, RW));
  });
  test('EEXIST: overlap with an existing area; the 2 MiB then 4 KiB case', () => {
    const b = new IommufdBackend();
    ok(b.map(0x40000000n, M2, HVA, RW));
    err(b.map(0x40001000n, K4, HVA, RW), 'EEXIST');
    err(b.map(0x3ffff000n, 0x2000n, HVA, RW), 'EEXIST');
  });
  test('the check order differs from type1: the reserved-region EINVAL comes before EEXIST', () => {
    const fd = new IommufdBackend();
    const t1 = new Type1Backend();
    for (const b of [fd, t1]) ok(b.map(0xfed00000n, 0x100000n, HVA, RW));
    err(fd.map(0xfedff000n, 0x2000n, HVA, RW), 'EINVAL');
    err(t1.map(0xfedff000n, 0x2000n, HVA, RW), 'EEXIST');
    // and the user VA alignment (iopt_insert_area) comes after EEXIST; type1 checks vaddr with iova and size
    err(fd.map(0xfed00000n, K4, HVA + 0x800n, RW), 'EEXIST');
    err(t1.map(0xfed00000n, K4, HVA + 0x800n, RW), 'EINVAL');
  });
  test('iommufd has no dma_entry_limit', () => {
    const b = new IommufdBackend();
    for (let i = 0n; i < 65536n; i++) assert.ok(b.map(i * K4, K4, HVA + i * K4, RW).ok);
    assert.equal(b.stats().liveMappings, 65536);
  });
  test('ENOMEM: the memlock limit', () => {
    const b = new IommufdBackend({ memlockLimitKiB: 8n });
    ok(b.map(0n, 0x2000n, HVA, RW));
    err(b.map(0x10000n, K4, HVA, RW), 'ENOMEM');
    ok(b.unmap(0n, 0x2000n), 0x2000n);
    ok(b.map(0x10000n, 0x2000n, HVA, RW));
  });
  test('a sub-page IOVA alignment: user VA offsets pin whole pages', () => {
    const b = new IommufdBackend({ pageSizes: 0x800n | K4 });
    assert.equal(b.iovaAlignment, 0x800n);
    ok(b.map(0x800n, 0x1000n, HVA + 0x800n, RW)); // spans two host pages
    assert.equal(b.stats().pinnedBytes, 0x2000n);
    assert.throws(() => new IommufdBackend({ pageSizes: M2 }), VtdError); // smallest page > PAGE_SIZE: attach fails
  });
});

describe('iommufd IOAS: unmap', () => {
  test('an unmap of a range with nothing mapped is ENOENT', () => {
    const b = new IommufdBackend();
    err(b.unmap(0x10000n, K4), 'ENOENT');
    ok(b.map(0x10000n, K4, HVA, RW));
    err(b.unmap(0x20000n, 0x10000n), 'ENOENT');
  });
  test('bisect: 4 KiB out of a 2 MiB area is ENOENT', () => {
    const b = new IommufdBackend();
    ok(b.map(0x200000n, M2, HVA, RW));
    err(b.unmap(0x201000n, K4), 'ENOENT');
    err(b.unmap(0x200000n, K4), 'ENOENT');
    assert.deepEqual(spans(b), ['200000+200000']);
  });
  test('EINVAL: zero length; EOVERFLOW: iova or length >= ULONG_MAX, or a wrapping range', () => {
    const b = new IommufdBackend();
    err(b.unmap(0x1000n, 0n), 'EINVAL');
    err(b.unmap(U64_MAX, K4), 'EOVERFLOW');
    err(b.unmap(K4, U64_MAX), 'EOVERFLOW');
    err(b.unmap(U64_MAX - K4 + 1n, 2n * K4), 'EOVERFLOW');
  });
  test('unmap has no alignment check: an unaligned range that covers whole areas succeeds', () => {
    const b = new IommufdBackend();
    ok(b.map(0x1000n, K4, HVA, RW));
    ok(b.unmap(0x800n, 0x2000n), K4);
    const t = new Type1Backend();
    ok(t.map(0x1000n, K4, HVA, RW));
    err(t.unmap(0x800n, 0x2000n), 'EINVAL');
  });
  test('an unmap covering several areas returns the sum', () => {
    const b = new IommufdBackend();
    ok(b.map(0x10000n, 0x2000n, HVA, RW));
    ok(b.map(0x12000n, K4, HVA, RW));
    ok(b.map(0x20000n, 0x4000n, HVA, RW));
    ok(b.unmap(0x8000n, 0x20000n), 0x7000n);
    assert.equal(b.mappings().length, 0);
  });
  test('not atomic: areas below the one the range would split are removed before the ENOENT', () => {
    const b = new IommufdBackend();
    ok(b.map(0x1000n, K4, HVA, RW));
    ok(b.map(0x3000n, 0x2000n, HVA, RW));
    const r = b.unmap(0x1000n, 0x3000n); // [0x1000, 0x3fff]: all of the first, half of the second
    err(r, 'ENOENT');
    assert.deepEqual(spans(b), ['3000+2000']);
    const s = b.stats();
    assert.equal(s.unmappedBytes, K4);
    assert.equal(s.liveMappings, 1);
    assert.equal(s.pinnedBytes, 0x2000n);
    // type1 checks both ends first: EINVAL and nothing removed
    const t = new Type1Backend();
    ok(t.map(0x1000n, K4, HVA, RW));
    ok(t.map(0x3000n, 0x2000n, HVA, RW));
    err(t.unmap(0x1000n, 0x3000n), 'EINVAL');
    assert.equal(t.mappings().length, 2);
  });
  test('unmapAll succeeds even when empty; unmap(0, U64_MAX) is the unmap-all form', () => {
    const b = new IommufdBackend();
    ok(b.unmapAll(), 0n);
    ok(b.map(0x1000n, K4, HVA, RW));
    ok(b.map(0x100000000n, M2, HVA, RW));
    ok(b.unmap(0n, U64_MAX), K4 + M2);
    ok(b.unmap(0n, U64_MAX), 0n);
    assert.equal(b.stats().unmaps, 3);
  });
});

// ======================================================================= stats

describe('stats', () => {
  test('counters, errors by errno, high-water marks, histograms', () => {
    const b = new Type1Backend({ dmaEntryLimit: 3 });
    ok(b.map(0n, K4, HVA, RW));
    ok(b.map(M2, M2, HVA, RW));
    ok(b.map(G1, G1, HVA, RW));
    err(b.map(4n * G1, K4, HVA, RW), 'ENOSPC');
    err(b.map(0n, K4, HVA, RW), 'EEXIST');
    ok(b.unmap(M2, M2), M2);
    ok(b.unmap(0n, 0x10000n), K4);
    err(b.unmap(G1 + K4, K4), 'EINVAL');
    const s = b.stats();
    assert.equal(s.maps, 5);
    assert.equal(s.unmaps, 3);
    assert.equal(s.mappedBytes, K4 + M2 + G1);
    assert.equal(s.unmappedBytes, K4 + M2);
    assert.equal(s.liveMappings, 1);
    assert.equal(s.liveHighWater, 3);
    assert.equal(s.pinnedBytes, G1);
    assert.equal(s.pinnedHighWater, K4 + M2 + G1);
    assert.deepEqual(s.errors, { EINVAL: 1, EEXIST: 1, ENOSPC: 1, EOVERFLOW: 0, ENOMEM: 0, ENOENT: 0, EFAULT: 0 });
    assert.equal(s.mapSizeHistogram['4K'], 1);
    assert.equal(s.mapSizeHistogram['2M'], 1);
    assert.equal(s.mapSizeHistogram['1G'], 1);
    assert.equal(s.unmapSizeHistogram['2M'], 1);
    assert.equal(s.unmapSizeHistogram['64K'], 1); // by requested size
    assert.deepEqual(Object.keys(s.mapSizeHistogram), [...HISTOGRAM_BUCKETS]);
    // snapshots are copies
    s.errors.EINVAL = 99;
    assert.equal(b.stats().errors.EINVAL, 1);
  });
  test('size buckets are powers of two, rounding up, with >1G above', () => {
    assert.equal(sizeBucket(0x1000n), '4K');
    assert.equal(sizeBucket(0x1001n), '8K');
    assert.equal(sizeBucket(0x3000n), '16K');
    assert.equal(sizeBucket(0x100000n), '1M');
    assert.equal(sizeBucket(G1), '1G');
    assert.equal(sizeBucket(G1 + K4), '>1G');
    assert.equal(HISTOGRAM_BUCKETS.length, 20);
    assert.equal(HISTOGRAM_BUCKETS[0], '4K');
    assert.equal(HISTOGRAM_BUCKETS[19], '>1G');
  });
});

// =================================================================== recording

describe('recording', () => {
  test('golden JSON lines for the EEXIST reproduction under type1', () => {
    const r = new RecordingBackend(new Type1Backend());
    assert.equal(r.name, 'recording(vfio-type1)');
    r.map(0x40000000n, M2, 0x7f0040000000n, RW);
    r.map(0x40001000n, K4, 0x7f0040001000n, RO);
    r.unmap(0x40001000n, K4);
    r.unmap(0x40000000n, M2);
    r.unmap(0x40000000n, M2);
    r.map(0x40001000n, K4, 0x7f0040001000n, { read: false, write: true });
    r.unmapAll();
    assert.equal(r.toJsonLines(),
      '{"op":"map","iova":"0x40000000","size":"0x200000","vaddr":"0x7f0040000000","perm":"rw","result":"ok"}\n' +
      '{"op":"map","iova":"0x40001000","size":"0x1000","vaddr":"0x7f0040001000","perm":"r","result":"EEXIST"}\n' +
      '{"op":"unmap","iova":"0x40001000","size":"0x1000","result":"EINVAL"}\n' +
      '{"op":"unmap","iova":"0x40000000","size":"0x200000","result":"ok","unmapped":"0x200000"}\n' +
      '{"op":"unmap","iova":"0x40000000","size":"0x200000","result":"ok","unmapped":"0x0"}\n' +
      '{"op":"map","iova":"0x40001000","size":"0x1000","vaddr":"0x7f0040001000","perm":"w","result":"ok"}\n' +
      '{"op":"unmapAll","result":"ok","unmapped":"0x1000"}\n');
    assert.equal(r.log().length, 7);
    assert.equal(r.stats().errors.EEXIST, 1); // the inner backend's stats
    assert.deepEqual(r.mappings(), []);
    r.clearLog();
    assert.equal(r.toJsonLines(), '');
  });
  test('with no inner backend it accepts everything', () => {
    const r = new RecordingBackend();
    assert.equal(r.name, 'recording');
    ok(r.map(0x200000n, M2, HVA, RW));
    ok(r.map(0x201000n, K4, HVA, NONE)); // overlapping, no permission: accepted
    ok(r.unmap(0x201000n, K4), K4); // removes what lies entirely inside
    ok(r.unmap(0x201000n, K4), 0n);
    ok(r.unmap(0x1234n, 0n), 0n);
    assert.deepEqual(spans(r), ['200000+200000']);
    ok(r.unmapAll(), M2);
    const s = r.stats();
    assert.equal(s.maps, 2);
    assert.equal(s.unmaps, 4);
    assert.equal(s.liveHighWater, 2);
    assert.deepEqual(r.log().map((l) => (JSON.parse(l) as { result: string }).result), ['ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
    assert.equal(JSON.parse(r.log()[1]).perm, '-');
  });
  test('a recorded call stream replays against another backend', () => {
    const loose = new RecordingBackend();
    loose.map(0x200000n, M2, HVA, RW);
    loose.map(0x201000n, K4, HVA + K4, RW);
    loose.unmap(0x201000n, K4);
    loose.unmap(0x300000n, K4);
    loose.unmapAll();
    const log = loose.toJsonLines();
    const entries = parseLog(log);
    assert.equal(entries.length, 5);
    assert.deepEqual(entries[0], { op: 'map', iova: 0x200000n, size: M2, vaddr: HVA, perm: RW, result: 'ok' });
    const t1 = replayLog(log, new Type1Backend()).map((x) => (x.ok ? 'ok' : x.errno));
    const fd = replayLog(loose.log(), new IommufdBackend()).map((x) => (x.ok ? 'ok' : x.errno));
    assert.deepEqual(t1, ['ok', 'EEXIST', 'EINVAL', 'EINVAL', 'ok']);
    assert.deepEqual(fd, ['ok', 'EEXIST', 'ENOENT', 'ENOENT', 'ok']);
    assert.throws(() => parseLog('{"op":"map","iova":"12"}'), VtdError);
    assert.throws(() => parseLog('{"op":"frob"}\n'), VtdError);
    assert.throws(() => parseLog('nope'), VtdError);
  });
});

// ================================================================== property

type Op =
  | { kind: 'map'; iova: bigint; size: bigint; vaddr: bigint; perm: Perm }
  | { kind: 'unmap'; iova: bigint; size: bigint }
  | { kind: 'unmapAll' };

interface RefCfg { limit: number; memlock: bigint | null; apertureLast: bigint; reserved: [bigint, bigint] }
type Span = { iova: bigint; size: bigint };

/**
 * A plain reference: a list of spans scanned linearly, with the rules written
 * out in the order docs/BACKENDS.md gives (inputs stay far from 2^64, so the
 * overflow rules do not arise here; they have their own cases above).
 */
class RefModel {
  spans: Span[] = [];
  constructor(readonly kind: 'type1' | 'iommufd', readonly cfg: RefCfg) {}
  private pinned(): bigint { return this.spans.reduce((s, x) => s + x.size, 0n); }
  private hits(a: bigint, endEx: bigint): Span[] { return this.spans.filter((s) => s.iova < endEx && a < s.iova + s.size); }

  apply(op: Op): 'ok' | Errno {
    if (op.kind === 'unmapAll') { this.spans = []; return 'ok'; }
    return op.kind === 'map' ? this.map(op) : this.unmap(op);
  }

  private map(op: { iova: bigint; size: bigint; vaddr: bigint; perm: Perm }): 'ok' | Errno {
    const { iova, size, vaddr, perm } = op;
    const end = iova + size;
    const aligned = iova % K4 === 0n && size % K4 === 0n;
    const outside = end - 1n > this.cfg.apertureLast || (iova <= this.cfg.reserved[1] && end - 1n >= this.cfg.reserved[0]);
    const exists = this.hits(iova, end).length > 0;
    if (size === 0n || (!perm.read && !perm.write) || !aligned) return 'EINVAL';
    if (this.kind === 'type1') {
      if (vaddr % K4 !== 0n) return 'EINVAL';
      if (exists) return 'EEXIST';
      if (this.spans.length >= this.cfg.limit) return 'ENOSPC';
      if (outside) return 'EINVAL';
    } else {
      if (outside) return 'EINVAL';
      if (exists) return 'EEXIST';
      if (vaddr % K4 !== 0n) return 'EINVAL'; // iopt_insert_area, after the overlap check
    }
    if (this.cfg.memlock !== null && this.pinned() + size > this.cfg.memlock) return 'ENOMEM';
    this.spans.push({ iova, size });
    return 'ok';
  }

  private unmap(op: { iova: bigint; size: bigint }): 'ok' | Errno {
    const { iova, size } = op;
    if (size === 0n) return 'EINVAL';
    const end = iova + size;
    const hits = this.hits(iova, end).sort((a, b) => (a.iova < b.iova ? -1 : 1));
    const cut = (s: Span) => s.iova < iova || s.iova + s.size > end;
    if (this.kind === 'type1') {
      if (iova % K4 !== 0n || size % K4 !== 0n) return 'EINVAL';
      if (hits.some(cut)) return 'EINVAL';
      this.spans = this.spans.filter((s) => !hits.includes(s));
      return 'ok';
    }
    let removed = 0;
    for (const h of hits) {
      if (cut(h)) return 'ENOENT';
      this.spans = this.spans.filter((s) => s !== h);
      removed++;
    }
    return removed > 0 ? 'ok' : 'ENOENT';
  }
}

const PAGES = 72; // a little past the 64-page aperture
const arbPerm: fc.Arbitrary<Perm> = fc.oneof(
  { weight: 8, arbitrary: fc.constant(RW) },
  { weight: 1, arbitrary: fc.constant(RO) },
  { weight: 1, arbitrary: fc.constant(NONE) },
);
const arbOff = fc.oneof({ weight: 12, arbitrary: fc.constant(0n) }, { weight: 1, arbitrary: fc.constant(0x800n) });
const arbOp: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('map' as const),
      page: fc.integer({ min: 0, max: PAGES - 1 }), npages: fc.integer({ min: 0, max: 8 }),
      iovaOff: arbOff, sizeOff: arbOff, vaddrOff: arbOff, vpage: fc.integer({ min: 0, max: 1 << 20 }), perm: arbPerm,
    }).map((r): Op => ({
      kind: 'map', iova: BigInt(r.page) * K4 + r.iovaOff, size: BigInt(r.npages) * K4 + r.sizeOff,
      vaddr: HVA + BigInt(r.vpage) * K4 + r.vaddrOff, perm: r.perm,
    })),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('unmap' as const),
      page: fc.integer({ min: 0, max: PAGES - 1 }), npages: fc.integer({ min: 0, max: 24 }), iovaOff: arbOff, sizeOff: arbOff,
    }).map((r): Op => ({ kind: 'unmap', iova: BigInt(r.page) * K4 + r.iovaOff, size: BigInt(r.npages) * K4 + r.sizeOff })),
  },
  { weight: 1, arbitrary: fc.constant<Op>({ kind: 'unmapAll' }) },
);
const arbCfg: fc.Arbitrary<RefCfg> = fc.record({
  limit: fc.integer({ min: 1, max: 24 }),
  memlock: fc.option(fc.integer({ min: 0, max: 48 }).map((p) => BigInt(p) * K4), { nil: null }),
  apertureLast: fc.constant(64n * K4 - 1n),
  reserved: fc.constant<[bigint, bigint]>([40n * K4, 42n * K4 - 1n]),
});

function runProperty(kind: 'type1' | 'iommufd'): void {
  fc.assert(fc.property(arbCfg, fc.array(arbOp, { minLength: 1, maxLength: 120, size: 'max' }), (cfg, ops) => {
    const opts = { memlockLimitKiB: cfg.memlock === null ? 'unlimited' as const : cfg.memlock / 1024n, aperture: [0n, cfg.apertureLast] as [bigint, bigint], reserved: [cfg.reserved] };
    const inner: Backend = kind === 'type1' ? new Type1Backend({ ...opts, dmaEntryLimit: cfg.limit }) : new IommufdBackend(opts);
    const b = new RecordingBackend(inner);
    const ref = new RefModel(kind, cfg);
    let maps = 0, unmaps = 0, failures = 0, liveHW = 0, pinnedHW = 0n, mapOks = 0, unmapBucketed = 0;
    for (const op of ops) {
      const r = op.kind === 'map' ? b.map(op.iova, op.size, op.vaddr, op.perm) : op.kind === 'unmap' ? b.unmap(op.iova, op.size) : b.unmapAll();
      if (op.kind === 'map') maps++; else unmaps++;
      const want = ref.apply(op);
      assert.equal(r.ok ? 'ok' : r.errno, want, JSON.stringify(op, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v)));
      if (!r.ok) failures++;
      else if (op.kind === 'map') mapOks++;
      else if (op.kind === 'unmap' || r.size > 0n) unmapBucketed++;

      const ms = b.mappings();
      for (let i = 1; i < ms.length; i++) assert.ok(ms[i - 1].iova + ms[i - 1].size <= ms[i].iova, 'sorted and disjoint');
      const refSpans = [...ref.spans].sort((x, y) => (x.iova < y.iova ? -1 : 1));
      assert.deepEqual(ms.map((m) => [m.iova, m.size]), refSpans.map((s) => [s.iova, s.size]));

      const s = b.stats();
      const live = ms.reduce((a, m) => a + m.size, 0n);
      liveHW = Math.max(liveHW, ms.length);
      if (live > pinnedHW) pinnedHW = live;
      assert.equal(s.liveMappings, ms.length);
      assert.equal(s.pinnedBytes, live);
      assert.equal(s.liveHighWater, liveHW);
      assert.equal(s.pinnedHighWater, pinnedHW);
      assert.equal(s.mappedBytes - s.unmappedBytes, live);
      assert.equal(s.maps, maps);
      assert.equal(s.unmaps, unmaps);
      assert.equal(Object.values(s.errors).reduce((a, n) => a + n, 0), failures);
      assert.equal(Object.values(s.mapSizeHistogram).reduce((a, n) => a + n, 0), mapOks);
      assert.equal(Object.values(s.unmapSizeHistogram).reduce((a, n) => a + n, 0), unmapBucketed);
      if (kind === 'type1') assert.ok(ms.length <= cfg.limit);
      if (cfg.memlock !== null) assert.ok(live <= cfg.memlock);
    }
    assert.equal(b.log().length, ops.length);
  }), { numRuns: 300 });
}

describe('property: random map/unmap sequences against a reference set model', () => {
  test('type1: results, mappings and stats match the model; mappings never overlap', () => runProperty('type1'));
  test('iommufd: results, mappings and stats match the model; mappings never overlap', () => runProperty('iommufd'));
});

test('src/shadow imports no Node module (browser-safe)', () => {
  const dir = join(fileURLToPath(import.meta.url), '..', '..', '..', 'src', 'shadow');
  const files = ['backend.ts', 'index.ts', 'iommufd.ts', 'recording.ts', 'type1.ts'];
  for (const f of files) assert.ok(readdirSync(dir).includes(f), f);
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    for (const m of text.matchAll(/from\s+'([^']+)'/g)) {
      assert.ok(m[1].startsWith('./') || m[1] === '../errors.js', `${f} imports ${m[1]}`);
      assert.ok(m[1].endsWith('.js'), `${f}: ${m[1]} needs a .js suffix`);
    }
  }
});
