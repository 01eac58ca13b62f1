/** Unit metrics of a replay count what the requests did, whether or not a shadow walks the tables too. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseTrace } from '../../src/trace/parse.js';
import { Replayer, type ReplayOptions } from '../../src/replay/replayer.js';
import { unitMetrics } from '../../src/report/metrics.js';

const TRACE = readFileSync(fileURLToPath(new URL('../../examples/network-small.jsonl', import.meta.url)), 'utf8');

function replay(options: ReplayOptions): Replayer {
  const t = parseTrace(TRACE);
  const r = new Replayer(t, options);
  for (const op of t.ops) r.step(op);
  r.finish();
  return r;
}

test('unit metrics are the same with and without shadow sync (its range walks and context reads count apart)', () => {
  const plain = replay({});
  const shadowed = replay({ shadow: { mode: 'merged', backend: 'type1' } });
  const c = shadowed.iommu.counters();
  const syncReads = shadowed.shadow?.metrics.entriesRead ?? 0;
  assert.ok(syncReads > 0, 'the shadow walked the tables');
  assert.equal(c['rangeWalk.entries'], syncReads);
  assert.equal(plain.iommu.counters()['rangeWalk.entries'], 0);
  const m = unitMetrics(plain);
  assert.ok(m.walks > 0 && m.entriesRead >= m.walks);
  assert.deepEqual(unitMetrics(shadowed), m);
});
