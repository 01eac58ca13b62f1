/**
 * The self-contained HTML report (`vtd replay --html`, `vtd compare --html`):
 * one file with inline CSS and inline SVG charts, readable without scripts
 * and without a network (it names no URL, loads no font). Every text that
 * comes from the report is escaped; every number is formatted in its unit.
 *
 * Sections: the trace and its runs; the strategies side by side in words;
 * a summary table of every metric per run (ratios against the first run);
 * operations over time; mapping sizes; hit rates; live mappings and pinned
 * memory against their limits; the modelled time, item by item, with the
 * cost parameters and their sources.
 *
 * Browser-safe.
 */
import { VtdError } from '../errors.js';
import { formatValue, hitRate, metricsFor, type MetricValue } from './compare.js';
import type { ReplayReport, RunReport, Sample, Strategy } from './types.js';
import { invalidationCount } from './metrics.js';
import {
  barChart, colorOf, dashOf, escapeXml as esc, formatBytes, formatCount, formatCpus, formatNs, formatPercent, formatRatio, nsAxisFormat,
  gauges, lineChart, stackedBars, type LineSeries,
} from './svg.js';

export interface HtmlOptions {
  /**
   * Pairs of runs (indexes: base, other) to compare in words. By default,
   * every two runs whose strategies differ in the guest policy alone, in the
   * shadow mode alone, or in having a shadow at all.
   */
  pairs?: ReadonlyArray<readonly [number, number]>;
  /** A line under the title (e.g. the files a comparison combines). */
  note?: string;
  /** The two report files a `vtd compare` report combines: the title then says it is a comparison of them. */
  comparison?: readonly [string, string];
}

/** A run with the label it is shown under (unique in the report) and its colour. */
interface Shown {
  run: RunReport;
  index: number;
  label: string;
  color: string;
  dash: string;
}

/** Renders the report; a report with no runs is refused (there is nothing to show). */
export function renderHtml(report: ReplayReport, options: HtmlOptions = {}): string {
  if (!report.runs.length) throw new VtdError('ARGUMENT', 'renderHtml: the report holds no runs; nothing to render');
  const seen = new Map<string, number>();
  const runs: Shown[] = report.runs.map((run, index) => {
    const n = (seen.get(run.strategy.label) ?? 0) + 1;
    seen.set(run.strategy.label, n);
    const label = n > 1 ? `${run.strategy.label} (#${n})` : run.strategy.label;
    return { run, index, label, color: colorOf(index), dash: dashOf(index) };
  });
  const sections: Array<[id: string, title: string, body: string]> = [
    ['strategies', 'Strategies side by side', strategiesSection(runs, options.pairs)],
    ['summary', 'Summary', summarySection(runs)],
    ['time', 'Operations over time', timeSection(runs)],
    ['sizes', 'Mapping sizes', sizesSection(runs)],
    ['hits', 'Hit rates', hitsSection(runs)],
    ['limits', 'Live mappings and pinned memory', limitsSection(runs)],
    ['cost', 'Modelled time', costSection(runs)],
  ];
  const t = report.trace;
  const cmp = options.comparison;
  const title = cmp ? `vtd comparison report: ${cmp[0]} vs ${cmp[1]}` : `vtd replay report: ${t.name}`;
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    '<header>',
    cmp
      ? `<h1>vtd comparison report: <span class="trace">${esc(cmp[0])}</span> vs <span class="trace">${esc(cmp[1])}</span></h1>`
      : `<h1>vtd replay report: <span class="trace">${esc(t.name)}</span></h1>`,
    options.note ? `<p class="note">${esc(options.note)}</p>` : '',
    traceInfo(report),
    runList(runs),
    `<nav><ul>${sections.map(([id, name]) => `<li><a href="#${id}">${esc(name)}</a></li>`).join('')}</ul></nav>`,
    '</header>',
    '<main>',
    ...sections.map(([id, name, body]) => `<section id="${id}">\n<h2>${esc(name)}</h2>\n${body}\n</section>`),
    '</main>',
    `<footer>vtd-wasm replay report, format version ${esc(String(report.vtdReport))}. Modelled times come from a linear cost model `
      + '(parameters and their sources under Modelled time); replay wall times are measured on the machine that replayed.</footer>',
    '</body>',
    '</html>',
    '',
  ].filter((l) => l !== '').join('\n');
}

