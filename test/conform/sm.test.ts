// Conformance in scalable mode, without QEMU: the generator's scalable-mode
// traces (for QEMU 10), the window tracker and walk in scalable mode, the
// QEMU 10 scalable-mode deviations on hand-made answer pairs (each with a
// look-alike that must stay NEW), and QEMU 10's recorded answers to
// scalable-mode traces (test/fixtures/conformance/qemu10/sm/).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseTrace, replayTrace } from '../../src/index.js';
import { planMachine } from '../../src/qemu/harness.js';
import { compareTrace, replayWithoutCaches, type Verdict } from '../../src/conform/compare.js';
import { deviationsFor } from '../../src/conform/deviations.js';
import { renderTrace, traceForSeed } from '../../src/conform/gen/index.js';
import {
  G_DOMAIN, IQA_DW, PC_G_PASID, PGTT_SECOND, RTADDR_TTM_SM, iotlbDesc, pasidDirEntry, pasidEntry, pcDesc, smContextEntry, smRootEntry, waitDesc, wide,
} from '../../src/guest/layout.js';
import { CONFORMANCE } from '../helpers.js';

const SM_FIXTURES = join(CONFORMANCE, 'qemu10', 'sm');
const hx = (v: bigint | number): string => '0x' + v.toString(16);
const mem = (gpa: bigint, q: readonly bigint[]): string => JSON.stringify({ op: 'mem', gpa: hx(gpa), q: q.map(hx) });
const wr = (reg: number, size: number, val: bigint | number): string => JSON.stringify({ op: 'wr', reg: hx(reg), size, val: hx(val) });
const dma = (iova: bigint, dir: 'r' | 'w'): string => JSON.stringify({ op: 'dma', sid: '00:03.0', iova: hx(iova), len: 4, dir });

/**
 * A scalable-mode unit (aw 48), device 00:03.0 with RID_PASID 0 in DID 1:
 * second-stage tables at 0x110000 mapping 0 -> 0x1000000 RW and 0x1000 ->
 * 0x1001000 read-only; DID 2's tables at 0x120000 map 0 -> 0x2000000. A
 * 256-bit queue at 0x180000; root table latched, translation on. The ops
 * after it are `extra`.
 */
function smTrace(extra: string[]): string {
  const pe = (did: number, table: bigint, present = true): bigint[] => pasidEntry({ aw: 1, pgtt: PGTT_SECOND, did, ssptptr: table, present });
  return [
    '{"vtd-trace": 1, "iommu": {"aw": 48, "sm": true}, "devices": ["00:03.0"]}',
    mem(0x100000n, smRootEntry({ lower: 0x101000n })),
    mem(0x101300n, smContextEntry({ pdts: 0, pasidDir: 0x102000n, ridPasid: 0 })),
    mem(0x102000n, [pasidDirEntry({ table: 0x103000n })]),
    mem(0x103000n, pe(1, 0x110000n)),
    mem(0x110000n, [0x111003n]), mem(0x111000n, [0x112003n]), mem(0x112000n, [0x1000003n, 0x1001001n]),
    mem(0x120000n, [0x121003n]), mem(0x121000n, [0x122003n]), mem(0x122000n, [0x2000003n]),
    wr(0x90, 8, 0x180000n | IQA_DW), wr(0x88, 8, 0), wr(0x18, 4, 0x04000000),
    wr(0x20, 8, 0x100000n | RTADDR_TTM_SM), wr(0x18, 4, 0x44000000), wr(0x18, 4, 0x84000000),
    ...extra,
  ].join('\n');
}
const SM_SETUP_OPS = 16;
/** The PASID entry of 00:03.0 rewritten: DID, tables, P. */
const peWrite = (did: number, table: bigint, present = true): string => mem(0x103000n, pasidEntry({ aw: 1, pgtt: PGTT_SECOND, did, ssptptr: table, present }));
/** Queue slots 0.. (256-bit): descriptors then a wait; the tail after them. */
function queue(slot: number, descs: bigint[][]): string[] {
  const all = [...descs, wide(waitDesc({ sw: true, data: 1, addr: 0x190000n }))];
  return [mem(0x180000n + 32n * BigInt(slot), all.flat()), wr(0x88, 8, BigInt((slot + all.length) * 32))];
}

/** Our answer lines with some replaced (QEMU's stand-in). */
function oursWith(text: string, replace: Record<number, string>): string[] {
  return replayTrace(parseTrace(text)).map((l) => {
    const i = JSON.parse(l).i as number;
    return i in replace ? `{"i":${i},${replace[i]}}` : l;
  });
}
/** Our result line for op `i`. */
const ourLine = (text: string, i: number): string => replayTrace(parseTrace(text)).find((l) => JSON.parse(l).i === i) ?? '';
const verdict = (text: string, qemu: string[]): Verdict => compareTrace(parseTrace(text), qemu, { qemuVersion: '10' });
const ids = (v: Verdict): string[] => v.events.filter((e) => !e.tainted).map((e) => `${e.index}:${e.id}`);

