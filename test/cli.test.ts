/** The vtd command line: exact result lines on stdout, clear errors and exit statuses. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, CONFORMANCE } from './helpers.js';

const VTD = join(ROOT, 'bin', 'vtd.js');

function vtd(args: string[], input?: string) {
  return spawnSync(process.execPath, [VTD, ...args], { input, encoding: 'utf8' });
}

test('replay prints exactly the result lines', () => {
  const r = vtd(['replay', join(CONFORMANCE, 'basic-4level.jsonl')]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, readFileSync(join(CONFORMANCE, 'basic-4level.expected.jsonl'), 'utf8'));
  assert.equal(r.stderr, '');
});

test('replay reads standard input with -', () => {
  const r = vtd(['replay', '-'], readFileSync(join(CONFORMANCE, 'two-buses.jsonl'), 'utf8'));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, readFileSync(join(CONFORMANCE, 'two-buses.expected.jsonl'), 'utf8'));
});

test('--summary goes to standard error and leaves standard output exact', () => {
  const r = vtd(['replay', join(CONFORMANCE, 'faults-every-level.jsonl'), '--summary', '--counters']);
  assert.equal(r.status, 0);
  assert.equal(r.stdout, readFileSync(join(CONFORMANCE, 'faults-every-level.expected.jsonl'), 'utf8'));
  assert.match(r.stderr, /DMA: 2 translated, 7 faulted \(reason reported\), 1 suppressed by FPD/);
  assert.match(r.stderr, /fault\.reason\.0x02 2/);
});

test('a malformed trace exits 2 naming the line, with nothing on standard output', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtd-cli-'));
  const f = join(dir, 'bad.jsonl');
  writeFileSync(f, '{"vtd-trace": 1, "devices": ["00:03.0"]}\n{"op":"rd","reg":"0x0","size":4}\n{"op":"dma","sid":"00:03.0"}\n');
  const r = vtd(['replay', f]);
  assert.equal(r.status, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /line 3: dma: missing field "iova"/);
});

test('msi ops replay through interrupt remapping', () => {
  const r = vtd(['replay', join(CONFORMANCE, 'ram-errors.jsonl')]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, readFileSync(join(CONFORMANCE, 'ram-errors.expected.jsonl'), 'utf8'));
});

const WORKLOAD = [
  '{"vtd-trace": 1, "iommu": {"aw": 48, "cm": true, "ram": "0x40000000"}, "devices": ["00:03.0"]}',
  '{"op":"attach","sid":"00:03.0","domain":3}',
  '{"op":"map","domain":3,"iova":"0xfff00000","gpa":"0x1000000","len":65536,"perm":"rw"}',
  '{"op":"dma","sid":"00:03.0","iova":"0xfff00010","len":4,"dir":"w"}',
  '{"op":"unmap","domain":3,"iova":"0xfff00000","len":65536}',
  '{"op":"dma","sid":"00:03.0","iova":"0xfff00010","len":4,"dir":"w"}',
].join('\n') + '\n';

test('workload ops are lowered by the guest-driver model and replayed', () => {
  const r = vtd(['replay', '-'], WORKLOAD);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '{"i":2,"op":"dma","ok":true,"gpa":"0x1000010"}\n{"i":4,"op":"dma","ok":false,"fault":"0x05"}\n');
});

test('replay with shadow sync writes the JSON and HTML reports, one run per strategy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtd-cli-'));
  const f = join(dir, 'w.jsonl');
  writeFileSync(f, WORKLOAD);
  const r = vtd(['replay', f, '--shadow', 'merged,qemu', '--report', join(dir, 'r.json'), '--html', join(dir, 'r.html'), '--summary']);
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
  assert.equal(rep.vtdReport, 1);
  assert.deepEqual(rep.runs.map((x: { strategy: { label: string } }) => x.strategy.label), ['strict(forced)+merged/type1', 'strict(forced)+qemu/type1']);
  const [merged, qemu] = rep.runs;
  assert.equal(merged.guest.maps, 1);
  assert.equal(merged.backend.maps, 1, 'one 64 KiB run');
  assert.equal(qemu.backend.maps, 16, 'one per leaf');
  assert.deepEqual(merged.backend.errors, {});
  assert.ok(merged.timeline.samples.length >= 2);
  assert.match(readFileSync(join(dir, 'r.html'), 'utf8'), /<svg/);
  assert.match(r.stderr, /run strict\(forced\)\+qemu\/type1:[\s\S]*backend: 16 maps/);
  const nocm = vtd(['replay', '-', '--shadow', 'merged', '--no-results'], WORKLOAD.replace('"cm": true', '"cm": false'));
  assert.equal(nocm.status, 0);
  assert.match(nocm.stderr, /without caching mode/);
});

test('--progress draws a progress bar on standard error (off by default when it is not a terminal)', () => {
  const on = vtd(['replay', '-', '--progress', '--no-results'], WORKLOAD);
  assert.equal(on.status, 0);
  assert.match(on.stderr, /\rreplay \[#+\] 100% 5\/5 ops\n/);
  const off = vtd(['replay', '-', '--no-results'], WORKLOAD);
  assert.doesNotMatch(off.stderr, /\[#/);
});

test('a malformed workload op stops the replay with its line', () => {
  const r = vtd(['replay', '-'], WORKLOAD + '{"op":"unmap","domain":3,"iova":"0x5000","len":4096}\n');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /line 7/);
});

test('usage errors', () => {
  assert.equal(vtd([]).status, 2);
  assert.equal(vtd(['frob']).status, 2);
  assert.equal(vtd(['replay']).status, 2);
  assert.equal(vtd(['replay', '/nonexistent.jsonl']).status, 2);
  assert.equal(vtd(['replay', 'x', '--bogus']).status, 2);
  const good = join(CONFORMANCE, 'basic-4level.jsonl');
  for (const bad of [['--policy', 'eager'], ['--backend', 'type1'], ['--shadow', 'merged', '--backend', 'vfio'], ['--cost', 'nope=1'], ['--flush-queue', '0'], ['--memlock', 'lots']]) {
    const r = vtd(['replay', good, ...bad]);
    assert.equal(r.status, 2, bad.join(' '));
    assert.match(r.stderr, /replay|cost/, bad.join(' '));
    assert.equal(r.stdout, '', 'nothing replayed');
  }
  assert.equal(vtd(['help']).status, 0);
});
