/**
 * Small chart helpers for the HTML report (html.ts): a line chart of
 * cumulative series, grouped bars (histograms, side-by-side runs), stacked
 * horizontal bars and high-water gauges. Each returns one inline `<svg>`
 * element as a string: no script, no external reference, no `xmlns` (inline
 * SVG in HTML does not need it, and the report must name no URL).
 *
 * Every text that may come from a report passes through `escapeXml`; every
 * number drawn is finite (a non-finite input is dropped or shown as "n/a").
 * Text width is estimated (no layout engine here): `CHAR_PX` per character.
 *
 * The number formatters live here too: axis ticks need the same units as the
 * tables, and compare.ts prints with them.
 *
 * Browser-safe.
 */

// ------------------------------------------------------------------ text and numbers

/** Escapes text for XML/HTML content and double- or single-quoted attributes. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;'));
}

/** "1234567.25" -> "1,234,567.25" (sign and decimals kept). */
function group(digits: string): string {
  const [int, frac] = digits.split('.');
  const g = int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return frac !== undefined ? `${g}.${frac}` : g;
}

/** Fixed decimals with thousands separators, trailing ".0" kept only when `keep`. */
function fixed(n: number, decimals: number, keep = false): string {
  let s = Math.abs(n).toFixed(decimals);
  if (!keep && s.includes('.')) s = s.replace(/\.?0+$/, '');
  return (n < 0 && Number(s) !== 0 ? '-' : '') + group(s);
}

/** A count: "1,234,567"; a non-integer keeps one decimal. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  return Number.isInteger(n) ? fixed(n, 0) : fixed(n, 1, true);
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** Bytes in binary units: "512 B", "4 KiB", "1.5 MiB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  let v = Math.abs(n);
  let i = 0;
  while (v >= 1024 && i < BYTE_UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${n < 0 ? '-' : ''}${i ? fixed(v, v < 10 ? 2 : 1) : fixed(v, 0)} ${BYTE_UNITS[i]}`;
}

/** Nanoseconds as ns, µs, ms or s, about three significant digits: "850 ns", "12.3 µs", "537 µs", "1.25 s". */
export function formatNs(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  const a = Math.abs(n);
  const sign = n < 0 ? '-' : '';
  const sig = (v: number) => fixed(v, v < 10 ? 2 : v < 100 ? 1 : 0);
  if (a < 1e3) return `${sign}${fixed(a, a < 10 ? 1 : 0)} ns`;
  if (a < 1e6) return `${sign}${sig(a / 1e3)} µs`;
  if (a < 1e9) return `${sign}${sig(a / 1e6)} ms`;
  return `${sign}${fixed(a / 1e9, a < 1e10 ? 3 : a < 1e11 ? 2 : 1)} s`;
}

/** Modelled work over wall time as a number of CPUs kept busy: "0.25 CPU", "7.11 CPUs". */
export function formatCpus(share: number): string {
  if (!Number.isFinite(share)) return 'n/a';
  return `${fixed(share, 2, true)} ${share === 1 ? 'CPU' : 'CPUs'}`;
}

/**
 * Axis ticks of a time axis, all in the one unit the largest tick needs:
 * "0 ms", "5 ms", "10 ms" (not "0 ns" beside "5 ms").
 */
export function nsAxisFormat(top: number): (ns: number) => string {
  const [div, unit] = top >= 1e9 ? [1e9, 's'] : top >= 1e6 ? [1e6, 'ms'] : top >= 1e3 ? [1e3, 'µs'] : [1, 'ns'];
  return (ns) => (Number.isFinite(ns) ? `${fixed(ns / div, 2)} ${unit}` : 'n/a');
}

/** Milliseconds (measured wall time). */
export function formatMs(n: number): string {
  return formatNs(n * 1e6);
}

/** A share in percent (0..100): "97.3%". */
export function formatPercent(p: number): string {
  if (!Number.isFinite(p)) return 'n/a';
  return `${fixed(p, p !== 0 && Math.abs(p) < 0.1 ? 3 : 1, true)}%`;
}

/** A ratio: "128.0x", "3.62x", "0.50x", "0.00391x" (three significant digits below 0.1). */
export function formatRatio(r: number): string {
  if (!Number.isFinite(r)) return 'n/a';
  if (r !== 0 && Math.abs(r) < 0.1) return `${Number(r.toPrecision(3))}x`;
  return `${fixed(r, Math.abs(r) < 10 ? 2 : 1, true)}x`;
}

