/**
 * The `vtd` command line. The only module of src/ that imports Node modules.
 *
 *   vtd replay TRACE.jsonl|-  [--summary] [--counters] [--policy ...] [--shadow ...] [--report F] [--html F]
 *   vtd lower | import | gen | compare   (src/workload/*-cli.ts)
 *   vtd conform --qemu [--seeds N] [--seed S] [--hostile] [--out DIR] [--jobs J] [--no-shrink]
 *
 * `conform` (differential conformance against QEMU 7.2's intel-iommu) is
 * loaded only when used: it needs fast-check (a development dependency), the
 * firmware sources and QEMU, so it runs from a clone of the repository; the
 * package ships neither firmware/ nor dist/conform, and says so. Exit status of conform: 0 when every difference found is a known
 * deviation; 1 when a new one is found (its shrunk trace is printed first)
 * or QEMU could not run; 2 for bad usage.
 *
 * Exit status: 0 success; 2 a malformed trace or bad usage (the message names
 * the line); 1 anything else (an unsupported feature, a core trap).
 */
import { VtdError } from './errors.js';

const USAGE = `usage: vtd <command> [options]

commands:
  conform --qemu         differential conformance against QEMU 7.2's intel-iommu: random traces
                         (fast-check), each replayed through this core and through QEMU, compared;
                         a new difference is shrunk to a minimal trace and printed; runs from a
                         clone of the repository (npm ci there), not from the installed package
      --seeds N          how many traces [100]
      --seed S           the first seed [1]; seed S always gives the same trace
      --hostile          hostile traces (malformed entries, random registers and descriptors,
                         open windows) instead of driver-like ones
      --out DIR          write each new difference (DIR/new-seed-S.jsonl) and summary.json there
      --jobs J           QEMUs run at once [2]
      --no-shrink        print a new difference's whole trace, unshrunk
      --shrink-runs N    most QEMU runs for one shrink [400]
      --quiet            no progress on standard error
  help                   this text
`;

/** Commands that live in their own modules, loaded when used; each exports `usage` and `run`. */
const MODULES: Record<string, () => Promise<{ usage: string; run(args: string[]): number | Promise<number> }>> = {
  replay: () => import('./workload/replay-cli.js'),
  lower: () => import('./workload/lower-cli.js'),
  import: () => import('./workload/import-cli.js'),
  gen: () => import('./workload/gen-cli.js'),
  compare: () => import('./workload/compare-cli.js'),
};

async function usageText(): Promise<string> {
  const [replay, ...extra] = await Promise.all(Object.values(MODULES).map(async (m) => (await m()).usage));
  return USAGE.replace('  conform ', replay + '  conform ').replace('  help ', extra.filter((u) => u).join('') + '  help ');
}

async function runModule(cmd: string, args: string[]): Promise<number> {
  const mod = await MODULES[cmd]();
  try {
    return await mod.run(args);
  } catch (e) {
    // Bad usage of a command: its own options, not the whole list.
    if (e instanceof VtdError && e.code === 'ARGUMENT') {
      process.stderr.write(`vtd: ${e.message}\nusage: vtd ${cmd} ...\n${mod.usage}`);
      return 2;
    }
    return report(e);
  }
}

function conformArgs(args: string[]): Record<string, string | true> {
  const known = new Set(['--qemu', '--seeds', '--seed', '--hostile', '--out', '--jobs', '--no-shrink', '--shrink-runs', '--quiet']);
  const takesValue = new Set(['--seeds', '--seed', '--out', '--jobs', '--shrink-runs']);
  const o: Record<string, string | true> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!known.has(a)) throw new VtdError('ARGUMENT', `conform: unknown argument ${a}`);
    if (takesValue.has(a)) {
      const v = args[++i];
      if (v === undefined || v.startsWith('--')) throw new VtdError('ARGUMENT', `conform: ${a} needs a value`);
      o[a] = v;
    } else o[a] = true;
  }
  for (const k of ['--seeds', '--seed', '--jobs', '--shrink-runs']) {
    const v = o[k];
    if (typeof v === 'string' && !/^\d+$/.test(v)) throw new VtdError('ARGUMENT', `conform: ${k} must be a non-negative integer, got ${v}`);
  }
  if (!o['--qemu']) throw new VtdError('ARGUMENT', 'conform: --qemu is required (QEMU 7.2 intel-iommu is the only reference implemented)');
  if (o['--seeds'] === '0') throw new VtdError('ARGUMENT', 'conform: --seeds must be at least 1');
  if (o['--jobs'] === '0') throw new VtdError('ARGUMENT', 'conform: --jobs must be at least 1');
  return o;
}

