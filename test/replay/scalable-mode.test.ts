/**
 * A workload replays end to end in scalable mode (issue 13): the guest-driver
 * model lowers it as Linux 6.x does for the unit the header describes (PASID
 * tables, first-stage tables when the unit offers them, PASID-based
 * invalidations), the core translates through those structures, and every DMA
 * lands where it lands on a legacy unit. The counters and the report say which
 * structures were used, so a lowering that silently fell back to legacy tables
 * fails here.
 *
 *   node --import tsx --test test/replay/scalable-mode.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseTrace, type TraceConfig } from '../../src/trace/parse.js';
import { Replayer } from '../../src/replay/replayer.js';
import { guestMetrics, unitMetrics } from '../../src/report/metrics.js';

const TRACE = readFileSync(fileURLToPath(new URL('../../examples/network-small.jsonl', import.meta.url)), 'utf8');

function replay(config: Partial<TraceConfig>, policy?: 'strict' | 'lazy'): { lines: string[]; r: Replayer } {
  const t = parseTrace(TRACE);
  t.header.config = { ...t.header.config, ...config };
  const r = new Replayer(t, policy ? { driver: { policy } } : {});
  const lines: string[] = [];
  for (const op of t.ops) {
    const line = r.step(op);
    if (line !== undefined) lines.push(line);
  }
  r.finish();
  return { lines, r };
}

const legacy = replay({});

const MODES: Array<{ name: string; config: Partial<TraceConfig>; firstStage: boolean }> = [
  { name: 'sm (second-stage tables)', config: { sm: true }, firstStage: false },
  { name: 'sm, pasid', config: { sm: true, pasid: true }, firstStage: false },
  { name: 'sm, flts (first-stage tables)', config: { sm: true, flts: true }, firstStage: true },
  { name: 'sm, nest', config: { sm: true, nest: true }, firstStage: true },
  { name: 'sm, flts, aw 57 (5-level first stage)', config: { sm: true, flts: true, aw: 57 }, firstStage: true },
  { name: 'sm, flts, no caching mode', config: { sm: true, flts: true, cm: false }, firstStage: true },
];

for (const mode of MODES) {
  test(`a network workload replays in ${mode.name}: every DMA lands where it does on a legacy unit`, () => {
    const { lines, r } = replay(mode.config);
    assert.ok(lines.length > 1000);
    const { sm: _sm, flts: _flts, pasid: _pasid, nest: _nest, ...legacyKeys } = mode.config;
    const base = Object.keys(legacyKeys).length > 0 ? replay(legacyKeys).lines : legacy.lines;
    assert.deepEqual(lines, base);
    assert.ok(!lines.some((l) => l.includes('"ok":false')), 'no DMA faults');
    const c = r.iommu.counters();
    const u = unitMetrics(r);
    const g = guestMetrics(r);
    assert.ok((c['qi.type7'] ?? 0) > 0, 'PASID-cache invalidations were submitted');
    assert.equal(c['qi.errors'] ?? 0, 0, 'no invalidation queue error');
    assert.ok(g.invalidations.pasidCache > 0);
    if (mode.firstStage) {
      assert.ok(u.firstStageWalks > 0, 'first-stage tables were walked');
      assert.equal(u.walks, 0, 'no second-stage walk without nesting');
      assert.ok(g.invalidations.pasidIotlb + g.invalidations.pasidIotlbPage > 0, 'PASID-based IOTLB invalidations');
    } else {
      assert.ok(u.walks > 0 && u.firstStageWalks === 0, 'second-stage tables were walked');
    }
  });
}

test('in scalable mode a strict policy invalidates first-stage pages with page-selective PASID-based descriptors', () => {
  const { r } = replay({ sm: true, flts: true, cm: false }, 'strict');
  const g = guestMetrics(r);
  assert.ok(g.invalidations.pasidIotlbPage > 0);
  assert.equal(g.invalidations.iotlbPage, 0, 'no legacy page-selective IOTLB invalidation for a first-stage domain');
});
