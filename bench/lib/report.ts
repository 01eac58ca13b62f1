// Metrics of one run: the human-readable tables and the JSON lines (`--json`).

export type Unit = 'translations/s' | 'remaps/s' | 'changes/s' | 'us' | 'ratio';

/** One metric, exactly as printed in JSON. */
export interface Metric {
  name: string;
  value: number;
  unit: Unit;
  /** Name of the metric this one is compared with, or null. */
  baseline: string | null;
  /** value / baseline's value, or null. For a unit "ratio" metric with a baseline, the value itself. */
  ratio: number | null;
}

interface Row extends Metric {
  /** Margin of error, percent, when measured. */
  rme?: number;
  note?: string;
}

/** Significant digits kept in the JSON (timings are not more precise than this). */
const DIGITS = 6;
const round = (v: number): number => Number(v.toPrecision(DIGITS));

export class Report {
  private readonly rows: Row[] = [];
  private sectionStart = 0;

  has(name: string): boolean {
    return this.rows.some((r) => r.name === name);
  }

  value(name: string): number {
    const r = this.rows.find((x) => x.name === name);
    if (!r) throw new Error(`internal: no metric ${name}`);
    return r.value;
  }

  /** Adds a measured metric, compared with `baseline` (a metric added earlier in this run) when given. */
  add(name: string, value: number, unit: Unit, baseline: string | null = null, extra: { rme?: number; note?: string } = {}): void {
    if (this.has(name)) throw new Error(`internal: metric ${name} added twice`);
    const ratio = baseline === null ? null : value / this.value(baseline);
    this.rows.push({ name, value, unit, baseline, ratio, ...extra });
  }

  /**
   * Adds a ratio metric `name` = numerator / denominator (both metrics of this run). Its value is the ratio, its
   * baseline the denominator, and its ratio field repeats the value.
   */
  addRatio(name: string, numerator: string, denominator: string, note?: string): number {
    const r = this.value(numerator) / this.value(denominator);
    this.rows.push({ name, value: r, unit: 'ratio', baseline: denominator, ratio: r, note: note ?? `${numerator} / ${denominator}` });
    return r;
  }

  /** Prints the metrics added since the previous call as a table under `title`. */
  printSection(title: string, lines: string[] = []): void {
    const rows = this.rows.slice(this.sectionStart);
    this.sectionStart = this.rows.length;
    const out: string[] = ['', `== ${title}`, ...lines.map((l) => `   ${l}`)];
    const cells = rows.map((r) => [
      r.name,
      formatValue(r.value, r.unit),
      r.unit === 'ratio' ? '' : r.unit,
      r.rme === undefined ? '' : `±${r.rme.toFixed(1)}%`,
      r.ratio === null || r.unit === 'ratio' ? '' : `${formatRatio(r.ratio)} of ${r.baseline}`,
      r.note ?? '',
    ]);
    const head = ['metric', 'value', 'unit', 'error', 'vs baseline', 'note'];
    const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
    const line = (c: string[]): string => c.map((x, i) => (i === 1 ? x.padStart(widths[i]) : x.padEnd(widths[i]))).join('  ').trimEnd();
    out.push(line(head), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line));
    console.log(out.join('\n'));
  }

  /** Drops the metrics added since the last printed section (a suite that aborted); returns how many. */
  discardSection(): number {
    const dropped = this.rows.length - this.sectionStart;
    this.rows.length = this.sectionStart;
    return dropped;
  }

  /** One JSON object per metric, one per line. */
  jsonLines(): string[] {
    return this.rows.map((r) => JSON.stringify({
      name: r.name, value: round(r.value), unit: r.unit, baseline: r.baseline, ratio: r.ratio === null ? null : round(r.ratio),
    } satisfies Metric));
  }
}

function formatValue(v: number, unit: Unit): string {
  if (unit === 'ratio') return `${formatRatio(v)}`;
  if (unit === 'us') return v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0);
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)} M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)} k`;
  return v.toFixed(0);
}

function formatRatio(r: number): string {
  return r >= 100 ? `${r.toFixed(0)}x` : r >= 10 ? `${r.toFixed(1)}x` : r >= 0.1 ? `${r.toFixed(3)}x` : `${r.toPrecision(3)}x`;
}
