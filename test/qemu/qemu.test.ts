// The QEMU side of differential conformance: every conformance trace, run
// through QEMU 7.2's intel-iommu by src/qemu/harness.ts, must give exactly
// what test/fixtures/conformance/NAME.qemu.jsonl recorded; through QEMU 10's,
// what qemu10/NAME.qemu.jsonl recorded where QEMU 10 answers differently (it
// records interrupt-remapping faults and writes FRCD.PV 0 for 3h/7h), else
// NAME.qemu.jsonl. QEMU 10 reports the CAP/ECAP of trace-format.md's
// scalable-mode table for every option set.
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
import { QemuError, ensureFirmware, qemuAvailable, runTraceOnQemu, runTraceOnQemuWithStats, type QemuVersion } from '../../src/qemu/harness.js';

const CONFORMANCE_DIR = CONFORMANCE;
const QEMU_ABORTS_DIR = join(CONFORMANCE_DIR, 'qemu-aborts');

/** Fails (never skips) when QEMU cannot run: a CI without QEMU must not pass silently. */
function requireQemu(version: QemuVersion = '7.2'): string {
  const a = qemuAvailable({ version });
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

interface Case { name: string; text: string; qemu: string[]; qemu10: string[]; masks: Map<number, bigint> }

/** Recorded answers: NAME.expected.jsonl, QEMU 7.2's NAME.qemu.jsonl (QEMU 10's are in qemu10/, only where they differ). */
const RECORDED = /\.(expected|qemu)\.jsonl$/;

function cases(): Case[] {
  assert.ok(existsSync(CONFORMANCE_DIR), `conformance traces not found at ${CONFORMANCE_DIR}`);
  return readdirSync(CONFORMANCE_DIR)
    .filter((f) => f.endsWith('.jsonl') && !RECORDED.test(f))
    .sort()
    .map((f) => {
      const name = f.slice(0, -'.jsonl'.length);
      const text = readFileSync(join(CONFORMANCE_DIR, f), 'utf8');
      const masks = new Map<number, bigint>();
      for (const op of parseTrace(text).ops) if (op.op === 'rd' && op.mask !== undefined) masks.set(op.index, op.mask);
      const qemu = resultLines(readFileSync(join(CONFORMANCE_DIR, `${name}.qemu.jsonl`), 'utf8'));
      const q10 = join(CONFORMANCE_DIR, 'qemu10', `${name}.qemu.jsonl`);
      return { name, text, qemu, qemu10: existsSync(q10) ? resultLines(readFileSync(q10, 'utf8')) : qemu, masks };
    });
}

for (const version of ['7.2', '10'] as const) {
  const file = version === '7.2' ? 'NAME.qemu.jsonl' : 'qemu10/NAME.qemu.jsonl (else NAME.qemu.jsonl)';
  describe(`QEMU ${version} intel-iommu reproduces every ${file}`, { concurrency: 2 }, () => {
    const all = cases();
    test('there are conformance traces', () => {
      assert.ok(all.length > 0, `no traces in ${CONFORMANCE_DIR}`);
    });

    for (const c of all) {
      test(c.name, async (t) => {
        const v = requireQemu(version);
        const { results, stats } = await runTraceOnQemuWithStats(c.text, { version, timeoutMs: 30_000 });
        const perOp = Object.entries(stats.byOp).map(([k, s]) => `${k} ${(s.ms / s.count).toFixed(2)} ms x${s.count}`).join(', ');
        t.diagnostic(`QEMU ${v}: ${stats.totalMs.toFixed(0)} ms (start-up ${stats.startupMs.toFixed(0)}, ${stats.ops} ops ${stats.opsMs.toFixed(1)} ms: ${perOp})`);
        const got = results.map((l) => normalize(l, c.masks));
        const want = (version === '7.2' ? c.qemu : c.qemu10).map((l) => normalize(l, c.masks));
        assert.deepEqual(got, want, `${c.name}: QEMU ${v}'s answers differ from the recorded ones`);
      });
    }
  });
}

describe('QEMU 10 reports the CAP/ECAP of the scalable-mode table (trace-format.md), with and without ir', { concurrency: 2 }, () => {
  // aw 48, other keys at their defaults; ECAP without ir. ir adds IR and MHMV (0x00f00008).
  const table: Array<[string, { sm: boolean; flts?: boolean; pasid?: boolean }, bigint, bigint]> = [
    ['legacy', { sm: false }, 0x00d2008c222f0606n, 0x0000000000000f42n],
    ['sm', { sm: true }, 0x00d2008c222f0606n, 0x0000480080000f42n],
    ['sm, pasid', { sm: true, pasid: true }, 0x00d2008c222f0606n, 0x0000490080000f42n],
    ['sm, flts', { sm: true, flts: true }, 0x01d2008c222f0606n, 0x0000880000000f42n],
    ['sm, flts, pasid', { sm: true, flts: true, pasid: true }, 0x01d2008c222f0606n, 0x0000890000000f42n],
  ];
  for (const [name, keys, cap, ecap] of table) {
    for (const ir of [false, true]) {
      test(`${name}${ir ? ', ir' : ''}`, async () => {
        requireQemu('10');
        const text = `{"vtd-trace": 1, "iommu": {"aw": 48, "sm": ${keys.sm}, "ir": ${ir}}, "devices": []}\n`
          + '{"op":"rd","reg":"0x8","size":8}\n{"op":"rd","reg":"0x10","size":8}\n';
        // flts and pasid go into the parsed header, so this runs whether or not the parser knows them yet.
        const trace = parseTrace(text);
        Object.assign(trace.header.config, { flts: keys.flts ?? false, pasid: keys.pasid ?? false });
        const lines = await runTraceOnQemu(trace, { version: '10', timeoutMs: 30_000 });
        const want = ecap | (ir ? 0x00f00008n : 0n);
        assert.deepEqual(lines, [`{"i":0,"op":"rd","val":"0x${cap.toString(16)}"}`, `{"i":1,"op":"rd","val":"0x${want.toString(16)}"}`]);
      });
    }
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

  test('QEMU 10 runs under chroot with a copy of the firmware inside the root, removed after the run', async () => {
    requireQemu('10');
    const root = process.env.VTD_QEMU10_ROOT ?? '/opt/vtd-wasm/qemu10';
    const ours = () => readdirSync(join(root, 'tmp')).filter((n) => n.startsWith(`vtd-wasm-${process.pid}-`));
    const text = readFileSync(join(CONFORMANCE_DIR, 'basic-4level.jsonl'), 'utf8');
    const before = ours().length;
    const lines = await runTraceOnQemu(text, { version: '10', timeoutMs: 30_000 });
    assert.ok(lines.length > 0);
    assert.equal(ours().length, before, 'the staged firmware is removed once QEMU is gone');
  });

  test('a QEMU 10 root that does not exist is QEMU_MISSING, naming the root and the install script', async () => {
    const text = readFileSync(join(CONFORMANCE_DIR, 'basic-4level.jsonl'), 'utf8');
    const a = qemuAvailable({ version: '10', qemu10Root: '/nonexistent/qemu10' });
    assert.equal(a.ok, false);
    assert.match(a.ok ? '' : a.reason, /\/nonexistent\/qemu10\/usr\/bin\/qemu-system-x86_64 does not exist .*install-test-deps\.sh/);
    await assert.rejects(runTraceOnQemu(text, { version: '10', qemu10Root: '/nonexistent/qemu10' }),
      (e: unknown) => e instanceof QemuError && e.code === 'QEMU_MISSING');
  });

  test('a QEMU of another version than asked is refused (QEMU 7.2 run as 10)', () => {
    requireQemu();
    const a = qemuAvailable({ version: '10', qemuBinary: 'qemu-system-x86_64' });
    assert.equal(a.ok, false);
    assert.match(a.ok ? '' : a.reason, /is QEMU 7\.2\.\d+, not QEMU 10\.x/);
  });

  test('scalable-mode options: 7.2 refuses them, QEMU 10 refuses nest and aw 57, each with its reason (UNSUPPORTED)', async () => {
    const header = (keys: Record<string, unknown>) => {
      const t = parseTrace(`{"vtd-trace": 1, "iommu": {"aw": 48, "sm": true}, "devices": []}\n`);
      Object.assign(t.header.config, keys);
      return t;
    };
    const refused = async (t: ReturnType<typeof parseTrace>, version: QemuVersion, re: RegExp) =>
      assert.rejects(runTraceOnQemu(t, { version }), (e: unknown) => e instanceof QemuError && e.code === 'UNSUPPORTED' && re.test(e.message));
    await refused(header({}), '7.2', /scalable-mode traces run on QEMU 10 only/);
    await refused(header({ nest: true }), '10', /no nested translation/);
    await refused(header({ aw: 57 }), '10', /aw 57: QEMU 10 supports aw-bits 39 and 48 only/);
    await refused(header({ flts: true, aw: 39 }), '10', /first stage needs aw-bits 48/);
    await refused(header({ pasid: true, dt: true }), '10', /refuses x-pasid-mode with device-iotlb/);
  });

  test('what QEMU 7.2 cannot express is refused before QEMU starts (UNSUPPORTED)', async () => {
    const aw57 = '{"vtd-trace": 1, "iommu": {"aw": 57}, "devices": []}\n';
    await assert.rejects(runTraceOnQemu(aw57), (e: unknown) => e instanceof QemuError && e.code === 'UNSUPPORTED');
    const wideData = '{"vtd-trace": 1, "devices": ["00:03.0"]}\n{"op":"msi","sid":"00:03.0","addr":"0xfee00000","data":"0x12345"}\n';
    await assert.rejects(runTraceOnQemu(wideData), (e: unknown) => e instanceof QemuError && e.code === 'UNSUPPORTED');
  });
});
