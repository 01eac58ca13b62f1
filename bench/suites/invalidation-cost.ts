// invalidation-cost (caches): what one register-based IOTLB invalidation (digest §7.3: IOTLB register with IVT,
// IIRG = global or domain) costs as the IOTLB holds more entries.
//
// Method: for each N, repeat {refill: translate N distinct pages through the batch path (untimed); time exactly
// one mmioWrite of the IOTLB register with process.hrtime (it completes synchronously: IVT reads back clear at
// once); check the IOTLB is empty}. The median of the samples is reported, after a few discarded warm-up samples,
// less the median cost of an empty timed interval (the timer itself, ~0.1 µs).
// benchmark.js is not used here: every timed operation needs an untimed refill before it, which benchmark.js
// cannot exclude without setup functions (and those lose closures: see lib/measure.ts).
//
// Two series, because the core's invalidations scan or clear the whole table (their cost follows the capacity,
// not the number of live entries):
//   live-N      one IOTLB of 65,536 entries holding N live entries;
//   capacity-N  an IOTLB of N entries, filled.

import type { BenchContext, Suite } from '../lib/context.js';
import { buildFillImage, DID, type TableImage } from '../lib/image.js';
import { BatchRunner, createWasmUnit, invalidateIotlb, IOTLB_GLOBAL, iotlbDomain } from '../lib/units.js';
import type { Iommu } from '../../dist/index.js';

const SIZES = [256, 1024, 4096, 16384] as const;
const FIXED_CAPACITY = 65536;
const WARMUP = 3;
const SAMPLES = 31;
const FLOOR_SAMPLES = 1001;
const JIT_WARMUP_CALLS = 10000;

const KINDS = [
  { kind: 'domain', command: iotlbDomain(DID) },
  { kind: 'global', command: IOTLB_GLOBAL },
] as const;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Median µs of `samples` single timed calls of `op` (after `warmup` discarded ones), each preceded by `before`
 * and followed by `after` (both untimed).
 */
function timeMedian(op: () => void, before: () => void, after: () => void, samples: number, warmup: number): number {
  const us: number[] = [];
  for (let i = 0; i < warmup + samples; i++) {
    before();
    const t0 = process.hrtime.bigint();
    op();
    const t1 = process.hrtime.bigint();
    after();
    if (i >= warmup) us.push(Number(t1 - t0) / 1000);
  }
  return median(us);
}

let timerOverhead = 0;
const nothing = (): void => {};

/** A unit with a refill runner whose pages bring the IOTLB to `target` live entries (or as close as 4x pages get). */
function filledUnit(img: TableImage, capacity: number, target: number): { unit: Iommu; refill: BatchRunner; live: number } {
  const unit = createWasmUnit(img, { iotlbEntries: capacity, contextCache: true });
  let pages = target;
  for (;;) {
    const refill = new BatchRunner(unit, img.requests.slice(0, pages));
    refill.runAll();
    const live = unit.stats().iotlbLive;
    if (live >= target || pages >= 4 * target || pages >= img.requests.length) return { unit, refill, live };
    invalidateIotlb(unit, IOTLB_GLOBAL);
    pages = Math.min(img.requests.length, pages * 2);
  }
}

/** Median µs of one invalidation with `command`, refilling before each. */
function timeInvalidation(unit: Iommu, refill: BatchRunner, command: bigint): number {
  const us = timeMedian(() => invalidateIotlb(unit, command), () => refill.runAll(), () => {
    if (unit.stats().iotlbLive !== 0) throw new Error('invalidation-cost: the IOTLB is not empty after invalidation');
  }, SAMPLES, WARMUP);
  return Math.max(0, us - timerOverhead);
}

export const invalidationCost: Suite = {
  name: 'invalidation-cost',
  about: 'caches: register-based IOTLB invalidation vs cache size',
  run(ctx: BenchContext): void {
    const rep = ctx.report;
    const img = buildFillImage();
    const lines: string[] = [
      `fill image: ${img.description}; median of ${SAMPLES} timed invalidations per figure, each after an untimed refill`,
    ];

    timerOverhead = timeMedian(nothing, nothing, nothing, FLOOR_SAMPLES, FLOOR_SAMPLES);
    lines.push(`timer overhead ${(timerOverhead * 1000).toFixed(0)} ns, subtracted from every figure`);
    // The register path alone: a domain invalidation of an empty IOTLB returns before touching the table. Its
    // warm-up also brings the host's register path (mmioWrite, event drain) to its optimised tier before any
    // figure is taken: the first few thousand calls run several times slower.
    {
      const warm = createWasmUnit(img, { iotlbEntries: SIZES[0], contextCache: true });
      const unit = createWasmUnit(img, { iotlbEntries: FIXED_CAPACITY, contextCache: true });
      const command = iotlbDomain(DID);
      for (let i = 0; i < JIT_WARMUP_CALLS; i++) {
        invalidateIotlb(warm, command);
        invalidateIotlb(warm, IOTLB_GLOBAL);
        invalidateIotlb(unit, command);
      }
      const us = timeMedian(() => invalidateIotlb(unit, command), nothing, nothing, FLOOR_SAMPLES, FLOOR_SAMPLES);
      rep.add('invalidation-cost.register-floor', Math.max(0, us - timerOverhead), 'us', null,
        { note: 'domain invalidation of an empty IOTLB: mmioWrite + event, no table work' });
    }

    for (const series of ['live', 'capacity'] as const) {
      const live: string[] = [];
      for (const n of SIZES) {
        ctx.log(`invalidation-cost: ${series} N=${n}`);
        const capacity = series === 'live' ? FIXED_CAPACITY : n;
        const { unit, refill, live: got } = filledUnit(img, capacity, n);
        live.push(`${n}: ${got} live of ${capacity} (${refill.count} pages)`);
        for (const { kind, command } of KINDS) {
          const us = timeInvalidation(unit, refill, command);
          const name = `invalidation-cost.${kind}.${series}-${n}`;
          const base = `invalidation-cost.${kind}.${series}-${SIZES[0]}`;
          rep.add(name, us, 'us', n === SIZES[0] ? null : base,
            { note: series === 'live' ? `${got} live entries, capacity ${capacity}` : `capacity ${capacity}, ${got} live` });
        }
      }
      lines.push(`${series}: ${live.join('; ')}`);
    }
    lines.push('vs baseline: the same invalidation at N = 256 in the same series');
    rep.printSection('invalidation-cost: register-based IOTLB invalidation (µs per invalidation)', lines);
  },
};
