/**
 * Comparing replay reports: the catalogue of metrics a run is summarised by
 * (shared with the HTML report's summary table), reading and checking a
 * report's JSON, comparing two reports run by run (`vtd compare`), and
 * combining two reports into one for the HTML report.
 *
 * Browser-safe.
 */
import { VtdError } from '../errors.js';
import type { ReplayReport, RunReport } from './types.js';
import { formatBytes, formatCount, formatMs, formatNs, formatPercent, formatRatio } from './svg.js';

// ------------------------------------------------------------------ the metrics of a run

/** How a metric's value reads. */
export type MetricKind = 'count' | 'bytes' | 'ns' | 'ms' | 'percent' | 'rate';

/**
 * A metric's value in a run: a number, or a word saying why there is none
 * ('n/a' for a rate with no events, 'no limit', 'no backend').
 */
export type MetricValue = number | string;

export interface Metric {
  /** Table section: 'guest', 'unit', 'backend', 'cost', 'replay'. */
  group: string;
  name: string;
  kind: MetricKind;
  /** Measured on the machine that replayed (wall time): noisy, never flagged as a difference. */
  measured?: boolean;
  value(run: RunReport): MetricValue;
}

/** Hits as a percentage of lookups; 'n/a' when there were none. */
export function hitRate(hits: number, misses: number): MetricValue {
  return hits + misses > 0 ? (100 * hits) / (hits + misses) : 'n/a';
}

const NO_BACKEND = 'no backend';

function guest(name: string, kind: MetricKind, get: (r: RunReport) => MetricValue): Metric {
  return { group: 'guest', name, kind, value: get };
}

function unit(name: string, kind: MetricKind, get: (r: RunReport) => MetricValue): Metric {
  return { group: 'unit', name, kind, value: get };
}

function backend(name: string, kind: MetricKind, get: (b: NonNullable<RunReport['backend']>) => MetricValue): Metric {
  return { group: 'backend', name, kind, value: (r) => (r.backend ? get(r.backend) : NO_BACKEND) };
}

const FIXED_METRICS: readonly Metric[] = [
  guest('attaches', 'count', (r) => r.guest.attaches),
  guest('maps', 'count', (r) => r.guest.maps),
  guest('unmaps', 'count', (r) => r.guest.unmaps),
  guest('bytes mapped', 'bytes', (r) => r.guest.mapBytes),
  guest('bytes unmapped', 'bytes', (r) => r.guest.unmapBytes),
  guest('invalidations: IOTLB page', 'count', (r) => r.guest.invalidations.iotlbPage),
  guest('invalidations: IOTLB domain', 'count', (r) => r.guest.invalidations.iotlbDomain),
  guest('invalidations: IOTLB global', 'count', (r) => r.guest.invalidations.iotlbGlobal),
  guest('invalidations: context device', 'count', (r) => r.guest.invalidations.contextDevice),
  guest('invalidations: context domain', 'count', (r) => r.guest.invalidations.contextDomain),
  guest('invalidations: context global', 'count', (r) => r.guest.invalidations.contextGlobal),
  guest('invalidations: IEC', 'count', (r) => r.guest.invalidations.iec),
  guest('invalidations: PASID-based IOTLB, PASID', 'count', (r) => r.guest.invalidations.pasidIotlb),
  guest('invalidations: PASID-based IOTLB page', 'count', (r) => r.guest.invalidations.pasidIotlbPage),
  guest('invalidations: PASID cache', 'count', (r) => r.guest.invalidations.pasidCache),
  guest('invalidation waits', 'count', (r) => r.guest.invalidations.wait),
  guest('flush-queue flushes', 'count', (r) => r.guest.flushes),
  guest('register writes (traps)', 'count', (r) => r.guest.registerWrites),
  guest('table writes (8-byte)', 'count', (r) => r.guest.tableWrites),
  guest('DMAs', 'count', (r) => r.guest.dmas),
  guest('DMA faults', 'count', (r) => r.guest.dmaFaults),
  guest('MSIs', 'count', (r) => r.guest.msis),
  unit('translations', 'count', (r) => r.unit.translations),
  unit('IOTLB hit rate', 'percent', (r) => hitRate(r.unit.iotlbHits, r.unit.iotlbMisses)),
  unit('context-cache hit rate', 'percent', (r) => hitRate(r.unit.contextHits, r.unit.contextMisses)),
  unit('walks', 'count', (r) => r.unit.walks),
  unit('entries read', 'count', (r) => r.unit.entriesRead),
  unit('faults', 'count', (r) => r.unit.faults),
  backend('maps', 'count', (b) => b.maps),
  backend('unmaps', 'count', (b) => b.unmaps),
  backend('bytes mapped', 'bytes', (b) => b.mapBytes),
  backend('bytes unmapped', 'bytes', (b) => b.unmapBytes),
  backend('live mappings high-water', 'count', (b) => b.liveHighWater),
  backend('live mapping limit', 'count', (b) => b.liveLimit ?? 'no limit'),
  backend('pinned high-water', 'bytes', (b) => b.pinnedHighWater),
  backend('pinned limit', 'bytes', (b) => b.pinnedLimit ?? 'no limit'),
];