/** Compact, for axis ticks: "950", "12.8k", "1.5M", "2G". */
export function formatCompact(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  const a = Math.abs(n);
  const sign = n < 0 ? '-' : '';
  for (const [div, suffix] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']] as const) {
    if (a >= div) return `${sign}${fixed(a / div, 2)}${suffix}`;
  }
  return `${sign}${fixed(a, 2)}`;
}

// ------------------------------------------------------------------ scales

/**
 * Tick values from 0 up to at least `max`, about `count` of them: at 1-2-2.5-5
 * steps of a power of ten, or (`binary`, for bytes) at a power of two, so
 * that byte ticks read "256 MiB", "512 MiB", "768 MiB", "1 GiB". `integer`
 * keeps the step at least 1 (counts). Never empty, never NaN.
 */
export function ticks(max: number, count = 5, opts: { binary?: boolean; integer?: boolean } = {}): number[] {
  if (!Number.isFinite(max) || max <= 0) max = opts.integer || opts.binary ? count : 1;
  const raw = max / count;
  let step: number;
  if (opts.binary) step = Math.max(1, 2 ** Math.ceil(Math.log2(raw)));
  else {
    const p = 10 ** Math.floor(Math.log10(raw));
    const f = raw / p;
    step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * p;
  }
  if (opts.integer && step < 1) step = 1;
  const out: number[] = [];
  const n = Math.ceil(max / step - 1e-9);
  for (let i = 0; i <= n; i++) out.push(Number((i * step).toPrecision(12)));
  return out;
}

/** Ticks of a log scale for counts: 0, 10, 100, ... up to at least `max` (1 would crowd 0). */
export function logTicks(max: number): number[] {
  const out = [0, 10];
  while (out[out.length - 1] < max || out.length < 3) out.push(out[out.length - 1] * 10);
  return out;
}

// ------------------------------------------------------------------ palette and pieces

/**
 * Run colours (Okabe-Ito, distinguishable with the common colour-vision
 * deficiencies; yellow left out as too pale on white), and dash patterns so
 * that lines stay apart in greyscale too.
 */
export const PALETTE: readonly string[] = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#000000', '#999999'];
const DASHES: readonly string[] = ['', '6 3', '2 3', '8 3 2 3', '1 2', '10 4'];

export function colorOf(i: number): string {
  return PALETTE[i % PALETTE.length];
}

export function dashOf(i: number): string {
  return DASHES[i % DASHES.length];
}

/** Estimated width of a character at the 11-12px sizes used here. */
const CHAR_PX = 6.6;
const FONT = 'font-family="system-ui, sans-serif"';

/** Rounded to 0.1 px: smaller files, same picture. */
function r1(v: number): string {
  return String(Math.round(v * 10) / 10);
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${r1(x)}" y="${r1(y)}"${attrs ? ' ' + attrs : ''}>${escapeXml(s)}</text>`;
}

/** Cuts a label to `px` of estimated width, with an ellipsis. */
function clip(s: string, px: number): string {
  const max = Math.max(1, Math.floor(px / CHAR_PX));
  return s.length <= max ? s : s.slice(0, Math.max(0, max - 1)) + '…';
}

function open(width: number, height: number, title: string, cls: string): string {
  return `<svg class="${cls}" role="img" viewBox="0 0 ${r1(width)} ${r1(height)}" width="${r1(width)}" height="${r1(height)}" ${FONT} font-size="11">`
    + `<title>${escapeXml(title)}</title>`
    + `<rect x="0" y="0" width="${r1(width)}" height="${r1(height)}" fill="#ffffff"/>`
    + text(8, 18, title, 'font-size="13" font-weight="600" fill="#222"');
}

export interface LegendItem {
  label: string;
  color: string;
  /** A line sample (with this dash pattern) instead of a filled box. */
  dash?: string;
  line?: boolean;
}

