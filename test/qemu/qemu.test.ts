// The QEMU side of differential conformance: every conformance trace, run
// through QEMU 7.2's intel-iommu by src/qemu/harness.ts, must give exactly
// what test/fixtures/conformance/NAME.qemu.jsonl recorded.
//
// QEMU is required: without it these tests FAIL (npm test installs it with
// scripts/install-test-deps.sh). Run from the repository root:
//   node --import tsx --test test/qemu/qemu.test.ts

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseTrace } from '../../src/trace/parse.js';
import { CONFORMANCE } from '../helpers.js';
import { QemuError, ensureFirmware, qemuAvailable, runTraceOnQemu, runTraceOnQemuWithStats } from '../../src/qemu/harness.js';

const CONFORMANCE_DIR = CONFORMANCE;
const QEMU_ABORTS_DIR = join(CONFORMANCE_DIR, 'qemu-aborts');

/** Fails (never skips) when QEMU cannot run: a CI without QEMU must not pass silently. */
function requireQemu(): string {
  const a = qemuAvailable();
  assert.ok(a.ok, `QEMU is required for the conformance tests against QEMU and is not usable: ${a.ok ? '' : a.reason}`);
  return a.version;
}

type Result = Record<string, unknown> & { i: number; op: string };

/** Result fields holding numbers: compared as numbers (hex strings may differ in form, not value). */
const NUMERIC = new Set(['gpa', 'fault', 'val', 'addr', 'data']);

/**
 * One result line in a comparable form: numbers as canonical hex, `hex` in
 * lower case, and an `rd` value under its op's mask (the .qemu.jsonl files
 * hold QEMU's unmasked value; the comparison is defined under the mask).
 */
function normalize(line: string, masks: Map<number, bigint>): Result {
  const r = JSON.parse(line) as Result;
  const out: Result = { i: r.i, op: r.op };
  for (const [k, v] of Object.entries(r)) {
    if (k === 'i' || k === 'op') continue;
    if (NUMERIC.has(k) && typeof v === 'string') {
      let n = BigInt(v);
      if (k === 'val' && masks.has(r.i)) n &= masks.get(r.i)!;
      out[k] = '0x' + n.toString(16);
    } else if (k === 'hex' && typeof v === 'string') out[k] = v.toLowerCase();
    else out[k] = v;
  }
  return out;
}

function resultLines(text: string): string[] {
  return text.split(/\r?\n/).filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
}

interface Case { name: string; text: string; qemu: string[]; masks: Map<number, bigint> }

function cases(): Case[] {
  assert.ok(existsSync(CONFORMANCE_DIR), `conformance traces not found at ${CONFORMANCE_DIR}`);
  return readdirSync(CONFORMANCE_DIR)
    .filter((f) => f.endsWith('.jsonl') && !f.endsWith('.expected.jsonl') && !f.endsWith('.qemu.jsonl'))
    .sort()
    .map((f) => {
      const name = f.slice(0, -'.jsonl'.length);
      const text = readFileSync(join(CONFORMANCE_DIR, f), 'utf8');
      const masks = new Map<number, bigint>();
      for (const op of parseTrace(text).ops) if (op.op === 'rd' && op.mask !== undefined) masks.set(op.index, op.mask);
      return { name, text, qemu: resultLines(readFileSync(join(CONFORMANCE_DIR, `${name}.qemu.jsonl`), 'utf8')), masks };
    });
}

describe('QEMU 7.2 intel-iommu reproduces every NAME.qemu.jsonl', { concurrency: 2 }, () => {
  const all = cases();
  test('there are conformance traces', () => {
    assert.ok(all.length > 0, `no traces in ${CONFORMANCE_DIR}`);
  });

  for (const c of all) {
    test(c.name, async (t) => {
      const version = requireQemu();
      const { results, stats } = await runTraceOnQemuWithStats(c.text, { timeoutMs: 30_000 });
      const perOp = Object.entries(stats.byOp).map(([k, v]) => `${k} ${(v.ms / v.count).toFixed(2)} ms x${v.count}`).join(', ');
      t.diagnostic(`QEMU ${version}: ${stats.totalMs.toFixed(0)} ms (start-up ${stats.startupMs.toFixed(0)}, ${stats.ops} ops ${stats.opsMs.toFixed(1)} ms: ${perOp})`);
      const got = results.map((l) => normalize(l, c.masks));
      const want = c.qemu.map((l) => normalize(l, c.masks));
      assert.deepEqual(got, want, `${c.name}: QEMU's answers differ from ${c.name}.qemu.jsonl`);
    });
  }
});

describe('QEMU harness: errors and housekeeping', { concurrency: 2 }, () => {
  test('the firmware builds to a 64 KiB image with the reset vector at the top', async () => {
    const fw = readFileSync(await ensureFirmware());
    assert.equal(fw.length, 65536);
    // 0xfffffff0: jmp rel16 (e9) back to the start of the image.
    assert.equal(fw[0xfff0], 0xe9);
  });

  test('a trace that makes QEMU abort is reported as QEMU_DIED with its stderr tail', async () => {
    requireQemu();
    for (const f of readdirSync(QEMU_ABORTS_DIR).filter((n) => n.endsWith('.jsonl'))) {
      const text = readFileSync(join(QEMU_ABORTS_DIR, f), 'utf8');
      await assert.rejects(runTraceOnQemu(text, { timeoutMs: 30_000 }), (e: unknown) => {
        assert.ok(e instanceof QemuError, String(e));
        assert.equal(e.code, 'QEMU_DIED', e.message);
        assert.match(String(e.details.tail), /Assertion/);
        assert.equal(typeof e.details.op, 'number');
        return true;
      });
    }
  });

  test('a run past its time limit is killed and reported as TIMEOUT', async () => {
    requireQemu();
    const text = readFileSync(join(CONFORMANCE_DIR, 'basic-4level.jsonl'), 'utf8');
    await assert.rejects(runTraceOnQemu(text, { timeoutMs: 1 }), (e: unknown) => e instanceof QemuError && e.code === 'TIMEOUT');
  });

  test('a missing QEMU binary is reported as QEMU_MISSING', async () => {
    const text = readFileSync(join(CONFORMANCE_DIR, 'basic-4level.jsonl'), 'utf8');
    const a = qemuAvailable('/nonexistent/qemu-system-x86_64');
    assert.equal(a.ok, false);
    await assert.rejects(
      runTraceOnQemu(text, { qemuBinary: '/nonexistent/qemu-system-x86_64' }),
      (e: unknown) => e instanceof QemuError && e.code === 'QEMU_MISSING',
    );
  });

  test('what QEMU 7.2 cannot express is refused before QEMU starts (UNSUPPORTED)', async () => {
    const aw57 = '{"vtd-trace": 1, "iommu": {"aw": 57}, "devices": []}\n';
    await assert.rejects(runTraceOnQemu(aw57), (e: unknown) => e instanceof QemuError && e.code === 'UNSUPPORTED');
    const wideData = '{"vtd-trace": 1, "devices": ["00:03.0"]}\n{"op":"msi","sid":"00:03.0","addr":"0xfee00000","data":"0x12345"}\n';
    await assert.rejects(runTraceOnQemu(wideData), (e: unknown) => e instanceof QemuError && e.code === 'UNSUPPORTED');
  });
});