// ------------------------------------------------------------------ header

function traceInfo(report: ReplayReport): string {
  const t = report.trace;
  const items: Array<[string, string]> = [
    ['operations', `${formatCount(t.ops)} (${formatCount(t.workloadOps)} attach/map/unmap)`],
    ['unit', `address width ${t.aw} bits, caching mode ${t.cm ? 'on' : 'off'}`],
    ['devices', t.devices.length ? t.devices.join(' ') : 'none'],
  ];
  if (t.rate !== undefined && Number.isFinite(t.rate)) items.push(['recorded rate', `${formatCount(t.rate)} operations/s`]);
  if (t.durationSeconds !== undefined && Number.isFinite(t.durationSeconds)) items.push(['workload wall time', formatNs(t.durationSeconds * 1e9)]);
  return `<dl class="trace-info">${items.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>`;
}

function describeStrategy(s: Strategy): string {
  const policy = s.policy === 'none'
    ? 'raw trace (no guest driver)'
    : `${s.policy} invalidation${s.policyForced ? ' (forced: caching mode)' : ''}${s.policy === 'lazy' ? `, flush queue ${formatCount(s.flushQueue)}` : ''}`;
  const shadow = s.shadow === 'none' ? 'no shadow' : `${s.shadow} shadow sync into ${s.backend}`;
  return `${policy}; ${shadow}`;
}

function swatch(r: Shown): string {
  return `<span class="swatch" style="background:${r.color}"></span>`;
}

function runList(runs: readonly Shown[]): string {
  return `<ol class="runs">${runs.map((r) => `<li>${swatch(r)}<strong>${esc(r.label)}</strong>: ${esc(describeStrategy(r.run.strategy))}</li>`).join('')}</ol>`;
}

// ------------------------------------------------------------------ strategies in words

type PairKind = 'policy' | 'shadow' | 'shadowing' | 'runs';

interface Pair { base: Shown; other: Shown; kind: PairKind }

/** The pairs compared by default: strategies that differ in one respect. */
function autoPairs(runs: readonly Shown[]): Pair[] {
  const out: Pair[] = [];
  for (let i = 0; i < runs.length; i++) {
    for (let j = i + 1; j < runs.length; j++) {
      const s = runs[i].run.strategy, t = runs[j].run.strategy;
      const dp = s.policy !== t.policy, ds = s.shadow !== t.shadow, db = s.backend !== t.backend;
      if (dp && !ds && !db) {
        const lazyFirst = s.policy === 'lazy' || t.policy === 'strict';
        out.push({ base: lazyFirst ? runs[i] : runs[j], other: lazyFirst ? runs[j] : runs[i], kind: 'policy' });
      } else if (!dp && ds && !db) {
        const mergedFirst = s.shadow === 'merged' || t.shadow === 'qemu';
        out.push({ base: mergedFirst ? runs[i] : runs[j], other: mergedFirst ? runs[j] : runs[i], kind: 'shadow' });
      } else if (!dp && ds && (s.shadow === 'none' || t.shadow === 'none')) {
        const noneFirst = s.shadow === 'none';
        out.push({ base: noneFirst ? runs[i] : runs[j], other: noneFirst ? runs[j] : runs[i], kind: 'shadowing' });
      }
    }
  }
  return out;
}

function backendOps(r: RunReport): number {
  return r.backend ? r.backend.maps + r.backend.unmaps : 0;
}

function invalidations(r: RunReport): number {
  return invalidationCount(r.guest.invalidations);
}

/**
 * "qemu mode issues 128.0x the backend operations of merged mode (12,800 vs
 * 100)", with plain wording when the base is zero (no ratio to give).
 */
function ratioSentence(subject: string, verb: string, noun: string, base: string, o: number, b: number, fmt: (v: number) => string): string {
  if (b > 0 && Number.isFinite(o / b)) return `${subject} ${verb} ${formatRatio(o / b)} the ${noun} of ${base} (${fmt(o)} vs ${fmt(b)})`;
  if (o > 0) return `${subject} ${verb} ${fmt(o)} ${noun}, ${base} none`;
  return `neither ${subject} nor ${base} ${verb} any ${noun}`;
}