/** Legend items laid out in rows inside `width`; returns the SVG and its height. */
function legend(items: readonly LegendItem[], x0: number, y0: number, width: number): { svg: string; height: number } {
  if (!items.length) return { svg: '', height: 0 };
  const rowH = 18;
  let x = x0, y = y0, rows = 1;
  const parts: string[] = [];
  for (const it of items) {
    const label = clip(it.label, width - 24);
    const w = 24 + label.length * CHAR_PX + 14;
    if (x > x0 && x + w > x0 + width) {
      x = x0;
      y += rowH;
      rows++;
    }
    const swatch = it.line
      ? `<line x1="${r1(x)}" y1="${r1(y - 4)}" x2="${r1(x + 18)}" y2="${r1(y - 4)}" stroke="${it.color}" stroke-width="2.5"${it.dash ? ` stroke-dasharray="${it.dash}"` : ''}/>`
      : `<rect x="${r1(x + 4)}" y="${r1(y - 10)}" width="11" height="11" fill="${it.color}"/>`;
    parts.push(swatch + text(x + 22, y, label, 'fill="#333"'));
    x += w;
  }
  return { svg: `<g class="legend">${parts.join('')}</g>`, height: rows * rowH };
}

/** Horizontal grid lines with value labels on the left of the plot. */
function yAxis(tickValues: readonly number[], left: number, top: number, plotW: number, plotH: number, fmt: (v: number) => string,
  pos?: (v: number) => number): string {
  const max = tickValues[tickValues.length - 1] || 1;
  const at = pos ?? ((v: number) => v / max);
  const out: string[] = [];
  for (const t of tickValues) {
    const y = top + plotH - at(t) * plotH;
    out.push(`<line x1="${r1(left)}" y1="${r1(y)}" x2="${r1(left + plotW)}" y2="${r1(y)}" stroke="#e3e3e3"/>`);
    out.push(text(left - 6, y + 4, fmt(t), 'text-anchor="end" fill="#555"'));
  }
  out.push(`<line x1="${r1(left)}" y1="${r1(top)}" x2="${r1(left)}" y2="${r1(top + plotH)}" stroke="#888"/>`);
  out.push(`<line x1="${r1(left)}" y1="${r1(top + plotH)}" x2="${r1(left + plotW)}" y2="${r1(top + plotH)}" stroke="#888"/>`);
  return out.join('');
}

function emptyChart(width: number, height: number, title: string, message: string): string {
  return open(width, height, title, 'chart empty')
    + text(width / 2, height / 2 + 4, message, 'text-anchor="middle" fill="#777" font-style="italic"')
    + '</svg>';
}

// ------------------------------------------------------------------ line chart

export interface LineSeries {
  label: string;
  color: string;
  dash?: string;
  /** [x, y] points in increasing x; non-finite points are dropped. */
  points: ReadonlyArray<readonly [number, number]>;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  series: readonly LineSeries[];
  yFormat?: (v: number) => string;
  /** The y ticks' formatter, given the top tick (e.g. nsAxisFormat: one unit on the axis) [yFormat]. */
  yAxisFormat?: (top: number) => (v: number) => string;
  xFormat?: (v: number) => string;
  /** Byte values: ticks at powers of 1024. */
  yBinary?: boolean;
  /** Counts: integer ticks. */
  yInteger?: boolean;
  /** A fixed top of the y axis (e.g. 100 for percentages). */
  yMax?: number;
  /** Horizontal lines (limits). One far above the data is not drawn to scale but named as off scale. */
  limits?: ReadonlyArray<{ value: number; label: string }>;
  width?: number;
  height?: number;
  /** Shown instead of a plot when there is nothing to draw. */
  empty?: string;
}

/** A limit further than this factor above the data would flatten the data: it is named, not drawn. */
const LIMIT_SCALE_FACTOR = 10;

