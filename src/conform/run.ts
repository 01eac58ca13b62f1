/**
 * Differential conformance runs: for each seed, generate a trace, replay it
 * through our core and through QEMU's intel-iommu (src/qemu/harness.ts,
 * `jobs` QEMUs at once), compare, count what is known, and shrink and file
 * what is new.
 */
import { QemuError, qemuAvailable, runTraceOnQemuWithStats, type QemuRunOptions, type QemuVersion } from '../qemu/harness.js';
import { replayTrace } from '../replay/replayer.js';
import { parseTrace, type Trace } from '../trace/parse.js';
import { compareTrace, type Verdict } from './compare.js';
import { DEVIATIONS, deviationsFor } from './deviations.js';
import { renderTrace, traceForSeed, type GeneratedTrace } from './gen/index.js';
import { fileDifference } from './report.js';
import { shrinkTrace, signature } from './shrink.js';

export interface SeedResult {
  seed: number;
  status: Verdict['status'] | 'error';
  ops: number;
  verdict?: Verdict;
  /** Milliseconds: our core replaying the trace; QEMU (start-up included); QEMU start-up alone. */
  coreMs: number;
  qemuMs: number;
  qemuStartupMs: number;
  error?: string;
  /** QEMU timed out once on this trace and was run again. */
  retried?: boolean;
  /** The filed (shrunk) trace of a new difference. */
  filed?: string;
}

/** Rewrites QEMU's result lines before comparison (to plant a difference: a canary for the machinery). */
export type QemuAlteration = (lines: string[], trace: Trace) => string[];

/**
 * The canary: QEMU's answer to the first DMA translated (to an address other
 * than its own) into RAM above 8 MiB is moved one page up. A run with it
 * must find a new difference, shrink it and exit 1 (VTD_CONFORM_PLANT=1 in
 * the CLI).
 */
export const plantDifference: QemuAlteration = (lines, trace) => {
  let done = false;
  return lines.map((l) => {
    if (done) return l;
    const o = JSON.parse(l) as { i: number; op: string; ok?: boolean; gpa?: string };
    const op = trace.ops[o.i];
    if (o.op !== 'dma' || op?.op !== 'dma' || !o.ok || o.gpa === undefined || BigInt(o.gpa) < 0x800000n || BigInt(o.gpa) === op.iova) return l;
    done = true;
    return JSON.stringify({ ...o, gpa: '0x' + (BigInt(o.gpa) + 0x1000n).toString(16) });
  });
};

export interface ConformOptions {
  seeds: number;
  /** Rewrites QEMU's answers before comparing (tests, the canary). */
  alterQemu?: QemuAlteration;
  firstSeed?: number;
  hostile?: boolean;
  /** QEMUs run at once [2]. */
  jobs?: number;
  qemu?: QemuRunOptions;
  /** Shrink a new difference before filing it [true]. */
  shrink?: boolean;
  /** Most QEMU runs for one shrink [400]. */
  shrinkRuns?: number;
  /** Stop at the first new difference [false: keep counting]. */
  stopOnNew?: boolean;
  onSeed?: (r: SeedResult) => void;
  /** Called when a new difference has been shrunk and filed. */
  onNew?: (r: SeedResult) => void;
}

export interface ConformSummary {
  seeds: number;
  agree: number;
  known: number;
  new: number;
  errors: number;
  ops: number;
  /** Classified differences (visible or silent, not counting taint follow-ups) per deviation id, and the traces they occur in. */
  deviations: Record<string, { events: number; traces: number }>;
  /** Traces whose comparison stopped at a deviation with taint `all`, per id. */
  diverged: Record<string, number>;
  coreMs: number;
  qemuMs: number;
  qemuStartupMs: number;
  wallMs: number;
  results: SeedResult[];
  qemuVersion?: string;
}

/** QEMU's answers for a trace text, as result lines; QEMU errors become verdict-shaped outcomes. */
/**
 * QEMU's answers for a trace text, as result lines. A run takes about 0.1 s;
 * one that exceeds 10 s is retried once with a longer limit (a QEMU run
 * stalled once in 10,000 and never again on the same trace).
 */
async function qemuSide(text: string, opts: QemuRunOptions): Promise<{ lines: string[]; ms: number; startupMs: number; retried: boolean }> {
  let retried = false;
  for (;;) {
    try {
      const { results, stats } = await runTraceOnQemuWithStats(text, { timeoutMs: retried ? 60_000 : 10_000, ...opts });
      return { lines: results, ms: stats.totalMs, startupMs: stats.startupMs, retried };
    } catch (e) {
      if (retried || !(e instanceof QemuError) || e.code !== 'TIMEOUT' || opts.timeoutMs !== undefined) throw e;
      retried = true;
    }
  }
}

/**
 * A trace on which QEMU died: a known abort (a wait descriptor with SW and IF,
 * an 8-byte write to 0x38/0xa0/0xa8) or a new finding.
 */
