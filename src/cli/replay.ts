/**
 * `vtd replay`: replays a trace (raw ops, workload ops lowered by the
 * guest-driver model, or both), prints its result lines, and optionally
 * shadows the guest's mappings into a VFIO backend model, writes a JSON report
 * and a self-contained HTML report, under one or several strategies.
 *
 * Several strategies (`--policy strict,lazy`, `--shadow merged,qemu`) replay
 * the same parsed trace once each (their cartesian product, in the order
 * given); the result lines printed are the first run's.
 */
import { VtdError } from '../errors.js';
import { Replayer, type ReplayOptions } from '../replay/replayer.js';
import { parseTraceLines, formatRid, type TraceHeader } from '../trace/parse.js';
import { AtomicFile, fileLines, flagsAndValues, parseCommandArgs, Spool, stdinLines, type OptionSpec } from './util.js';
import { parseCostOverrides } from '../report/cost.js';
import { runReport, sampleInterval, Timeline } from '../report/metrics.js';
import { costParams } from '../report/cost.js';
import { renderHtml } from '../report/html.js';
import { formatBytes, formatCount, formatNs } from '../report/svg.js';
import type { ReplayReport, RunReport, Strategy } from '../report/types.js';

export const usage = `  replay TRACE.jsonl|-   replay a trace (trace-format.md) and print its result lines; workload ops
                         (attach/map/unmap) are lowered by the guest-driver model (docs/workloads/driver.md)
      --summary          after the results, a short human summary on standard error
      --counters         with --summary, the core's non-zero counters too
      --policy P[,P]     guest invalidation policy: strict, lazy [lazy; caching mode forces strict]
      --flush-queue N    lazy: unmaps per domain before a flush [256]
      --register-invalidation   the driver invalidates through registers instead of the queue
      --no-superpages    the driver maps 4 KiB pages only
      --shadow M[,M]     shadow every header device's mappings into a VFIO backend model:
                         merged (fewest operations) or qemu (QEMU 7.2's one operation per leaf)
      --backend B        type1 (VFIO type1 v2) or iommufd [type1]
      --dma-entry-limit N    type1 dma_entry_limit: most live mappings per container [65535]
      --max-mappings N   iommufd: most live mappings per IOAS, the VMM's own cap (the kernel has none) [262144]
      --memlock KIB      RLIMIT_MEMLOCK in KiB (ulimit -l units) [unlimited]
      --max-walk-entries N   most guest table entries one shadow sync reads [16777216]
                         (a sync stopped at a limit is counted and warned about; docs/SHADOW.md, Limits)
      --cost NAME=VALUE  override a cost-model parameter (repeatable; docs/workloads/report.md)
      --report FILE      write the JSON report (every run) to FILE (its directory must exist)
      --html FILE        write the self-contained HTML report to FILE (its directory must exist)
      --no-results       do not print result lines
      --progress / --no-progress   progress bar on standard error [on when it is a terminal]
`;

const flag = { type: 'boolean' } as const, value = { type: 'string' } as const;
const OPTIONS: OptionSpec = {
  summary: flag, counters: flag, 'register-invalidation': flag, 'no-superpages': flag, 'no-results': flag, progress: flag, 'no-progress': flag,
  policy: value, 'flush-queue': value, shadow: value, backend: value, 'dma-entry-limit': value, 'max-mappings': value, 'max-walk-entries': value, memlock: value,
  cost: { type: 'string', multiple: true }, report: value, html: value,
};

interface Args {
  file: string;
  flags: Set<string>;
  values: Map<string, string[]>;
}

function parseArgs(args: string[]): Args {
  const parsed = parseCommandArgs('replay', args, OPTIONS);
  const { flags, values } = flagsAndValues(parsed);
  const positional = parsed.positional;
  if (positional.length !== 1) throw new VtdError('ARGUMENT', 'replay takes one trace file (or - for standard input)');
  return { file: positional[0], flags, values };
}

