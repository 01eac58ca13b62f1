/**
 * Issue 11: a guest must not be able to make shadow sync exhaust the VMM.
 * A hostile table (one page whose 512 entries all point at itself: 512^levels
 * leaves; or a fan-out onto an empty table: 512^levels entries read, no leaf)
 * is synced within the backend's limits (type1 dma_entry_limit, the iommufd
 * model's maxMappings) and the per-sync walk budget; hitting a limit records
 * the backend's errno, marks the shadow incomplete, and the replay goes on.
 * Counts are asserted, never time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers.js';
import { parseTrace } from '../../src/trace/parse.js';
import { Replayer, type ReplayOptions } from '../../src/replay/replayer.js';
import fc from 'fast-check';
import { ShadowSync, type Run, type SyncMode } from '../../src/shadow/sync.js';
import { Type1Backend } from '../../src/shadow/type1.js';
import { IommufdBackend } from '../../src/shadow/iommufd.js';
import type { Backend } from '../../src/shadow/backend.js';
import { Guest, SID, DID as GUEST_DID } from './guest.js';

const DID = 1;

/**
 * The reproduction of issue 11: header with cm, root entry, context entry,
 * the hostile table, RTADDR, SRTP, TE, a global context invalidation and a
 * domain-selective IOTLB invalidation (registers), then one DMA to show the
 * replay goes on. `fanOut`: levels-1 tables chained with every entry pointing
 * at the next, the last one empty (no leaf at all) instead of a self-reference.
 */
export function hostileTrace(aw: 39 | 48 | 57, fanOut = false): string {
  const levels = { 39: 3, 48: 4, 57: 5 }[aw];
  const q = (v: bigint | number) => `"0x${v.toString(16)}"`;
  const lines = [
    `{"vtd-trace":1,"iommu":{"aw":${aw},"cm":true},"devices":["00:03.0"]}`,
    `{"op":"mem","gpa":"0x1000","q":["0x2001","0x0"]}`,
    `{"op":"mem","gpa":"0x2180","q":["0x3001",${q((DID << 8) | (levels - 2))}]}`,
  ];
  if (!fanOut) lines.push(`{"op":"mem","gpa":"0x3000","q":[${Array(512).fill('"0x3003"').join(',')}]}`);
  else {
    for (let i = 0; i < levels - 1; i++) {
      lines.push(`{"op":"mem","gpa":${q(0x3000 + i * 0x1000)},"q":[${Array(512).fill(q(0x4003 + i * 0x1000)).join(',')}]}`);
    }
  }
  lines.push(
    `{"op":"wr","reg":"0x20","size":8,"val":"0x1000"}`,
    `{"op":"wr","reg":"0x18","size":4,"val":"0x40000000"}`,
    `{"op":"wr","reg":"0x18","size":4,"val":"0x80000000"}`,
    `{"op":"wr","reg":"0x28","size":8,"val":"0xa000000000000000"}`,
    `{"op":"wr","reg":"0xf8","size":8,"val":${q((1n << 63n) | (2n << 60n) | (BigInt(DID) << 32n))}}`,
    `{"op":"dma","sid":"00:03.0","iova":"0x5000","len":4,"dir":"r"}`,
  );
  return lines.join('\n') + '\n';
}

function replay(text: string, options: ReplayOptions): { r: Replayer; lines: string[] } {
  const trace = parseTrace(text);
  const r = new Replayer({ header: trace.header, ops: [] }, options);
  const lines: string[] = [];
  for (const op of trace.ops) {
    const l = r.step(op);
    if (l !== undefined) lines.push(l);
  }
  r.finish();
  return { r, lines };
}

test('the nine-line trace: each sync stops at the backend mapping limit with its errno, and the replay goes on', () => {
  const LIMIT = 100;
  for (const aw of [48, 57] as const) {
    for (const mode of ['merged', 'qemu'] as SyncMode[]) {
      for (const backend of ['type1', 'iommufd'] as const) {
        const what = `aw ${aw}, ${mode}, ${backend}`;
        const { r, lines } = replay(hostileTrace(aw), {
          shadow: { mode, backend, type1: { dmaEntryLimit: LIMIT }, iommufd: { maxMappings: LIMIT } },
        });
        const m = r.shadow!.metrics, b = r.backendStats()!;
        assert.equal(m.syncs, 2, `${what}: the context invalidation attaches the domain (full sync), then the IOTLB one`);
        assert.ok(b.maps <= m.syncs * (LIMIT + 1), `${what}: ${b.maps} map calls`);
        assert.ok(b.maps >= LIMIT + 1, `${what}: the limit was reached`);
        assert.ok(b.errors.ENOSPC >= 1 && b.errors.ENOSPC <= m.syncs, `${what}: ENOSPC ${b.errors.ENOSPC}`);
        assert.equal(m.errors.ENOSPC, b.errors.ENOSPC, `${what}: the sync counts the backend's errno`);
        assert.equal(b.liveMappings, LIMIT, what);
        const name = backend === 'type1' ? 'dma_entry_limit' : 'max-mappings';
        assert.equal(m.limits[name], m.syncs, `${what}: every sync stopped at ${name}`);
        assert.equal(m.incompleteSyncs, m.syncs, what);
        assert.equal(r.shadow!.shadowComplete(DID), false, `${what}: the shadow says it is incomplete`);
        // The shadow holds only what the backend accepted.
        assert.equal(r.shadow!.shadowOf(DID).length, LIMIT, what);
        assert.deepEqual(lines, ['{"i":8,"op":"dma","ok":true,"gpa":"0x3000"}'], `${what}: the replay went on`);
      }
    }
  }
});