/** A line chart of series over a shared x axis (trace operations). */
export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 660;
  const plotH = o.height ?? 200;
  const left = 70, right = 20, top = 34;
  const plotW = width - left - right;
  const fmtY = o.yFormat ?? formatCompact;
  const fmtX = o.xFormat ?? formatCompact;
  const series = o.series.map((s) => ({ ...s, points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)) }));
  const all = series.flatMap((s) => s.points);
  if (!all.length) return emptyChart(width, 90, o.title, o.empty ?? 'no samples');

  const xMaxRaw = Math.max(...all.map((p) => p[0]));
  const xt = ticks(xMaxRaw, 6, { integer: true });
  const xMax = xt[xt.length - 1] || 1;
  const dataMax = Math.max(...all.map((p) => p[1]));
  const limits = (o.limits ?? []).filter((l) => Number.isFinite(l.value));
  const drawn = limits.filter((l) => dataMax <= 0 || l.value <= dataMax * LIMIT_SCALE_FACTOR);
  const offScale = limits.filter((l) => !drawn.includes(l));
  // Nothing but zeros and no fixed scale: no axes made up for it.
  if (dataMax <= 0 && o.yMax === undefined && !drawn.length) return emptyChart(width, 90, o.title, o.empty ?? 'zero throughout');
  const yt = o.yMax !== undefined
    ? ticks(o.yMax, 5, { binary: o.yBinary, integer: o.yInteger })
    : ticks(Math.max(dataMax, ...drawn.map((l) => l.value)), 5, { binary: o.yBinary, integer: o.yInteger });
  const yMax = yt[yt.length - 1] || 1;
  const sx = (x: number) => left + (x / xMax) * plotW;
  const sy = (y: number) => top + plotH - (Math.min(y, yMax) / yMax) * plotH;

  const parts: string[] = [yAxis(yt, left, top, plotW, plotH, o.yAxisFormat ? o.yAxisFormat(yMax) : fmtY)];
  for (const t of xt) {
    const x = sx(t);
    parts.push(`<line x1="${r1(x)}" y1="${r1(top + plotH)}" x2="${r1(x)}" y2="${r1(top + plotH + 4)}" stroke="#888"/>`);
    parts.push(text(x, top + plotH + 16, fmtX(t), 'text-anchor="middle" fill="#555"'));
  }
  parts.push(text(left + plotW / 2, top + plotH + 32, o.xLabel, 'text-anchor="middle" fill="#333"'));
  for (const l of drawn) {
    const y = sy(l.value);
    parts.push(`<line class="limit" x1="${r1(left)}" y1="${r1(y)}" x2="${r1(left + plotW)}" y2="${r1(y)}" stroke="#C00000" stroke-width="1.5" stroke-dasharray="5 4"/>`);
    parts.push(text(left + plotW - 4, y - 4, l.label, 'text-anchor="end" fill="#C00000"'));
  }
  offScale.forEach((l, i) => {
    parts.push(text(left + plotW - 4, top + 12 + 13 * i, `${l.label} (off scale, above)`, 'text-anchor="end" fill="#C00000"'));
  });
  series.forEach((s) => {
    if (!s.points.length) return;
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    const last = s.points[s.points.length - 1];
    const tip = `<title>${escapeXml(`${s.label}: ${fmtY(last[1])} at ${fmtX(last[0])}`)}</title>`;
    if (s.points.length === 1) {
      parts.push(`<circle cx="${r1(sx(last[0]))}" cy="${r1(sy(last[1]))}" r="3" fill="${s.color}">${tip}</circle>`);
    } else {
      const pts = s.points.map(([x, y]) => `${r1(sx(x))},${r1(sy(y))}`).join(' ');
      parts.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"${dash} stroke-linejoin="round">${tip}</polyline>`);
    }
  });
  const leg = legend(series.map((s) => ({ label: s.label, color: s.color, dash: s.dash, line: true })), left, top + plotH + 54, plotW);
  const height = top + plotH + 44 + leg.height + 6;
  return open(width, height, o.title, 'chart line') + parts.join('') + leg.svg + '</svg>';
}

// ------------------------------------------------------------------ grouped bars

export interface BarSeries {
  label: string;
  color: string;
  /** One value per category; null draws "n/a". */
  values: ReadonlyArray<number | null>;
}

export interface BarChartOptions {
  title: string;
  categories: readonly string[];
  series: readonly BarSeries[];
  yFormat?: (v: number) => string;
  yBinary?: boolean;
  yInteger?: boolean;
  yMax?: number;
  /** A log scale (log10(1 + v)), for counts spanning orders of magnitude (histograms). */
  yLog?: boolean;
  xLabel?: string;
  width?: number;
  height?: number;
  empty?: string;
}

/**
 * Vertical bars, grouped by category, one bar per series: a histogram (one
 * series) or runs side by side (one series per run).
 */
