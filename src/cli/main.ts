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
 * Exit status: 0 success, also when the reader of standard output goes away
 * (EPIPE: `vtd replay BIG | head`); 2 bad usage, malformed input (the message
 * names the line) or an output path that cannot be used; 1 anything else (an
 * unsupported feature, a core trap, a failed write). Output files are
 * written whole or not at all (cli-util.ts `AtomicFile`).
 */
import { readFileSync } from 'node:fs';
import { VtdError } from '../errors.js';
import { abortOpenFiles, AtomicFile, CliError, HelpRequested, parseCommandArgs, StdoutClosed, writeFileWhole, writeStdout } from './util.js';

const CONFORM_USAGE = `  conform --qemu         differential conformance against QEMU 7.2's intel-iommu: random traces
                         (fast-check), each replayed through this core and through QEMU, compared;
                         a new difference is shrunk to a minimal trace and printed; runs from a
                         clone of the repository (npm ci there), not from the installed package
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

const USAGE_TAIL = `  help [COMMAND]         this text, or one command's options (also: vtd COMMAND -h, --help)
  --version              the version of vtd

Exit status: 0 success (also when the reader of standard output goes away);
2 bad usage, malformed input (the message names the line) or an output path
that cannot be used; 1 anything else (an unsupported feature, a core trap, a
failed write). Output files are written whole or not at all.
`;

const SHORT_USAGE = `usage: vtd <command> [options]
commands: replay, lower, import, gen, compare, conform, help
'vtd help' lists every option; 'vtd help COMMAND' or 'vtd COMMAND --help' one command's
`;

/** Commands that live in their own modules, loaded when used; each exports `usage` and `run`. */
const MODULES: Record<string, () => Promise<{ usage: string; run(args: string[]): number | Promise<number> }>> = {
  replay: () => import('./replay.js'),
  lower: () => import('./lower.js'),
  import: () => import('./import.js'),
  gen: () => import('./gen.js'),
  compare: () => import('./compare.js'),
};

/** Every command's options. */
async function usageText(): Promise<string> {
  const parts = await Promise.all(Object.values(MODULES).map(async (m) => (await m()).usage));
  return `usage: vtd <command> [options]\n\ncommands:\n${parts.join('')}${CONFORM_USAGE}${USAGE_TAIL}`;
}

/** One command's options. */
async function commandUsage(cmd: string): Promise<string> {
  return `usage: vtd ${cmd} ...\n${cmd === 'conform' ? CONFORM_USAGE : (await MODULES[cmd]()).usage}`;
}

/** The version in package.json (two directories above dist/cli/ and src/cli/ alike). */
function version(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

async function runCommand(cmd: string, args: string[]): Promise<number> {
  try {
    return cmd === 'conform' ? await conform(args) : await (await MODULES[cmd]()).run(args);
  } catch (e) {
    abortOpenFiles();
    if (e instanceof HelpRequested) {
      writeStdout(await commandUsage(cmd));
      return 0;
    }
    // Bad usage of a command: its own options, not the whole list.
    if (e instanceof VtdError && e.code === 'ARGUMENT') {
      process.stderr.write(`vtd: ${e.message}\n${await commandUsage(cmd)}`);
      return 2;
    }
    throw e;
  }
}

const CONFORM_OPTIONS = {
  qemu: { type: 'boolean' }, seeds: { type: 'string' }, seed: { type: 'string' }, hostile: { type: 'boolean' }, out: { type: 'string' },
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
  if (!o.qemu) throw new VtdError('ARGUMENT', 'conform: --qemu is required (QEMU 7.2 intel-iommu is the only reference implemented)');
  if (o.seeds === '0') throw new VtdError('ARGUMENT', 'conform: --seeds must be at least 1');
  if (o.jobs === '0') throw new VtdError('ARGUMENT', 'conform: --jobs must be at least 1');
  return o;
}

async function conform(args: string[]): Promise<number> {
  const o = conformArgs(args);
  const { existsSync, mkdirSync } = await import('node:fs');
  const { join } = await import('node:path');
  const fromClone = 'conform runs from a clone of the vtd-wasm repository, not from the installed package:'
    + ' it needs fast-check (a development dependency), the test firmware\'s sources (firmware/) and QEMU 7.2.'
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
  const avail = qemuAvailable();
  if (!avail.ok) {
    process.stderr.write(`vtd: conform: ${avail.reason}\n`);
    return 1;
  }
  const seeds = Number(o.seeds ?? 100), first = Number(o.seed ?? 1), jobs = Number(o.jobs ?? 2);
  const quiet = !!o.quiet;
  let done = 0;
  const summary = await mod.runConformance({
    seeds, firstSeed: first, hostile: !!o.hostile, jobs, shrink: !o['no-shrink'],
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

/** The exit status of a failed command, after saying why on standard error (never a stack trace for bad input). */
function report(e: unknown): number {
  abortOpenFiles();
  if (e instanceof StdoutClosed) return 0; // the reader has what it wanted (`vtd replay BIG | head`)
  if (e instanceof CliError) {
    process.stderr.write(`vtd: ${e.message}\n`);
    return e.status;
  }
  if (e instanceof VtdError) {
    process.stderr.write(`vtd: ${e.message}\n`);
    if (e.code === 'ARGUMENT') process.stderr.write(SHORT_USAGE);
    return e.code === 'TRACE' || e.code === 'ARGUMENT' ? 2 : 1;
  }
  throw e;
}

/** Writes to standard output that fail because the reader went away end the command quietly. */
let quietInstalled = false;
function quietOnClosedStdout(): void {
  if (quietInstalled) return;
  quietInstalled = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    abortOpenFiles();
    process.exit(0);
  });
}

/** Runs `vtd ARGV`; resolves to the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  quietOnClosedStdout();
  try {
    if (cmd !== undefined && (cmd === 'conform' || Object.hasOwn(MODULES, cmd))) return await runCommand(cmd, rest);
    if (cmd === '--version' || cmd === '-V') {
      if (rest.length) throw new VtdError('ARGUMENT', `--version takes no arguments`);
      writeStdout(`vtd ${version()}\n`);
      return 0;
    }
    if (cmd === 'help' || cmd === '--help' || cmd === '-h') {
      if (rest.length > 1) throw new VtdError('ARGUMENT', 'help takes at most one command');
      const one = rest[0];
      if (one !== undefined && one !== 'conform' && !Object.hasOwn(MODULES, one)) throw new VtdError('ARGUMENT', `help: unknown command ${JSON.stringify(one)}`);
      writeStdout(one === undefined ? await usageText() : await commandUsage(one));
      return 0;
    }
    process.stderr.write(`${cmd === undefined ? '' : `vtd: unknown command ${JSON.stringify(cmd)}\n`}${SHORT_USAGE}`);
    return 2;
  } catch (e) {
    return report(e);
  }
}