test('default limits bound the nine-line trace too (type1 dma_entry_limit 65535, merged)', () => {
  const { r } = replay(hostileTrace(48), { shadow: { mode: 'merged', backend: 'type1' } });
  const m = r.shadow!.metrics, b = r.backendStats()!;
  assert.equal(b.liveMappings, 65535);
  assert.ok(b.maps <= m.syncs * 65536);
  assert.equal(b.errors.ENOSPC, m.syncs);
});

test('locked memory: a sync stops at RLIMIT_MEMLOCK with ENOMEM', () => {
  for (const mode of ['merged', 'qemu'] as SyncMode[]) {
    for (const backend of ['type1', 'iommufd'] as const) {
      const what = `${mode}, ${backend}`;
      // 64 KiB of locked memory: 16 pages of 4 KiB.
      const { r } = replay(hostileTrace(48), { shadow: { mode, backend, type1: { memlockLimitKiB: 64n }, iommufd: { memlockLimitKiB: 64n } } });
      const m = r.shadow!.metrics, b = r.backendStats()!;
      assert.equal(b.liveMappings, 16, what);
      assert.ok(b.maps <= m.syncs * 17, `${what}: ${b.maps} map calls`);
      assert.ok(b.errors.ENOMEM >= 1, what);
      assert.equal(m.limits['RLIMIT_MEMLOCK'], m.syncs, what);
    }
  }
});

test('walk budget: a fan-out onto an empty table (no leaf) is cut at max walk entries, 4 and 5 levels', () => {
  for (const aw of [48, 57] as const) {
    for (const mode of ['merged', 'qemu'] as SyncMode[]) {
      const what = `aw ${aw}, ${mode}`;
      const { r, lines } = replay(hostileTrace(aw, true), { shadow: { mode, backend: 'type1', maxWalkEntries: 50000 } });
      const m = r.shadow!.metrics, b = r.backendStats()!;
      assert.equal(m.syncs, 2, what);
      assert.ok(m.entriesRead <= m.syncs * (50000 + 5), `${what}: ${m.entriesRead} entries read`);
      assert.equal(m.limits['walk-entries'], m.syncs, what);
      assert.equal(b.maps + b.unmaps, 0, what);
      assert.equal(r.shadow!.shadowComplete(DID), false, what);
      assert.equal(lines.length, 1, `${what}: the replay went on`);
    }
  }
});

test('the nine-line trace file of the issue (test/fixtures/shadow) matches the builder', () => {
  const file = readFileSync(join(ROOT, 'test', 'fixtures', 'shadow', 'selfref-aw48.jsonl'), 'utf8');
  assert.equal(file.trim().split('\n').length, 9);
  assert.equal(file, hostileTrace(48).split('\n').slice(0, 9).join('\n') + '\n');
});

