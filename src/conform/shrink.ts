/**
 * Shrinking a trace that shows a new difference to a minimal one that still
 * shows it (delta debugging over ops).
 *
 * The trace is first cut after the op where the difference shows. Then
 * chunks of ops are removed, halving the chunk size down to single ops,
 * keeping every removal after which the same difference still shows (same
 * op kind, same register or direction, same differing fields); this repeats
 * until no single op can go. `mem` ops writing several quadwords are then
 * split into one op per quadword and the removal runs again, so only the
 * entries that matter stay (highest quadword first, so an entry's present
 * bit is still written last). The result is 1-minimal: removing any one op
 * loses the difference.
 *
 * Candidates are checked by `check`, which runs the other side (QEMU, or a
 * stand-in in tests) and compares; up to `jobs` candidates run at once and
 * the first (in trace order) that keeps the difference wins, so the result
 * does not depend on timing.
 */
import { parseTrace } from '../trace/parse.js';
import type { Verdict } from './compare.js';
import { renderTrace, type GeneratedTrace, type Unit } from './gen/index.js';

export type TraceShape = Pick<GeneratedTrace, 'header' | 'units'>;

/** What identifies "the same difference" across candidates. */
export function signature(v: Verdict): string | undefined {
  const d = v.difference;
  if (v.status !== 'new' || !d) return undefined;
  const where = d.op.op === 'rd' || d.op.op === 'wr' ? `0x${d.op.reg.toString(16)}` : d.op.op === 'dma' ? d.op.dir : '';
  return `${d.op.op}|${where}|${d.fields.map((f) => f.field).sort().join(',')}`;
}

export interface ShrinkOptions {
  /** Most candidate runs [400]. */
  maxRuns?: number;
  /** Candidates checked at once [1]. */
  jobs?: number;
}

export interface ShrinkResult {
  trace: TraceShape;
  /** The verdict on the shrunk trace. */
  verdict: Verdict;
  runs: number;
  from: number;
}

/**
 * `check(text)` returns the verdict for a candidate, or undefined when the
 * candidate cannot run (it must then count as not showing the difference).
 */
export async function shrinkTrace(start: TraceShape, want: string, check: (text: string) => Promise<Verdict | undefined>, opts: ShrinkOptions = {}): Promise<ShrinkResult> {
  const maxRuns = opts.maxRuns ?? 400;
  const jobs = Math.max(1, opts.jobs ?? 1);
  let runs = 0;
  let best: { units: Unit[]; verdict: Verdict } | undefined;

  const test = async (units: Unit[]): Promise<Verdict | undefined> => {
    runs++;
    const text = renderTrace({ header: start.header, units });
    try {
      parseTrace(text);
    } catch {
      return undefined;
    }
    const v = await check(text);
    return v && signature(v) === want ? v : undefined;
  };

  /** The first candidate (in order) that keeps the difference, checking `jobs` at a time. */
  const firstKeeping = async (cands: Unit[][]): Promise<{ units: Unit[]; verdict: Verdict } | undefined> => {
    for (let i = 0; i < cands.length && runs < maxRuns; i += jobs) {
      const batch = cands.slice(i, i + jobs).slice(0, maxRuns - runs);
      const vs = await Promise.all(batch.map((c) => test(c)));
      const k = vs.findIndex((v) => v !== undefined);
      if (k >= 0) return { units: batch[k], verdict: vs[k]! };
    }
    return undefined;
  };

  const cut = (units: Unit[], v: Verdict): Unit[] => units.slice(0, v.difference!.index + 1);

  const v0 = await test(start.units);
  if (!v0) throw new Error('shrinkTrace: the starting trace does not show the difference');
  best = { units: cut(start.units, v0), verdict: v0 };

  /**
   * Removes chunks of `chunk` ops, walking through the trace once per size
   * (a removal that keeps the difference is kept and the walk goes on from
   * the same place), halving the size down to 1; at size 1 it walks again
   * until nothing more can go.
   */
  const ddmin = async (): Promise<void> => {
    let chunk = Math.max(1, Math.floor(best!.units.length / 2));
    for (;;) {
      let progress = false;
      for (let at = 0; at < best!.units.length && runs < maxRuns; ) {
        const u = best!.units;
        const cands: Array<{ at: number; units: Unit[] }> = [];
        for (let k = 0; k < jobs && at + k * chunk < u.length; k++) {
          const s0 = at + k * chunk;
          const c = [...u.slice(0, s0), ...u.slice(s0 + chunk)];
          if (c.length) cands.push({ at: s0, units: c });
        }
        if (!cands.length) break;
        const found = await firstKeeping(cands.map((c) => c.units));
        if (found) {
          const k = cands.findIndex((c) => c.units === found.units);
          best = { units: cut(found.units, found.verdict), verdict: found.verdict };
          at = cands[k].at;
          progress = true;
        } else at += cands.length * chunk;
      }
      if (runs >= maxRuns) return;
      if (chunk === 1) {
        if (!progress) return;
      } else chunk = Math.max(1, Math.floor(chunk / 2));
    }
  };

  await ddmin();
  // One quadword per mem op, then again.
  const split: Unit[] = [];
  for (const u of best.units) {
    const op = u.op;
    if (op.op !== 'mem' || op.q === undefined || op.q.length < 2) {
      split.push(u);
      continue;
    }
    // Highest quadword first: a context or root entry then gets its present bit (in the low
    // quadword) last, as a driver writes it, so the split opens no window of its own.
    for (let i = op.q.length - 1; i >= 0; i--) {
      split.push({ comments: i === 0 ? u.comments : [], op: { op: 'mem', gpa: op.gpa + 8n * BigInt(i), q: [op.q[i]] } });
    }
  }
  if (split.length !== best.units.length && runs < maxRuns) {
    const v = await test(split);
    if (v) {
      best = { units: cut(split, v), verdict: v };
      await ddmin();
    }
  }
  return { trace: { header: start.header, units: best.units }, verdict: best.verdict, runs, from: start.units.length };
}
