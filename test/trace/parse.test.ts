/** The trace parser: every malformed input is an error naming its line; nothing passes silently. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTrace, formatRid, parseRid, optionsFromHeader, VtdError } from '../../src/index.js';
import { formatHeader, formatOp } from '../../src/trace/write.js';

const H = '{"vtd-trace": 1, "iommu": {"aw": 48}, "devices": ["00:03.0"]}';

function rejects(text: string, line: number, pattern: RegExp): void {
  assert.throws(() => parseTrace(text), (e: unknown) => {
    assert.ok(e instanceof VtdError, `not a VtdError: ${String(e)}`);
    assert.equal(e.code, 'TRACE');
    assert.equal(e.line, line, `line of: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test('header defaults follow the format', () => {
  const t = parseTrace('# comment\n\n{"vtd-trace": 1}\n');
  assert.deepEqual(t.header.config, { aw: 39, cm: false, ir: false, eim: false, pt: true, sc: false, dt: false, sm: false, flts: false, pasid: false, nest: false, nfr: 1, ram: 0x10000000n });
  assert.equal(t.ops.length, 0);
});

test('ops get zero-based indexes counting operations only', () => {
  const t = parseTrace(`${H}\n# x\n{"op":"rd","reg":"0x0","size":4}\n\n{"op":"dma","sid":"00:03.0","iova":"0x10","len":8,"dir":"w"}\n`);
  assert.deepEqual(t.ops.map((o) => [o.index, o.line, o.op]), [[0, 3, 'rd'], [1, 5, 'dma']]);
});

test('mem accepts hex bytes or little-endian quadwords', () => {
  const t = parseTrace(`${H}\n{"op":"mem","gpa":"0x10","hex":"0102"}\n{"op":"mem","gpa":"0x20","q":["0x0807060504030201"]}\n`);
  const [a, b] = t.ops;
  assert.ok(a.op === 'mem' && b.op === 'mem');
  assert.deepEqual([...a.data], [1, 2]);
  assert.deepEqual([...b.data], [1, 2, 3, 4, 5, 6, 7, 8]);
});

test('requester ids', () => {
  assert.equal(parseRid('02:00.1', 1, 'x'), 0x201);
  assert.equal(formatRid(0x18), '00:03.0');
  assert.equal(formatRid(parseRid('ff:1f.7', 1, 'x')), 'ff:1f.7');
});

test('malformed traces name the line', () => {
  rejects('', 1, /empty trace/);
  rejects('{"op":"rd"}', 1, /header/);
  rejects(`${H}\n{not json}`, 2, /not valid JSON/);
  rejects(`${H}\n[1,2]`, 2, /JSON object/);
  rejects(`${H}\n{"op":"frobnicate"}`, 2, /unknown op "frobnicate"/);
  rejects(`${H}\n{"reg":"0x0"}`, 2, /needs "op"/);
  rejects(`${H}\n{"op":"rd","size":4}`, 2, /missing field "reg"/);
  rejects(`${H}\n{"op":"rd","reg":"0x0","size":4,"colour":"blue"}`, 2, /unknown field "colour"/);
  rejects(`${H}\n{"op":"rd","reg":16,"size":4}`, 2, /hex string/);
  rejects(`${H}\n{"op":"rd","reg":"0x4","size":8}`, 2, /not aligned/);
  rejects(`${H}\n{"op":"rd","reg":"0x1000","size":4}`, 2, /above the largest/);
  rejects(`${H}\n{"op":"rd","reg":"0x0","size":2}`, 2, /"size" = 2 is outside 4..8|must be 4 or 8/);
  rejects(`${H}\n{"op":"wr","reg":"0x0","size":4,"val":"0x100000000"}`, 2, /above the largest/);
  rejects(`${H}\n{"op":"wr","reg":"0x0","size":8,"val":"0x1ffffffffffffffff"}`, 2, /at most 64 bits/);
  rejects(`${H}\n{"op":"dma","sid":"00:04.0","iova":"0x0","len":8,"dir":"r"}`, 2, /not listed/);
  rejects(`${H}\n{"op":"dma","sid":"0:3.0","iova":"0x0","len":8,"dir":"r"}`, 2, /requester id/);
  rejects(`${H}\n{"op":"dma","sid":"00:03.0","iova":"0x0","len":0,"dir":"r"}`, 2, /outside 1..4096/);
  rejects(`${H}\n{"op":"dma","sid":"00:03.0","iova":"0x0","len":8,"dir":"x"}`, 2, /"dir" must be one of/);
  rejects(`${H}\n{"op":"dma","sid":"00:03.0","iova":"0x0","len":8.5,"dir":"r"}`, 2, /integer/);
  rejects(`${H}\n{"op":"mem","gpa":"0x10"}`, 2, /exactly one of "hex" and "q"/);
  rejects(`${H}\n{"op":"mem","gpa":"0x10","hex":"abc"}`, 2, /byte pairs/);
  rejects(`${H}\n{"op":"mem","gpa":"0xffffff0","q":["0x1","0x2","0x3"]}`, 2, /outside guest RAM/);
  rejects(`${H}\n{"op":"mrd","gpa":"0x0","len":4097}`, 2, /outside 1..4096/);
  rejects(`${H}\n\n{"op":"mrd","gpa":"0xfffffff","len":2}`, 3, /outside guest RAM/);
});

test('malformed headers name the line', () => {
  rejects('# c\n{"vtd-trace": 2}', 2, /vtd-trace/);
  rejects('{"vtd-trace": 1, "iommu": {"aw": 40}}', 1, /aw must be 39, 48 or 57/);
  rejects('{"vtd-trace": 1, "iommu": {"awx": 40}}', 1, /unknown iommu option "awx"/);
  rejects('{"vtd-trace": 1, "iommu": {"cm": "yes"}}', 1, /cm must be true or false/);
  rejects('{"vtd-trace": 1, "iommu": {"nfr": 65}}', 1, /nfr/);
  rejects('{"vtd-trace": 1, "iommu": {"ram": "0x1001"}}', 1, /multiple of 4 KiB/);
  rejects('{"vtd-trace": 1, "iommu": {"eim": true}}', 1, /eim requires/);
  rejects('{"vtd-trace": 1, "devices": "00:03.0"}', 1, /array/);
  rejects('{"vtd-trace": 1, "devices": ["00:20.0"]}', 1, /device number|requester id/);
  rejects('{"vtd-trace": 1, "extra": 1}', 1, /unknown field "extra"/);
});

const SM = '{"vtd-trace": 1, "iommu": {"aw": 48, "sm": true, "pasid": true}, "devices": ["00:03.0"]}';

test('scalable-mode header keys: sm, flts, pasid, nest, and aw 57 with a first stage', () => {
  const t = parseTrace('{"vtd-trace": 1, "iommu": {"aw": 57, "sm": true, "flts": true, "pasid": true, "nest": true}}');
  const c = t.header.config;
  assert.deepEqual([c.aw, c.sm, c.flts, c.pasid, c.nest], [57, true, true, true, true]);
  const o = optionsFromHeader(c);
  assert.deepEqual([o.sm, o.flts, o.pasid, o.nest], [true, true, true, true]);
  assert.equal(parseTrace('{"vtd-trace": 1, "iommu": {"aw": 48, "sm": true, "flts": true}}').header.config.flts, true);
});

test('scalable-mode header rules are errors naming the rule', () => {
  rejects('{"vtd-trace": 1, "iommu": {"aw": 48, "flts": true}}', 1, /iommu\.flts requires iommu\.sm/);
  rejects('{"vtd-trace": 1, "iommu": {"pasid": true}}', 1, /iommu\.pasid requires iommu\.sm/);
  rejects('{"vtd-trace": 1, "iommu": {"aw": 48, "nest": true}}', 1, /iommu\.nest requires iommu\.sm/);
  rejects('{"vtd-trace": 1, "iommu": {"sm": true, "pasid": true, "dt": true}}', 1, /pasid and iommu\.dt exclude each other/);
  rejects('{"vtd-trace": 1, "iommu": {"sm": true, "flts": true}}', 1, /iommu\.flts requires iommu\.aw 48 or 57.*got aw 39/);
  rejects('{"vtd-trace": 1, "iommu": {"aw": 39, "sm": true, "nest": true}}', 1, /iommu\.nest requires iommu\.aw 48 or 57/);
  rejects('{"vtd-trace": 1, "iommu": {"sm": 1}}', 1, /sm must be true or false/);
});

test('dma with pasid, priv and exe', () => {
  const t = parseTrace(`${SM}\n{"op":"dma","sid":"00:03.0","iova":"0x1000","len":4,"dir":"r","pasid":1048575,"priv":true,"exe":false}\n{"op":"dma","sid":"00:03.0","iova":"0x1000","len":4,"dir":"w","pasid":0}\n{"op":"dma","sid":"00:03.0","iova":"0x1000","len":4,"dir":"w"}`);
  const [a, b, c] = t.ops;
  assert.ok(a.op === 'dma' && b.op === 'dma' && c.op === 'dma');
  assert.deepEqual([a.pasid, a.priv, a.exe], [0xfffff, true, false]);
  assert.deepEqual([b.pasid, b.priv, b.exe], [0, undefined, undefined]);
  assert.ok(!('pasid' in c) && !('priv' in c) && !('exe' in c), 'a request without PASID carries no PASID fields');
  rejects(`${SM}\n{"op":"dma","sid":"00:03.0","iova":"0x0","len":4,"dir":"r","pasid":1048576}`, 2, /"pasid" = 1048576 is outside 0..1048575/);
  rejects(`${SM}\n{"op":"dma","sid":"00:03.0","iova":"0x0","len":4,"dir":"r","pasid":"0x1"}`, 2, /"pasid" must be an integer/);
  rejects(`${SM}\n{"op":"dma","sid":"00:03.0","iova":"0x0","len":4,"dir":"r","priv":true}`, 2, /"priv" goes with a "pasid"/);
  rejects(`${SM}\n{"op":"dma","sid":"00:03.0","iova":"0x0","len":4,"dir":"r","exe":false}`, 2, /"exe" goes with a "pasid"/);
  rejects(`${SM}\n{"op":"dma","sid":"00:03.0","iova":"0x0","len":4,"dir":"r","pasid":1,"exe":"yes"}`, 2, /"exe" must be true or false/);
  rejects(`${H}\n{"op":"dma","sid":"00:03.0","iova":"0x0","len":4,"dir":"r","pasid":1}`, 2, /"pasid" needs a scalable-mode unit/);
});

test('the writer round-trips scalable-mode headers and dma fields', () => {
  const text = [
    formatHeader({ aw: 57, sm: true, flts: true, pasid: true, nest: true }, [0x18]),
    formatOp({ op: 'dma', sid: 0x18, iova: 0x1000n, len: 4, dir: 'r', pasid: 7, priv: true, exe: true }),
    formatOp({ op: 'dma', sid: 0x18, iova: 0x1000n, len: 4, dir: 'w', pasid: 0, priv: false }),
    formatOp({ op: 'dma', sid: 0x18, iova: 0x2000n, len: 4, dir: 'w' }),
  ].join('\n');
  assert.match(text, /"iommu":\{"aw":57,"sm":true,"flts":true,"pasid":true,"nest":true\}/);
  const t = parseTrace(text);
  const again = [formatHeader(t.header.config, t.header.devices), ...t.ops.map((o) => formatOp(o))].join('\n');
  assert.equal(again, [
    '{"vtd-trace":1,"iommu":{"aw":57,"cm":false,"ir":false,"eim":false,"pt":true,"sc":false,"dt":false,"sm":true,"flts":true,"pasid":true,"nest":true,"nfr":1,"ram":"0x10000000"},"devices":["00:03.0"]}',
    '{"op":"dma","sid":"00:03.0","iova":"0x1000","len":4,"dir":"r","pasid":7,"priv":true,"exe":true}',
    '{"op":"dma","sid":"00:03.0","iova":"0x1000","len":4,"dir":"w","pasid":0,"priv":false}',
    '{"op":"dma","sid":"00:03.0","iova":"0x2000","len":4,"dir":"w"}',
  ].join('\n'));
});