describe('scalable-mode conformance traces (generator)', () => {
  const seeds = Array.from({ length: 200 }, (_, i) => i + 1);
  const traces = seeds.map((seed) => ({ seed, g: traceForSeed(seed, { scalable: true }) }));
  const sm = traces.filter((x) => x.g.header.iommu.sm);

  test('for QEMU 10 about half the driver-like traces are in scalable mode, within what QEMU 10 runs; the others are the legacy traces of the same seed', () => {
    assert.ok(sm.length > 60 && sm.length < 140, `${sm.length} of 200 in scalable mode`);
    assert.ok(sm.some((x) => x.g.header.iommu.flts) && sm.some((x) => !x.g.header.iommu.flts) && sm.some((x) => x.g.header.iommu.pasid));
    for (const { seed, g } of traces) {
      const c = g.header.iommu;
      if (!c.sm) {
        assert.equal(renderTrace(g), renderTrace(traceForSeed(seed)), `seed ${seed}: a legacy trace changed`);
        continue;
      }
      assert.ok(!c.nest && (c.aw === 39 || c.aw === 48), `seed ${seed}`);
      if (c.flts) assert.equal(c.aw, 48, `seed ${seed}`);
      if (c.pasid) assert.ok(!c.dt, `seed ${seed}`);
      const trace = parseTrace(renderTrace(g));
      planMachine(trace, '10'); // what the harness refuses never appears
      for (const op of trace.ops) if (op.op === 'dma') assert.equal(op.pasid, undefined, `seed ${seed}: edu has no PASID capability`);
    }
    // Hostile traces and QEMU 7.2 runs stay legacy.
    for (let seed = 1; seed <= 40; seed++) assert.ok(!traceForSeed(seed, { hostile: true, scalable: true }).header.iommu.sm);
  });

  test('scalable-mode traces never observe an open window, and our caches never change an answer', () => {
    for (const { seed, g } of sm.slice(0, 80)) {
      const trace = parseTrace(renderTrace(g));
      const v = compareTrace(trace, replayWithoutCaches(trace));
      assert.equal(v.windowsObserved, 0, `seed ${seed}: a request through an open window`);
      assert.equal(v.status, 'agree', `seed ${seed}: ${JSON.stringify(v.difference?.fields ?? v.events)}`);
    }
  });

  test('they use the scalable-mode structures and descriptors, and reach the scalable-mode faults', () => {
    const seen = new Set<string>();
    for (const { g } of sm) {
      const text = renderTrace(g);
      const trace = parseTrace(text);
      for (const op of trace.ops) {
        if (op.op === 'wr' && op.reg === 0x20 && (op.val & RTADDR_TTM_SM)) seen.add('TTM=01');
        if (op.op === 'wr' && op.reg === 0x90 && (op.val & IQA_DW)) seen.add('IQA.DW');
      }
      for (const m of text.matchAll(/# Queue: ([^\n]*)/g)) {
        if (m[1].includes('PASID-cache')) seen.add('desc:7');
        if (m[1].includes('PASID-IOTLB')) seen.add('desc:6');
        if (/context (SID|global)/.test(m[1])) seen.add('desc:1');
      }
      for (const k of ['PGTT 001', 'PGTT 010', 'PGTT 100']) if (text.includes(k)) seen.add(k);
      if (text.includes('after the walk: Accessed')) seen.add('A/D read-back');
      for (const l of replayTrace(trace)) {
        const o = JSON.parse(l) as { op: string; ok?: boolean; fault?: string };
        if (o.op === 'dma') seen.add(`dma:${o.ok ? 'ok' : o.fault ?? 'blocked'}`);
      }
    }
    for (const k of ['TTM=01', 'IQA.DW', 'desc:1', 'desc:6', 'desc:7', 'PGTT 001', 'PGTT 010', 'PGTT 100', 'A/D read-back', 'dma:ok',
      'dma:0x39', 'dma:0x41', 'dma:0x51', 'dma:0x59', 'dma:0x5b', 'dma:0x71', 'dma:0x80', 'dma:0x83', 'dma:0x85', 'dma:0x86', 'dma:0x87']) {
      assert.ok(seen.has(k), `no ${k} in the scalable-mode traces (saw ${[...seen].sort().join(' ')})`);
    }
  });
});

describe('the window tracker in scalable mode', () => {
  test('a PASID entry changed without its PASID-cache invalidation is a window; after the invalidation it is not', () => {
    const text = smTrace([
      dma(0n, 'r'),
      peWrite(2, 0x120000n),
      dma(0n, 'r'), // through the open window: the PASID entry may be cached
      ...queue(0, [pcDesc({ g: PC_G_PASID, did: 1, pasid: 0 }), wide(iotlbDesc(G_DOMAIN, 1))]),
      dma(0n, 'r'),
    ]);
    const trace = parseTrace(text);
    const v = compareTrace(trace, replayWithoutCaches(trace));
    assert.equal(v.windowsObserved, 1);
    const lines = replayTrace(trace);
    assert.match(lines[lines.length - 1], /"gpa":"0x2000000"/);
  });
});

describe('QEMU 10 deviations in scalable mode (hand-made answer pairs)', () => {
  const write = SM_SETUP_OPS; // a write to the read-only page: our 85h
  const rdFrcd = SM_SETUP_OPS + 1;
  const text = smTrace([dma(0x1000n, 'w'), '{"op":"rd","reg":"0x228","size":8,"mask":"0xf00000ffffffffff"}']);

  test('sm-legacy-fault-reasons: 5h for our 85h is known; 6h for it stays NEW; a legacy trace is not concerned', () => {
    assert.match(ourLine(text, write), /"fault":"0x85"/);
    const known = verdict(text, oursWith(text, { [write]: '"op":"dma","ok":false,"fault":"0x05"', [rdFrcd]: '"op":"rd","val":"0x8000000500000018"' }));
    assert.equal(known.status, 'known', JSON.stringify(known.difference));
    assert.deepEqual(ids(known), [`${write}:sm-legacy-fault-reasons`]);
    assert.equal(verdict(text, oursWith(text, { [write]: '"op":"dma","ok":false,"fault":"0x06"' })).status, 'new');
    assert.ok(!deviationsFor('7.2').some((d) => d.id.startsWith('sm-')), 'scalable-mode deviations are QEMU 10 only');
  });

  test('sm-translation-fault-pp: PP = 1 in the record of our 85h is known; PP = 1 with another FR change stays NEW', () => {
    const val = BigInt(JSON.parse(ourLine(text, rdFrcd)).val as string);
    const pp = verdict(text, oursWith(text, { [rdFrcd]: `"op":"rd","val":"${hx(val | 0x80000000n)}"` }));
    assert.equal(pp.status, 'known', JSON.stringify(pp.difference));
    assert.deepEqual(ids(pp), [`${rdFrcd}:sm-translation-fault-pp`]);
    assert.equal(verdict(text, oursWith(text, { [rdFrcd]: `"op":"rd","val":"${hx(val | 0x80000001n)}"` })).status, 'new');
  });

  test('sm-pasid-entry-checked-on-context-load: QEMU translating through a cleared PASID entry after the PASID-cache invalidation is known; through a present one it stays NEW', () => {
    const cleared = smTrace([dma(0n, 'r'), peWrite(1, 0x110000n, false), ...queue(0, [pcDesc({ g: PC_G_PASID, did: 1, pasid: 0 })]), dma(0n, 'r')]);
    const at = SM_SETUP_OPS + 4;
    assert.match(ourLine(cleared, at), /"fault":"0x59"/);
    const v = verdict(cleared, oursWith(cleared, { [at]: '"op":"dma","ok":true,"gpa":"0x1000000"' }));
    assert.equal(v.status, 'known', JSON.stringify(v.difference));
    assert.deepEqual(v.diverged, { index: at, id: 'sm-pasid-entry-checked-on-context-load' });
    // The same answer where our unit translates elsewhere (DID 2's tables, entry present): NEW.
    const moved = smTrace([dma(0n, 'r'), peWrite(2, 0x120000n), ...queue(0, [pcDesc({ g: PC_G_PASID, did: 1, pasid: 0 }), wide(iotlbDesc(G_DOMAIN, 1))]), dma(0n, 'r')]);
    const m = verdict(moved, oursWith(moved, { [at]: '"op":"dma","ok":true,"gpa":"0x1000000"' }));
    assert.equal(m.status, 'new');
  });

  test('sm-pasid-entry-type-before-present: 5Bh for an all-zero PASID entry (our 59h) is known; 5Ah stays NEW', () => {
    const zero = smTrace([mem(0x103000n, new Array<bigint>(8).fill(0n)), ...queue(0, [pcDesc({ g: PC_G_PASID, did: 1, pasid: 0 })]), dma(0n, 'r')]);
    const at = SM_SETUP_OPS + 3;
    assert.match(ourLine(zero, at), /"fault":"0x59"/);
    const v = verdict(zero, oursWith(zero, { [at]: '"op":"dma","ok":false,"fault":"0x5b"' }));
    assert.deepEqual(ids(v), [`${at}:sm-pasid-entry-type-before-present`]);
    assert.equal(verdict(zero, oursWith(zero, { [at]: '"op":"dma","ok":false,"fault":"0x5a"' })).status, 'new');
  });
});

describe("QEMU 10's recorded answers to scalable-mode traces (qemu10/sm/)", () => {
  const names = readdirSync(SM_FIXTURES).filter((n) => n.endsWith('.jsonl') && !n.endsWith('.qemu.jsonl')).map((n) => n.slice(0, -'.jsonl'.length)).sort();
  const load = (name: string) => ({
    text: readFileSync(join(SM_FIXTURES, `${name}.jsonl`), 'utf8'),
    qemu: readFileSync(join(SM_FIXTURES, `${name}.qemu.jsonl`), 'utf8').split('\n').filter((l) => l.trim() !== ''),
  });

  test('each is explained by the QEMU 10 list with the deviations its comment names (NEW for the QEMU 7.2 list where one is a scalable-mode one)', () => {
    assert.ok(names.length >= 8, names.join(' '));
    for (const name of names) {
      const { text, qemu } = load(name);
      assert.ok(parseTrace(text).header.config.sm, name);
      const want = (/^# deviations: (.*)$/m.exec(text)?.[1] ?? '').split(/\s+/).filter((s) => s !== '');
      const v = compareTrace(parseTrace(text), qemu, { qemuVersion: '10' });
      assert.notEqual(v.status, 'new', `${name}: ${JSON.stringify(v.difference)}`);
      assert.deepEqual([...new Set(v.events.map((e) => e.id))].sort(), [...want].sort(), name);
      // The scalable-mode deviations are QEMU 10's only.
      if (want.some((id) => id.startsWith('sm-'))) assert.equal(compareTrace(parseTrace(text), qemu, { qemuVersion: '7.2' }).status, 'new', name);
    }
  });

  test('look-alikes of the recorded differences stay NEW', () => {
    // name, op, QEMU's answer replaced by one no deviation explains.
    const cases: Array<[string, number, string]> = [
      ['sm-legacy-reasons', 17, '"op":"dma","ok":false,"fault":"0x02"'], // 39h is not 2h
      ['sm-pasid-entry-zero', 47, '"op":"dma","ok":false,"fault":"0x5a"'],
      ['sm-fs-rights-walk', 64, '"op":"dma","ok":false,"fault":"0x86"'], // a write is not refused for reading
      ['sm-fpd-invalid-pasid-entry', 84, '"op":"dma","ok":false,"fault":"0x5a"'],
      ['sm-pass-through-kept', 45, '"op":"dma","ok":true,"gpa":"0xc0003ec0"'], // not the request's own address
      ['sm-pasid-entry-reserved', 8, '"op":"dma","ok":true,"gpa":"0x80200031"'], // a translation, not a fault of the walk
      ['sm-fault-pp-pv', 47, '"op":"rd","val":"0x8000050680000018"'], // PP and PV as QEMU records them, but T cleared too
    ];
    for (const [name, i, answer] of cases) {
      const { text, qemu } = load(name);
      const at = qemu.findIndex((l) => JSON.parse(l).i === i);
      assert.ok(at >= 0, `${name} op ${i}`);
      const v = compareTrace(parseTrace(text), qemu.map((l, k) => (k === at ? `{"i":${i},${answer}}` : l)), { qemuVersion: '10' });
      assert.equal(v.status, 'new', `${name}: ${JSON.stringify(v.events)}`);
      assert.equal(v.difference?.index, i, name);
    }
  });

  test('sm-dirty-not-set-on-iotlb-hit: QEMU\'s leaf without D is known; one without A (or with another bit changed) stays NEW', () => {
    const { text, qemu } = load('sm-fs-dirty');
    const at = qemu.findIndex((l) => l.includes('"op":"mrd"') && l.includes('27e0a108'));
    assert.ok(at >= 0);
    const v = compareTrace(parseTrace(text), qemu, { qemuVersion: '10' });
    assert.ok(v.events.some((e) => e.id === 'sm-dirty-not-set-on-iotlb-hit' && e.index === JSON.parse(qemu[at]).i));
    for (const hex of ['47e0a10800000000', '67e0a10800000001']) {
      const other = qemu.map((l, k) => (k === at ? l.replace('27e0a10800000000', hex) : l));
      const w = compareTrace(parseTrace(text), other, { qemuVersion: '10' });
      assert.equal(w.status, 'new', hex);
      assert.equal(w.difference?.index, JSON.parse(qemu[at]).i);
    }
  });
});
