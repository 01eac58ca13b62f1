// Conformance and property tests of the reference model.
// Run from the repository root:  node --import tsx --test test/model/model.test.ts

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { RefModel, defaultModelConfig, ioapicMessage, type ModelConfig } from './model.js';
import { replayWithModel } from './replay-model.js';
import { CONFORMANCE } from '../helpers.js';

const CONFORMANCE_DIR = CONFORMANCE;
const QEMU_ABORTS_DIR = join(CONFORMANCE_DIR, 'qemu-aborts');

type ResultLine = Record<string, unknown> & { i: number; op: string };

/** Result fields holding numbers (compared numerically); `hex` is compared as bytes. */
const NUMERIC_FIELDS = new Set(['gpa', 'fault', 'val', 'addr', 'data']);

function parseResultLines(lines: string[]): Map<number, ResultLine> {
  const byIndex = new Map<number, ResultLine>();
  for (const line of lines) {
    const r = JSON.parse(line) as ResultLine;
    assert.ok(!byIndex.has(r.i), `two result lines for op ${r.i}`);
    byIndex.set(r.i, r);
  }
  return byIndex;
}

function readResultFile(path: string): Map<number, ResultLine> {
  const lines = readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  return parseResultLines(lines);
}

/** Ops of a trace, by index (header, comments and blank lines skipped). */
function traceOps(text: string): Array<Record<string, unknown>> {
  const objects = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return objects.slice(1);
}

/** Asserts that `actual` gives the same answer as `expected`: the same fields, numbers equal numerically. */
function assertSameResult(actual: ResultLine | undefined, expected: ResultLine, context: string): void {
  assert.ok(actual !== undefined, `${context}: op ${expected.i} produced no result line, expected ${JSON.stringify(expected)}`);
  const where = `${context} op ${expected.i}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`;
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), where);
  for (const [key, want] of Object.entries(expected)) {
    const got: unknown = actual[key];
    if (NUMERIC_FIELDS.has(key)) assert.equal(BigInt(got as string), BigInt(want as string), where);
    else if (key === 'hex') assert.equal(String(got).toLowerCase(), String(want).toLowerCase(), where);
    else assert.equal(got, want, where);
  }
}

function conformanceTraces(): Array<{ name: string; text: string; hasMsi: boolean }> {
  return readdirSync(CONFORMANCE_DIR)
    .filter((f) => f.endsWith('.jsonl') && !f.endsWith('.expected.jsonl') && !f.endsWith('.qemu.jsonl') && !f.endsWith('.qemu10.jsonl'))
    .sort()
    .map((f) => {
      const text = readFileSync(join(CONFORMANCE_DIR, f), 'utf8');
      return { name: f.replace(/\.jsonl$/, ''), text, hasMsi: traceOps(text).some((o) => o['op'] === 'msi') };
    });
}

/**
 * Traces whose expected files write blocked interrupts without the fault reason because QEMU 7.2 reports
 * none (ir-remap's and dev-ir-faults' comments say so; ir-x2apic follows them). There an expected
 * `{"ok":false}` msi line is matched by a blocked result with any reason, and ARCHITECTED_EXTRAS must pin
 * the exact architected line.
 */
const MSI_FAULT_LEFT_OUT: ReadonlySet<string> = new Set(['ir-remap', 'dev-ir-faults', 'ir-x2apic']);

// ---------------------------------------------------------------------------
// Architected answers for the dev-* traces that their expected files leave out (from each trace's comments),
// plus the answers that follow from the project's behaviour decisions where the trace format is open.
// `mask` (optional) is applied to `val` before comparing.
// ---------------------------------------------------------------------------

interface ExtraCheck {
  line: ResultLine;
  mask?: bigint;
  why: string;
}

const ARCHITECTED_EXTRAS: Record<string, ExtraCheck[]> = {
  'dev-translation': [
    { line: { i: 10, op: 'dma', ok: true, gpa: '0xc0001000' }, why: '1 GiB page output outside the interrupt range is not blocked' },
    { line: { i: 15, op: 'dma', ok: false, fault: '0x0c' }, why: 'reserved bits before access rights' },
  ],
  'dev-iotlb-rights': [
    { line: { i: 12, op: 'rd', val: '0x2' }, why: 'write to a read-only page is recorded (PPF)' },
    { line: { i: 24, op: 'rd', val: '0x2' }, why: 'read of a write-only page is recorded (PPF)' },
  ],
  'dev-fault-event': [
    { line: { i: 12, op: 'rd', val: '0x80000000' }, why: 'FECTL.IP clears once F of every record is clear' },
    {
      line: { i: 9, op: 'rd', val: '0xc000000600000018' },
      mask: 0xf00000ffffffffffn,
      why: 'FRCD high: F, T, FR, SID (PV defined only with PP)',
    },
  ],
  'dev-memory': [
    { line: { i: 13, op: 'dma', ok: false, fault: '0x0c' }, why: 'all-ones leaf entry: present with reserved bits' },
    { line: { i: 15, op: 'rd', val: '0xc000000c00000018' }, why: 'its record (the trace masks PV)' },
    { line: { i: 21, op: 'dma', ok: false, fault: '0x0c' }, why: 'all-ones top-level entry: present with reserved bits' },
    { line: { i: 23, op: 'rd', val: '0x8000000c00000018' }, why: 'its record (the trace masks PV)' },
    // Decision (the trace format leaves a failed status write open): IQE, IQH stays on the wait descriptor.
    { line: { i: 36, op: 'rd', val: '0x10' }, why: 'decision: wait status write above RAM leaves IQH on it' },
    { line: { i: 37, op: 'rd', val: '0x10' }, why: 'decision: wait status write above RAM sets FSTS.IQE' },
  ],
  'dev-queue-regs': [
    { line: { i: 1, op: 'rd', val: '0x180000' }, why: 'IQA reads back as written' },
    { line: { i: 7, op: 'rd', val: '0x12' }, why: 'FEUADDR writable with EIM' },
    { line: { i: 9, op: 'rd', val: '0x34' }, why: 'IEUADDR writable with EIM' },
    { line: { i: 12, op: 'rd', val: '0x10' }, why: 'a wait with neither SW nor IF is a valid fence' },
    { line: { i: 13, op: 'rd', val: '0x0' }, why: 'no queue error for the fence' },
  ],
  'dev-ir-faults': [
    { line: { i: 13, op: 'msi', ok: false, fault: '0x22' }, why: 'IRTE 9 not present: 22h is recorded' },
    { line: { i: 14, op: 'rd', val: '0x2' }, why: 'FSTS.PPF after the interrupt fault' },
    { line: { i: 15, op: 'rd', val: '0x9000000000000' }, why: 'FRCD low: FI 63:48 = interrupt index 9' },
    { line: { i: 16, op: 'rd', val: '0x8000002200000018' }, why: 'FRCD high: F, FR 22h, SID 00:03.0, T = 0' },
    { line: { i: 17, op: 'rd', val: '0xc0000000' }, why: 'FECTL.IP (masked fault event)' },
    { line: { i: 20, op: 'msi', ok: false, fault: '0x24' }, why: 'IM set without CAP.PI is a reserved bit' },
    { line: { i: 23, op: 'msi', ok: false, fault: '0x24' }, why: 'xAPIC mode: DST bits 39:32 are reserved' },
    { line: { i: 26, op: 'msi', ok: true, addr: '0xfee04000', data: '0x4033' }, why: 'SVT=2: start bus SID[15:8] = 0 .. end bus SID[7:0] = 1' },
    { line: { i: 28, op: 'msi', ok: false, fault: '0x25' }, why: 'compatibility format with IRES = 1 and CFIS = 0: blocked' },
    { line: { i: 30, op: 'rd', val: '0x7800000' }, why: 'GCMD.CFI sets GSTS.CFIS' },
  ],
  'ir-remap': [
    { line: { i: 17, op: 'msi', ok: false, fault: '0x26' }, why: 'SVT=1, SQ=0: another requester' },
    { line: { i: 19, op: 'msi', ok: false, fault: '0x22' }, why: 'IRTE 2 not present' },
    { line: { i: 20, op: 'msi', ok: false, fault: '0x21' }, why: 'index 16 of a 16-entry table' },
    { line: { i: 22, op: 'msi', ok: false, fault: '0x26' }, why: 'SVT=1, SQ=3: another device' },
    { line: { i: 25, op: 'msi', ok: false, fault: '0x21' }, why: 'address bit 2 is handle bit 15: index 0x8000' },
  ],
  'ir-x2apic': [
    {
      line: { i: 12, op: 'msi', ok: true, addr: '0x1200fee34000', data: '0x403b' },
      why: 'x2APIC destination 0x1234: bits 31:8 in address bits 63:40 (the trace format\'s convention)',
    },
    { line: { i: 13, op: 'msi', ok: false, fault: '0x21' }, why: 'index 2 of a 2-entry table (S = 0)' },
  ],
};