export function barChart(o: BarChartOptions): string {
  const width = o.width ?? 660;
  const plotH = o.height ?? 180;
  const left = 70, right = 20, top = 34;
  const plotW = width - left - right;
  const fmtY = o.yFormat ?? formatCompact;
  if (!o.categories.length || !o.series.length) return emptyChart(width, 90, o.title, o.empty ?? 'nothing to show');
  const values = o.series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v));
  const top0 = o.yMax ?? Math.max(0, ...values);
  // No value (or only zeros) and no fixed scale: no axes made up for it.
  if (!values.length || top0 <= 0) return emptyChart(width, 90, o.title, o.empty ?? (values.length ? 'zero everywhere' : 'nothing to show'));
  const yt = o.yLog ? logTicks(top0) : ticks(top0, 5, { binary: o.yBinary, integer: o.yInteger });
  const yMax = yt[yt.length - 1] || 1;
  /** Share of the plot height of a value (0..1). */
  const pos = o.yLog
    ? (v: number) => Math.log10(1 + Math.max(0, Math.min(v, yMax))) / Math.log10(1 + yMax)
    : (v: number) => Math.max(0, Math.min(v, yMax)) / yMax;
  const groupW = plotW / o.categories.length;
  const innerW = groupW * 0.8;
  const barW = innerW / o.series.length;
  const labelled = barW >= 30;
  const parts: string[] = [yAxis(yt, left, top, plotW, plotH, fmtY, pos)];
  o.categories.forEach((cat, c) => {
    const gx = left + c * groupW + (groupW - innerW) / 2;
    o.series.forEach((s, k) => {
      const v = s.values[c] ?? null;
      const x = gx + k * barW;
      if (v === null || !Number.isFinite(v)) {
        parts.push(text(x + barW / 2, top + plotH - 4, 'n/a', `text-anchor="middle" fill="#777" font-size="${barW < 18 ? 8 : 10}"`));
        return;
      }
      const h = pos(v) * plotH;
      parts.push(`<rect x="${r1(x + 0.5)}" y="${r1(top + plotH - h)}" width="${r1(Math.max(1, barW - 1))}" height="${r1(h)}" fill="${s.color}">`
        + `<title>${escapeXml(`${s.label}, ${cat}: ${fmtY(v)}`)}</title></rect>`);
      if (labelled) parts.push(text(x + barW / 2, top + plotH - h - 3, fmtY(v), 'text-anchor="middle" fill="#333" font-size="10"'));
    });
    parts.push(text(left + c * groupW + groupW / 2, top + plotH + 15, clip(cat, groupW), 'text-anchor="middle" fill="#555"'));
  });
  let y = top + plotH + 20;
  if (o.xLabel) {
    parts.push(text(left + plotW / 2, y + 13, o.xLabel, 'text-anchor="middle" fill="#333"'));
    y += 16;
  }
  const leg = legend(o.series.map((s) => ({ label: s.label, color: s.color })), left, y + 20, plotW);
  return open(width, y + 8 + leg.height + 6, o.title, 'chart bar') + parts.join('') + leg.svg + '</svg>';
}

// ------------------------------------------------------------------ stacked horizontal bars

export interface StackedBarsOptions {
  title: string;
  /** The stacked parts, in order, with their colours (one legend entry each). */
  parts: ReadonlyArray<{ label: string; color: string }>;
  /** One bar per row, a value per part. */
  rows: ReadonlyArray<{ label: string; values: readonly number[] }>;
  format: (v: number) => string;
  /** The axis ticks' formatter, given the top tick [format]. */
  axisFormat?: (top: number) => (v: number) => string;
  width?: number;
  empty?: string;
}

