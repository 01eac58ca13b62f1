/**
 * The conformance traces (test/fixtures/conformance):
 * every architected result line must come out of the core, numerically equal
 * (`fault` compared where both sides give one, as the format says); traces
 * without a dev- prefix must produce no other line. Each trace's whole output
 * must also equal the independent reference model's (which asserts the
 * architected answers the dev- traces' comments give for lines their expected
 * files leave out).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTrace, replayTrace } from '../../src/index.js';
import { replayWithModel } from '../model/replay-model.js';
import { conformanceCases, normalize } from '../helpers.js';

function sameResult(got: string, expected: string, what: string): void {
  const g = normalize(got), e = normalize(expected);
  if (!('fault' in e)) delete g.fault;
  if (!('fault' in g)) delete e.fault;
  assert.deepEqual(g, e, what);
}

/** Our result for op `i` of a trace. */
function resultOf(lines: string[], i: number): Record<string, unknown> {
  const l = lines.find((x) => JSON.parse(x).i === i);
  assert.ok(l, `no result for op ${i}`);
  return JSON.parse(l);
}

for (const c of conformanceCases()) {
  const usesMsi = parseTrace(c.trace).ops.some((o) => o.op === 'msi');
  test(`conformance ${c.name}: architected results`, () => {
    const ours = replayTrace(parseTrace(c.trace));
    const byIndex = new Map(ours.map((l) => [JSON.parse(l).i as number, l]));
    for (const e of c.expected) {
      const i = JSON.parse(e).i as number;
      const got = byIndex.get(i);
      assert.ok(got !== undefined, `missing result line for op ${i}; expected ${e}`);
      sameResult(got, e, `op ${i}`);
    }
    if (!c.dev) {
      // No other line, except those an expected file leaves out by design
      // (its comments say why): there QEMU agrees with the architecture, so
      // our line must equal QEMU's.
      const expectedIdx = new Set(c.expected.map((e) => JSON.parse(e).i as number));
      const qemu = new Map((c.qemu ?? []).map((q) => [JSON.parse(q).i as number, q]));
      for (const l of ours) {
        const i = JSON.parse(l).i as number;
        if (expectedIdx.has(i)) continue;
        const q = qemu.get(i);
        assert.ok(q !== undefined, `extra result line ${l}`);
        sameResult(l, q, `op ${i} (left out of expected, compared with QEMU)`);
      }
    }
  });
  test(`conformance ${c.name}: core equals the reference model line for line${usesMsi ? ' (interrupts included)' : ''}`, () => {
    assert.deepEqual(replayTrace(parseTrace(c.trace)), replayWithModel(c.trace));
  });
}

test('dev-ir-faults: the architected answers its comments give where QEMU 7.2 deviates', () => {
  const c = conformanceCases().find((x) => x.name === 'dev-ir-faults')!;
  const r = replayTrace(parseTrace(c.trace));
  // 1. The interrupt-remapping fault is recorded: FSTS.PPF, FI = index << 48, FR 22h with the SID, IP set.
  assert.deepEqual(resultOf(r, 13), { i: 13, op: 'msi', ok: false, fault: '0x22' });
  assert.equal(resultOf(r, 14).val, '0x2');
  assert.equal(resultOf(r, 15).val, '0x9000000000000');
  assert.equal(resultOf(r, 16).val, '0x8000002200000018');
  assert.equal(resultOf(r, 17).val, '0xc0000000');
  // 2. IM set without CAP.PI, 3. xAPIC DST bit 32: reserved, 24h.
  assert.deepEqual(resultOf(r, 20), { i: 20, op: 'msi', ok: false, fault: '0x24' });
  assert.deepEqual(resultOf(r, 23), { i: 23, op: 'msi', ok: false, fault: '0x24' });
  // 4. SVT = 2, bus range start SID[15:8] = 0 .. end SID[7:0] = 1: bus 0 passes.
  assert.deepEqual(resultOf(r, 26), { i: 26, op: 'msi', ok: true, addr: '0xfee04000', data: '0x4033' });
  // 5. Compatibility format with CFIS = 0: blocked, 25h. 6. CFI sets CFIS.
  assert.deepEqual(resultOf(r, 28), { i: 28, op: 'msi', ok: false, fault: '0x25' });
  assert.equal(resultOf(r, 30).val, '0x7800000');
});

test('ir-remap: blocked interrupts carry the architected fault reasons (QEMU gives none)', () => {
  const c = conformanceCases().find((x) => x.name === 'ir-remap')!;
  const r = replayTrace(parseTrace(c.trace));
  assert.equal(resultOf(r, 17).fault, '0x26'); // SVT=1 from another device
  assert.equal(resultOf(r, 19).fault, '0x22'); // not present
  assert.equal(resultOf(r, 20).fault, '0x21'); // index 16 of 16
  assert.equal(resultOf(r, 22).fault, '0x26'); // SQ=3 but another device
  assert.equal(resultOf(r, 25).fault, '0x21'); // handle bit 15 (address bit 2)
});