/** Compares an expected line with ours; where the expected file leaves a blocked interrupt's reason out, any reason matches. */
function assertExpectedLine(name: string, actual: ResultLine | undefined, expected: ResultLine): void {
  if (actual !== undefined && expected.op === 'msi' && expected['ok'] === false && !('fault' in expected) && MSI_FAULT_LEFT_OUT.has(name)) {
    const pinned = (ARCHITECTED_EXTRAS[name] ?? []).some((x) => x.line.i === expected.i);
    assert.ok(pinned, `${name} op ${expected.i}: a blocked interrupt without a reason needs an architected extra`);
    const { fault: _reason, ...rest } = actual;
    assertSameResult(rest as ResultLine, expected, name);
    return;
  }
  assertSameResult(actual, expected, name);
}

function checkExtras(name: string, produced: Map<number, ResultLine>): void {
  for (const extra of ARCHITECTED_EXTRAS[name] ?? []) {
    let actual = produced.get(extra.line.i);
    if (actual !== undefined && extra.mask !== undefined) {
      actual = { ...actual, val: `0x${(BigInt(actual['val'] as string) & extra.mask).toString(16)}` };
    }
    assertSameResult(actual, extra.line, `${name} (${extra.why})`);
  }
}

// ---------------------------------------------------------------------------
// Conformance
// ---------------------------------------------------------------------------

describe('conformance traces: model == expected (+ the architected extras)', () => {
  for (const trace of conformanceTraces()) {
    test(`${trace.name}${trace.hasMsi ? ' (with msi)' : ''}`, () => {
      const produced = parseResultLines(replayWithModel(trace.text));
      const expected = readResultFile(join(CONFORMANCE_DIR, `${trace.name}.expected.jsonl`));
      for (const exp of expected.values()) assertExpectedLine(trace.name, produced.get(exp.i), exp);
      checkExtras(trace.name, produced);
      if (!trace.name.startsWith('dev-')) {
        // A trace where QEMU agrees with the architecture: every line is expected (or an extra its comments give).
        const pinned = new Set((ARCHITECTED_EXTRAS[trace.name] ?? []).map((x) => x.line.i));
        const extra = [...produced.keys()].filter((i) => !expected.has(i) && !pinned.has(i));
        assert.deepEqual(extra, [], `${trace.name}: result lines not in the expected file: ${extra.join(', ')}`);
      }
    });
  }

  test('every trace with msi is among them, and the interrupt lines are all answered', () => {
    const withMsi = conformanceTraces().filter((t) => t.hasMsi);
    assert.deepEqual(withMsi.map((t) => t.name), ['dev-ir-faults', 'ir-remap', 'ir-x2apic', 'ram-errors']);
    for (const trace of withMsi) {
      const produced = parseResultLines(replayWithModel(trace.text));
      const msiOps = traceOps(trace.text).flatMap((o, i) => (o['op'] === 'msi' ? [i] : []));
      for (const i of msiOps) assert.equal(produced.get(i)?.op, 'msi', `${trace.name} op ${i}`);
    }
  });

  test("replay options: msi 'skip' drops the lines (and the interrupts), 'throw' refuses", () => {
    const trace = conformanceTraces().find((t) => t.name === 'dev-ir-faults')!;
    const skipped = parseResultLines(replayWithModel(trace.text, { msi: 'skip' }));
    assert.ok(![...skipped.values()].some((l) => l.op === 'msi'));
    assertSameResult(skipped.get(14), { i: 14, op: 'rd', val: '0x0' }, 'no interrupt fault without the interrupt');
    assert.throws(() => replayWithModel(trace.text, { msi: 'throw' }), /trace line \d+: op "msi"/);
  });

  test('replay: a posted interrupt cannot be written; msi data must fit in 32 bits', () => {
    const head = '{"vtd-trace": 1, "iommu": {"ir": true}, "devices": ["00:03.0"]}';
    assert.throws(() => replayWithModel(`${head}\n{"op":"msi","sid":"00:03.0","addr":"0xfee00000","data":"0x100000000"}`), /32 bits/);
    assert.throws(() => replayWithModel(`${head}\n{"op":"msi","sid":"00:04.0","addr":"0xfee00000","data":"0x0"}`), /not listed/);
    assert.deepEqual(replayWithModel(`${head}\n{"op":"msi","sid":"00:03.0","addr":"0x1fee00010","data":"0xffffffff"}`), [
      '{"i":0,"op":"msi","ok":true,"addr":"0x1fee00010","data":"0xffffffff"}',
    ]);
  });
});

describe('qemu-aborts', () => {
  const path = join(QEMU_ABORTS_DIR, 'wait-sw-and-if.jsonl');

  test('wait-sw-and-if: SW and IF together are valid', () => {
    assert.ok(existsSync(path));
    const produced = parseResultLines(replayWithModel(readFileSync(path, 'utf8')));
    assertSameResult(produced.get(4), { i: 4, op: 'rd', val: '0x10' }, 'wait-sw-and-if IQH');
    assertSameResult(produced.get(5), { i: 5, op: 'rd', val: '0x1' }, 'wait-sw-and-if ICS');
  });

  test('wait-sw-and-if: status written first, then the (masked) completion event is pending', () => {
    const m = new RefModel(defaultModelConfig);
    m.mmioWrite(0x90, 8, 0x180000n);
    m.mmioWrite(0x18, 4, 0x4000000n);
    m.writeMem(0x180000n, le(0x1234567800000035n, 0x181000n));
    m.mmioWrite(0x88, 8, 0x10n);
    assert.deepEqual([...m.readMem(0x181000n, 4)], [0x78, 0x56, 0x34, 0x12]);
    assert.equal(m.mmioRead(0xa0, 4), 0xc0000000n); // IECTL: IM | IP
    assert.deepEqual(m.events, []);
    m.mmioWrite(0xa8, 4, 0xfee00000n);
    m.mmioWrite(0xa4, 4, 0x42n);
    m.mmioWrite(0xa0, 4, 0n); // unmask: the pending completion event is sent
    assert.deepEqual(m.events, [{ kind: 'completion', addr: 0xfee00000n, data: 0x42 }]);
    assert.equal(m.mmioRead(0xa0, 4), 0n);
  });
});

// ---------------------------------------------------------------------------
// Direct model tests and properties
// ---------------------------------------------------------------------------

/** Quadwords to little-endian bytes. */
function le(...qwords: bigint[]): Uint8Array {
  const out = new Uint8Array(8 * qwords.length);
  qwords.forEach((q, k) => {
    for (let b = 0; b < 8; b++) out[8 * k + b] = Number((q >> BigInt(8 * b)) & 0xffn);
  });
  return out;
}

function cfg(over: Partial<ModelConfig> = {}): ModelConfig {
  return { ...defaultModelConfig, ...over };
}

describe('capability registers', () => {
  test('CAP / ECAP values of the decisions', () => {
    assert.equal(new RefModel(cfg({ aw: 48 })).mmioRead(0x8, 8), 0x00d2008c222f0606n);
    assert.equal(new RefModel(cfg({ aw: 39 })).mmioRead(0x8, 8), 0x00d2008c22260206n);
    assert.equal(new RefModel(cfg({ aw: 39, cm: true })).mmioRead(0x8, 8), 0x00d2008c22260286n);
    assert.equal(new RefModel(cfg({ aw: 48 })).mmioRead(0x10, 8), 0xf42n);
    assert.equal(new RefModel(cfg({ aw: 48, ir: true })).mmioRead(0x10, 8), 0xf00f4an);
    assert.equal(new RefModel(cfg({ aw: 48, ir: true, eim: true })).mmioRead(0x10, 8), 0xf00f5an);
    assert.equal(new RefModel(cfg({ aw: 57, nfr: 8 })).mmioRead(0x8, 8), 0x00d2078c22380e06n);
    assert.equal(new RefModel(cfg()).mmioRead(0x0, 8), 0x10n);
  });
});

/**
 * A unit with translation on: root table 0x100000, bus 0 -> context table 0x101000, the context entry of
 * `sid` (bus 0) = (ctxLo, ctxHi). Page tables are the caller's.
 */
function translatingUnit(over: Partial<ModelConfig>, ctxLo: bigint, ctxHi: bigint, sid = 0x18): RefModel {
  const m = new RefModel(cfg(over));
  m.writeMem(0x100000n, le(0x101001n, 0n));
  m.writeMem(0x101000n + 16n * BigInt(sid & 0xff), le(ctxLo, ctxHi));
  m.mmioWrite(0x20, 8, 0x100000n);
  m.mmioWrite(0x18, 4, 0x40000000n);
  m.mmioWrite(0x18, 4, 0x80000000n);
  return m;
}

/** 3-level tables at 0x110000 (AW=1) mapping iova 0 to `leaf`; returns the context low quadword for them. */
function map3Level(m: RefModel, leaf: bigint, pde = 0x112003n): void {
  m.writeMem(0x110000n, le(0x111003n));
  m.writeMem(0x111000n, le(pde));
  m.writeMem(0x112000n, le(leaf));
}

