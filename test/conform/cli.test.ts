// `vtd conform`: usage errors exit 2 without running anything; a short run
// against QEMU exits 0 and writes its summary; the canary (a planted
// difference) exits 1 after printing the shrunk trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTrace, replayTrace } from '../../src/index.js';
import { compareTrace } from '../../src/conform/compare.js';
import { renderTrace, traceForSeed } from '../../src/conform/gen/index.js';
import { plantDifference } from '../../src/conform/run.js';
import { qemuAvailable } from '../../src/qemu/harness.js';
import { ROOT } from '../helpers.js';

const VTD = join(ROOT, 'bin', 'vtd.js');

function vtd(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [VTD, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
}

test('conform: bad usage exits 2', () => {
  for (const args of [['conform'], ['conform', '--seeds', '3'], ['conform', '--qemu', '--seeds', 'x'], ['conform', '--qemu', '--seeds'], ['conform', '--qemu', '--bogus'], ['conform', '--qemu', '--seeds', '0']]) {
    const r = vtd(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /vtd: conform: /);
    assert.equal(r.stdout, '');
  }
  assert.match(vtd(['help']).stdout, /conform --qemu/);
  const v = vtd(['conform', '--qemu', '--qemu-version', '9.2']);
  assert.equal(v.status, 2, v.stderr);
  assert.match(v.stderr, /vtd: conform: --qemu-version must be 7\.2 or 10, got 9\.2/);
  assert.match(vtd(['conform', '-h']).stdout, /--qemu-version V +7\.2 .* or 10/s);
});

test('conform --qemu-version 10: a short run against QEMU 10, summary naming it', () => {
  const a = qemuAvailable({ version: '10' });
  assert.ok(a.ok, `QEMU 10 is required: ${a.ok ? '' : a.reason}`);
  const r = vtd(['conform', '--qemu', '--qemu-version', '10', '--seeds', '2', '--quiet']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /vtd conform: 2 traces \(\d+ ops\) against QEMU 10\.\d+/);
});

test('conform --out: a directory that cannot be made or written is exit 2 before QEMU runs; -h is help', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtd-conform-'));
  const file = join(dir, 'f');
  writeFileSync(file, '');
  const r = vtd(['conform', '--qemu', '--out', join(file, 'sub')]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^vtd: cannot write .*f\/sub: ENOTDIR\n$/);
  assert.equal(r.stdout, '');
  const h = vtd(['conform', '-h']);
  assert.equal(h.status, 0);
  assert.match(h.stdout, /^usage: vtd conform \.\.\.\n  conform --qemu/);
});

test('conform --qemu: a few seeds, exit 0, summary on stdout and in --out', () => {
  const a = qemuAvailable();
  assert.ok(a.ok, `QEMU is required: ${a.ok ? '' : a.reason}`);
  const out = mkdtempSync(join(tmpdir(), 'vtd-conform-'));
  const r = vtd(['conform', '--qemu', '--seeds', '4', '--seed', '11', '--out', out, '--quiet']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /vtd conform: 4 traces \(\d+ ops\) against QEMU 7\.2/);
  assert.match(r.stdout, /NEW 0, errors 0/);
  assert.match(r.stdout, /core replay: [\d.]+ traces\/s/);
  const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.equal(s.seeds, 4);
  assert.equal(s.firstSeed, 11);
  assert.deepEqual(s.results.map((x: { seed: number }) => x.seed), [11, 12, 13, 14]);
});

test('the canary: a planted difference is found, shrunk, printed and written; exit 1', () => {
  const a = qemuAvailable();
  assert.ok(a.ok, `QEMU is required: ${a.ok ? '' : a.reason}`);
  // A seed whose trace has a translated DMA the canary moves (found on our core alone).
  let seed = 1;
  for (; seed < 100; seed++) {
    const trace = parseTrace(renderTrace(traceForSeed(seed)));
    if (compareTrace(trace, plantDifference(replayTrace(trace), trace)).status === 'new') break;
  }
  const out = mkdtempSync(join(tmpdir(), 'vtd-conform-'));
  const r = vtd(['conform', '--qemu', '--seeds', '1', '--seed', String(seed), '--out', out, '--quiet'], { VTD_CONFORM_PLANT: '1' });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /# vtd conform: a NEW difference between vtd-wasm and QEMU 7\.2[^\n]*intel-iommu/);
  assert.match(r.stdout, new RegExp(`# seed ${seed}; shrunk from \\d+ to \\d+ ops`));
  assert.match(r.stdout, /NEW 1/);
  const files = readdirSync(out).filter((f) => f.startsWith('new-seed-'));
  assert.deepEqual(files, [`new-seed-${seed}.jsonl`]);
  const trace = parseTrace(readFileSync(join(out, files[0]), 'utf8'));
  assert.equal(trace.ops.at(-1)!.op, 'dma');
  assert.ok(trace.ops.length <= 12, `${trace.ops.length} ops`);
});
