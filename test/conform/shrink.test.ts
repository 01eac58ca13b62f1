// Shrinking, on planted differences: the "QEMU" side is our own core with one
// answer deliberately altered, so the test needs no QEMU and knows exactly
// what the minimal trace must contain. The shrunk trace must still show the
// same difference and be 1-minimal (removing any one op loses it); the filed
// form must be a complete trace naming the seed, the op and both answers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTrace, replayTrace, type Trace } from '../../src/index.js';
import { compareTrace, type Verdict } from '../../src/conform/compare.js';
import { renderTrace, traceForSeed, type GeneratedTrace, type Unit } from '../../src/conform/gen/index.js';
import { fileDifference } from '../../src/conform/report.js';
import { plantDifference, type QemuAlteration } from '../../src/conform/run.js';
import { shrinkTrace, signature } from '../../src/conform/shrink.js';
import { formatOp } from '../../src/trace/write.js';

/** A stand-in for QEMU: our core, then the alteration. */
const plantedCheck = (alter: QemuAlteration) => async (text: string): Promise<Verdict> => {
  const trace = parseTrace(text);
  return compareTrace(trace, alter(replayTrace(trace), trace));
};

/** The first seed (from `from`) whose trace shows the planted difference. */
function seedShowing(alter: QemuAlteration, from = 1): { seed: number; g: GeneratedTrace; verdict: Verdict } {
  for (let seed = from; seed < from + 200; seed++) {
    const g = traceForSeed(seed);
    const trace = parseTrace(renderTrace(g));
    const verdict = compareTrace(trace, alter(replayTrace(trace), trace));
    if (verdict.status === 'new') return { seed, g, verdict };
  }
  throw new Error('no seed shows the planted difference');
}

async function assertOneMinimal(header: GeneratedTrace['header'], units: Unit[], want: string, check: (t: string) => Promise<Verdict>): Promise<void> {
  for (let i = 0; i < units.length; i++) {
    const without = [...units.slice(0, i), ...units.slice(i + 1)];
    const v = await check(renderTrace({ header, units: without }));
    assert.notEqual(signature(v), want, `op ${i} (${formatOp(units[i].op)}) could go: not minimal`);
  }
}

/** FSTS reads lie about a pending fault: PPF (bit 1) reads 0 on the "QEMU" side. */
const hidePpf: QemuAlteration = (lines: string[], trace: Trace) => lines.map((l) => {
  const o = JSON.parse(l) as { i: number; op: string; val?: string };
  const op = trace.ops[o.i];
  if (o.op !== 'rd' || op.op !== 'rd' || op.reg !== 0x34 || o.val === undefined || !(BigInt(o.val) & 2n)) return l;
  return JSON.stringify({ ...o, val: '0x' + (BigInt(o.val) & ~2n).toString(16) });
});

describe('shrinking a planted difference', () => {
  test('a DMA translated one page off: shrunk to the few ops that build that translation', async () => {
    const check = plantedCheck(plantDifference);
    const { seed, g, verdict } = seedShowing(plantDifference);
    const want = signature(verdict)!;
    assert.equal(want, `dma|${verdict.difference!.op.op === 'dma' ? verdict.difference!.op.dir : ''}|gpa`);
    const s = await shrinkTrace(g, want, check);
    const shrunk = parseTrace(renderTrace(s.trace));
    // Still the same difference, at the last op, which is the DMA.
    assert.equal(signature(s.verdict), want);
    assert.equal(s.verdict.difference!.index, shrunk.ops.length - 1);
    assert.equal(shrunk.ops.at(-1)!.op, 'dma');
    // What a translated DMA needs at least: root entry, context entry, a table per level, RTADDR, SRTP, TE.
    assert.ok(shrunk.ops.length <= 12, `${shrunk.ops.length} ops left of ${g.units.length}`);
    assert.ok(shrunk.ops.some((o) => o.op === 'wr' && o.reg === 0x20), 'RTADDR write kept');
    assert.ok(shrunk.ops.filter((o) => o.op === 'mem').length >= 4, 'root, context and table entries kept');
    assert.ok(s.runs < 400);
    await assertOneMinimal(g.header, s.trace.units, want, check);

    // Filed: a complete trace with the seed, the op and both answers in its comment block.
    const filed = fileDifference({ seed, hostile: false, trace: s.trace, verdict: s.verdict, shrunkFrom: s.from, runs: s.runs });
    assert.equal(parseTrace(filed).ops.length, shrunk.ops.length);
    assert.match(filed, new RegExp(`^# vtd conform: a NEW difference`));
    assert.match(filed, new RegExp(`# seed ${seed}; shrunk from ${g.units.length} to ${shrunk.ops.length} ops`));
    assert.match(filed, new RegExp(`# they differ at op ${shrunk.ops.length - 1} \\(dma\\)`));
    assert.match(filed, /#   vtd-wasm: \{"i":\d+,"op":"dma","ok":true,"gpa":"0x[0-9a-f]+"\}/);
    assert.match(filed, /#   QEMU: {5}\{"i":\d+,"op":"dma","ok":true,"gpa":"0x[0-9a-f]+"\}/);
  });

  test('a fault-status read that hides PPF: shrunk to the fault and the read', async () => {
    const check = plantedCheck(hidePpf);
    const { g, verdict } = seedShowing(hidePpf);
    const want = signature(verdict)!;
    assert.equal(want, 'rd|0x34|val');
    const s = await shrinkTrace(g, want, check, { jobs: 3 });
    const shrunk = parseTrace(renderTrace(s.trace));
    assert.equal(shrunk.ops.at(-1)!.op, 'rd');
    // A recorded fault needs a faulting request before the read.
    assert.ok(shrunk.ops.some((o) => o.op === 'dma' || o.op === 'msi'));
    assert.ok(shrunk.ops.length <= 10, `${shrunk.ops.length} ops left of ${g.units.length}`);
    await assertOneMinimal(g.header, s.trace.units, want, check);
  });

  test('a known deviation is not shrunk as new: the shrinker keeps only candidates that are NEW', async () => {
    // Every candidate classified (not new) is refused; a start that does not show the difference is an error.
    const g = traceForSeed(1);
    await assert.rejects(shrinkTrace(g, 'dma|r|gpa', plantedCheck((l) => l)), /does not show the difference/);
  });
});