const BACKEND_TAIL: readonly Metric[] = [
  backend('shadow walks', 'count', (b) => b.syncWalks),
  backend('shadow entries read', 'count', (b) => b.syncEntriesRead),
  backend('redundant operations avoided', 'count', (b) => b.redundantAvoided),
  backend('unmapped windows', 'count', (b) => b.unmappedWindows),
  backend('non-RAM mappings refused', 'count', (b) => b.notRam),
];

const COST_METRICS: readonly Metric[] = [
  { group: 'cost', name: 'modelled time', kind: 'ns', value: (r) => r.cost.totalNs },
  { group: 'cost', name: 'modelled time per guest map/unmap', kind: 'ns', value: (r) => (r.guest.maps + r.guest.unmaps > 0 ? r.cost.perGuestOpNs : 'n/a') },
];

const REPLAY_METRICS: readonly Metric[] = [
  { group: 'replay', name: 'wall time', kind: 'ms', measured: true, value: (r) => r.wallMs },
  { group: 'replay', name: 'throughput (trace ops/s)', kind: 'rate', measured: true, value: (r) => r.opsPerSecond },
];

/**
 * The metrics summarising these runs, in table order: the fixed ones, a row
 * per errno any backend saw, and the CPU share when any run has one.
 */
export function metricsFor(runs: readonly RunReport[]): Metric[] {
  const errnos = [...new Set(runs.flatMap((r) => (r.backend ? Object.keys(r.backend.errors) : [])))].sort();
  const errors = errnos.map((e) => backend(`errors: ${e}`, 'count', (b) => b.errors[e] ?? 0));
  const share: Metric[] = runs.some((r) => r.cost.cpuShare !== undefined)
    ? [{ group: 'cost', name: 'CPUs busy at the recorded rate (modelled time / wall time)', kind: 'count', value: (r) => (r.cost.cpuShare !== undefined ? r.cost.cpuShare : 'n/a') }]
    : [];
  return [...FIXED_METRICS, ...errors, ...BACKEND_TAIL, ...COST_METRICS, ...share, ...REPLAY_METRICS];
}

/** A metric value as text: numbers in their units, words as they are. */
export function formatValue(kind: MetricKind, v: MetricValue): string {
  if (typeof v === 'string') return v;
  switch (kind) {
    case 'bytes': return formatBytes(v);
    case 'ns': return formatNs(v);
    case 'ms': return formatMs(v);
    case 'percent': return formatPercent(v);
    case 'rate': return formatCount(Math.round(v));
    default: return formatCount(v);
  }
}

// ------------------------------------------------------------------ reading a report

type Shape =
  | 'number' | 'string' | 'boolean'
  | { nullable: Shape }
  | { optional: Shape }
  | { array: Shape }
  | { record: Shape }
  | { oneOf: readonly string[] }
  | { [field: string]: Shape };

const NUM = 'number' as const;
const nums = (...fields: string[]): Record<string, Shape> => Object.fromEntries(fields.map((f) => [f, NUM]));

