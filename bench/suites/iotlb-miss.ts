// iotlb-miss (caches): the IOTLB is on but every lookup misses, so each translation pays the lookup, the walk and
// the fill (with an eviction). Compared with the uncached walk of walk4 in the same run, which shows what the cache
// costs when it does not help.

import type { BenchContext, Suite } from '../lib/context.js';
import { DID } from '../lib/image.js';
import { measure } from '../lib/measure.js';
import {
  assertSameOutcomes, BatchRunner, counterDelta, createWasmUnit, invalidateIotlb, iotlbDomain, type CacheOptions,
} from '../lib/units.js';
import { NO_CACHES } from './walk4.js';

/** Far fewer entries than the 8,192 pages cycled through: 4-way round-robin sets never keep a page for its next use. */
export const MISS_IOTLB_ENTRIES = 1024;
/** The variant that forces misses by a domain-selective invalidation before each chunk of 4096 requests. */
export const INVALIDATED_IOTLB_ENTRIES = 16384;

export const iotlbMiss: Suite = {
  name: 'iotlb-miss',
  about: 'caches: IOTLB misses (lookup + walk + fill)',
  run(ctx: BenchContext): void {
    const { report: rep, timing } = ctx;
    const img = ctx.walkImage();
    const reqs = img.requests; // the walk4 request list, faults included, so the figures compare with walk4
    const expected = ctx.reference();
    const n = reqs.length;

    let baseline = 'walk4.wasm-batch';
    if (!rep.has(baseline)) { // walk4 not selected: measure its figure here, under another name
      baseline = 'iotlb-miss.nocache-batch';
      const runner = new BatchRunner(createWasmUnit(img, NO_CACHES), reqs);
      const t = measure('iotlb-miss nocache batch', () => runner.runAll(), n, timing);
      rep.add(baseline, t.perSecond, 'translations/s', null, { rme: t.rme, note: 'walk4 wasm-batch (walk4 not run)' });
    }

    const variant = (name: string, caches: CacheOptions, how: string, invalidateEachChunk = false): void => {
      ctx.log(`iotlb-miss: ${name}`);
      const unit = createWasmUnit(img, caches);
      const runner = new BatchRunner(unit, reqs);
      if (invalidateEachChunk) runner.beforeChunk = () => invalidateIotlb(unit, iotlbDomain(DID));
      runner.runAll(); // the IOTLB is as full as it gets
      assertSameOutcomes(`iotlb-miss ${name}`, reqs, runner.outcomes(), expected, 'wasm batch', 'model');
      const before = unit.counters();
      const t = measure(`iotlb-miss ${name}`, () => runner.runAll(), n, timing);
      const after = unit.counters();
      const hits = counterDelta(before, after, 'iotlb.hit');
      const lookups = hits + counterDelta(before, after, 'iotlb.miss');
      const metric = `iotlb-miss.${name}`;
      rep.add(metric, t.perSecond, 'translations/s', baseline, { rme: t.rme, note: how });
      rep.add(`${metric}.hit-rate`, hits / lookups, 'ratio', null, { note: `IOTLB hits / lookups while timed (${lookups} lookups)` });
      if (hits / lookups > 0.01) throw new Error(`iotlb-miss ${name}: ${(100 * hits / lookups).toFixed(2)}% of lookups hit`);
      rep.addRatio(`${metric}/${baseline}`, metric, baseline);
    };

    variant('wasm-batch', { iotlbEntries: MISS_IOTLB_ENTRIES, contextCache: false },
      `IOTLB ${MISS_IOTLB_ENTRIES} entries < ${img.mappedPages} pages; context cache off (as walk4)`);
    variant('wasm-batch-ctxcache', { iotlbEntries: MISS_IOTLB_ENTRIES, contextCache: true },
      `as above with the context cache on (the default)`);
    variant('wasm-batch-dominv', { iotlbEntries: INVALIDATED_IOTLB_ENTRIES, contextCache: false },
      `IOTLB ${INVALIDATED_IOTLB_ENTRIES} entries, domain invalidation (register) before each chunk, included`, true);

    rep.printSection('iotlb-miss: IOTLB on, every lookup misses', [
      `the walk4 requests (${n}, same outcomes as the model); baseline: ${baseline} (no caches)`,
      'ratio < 1 is the cost of the lookup + fill (+ eviction) on a miss relative to a bare walk',
    ]);
  },
};
