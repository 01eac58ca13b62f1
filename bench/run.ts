// The benchmark suite of vtd-wasm (see bench/README.md).
//
//   npm run bench                      build, run every suite, print the tables
//   npm run bench -- --json            ... then one JSON object per metric and line
//   npm run bench -- --suite walk4,iotlb-hit    only these suites
//   npm run bench -- --quick           shorter timing (smoke test; figures are noisier)
//
// Exit status 1 when a suite aborted (a verification failure: the implementations disagree, or a cache did not
// behave as the suite needs).

import { BenchContext, type Suite } from './lib/context.js';
import type { TimingOptions } from './lib/measure.js';
import { Report } from './lib/report.js';
import { invalidationCost } from './suites/invalidation-cost.js';
import { iotlbHit } from './suites/iotlb-hit.js';
import { iotlbMiss } from './suites/iotlb-miss.js';
import { msi } from './suites/msi.js';
import { replay } from './suites/replay.js';
import { shadow } from './suites/shadow.js';
import { walk4 } from './suites/walk4.js';
import { smWalk } from './suites/sm-walk.js';

const SUITES: Suite[] = [walk4, smWalk, iotlbHit, iotlbMiss, invalidationCost, msi, shadow, replay];

/**
 * About 75 s in all on 2 cores, under the 3-minute budget: 10 benchmark.js benchmarks of maxTime each (plus one
 * cycle), 3 native baselines of nativeRuns x nativeSeconds, a few seconds of image building and verification.
 */
const TIMING: TimingOptions = { maxTime: 4, minSamples: 10, nativeRuns: 7, nativeSeconds: 0.4 };
const QUICK: TimingOptions = { maxTime: 0.3, minSamples: 3, nativeRuns: 2, nativeSeconds: 0.05 };

function usage(msg: string): never {
  console.error(`${msg}\nusage: node --import tsx bench/run.ts [--json] [--quick] [--suite ${SUITES.map((s) => s.name).join(',')}]`);
  process.exit(2);
}

function parseArgs(argv: string[]): { json: boolean; quick: boolean; suites: Suite[] } {
  let json = false, quick = false;
  let names: string[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') json = true;
    else if (a === '--quick') quick = true;
    else if (a === '--suite' || a.startsWith('--suite=')) {
      const v = a === '--suite' ? argv[++i] : a.slice('--suite='.length);
      if (!v) usage('--suite needs a list of suite names');
      names = v.split(',').filter(Boolean);
    } else usage(`unknown argument ${a}`);
  }
  const unknown = (names ?? []).filter((n) => !SUITES.some((s) => s.name === n));
  if (unknown.length) usage(`unknown suite ${unknown.join(', ')}`);
  return { json, quick, suites: names ? SUITES.filter((s) => names.includes(s.name)) : SUITES };
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const timing = args.quick ? QUICK : TIMING;
  const report = new Report();
  const ctx = new BenchContext(report, timing);
  const started = performance.now();
  console.log(`vtd-wasm benchmarks: node ${process.version}, ${process.platform}/${process.arch}; ` +
    `benchmark.js maxTime ${timing.maxTime} s, minSamples ${timing.minSamples}; ` +
    `native: median of ${timing.nativeRuns} runs of ~${timing.nativeSeconds} s`);

  const failed: string[] = [];
  for (const suite of args.suites) {
    const t0 = performance.now();
    try {
      suite.run(ctx);
      ctx.log(`${suite.name}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      failed.push(suite.name);
      const msg = e instanceof Error ? e.stack ?? e.message : String(e);
      // A suite aborts as a whole: the metrics it had already added are dropped, so no figure of a run that
      // failed verification reaches the tables or the JSON.
      const dropped = report.discardSection();
      const banner = `!!!!!!!! SUITE ${suite.name} ABORTED (${dropped} metrics dropped) !!!!!!!!`;
      console.error(`\n${banner}\n${msg}\n${banner}\n`);
      console.log(`\n== ${suite.name}: ABORTED, see stderr`);
    }
  }
  console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(1)} s` +
    (failed.length ? `; ABORTED suites: ${failed.join(', ')}` : ''));

  if (args.json) for (const line of report.jsonLines()) console.log(line);
  if (failed.length) process.exitCode = 1;
}

main();