/** What a version-1 report must hold (fields beyond these are ignored). */
const REPORT_SHAPE: Shape = {
  trace: { name: 'string', ops: NUM, workloadOps: NUM, aw: NUM, cm: 'boolean', devices: { array: 'string' }, rate: { optional: NUM }, durationSeconds: { optional: NUM } },
  runs: {
    array: {
      strategy: {
        label: 'string', policy: { oneOf: ['strict', 'lazy', 'none'] }, policyForced: 'boolean', flushQueue: NUM,
        shadow: { oneOf: ['merged', 'qemu', 'none'] }, backend: { oneOf: ['type1', 'iommufd', 'none'] },
      },
      guest: {
        ...nums('attaches', 'maps', 'unmaps', 'mapBytes', 'unmapBytes', 'flushes', 'registerWrites', 'tableWrites', 'dmas', 'dmaFaults', 'msis'),
        invalidations: nums('iotlbGlobal', 'iotlbDomain', 'iotlbPage', 'contextGlobal', 'contextDomain', 'contextDevice', 'iec', 'wait', 'pasidIotlb', 'pasidIotlbPage', 'pasidCache'),
      },
      unit: nums('translations', 'walks', 'entriesRead', 'iotlbHits', 'iotlbMisses', 'contextHits', 'contextMisses', 'faults'),
      backend: {
        nullable: {
          ...nums('maps', 'unmaps', 'mapBytes', 'unmapBytes', 'liveHighWater', 'pinnedHighWater', 'syncWalks', 'syncEntriesRead', 'redundantAvoided', 'unmappedWindows', 'notRam'),
          mapSizeHistogram: { record: NUM }, unmapSizeHistogram: { record: NUM }, errors: { record: NUM },
          liveLimit: { nullable: NUM }, pinnedLimit: { nullable: NUM },
          incompleteSyncs: { optional: NUM }, limits: { optional: { record: NUM } },
        },
      },
      cost: {
        params: { record: { value: NUM, unit: 'string', source: 'string' } },
        items: { array: { event: 'string', what: 'string', count: NUM, unitNs: NUM, totalNs: NUM } },
        totalNs: NUM, perGuestOpNs: NUM, cpuShare: { optional: NUM },
      },
      timeline: {
        every: NUM,
        samples: { array: nums('op', 'guestMaps', 'guestUnmaps', 'invalidations', 'backendMaps', 'backendUnmaps', 'liveMappings', 'pinnedBytes', 'iotlbHits', 'iotlbMisses', 'modelledNs') },
      },
      wallMs: NUM, opsPerSecond: NUM,
    },
  },
};

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (v === undefined) return 'nothing (missing)';
  const s = JSON.stringify(v);
  return `${typeof v} ${s.length > 40 ? s.slice(0, 37) + '...' : s}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The first place `v` does not have `shape`: "path: expected X, got Y", or null. */
function mismatch(v: unknown, shape: Shape, path: string): string | null {
  if (shape === 'number') return typeof v === 'number' && Number.isFinite(v) ? null : `${path}: expected a number, got ${describe(v)}`;
  if (shape === 'string' || shape === 'boolean') return typeof v === shape ? null : `${path}: expected a ${shape}, got ${describe(v)}`;
  if ('nullable' in shape && Object.keys(shape).length === 1) return v === null ? null : mismatch(v, shape.nullable as Shape, path);
  if ('optional' in shape && Object.keys(shape).length === 1) return v === undefined ? null : mismatch(v, shape.optional as Shape, path);
  if ('oneOf' in shape && Array.isArray(shape.oneOf)) {
    return typeof v === 'string' && shape.oneOf.includes(v) ? null : `${path}: expected one of ${shape.oneOf.join(', ')}, got ${describe(v)}`;
  }
  if ('array' in shape && Object.keys(shape).length === 1) {
    if (!Array.isArray(v)) return `${path}: expected an array, got ${describe(v)}`;
    for (let i = 0; i < v.length; i++) {
      const m = mismatch(v[i], shape.array as Shape, `${path}[${i}]`);
      if (m) return m;
    }
    return null;
  }
  if ('record' in shape && Object.keys(shape).length === 1) {
    if (!isObject(v)) return `${path}: expected an object, got ${describe(v)}`;
    for (const [k, x] of Object.entries(v)) {
      const m = mismatch(x, shape.record as Shape, `${path}.${k}`);
      if (m) return m;
    }
    return null;
  }
  if (!isObject(v)) return `${path}: expected an object, got ${describe(v)}`;
  for (const [k, s] of Object.entries(shape as Record<string, Shape>)) {
    const m = mismatch(v[k], s, path ? `${path}.${k}` : k);
    if (m) return m;
  }
  return null;
}

/**
 * Reads a replay report from its JSON text, checking its version and every
 * field the report and the comparison use. A problem is a VtdError
 * 'ARGUMENT' whose message starts with `name` (the file) and says what is
 * wrong and where ("runs[1].guest.maps: expected a number, got string \"x\"").
 */
export function parseReport(text: string, name: string): ReplayReport {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new VtdError('ARGUMENT', `${name}: not JSON (${(e as Error).message})`, { file: name });
  }
  checkReport(v, name);
  return v;
}

/** Checks an already-parsed report (see parseReport). */
export function checkReport(v: unknown, name: string): asserts v is ReplayReport {
  if (!isObject(v)) throw new VtdError('ARGUMENT', `${name}: not a vtd replay report (expected a JSON object, got ${describe(v)})`, { file: name });
  if (!('vtdReport' in v)) throw new VtdError('ARGUMENT', `${name}: not a vtd replay report (no "vtdReport" version field; write one with vtd replay --report)`, { file: name });
  if (v.vtdReport !== 1) {
    throw new VtdError('ARGUMENT', `${name}: report version ${describe(v.vtdReport)} is not supported (this vtd reads version 1)`, { file: name, version: v.vtdReport });
  }
  const m = mismatch(v, REPORT_SHAPE, '');
  if (m) throw new VtdError('ARGUMENT', `${name}: malformed report: ${m}`, { file: name });
  if (!(v.runs as unknown[]).length) throw new VtdError('ARGUMENT', `${name}: the report holds no runs`, { file: name });
}

// ------------------------------------------------------------------ comparing

export interface ComparisonRow {
  group: string;
  metric: string;
  kind: MetricKind;
  a: MetricValue;
  b: MetricValue;
  /** b / a when both are numbers and a is not 0 (1 when both are 0); otherwise null. */
  ratio: number | null;
  /** The two differ by more than the threshold (never for measured rows). */
  flagged: boolean;
  measured: boolean;
}

export interface RunComparison {
  /** Indexes of the runs compared, in A and in B. */
  indexA: number;
  indexB: number;
  labelA: string;
  labelB: string;
  rows: ComparisonRow[];
}

export interface Comparison {
  nameA: string;
  nameB: string;
  traceA: string;
  traceB: string;
  /** The relative difference above which a row is flagged (0.05 = 5%). */
  threshold: number;
  runs: RunComparison[];
  /** Runs of one report with no counterpart in the other (labels). */
  unmatchedA: string[];
  unmatchedB: string[];
}

export interface CompareOptions {
  /** Relative difference that flags a row [0.05]. */
  threshold?: number;
  /** Names of the reports (file names) for the heading [the trace names]. */
  nameA?: string;
  nameB?: string;
}

/** Default threshold of a flagged difference: 5%. */
export const DEFAULT_THRESHOLD = 0.05;

function compareValues(a: MetricValue, b: MetricValue, threshold: number): { ratio: number | null; flagged: boolean } {
  if (typeof a === 'number' && typeof b === 'number') {
    if (a === b) return { ratio: 1, flagged: false };
    if (a === 0) return { ratio: null, flagged: true };
    const ratio = b / a;
    return { ratio, flagged: Math.abs(b - a) / Math.abs(a) > threshold };
  }
  return { ratio: null, flagged: a !== b };
}

/**
 * Compares run i of `a` with run i of `b` (or the only run of each, whatever
 * their labels): every metric of metricsFor, B/A, and a flag where they
 * differ by more than the threshold.
 */
export function compareReports(a: ReplayReport, b: ReplayReport, options: CompareOptions = {}): Comparison {
  const threshold = options.threshold ?? DEFAULT_THRESHOLD;
  if (!(threshold >= 0) || !Number.isFinite(threshold)) throw new VtdError('ARGUMENT', `compare: the threshold must be a non-negative number, got ${threshold}`);
  const n = Math.min(a.runs.length, b.runs.length);
  const runs: RunComparison[] = [];
  for (let i = 0; i < n; i++) {
    const ra = a.runs[i], rb = b.runs[i];
    const rows = metricsFor([ra, rb]).map((m): ComparisonRow => {
      const va = m.value(ra), vb = m.value(rb);
      const c = compareValues(va, vb, threshold);
      return { group: m.group, metric: m.name, kind: m.kind, a: va, b: vb, ratio: c.ratio, flagged: !m.measured && c.flagged, measured: !!m.measured };
    });
    runs.push({ indexA: i, indexB: i, labelA: ra.strategy.label, labelB: rb.strategy.label, rows });
  }
  return {
    nameA: options.nameA ?? a.trace.name, nameB: options.nameB ?? b.trace.name,
    traceA: a.trace.name, traceB: b.trace.name,
    threshold, runs,
    unmatchedA: a.runs.slice(n).map((r) => r.strategy.label),
    unmatchedB: b.runs.slice(n).map((r) => r.strategy.label),
  };
}

function pad(cells: readonly string[], widths: readonly number[], right: readonly boolean[]): string {
  return cells.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
}

/** The comparison as a plain-text table per pair of runs; flagged rows end in " *". */
export function formatComparison(c: Comparison): string {
  const pct = formatPercent(c.threshold * 100).replace(/\.0%$/, '%');
  const out: string[] = [
    `A: ${c.nameA}${c.traceA !== c.nameA ? ` (trace ${c.traceA})` : ''}`,
    `B: ${c.nameB}${c.traceB !== c.nameB ? ` (trace ${c.traceB})` : ''}`,
    `* marks a difference of more than ${pct}; measured rows (wall time) are never marked`,
  ];
  let flagged = 0, total = 0;
  for (const run of c.runs) {
    out.push('', `run ${run.indexA + 1}: A ${run.labelA}  vs  B ${run.labelB}`);
    const header = ['metric', 'A', 'B', 'B/A', ''];
    const body = run.rows.map((r) => [
      `${r.group}: ${r.metric}`,
      formatValue(r.kind, r.a),
      formatValue(r.kind, r.b),
      r.ratio !== null ? formatRatio(r.ratio) : typeof r.a === 'number' && r.a === 0 && typeof r.b === 'number' ? 'A=0' : '-',
      r.flagged ? '*' : '',
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
    const right = [false, true, true, true, false];
    out.push(pad(header, widths, right));
    out.push(pad(widths.map((w) => '-'.repeat(w)), widths, right));
    for (const row of body) out.push(pad(row, widths, right));
    const f = run.rows.filter((r) => r.flagged).length;
    flagged += f;
    total += run.rows.length;
    out.push(`${f} of ${run.rows.length} metrics differ by more than ${pct}`);
  }
  if (c.unmatchedA.length) out.push('', `runs only in A (not compared): ${c.unmatchedA.join(', ')}`);
  if (c.unmatchedB.length) out.push('', `runs only in B (not compared): ${c.unmatchedB.join(', ')}`);
  if (c.runs.length > 1) out.push('', `in all: ${flagged} of ${total} metrics differ by more than ${pct}`);
  return out.join('\n') + '\n';
}

// ------------------------------------------------------------------ combining

/**
 * One report holding the runs of both, labels prefixed "A: " and "B: ", for
 * the HTML report of a comparison. The trace information is A's (its name
 * names both traces when they differ): a report has one trace.
 */
export function combineReports(a: ReplayReport, b: ReplayReport): ReplayReport {
  const relabel = (prefix: string, r: RunReport): RunReport => ({ ...r, strategy: { ...r.strategy, label: `${prefix}: ${r.strategy.label}` } });
  const same = a.trace.name === b.trace.name;
  return {
    vtdReport: 1,
    trace: { ...a.trace, name: same ? a.trace.name : `A: ${a.trace.name} / B: ${b.trace.name}` },
    runs: [...a.runs.map((r) => relabel('A', r)), ...b.runs.map((r) => relabel('B', r))],
  };
}

/** The pairs (indexes into combineReports' runs) that compareReports compares. */
export function combinedPairs(a: ReplayReport, b: ReplayReport): Array<[number, number]> {
  const n = Math.min(a.runs.length, b.runs.length);
  return Array.from({ length: n }, (_, i): [number, number] => [i, a.runs.length + i]);
}
