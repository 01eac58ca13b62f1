// replay: throughput of `vtd replay` on a generated network workload of about a million trace operations
// (JSON lines; attach/map/unmap lowered by the guest-driver model, dma translated), and its peak memory.
// Baseline in the same run: parsing the same file without replaying it. Each configuration runs in a child
// process (the real CLI, streaming the file) so its peak resident memory is its own; the child reports its
// wall time and maxRSS. Batches: one whole replay per sample; the median of the samples is kept.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from '../../src/sources/gen/index.js';
import type { BenchContext, Suite } from '../lib/context.js';

const CHILD = `
import { main } from '../src/cli/main.ts';
import { parseTraceLines } from '../src/trace/parse.ts';
import { fileLines } from '../src/cli/util.ts';
const [mode, file, ...rest] = process.argv.slice(2);
const t0 = performance.now();
let ops = 0;
if (mode === 'parse') {
  const { ops: it } = parseTraceLines(fileLines(file));
  for (const _ of it) ops++;
} else {
  const code = await main(['replay', file, '--no-results', '--no-progress', ...rest]);
  if (code !== 0) process.exit(code);
}
const ms = performance.now() - t0;
process.stderr.write(JSON.stringify({ ms, maxRssKiB: process.resourceUsage().maxRSS }) + '\\n');
`;

function child(script: string, args: string[]): { ms: number; maxRssKiB: number } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, ...args], { cwd: process.cwd(), encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`replay child failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const last = r.stderr.trim().split('\n').pop()!;
  return JSON.parse(last) as { ms: number; maxRssKiB: number };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export const replay: Suite = {
  name: 'replay',
  about: 'vtd replay throughput (trace ops/s, lowering included) and peak memory on ~1M-op JSON-lines workloads',
  run(ctx: BenchContext): void {
    const { report: rep } = ctx;
    const quick = ctx.timing.maxTime < 1;
    const packets = quick ? 40000 : 190000;
    const dir = mkdtempSync(join(tmpdir(), 'vtd-bench-replay-'));
    try {
      const file = join(dir, 'net.jsonl');
      const lines: string[] = [];
      for (const l of generate('network', { seed: 7, ops: packets, cm: true })) lines.push(l);
      writeFileSync(file, lines.join('\n') + '\n');
      const ops = lines.filter((l) => l && !l.startsWith('#')).length - 1;
      lines.length = 0;
      const script = join(process.cwd(), 'bench', `.replay-child-${process.pid}.mts`);
      writeFileSync(script, CHILD);
      try {
        ctx.log(`replay: ${ops} ops (${(statSync(file).size / 1048576).toFixed(0)} MiB of JSON lines)`);
        const runs = quick ? 1 : 3;
        const configs: [string, string[], string][] = [
          ['parse', [], 'parse only (baseline)'],
          ['lowered', [], 'replay: lowering (strict, CM) + translation of every dma'],
          ['shadow-merged', ['--shadow', 'merged'], 'replay + shadow sync, merged mode, type1'],
          ['shadow-qemu', ['--shadow', 'qemu'], 'replay + shadow sync, QEMU-compatible mode, type1'],
        ];
        for (const [name, args, note] of configs) {
          const samples = [];
          for (let i = 0; i < runs; i++) {
            ctx.log(`replay: ${name} ${i + 1}/${runs}`);
            samples.push(child(script, [name === 'parse' ? 'parse' : 'replay', file, ...args]));
          }
          const ms = median(samples.map((s) => s.ms));
          const rss = Math.max(...samples.map((s) => s.maxRssKiB));
          rep.add(`replay.${name}.ops-per-s`, ops / (ms / 1000), 'ops/s', name === 'parse' ? null : 'replay.parse.ops-per-s', { note: `${note}; ${ops} ops` });
          rep.add(`replay.${name}.peak-rss`, rss / 1024, 'MiB', name === 'parse' ? null : 'replay.parse.peak-rss', { note: 'peak resident memory of the whole process (maxRSS)' });
        }
      } finally {
        rmSync(script, { force: true });
      }
      rep.printSection('replay: vtd replay on a generated network workload (JSON lines, streamed)', [
        `${ops} trace ops; ratios are against parsing the same file in the same run`,
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
