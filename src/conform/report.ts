/**
 * A new difference, written as a complete trace file ready to file: a
 * comment block naming the seed, the op where the two units differ and both
 * answers, then the header and the (shrunk) ops with their comments.
 */
import type { Verdict } from './compare.js';
import { renderTrace } from './gen/index.js';
import { describe, parseResult } from './results.js';
import type { TraceShape } from './shrink.js';

export interface FiledDifference {
  seed: number;
  hostile: boolean;
  trace: TraceShape;
  verdict: Verdict;
  /** Ops in the generated trace, and QEMU runs the shrinking took. */
  shrunkFrom?: number;
  runs?: number;
  qemuVersion?: string;
}

export function fileDifference(f: FiledDifference): string {
  const d = f.verdict.difference!;
  const ours = d.ours ? parseResult(d.ours) : undefined;
  const qemu = d.qemu ? parseResult(d.qemu) : undefined;
  const lead = [
    'vtd conform: a NEW difference between vtd-wasm and QEMU' + (f.qemuVersion ? ` ${f.qemuVersion}` : '') + "'s intel-iommu",
    `seed ${f.seed}${f.hostile ? ' (hostile mode)' : ''}` + (f.shrunkFrom !== undefined ? `; shrunk from ${f.shrunkFrom} to ${f.trace.units.length} ops in ${f.runs} runs` : ''),
    `they differ at op ${d.index} (${d.op.op}):`,
    `  vtd-wasm: ${d.ours ?? '(no result line)'}`,
    `  QEMU:     ${d.qemu ?? '(no result line)'}`,
    `  in ${d.fields.map((x) => `${x.field} (ours ${x.ours ?? '-'}, QEMU ${x.qemu ?? '-'})`).join('; ')}`,
    `  vtd-wasm: ${describe(ours)}; QEMU: ${describe(qemu)}`,
    `  ${d.note}`,
  ];
  if (f.verdict.events.length) {
    lead.push('known deviations seen before it: ' + [...new Set(f.verdict.events.map((e) => e.id))].join(', '));
  }
  lead.push(
    'No entry of src/conform/deviations.ts explains it. Check the digest: if QEMU departs from the',
    'architecture, add a deviation (id, reason, architected answer); if vtd-wasm does, it is a bug.',
    'Reproduce: vtd replay FILE (ours); node --import tsx src/qemu/run.ts FILE (QEMU).',
    '',
  );
  return renderTrace(f.trace, lead);
}
