// Scenario suites from peers, ported as traces (test/fixtures/scenarios):
// kvm-unit-tests' x86/intel-iommu and QEMU's intel-iommu qtests. Each
// NAME.jsonl says in its comments which facts it carries over; its
// NAME.expected.jsonl holds the architected answers (our core's, checked
// against the digest). Each runs on our core (exactly the expected lines) and
// on QEMU 7.2 (compared; the deviations it may show are listed in its
// "# conform-expect:" comment).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseTrace, replayTrace } from '../../src/index.js';
import { qemuAvailable, runTraceOnQemu } from '../../src/qemu/harness.js';
import { compareTrace } from '../../src/conform/compare.js';
import { ROOT } from '../helpers.js';

const DIR = join(ROOT, 'test', 'fixtures', 'scenarios');

interface Scenario { name: string; text: string; expected: string[]; deviations: string[] }

function scenarios(): Scenario[] {
  return readdirSync(DIR)
    .filter((f) => f.endsWith('.jsonl') && !f.endsWith('.expected.jsonl'))
    .sort()
    .map((f) => {
      const name = f.slice(0, -'.jsonl'.length);
      const text = readFileSync(join(DIR, f), 'utf8');
      const m = /^# conform-expect: (.*)$/m.exec(text);
      assert.ok(m, `${name}: no "# conform-expect:" comment`);
      const deviations = m[1].trim() === '(none)' ? [] : m[1].split(',').map((s) => s.trim());
      const expected = readFileSync(join(DIR, `${name}.expected.jsonl`), 'utf8').split('\n').filter((l) => l.trim() !== '');
      return { name, text, expected, deviations };
    });
}

describe('scenario suites', () => {
  const all = scenarios();
  test('the suites are there: kvm-unit-tests intel-iommu, QEMU intel-iommu qtests', () => {
    const names = all.map((s) => s.name);
    assert.ok(names.includes('kvm-unit-tests-intel-iommu'));
    assert.ok(names.some((n) => n.startsWith('qtest-intel-iommu-registers')));
    assert.ok(names.some((n) => n.startsWith('qtest-iommu-testdev')));
  });

  for (const s of all) {
    test(`${s.name}: our core gives exactly the architected answers`, () => {
      assert.deepEqual(replayTrace(parseTrace(s.text)), s.expected);
    });
  }

  test('kvm-unit-tests: DMA through edu and both interrupt-remapping paths give what the test checks', () => {
    const s = all.find((x) => x.name === 'kvm-unit-tests-intel-iommu')!;
    const r = new Map(replayTrace(parseTrace(s.text)).map((l) => [JSON.parse(l).i as number, JSON.parse(l)]));
    const at = (op: string) => [...r.values()].filter((x) => x.op === op);
    assert.deepEqual(at('dma').map((x) => x.gpa), ['0x410000', '0x410004']);
    assert.deepEqual(at('msi').map((x) => [x.addr, x.data]), [['0xfee00000', '0x40ed'], ['0xfee00000', '0x40ee']]);
    assert.equal(r.get(20).val, '0xc7000000'); // QIES | RTPS | IRTPS | TES | IRES
  });

  for (const s of all) {
    test(`${s.name}: QEMU 7.2 agrees, up to the deviations the trace names`, async () => {
      const a = qemuAvailable();
      assert.ok(a.ok, `QEMU is required for the scenario suites: ${a.ok ? '' : a.reason}`);
      const v = compareTrace(parseTrace(s.text), await runTraceOnQemu(s.text, { timeoutMs: 30_000 }));
      assert.notEqual(v.status, 'new', JSON.stringify(v.difference));
      assert.deepEqual([...new Set(v.events.map((e) => e.id))].sort(), [...s.deviations].sort());
    });
  }
});
