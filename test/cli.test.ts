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

test('workload ops are refused before anything is replayed', () => {
  const r = vtd(['replay', '-'], '{"vtd-trace": 1, "devices": ["00:03.0"]}\n{"op":"rd","reg":"0x0","size":4}\n{"op":"attach","sid":"00:03.0","domain":1}\n');
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /line 3: attach: high-level workload ops are not implemented yet/);
});

test('usage errors', () => {
  assert.equal(vtd([]).status, 2);
  assert.equal(vtd(['frob']).status, 2);
  assert.equal(vtd(['replay']).status, 2);
  assert.equal(vtd(['replay', '/nonexistent.jsonl']).status, 2);
  assert.equal(vtd(['replay', 'x', '--bogus']).status, 2);
  assert.equal(vtd(['help']).status, 0);
});
