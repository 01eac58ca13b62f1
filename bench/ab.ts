// A/B in one process: IOTLB-hit throughput of two builds of vtd-wasm (two checkouts, each built with
// `npm run build`), interleaved, so that CPU frequency and placement, which make separate benchmark
// processes on this 2-core machine differ by up to 1.6x, affect both alike. Each build runs its own
// bench/lib (walk image, reference outcomes, runners) against its own dist/.
//
//   node --import tsx bench/ab.ts BASELINE_ROOT CANDIDATE_ROOT [batch|single] [pairs]
//
// Prints the median and range over the pairs of candidate / baseline (translations per second).
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [baseRoot, candRoot, mode = 'batch', pairsArg = '15'] = process.argv.slice(2);
const pairs = Number(pairsArg);
if (!baseRoot || !candRoot || (mode !== 'batch' && mode !== 'single') || !Number.isInteger(pairs) || pairs < 1) {
  console.error('usage: node --import tsx bench/ab.ts BASELINE_ROOT CANDIDATE_ROOT [batch|single] [pairs]');
  process.exit(2);
}

interface Runner { runAll(): number }

async function warmUnit(root: string): Promise<{ runner: Runner; n: number }> {
  const url = (p: string) => pathToFileURL(resolve(root, p)).href;
  const { BenchContext } = await import(url('bench/lib/context.ts'));
  const units = await import(url('bench/lib/units.ts'));
  const ctx = new BenchContext({ log() {} }, {});
  const img = ctx.walkImage();
  const all = ctx.reference();
  const reqs = img.requests.filter((_: unknown, i: number) => all[i].ok); // faulting requests are never cached
  const unit = units.createWasmUnit(img, { iotlbEntries: 131072, contextCache: true });
  const runner: Runner = mode === 'batch' ? new units.BatchRunner(unit, reqs) : new units.SingleRunner(unit, reqs);
  runner.runAll(); // warm: every page walked once and cached
  return { runner, n: reqs.length };
}

function rate(u: { runner: Runner; n: number }): number {
  const t0 = process.hrtime.bigint();
  let k = 0;
  while (process.hrtime.bigint() - t0 < 300_000_000n) { u.runner.runAll(); k++; }
  return (k * u.n) / (Number(process.hrtime.bigint() - t0) / 1e9);
}

const base = await warmUnit(baseRoot), cand = await warmUnit(candRoot);
const ratios: number[] = [];
for (let i = 0; i < pairs; i++) {
  const a = rate(base), b = rate(cand);
  ratios.push(b / a);
}
ratios.sort((x, y) => x - y);
const median = ratios[Math.floor(ratios.length / 2)];
console.log(`IOTLB hits, ${mode} path: candidate / baseline ${median.toFixed(3)} [${ratios[0].toFixed(3)}-${ratios[ratios.length - 1].toFixed(3)}], median and range of ${pairs} interleaved pairs of 0.3 s`);