function knownAbort(trace: Trace, version: QemuVersion): string | undefined {
  const known = new Set(deviationsFor(version).map((d) => d.id));
  for (const op of trace.ops) {
    if (op.op === 'wr' && op.size === 8 && [0x38, 0xa0, 0xa8].includes(op.reg) && known.has('eight-byte-write-abort')) return 'eight-byte-write-abort';
    if (op.op === 'mem' && known.has('wait-sw-and-if-abort')) {
      for (let i = 0; i + 8 <= op.data.length; i += 8) {
        const lo = new DataView(op.data.buffer, op.data.byteOffset + i, 8).getBigUint64(0, true);
        if ((lo & 0xfn) === 5n && (lo & 0x30n) === 0x30n) return 'wait-sw-and-if-abort';
      }
    }
  }
  return undefined;
}

/** The comment that opens a generated trace: its seed and its mode. */
export function traceLabel(seed: number, g: GeneratedTrace): string[] {
  return [`vtd conform, seed ${seed}: ${g.hostile ? 'HOSTILE trace (malformed values, random registers and descriptors, open windows)' : 'driver-like trace (change -> invalidate -> use)'}`];
}

/** Runs one generated trace through both sides and compares. */
export async function runOne(seed: number, g: GeneratedTrace, qopts: QemuRunOptions = {}, alter?: QemuAlteration): Promise<SeedResult & { text: string; trace?: Trace }> {
  return runText(seed, renderTrace(g, traceLabel(seed, g)), qopts, alter);
}

/** Runs one trace text through both sides and compares (QEMU dying on a known abort counts as that deviation). */
export async function runText(seed: number, text: string, qopts: QemuRunOptions = {}, alter?: QemuAlteration): Promise<SeedResult & { text: string; trace?: Trace }> {
  const trace = parseTrace(text);
  const t0 = performance.now();
  replayTrace(trace);
  const coreMs = performance.now() - t0;
  let q: Awaited<ReturnType<typeof qemuSide>>;
  try {
    q = await qemuSide(text, qopts);
  } catch (e) {
    const err = e instanceof QemuError ? e : undefined;
    if (err?.code === 'QEMU_DIED') {
      const id = knownAbort(trace, qopts.version ?? '7.2');
      if (id) {
        const verdict: Verdict = { status: 'known', opsCompared: 0, events: [{ index: Number(err.details.op ?? 0), op: 'wr', id, silent: true }], diverged: { index: Number(err.details.op ?? 0), id }, windowsObserved: 0, ours: [] };
        return { seed, status: 'known', ops: trace.ops.length, verdict, coreMs, qemuMs: 0, qemuStartupMs: 0, text, trace };
      }
    }
    return { seed, status: 'error', ops: trace.ops.length, coreMs, qemuMs: 0, qemuStartupMs: 0, error: e instanceof Error ? e.message : String(e), text, trace };
  }
  const verdict = compareTrace(trace, alter ? alter(q.lines, trace) : q.lines, { qemuVersion: qopts.version });
  return { seed, status: verdict.status, ops: trace.ops.length, verdict, coreMs, qemuMs: q.ms, qemuStartupMs: q.startupMs, retried: q.retried, text, trace };
}

/** Shrinks a new difference against QEMU and files it. */
export async function shrinkAndFile(seed: number, g: GeneratedTrace, verdict: Verdict, opts: { qemu?: QemuRunOptions; jobs?: number; maxRuns?: number; shrink?: boolean; qemuVersion?: string; alterQemu?: QemuAlteration }): Promise<string> {
  const want = signature(verdict)!;
  if (opts.shrink === false) return fileDifference({ seed, hostile: g.hostile, trace: g, verdict, qemuVersion: opts.qemuVersion });
  const check = async (text: string): Promise<Verdict | undefined> => {
    try {
      const q = await qemuSide(text, opts.qemu ?? {});
      const trace = parseTrace(text);
      return compareTrace(trace, opts.alterQemu ? opts.alterQemu(q.lines, trace) : q.lines, { qemuVersion: opts.qemu?.version });
    } catch {
      return undefined;
    }
  };
  const s = await shrinkTrace(g, want, check, { jobs: opts.jobs, maxRuns: opts.maxRuns });
  return fileDifference({ seed, hostile: g.hostile, trace: s.trace, verdict: s.verdict, shrunkFrom: s.from, runs: s.runs, qemuVersion: opts.qemuVersion });
}

