/**
 * The cost model: linear in the counts, defaults with sources, overrides
 * validated and marked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COST_DEFAULTS, costParams, modelCost, parseCostOverrides } from '../../src/report/cost.js';
import type { BackendMetrics, GuestMetrics } from '../../src/report/types.js';

function guest(maps: number, unmaps: number, registerWrites: number): GuestMetrics {
  return {
    attaches: 1, maps, unmaps, mapBytes: maps * 4096, unmapBytes: unmaps * 4096,
    invalidations: { iotlbGlobal: 0, iotlbDomain: 0, iotlbPage: 0, contextGlobal: 0, contextDomain: 0, contextDevice: 0, iec: 0, wait: 0, pasidIotlb: 0, pasidIotlbPage: 0, pasidCache: 0 },
    flushes: 0, registerWrites, tableWrites: 0, dmas: 0, dmaFaults: 0, msis: 0,
  };
}

function backend(maps: number, unmaps: number, mapBytes: number, entries: number): BackendMetrics {
  return {
    maps, unmaps, mapBytes, unmapBytes: mapBytes, mapSizeHistogram: {}, unmapSizeHistogram: {}, liveHighWater: 0, liveLimit: 65535,
    pinnedHighWater: 0, pinnedLimit: null, errors: {}, syncWalks: 0, syncEntriesRead: entries, redundantAvoided: 0, unmappedWindows: 0, notRam: 0,
  };
}

test('every default names its source', () => {
  for (const [k, p] of Object.entries(COST_DEFAULTS)) {
    assert.ok(p.source.length > 10, k);
    assert.ok(p.value > 0, k);
  }
  assert.match(COST_DEFAULTS.trapCycles.source, /ATC 2011/);
  assert.match(COST_DEFAULTS.vfioUnmapNs.source, /14 us/);
});

test('one strict map+unmap under emulation costs the ATC 2011 figure: 35,000 cycles', () => {
  // A strict map+unmap: two guest operations and one trapped invalidation (one IQT write).
  const c = modelCost(guest(1, 1, 1), null, costParams({ cpuGHz: 1 }));
  assert.equal(c.totalNs, 3450 * 2 + 28100);
  assert.equal(c.perGuestOpNs, (3450 * 2 + 28100) / 2);
});

test('backend items: ioctls, pinned pages, walk entries', () => {
  const p = costParams();
  const c = modelCost(guest(0, 0, 0), backend(2, 3, 8192 * 2, 10), p);
  const by = Object.fromEntries(c.items.map((i) => [i.event, i]));
  assert.equal(by.vfioMapNs.totalNs, 2 * 14000);
  assert.equal(by.vfioUnmapNs.totalNs, 3 * 14000);
  assert.equal(by.pinPageNs.count, 4);
  assert.equal(by.walkEntryNs.totalNs, 1000);
  assert.equal(c.totalNs, c.items.reduce((s, i) => s + i.totalNs, 0));
  assert.equal(c.perGuestOpNs, 0, 'no guest ops: no per-op figure');
});

test('overrides: parsed, validated, marked as overrides', () => {
  const o = parseCostOverrides(['vfioUnmapNs=5000', 'cpuGHz=2.5']);
  assert.deepEqual(o, { vfioUnmapNs: 5000, cpuGHz: 2.5 });
  const p = costParams(o);
  assert.equal(p.vfioUnmapNs.value, 5000);
  assert.match(p.vfioUnmapNs.source, /^override/);
  assert.throws(() => parseCostOverrides(['bogus=1']), /unknown parameter bogus/);
  assert.throws(() => parseCostOverrides(['vfioUnmapNs=-1']), /name=value/);
  assert.throws(() => parseCostOverrides(['vfioUnmapNs']), /name=value/);
  assert.throws(() => parseCostOverrides(['cpuGHz=0']), /cpuGHz/);
});
