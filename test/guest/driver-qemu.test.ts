/**
 * Lowered workloads run on QEMU 7.2's intel-iommu (through src/qemu/harness.ts)
 * and on this project's replayer must give the same result lines. QEMU is
 * required: without it this test fails (as test/qemu/qemu.test.ts does).
 *
 *   npx tsx --test test/guest/driver-qemu.test.ts
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { qemuAvailable, runTraceOnQemuWithStats } from '../../src/qemu/harness.js';
import { replayTrace } from '../../src/replay/replayer.js';
import { parseTrace } from '../../src/trace/parse.js';
import { lowerTrace, poolLayout, type DriverOptions } from '../../src/guest/driver.js';

const NUMERIC = new Set(['gpa', 'fault', 'val', 'addr', 'data']);

/** A result line with numbers in canonical form (the format compares them numerically). */
function normalize(line: string): Record<string, unknown> {
  const r = JSON.parse(line) as Record<string, unknown>;
  for (const [k, v] of Object.entries(r)) {
    if (NUMERIC.has(k) && typeof v === 'string') r[k] = '0x' + BigInt(v).toString(16);
    if (k === 'hex' && typeof v === 'string') r[k] = v.toLowerCase();
  }
  return r;
}

const RAM = 0x4000000n;
const STATUS = poolLayout(RAM).status;

/**
 * Caching mode (strict forced), queued invalidation, a 2 MiB superpage:
 * attaches, maps, a re-attach, unmaps (one of them part of the superpage),
 * DMAs that succeed and DMAs that fault (rights, not present, no context).
 * No DMA looks into an open window, and no access with rights a cached
 * translation lacks (QEMU 7.2 does not check rights on IOTLB hits).
 */
const CM_WORKLOAD = [
  `{"vtd-trace":1,"iommu":{"aw":48,"cm":true,"ram":"0x${RAM.toString(16)}"},"devices":["00:03.0","00:04.0","01:00.0"]}`,
  '{"op":"attach","sid":"00:03.0","domain":3}',
  '{"op":"attach","sid":"01:00.0","domain":7}',
  '{"op":"dma","sid":"01:00.0","iova":"0x1000","len":4,"dir":"r"}',
  '{"op":"map","domain":3,"iova":"0x100000","gpa":"0x200000","len":12288,"perm":"rw"}',
  '{"op":"map","domain":3,"iova":"0x40000000","gpa":"0x1000000","len":2101248,"perm":"r"}',
  '{"op":"map","domain":7,"iova":"0xffffe000","gpa":"0x300000","len":8192,"perm":"w"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x40000010","len":4,"dir":"w"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x40000010","len":4,"dir":"r"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x401ff000","len":4096,"dir":"r"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x40200800","len":64,"dir":"r"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x100ff0","len":16,"dir":"w"}',
  '{"op":"dma","sid":"01:00.0","iova":"0xfffff000","len":8,"dir":"r"}',
  '{"op":"dma","sid":"01:00.0","iova":"0xfffff000","len":8,"dir":"w"}',
  '{"op":"dma","sid":"00:04.0","iova":"0x100000","len":4,"dir":"r"}',
  '{"op":"unmap","domain":3,"iova":"0x40100000","len":4096}',
  '{"op":"dma","sid":"00:03.0","iova":"0x40000010","len":4,"dir":"r"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x40200800","len":4,"dir":"r"}',
  '{"op":"unmap","domain":3,"iova":"0x101000","len":4096}',
  '{"op":"dma","sid":"00:03.0","iova":"0x101000","len":4,"dir":"w"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x102000","len":4,"dir":"w"}',
  '{"op":"attach","sid":"00:03.0","domain":7}',
  '{"op":"dma","sid":"00:03.0","iova":"0xfffff000","len":4,"dir":"w"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x100000","len":4,"dir":"r"}',
  '{"op":"attach","sid":"00:04.0","domain":3}',
  '{"op":"dma","sid":"00:04.0","iova":"0x100000","len":4,"dir":"r"}',
  `{"op":"mrd","gpa":"0x${STATUS.toString(16)}","len":64}`,
].join('\n') + '\n';

const CM_EXPECTED = [
  { op: 'dma', ok: false, fault: '0x6' },
  { op: 'dma', ok: false, fault: '0x5' },
  { op: 'dma', ok: true, gpa: '0x1000010' },
  { op: 'dma', ok: true, gpa: '0x11ff000' },
  { op: 'dma', ok: true, gpa: '0x1200800' },
  { op: 'dma', ok: true, gpa: '0x200ff0' },
  { op: 'dma', ok: false, fault: '0x6' },
  { op: 'dma', ok: true, gpa: '0x301000' },
  { op: 'dma', ok: false, fault: '0x2' },
  { op: 'dma', ok: false, fault: '0x6' },
  { op: 'dma', ok: true, gpa: '0x1200800' },
  { op: 'dma', ok: false, fault: '0x5' },
  { op: 'dma', ok: true, gpa: '0x202000' },
  { op: 'dma', ok: true, gpa: '0x301000' },
  { op: 'dma', ok: false, fault: '0x6' },
  { op: 'dma', ok: true, gpa: '0x200000' },
  // Each wait descriptor wrote QI_DONE (2) to the status word after its own slot: slots 1, 3, 5, ...
  { op: 'mrd', hex: '0000000002000000'.repeat(8) },
];

