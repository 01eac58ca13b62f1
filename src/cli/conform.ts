/**
 * `vtd conform --qemu`: differential conformance against QEMU's
 * intel-iommu, 7.2 or 10 (docs/CONFORMANCE.md). The conformance run itself
 * (src/conform/run.ts) is loaded only when used: it needs fast-check (a
 * development dependency), the firmware sources and QEMU, so it runs from a
 * clone of the repository; the package ships neither firmware/ nor
 * dist/conform, and says so. Exit status: 0 when every difference found is a
 * known deviation; 1 when a new one is found (its shrunk trace is printed
 * first) or QEMU could not run; 2 for bad usage.
 */
import { VtdError } from '../errors.js';
import { AtomicFile, CliError, parseCommandArgs, writeFileWhole, writeStdout } from './util.js';

export const usage = `  conform --qemu         differential conformance against QEMU's intel-iommu: random traces
                         (fast-check), each replayed through this core and through QEMU, compared;
                         a new difference is shrunk to a minimal trace and printed; runs from a
                         clone of the repository (npm ci there), not from the installed package
      --qemu-version V   7.2 (qemu-system-x86_64 on the PATH, or VTD_QEMU) or 10 (run with chroot
                         in the Debian 13 root scripts/install-test-deps.sh makes, VTD_QEMU10_ROOT)
                         [7.2]; the known deviations are that version's
      --seeds N          how many traces [100]
      --seed S           the first seed [1]; seed S always gives the same trace
      --hostile          hostile traces (malformed entries, random registers and descriptors,
                         open windows) instead of driver-like ones
      --out DIR          write each new difference (DIR/new-seed-S.jsonl) and summary.json there
                         (DIR is created if missing)
      --jobs J           QEMUs run at once [2]
      --no-shrink        print a new difference's whole trace, unshrunk
      --shrink-runs N    most QEMU runs for one shrink [400]
      --quiet            no progress on standard error
`;

const CONFORM_OPTIONS = {
  qemu: { type: 'boolean' }, 'qemu-version': { type: 'string' }, seeds: { type: 'string' }, seed: { type: 'string' }, hostile: { type: 'boolean' }, out: { type: 'string' },
  jobs: { type: 'string' }, 'no-shrink': { type: 'boolean' }, 'shrink-runs': { type: 'string' }, quiet: { type: 'boolean' },
} as const;

function conformArgs(args: string[]): Record<string, string | boolean | undefined> {
  const a = parseCommandArgs('conform', args, CONFORM_OPTIONS);
  if (a.positional.length) throw new VtdError('ARGUMENT', `conform: unexpected argument ${a.positional[0]}`);
  const o = a.values as Record<string, string | boolean | undefined>;
  for (const k of ['seeds', 'seed', 'jobs', 'shrink-runs']) {
    const v = o[k];
    if (typeof v === 'string' && !/^\d+$/.test(v)) throw new VtdError('ARGUMENT', `conform: --${k} must be a non-negative integer, got ${v}`);
  }
  if (!o.qemu) throw new VtdError('ARGUMENT', 'conform: --qemu is required (QEMU\'s intel-iommu is the only reference implemented)');
  const v = o['qemu-version'];
  if (v !== undefined && v !== '7.2' && v !== '10') throw new VtdError('ARGUMENT', `conform: --qemu-version must be 7.2 or 10, got ${String(v)}`);
  if (o.seeds === '0') throw new VtdError('ARGUMENT', 'conform: --seeds must be at least 1');
  if (o.jobs === '0') throw new VtdError('ARGUMENT', 'conform: --jobs must be at least 1');
  return o;
}

export async function run(args: string[]): Promise<number> {
  const o = conformArgs(args);
  const { existsSync, mkdirSync } = await import('node:fs');
  const { join } = await import('node:path');
  const fromClone = 'conform runs from a clone of the vtd-wasm repository, not from the installed package:'
    + ' it needs fast-check (a development dependency), the test firmware\'s sources (firmware/) and QEMU 7.2 or 10.'
    + ' In a clone: npm ci && npx vtd conform --qemu';
  // The package ships neither firmware/ nor dist/conform (package.json "files").
  if (!existsSync(new URL('../../firmware/vtd-fw.S', import.meta.url))) {
    process.stderr.write(`vtd: ${fromClone}\n`);
    return 1;
  }
  const out = typeof o.out === 'string' ? o.out : undefined;
  if (out) {
    try {
      mkdirSync(out, { recursive: true });
    } catch (e) {
      throw new CliError(`cannot write ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 2);
    }
    // A directory that cannot take files fails now, before QEMU runs.
    new AtomicFile(join(out, 'summary.json')).abort();
  }
  let mod: typeof import('../conform/run.js');
  try {
    mod = await import('../conform/run.js');
  } catch (e) {
    process.stderr.write(`vtd: ${fromClone} (${(e as Error).message.split('\n')[0]})\n`);
    return 1;
  }
  const { qemuAvailable } = await import('../qemu/harness.js');
  const qemu = { version: (o['qemu-version'] ?? '7.2') as '7.2' | '10' };
  const avail = qemuAvailable(qemu);
  if (!avail.ok) {
    process.stderr.write(`vtd: conform: ${avail.reason}\n`);
    return 1;
  }
  const seeds = Number(o.seeds ?? 100), first = Number(o.seed ?? 1), jobs = Number(o.jobs ?? 2);
  const quiet = !!o.quiet;
  let done = 0;
  const summary = await mod.runConformance({
    seeds, firstSeed: first, hostile: !!o.hostile, jobs, shrink: !o['no-shrink'], qemu,
    // The canary (docs/CONFORMANCE.md): plants a difference in QEMU's answers; the run must find it.
    alterQemu: process.env.VTD_CONFORM_PLANT === '1' ? mod.plantDifference : undefined,
    shrinkRuns: o['shrink-runs'] !== undefined ? Number(o['shrink-runs']) : undefined,
    onSeed: (r) => {
      done++;
      if (!quiet && (done % 50 === 0 || r.status === 'new' || r.status === 'error')) {
        process.stderr.write(`vtd conform: ${done}/${seeds} traces${r.status === 'new' ? ` (seed ${r.seed}: NEW difference, shrinking)` : r.status === 'error' ? ` (seed ${r.seed}: ${r.error?.split('\n')[0]})` : ''}\n`);
      }
    },
    onNew: (r) => {
      writeStdout(r.filed! + '\n');
      if (out) writeFileWhole(join(out, `new-seed-${r.seed}.jsonl`), r.filed!);
    },
  });
  writeStdout(mod.formatSummary(summary) + '\n');
  if (out) {
    const { results, ...rest } = summary;
    writeFileWhole(join(out, 'summary.json'), JSON.stringify({
      ...rest, hostile: !!o.hostile, firstSeed: first,
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