/** Horizontal stacked bars, one per row (run), with the total at the end. */
export function stackedBars(o: StackedBarsOptions): string {
  const width = o.width ?? 660;
  if (!o.rows.length) return emptyChart(width, 90, o.title, o.empty ?? 'nothing to show');
  const labelW = Math.min(220, Math.max(60, ...o.rows.map((r) => r.label.length * CHAR_PX + 16)));
  const totalW = 80;
  const left = 8 + labelW, top = 34, rowH = 26;
  const plotW = width - left - totalW - 10;
  const totals = o.rows.map((r) => r.values.reduce((s, v) => s + (Number.isFinite(v) && v > 0 ? v : 0), 0));
  if (Math.max(0, ...totals) <= 0) return emptyChart(width, 90, o.title, o.empty ?? 'zero for every run');
  const xt = ticks(Math.max(0, ...totals), 5, {});
  const xMax = xt[xt.length - 1] || 1;
  const axisFmt = o.axisFormat ? o.axisFormat(xMax) : o.format;
  const plotH = o.rows.length * rowH;
  const parts: string[] = [];
  for (const t of xt) {
    const x = left + (t / xMax) * plotW;
    parts.push(`<line x1="${r1(x)}" y1="${r1(top)}" x2="${r1(x)}" y2="${r1(top + plotH)}" stroke="#e3e3e3"/>`);
    parts.push(text(x, top + plotH + 14, axisFmt(t), 'text-anchor="middle" fill="#555"'));
  }
  o.rows.forEach((row, i) => {
    const y = top + i * rowH + 4;
    parts.push(text(left - 6, y + 13, clip(row.label, labelW - 6), 'text-anchor="end" fill="#333"'));
    let x = left;
    row.values.forEach((v, k) => {
      if (!Number.isFinite(v) || v <= 0) return;
      const w = (v / xMax) * plotW;
      const part = o.parts[k] ?? { label: `part ${k + 1}`, color: colorOf(k) };
      parts.push(`<rect x="${r1(x)}" y="${r1(y)}" width="${r1(Math.max(0.5, w))}" height="${rowH - 8}" fill="${part.color}">`
        + `<title>${escapeXml(`${row.label}, ${part.label}: ${o.format(v)}`)}</title></rect>`);
      x += w;
    });
    parts.push(text(x + 6, y + 13, o.format(totals[i]), 'fill="#222" font-weight="600"'));
  });
  parts.push(`<line x1="${r1(left)}" y1="${r1(top)}" x2="${r1(left)}" y2="${r1(top + plotH)}" stroke="#888"/>`);
  const leg = legend(o.parts, 8, top + plotH + 38, width - 16);
  return open(width, top + plotH + 24 + leg.height + 6, o.title, 'chart stacked') + parts.join('') + leg.svg + '</svg>';
}

// ------------------------------------------------------------------ gauges

export interface GaugeRow {
  label: string;
  value: number;
  /** The limit, or null when there is none ("no limit"). */
  limit: number | null;
  format: (v: number) => string;
}

/** Share of the limit above which a gauge turns orange, and red. */
const GAUGE_WARN = 0.7, GAUGE_ALARM = 0.9;

/** Horizontal gauges, one per row: a high-water mark against its limit. */
export function gauges(title: string, rows: readonly GaugeRow[], width = 660): string {
  if (!rows.length) return emptyChart(width, 90, title, 'nothing to show');
  const labelW = Math.min(220, Math.max(60, ...rows.map((r) => r.label.length * CHAR_PX + 16)));
  const left = 8 + labelW, top = 34, rowH = 30;
  const textW = 210;
  const barW = width - left - textW - 10;
  const parts: string[] = [];
  rows.forEach((g, i) => {
    const y = top + i * rowH;
    parts.push(text(left - 6, y + 14, clip(g.label, labelW - 6), 'text-anchor="end" fill="#333"'));
    const value = Number.isFinite(g.value) ? g.value : 0;
    if (g.limit === null || !Number.isFinite(g.limit)) {
      parts.push(`<rect x="${r1(left)}" y="${r1(y + 3)}" width="${r1(barW)}" height="16" fill="none" stroke="#aaa" stroke-dasharray="4 3"/>`);
      parts.push(text(left + barW + 8, y + 15, `${g.format(value)}, no limit`, 'fill="#333"'));
      return;
    }
    const share = g.limit > 0 ? value / g.limit : value > 0 ? Infinity : 0;
    const color = share >= GAUGE_ALARM ? '#C00000' : share >= GAUGE_WARN ? '#E69F00' : '#009E73';
    const w = Math.min(1, Number.isFinite(share) ? share : 1) * barW;
    parts.push(`<rect x="${r1(left)}" y="${r1(y + 3)}" width="${r1(barW)}" height="16" fill="#f0f0f0" stroke="#aaa"/>`);
    if (w > 0) {
      parts.push(`<rect x="${r1(left)}" y="${r1(y + 3)}" width="${r1(Math.max(1, w))}" height="16" fill="${color}">`
        + `<title>${escapeXml(`${g.label}: ${g.format(value)} of ${g.format(g.limit)}`)}</title></rect>`);
    }
    const pct = Number.isFinite(share) ? formatPercent(share * 100) : 'over';
    parts.push(text(left + barW + 8, y + 15, `${g.format(value)} of ${g.format(g.limit)} (${pct})`, 'fill="#333"'));
  });
  return open(width, top + rows.length * rowH + 6, title, 'chart gauge') + parts.join('') + '</svg>';
}