/**
 * No caching mode, lazy invalidation with a flush queue of 2, register-based
 * invalidation, 4 KiB pages only: DMAs only where no flush is pending.
 */
const LAZY_WORKLOAD = [
  `{"vtd-trace":1,"iommu":{"aw":39,"cm":false,"ram":"0x${RAM.toString(16)}"},"devices":["00:03.0"]}`,
  '{"op":"attach","sid":"00:03.0","domain":3}',
  '{"op":"map","domain":3,"iova":"0x100000","gpa":"0x200000","len":16384,"perm":"rw"}',
  '{"op":"map","domain":3,"iova":"0x400000","gpa":"0x800000","len":2097152,"perm":"rw"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x100000","len":4,"dir":"r"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x103000","len":4,"dir":"w"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x5ff000","len":4,"dir":"w"}',
  '{"op":"unmap","domain":3,"iova":"0x100000","len":4096}',
  '{"op":"unmap","domain":3,"iova":"0x101000","len":4096}',
  '{"op":"dma","sid":"00:03.0","iova":"0x100000","len":4,"dir":"r"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x101000","len":4,"dir":"r"}',
  '{"op":"map","domain":3,"iova":"0x100000","gpa":"0x500000","len":4096,"perm":"rw"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x100000","len":4,"dir":"w"}',
  '{"op":"unmap","domain":3,"iova":"0x102000","len":8192}',
  '{"op":"map","domain":3,"iova":"0x102000","gpa":"0x600000","len":4096,"perm":"rw"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x102000","len":4,"dir":"r"}',
  '{"op":"unmap","domain":3,"iova":"0x400000","len":2097152}',
  '{"op":"unmap","domain":3,"iova":"0x100000","len":4096}',
  '{"op":"dma","sid":"00:03.0","iova":"0x5ff000","len":4,"dir":"w"}',
  '{"op":"map","domain":3,"iova":"0x401000","gpa":"0x900000","len":4096,"perm":"r"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x401000","len":4,"dir":"r"}',
  '{"op":"dma","sid":"00:03.0","iova":"0x400000","len":4,"dir":"r"}',
].join('\n') + '\n';

const LAZY_EXPECTED = [
  { op: 'dma', ok: true, gpa: '0x200000' },
  { op: 'dma', ok: true, gpa: '0x203000' },
  { op: 'dma', ok: true, gpa: '0x9ff000' },
  { op: 'dma', ok: false, fault: '0x6' },
  { op: 'dma', ok: false, fault: '0x6' },
  { op: 'dma', ok: true, gpa: '0x500000' },
  { op: 'dma', ok: true, gpa: '0x600000' },
  { op: 'dma', ok: false, fault: '0x5' },
  { op: 'dma', ok: true, gpa: '0x900000' },
  { op: 'dma', ok: false, fault: '0x6' },
];

describe('lowered workloads give the same results on QEMU 7.2 and here', () => {
  const cases: { name: string; text: string; opts: DriverOptions; expected: Record<string, unknown>[] }[] = [
    { name: 'caching mode, queued invalidation, superpages', text: CM_WORKLOAD, opts: {}, expected: CM_EXPECTED },
    { name: 'lazy (flush queue 2), register invalidation, 4 KiB pages', text: LAZY_WORKLOAD, opts: { policy: 'lazy', flushQueue: 2, invalidation: 'register', superpages: false }, expected: LAZY_EXPECTED },
  ];
  for (const c of cases) {
    test(c.name, async (t) => {
      const avail = qemuAvailable();
      assert.ok(avail.ok, `QEMU is required and is not usable: ${avail.ok ? '' : avail.reason}`);
      const lowered = lowerTrace(parseTrace(c.text), c.opts);
      const ours = replayTrace(parseTrace(lowered)).map(normalize);
      assert.deepEqual(ours.map(({ i: _i, ...r }) => r), c.expected, 'our replay of the lowered trace');
      const { results, stats } = await runTraceOnQemuWithStats(lowered, { timeoutMs: 30_000 });
      t.diagnostic(`QEMU ${avail.version}: ${stats.ops} ops in ${stats.totalMs.toFixed(0)} ms (start-up ${stats.startupMs.toFixed(0)} ms)`);
      assert.deepEqual(results.map(normalize), ours, 'QEMU and this replay differ');
    });
  }
});
