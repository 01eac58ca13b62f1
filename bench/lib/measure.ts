// Timing: benchmark.js for everything that runs in this process, the native walker's own timer for the C baseline.

import Benchmark from 'benchmark';
import { expectedChecksum, runNative, type NativeImage } from '../native/native.js';
import type { Outcome } from './units.js';

export interface TimingOptions {
  /** benchmark.js maxTime per benchmark, seconds. */
  maxTime: number;
  /** benchmark.js minSamples per benchmark. */
  minSamples: number;
  /** Timed native walker processes per baseline (the median is kept). */
  nativeRuns: number;
  /** Seconds of timed passes per native walker process. */
  nativeSeconds: number;
}

export interface Throughput {
  /** Translations per second (benchmark.js ops/s x translations per op). */
  perSecond: number;
  /** Relative margin of error, percent (benchmark.js `stats.rme`; for native runs, half the min-max spread). */
  rme: number;
  /** Samples (benchmark.js cycles, or native processes). */
  samples: number;
}

/**
 * Times `op` with benchmark.js; each call of `op` must perform `perOp` translations. No setup/teardown
 * options on purpose: with them benchmark.js decompiles `op` into a fresh function and loses its closure.
 */
export function measure(name: string, op: () => unknown, perOp: number, t: TimingOptions): Throughput {
  const bench = new Benchmark(name, op, { maxTime: t.maxTime, minSamples: t.minSamples, initCount: 1 });
  bench.run({ async: false });
  const err = (bench as unknown as { error?: unknown }).error;
  if (err) throw err instanceof Error ? err : new Error(`${name}: ${String(err)}`);
  if (!(bench.hz > 0)) throw new Error(`${name}: benchmark.js measured no rate`);
  return { perSecond: bench.hz * perOp, rme: bench.stats.rme, samples: bench.stats.sample.length };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Times the native walker (mode 0 = walk, 1 = hash lookup) on `img`: a calibration process, then `nativeRuns`
 * processes of about `nativeSeconds` of timed passes each; keeps the median ns/op. Verifies first that the C
 * checksum and fault count equal those of `expected` (the outcomes the Wasm core and the model gave for the same
 * requests) and throws otherwise.
 */
export function measureNative(name: string, img: NativeImage, mode: 0 | 1, expected: Outcome[], t: TimingOptions): Throughput {
  const want = expectedChecksum(expected);
  const wantFaults = expected.filter((o) => !o.ok).length;
  const calib = runNative(img, mode, 3);
  const check = (r: { checksum: bigint; faults: number }): void => {
    if (r.checksum !== want || r.faults !== wantFaults) {
      throw new Error(`${name}: native checksum 0x${r.checksum.toString(16)} with ${r.faults} faults, ` +
        `but the Wasm core and the model give 0x${want.toString(16)} with ${wantFaults} faults`);
    }
  };
  check(calib);
  const iterations = Math.max(1, Math.ceil((t.nativeSeconds * 1e9) / (calib.nsPerOp * img.requests.length)));
  const ns: number[] = [];
  for (let i = 0; i < t.nativeRuns; i++) {
    const r = runNative(img, mode, iterations);
    check(r);
    ns.push(r.nsPerOp);
  }
  const mid = median(ns);
  const spread = ((Math.max(...ns) - Math.min(...ns)) / 2 / mid) * 100;
  return { perSecond: 1e9 / mid, rme: spread, samples: ns.length };
}
