/**
 * The corpus exercises the whole unit: the conformance traces
 * (test/fixtures/conformance, qemu-aborts/ included) and the coverage traces
 * (test/fixtures/coverage: what QEMU cannot run, scalable-mode faults included) are replayed through the
 * core, and its own counters, summed over the corpus, must show every fault
 * reason it can raise recorded, every invalidation kind and granularity
 * performed and every walk level read. A reason, kind or level that no trace
 * reaches fails here by name: add a trace that reaches it, never drop it from
 * the list.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseTrace } from '../../src/trace/parse.js';
import { Replayer, replayTrace } from '../../src/replay/replayer.js';
import { conformanceCases, ROOT } from '../helpers.js';
import { replayWithModel } from '../model/replay-model.js';

const COVERAGE = join(ROOT, 'test', 'fixtures', 'coverage');

/** The coverage traces: name, text, expected result lines. */
function coverageCases(): { name: string; trace: string; expected: string[] }[] {
  return readdirSync(COVERAGE).filter((f) => f.endsWith('.jsonl') && !f.endsWith('.expected.jsonl')).sort().map((f) => {
    const name = f.slice(0, -'.jsonl'.length);
    const expected = readFileSync(join(COVERAGE, `${name}.expected.jsonl`), 'utf8').split('\n').filter((l) => l.trim() !== '');
    return { name, trace: readFileSync(join(COVERAGE, f), 'utf8'), expected };
  });
}

/**
 * Reasons the core declares but cannot raise, with the reason why. Dh is the
 * fault of a translation request (ATS), and this unit receives none: every
 * request it translates is untranslated.
 */
const NEVER_RAISED: Record<string, string> = { FR_ATS_BLOCKED: 'no translation requests (ATS) reach the unit' };

/**
 * The fault reasons the core declares (`@inline export const FR_*: u32 = 0x..;`
 * in assembly/faults.ts for DMA remapping, digest §5.2, and assembly/irstate.ts
 * for interrupt remapping, §5.3), read from its sources so that a reason added
 * there is required here too.
 */
function declaredReasons(): Map<number, string> {
  const out = new Map<number, string>();
  for (const f of ['faults.ts', 'irstate.ts']) {
    const src = readFileSync(join(ROOT, 'assembly', f), 'utf8');
    for (const m of src.matchAll(/^@inline export const (FR_[A-Z0-9_]+): u32 = (0x[0-9a-f]+);$/gim)) {
      if (!(m[1] in NEVER_RAISED)) out.set(Number(m[2]), m[1]);
    }
  }
  return out;
}

/** Every conformance trace replayed; the core's counters summed over them. */
function corpusCounters(): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const c of [...conformanceCases(), ...coverageCases()]) {
    const trace = parseTrace(c.trace);
    const r = new Replayer(trace);
    for (const op of trace.ops) r.step(op);
    r.finish();
    for (const [k, v] of Object.entries(r.iommu.counters())) sum[k] = (sum[k] ?? 0) + v;
  }
  return sum;
}

const counters = corpusCounters();

for (const c of coverageCases()) {
  test(`coverage trace ${c.name}: the architected results, equal to the reference model's line for line`, () => {
    const ours = replayTrace(parseTrace(c.trace));
    assert.deepEqual(ours, c.expected);
    assert.deepEqual(ours, replayWithModel(c.trace));
  });
}

test('the fault-reason list is read from the core (13 DMA-remapping, 7 interrupt-remapping and 37 scalable-mode reasons)', () => {
  const reasons = [...declaredReasons().keys()].sort((a, b) => a - b);
  assert.deepEqual(reasons, [
    0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8, 0x9, 0xa, 0xb, 0xc, 0xe, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26,
    0x30, 0x31, 0x38, 0x39, 0x3a, 0x40, 0x41, 0x42, 0x45, 0x46, 0x48, 0x50, 0x51, 0x52, 0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d,
    0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x7a, 0x7b, 0x80, 0x81, 0x83, 0x85, 0x86, 0x87,
  ]);
});

test('the corpus makes the unit record every fault reason it can raise', () => {
  const missing = [...declaredReasons()]
    .filter(([r]) => !((counters[`fault.reason.0x${r.toString(16).padStart(2, '0')}`] ?? 0) > 0))
    .map(([r, name]) => `${name} (0x${r.toString(16)})`);
  assert.deepEqual(missing, [], 'fault reasons no trace of the corpus raises');
  assert.ok((counters['fault.fpdSuppressed'] ?? 0) > 0, 'a fault suppressed by FPD');
});

test('the corpus performs every invalidation kind and granularity', () => {
  const kinds = [
    'ccmd.global', 'ccmd.domain', 'ccmd.device', // context cache, by register or descriptor
    'iotlbInv.global', 'iotlbInv.domain', 'iotlbInv.page', // IOTLB, by register or descriptor
    'qi.context', 'qi.iotlb', 'qi.devtlb', 'qi.iec', 'qi.wait', // descriptors of each type
    'qi.type6', 'qi.type7', // PASID-based IOTLB and PASID-cache (scalable mode)
  ];
  assert.deepEqual(kinds.filter((k) => !((counters[k] ?? 0) > 0)), [], 'invalidations no trace of the corpus performs');
});

test('the corpus makes request walks read entries at every level (1..5), first-stage walks and their Accessed/Dirty writes included', () => {
  const levels = [...[1, 2, 3, 4, 5].map((l) => `walk.level${l}`), 'walk.firstStage', 'walk.adWrites'];
  assert.deepEqual(levels.filter((k) => !((counters[k] ?? 0) > 0)), [], 'walk levels no trace of the corpus reads');
});
