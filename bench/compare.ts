// Compares two runs of the benchmark suite (their `--json` lines), e.g. before and after a commit:
//
//   npm run --silent bench -- --json > before.txt     (on the old commit)
//   npm run --silent bench -- --json > after.txt      (on the new commit)
//   node --import tsx bench/compare.ts before.txt after.txt [--threshold 10] [--raw]
//
// Lines that are not JSON metrics (the tables) are ignored. Compared per metric: for translations/s metrics with a
// baseline, their ratio to that baseline (a native or same-run figure, so machine speed and load largely cancel);
// otherwise, or with --raw, the value. A change beyond the threshold (percent, default 10) is flagged; the exit
// status is 0 either way (timing noise is not a test failure).

import { readFileSync } from 'node:fs';
import type { Metric } from './lib/report.js';

function load(path: string): Map<string, Metric> {
  const out = new Map<string, Metric>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const m = JSON.parse(line) as Metric;
      if (typeof m.name === 'string' && typeof m.value === 'number') out.set(m.name, m);
    } catch {
      /* not a metric line */
    }
  }
  if (out.size === 0) throw new Error(`${path}: no metric lines (run the suite with --json)`);
  return out;
}

let raw = false;

/** The figure to compare and what it is. */
function figure(m: Metric): { v: number; what: string } {
  if (!raw && m.unit === 'translations/s' && m.ratio !== null) return { v: m.ratio, what: `ratio to ${m.baseline}` };
  return { v: m.value, what: m.unit };
}

/** Whether a larger figure is better: throughput, ratios and hit rates yes, times no. */
const higherIsBetter = (m: Metric): boolean => m.unit !== 'us';

function main(): void {
  const args = process.argv.slice(2);
  let threshold = 10;
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--threshold') threshold = Number(args[++i]);
    else if (args[i] === '--raw') raw = true;
    else files.push(args[i]);
  }
  if (files.length !== 2 || !(threshold > 0)) {
    console.error('usage: node --import tsx bench/compare.ts BEFORE AFTER [--threshold PERCENT] [--raw]');
    process.exit(2);
  }
  const [a, b] = files.map(load);
  const rows: string[][] = [['metric', 'compared', 'before', 'after', 'change', '']];
  for (const [name, mb] of b) {
    const ma = a.get(name);
    if (!ma) {
      rows.push([name, '', '-', String(figure(mb).v), 'new', '']);
      continue;
    }
    const fa = figure(ma), fb = figure(mb);
    const change = fa.v === fb.v ? 0 : (fb.v / fa.v - 1) * 100;
    const better = higherIsBetter(mb) ? change > 0 : change < 0;
    const flag = Math.abs(change) >= threshold ? (better ? 'better' : 'WORSE') : '';
    rows.push([name, fb.what, fa.v.toPrecision(4), fb.v.toPrecision(4), `${change >= 0 ? '+' : ''}${change.toFixed(1)}%`, flag]);
  }
  for (const name of a.keys()) if (!b.has(name)) rows.push([name, '', String(figure(a.get(name)!).v), '-', 'gone', '']);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd());
  console.log(`\nflagged: change of ${threshold}% or more in the compared figure (higher is better except for µs)` +
    (raw ? '' : '; for a translations/s metric with a baseline, its ratio to that same-run baseline is compared'));
}

main();