function list<T extends string>(a: Args, key: string, allowed: readonly T[]): T[] | undefined {
  const v = a.values.get(key)?.[0];
  if (v === undefined) return undefined;
  const items = v.split(',');
  for (const x of items) {
    if (!(allowed as readonly string[]).includes(x)) throw new VtdError('ARGUMENT', `replay: ${key} takes ${allowed.join(' or ')} (comma-separated), got ${JSON.stringify(x)}`);
  }
  return [...new Set(items)] as T[];
}

function uint(a: Args, key: string, min: number): number | undefined {
  const v = a.values.get(key)?.[0];
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) throw new VtdError('ARGUMENT', `replay: ${key} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return Number(v);
}

/** A run to do: its strategy and replay options. */
interface Plan { strategy: Strategy; options: ReplayOptions }

/** The runs asked for (the cartesian product of policies and shadow modes), checking every option. */
function plans(a: Args): Plan[] {
  const policies = list(a, '--policy', ['strict', 'lazy'] as const) ?? [undefined];
  const shadows = list(a, '--shadow', ['merged', 'qemu'] as const) ?? [undefined];
  if (a.values.get('--backend')?.[0].includes(',')) throw new VtdError('ARGUMENT', 'replay: --backend takes one backend');
  const backend = list(a, '--backend', ['type1', 'iommufd'] as const)?.[0] ?? 'type1';
  if (!a.values.has('--shadow') && a.values.has('--backend')) throw new VtdError('ARGUMENT', 'replay: --backend needs --shadow');
  const flushQueue = uint(a, '--flush-queue', 1);
  const dmaEntryLimit = uint(a, '--dma-entry-limit', 0);
  const maxMappings = uint(a, '--max-mappings', 0);
  if (maxMappings !== undefined && backend !== 'iommufd') throw new VtdError('ARGUMENT', 'replay: --max-mappings is for --backend iommufd (type1 has --dma-entry-limit)');
  const maxWalkEntries = uint(a, '--max-walk-entries', 1);
  for (const k of ['--dma-entry-limit', '--max-mappings', '--memlock', '--max-walk-entries']) {
    if (a.values.has(k) && !a.values.has('--shadow')) throw new VtdError('ARGUMENT', `replay: ${k} needs --shadow`);
  }
  const memlock = a.values.get('--memlock')?.[0];
  if (memlock !== undefined && memlock !== 'unlimited' && !/^\d+$/.test(memlock)) throw new VtdError('ARGUMENT', `replay: --memlock takes KiB or unlimited, got ${JSON.stringify(memlock)}`);
  const memlockLimitKiB = memlock === undefined || memlock === 'unlimited' ? 'unlimited' as const : BigInt(memlock);
  const out: Plan[] = [];
  for (const policy of policies) {
    for (const shadow of shadows) {
      const options: ReplayOptions = {
        driver: {
          policy, flushQueue,
          invalidation: a.flags.has('--register-invalidation') ? 'register' : 'qi',
          superpages: !a.flags.has('--no-superpages'),
        },
        shadow: shadow ? { mode: shadow, backend, type1: { dmaEntryLimit, memlockLimitKiB }, iommufd: { maxMappings, memlockLimitKiB }, maxWalkEntries } : undefined,
      };
      // The policy in force is known once the driver exists (caching mode forces strict); set after the run.
      const strategy: Strategy = {
        label: '', policy: policy ?? 'lazy', policyForced: false, flushQueue: flushQueue ?? 256,
        shadow: shadow ?? 'none', backend: shadow ? backend : 'none',
      };
      out.push({ strategy, options });
    }
  }
  return out;
}

/** Trace operations in the lines: those neither blank nor comments, less the header. */
function countOps(lines: Iterable<string>): number {
  let n = 0;
  for (const l of lines) {
    const s = l.trim();
    if (s !== '' && s[0] !== '#') n++;
  }
  return Math.max(0, n - 1);
}

/** A progress bar on standard error (only when asked for or when it is a terminal). */
class Progress {
  private last = 0;
  constructor(private readonly total: number, private readonly label: string, private readonly on: boolean) {}
  tick(done: number): void {
    if (!this.on) return;
    const now = Date.now();
    if (now - this.last < 100 && done < this.total) return;
    this.last = now;
    const width = 30;
    const f = this.total ? done / this.total : 1;
    const bar = '#'.repeat(Math.round(f * width)).padEnd(width, '.');
    process.stderr.write(`\r${this.label} [${bar}] ${(f * 100).toFixed(0).padStart(3)}% ${done}/${this.total} ops`);
  }
  end(): void {
    if (this.on) process.stderr.write('\n');
  }
}

/** The `ops=N` and `rate=R/s` a generator recorded in its leading comment, if any. */
function recorded(lines: Iterable<string>): { rate?: number; ops?: number } {
  let k = 0;
  for (const line of lines) {
    if (++k > 20) break;
    if (!/^#\s*vtd-gen\b/.test(line)) continue;
    const rate = /\brate=([0-9.]+)\/s\b/.exec(line);
    const ops = /\b(?:ops|packets|requests)=([0-9]+)\b/.exec(line);
    return { rate: rate ? Number(rate[1]) : undefined, ops: ops ? Number(ops[1]) : undefined };
  }
  return {};
}

export function run(args: string[]): number {
  const a = parseArgs(args);
  // Every option is checked before anything is read or replayed.
  const runs = plans(a);
  const overrides = parseCostOverrides(a.values.get('--cost') ?? []);
  // Output files are opened now: a path that cannot be written fails before the replay.
  const reportFile = a.values.get('--report')?.[0];
  const htmlFile = a.values.get('--html')?.[0];
  const reportOut = reportFile !== undefined ? new AtomicFile(reportFile) : undefined;
  const htmlOut = htmlFile !== undefined ? new AtomicFile(htmlFile) : undefined;
  // Standard input is read once and kept (several runs replay it); a file is streamed once per run.
  const stdin = a.file === '-' ? [...stdinLines()] : undefined;
  const source = (): Iterable<string> => stdin ?? fileLines(a.file);
  // One cheap pass counts the ops (for the progress bar and the timeline's sampling) and finds
  // undecodable bytes; every line is then parsed and checked once, by the replay itself.
  const total = countOps(source());
  const headLines = source()[Symbol.iterator]();
  const { header } = parseTraceLines({ [Symbol.iterator]: () => headLines });
  headLines.return?.(); // closes the file: the runs read it again
  if (a.values.has('--shadow') && !header.config.cm) {
    process.stderr.write('vtd: warning: --shadow on a trace without caching mode: the guest does not invalidate after a map, so the shadow misses new mappings (digest section 8.1)\n');
  }
  const progressOn = a.flags.has('--progress') || (!a.flags.has('--no-progress') && !!process.stderr.isTTY);
  const reports: RunReport[] = [];
  let first: Replayer | undefined;
  let firstMs = 0;
  let workloadOps = 0;
  const every = sampleInterval(total);
  const printResults = !a.flags.has('--no-results');
  // Nothing half-done: result lines wait in a spool until every run has replayed the whole trace;
  // a malformed line or a workload op the guest-driver model refuses, anywhere, prints none.
  const spool = printResults ? new Spool() : undefined;
  try {
  for (let k = 0; k < runs.length; k++) {
    const p = runs[k];
    const { ops } = parseTraceLines(source());
    const r = new Replayer({ header, ops: [] }, p.options);
    const timeline = new Timeline(every, costParams(overrides));
    const progress = new Progress(total, runs.length > 1 ? `replay ${k + 1}/${runs.length}` : 'replay', progressOn);
    // Result lines of the first run go out in blocks as they come (nothing accumulates).
    let pending: string[] = [];
    const flush = (): void => {
      if (pending.length) spool!.write(pending.join('\n') + '\n');
      pending = [];
    };
    const t0 = performance.now();
    timeline.take(r);
    let i = 0, wl = 0;
    for (const op of ops) {
      if (op.op === 'attach' || op.op === 'map' || op.op === 'unmap') wl++;
      const line = r.step(op);
      if (k === 0 && printResults && line !== undefined) {
        pending.push(line);
        if (pending.length >= 4096) flush();
      }
      if (++i % every === 0) {
        timeline.take(r);
        progress.tick(i);
      }
    }
    r.finish();
    const ms = performance.now() - t0;
    flush();
    if (timeline.samples[timeline.samples.length - 1].op !== r.tally.ops) timeline.take(r);
    progress.tick(i);
    progress.end();
    workloadOps = wl;
    const st = p.strategy;
    if (r.driver) {
      st.policy = r.driver.policy;
      st.policyForced = r.driver.policyForced;
    } else st.policy = 'none';
    st.label = `${st.policy}${st.policyForced ? '(forced)' : ''}${st.shadow !== 'none' ? `+${st.shadow}/${st.backend}` : ''}`;
    reports.push(runReport(r, st, timeline, ms, overrides));
    if (k === 0) {
      first = r;
      firstMs = ms;
    }
  }
  spool?.release();
  } finally {
    spool?.discard();
  }
  const rec = recorded(source());
  const durationSeconds = rec.rate && rec.ops ? rec.ops / rec.rate : undefined;
  if (durationSeconds) for (const rep of reports) rep.cost.cpuShare = rep.cost.totalNs / 1e9 / durationSeconds;
  const report: ReplayReport = {
    vtdReport: 1,
    trace: {
      name: a.file, ops: total, workloadOps,
      aw: header.config.aw, cm: header.config.cm, devices: header.devices.map(formatRid),
      rate: rec.rate, durationSeconds,
    },
    runs: reports,
  };
  if (reportOut) {
    reportOut.write(JSON.stringify(report, null, 1) + '\n');
    reportOut.commit();
  }
  if (htmlOut) {
    htmlOut.write(renderHtml(report));
    htmlOut.commit();
  }
  if (a.flags.has('--summary') && first) process.stderr.write(summary(a, header, first, firstMs, reports) + '\n');
  for (const rep of reports) {
    const w = limitWarning(rep);
    if (w) process.stderr.write(`vtd: warning: ${w}\n`);
  }
  const written = [reportFile, htmlFile].filter((f) => f !== undefined);
  if (written.length) process.stderr.write(`vtd: report written to ${written.join(' and ')}\n`);
  return 0;
}

/** What the options are called on the command line, by the limit's name in the metrics. */
const LIMIT_OPTIONS: Record<string, string> = {
  'walk-entries': '--max-walk-entries', 'dma_entry_limit': '--dma-entry-limit', 'max-mappings': '--max-mappings', 'RLIMIT_MEMLOCK': '--memlock',
};

/** A run whose shadow syncs stopped at a limit: which limits, how often, and the errnos the backend returned. */
export function limitWarning(rep: RunReport): string | undefined {
  const b = rep.backend;
  if (!b || !b.incompleteSyncs) return undefined;
  const which = Object.entries(b.limits ?? {}).map(([k, v]) => `${k} (${LIMIT_OPTIONS[k] ?? k}) ${v}`).join(', ');
  const errs = Object.entries(b.errors).filter(([k]) => k === 'ENOSPC' || k === 'ENOMEM').map(([k, v]) => `${k} ${v}`).join(', ');
  return `run ${rep.strategy.label}: the shadow is incomplete: ${b.incompleteSyncs} sync(s) stopped at a limit: ${which}${errs ? `; backend errors ${errs}` : ''}`;
}

const num = formatCount, bytes = formatBytes, ns = formatNs;

function summary(a: Args, header: TraceHeader, r: Replayer, ms: number, reports: RunReport[]): string {
  const c = header.config;
  const t = r.tally;
  const s = r.iommu.stats();
  const lines = [
    `-- summary: ${a.file}`,
    `unit: aw ${c.aw}${c.sm ? `, scalable mode${c.nest ? ' (nested)' : c.flts ? ' (first-stage)' : ''}${c.pasid ? ', PASID' : ''}` : ''}${c.cm ? ', caching mode' : ''}${c.ir ? ', interrupt remapping' : ''}, ${c.nfr} fault record(s), RAM 0x${c.ram.toString(16)}; devices ${header.devices.map(formatRid).join(' ')}`,
    `${t.ops} operations, ${t.results} result lines in ${ms.toFixed(1)} ms`,
    `DMA: ${t.dmaOk} translated, ${t.dmaFault} faulted (reason reported), ${t.dmaSuppressed} suppressed by FPD, ${t.dmaBlocked} blocked without fault`,
    `MSI: ${t.msiOk} delivered, ${t.msiBlocked} blocked`,
    `interrupts sent: ${t.faultEvents} fault event(s), ${t.completionEvents} invalidation completion(s)`,
    `core: ${s.guestFrames} guest frames held, IOTLB ${s.iotlbLive}/${s.iotlbCapacity}, context cache ${s.contextCacheLive}, ${(s.memoryBytes / 1048576).toFixed(1)} MiB linear memory`,
  ];
  for (const rep of reports) {
    const g = rep.guest;
    const inv = g.invalidations;
    const workload = rep.strategy.policy !== 'none';
    if (!workload && !rep.backend && reports.length === 1) break;
    lines.push(`run ${rep.strategy.label}:`);
    if (workload) {
      lines.push(`  guest: ${num(g.attaches)} attaches, ${num(g.maps)} maps (${bytes(g.mapBytes)}), ${num(g.unmaps)} unmaps (${bytes(g.unmapBytes)}), ${num(g.flushes)} flush-queue flushes`);
    }
    lines.push(`  invalidations: IOTLB ${num(inv.iotlbPage)} page, ${num(inv.iotlbDomain)} domain, ${num(inv.iotlbGlobal)} global; context ${num(inv.contextDevice + inv.contextDomain + inv.contextGlobal)}; IEC ${num(inv.iec)}; ${
      inv.pasidIotlb + inv.pasidIotlbPage + inv.pasidCache ? `PASID-based IOTLB ${num(inv.pasidIotlbPage)} page, ${num(inv.pasidIotlb)} PASID; PASID cache ${num(inv.pasidCache)}; ` : ''}${num(g.registerWrites)} register writes`);
    const u = rep.unit;
    const rate = (h: number, m: number) => (h + m ? `${((100 * h) / (h + m)).toFixed(1)}%` : 'n/a');
    lines.push(`  unit: ${num(u.translations)} translations, IOTLB hit rate ${rate(u.iotlbHits, u.iotlbMisses)}, context ${rate(u.contextHits, u.contextMisses)}, ${num(u.walks)} walks, ${
      u.firstStageWalks ? `${num(u.firstStageWalks)} first-stage walks (${num(u.adWrites)} A/D writes), ` : ''}${num(u.faults)} faults`);
    const b = rep.backend;
    if (b) {
      const errs = Object.entries(b.errors).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
      lines.push(`  backend: ${num(b.maps)} maps (${bytes(b.mapBytes)}), ${num(b.unmaps)} unmaps (${bytes(b.unmapBytes)}); live high-water ${num(b.liveHighWater)}${b.liveLimit !== null ? ` of ${num(b.liveLimit)}` : ''}, pinned high-water ${bytes(b.pinnedHighWater)}${b.pinnedLimit !== null ? ` of ${bytes(b.pinnedLimit)}` : ''}; errors: ${errs}`);
      lines.push(`  shadow: ${num(b.syncWalks)} walks reading ${num(b.syncEntriesRead)} entries, ${num(b.redundantAvoided)} redundant operations avoided, ${num(b.unmappedWindows)} unmapped windows, ${num(b.notRam)} non-RAM mappings refused`);
      if (b.incompleteSyncs) lines.push(`  incomplete: ${num(b.incompleteSyncs)} sync(s) stopped at a limit (${Object.entries(b.limits ?? {}).map(([k, v]) => `${k} ${num(v)}`).join(', ')})`);
    }
    const share = rep.cost.cpuShare !== undefined ? `; at the recorded rate, the modelled work keeps ${rep.cost.cpuShare.toFixed(2)} CPUs busy (modelled time / wall time)` : '';
    lines.push(`  modelled cost: ${ns(rep.cost.totalNs)}${rep.cost.perGuestOpNs ? ` (${ns(rep.cost.perGuestOpNs)} per guest map/unmap${share})` : share}; replay ${num(rep.opsPerSecond)} ops/s`);
  }
  if (a.flags.has('--counters')) {
    for (const [k, v] of Object.entries(r.iommu.counters())) if (v) lines.push(`  ${k} ${v}`);
  }
  return lines.join('\n');
}
