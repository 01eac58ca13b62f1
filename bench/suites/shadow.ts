// shadow (shadow sync): what keeping a VFIO type1 backend in step with a caching-mode guest costs.
// 1. Strict map/unmap of 64 KiB buffers (16 pages), each change followed by its page-selective invalidation:
//    backend operations and time per guest map+invalidate, merged mode against the QEMU 7.2-compatible mode.
// 2. A domain-selective sync (walk of the whole space, nothing changed) as the sparse guest grows from 1 GiB to
//    1 TiB of IOVA space with the same 4096 mapped pages, and as mapped pages grow (1 GiB of IOVA space).

import { ShadowSync, type SyncMode } from '../../src/shadow/sync.js';
import { Type1Backend } from '../../src/shadow/type1.js';
import { Guest, SID } from '../../test/shadow/guest.js';
import type { BenchContext, Suite } from '../lib/context.js';
import { measure } from '../lib/measure.js';

const BUFFERS = 64;
const BUF_PAGES = 16n;

function mapUnmapUnit(mode: SyncMode): { g: Guest; s: ShadowSync; cycle: () => void } {
  const g = new Guest();
  const s = new ShadowSync(g.iommu, new Type1Backend(), { mode });
  s.attach(SID);
  const cycle = (): void => {
    for (let k = 0n; k < BigInt(BUFFERS); k++) {
      const iova = 0x10000000n + k * 0x100000n;
      g.map(iova, 0x20000000n + k * BUF_PAGES * 0x1000n, BUF_PAGES * 0x1000n, 3n);
      g.unmap(iova, BUF_PAGES * 0x1000n);
    }
  };
  return { g, s, cycle };
}

/** A guest with `pages` 4 KiB pages in clusters of 64 spread over `span` bytes of IOVA space. */
function sparseGuest(span: bigint, pages: number): { g: Guest; s: ShadowSync } {
  const g = new Guest(1 << 30);
  const clusters = pages / 64;
  const stride = span / BigInt(clusters);
  for (let c = 0; c < clusters; c++) {
    const iova = (BigInt(c) * stride) & ~0x3fffffn; // 4 MiB aligned
    for (let p = 0n; p < 64n; p++) g.mapNoInvalidate(iova + p * 0x1000n, 0x20000000n + (BigInt(c) * 64n + p) * 0x1000n, 3n);
  }
  const s = new ShadowSync(g.iommu, new Type1Backend(), { mode: 'merged' });
  s.attach(SID); // replays the domain once
  return { g, s };
}

export const shadow: Suite = {
  name: 'shadow',
  about: 'shadow sync: backend operations and time per guest map+invalidate; sync time vs guest size and mapped pages',
  run(ctx: BenchContext): void {
    const { report: rep, timing } = ctx;
    const pairs = BUFFERS; // map+unmap pairs per op
    const results: Record<SyncMode, { opsPerPair: number; rate: number }> = { merged: { opsPerPair: 0, rate: 0 }, qemu: { opsPerPair: 0, rate: 0 } };
    for (const mode of ['merged', 'qemu'] as const) {
      ctx.log(`shadow: map/unmap cycles, ${mode}`);
      const u = mapUnmapUnit(mode);
      const m0 = u.s.metrics.maps + u.s.metrics.unmaps;
      u.cycle();
      const opsPerPair = (u.s.metrics.maps + u.s.metrics.unmaps - m0) / pairs;
      if (Object.keys(u.s.metrics.errors).length) throw new Error(`shadow ${mode}: backend errors ${JSON.stringify(u.s.metrics.errors)}`);
      const t = measure(`shadow ${mode}`, u.cycle, pairs * 2, timing);
      results[mode] = { opsPerPair, rate: t.perSecond };
      rep.add(`shadow.${mode}.ops-per-map-unmap`, opsPerPair, 'ratio', null, { note: `backend map+unmap calls per guest map+unmap of ${BUF_PAGES} pages` });
      rep.add(`shadow.${mode}.changes`, t.perSecond, 'changes/s', mode === 'qemu' ? 'shadow.merged.changes' : null,
        { rme: t.rme, note: 'guest map or unmap of a 64 KiB buffer + its invalidation + sync, per second' });
    }
    rep.addRatio('shadow.qemu/merged.ops', 'shadow.qemu.ops-per-map-unmap', 'shadow.merged.ops-per-map-unmap', 'backend operations, QEMU-compatible / merged');
    rep.addRatio('shadow.merged/qemu.time', 'shadow.merged.changes', 'shadow.qemu.changes', 'throughput, merged / QEMU-compatible');

    // Sync time vs guest size (same 4096 pages) and vs mapped pages.
    let base = '';
    for (const [label, span] of [['1g', 1n << 30n], ['16g', 1n << 34n], ['256g', 1n << 38n], ['1t', 1n << 40n]] as const) {
      ctx.log(`shadow: domain sync, 4096 pages over ${label}`);
      const { g } = sparseGuest(span, 4096);
      const t = measure(`shadow sync ${label}`, () => g.invalidateDomain(), 1, timing);
      const name = `shadow.sync-us.span-${label}`;
      rep.add(name, 1e6 / t.perSecond, 'us', base || null, { rme: t.rme, note: 'domain-selective invalidation: full walk + diff, nothing changed' });
      base ||= name;
    }
    base = '';
    for (const pages of [1024, 4096, 16384]) {
      ctx.log(`shadow: domain sync, ${pages} pages over 1 GiB`);
      const { g } = sparseGuest(1n << 30n, pages);
      const t = measure(`shadow sync ${pages}p`, () => g.invalidateDomain(), 1, timing);
      const name = `shadow.sync-us.pages-${pages}`;
      rep.add(name, 1e6 / t.perSecond, 'us', base || null, { rme: t.rme, note: 'domain-selective invalidation: full walk + diff, nothing changed' });
      base ||= name;
    }
    // A page-selective change with many live mappings: the sync looks only at
    // the invalidated range (binary search into the shadow), so its cost
    // should not grow with the number of live backend mappings.
    base = '';
    for (const live of [1024, 16384, 65536]) {
      ctx.log(`shadow: page-selective change with ${live} live mappings`);
      const g = new Guest(1 << 30);
      // Separate mappings: every other page, so no two merge.
      for (let p = 0; p < live; p++) g.mapNoInvalidate(0x100000000n + BigInt(p) * 0x2000n, 0x1000000n + BigInt(p) * 0x1000n, 3n);
      const s = new ShadowSync(g.iommu, new Type1Backend(), { mode: 'merged' });
      s.attach(SID);
      const iova = 0x100000000n + BigInt(live) * 0x2000n;
      const t = measure(`shadow page change ${live}`, () => {
        g.map(iova, 0x3000000n, 0x1000n, 3n);
        g.unmap(iova, 0x1000n);
      }, 2, timing);
      const name = `shadow.page-change-us.live-${live}`;
      rep.add(name, 1e6 / t.perSecond, 'us', base || null, { rme: t.rme, note: 'guest map or unmap of one page + page-selective invalidation + sync' });
      base ||= name;
    }
    rep.printSection('shadow: keeping a VFIO type1 backend in step (caching mode, strict invalidation)', [
      `map/unmap of ${BUFFERS} buffers of ${BUF_PAGES} pages: merged ${results.merged.opsPerPair} backend calls per pair, QEMU-compatible ${results.qemu.opsPerPair}`,
    ]);
  },
};
