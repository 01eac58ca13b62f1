// The trace generator: deterministic per seed, always a valid trace, inside
// what QEMU 7.2 and the harness can run and what the format defines, and in
// driver-like mode never observing an open window. No QEMU needed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseTrace, replayTrace, type Trace } from '../../src/index.js';
import { planMachine } from '../../src/qemu/harness.js';
import { compareTrace, replayWithoutCaches } from '../../src/conform/compare.js';
import { renderTrace, traceArbitrary, traceForSeed } from '../../src/conform/gen/index.js';

/** What the harness refuses, what the format leaves undefined, what aborts QEMU 7.2: never in a generated trace. */
function assertRunnable(trace: Trace, what: string): void {
  const c = trace.header.config;
  assert.ok(c.aw === 39 || c.aw === 48, what);
  assert.equal(c.nfr, 1, what);
  assert.ok(c.ram < 0xb0000000n, what);
  assert.ok(!c.sm, what);
  planMachine(trace); // throws UNSUPPORTED for device placements QEMU cannot have
  for (const op of trace.ops) {
    const at = `${what} op ${op.index}`;
    switch (op.op) {
      case 'dma':
        assert.ok((op.iova & 0xfffn) + BigInt(op.len) <= 0x1000n, `${at}: DMA crosses 4 KiB`);
        break;
      case 'msi':
        assert.ok(op.addr >= 0xfee00000n && op.addr <= 0xfeeffffcn && (op.addr & 3n) === 0n, `${at}: MSI address`);
        assert.ok(op.data <= 0xffffn, `${at}: MSI data`);
        break;
      case 'mem':
      case 'mrd': {
        const end = op.gpa + BigInt(op.op === 'mem' ? op.data.length : op.len);
        assert.ok(end <= c.ram && !(end > 0xa0000n && op.gpa < 0x100000n), `${at}: memory outside plain RAM`);
        if (op.op === 'mem') {
          // No wait descriptor with both SW and IF where a queue may fetch it (QEMU 7.2 aborts).
          for (let i = 0; i + 8 <= op.data.length; i += 8) {
            const q = new DataView(op.data.buffer, op.data.byteOffset + i, 8).getBigUint64(0, true);
            const a = op.gpa + BigInt(i);
            // The low quadword of a descriptor slot of the queue (0x180000).
            if (a >= 0x180000n && a < 0x190000n && (a & 0xfn) === 0n && (q & 0xfn) === 5n) assert.notEqual(q & 0x30n, 0x30n, `${at}: wait SW|IF`);
          }
        }
        break;
      }
      case 'wr':
        assert.ok(!(op.size === 8 && [0x38, 0xa0, 0xa8].includes(op.reg)), `${at}: 8-byte write QEMU 7.2 aborts on`);
        break;
      default:
        break;
    }
  }
}

describe('generated traces', () => {
  test('the same seed gives the same trace; different seeds differ', () => {
    for (const hostile of [false, true]) {
      const a = renderTrace(traceForSeed(42, { hostile }));
      assert.equal(renderTrace(traceForSeed(42, { hostile })), a);
      assert.notEqual(renderTrace(traceForSeed(43, { hostile })), a);
    }
  });

  test('driver-like: 300 seeds, all valid and runnable, none observes an open window', () => {
    let ops = 0;
    const kinds = new Set<string>();
    for (let seed = 1; seed <= 300; seed++) {
      const g = traceForSeed(seed);
      assert.equal(g.hostile, false);
      const trace = parseTrace(renderTrace(g));
      assertRunnable(trace, `seed ${seed}`);
      ops += trace.ops.length;
      for (const op of trace.ops) kinds.add(op.op);
      // Our caches never change an answer (same lines as a unit without caches), and the window tracker saw nothing.
      const v = compareTrace(trace, replayWithoutCaches(trace));
      assert.equal(v.windowsObserved, 0, `seed ${seed}: a request through an open window`);
      assert.equal(v.status, 'agree', `seed ${seed}: ${JSON.stringify(v.difference?.fields ?? v.events)}`);
    }
    assert.deepEqual([...kinds].sort(), ['dma', 'mem', 'mrd', 'msi', 'rd', 'wr']);
    assert.ok(ops / 300 > 40, `traces are ${ops / 300} ops on average`);
  });

  test('driver-like traces exercise translation, faults, queued invalidation and interrupt remapping', () => {
    const seen = new Set<string>();
    for (let seed = 1; seed <= 150; seed++) {
      for (const l of replayTrace(parseTrace(renderTrace(traceForSeed(seed))))) {
        const o = JSON.parse(l) as { op: string; ok?: boolean; fault?: string };
        if (o.op === 'dma' || o.op === 'msi') seen.add(`${o.op}:${o.ok ? 'ok' : o.fault ?? 'blocked'}`);
      }
    }
    for (const k of ['dma:ok', 'dma:0x02', 'dma:0x03', 'dma:0x04', 'dma:0x05', 'dma:0x06', 'dma:0x0e', 'msi:ok', 'msi:0x21', 'msi:0x22', 'msi:0x25', 'msi:0x26']) {
      assert.ok(seen.has(k), `no ${k} in 150 traces (saw ${[...seen].sort().join(' ')})`);
    }
  });

  test('hostile: 150 seeds, all valid and runnable; labelled in their comments', () => {
    let windows = 0;
    for (let seed = 1; seed <= 150; seed++) {
      const g = traceForSeed(seed, { hostile: true });
      assert.equal(g.hostile, true);
      const text = renderTrace(g);
      const trace = parseTrace(text);
      assertRunnable(trace, `hostile seed ${seed}`);
      if (compareTrace(trace, replayWithoutCaches(trace)).windowsObserved) windows++;
    }
    assert.ok(windows > 5, `hostile traces opened only ${windows} windows`);
    assert.match(renderTrace(traceForSeed(7, { hostile: true })), /# HOSTILE: /);
  });

  test('fast-check property: every drawn trace is valid, runnable and replays', () => {
    fc.assert(
      fc.property(traceArbitrary({ maxActions: 30 }), (g) => {
        const trace = parseTrace(renderTrace(g));
        assertRunnable(trace, 'drawn trace');
        replayTrace(trace);
      }),
      { numRuns: 60, seed: 1 },
    );
  });
});