/** Runs `seeds` seeds from `firstSeed`, `jobs` at a time. */
export async function runConformance(opts: ConformOptions): Promise<ConformSummary> {
  const first = opts.firstSeed ?? 1;
  const jobs = Math.max(1, opts.jobs ?? 2);
  const avail = qemuAvailable(opts.qemu ?? {});
  const summary: ConformSummary = {
    seeds: 0, agree: 0, known: 0, new: 0, errors: 0, ops: 0, deviations: {}, diverged: {}, coreMs: 0, qemuMs: 0, qemuStartupMs: 0, wallMs: 0, results: [],
    qemuVersion: avail.ok ? avail.version : undefined,
  };
  const t0 = performance.now();
  let next = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop && next < opts.seeds) {
      const seed = first + next++;
      const g = traceForSeed(seed, { hostile: opts.hostile, scalable: (opts.qemu?.version ?? '7.2') === '10' });
      const r = await runOne(seed, g, opts.qemu, opts.alterQemu);
      const res: SeedResult = { seed, status: r.status, ops: r.ops, verdict: r.verdict, coreMs: r.coreMs, qemuMs: r.qemuMs, qemuStartupMs: r.qemuStartupMs, error: r.error, retried: r.retried };
      summary.seeds++;
      summary.ops += r.ops;
      summary.coreMs += r.coreMs;
      summary.qemuMs += r.qemuMs;
      summary.qemuStartupMs += r.qemuStartupMs;
      if (r.status === 'error') summary.errors++;
      else summary[r.status]++;
      if (r.verdict) {
        const seen = new Set<string>();
        for (const e of r.verdict.events) {
          if (e.tainted) continue;
          const c = (summary.deviations[e.id] ??= { events: 0, traces: 0 });
          c.events++;
          if (!seen.has(e.id)) c.traces++;
          seen.add(e.id);
        }
        if (r.verdict.diverged) summary.diverged[r.verdict.diverged.id] = (summary.diverged[r.verdict.diverged.id] ?? 0) + 1;
      }
      summary.results.push(res);
      opts.onSeed?.(res);
      if (r.status === 'new') {
        if (opts.stopOnNew) stop = true;
        res.filed = await shrinkAndFile(seed, g, r.verdict!, { qemu: opts.qemu, jobs, maxRuns: opts.shrinkRuns, shrink: opts.shrink, qemuVersion: summary.qemuVersion, alterQemu: opts.alterQemu });
        opts.onNew?.(res);
      }
    }
  };
  await Promise.all(Array.from({ length: jobs }, () => worker()));
  summary.results.sort((a, b) => a.seed - b.seed);
  summary.wallMs = performance.now() - t0;
  return summary;
}

/** One seed's outcome in a line: agree, the known deviations it showed, where it diverged. */
export function describeSeed(r: SeedResult): string {
  if (r.status === 'error') return `error: ${r.error?.split('\n')[0]}`;
  const v = r.verdict!;
  if (r.status === 'agree') return `agree (${r.ops} ops)`;
  const ids = [...new Set(v.events.filter((e) => !e.tainted).map((e) => e.id))];
  const parts = [r.status === 'new' ? `NEW difference at op ${v.difference!.index}` : 'known deviations only'];
  if (ids.length) parts.push(`seen: ${ids.join(', ')}`);
  if (v.diverged) parts.push(`diverged at op ${v.diverged.index}: deviation ${v.diverged.id}`);
  return parts.join('; ');
}

/** A human summary of a run. */
export function formatSummary(s: ConformSummary): string {
  const lines: string[] = [];
  const rate = (n: number, ms: number) => (ms > 0 ? (n / (ms / 1000)).toFixed(1) : '-');
  lines.push(`vtd conform: ${s.seeds} traces (${s.ops} ops) against QEMU ${s.qemuVersion ?? '?'} in ${(s.wallMs / 1000).toFixed(1)} s`);
  lines.push(`  agree ${s.agree}, known deviations only ${s.known}, NEW ${s.new}, errors ${s.errors}`);
  lines.push(`  core replay: ${rate(s.seeds, s.coreMs)} traces/s (${(s.coreMs / Math.max(1, s.seeds)).toFixed(2)} ms each); QEMU: ${rate(s.seeds, s.qemuMs)} traces/s per QEMU (${(s.qemuMs / Math.max(1, s.seeds)).toFixed(1)} ms each, ${(s.qemuStartupMs / Math.max(1, s.seeds)).toFixed(1)} ms of it start-up); overall ${rate(s.seeds, s.wallMs)} traces/s`);
  const ids = Object.keys(s.deviations).sort((a, b) => s.deviations[b].traces - s.deviations[a].traces);
  if (ids.length) {
    lines.push('  known differences (traces / events), per deviation:');
    for (const id of ids) {
      const d = DEVIATIONS.find((x) => x.id === id);
      const div = s.diverged[id] ? `, comparison stopped in ${s.diverged[id]}` : '';
      lines.push(`    ${id.padEnd(28)} ${String(s.deviations[id].traces).padStart(6)} / ${String(s.deviations[id].events).padEnd(6)} ${d?.kind ?? ''}${div}`);
    }
  }
  if (s.results.length <= 20) {
    for (const r of s.results) lines.push(`  seed ${r.seed}: ${describeSeed(r)}`);
  }
  for (const r of s.results) if (r.retried) lines.push(`  seed ${r.seed}: QEMU timed out once; the second run completed`);
  for (const r of s.results) if (r.status === 'error') lines.push(`  seed ${r.seed}: error: ${r.error?.split('\n')[0]}`);
  for (const r of s.results) if (r.status === 'new') lines.push(`  seed ${r.seed}: NEW difference at op ${r.verdict?.difference?.index}: ${r.verdict?.difference?.note}`);
  return lines.join('\n');
}