function enableQueue(m: RefModel, base = 0x180000n): void {
  m.mmioWrite(0x90, 8, base);
  m.mmioWrite(0x18, 4, (m.mmioRead(0x1c, 4) & 0x96800000n) | 0x4000000n);
}

describe('decisions the conformance traces do not reach', () => {
  test('Bh (context reserved bits) is recorded even with FPD=1', () => {
    const m = translatingUnit({}, 0x110003n, 0x181n);
    assert.deepEqual(m.dma(0x18, 0n, 8, 'r'), { ok: false, fault: 0xb });
    assert.equal(m.mmioRead(0x34, 4), 0x2n);
  });

  test('qualified faults with FPD=1 are blocked, unrecorded, without a reason (3h, 4h, 5h, Eh)', () => {
    const bad = translatingUnit({}, 0x110003n, 0x105n); // AW=5: not in SAGAW
    assert.deepEqual(bad.dma(0x18, 0n, 8, 'r'), { ok: false });
    const m = translatingUnit({}, 0x110003n, 0x101n);
    map3Level(m, 0xfee00001n); // read-only page at the interrupt range
    assert.deepEqual(m.dma(0x18, 1n << 39n, 8, 'r'), { ok: false });
    assert.deepEqual(m.dma(0x18, 0x10n, 8, 'w'), { ok: false });
    assert.deepEqual(m.dma(0x18, 0x10n, 8, 'r'), { ok: false });
    assert.equal(m.mmioRead(0x34, 4), 0n);
    assert.equal(m.mmioRead(0x228, 8), 0n);
  });

  test('TT=1 needs ECAP.DT, TT=2 needs ECAP.PT, TT=3 is reserved', () => {
    const leaf = 0x2000003n;
    for (const [over, ttBits, want] of [
      [{}, 0x4n, { ok: false, fault: 3 }],
      [{ dt: true }, 0x4n, { ok: true, gpa: 0x2000010n }],
      [{ pt: false }, 0x8n, { ok: false, fault: 3 }],
      [{ pt: true }, 0x8n, { ok: true, gpa: 0x10n }],
      [{ dt: true }, 0xcn, { ok: false, fault: 3 }],
    ] as const) {
      const m = translatingUnit(over, 0x110001n | ttBits, 0x101n);
      map3Level(m, leaf);
      assert.deepEqual(m.dma(0x18, 0x10n, 8, 'r'), want, JSON.stringify(over));
    }
  });

  test('SNP (bit 11): allowed in a leaf only with ECAP.SC; always reserved in a non-leaf entry', () => {
    for (const sc of [false, true]) {
      const m = translatingUnit({ sc }, 0x110001n, 0x101n);
      map3Level(m, 0x2000803n);
      assert.deepEqual(m.dma(0x18, 0n, 8, 'r'), sc ? { ok: true, gpa: 0x2000000n } : { ok: false, fault: 0xc });
      const n = translatingUnit({ sc }, 0x110001n, 0x101n);
      map3Level(n, 0x2000003n, 0x112803n);
      assert.deepEqual(n.dma(0x18, 0n, 8, 'r'), { ok: false, fault: 0xc });
    }
  });

  test('TM (bit 62) is reserved unless ECAP.DT; ignored bits 63, 61:52, 10:8, 6:2 and bit 7 of a PTE', () => {
    for (const dt of [false, true]) {
      const m = translatingUnit({ dt }, 0x110001n, 0x101n);
      map3Level(m, (1n << 62n) | 0x2000003n);
      assert.deepEqual(m.dma(0x18, 0n, 8, 'r'), dt ? { ok: true, gpa: 0x2000000n } : { ok: false, fault: 0xc });
    }
    const m = translatingUnit({}, 0x110001n, 0x101n);
    const ignored = (1n << 63n) | (0x3ffn << 52n) | 0x7fcn;
    map3Level(m, ignored | 0x2000003n, (ignored & ~0x80n) | 0x112003n); // bit 7 of a PDE is PS
    assert.deepEqual(m.dma(0x18, 0x123n, 8, 'w'), { ok: true, gpa: 0x2000123n });
  });

  test('aw 57: 5-level walk, no reserved address bits below 52; a 4-level context is limited to 2^48', () => {
    const m = translatingUnit({ aw: 57 }, 0x110001n, 0x103n);
    const iova = (1n << 56n) | 0x5000n;
    const tables = [0x110000n, 0x111000n, 0x112000n, 0x113000n, 0x114000n];
    for (let level = 5; level >= 1; level--) {
      const index = (iova >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
      const entry = level === 1 ? (1n << 51n) | 0x7000003n : tables[6 - level]! | 3n;
      m.writeMem(tables[5 - level]! + 8n * index, le(entry));
    }
    assert.deepEqual(m.dma(0x18, iova | 0x10n, 8, 'r'), { ok: true, gpa: (1n << 51n) | 0x7000010n });
    const four = translatingUnit({ aw: 57 }, 0x110001n, 0x102n);
    assert.deepEqual(four.dma(0x18, 1n << 48n, 8, 'r'), { ok: false, fault: 4 });
  });

  test('interrupt range with translation on: a write passes untranslated, a read is blocked without a fault', () => {
    const m = translatingUnit({}, 0x110001n, 0x101n);
    assert.deepEqual(m.dma(0x18, 0xfee01000n, 4, 'w'), { ok: true, gpa: 0xfee01000n });
    assert.deepEqual(m.dma(0x18, 0xfee00ffcn, 4, 'r'), { ok: false });
    assert.equal(m.mmioRead(0x34, 4), 0n);
    // Crossing into the range from an unmapped page: the first page's request faults (6h) first.
    assert.deepEqual(m.dma(0x18, 0xfedffffcn, 8, 'r'), { ok: false, fault: 6 });
  });

  test('SRTP latches RTADDR: a later RTADDR write has no effect until the next SRTP', () => {
    const m = translatingUnit({}, 0x110001n, 0x101n);
    map3Level(m, 0x2000003n);
    m.mmioWrite(0x20, 8, 0x300000n); // an empty root table
    assert.deepEqual(m.dma(0x18, 0n, 8, 'r'), { ok: true, gpa: 0x2000000n });
    m.mmioWrite(0x18, 4, 0xc0000000n);
    assert.deepEqual(m.dma(0x18, 0n, 8, 'r'), { ok: false, fault: 1 });
  });

  test('a GCMD write that omits a persistent bit turns it off', () => {
    const m = translatingUnit({}, 0x110001n, 0x101n);
    assert.equal(m.mmioRead(0x1c, 4), 0xc0000000n);
    m.mmioWrite(0x18, 4, 0x4000000n); // QIE only
    assert.equal(m.mmioRead(0x1c, 4), 0x44000000n);
    assert.equal(m.mmioRead(0x18, 4), 0n);
  });

  test('CCMD: the upper dword triggers; with QI enabled a command is stored, not performed', () => {
    const m = new RefModel(cfg());
    m.mmioWrite(0x28, 4, 0x00190009n);
    assert.equal(m.mmioRead(0x28, 8), 0x9n);
    m.mmioWrite(0x2c, 4, 0xe0000003n);
    assert.equal(m.mmioRead(0x28, 8), 0x7800000000000009n);
    m.mmioWrite(0x28, 8, 0x8000000000000000n); // CIRG 00: CAIG 00, nothing done
    assert.equal(m.mmioRead(0x28, 8), 0n);
    enableQueue(m);
    m.mmioWrite(0x28, 8, 0xa000000000000000n);
    assert.equal(m.mmioRead(0x28, 8), 0xa000000000000000n);
    m.mmioWrite(0xf8, 8, 0x9000000000000000n);
    assert.equal(m.mmioRead(0xf8, 8), 0x9000000000000000n);
  });

  test('IOTLB: page-selective with AM > MAMV is not performed (IAIG 00); DR/DW read back', () => {
    const m = new RefModel(cfg());
    m.mmioWrite(0xf0, 8, 0x13n);
    m.mmioWrite(0xf8, 8, 0xb000000500000000n);
    assert.equal(m.mmioRead(0xf8, 8), 0x3000000500000000n);
    m.mmioWrite(0xf0, 8, 0x0n);
    m.mmioWrite(0xf8, 8, 0xb003000500000000n);
    assert.equal(m.mmioRead(0xf8, 8), 0x3603000500000000n);
  });

  test('queue: IQT beyond the queue size sets IQE and leaves the head', () => {
    const m = new RefModel(cfg());
    enableQueue(m);
    m.mmioWrite(0x88, 8, 0x1000n); // QS=0: 256 descriptors = 4 KiB
    assert.equal(m.mmioRead(0x80, 8), 0n);
    assert.equal(m.mmioRead(0x34, 4), 0x10n);
    assert.equal(m.mmioRead(0x38, 4), 0xc0000000n);
  });

  test('queue: clearing IQE resumes at the repaired descriptor without a new IQT write', () => {
    const m = new RefModel(cfg());
    enableQueue(m);
    m.writeMem(0x180000n, le(0x6n, 0n, 0xcafe00000025n, 0x181000n)); // [0] type 6: not supported
    m.mmioWrite(0x88, 8, 0x20n);
    assert.equal(m.mmioRead(0x80, 8), 0n);
    assert.equal(m.mmioRead(0x34, 4), 0x10n);
    m.writeMem(0x180000n, le(0x12n)); // IOTLB global
    m.mmioWrite(0x34, 4, 0x10n);
    assert.equal(m.mmioRead(0x80, 8), 0x20n);
    assert.equal(m.mmioRead(0x34, 4), 0n);
    assert.deepEqual([...m.readMem(0x181000n, 4)], [0xfe, 0xca, 0, 0]);
  });

  test('queue: descriptor validation', () => {
    const cases: Array<[bigint, bigint, boolean]> = [
      [0x11n, 0n, true], // context-cache global
      [0x01n, 0n, false], // context-cache G=0
      [0x11n, 1n, false], // context-cache QW1 != 0
      [0x11n | (1n << 50n), 0n, false], // context-cache QW0 bit 50
      [0x12n, 0x80n, false], // IOTLB QW1 bit 7
      [0x32n, 0x12n, true], // IOTLB page-selective AM 18
      [0x32n, 0x13n, false], // IOTLB page-selective AM 19
      [0x22n | (1n << 32n), 0n, false], // IOTLB QW0 bit 32
      [0x3n | (0xffn << 52n) | (0xfn << 12n), 0x1001n, true], // device-TLB: a no-op
      [0x3n | (1n << 48n), 0n, false], // device-TLB QW0 bit 48
      [0x4n, 0n, true], // IEC global
      [0x4n, 1n, false], // IEC QW1 != 0
      [0x5n | (1n << 7n), 0n, false], // wait with PD
      [0x25n, 0x181001n, false], // wait status address bits 1:0
      [0x12n | (1n << 9n), 0n, false], // type extension bits 11:9
      [0x0n, 0n, false],
      [0x7n, 0n, false],
      [0xfn, 0n, false],
    ];
    for (const [qw0, qw1, valid] of cases) {
      const m = new RefModel(cfg());
      enableQueue(m);
      m.writeMem(0x180000n, le(qw0, qw1));
      m.mmioWrite(0x88, 8, 0x10n);
      const what = `descriptor 0x${qw0.toString(16)} / 0x${qw1.toString(16)}`;
      assert.equal(m.mmioRead(0x80, 8), valid ? 0x10n : 0n, what);
      assert.equal(m.mmioRead(0x34, 4), valid ? 0n : 0x10n, what);
    }
  });

  test('queue: the head wraps at the end of the queue', () => {
    const m = new RefModel(cfg());
    m.mmioWrite(0x88, 8, 0xff0n); // software's tail before enabling: the last slot
    enableQueue(m);
    assert.equal(m.mmioRead(0x34, 4), 0x10n); // slot 0..254 hold type 0: stops at once
    const n = new RefModel(cfg());
    enableQueue(n);
    for (let k = 0n; k < 256n; k++) n.writeMem(0x180000n + 16n * k, le(0x5n | (1n << 6n), 0n)); // fences
    n.mmioWrite(0x88, 8, 0xff0n);
    assert.equal(n.mmioRead(0x80, 8), 0xff0n);
    n.mmioWrite(0x88, 8, 0x10n);
    assert.equal(n.mmioRead(0x80, 8), 0x10n);
    assert.equal(n.mmioRead(0x34, 4), 0n);
  });

  test('fault event: unmasked, sent to FEUADDR:FEADDR with FEDATA; a masked one is sent on unmask', () => {
    const m = translatingUnit({ eim: true, ir: true }, 0x110001n, 0x101n);
    m.mmioWrite(0x44, 4, 0x1n);
    m.mmioWrite(0x40, 4, 0xfee00003n);
    m.mmioWrite(0x3c, 4, 0x12345n);
    assert.deepEqual(m.dma(0x18, 0n, 8, 'r'), { ok: false, fault: 6 });
    assert.equal(m.mmioRead(0x38, 4), 0xc0000000n);
    assert.deepEqual(m.events, []);
    m.mmioWrite(0x38, 4, 0n);
    assert.deepEqual(m.events, [{ kind: 'fault', addr: 0x1fee00000n, data: 0x2345 }]);
    assert.equal(m.mmioRead(0x38, 4), 0n);
    m.mmioWrite(0x22c, 4, 0x80000000n);
    assert.deepEqual(m.dma(0x18, 0n, 8, 'w'), { ok: false, fault: 5 });
    assert.equal(m.events.length, 2);
  });

  test('fault records: FRI, round robin over nfr records, collapse per SID, PFO when the next one is busy', () => {
    const m = translatingUnit({ nfr: 3 }, 0x110001n, 0x101n);
    m.mmioWrite(0x20, 8, 0x200000n); // empty root table: every request faults 1h
    m.mmioWrite(0x18, 4, 0xc0000000n);
    const hi = (i: number): bigint => m.mmioRead(0x228 + 16 * i, 8);
    for (const sid of [0x10, 0x18, 0x18, 0x20]) m.dma(sid, 0x5000n, 8, 'w');
    assert.deepEqual([hi(0), hi(1), hi(2)], [0x8000000100000010n, 0x8000000100000018n, 0x8000000100000020n]);
    assert.equal(m.mmioRead(0x34, 4), 0x2n); // FRI 0
    m.mmioWrite(0x22c, 4, 0x80000000n); // free record 0
    m.mmioWrite(0x23c, 4, 0x80000000n); // free record 1
    m.dma(0x28, 0x6000n, 8, 'r'); // goes to record 0 (next index wrapped)
    assert.equal(hi(0), 0xc000000100000028n);
    m.dma(0x30, 0x6000n, 8, 'r'); // record 1
    assert.equal(hi(1), 0xc000000100000030n);
    m.dma(0x38, 0x6000n, 8, 'r'); // record 2 is busy: PFO
    assert.equal(m.mmioRead(0x34, 4), 0x3n);
    for (let i = 0; i < 3; i++) m.mmioWrite(0x22c + 16 * i, 4, 0x80000000n);
    m.dma(0x38, 0x6000n, 8, 'r'); // PFO still set: dropped
    assert.equal(m.mmioRead(0x34, 4), 0x1n);
    m.mmioWrite(0x34, 4, 0x1n);
    m.dma(0x38, 0x7000n, 8, 'r'); // first after PPF was 0: FRI names its record (2)
    assert.equal(m.mmioRead(0x34, 4), 0x202n);
    assert.equal(m.mmioRead(0x240, 8), 0x7000n);
  });

  test('completion event: IWC already set means no new event; clearing IWC clears IECTL.IP', () => {
    const m = new RefModel(cfg());
    enableQueue(m);
    m.mmioWrite(0xa0, 4, 0n); // unmasked
    m.writeMem(0x180000n, le(0x15n, 0n, 0x15n, 0n));
    m.mmioWrite(0x88, 8, 0x20n);
    assert.equal(m.events.length, 1);
    assert.equal(m.mmioRead(0x9c, 4), 1n);
    m.mmioWrite(0xa0, 4, 0x80000000n); // masked
    m.mmioWrite(0x9c, 4, 1n);
    m.writeMem(0x180020n, le(0x15n, 0n));
    m.mmioWrite(0x88, 8, 0x30n);
    assert.equal(m.mmioRead(0xa0, 4), 0xc0000000n);
    m.mmioWrite(0x9c, 4, 1n);
    assert.equal(m.mmioRead(0xa0, 4), 0x80000000n);
    assert.equal(m.events.length, 1);
  });

  test('register block: undefined offsets read 0 and ignore writes; FRCD beyond nfr is undefined', () => {
    const m = new RefModel(cfg({ nfr: 2 }));
    for (const off of [0x30, 0x48, 0x58, 0x100, 0x240, 0x248, 0xff8]) {
      m.mmioWrite(off, 8, (1n << 64n) - 1n);
      assert.equal(m.mmioRead(off, 8), 0n, `0x${off.toString(16)}`);
    }
    assert.throws(() => m.mmioRead(0x1000, 4));
    assert.throws(() => m.mmioRead(0x24, 8));
  });
});

// ---------------------------------------------------------------------------
// Interrupt remapping (§9, with the project's decisions)
// ---------------------------------------------------------------------------

const IRT = 0x190000n;
const GCMD_SIRTP = 0x1000000n;
const GCMD_IRE = 0x2000000n;
const GCMD_CFI = 0x800000n;
const MASK64 = (1n << 64n) - 1n;

interface IrteOpts {
  present?: boolean;
  fpd?: boolean;
  vector?: number;
  /** The raw DST field (IRTE bits 63:32): in xAPIC mode the APIC id goes in its bits 15:8. */
  dst?: number;
  dm?: boolean;
  rh?: boolean;
  tm?: boolean;
  dlm?: number;
  svt?: number;
  sq?: number;
  sid?: number;
  /** Extra bits ORed into the low / high quadword. */
  lo?: bigint;
  hi?: bigint;
}

/** An IRTE in remapped format (§9.2). */
function irte(o: IrteOpts = {}): [bigint, bigint] {
  const lo =
    (o.present === false ? 0n : 1n) |
    (o.fpd ? 2n : 0n) |
    (o.dm ? 4n : 0n) |
    (o.rh ? 8n : 0n) |
    (o.tm ? 0x10n : 0n) |
    (BigInt(o.dlm ?? 0) << 5n) |
    (BigInt(o.vector ?? 0x30) << 16n) |
    (BigInt(o.dst ?? 0x100) << 32n) |
    (o.lo ?? 0n);
  const hi = (BigInt(o.svt ?? 0) << 18n) | (BigInt(o.sq ?? 0) << 16n) | BigInt(o.sid ?? 0) | (o.hi ?? 0n);
  return [lo, hi];
}

interface IrUnitOpts {
  /** IRTA.S: 2^(S+1) entries [3]. */
  s?: number;
  eime?: boolean;
  cfi?: boolean;
  /** GCMD.IRE after SIRTP [true]. */
  ire?: boolean;
  table?: bigint;
}

/** A unit with interrupt remapping: the IRTEs `entries` (index -> [lo, hi]) at `table`, SIRTP, then IRE (and CFI). */
function irUnit(over: Partial<ModelConfig>, entries: Record<number, [bigint, bigint]>, o: IrUnitOpts = {}): RefModel {
  const m = new RefModel(cfg({ ir: true, ...over }));
  const table = o.table ?? IRT;
  for (const [index, [lo, hi]] of Object.entries(entries)) m.writeMem(table + 16n * BigInt(index), le(lo, hi));
  m.mmioWrite(0xb8, 8, table | (o.eime ? 0x800n : 0n) | BigInt(o.s ?? 3));
  m.mmioWrite(0x18, 4, GCMD_SIRTP);
  if (o.ire !== false) m.mmioWrite(0x18, 4, GCMD_IRE | (o.cfi ? GCMD_CFI : 0n));
  return m;
}

/** The remappable-format MSI address for HANDLE `handle` (§9.4), SHV as given. */
function remappable(handle: number, shv = false): bigint {
  return 0xfee00000n | (BigInt(handle & 0x7fff) << 5n) | 0x10n | (shv ? 8n : 0n) | (BigInt(handle >> 15) << 2n);
}

/** FRCD[0] (low, high). */
function record0(m: RefModel): [bigint, bigint] {
  return [m.mmioRead(0x220, 8), m.mmioRead(0x228, 8)];
}

const delivered = (addr: bigint, data: number) => ({ ok: true, addr, data });
const blocked = (fault?: number) => (fault === undefined ? { ok: false } : { ok: false, fault });
/** The delivered message of the default IRTE (vector 0x30, xAPIC destination 1, fixed, edge, physical). */
const DEFAULT_DELIVERY = delivered(0xfee01000n, 0x4030);

describe('interrupt remapping: configuration and latching', () => {
  test('CAP.PI (bit 59) with pi; pi requires ir', () => {
    const base = new RefModel(cfg({ ir: true })).mmioRead(0x8, 8);
    assert.equal(base & (1n << 59n), 0n);
    assert.equal(new RefModel(cfg({ ir: true, pi: true })).mmioRead(0x8, 8), base | (1n << 59n));
    assert.equal(new RefModel(cfg({ ir: true, pi: true })).mmioRead(0x10, 8), new RefModel(cfg({ ir: true })).mmioRead(0x10, 8));
    assert.throws(() => new RefModel(cfg({ pi: true })), /requires ir/);
  });

  test('IRES = 0: every message passes unchanged, whatever its format or the table', () => {
    const u64 = fc.bigInt({ min: 0n, max: MASK64 });
    fc.assert(
      fc.property(fc.boolean(), fc.option(fc.integer({ min: 0, max: 0xffff })), u64, fc.integer({ min: 0, max: 0xffffffff }), (ir, sid, addr, data) => {
        const m = ir ? irUnit({}, { 0: irte({ present: false }) }, { ire: false, cfi: true }) : new RefModel(cfg());
        assert.deepEqual(m.msi(sid, addr, data), delivered(addr, data));
        assert.equal(m.mmioRead(0x34, 4), 0n);
      }),
    );
  });

  test('SIRTP latches the table address, size and EIME; an IRTA write alone changes nothing', () => {
    const m = irUnit({}, { 1: irte({ vector: 0x41 }), 2: irte({ vector: 0x42 }) }, { s: 0 });
    assert.deepEqual(m.msi(0x18, remappable(1), 0), delivered(0xfee01000n, 0x4041));
    assert.deepEqual(m.msi(0x18, remappable(2), 0), blocked(0x21)); // 2 entries
    m.mmioWrite(0xb8, 8, 0x1a0003n); // another table, 16 entries: not latched yet
    m.writeMem(0x1a0010n, le(...irte({ vector: 0x51 })));
    assert.deepEqual(m.msi(0x18, remappable(1), 0), delivered(0xfee01000n, 0x4041));
    assert.deepEqual(m.msi(0x18, remappable(2), 0), blocked(0x21));
    m.mmioWrite(0x18, 4, GCMD_SIRTP | GCMD_IRE);
    assert.deepEqual(m.msi(0x18, remappable(1), 0), delivered(0xfee01000n, 0x4051));
    assert.deepEqual(m.msi(0x18, remappable(2), 0), blocked(0x22)); // zeroed memory: not present
    // EIME only with ECAP.EIM (IRTA bit 11 is not writable without it); x2APIC takes the whole DST.
    const entry = { 0: irte({ dst: 0x21 }) };
    assert.deepEqual(irUnit({ eim: true }, entry, { eime: true }).msi(0x18, remappable(0), 0), delivered(0xfee21000n, 0x4030));
    assert.deepEqual(irUnit({}, { 0: irte({ dst: 0x2100 }) }, { eime: true }).msi(0x18, remappable(0), 0), delivered(0xfee21000n, 0x4030));
    // The table address keeps only bits [12, aw): IRTA bits at or above aw are not writable.
    const high = irUnit({ aw: 39 }, {}, { table: IRT });
    high.mmioWrite(0xb8, 8, (1n << 40n) | IRT | 3n);
    assert.equal(high.mmioRead(0xb8, 8), IRT | 3n);
  });
});

describe('interrupt remapping: checks before the IRTE', () => {
  test('20h: address bits 63:32 set or bits 31:20 not FEEh; recorded with FI = 0, T = 0 and the SID', () => {
    for (const addr of [0x1fee00010n, 0xfef00010n, 0xfed00000n, 1n << 63n | 0xfee00010n]) {
      const m = irUnit({}, { 0: irte() }, { cfi: true });
      assert.deepEqual(m.msi(0x18, addr, 0), blocked(0x20), `0x${addr.toString(16)}`);
      assert.deepEqual(record0(m), [0n, 0x8000002000000018n]);
    }
  });

  test('20h: SHV = 1 with data bits 31:16 set; with SHV = 0 the data is not used', () => {
    const m = irUnit({}, { 0: irte() });
    assert.deepEqual(m.msi(0x18, remappable(0, true), 0x10000), blocked(0x20));
    assert.deepEqual(record0(m), [0n, 0x8000002000000018n]);
    const n = irUnit({}, { 0: irte() });
    assert.deepEqual(n.msi(0x18, remappable(0), 0xffffffff), DEFAULT_DELIVERY);
  });

  test('25h: a compatibility-format message is blocked unless CFIS = 1 and EIME = 0', () => {
    const compat = 0xfee01004n;
    const cases: Array<[Partial<ModelConfig>, IrUnitOpts, object]> = [
      [{}, { cfi: false }, blocked(0x25)],
      [{}, { cfi: true }, delivered(compat, 0x12345)],
      [{ eim: true }, { cfi: true, eime: false }, delivered(compat, 0x12345)],
      [{ eim: true }, { cfi: true, eime: true }, blocked(0x25)],
      [{ eim: true }, { cfi: false, eime: true }, blocked(0x25)],
    ];
    for (const [over, o, want] of cases) {
      const m = irUnit(over, {}, o);
      assert.deepEqual(m.msi(0x18, compat, 0x12345), want, JSON.stringify(o));
      if (!('addr' in want)) assert.deepEqual(record0(m), [0n, 0x8000002500000018n]);
    }
    // The address check comes first.
    assert.deepEqual(irUnit({}, {}).msi(0x18, 0xfef01000n, 0), blocked(0x20));
  });

  test('the index: HANDLE from address 19:5 and bit 2, plus SUBHANDLE when SHV = 1', () => {
    const entries: Record<number, [bigint, bigint]> = {};
    for (const index of [0, 1, 0x7fff, 0x8000, 0x8005, 0xffff]) entries[index] = irte({ vector: index & 0xff, dst: (index >> 8) << 8 });
    const m = irUnit({}, entries, { s: 15, table: 0x400000n });
    const at = (index: number) => delivered(0xfee00000n | (BigInt(index >> 8) << 12n), 0x4000 | (index & 0xff));
    assert.deepEqual(m.msi(0x18, remappable(0x7fff), 0), at(0x7fff));
    assert.deepEqual(m.msi(0x18, remappable(0x8000), 0), at(0x8000)); // address bit 2 = HANDLE[15]
    assert.deepEqual(m.msi(0x18, remappable(0x8000, true), 5), at(0x8005));
    assert.deepEqual(m.msi(0x18, remappable(0, true), 0xffff), at(0xffff));
    assert.deepEqual(m.msi(0x18, remappable(1, true), 0), at(1));
    assert.deepEqual(m.msi(0x18, remappable(0x7fff) | 3n, 0), at(0x7fff)); // address bits 1:0 are don't-care
  });

  test('21h: index >= 2^(S+1), FI = index << 48 (bits 63:48 of the 64-bit FI)', () => {
    const m = irUnit({}, { 15: irte() }, { s: 3 });
    assert.deepEqual(m.msi(0x18, remappable(15), 0), DEFAULT_DELIVERY);
    assert.deepEqual(m.msi(0x18, remappable(16), 0), blocked(0x21));
    assert.deepEqual(record0(m), [0x10n << 48n, 0x8000002100000018n]);
    const n = irUnit({}, {}, { s: 15 });
    assert.deepEqual(n.msi(0x18, remappable(0xffff, true), 0xffff), blocked(0x21)); // index 0x1fffe
    assert.deepEqual(record0(n), [0xfffen << 48n, 0x8000002100000018n]);
  });
});

describe('interrupt remapping: the IRTE', () => {
  test('23h: the table, or either quadword of the entry, at or above the end of RAM', () => {
    const m = irUnit({ ram: 0x4000000n }, {}, { table: 0x5000000n });
    assert.deepEqual(m.msi(0x18, remappable(5), 0), blocked(0x23));
    assert.deepEqual(record0(m), [5n << 48n, 0x8000002300000018n]);
    const n = irUnit({ ram: 0x200008n }, {}, { table: 0x200000n });
    n.writeMem(0x200000n, le(irte({ fpd: true, present: false })[0])); // only the low quadword is in RAM
    assert.deepEqual(n.msi(0x18, remappable(0), 0), blocked(0x23)); // no IRTE, no FPD: recorded
  });

  test('22h: not present; FI = index << 48, FR 22h, SID, T = 0', () => {
    const m = irUnit({}, { 9: irte({ present: false }) }, { s: 15 });
    assert.deepEqual(m.msi(0x18, remappable(9), 0), blocked(0x22));
    assert.deepEqual(record0(m), [9n << 48n, 0x8000002200000018n]);
    assert.equal(m.mmioRead(0x34, 4), 2n);
    assert.equal(m.mmioRead(0x38, 4), 0xc0000000n);
  });

  test('FPD (IRTE bit 1) suppresses 22h, 24h and 26h: blocked without a reason, nothing recorded', () => {
    const cases: Array<[IrteOpts, number, string]> = [
      [{ present: false }, 0x22, 'not present'],
      [{ lo: 1n << 12n }, 0x24, 'reserved bit 12'],
      [{ svt: 3 }, 0x24, 'SVT 3'],
      [{ svt: 1, sid: 0x20 }, 0x26, 'SVT 1, another SID'],
      [{ svt: 2, sid: 0x0101 }, 0x26, 'SVT 2, another bus'],
    ];
    for (const [o, reason, what] of cases) {
      assert.deepEqual(irUnit({}, { 0: irte(o) }).msi(0x18, remappable(0), 0), blocked(reason), what);
      const m = irUnit({}, { 0: irte({ ...o, fpd: true }) });
      assert.deepEqual(m.msi(0x18, remappable(0), 0), blocked(), what);
      assert.equal(m.mmioRead(0x34, 4), 0n);
      assert.equal(m.mmioRead(0x38, 4), 0x80000000n);
    }
  });

  test('24h: every reserved bit of a remapped-format IRTE; xAPIC mode adds DST 39:32 and 63:48; AVAIL is ignored', () => {
    const range = (lo: number, hi: number): number[] => Array.from({ length: hi - lo + 1 }, (_, k) => lo + k);
    const loAlways = [...range(12, 15), ...range(24, 31)];
    const loXapic = [...range(32, 39), ...range(48, 63)];
    for (const eime of [false, true]) {
      for (let b = 0; b < 64; b++) {
        const base = irte({ dst: 0x100 });
        const lo = base[0] | (1n << BigInt(b));
        const rsvd = loAlways.includes(b) || (!eime && loXapic.includes(b));
        const r = irUnit({ eim: true }, { 0: [lo, 0n] }, { eime }).msi(0x18, remappable(0), 0);
        if (rsvd) assert.deepEqual(r, blocked(0x24), `lo bit ${b} eime ${eime}`);
        else assert.equal(r.ok, true, `lo bit ${b} eime ${eime}`);
      }
      for (let b = 0; b < 64; b++) {
        const r = irUnit({ eim: true }, { 0: [irte()[0], 1n << BigInt(b)] }, { eime }).msi(null, remappable(0), 0);
        if (b >= 20) assert.deepEqual(r, blocked(0x24), `hi bit ${b}`);
        else assert.equal(r.ok, true, `hi bit ${b}`); // SID, SQ, SVT: no source validation without a requester id
      }
    }
    const m = irUnit({}, { 0: irte({ lo: 0xf00n }) }); // AVAIL 11:8
    assert.deepEqual(m.msi(0x18, remappable(0), 0), DEFAULT_DELIVERY);
    const r = irUnit({}, { 7: irte({ lo: 1n << 40n | 1n << 32n }) });
    assert.deepEqual(r.msi(0x18, remappable(7), 0), blocked(0x24));
    assert.deepEqual(record0(r), [7n << 48n, 0x8000002400000018n]);
  });

  test('source validation: SVT 1 with the SQ masks, SVT 2 bus range start SID[15:8] .. end SID[7:0], SVT 3 reserved', () => {
    const IRTE_SID = 0x031d; // 03:03.5
    const sq: Array<[number, number[], number[]]> = [
      // SQ, requesters that pass, requesters that fail
      [0, [0x031d], [0x031c, 0x031f, 0x0319, 0x0315, 0x041d]],
      [1, [0x031d, 0x0319], [0x031c, 0x031f, 0x0315]], // ignore bit 2
      [2, [0x031d, 0x0319, 0x031b, 0x031f], [0x031c, 0x0318, 0x0315]], // ignore bits 2:1
      [3, [0x0318, 0x031f, 0x031d], [0x0310, 0x0320, 0x021d]], // ignore bits 2:0
    ];
    for (const [q, pass, failing] of sq) {
      for (const sid of pass) assert.deepEqual(irUnit({}, { 0: irte({ svt: 1, sq: q, sid: IRTE_SID }) }).msi(sid, remappable(0), 0), DEFAULT_DELIVERY, `SQ ${q} sid ${sid}`);
      for (const sid of failing) {
        const m = irUnit({}, { 0: irte({ svt: 1, sq: q, sid: IRTE_SID }) });
        assert.deepEqual(m.msi(sid, remappable(0), 0), blocked(0x26), `SQ ${q} sid ${sid}`);
        assert.deepEqual(record0(m), [0n, 0x8000002600000000n | BigInt(sid)]);
      }
    }
    for (const [range, bus, ok] of [
      [0x0305, 3, true],
      [0x0305, 4, true],
      [0x0305, 5, true],
      [0x0305, 2, false],
      [0x0305, 6, false],
      [0x0503, 4, false], // start > end: no bus passes
      [0x0000, 0, true],
      [0x0001, 1, true], // dev-ir-faults op 26: QEMU reads the bounds the other way round
    ] as const) {
      const r = irUnit({}, { 0: irte({ svt: 2, sq: 3, sid: range }) }).msi((bus << 8) | 0x7, remappable(0), 0);
      assert.deepEqual(r, ok ? DEFAULT_DELIVERY : blocked(0x26), `range 0x${range.toString(16)} bus ${bus}`);
    }
    assert.deepEqual(irUnit({}, { 0: irte({ svt: 3, sid: 0x18 }) }).msi(0x18, remappable(0), 0), blocked(0x24));
    // Without a requester id there is no source validation, whatever SVT says.
    for (const svt of [1, 2, 3]) assert.deepEqual(irUnit({}, { 0: irte({ svt, sid: 0xffff }) }).msi(null, remappable(0), 0), DEFAULT_DELIVERY);
  });

  test('delivery: destination, DM, RH, TM, DLM and vector in compatibility format', () => {
    const o: IrteOpts = { vector: 0xab, dm: true, rh: true, tm: true, dlm: 5, dst: 0x7d00 };
    assert.deepEqual(irUnit({}, { 0: irte(o) }).msi(0x18, remappable(0), 0), delivered(0xfee7d00cn, 0xc5ab));
    assert.deepEqual(irUnit({}, { 0: irte({ vector: 0x20, dlm: 1 }) }).msi(0x18, remappable(0), 0), delivered(0xfee01000n, 0x4120));
    // x2APIC: the whole 32-bit destination, bits 31:8 in address bits 63:40.
    const x2 = irUnit({ eim: true }, { 0: irte({ ...o, dst: 0xfedcba98 }) }, { eime: true });
    assert.deepEqual(x2.msi(0x18, remappable(0), 0), delivered(0xfedcba00fee9800cn, 0xc5ab));
    const small = irUnit({ eim: true }, { 0: irte({ dst: 0xff }) }, { eime: true });
    assert.deepEqual(small.msi(0x18, remappable(0), 0), delivered(0xfeeff000n, 0x4030));
  });

  test('posted format (pi, IM = 1): descriptor address, vector, URG; its own reserved bits; source validation', () => {
    const pda = 0xabcdef0112345640n;
    const lo = 1n | (1n << 15n) | (1n << 14n) | (0x45n << 16n) | ((pda & 0xffffffffn) >> 6n << 38n);
    const hi = (pda & 0xffffffff00000000n) | (1n << 18n) | 0x18n; // SVT 1, SID 00:03.0
    const want = { ok: true, posted: true, descriptor: pda, vector: 0x45, urgent: true };
    assert.deepEqual(irUnit({ pi: true }, { 0: [lo, hi] }).msi(0x18, remappable(0), 0), want);
    assert.deepEqual(irUnit({ pi: true }, { 0: [lo & ~(1n << 14n), hi] }).msi(0x18, remappable(0), 0), { ...want, urgent: false });
    assert.deepEqual(irUnit({ pi: true }, { 0: [lo, hi] }).msi(0x20, remappable(0), 0), blocked(0x26));
    assert.deepEqual(irUnit({ pi: true }, { 0: [lo | 0xf00n, hi] }).msi(0x18, remappable(0), 0), want); // AVAIL
    const loRsvd = [2, 3, 4, 5, 6, 7, 12, 13, 24, 30, 37];
    for (const b of loRsvd) assert.deepEqual(irUnit({ pi: true }, { 0: [lo | (1n << BigInt(b)), hi] }).msi(0x18, remappable(0), 0), blocked(0x24), `lo ${b}`);
    for (const b of [20, 25, 31]) assert.deepEqual(irUnit({ pi: true }, { 0: [lo, hi | (1n << BigInt(b))] }).msi(0x18, remappable(0), 0), blocked(0x24), `hi ${b}`);
    // Without CAP.PI, IM is a reserved bit (24h); with it and IM = 0, the remapped format as before.
    assert.deepEqual(irUnit({}, { 0: [lo, hi] }).msi(0x18, remappable(0), 0), blocked(0x24));
    assert.deepEqual(irUnit({ pi: true }, { 0: irte() }).msi(0x18, remappable(0), 0), DEFAULT_DELIVERY);
  });

  test('nothing is cached: an IRTE change is seen at once, without an invalidation', () => {
    const m = irUnit({}, { 0: irte() });
    assert.deepEqual(m.msi(0x18, remappable(0), 0), DEFAULT_DELIVERY);
    m.writeMem(IRT, le(...irte({ vector: 0x99 })));
    assert.deepEqual(m.msi(0x18, remappable(0), 0), delivered(0xfee01000n, 0x4099));
    m.writeMem(IRT, le(...irte({ present: false })));
    assert.deepEqual(m.msi(0x18, remappable(0), 0), blocked(0x22));
  });
});

describe('interrupt remapping: fault recording, IOAPIC, IEC descriptor', () => {
  test('interrupt faults are recorded as DMA faults are: SID 0 without a requester id, collapse, PFO, FRI, event', () => {
    const m = irUnit({ nfr: 2 }, { 0: irte({ present: false }) });
    m.mmioWrite(0x38, 4, 0n); // fault events unmasked
    m.mmioWrite(0x40, 4, 0xfee00000n);
    m.mmioWrite(0x3c, 4, 0x55n);
    assert.deepEqual(m.msi(null, remappable(0), 0), blocked(0x22));
    assert.deepEqual(record0(m), [0n, 0x8000002200000000n]);
    assert.deepEqual(m.events, [{ kind: 'fault', addr: 0xfee00000n, data: 0x55 }]);
    assert.deepEqual(m.msi(0, remappable(16), 0), blocked(0x21)); // SID 0 again: collapsed, not recorded
    assert.equal(m.mmioRead(0x238, 8), 0n);
    assert.deepEqual(m.msi(0x18, remappable(3), 0), blocked(0x22)); // record 1
    assert.deepEqual([m.mmioRead(0x230, 8), m.mmioRead(0x238, 8)], [3n << 48n, 0x8000002200000018n]);
    assert.deepEqual(m.msi(0x20, 0xfee00000n, 0), blocked(0x25)); // next record (0) busy: PFO
    assert.equal(m.mmioRead(0x34, 4), 0x3n);
    assert.equal(m.events.length, 1);
    // A DMA fault and an interrupt fault of one SID collapse into one record as well.
    const d = irUnit({ nfr: 2 }, {});
    d.mmioWrite(0x20, 8, 0x300000n);
    d.mmioWrite(0x18, 4, 0x40000000n | GCMD_IRE);
    d.mmioWrite(0x18, 4, 0x80000000n | GCMD_IRE);
    assert.deepEqual(d.dma(0x18, 0x1000n, 8, 'w'), { ok: false, fault: 1 });
    assert.deepEqual(d.msi(0x18, remappable(1), 0), blocked(0x22));
    assert.equal(d.mmioRead(0x238, 8), 0n);
  });

  test('IOAPIC: a remappable RTE is a remappable MSI with SHV = 0; a compatibility RTE a compatibility MSI', () => {
    // Remappable: HANDLE 0x8123 (RTE 63:49 = 0x123, RTE 11 = 1), vector 0x41; bits 47:12 do not travel.
    const rte = (0x123n << 49n) | (1n << 48n) | (1n << 16n) | (1n << 15n) | (1n << 11n) | (0x7n << 8n) | 0x41n;
    assert.deepEqual(ioapicMessage(rte), { addr: 0xfee00000n | (0x123n << 5n) | 0x10n | 0x4n, data: 0x41 });
    // Compatibility: destination 63:56, DM 11, vector and delivery mode 10:0, TM 15; mask (16) does not travel.
    const compat = (0x0an << 56n) | (1n << 16n) | (1n << 15n) | (1n << 11n) | (1n << 8n) | 0x33n;
    assert.deepEqual(ioapicMessage(compat), { addr: 0xfee0a004n, data: 0xc133 });

    const m = irUnit({}, { 0x8123: irte({ vector: 0x41, svt: 1, sid: 0xf0f8 }) }, { s: 15, table: 0x400000n });
    assert.deepEqual(m.ioapic(null, rte), delivered(0xfee01000n, 0x4041)); // no requester id: no SVT check
    assert.deepEqual(m.ioapic(0xf0f8, rte), delivered(0xfee01000n, 0x4041));
    assert.deepEqual(m.ioapic(0xf0f0, rte), blocked(0x26));
    assert.deepEqual(m.ioapic(0xf0f8, compat), blocked(0x25));
    const cfis = irUnit({}, {}, { cfi: true });
    assert.deepEqual(cfis.ioapic(null, compat), delivered(0xfee0a004n, 0xc133));
    const off = irUnit({}, {}, { ire: false });
    assert.deepEqual(off.ioapic(null, rte), delivered(ioapicMessage(rte).addr, 0x41));
  });

  test('IEC descriptor (0x4): validation (IM > MHMV only when index-selective); the listener hears it', () => {
    const cases: Array<[bigint, bigint, boolean]> = [
      [0x4n, 0n, true], // global
      [0x4n | (0x1fn << 27n) | (0xffffn << 32n), 0n, true], // global: IM and IIDX not looked at
      [0x14n | (0xfn << 27n) | (0x1234n << 32n), 0n, true], // index-selective, IM = MHMV
      [0x14n | (0x10n << 27n), 0n, false], // IM 16 > MHMV
      [0x4n | (1n << 5n), 0n, false], // QW0 bit 5
      [0x4n | (1n << 26n), 0n, false], // QW0 bit 26
      [0x4n | (1n << 48n), 0n, false], // QW0 bit 48
      [0x4n, 1n << 63n, false], // QW1
    ];
    for (const [qw0, qw1, valid] of cases) {
      const m = new RefModel(cfg({ ir: true }));
      const seen: unknown[] = [];
      m.setInvalidationListener((inv) => seen.push(inv));
      enableQueue(m);
      m.writeMem(0x180000n, le(qw0, qw1));
      m.mmioWrite(0x88, 8, 0x10n);
      const what = `descriptor 0x${qw0.toString(16)} / 0x${qw1.toString(16)}`;
      assert.equal(m.mmioRead(0x34, 4), valid ? 0n : 0x10n, what);
      assert.equal(seen.length, valid ? 1 : 0, what);
    }
    const m = new RefModel(cfg({ ir: true }));
    const seen: unknown[] = [];
    m.setInvalidationListener((inv) => seen.push(inv));
    enableQueue(m);
    m.writeMem(0x180000n, le(0x4n, 0n, 0x14n | (2n << 27n) | (0x1237n << 32n), 0n, 0x14n | (0x9n << 32n), 0n));
    m.mmioWrite(0x88, 8, 0x30n);
    assert.deepEqual(seen, [
      { cache: 'iec', granularity: 'global' },
      { cache: 'iec', granularity: 'index', index: 0x1234, im: 2 },
      { cache: 'iec', granularity: 'index', index: 9, im: 0 },
    ]);
  });
});

describe('properties', () => {
  const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
  const u32 = fc.bigInt({ min: 0n, max: (1n << 32n) - 1n });

  test('guest memory: what is written reads back; other bytes read 0', () => {
    const ram = 0x100000n;
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: ram - 64n }), fc.uint8Array({ minLength: 1, maxLength: 64 }), (gpa, bytes) => {
        const m = new RefModel(cfg({ ram }));
        m.writeMem(gpa, bytes);
        assert.deepEqual(m.readMem(gpa, bytes.length), bytes);
        if (gpa >= 8n) assert.deepEqual([...m.readMem(gpa - 8n, 8)], [0, 0, 0, 0, 0, 0, 0, 0]);
        assert.throws(() => m.readMem(ram - 1n, 2));
      }),
    );
  });

  test('plain read/write registers keep exactly their writable bits; write-only ones read 0', () => {
    const mask = (hi: number, lo: number): bigint => ((1n << BigInt(hi - lo + 1)) - 1n) << BigInt(lo);
    fc.assert(
      fc.property(fc.constantFrom<39 | 48 | 57>(39, 48, 57), fc.boolean(), u64, u32, (aw, eim, v64, v32) => {
        const m = new RefModel(cfg({ aw, ir: true, eim }));
        const addr = mask(aw - 1, 12);
        const cases: Array<[number, 4 | 8, bigint, bigint]> = [
          [0x20, 8, v64, addr], // RTADDR
          [0x90, 8, v64, addr | 0x7n], // IQA
          [0xb8, 8, v64, addr | (eim ? 0x800n : 0n) | 0xfn], // IRTA
          [0x3c, 4, v32, 0xffffn], // FEDATA
          [0x40, 4, v32, 0xfffffffcn], // FEADDR
          [0x44, 4, v32, eim ? 0xffffffffn : 0n], // FEUADDR
          [0xa4, 4, v32, 0xffffn], // IEDATA
          [0xa8, 4, v32, 0xfffffffcn], // IEADDR
          [0xac, 4, v32, eim ? 0xffffffffn : 0n], // IEUADDR
          [0xf0, 8, v64, 0n], // IVA: write-only
        ];
        for (const [off, size, v, keep] of cases) {
          m.mmioWrite(off, size, v);
          assert.equal(m.mmioRead(off, size), v & keep, `register 0x${off.toString(16)}`);
        }
      }),
    );
  });

  test('translation off: every request outside the interrupt range keeps its address', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), u64, fc.integer({ min: 1, max: 4096 }), fc.constantFrom<'r' | 'w'>('r', 'w'), (sid, iova, len, dir) => {
        const m = new RefModel(cfg());
        // A request crossing a 4 KiB boundary is one request per page; the first page that touches
        // the interrupt range decides (a read is blocked, a write is an interrupt request there).
        const inFirst = 0x1000 - Number(iova & 0xfffn);
        const pages: [bigint, number][] = len <= inFirst ? [[iova, len]] : [[iova, inFirst], [(iova + BigInt(inFirst)) & ((1n << 64n) - 1n), len - inFirst]];
        const hit = pages.find(([a, n]) => a <= 0xfeefffffn && a + BigInt(n) - 1n >= 0xfee00000n);
        const r = m.dma(sid, iova, len, dir);
        if (hit && dir === 'r') assert.deepEqual(r, { ok: false });
        else assert.deepEqual(r, { ok: true, gpa: hit ? hit[0] : iova });
      }),
    );
  });

  test('a 4 KiB mapping built at random translates to frame | offset and honours its rights', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<39 | 48>(39, 48),
        fc.integer({ min: 0, max: 0xffff }),
        fc.bigInt({ min: 0n, max: (1n << 39n) - 1n }),
        // Frames of the interrupt range (0xFEE00-0xFEEFF) translate to fault Eh,
        // a rule of its own tested elsewhere: keep them out of this property.
        fc.bigInt({ min: 0x1000n, max: 0xfffffn }).filter((f) => f < 0xfee00n || f > 0xfeeffn),
        fc.constantFrom(1n, 2n, 3n),
        fc.constantFrom<'r' | 'w'>('r', 'w'),
        (aw, sid, iova, frameNumber, rights, dir) => {
          const m = new RefModel(cfg({ aw }));
          const bus = BigInt(sid >> 8);
          const devfn = BigInt(sid & 0xff);
          const levels = aw === 48 ? 4 : 3;
          // Root table 0x100000, context table 0x200000, tables from 0x300000 (one per level).
          m.writeMem(0x100000n + 16n * bus, le(0x200001n, 0n));
          m.writeMem(0x200000n + 16n * devfn, le(0x300001n, (5n << 8n) | BigInt(levels - 2)));
          for (let level = levels; level >= 1; level--) {
            const table = 0x300000n + 0x1000n * BigInt(levels - level);
            const index = (iova >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
            const entry = level === 1 ? (frameNumber << 12n) | rights : (table + 0x1000n) | 3n;
            m.writeMem(table + 8n * index, le(entry));
          }
          m.mmioWrite(0x20, 8, 0x100000n);
          m.mmioWrite(0x18, 4, 0x40000000n);
          m.mmioWrite(0x18, 4, 0x80000000n);
          // 8 bytes, moved back to stay in the mapped page (a request crossing into the next page is
          // two page requests, and the next page is not mapped here).
          iova = (iova & 0xfffn) > 0xff8n ? (iova & ~0xfffn) | 0xff8n : iova;
          const r = m.dma(sid, iova, 8, dir);
          const inIntr = iova >= 0xfee00000n && iova <= 0xfeefffffn;
          const gpa = (frameNumber << 12n) | (iova & 0xfffn);
          const allowed = dir === 'r' ? (rights & 1n) !== 0n : (rights & 2n) !== 0n;
          if (inIntr) assert.deepEqual(r, dir === 'w' ? { ok: true, gpa: iova } : { ok: false });
          else if (allowed) assert.deepEqual(r, { ok: true, gpa });
          else assert.deepEqual(r, { ok: false, fault: dir === 'w' ? 5 : 6 });
        },
      ),
    );
  });

  test('fault recording: PPF is the OR of F, pending records never share a SID, IP only with a condition', () => {
    const action = fc.oneof(
      fc.record({ kind: fc.constant('fault' as const), dev: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant('clearF' as const), rec: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant('clearFsts' as const), bits: fc.integer({ min: 0, max: 0x7f }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(action, { maxLength: 40 }), (nfr, actions) => {
        const m = new RefModel(cfg({ nfr }));
        // TE on with a root table that has no present entries: every request faults 1h (never suppressed).
        m.mmioWrite(0x20, 8, 0x100000n);
        m.mmioWrite(0x18, 4, 0xc0000000n);
        for (const a of actions) {
          if (a.kind === 'fault') {
            assert.deepEqual(m.dma(a.dev << 3, 0x1000n, 8, 'r'), { ok: false, fault: 1 });
          } else if (a.kind === 'clearF') {
            if (a.rec < nfr) m.mmioWrite(0x22c + 16 * a.rec, 4, 0x80000000n);
          } else {
            m.mmioWrite(0x34, 4, BigInt(a.bits));
          }
          const fsts = m.mmioRead(0x34, 4);
          const pending: bigint[] = [];
          for (let i = 0; i < nfr; i++) {
            const hi = m.mmioRead(0x228 + 16 * i, 8);
            if (hi >> 63n) pending.push(hi & 0xffffn);
          }
          assert.equal((fsts >> 1n) & 1n, pending.length > 0 ? 1n : 0n, 'PPF');
          assert.equal(new Set(pending).size, pending.length, 'collapsed per SID');
          const ip = (m.mmioRead(0x38, 4) >> 30n) & 1n;
          if (ip) assert.notEqual(fsts & 0x7fn, 0n, 'IP without a pending condition');
        }
      }),
    );
  });
});
