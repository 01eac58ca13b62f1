/**
 * Replay hands a `dma`'s PASID attributes to the unit as the scalable-mode
 * contract says (issue 13): `translateInto(sid, iova, dir, len, out,
 * {pasid, priv, exe})` for a request with a PASID, the plain call for one
 * without. The unit's call is observed through a spy, so this holds whatever
 * the core does with the request.
 *
 *   node --import tsx --test test/replay/pasid-request.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Iommu } from '../../src/iommu.js';
import { parseTrace } from '../../src/trace/parse.js';
import { replayTrace } from '../../src/replay/replayer.js';

test('a dma with pasid reaches translateInto with {pasid, priv, exe}; one without keeps the five-argument call', () => {
  const t = parseTrace([
    '{"vtd-trace": 1, "iommu": {"aw": 48, "sm": true, "pasid": true}, "devices": ["00:03.0"]}',
    '{"op":"dma","sid":"00:03.0","iova":"0x1000","len":4,"dir":"r","pasid":5,"priv":true}',
    '{"op":"dma","sid":"00:03.0","iova":"0x2000","len":8,"dir":"w","pasid":0,"exe":true}',
    '{"op":"dma","sid":"00:03.0","iova":"0x3000","len":2,"dir":"r"}',
  ].join('\n'));
  // Translation is off (TE was never set): every request, with PASID or not, passes
  // unchanged; what is checked is the call replay makes.
  const calls: unknown[][] = [];
  const original = Iommu.prototype.translateInto;
  Iommu.prototype.translateInto = function (this: Iommu, ...args: Parameters<typeof original>) {
    calls.push(args.map((a, i) => (i === 4 ? 'out' : a)));
    return original.apply(this, args);
  };
  try {
    const lines = replayTrace(t);
    assert.deepEqual(lines, [
      '{"i":0,"op":"dma","ok":true,"gpa":"0x1000"}',
      '{"i":1,"op":"dma","ok":true,"gpa":"0x2000"}',
      '{"i":2,"op":"dma","ok":true,"gpa":"0x3000"}',
    ]);
  } finally {
    Iommu.prototype.translateInto = original;
  }
  assert.deepEqual(calls, [
    [0x18, 0x1000n, 'r', 4, 'out', { pasid: 5, priv: true, exe: false }],
    [0x18, 0x2000n, 'w', 8, 'out', { pasid: 0, priv: false, exe: true }],
    [0x18, 0x3000n, 'r', 2, 'out'],
  ]);
});