/** Capitalises a sentence, except when it starts with a mode's or policy's own name ("qemu mode issues ..."). */
function capital(s: string): string {
  if (/^(qemu|merged|strict|lazy)\b/.test(s)) return s;
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function pairStatement(p: Pair): string {
  const o = p.other.run, b = p.base.run;
  const os = o.strategy, bs = b.strategy;
  const sentences: string[] = [];
  const time = (subject: string, base: string) => ratioSentence(subject, 'takes', 'modelled time', base, o.cost.totalNs, b.cost.totalNs, formatNs);
  let heading: string;
  if (p.kind === 'shadow') {
    const on = `${os.shadow} mode`, bn = `${bs.shadow} mode`;
    heading = `${os.shadow} vs ${bs.shadow} shadow sync (${bs.policy === 'none' ? 'raw trace' : `${bs.policy} policy`}, ${bs.backend})`;
    sentences.push(ratioSentence(on, 'issues', 'backend operations', bn, backendOps(o), backendOps(b), formatCount));
    sentences.push(time('it', bn));
    if (b.backend && o.backend) {
      sentences.push(ratioSentence('its shadow walks', 'read', 'guest table entries', bn, o.backend.syncEntriesRead, b.backend.syncEntriesRead, formatCount));
    }
  } else if (p.kind === 'policy') {
    const on = `the ${os.policy} policy`, bn = `the ${bs.policy} policy`;
    heading = `${os.policy} vs ${bs.policy} invalidation (${bs.shadow === 'none' ? 'no shadow' : `${bs.shadow} shadow sync, ${bs.backend}`})`;
    sentences.push(ratioSentence(on, 'issues', 'invalidations', bn, invalidations(o), invalidations(b), formatCount));
    sentences.push(ratioSentence('it', 'makes', 'trapped register writes', bn, o.guest.registerWrites, b.guest.registerWrites, formatCount));
    if (o.backend || b.backend) sentences.push(ratioSentence('its shadow', 'issues', 'backend operations', bn, backendOps(o), backendOps(b), formatCount));
    sentences.push(time('it', bn));
  } else if (p.kind === 'shadowing') {
    heading = `${os.shadow} shadow sync into ${os.backend} vs no shadow (${bs.policy === 'none' ? 'raw trace' : `${bs.policy} policy`})`;
    sentences.push(time(`the run with ${os.shadow} shadow sync`, 'the run without a shadow'));
    sentences.push(`shadowing adds ${formatNs(Math.max(0, o.cost.totalNs - b.cost.totalNs))} of modelled time and ${formatCount(backendOps(o))} backend operations`);
  } else {
    const on = `“${p.other.label}”`, bn = `“${p.base.label}”`;
    heading = `${p.other.label} vs ${p.base.label}`;
    sentences.push(time(on, bn));
    if (o.backend || b.backend) sentences.push(ratioSentence('it', 'issues', 'backend operations', bn, backendOps(o), backendOps(b), formatCount));
    sentences.push(ratioSentence('it', 'issues', 'invalidations', bn, invalidations(o), invalidations(b), formatCount));
  }
  const perOp = o.cost.perGuestOpNs > 0 && b.cost.perGuestOpNs > 0
    ? ` Per guest map/unmap: ${formatNs(o.cost.perGuestOpNs)} vs ${formatNs(b.cost.perGuestOpNs)}.`
    : '';
  return `<li><div class="pair-head">${swatch(p.other)}${swatch(p.base)}${esc(heading)}</div>`
    + `<p>${sentences.map((s) => esc(capital(s)) + '.').join(' ')}${esc(perOp)}</p></li>`;
}

function strategiesSection(runs: readonly Shown[], explicit?: HtmlOptions['pairs']): string {
  if (runs.length < 2) return '<p class="empty">One run: nothing to compare. Replay with several strategies (<code>--policy strict,lazy</code>, <code>--shadow merged,qemu</code>) to see them side by side.</p>';
  let pairs: Pair[];
  if (explicit) {
    pairs = explicit
      .filter(([i, j]) => runs[i] !== undefined && runs[j] !== undefined && i !== j)
      .map(([i, j]) => ({ base: runs[i], other: runs[j], kind: 'runs' as const }));
  } else {
    pairs = autoPairs(runs);
    if (!pairs.length) pairs = runs.slice(1).map((r) => ({ base: runs[0], other: r, kind: 'runs' as const }));
  }
  if (!pairs.length) return '<p class="empty">No pairs of runs to compare.</p>';
  return `<ul class="pairs">${pairs.map(pairStatement).join('\n')}</ul>`;
}

// ------------------------------------------------------------------ summary table

/** A cell's ratio against the first run: "128.0x", percentage points for rates, or nothing. */
function ratioCell(kind: string, v: MetricValue, first: MetricValue): string {
  if (typeof v !== 'number' || typeof first !== 'number') return '';
  if (kind === 'percent') {
    const d = v - first;
    return d === 0 ? '=' : `${d > 0 ? '+' : ''}${formatPercent(d).replace('%', ' pt')}`;
  }
  if (first === 0) return v === 0 ? '=' : 'first: 0';
  return formatRatio(v / first);
}

function summarySection(runs: readonly Shown[]): string {
  const metrics = metricsFor(runs.map((r) => r.run));
  const head = `<tr><th scope="col">metric</th>${runs.map((r) => `<th scope="col">${swatch(r)}${esc(r.label)}</th>`).join('')}</tr>`;
  const rows: string[] = [];
  const strategyRow = (name: string, get: (s: Strategy) => string) =>
    `<tr><th scope="row">${esc(name)}</th>${runs.map((r) => `<td class="text">${esc(get(r.run.strategy))}</td>`).join('')}</tr>`;
  rows.push(`<tr class="group"><th colspan="${runs.length + 1}">strategy</th></tr>`);
  rows.push(strategyRow('guest policy', (s) => `${s.policy}${s.policyForced ? ' (forced)' : ''}`));
  rows.push(strategyRow('flush queue', (s) => (s.policy === 'lazy' ? formatCount(s.flushQueue) : '-')));
  rows.push(strategyRow('shadow sync', (s) => s.shadow));
  rows.push(strategyRow('backend', (s) => s.backend));
  let group = '';
  for (const m of metrics) {
    if (m.group !== group) {
      group = m.group;
      rows.push(`<tr class="group"><th colspan="${runs.length + 1}">${esc(group)}</th></tr>`);
    }
    const first = m.value(runs[0].run);
    const cells = runs.map((r, k) => {
      const v = m.value(r.run);
      const ratio = k > 0 ? ratioCell(m.kind, v, first) : '';
      return `<td${typeof v === 'string' ? ' class="none"' : ''}>${esc(formatValue(m.kind, v))}${ratio ? `<span class="ratio">${esc(ratio)}</span>` : ''}</td>`;
    });
    rows.push(`<tr><th scope="row">${esc(m.name)}${m.measured ? ' <small>(measured)</small>' : ''}</th>${cells.join('')}</tr>`);
  }
  const note = runs.length > 1 ? `<p class="hint">Under each value of the later runs: its ratio to the first run (${esc(runs[0].label)}); hit rates: the difference in percentage points.</p>` : '';
  return `${note}<div class="scroll"><table class="summary"><thead>${head}</thead><tbody>${rows.join('\n')}</tbody></table></div>`;
}

// ------------------------------------------------------------------ over time

function series(runs: readonly Shown[], y: (s: Sample, r: RunReport) => number | null, include: (r: RunReport) => boolean = () => true): LineSeries[] {
  return runs.filter((r) => include(r.run)).map((r) => ({
    label: r.label, color: r.color, dash: r.dash,
    points: r.run.timeline.samples.flatMap((s): Array<[number, number]> => {
      const v = y(s, r.run);
      return v === null ? [] : [[s.op, v]];
    }),
  }));
}

const OPS = 'trace operations replayed';

function timeSection(runs: readonly Shown[]): string {
  const hasBackend = (r: RunReport) => r.backend !== null;
  const anyBackend = runs.some((r) => hasBackend(r.run));
  const samples = runs.reduce((n, r) => n + r.run.timeline.samples.length, 0);
  const every = [...new Set(runs.map((r) => r.run.timeline.every))];
  const charts = [
    lineChart({ title: 'Guest maps + unmaps (cumulative)', xLabel: OPS, yInteger: true, yFormat: formatCountAxis, series: series(runs, (s) => s.guestMaps + s.guestUnmaps) }),
    lineChart({ title: 'Invalidations processed (cumulative)', xLabel: OPS, yInteger: true, yFormat: formatCountAxis, series: series(runs, (s) => s.invalidations) }),
    anyBackend
      ? lineChart({ title: 'Backend operations: maps + unmaps (cumulative)', xLabel: OPS, yInteger: true, yFormat: formatCountAxis, series: series(runs, (s) => s.backendMaps + s.backendUnmaps, hasBackend) })
      : '<p class="empty">No run shadows a backend: no backend operations.</p>',
    lineChart({ title: 'Modelled time (cumulative)', xLabel: OPS, yFormat: formatNs, yAxisFormat: nsAxisFormat, series: series(runs, (s) => s.modelledNs) }),
  ];
  const head = samples
    ? `<p class="hint">Cumulative counts sampled every ${every.map(formatCount).join(' / ')} trace operations (and at the end).</p>`
    : '<p class="empty">The report holds no timeline samples.</p>';
  return head + charts.map(figure).join('\n');
}

/** Axis ticks for counts: compact above 10,000, exact below. */
function formatCountAxis(v: number): string {
  return Math.abs(v) >= 10000 ? formatCompactCount(v) : formatCount(v);
}

function formatCompactCount(v: number): string {
  for (const [div, suffix] of [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']] as const) {
    if (Math.abs(v) >= div) return `${Number((v / div).toFixed(2))}${suffix}`;
  }
  return formatCount(v);
}

function figure(svg: string): string {
  return svg.startsWith('<svg') ? `<figure>${svg}</figure>` : svg;
}

// ------------------------------------------------------------------ sizes

/** Bucket label -> size in bytes, for ordering ('>1G' after '1G'; unknown labels last). */
function bucketSize(label: string): number {
  const m = /^(>)?(\d+)([KMGT])$/.exec(label);
  if (!m) return Infinity;
  const size = Number(m[2]) * 1024 ** ' KMGT'.indexOf(m[3]);
  return m[1] ? size * 1.5 : size;
}

/** A bucket label of the report ('4K', '2M', '>1G') in the units of the rest of the report: '4 KiB', '2 MiB', '> 1 GiB'. */
export function bucketLabel(label: string): string {
  const m = /^(>)?(\d+)([KMGT])$/.exec(label);
  return m ? `${m[1] ? '> ' : ''}${m[2]} ${m[3]}iB` : label;
}

/** Spread of non-zero counts from which a histogram is drawn on a log scale. */
const LOG_SCALE_SPREAD = 50;

function histogramChart(title: string, runs: readonly Shown[], get: (r: RunReport) => Record<string, number>): string {
  const withB = runs.filter((r) => r.run.backend);
  const labels = [...new Set(withB.flatMap((r) => Object.keys(get(r.run))))]
    .sort((a, b) => bucketSize(a) - bucketSize(b) || (a < b ? -1 : 1));
  const used = labels.map((l) => withB.some((r) => (get(r.run)[l] ?? 0) > 0));
  const lo = used.indexOf(true), hi = used.lastIndexOf(true);
  if (lo < 0) return `<p class="empty">${esc(title)}: none.</p>`;
  const cats = labels.slice(lo, hi + 1);
  const shown = cats.map(bucketLabel);
  const counts = withB.flatMap((r) => cats.map((c) => get(r.run)[c] ?? 0)).filter((n) => n > 0);
  // Counts an order of magnitude or two apart (qemu's 4K pages against merged 2M runs) would hide the small ones.
  const log = Math.max(...counts) / Math.min(...counts) >= LOG_SCALE_SPREAD;
  return figure(barChart({
    title: log ? `${title} (log scale)` : title, categories: shown, yLog: log, xLabel: 'mapping size (power-of-two bucket: the smallest that holds it)', yInteger: true, yFormat: formatCountAxis,
    series: withB.map((r) => ({ label: r.label, color: r.color, values: cats.map((c) => get(r.run)[c] ?? 0) })),
  }));
}

function sizesSection(runs: readonly Shown[]): string {
  if (!runs.some((r) => r.run.backend)) return '<p class="empty">No run shadows a backend: no backend mappings to size.</p>';
  return histogramChart('Backend maps by size', runs, (r) => r.backend!.mapSizeHistogram) + '\n'
    + histogramChart('Backend unmaps by size', runs, (r) => r.backend!.unmapSizeHistogram);
}

// ------------------------------------------------------------------ hit rates

function hitsSection(runs: readonly Shown[]): string {
  const rate = (v: MetricValue) => (typeof v === 'number' ? v : null);
  const bars = barChart({
    title: 'Hit rates (all translations)', categories: ['IOTLB', 'context cache'], yMax: 100, yFormat: (v) => formatPercent(v).replace('.0%', '%'),
    series: runs.map((r) => ({
      label: r.label, color: r.color,
      values: [rate(hitRate(r.run.unit.iotlbHits, r.run.unit.iotlbMisses)), rate(hitRate(r.run.unit.contextHits, r.run.unit.contextMisses))],
    })),
  });
  const table = `<table class="small"><thead><tr><th>run</th><th>IOTLB hits</th><th>IOTLB misses</th><th>IOTLB hit rate</th><th>context hits</th><th>context misses</th><th>context hit rate</th></tr></thead><tbody>`
    + runs.map((r) => {
      const u = r.run.unit;
      return `<tr><th scope="row">${swatch(r)}${esc(r.label)}</th><td>${formatCount(u.iotlbHits)}</td><td>${formatCount(u.iotlbMisses)}</td>`
        + `<td>${esc(formatValue('percent', hitRate(u.iotlbHits, u.iotlbMisses)))}</td><td>${formatCount(u.contextHits)}</td><td>${formatCount(u.contextMisses)}</td>`
        + `<td>${esc(formatValue('percent', hitRate(u.contextHits, u.contextMisses)))}</td></tr>`;
    }).join('') + '</tbody></table>';
  const overTime = lineChart({
    title: 'IOTLB hit rate over time (cumulative)', xLabel: OPS, yMax: 100, yFormat: (v) => formatPercent(v).replace('.0%', '%'),
    empty: 'no IOTLB lookups sampled',
    series: series(runs, (s) => (s.iotlbHits + s.iotlbMisses > 0 ? (100 * s.iotlbHits) / (s.iotlbHits + s.iotlbMisses) : null)),
  });
  return [figure(bars), table, figure(overTime)].join('\n');
}

// ------------------------------------------------------------------ limits

/** Distinct limits of the runs, each labelled with the runs it applies to when they differ. */
function limitLines(runs: readonly Shown[], get: (r: RunReport) => number | null, name: string, fmt: (v: number) => string): Array<{ value: number; label: string }> {
  const withB = runs.filter((r) => r.run.backend);
  const by = new Map<number, string[]>();
  for (const r of withB) {
    const v = get(r.run);
    if (v !== null) by.set(v, [...(by.get(v) ?? []), r.label]);
  }
  return [...by].map(([value, labels]) => ({
    value, label: `${name} ${fmt(value)}${labels.length < withB.length ? ` (${labels.join(', ')})` : ''}`,
  }));
}

function limitsSection(runs: readonly Shown[]): string {
  const withB = runs.filter((r) => r.run.backend);
  if (!withB.length) return '<p class="empty">No run shadows a backend: no live mappings or pinned memory.</p>';
  const hasB = (r: RunReport) => r.backend !== null;
  const live = lineChart({
    title: 'Live backend mappings', xLabel: OPS, yInteger: true, yFormat: formatCountAxis,
    series: series(runs, (s) => s.liveMappings, hasB),
    limits: limitLines(runs, (r) => r.backend!.liveLimit, 'limit', formatCount),
  });
  const pinned = lineChart({
    title: 'Pinned memory', xLabel: OPS, yBinary: true, yFormat: formatBytes,
    series: series(runs, (s) => s.pinnedBytes, hasB),
    limits: limitLines(runs, (r) => r.backend!.pinnedLimit, 'limit', formatBytes),
  });
  const g1 = gauges('Live mappings: high-water vs limit (type1 dma_entry_limit, iommufd max-mappings)', withB.map((r) => ({
    label: r.label, value: r.run.backend!.liveHighWater, limit: r.run.backend!.liveLimit, format: formatCount,
  })));
  const g2 = gauges('Pinned memory: high-water vs limit (RLIMIT_MEMLOCK)', withB.map((r) => ({
    label: r.label, value: r.run.backend!.pinnedHighWater, limit: r.run.backend!.pinnedLimit, format: formatBytes,
  })));
  const errs = withB.filter((r) => Object.values(r.run.backend!.errors).some((n) => n > 0));
  const errText = errs.length
    ? `<p class="warn">Failed backend calls: ${errs.map((r) => `${esc(r.label)}: ${Object.entries(r.run.backend!.errors).filter(([, n]) => n > 0).map(([e, n]) => `${esc(e)} ${formatCount(n)}`).join(', ')}`).join('; ')}.</p>`
    : '<p class="hint">No backend call failed.</p>';
  // Syncs stopped at a limit: the shadow missed guest mappings (docs/SHADOW.md, Limits).
  const cut = withB.filter((r) => (r.run.backend!.incompleteSyncs ?? 0) > 0);
  const cutText = cut.length
    ? `<p class="warn">Shadow incomplete: ${cut.map((r) => `${esc(r.label)}: ${formatCount(r.run.backend!.incompleteSyncs!)} sync(s) stopped at a limit (${Object.entries(r.run.backend!.limits ?? {}).map(([k, n]) => `${esc(k)} ${formatCount(n)}`).join(', ')})`).join('; ')}.</p>`
    : '';
  return [figure(g1), figure(g2), errText + cutText, figure(live), figure(pinned)].join('\n');
}

// ------------------------------------------------------------------ cost

function costSection(runs: readonly Shown[]): string {
  const events: Array<{ event: string; what: string }> = [];
  for (const r of runs) {
    for (const it of r.run.cost.items) if (!events.some((e) => e.event === it.event)) events.push({ event: it.event, what: it.what });
  }
  const totalOf = (r: RunReport, event: string) => r.cost.items.filter((i) => i.event === event).reduce((s, i) => s + i.totalNs, 0);
  const chart = events.length
    ? figure(stackedBars({
      title: 'Modelled time per run, by cost item', format: formatNs, axisFormat: nsAxisFormat,
      parts: events.map((e, k) => ({ label: `${e.event}: ${e.what}`, color: colorOf(k) })),
      rows: runs.map((r) => ({ label: r.label, values: events.map((e) => totalOf(r.run, e.event)) })),
    }))
    : '<p class="empty">No cost items.</p>';

  const itemRows = events.map((e) => `<tr><th scope="row"><code>${esc(e.event)}</code><br><small>${esc(e.what)}</small></th>${runs.map((r) => {
    const items = r.run.cost.items.filter((i) => i.event === e.event);
    if (!items.length) return '<td class="none">-</td>';
    const total = items.reduce((s, i) => s + i.totalNs, 0);
    const count = items.reduce((s, i) => s + i.count, 0);
    const share = r.run.cost.totalNs > 0 ? ` (${formatPercent((100 * total) / r.run.cost.totalNs)})` : '';
    return `<td>${esc(formatNs(total))}${esc(share)}<span class="ratio">${esc(formatCount(count))} × ${esc(formatNs(items[0].unitNs))}</span></td>`;
  }).join('')}</tr>`);
  const totals = `<tr class="total"><th scope="row">total</th>${runs.map((r) => `<td>${esc(formatNs(r.run.cost.totalNs))}</td>`).join('')}</tr>`
    + `<tr><th scope="row">per guest map/unmap</th>${runs.map((r) => `<td>${esc(r.run.guest.maps + r.run.guest.unmaps > 0 ? formatNs(r.run.cost.perGuestOpNs) : 'n/a')}</td>`).join('')}</tr>`
    + (runs.some((r) => r.run.cost.cpuShare !== undefined)
      ? `<tr><th scope="row">CPUs busy at the recorded rate (modelled time / workload wall time)</th>${runs.map((r) => `<td>${esc(r.run.cost.cpuShare !== undefined ? formatCpus(r.run.cost.cpuShare) : 'n/a')}</td>`).join('')}</tr>`
      : '');
  const items = `<div class="scroll"><table class="summary"><thead><tr><th>cost item</th>${runs.map((r) => `<th>${swatch(r)}${esc(r.label)}</th>`).join('')}</tr></thead>`
    + `<tbody>${itemRows.join('')}${totals}</tbody></table></div>`;

  // Parameters: one value column when every run used the same, else one per run.
  const names = [...new Set(runs.flatMap((r) => Object.keys(r.run.cost.params)))];
  const same = names.every((n) => runs.every((r) => r.run.cost.params[n]?.value === runs[0].run.cost.params[n]?.value));
  const valueCols = same ? [runs[0]] : runs;
  const paramHead = `<tr><th>parameter</th>${valueCols.map((r) => `<th>${same ? 'value' : `${swatch(r)}${esc(r.label)}`}</th>`).join('')}<th>unit</th><th>source</th></tr>`;
  const paramRows = names.map((n) => {
    const p = runs.map((r) => r.run.cost.params[n]).find((x) => x !== undefined)!;
    const cells = valueCols.map((r) => {
      const q = r.run.cost.params[n];
      return `<td>${q ? esc(formatCount(q.value)) : '-'}</td>`;
    }).join('');
    return `<tr><th scope="row"><code>${esc(n)}</code></th>${cells}<td class="text">${esc(p.unit)}</td><td class="text source">${esc(p.source)}</td></tr>`;
  });
  const params = names.length
    ? `<h3>Cost parameters</h3><p class="hint">The model is linear: each count above times its parameter. Override any with <code>vtd replay --cost name=value</code>.</p>`
      + `<div class="scroll"><table class="params"><thead>${paramHead}</thead><tbody>${paramRows.join('')}</tbody></table></div>`
    : '';
  return [chart, items, params].join('\n');
}

// ------------------------------------------------------------------ style

const CSS = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; background: #fafafa; margin: 0; }
header, main, footer { max-width: 1100px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 16px; }
h1 { font-size: 22px; margin: 8px 0; overflow-wrap: anywhere; }
h2 { font-size: 18px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 15px; margin-top: 20px; }
.note { color: #555; margin: 0 0 8px; }
dl.trace-info { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0; }
dl.trace-info dt { color: #666; }
dl.trace-info dd { margin: 0; overflow-wrap: anywhere; }
ol.runs { margin: 8px 0; padding-left: 22px; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 4px 16px; }
nav a { color: #0060a0; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 5px; border-radius: 2px; vertical-align: baseline; }
table { border-collapse: collapse; background: #fff; margin: 8px 0; }
th, td { border: 1px solid #e0e0e0; padding: 3px 8px; vertical-align: top; }
thead th { background: #f0f0f0; text-align: left; }
td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text { text-align: left; white-space: normal; }
td.source { max-width: 520px; color: #444; }
td.none { color: #888; }
tbody th { text-align: left; font-weight: normal; }
tr.group th { background: #f6f6f6; font-weight: 600; text-transform: capitalize; }
tr.total td, tr.total th { font-weight: 600; }
.ratio { display: block; font-size: 11px; color: #777; }
.scroll { overflow-x: auto; }
figure { margin: 12px 0; }
svg { max-width: 100%; height: auto; display: block; }
.empty, .hint { color: #666; font-style: italic; }
.warn { color: #a00000; }
ul.pairs { padding-left: 18px; }
ul.pairs li { margin-bottom: 10px; }
.pair-head { font-weight: 600; }
footer { color: #777; font-size: 12px; margin-top: 40px; padding-bottom: 24px; }
@media print { body { background: #fff; } section { break-inside: avoid-page; } }
`.trim();