async function conform(args: string[]): Promise<number> {
  const o = conformArgs(args);
  const { existsSync, mkdirSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const fromClone = 'conform runs from a clone of the vtd-wasm repository, not from the installed package:'
    + ' it needs fast-check (a development dependency), the test firmware\'s sources (firmware/) and QEMU 7.2.'
    + ' In a clone: npm ci && npx vtd conform --qemu';
  // The package ships neither firmware/ nor dist/conform (package.json "files").
  if (!existsSync(new URL('../firmware/vtd-fw.S', import.meta.url))) {
    process.stderr.write(`vtd: ${fromClone}\n`);
    return 1;
  }
  let mod: typeof import('./conform/run.js');
  try {
    mod = await import('./conform/run.js');
  } catch (e) {
    process.stderr.write(`vtd: ${fromClone} (${(e as Error).message.split('\n')[0]})\n`);
    return 1;
  }
  const { qemuAvailable } = await import('./qemu/harness.js');
  const avail = qemuAvailable();
  if (!avail.ok) {
    process.stderr.write(`vtd: conform: ${avail.reason}\n`);
    return 1;
  }
  const seeds = Number(o['--seeds'] ?? 100), first = Number(o['--seed'] ?? 1), jobs = Number(o['--jobs'] ?? 2);
  const out = typeof o['--out'] === 'string' ? o['--out'] : undefined;
  if (out) mkdirSync(out, { recursive: true });
  const quiet = !!o['--quiet'];
  let done = 0;
  const summary = await mod.runConformance({
    seeds, firstSeed: first, hostile: !!o['--hostile'], jobs, shrink: !o['--no-shrink'],
    // The canary (docs/CONFORMANCE.md): plants a difference in QEMU's answers; the run must find it.
    alterQemu: process.env.VTD_CONFORM_PLANT === '1' ? mod.plantDifference : undefined,
    shrinkRuns: o['--shrink-runs'] !== undefined ? Number(o['--shrink-runs']) : undefined,
    onSeed: (r) => {
      done++;
      if (!quiet && (done % 50 === 0 || r.status === 'new' || r.status === 'error')) {
        process.stderr.write(`vtd conform: ${done}/${seeds} traces${r.status === 'new' ? ` (seed ${r.seed}: NEW difference, shrinking)` : r.status === 'error' ? ` (seed ${r.seed}: ${r.error?.split('\n')[0]})` : ''}\n`);
      }
    },
    onNew: (r) => {
      process.stdout.write(r.filed! + '\n');
      if (out) writeFileSync(join(out, `new-seed-${r.seed}.jsonl`), r.filed!);
    },
  });
  process.stdout.write(mod.formatSummary(summary) + '\n');
  if (out) {
    const { results, ...rest } = summary;
    writeFileSync(join(out, 'summary.json'), JSON.stringify({
      ...rest, hostile: !!o['--hostile'], firstSeed: first,
      results: results.map((r) => ({
        seed: r.seed, status: r.status, ops: r.ops, events: r.verdict?.events.map((e) => `${e.index}:${e.id}${e.silent ? ' (silent)' : ''}${e.tainted ? ' (tainted)' : ''}`),
        diverged: r.verdict?.diverged ? `diverged at op ${r.verdict.diverged.index}: deviation ${r.verdict.diverged.id}` : undefined,
        difference: r.verdict?.difference ? `op ${r.verdict.difference.index}: ${r.verdict.difference.note}` : undefined,
        error: r.error, retried: r.retried || undefined,
      })),
    }, null, 1) + '\n');
  }
  return summary.new > 0 || summary.errors > 0 ? 1 : 0;
}

function report(e: unknown): number {
  if (e instanceof VtdError) {
    process.stderr.write(`vtd: ${e.message}\n`);
    if (e.code === 'ARGUMENT') process.stderr.write(USAGE);
    return e.code === 'TRACE' || e.code === 'ARGUMENT' ? 2 : 1;
  }
  const err = e as NodeJS.ErrnoException;
  if (err && err.code === 'ENOENT') {
    process.stderr.write(`vtd: ${err.message}\n`);
    return 2;
  }
  throw e;
}

/** Runs a command; `conform` is asynchronous (it runs QEMU), the others are not. */
export function main(argv: string[]): number | Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === 'conform') return conform(rest).catch(report);
    if (cmd !== undefined && Object.hasOwn(MODULES, cmd)) return runModule(cmd, rest);
    if (cmd === 'help' || cmd === '--help' || cmd === '-h' || cmd === undefined) {
      return usageText().then((u) => {
        process.stdout.write(u);
        return cmd === undefined ? 2 : 0;
      });
    }
    throw new VtdError('ARGUMENT', `unknown command ${JSON.stringify(cmd)}`);
  } catch (e) {
    return report(e);
  }
}