test('vtd replay: a sync stopped at a limit is warned about, counted in the report, and the run exits 0', () => {
  const vtd = (args: string[]) => spawnSync(process.execPath, [join(ROOT, 'bin', 'vtd.js'), ...args], { encoding: 'utf8' });
  const dir = mkdtempSync(join(tmpdir(), 'vtd-limits-'));
  const report = join(dir, 'r.json');
  const trace = join(ROOT, 'test', 'fixtures', 'shadow', 'selfref-aw48.jsonl');
  const html = join(dir, 'r.html');
  const r = vtd(['replay', trace, '--shadow', 'merged,qemu', '--dma-entry-limit', '50', '--report', report, '--html', html]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(readFileSync(html, 'utf8'), /Shadow incomplete: none\+merged\/type1: 2 sync\(s\) stopped at a limit \(dma_entry_limit 2\); none\+qemu\/type1: 2 sync/);
  for (const mode of ['merged', 'qemu']) {
    assert.match(r.stderr, new RegExp(`warning: run none\\+${mode}/type1: the shadow is incomplete: 2 sync\\(s\\) stopped at a limit: dma_entry_limit \\(--dma-entry-limit\\) 2; backend errors ENOSPC 2`));
  }
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  for (const run of rep.runs) {
    assert.equal(run.backend.incompleteSyncs, 2);
    assert.deepEqual(run.backend.limits, { dma_entry_limit: 2 });
    assert.equal(run.backend.errors.ENOSPC, 2);
    assert.ok(run.backend.maps <= 2 * 51);
  }
  // The walk budget, on the 5-level fan-out onto an empty table.
  const f = vtd(['replay', join(ROOT, 'test', 'fixtures', 'shadow', 'fanout-aw57.jsonl'), '--shadow', 'qemu', '--backend', 'iommufd', '--max-walk-entries', '1000', '--summary']);
  assert.equal(f.status, 0, f.stderr);
  assert.match(f.stderr, /incomplete: 2 sync\(s\) stopped at a limit \(walk-entries 2\)/);
  assert.match(f.stderr, /warning: run none\+qemu\/iommufd: the shadow is incomplete: 2 sync\(s\) stopped at a limit: walk-entries \(--max-walk-entries\) 2\n/);
  // The options are checked.
  const bad = vtd(['replay', trace, '--shadow', 'merged', '--max-mappings', '10']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--max-mappings is for --backend iommufd/);
  assert.match(vtd(['replay', trace, '--max-walk-entries', '10']).stderr, /--max-walk-entries needs --shadow/);
  assert.match(vtd(['replay', trace, '--shadow', 'merged', '--max-walk-entries', '0']).stderr, /--max-walk-entries must be an integer >= 1/);
});

test('property: under a small mapping limit the backend never maps what the guest does not, each sync issues at most limit + 1 maps, and a domain sync within the limit restores the exact shadow', () => {
  const LIMIT = 6;
  fc.assert(fc.property(
    fc.constantFrom<SyncMode>('merged', 'qemu'), fc.boolean(),
    fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 9 })), { maxLength: 30 }),
    (mode, fd, ops) => {
      const g = new Guest();
      const b: Backend = fd ? new IommufdBackend({ maxMappings: LIMIT }) : new Type1Backend({ dmaEntryLimit: LIMIT });
      const s = new ShadowSync(g.iommu, b, { mode });
      s.attach(SID);
      const live = new Map<number, number>(); // slot -> pages
      const pageOf = (iova: bigint): Run | undefined => g.effective().find((r) => iova >= r.iova && iova < r.iova + r.size);
      const check = (where: string): void => {
        for (const m of b.mappings()) {
          for (let p = m.iova; p < m.iova + m.size; p += 0x1000n) {
            const r = pageOf(p);
            assert.ok(r && r.gpa + (p - r.iova) === m.hva + (p - m.iova) && r.read === m.perm.read && r.write === m.perm.write,
              `${where}: the backend maps 0x${p.toString(16)}, the guest does not (or differently)`);
          }
        }
      };
      for (const [map, slot, pages, gpage] of ops) {
        // Slots 16 pages apart, GPAs scattered: every slot is its own run.
        const iova = 0x10000000n + BigInt(slot) * 0x10000n;
        const syncs = s.metrics.syncs, maps = s.metrics.maps;
        if (map && !live.has(slot)) {
          g.map(iova, 0x20000000n + BigInt(gpage * 7 + slot) * 0x100000n, BigInt(pages) * 0x1000n, 3n);
          live.set(slot, pages);
        } else if (!map && live.has(slot)) {
          g.unmap(iova, BigInt(live.get(slot)!) * 0x1000n);
          live.delete(slot);
        } else continue;
        assert.ok(s.metrics.maps - maps <= (s.metrics.syncs - syncs) * (LIMIT + 1), `${mode}: maps per sync`);
        check(`after ${map ? 'map' : 'unmap'} of slot ${slot}`);
      }
      g.invalidateDomain();
      check('after a domain sync');
      // Backend mappings needed: one per run (merged; runs never touch here), one per page (qemu).
      const need = mode === 'qemu' ? [...live.values()].reduce((a, x) => a + x, 0) : live.size;
      if (need <= LIMIT) {
        assert.equal(s.shadowComplete(GUEST_DID), true);
        assert.equal(b.mappings().length, need);
        assert.equal(b.mappings().reduce((a, m) => a + m.size, 0n), g.effective().reduce((a, r) => a + r.size, 0n));
      } else {
        assert.equal(s.shadowComplete(GUEST_DID), false);
        assert.ok(b.stats().errors.ENOSPC > 0);
      }
    }), { numRuns: Number(process.env.VTD_PROPERTY_RUNS ?? 100) });
});
