/**
 * `vtd import` (src/sources/ftrace/, src/cli/import.ts): parsing both layouts,
 * line-numbered errors, domain attribution with and without invalidations,
 * the consistency of every output, the two real captures in
 * test/fixtures/realtraces, and replays of the imported traces through the
 * guest-driver model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { VtdError } from '../../src/errors.js';
import { parseTrace } from '../../src/trace/parse.js';
import { replayTrace } from '../../src/replay/replayer.js';
import {
  FtraceImporter, QemuDmaPlacer, formatImport, importFtrace, newParseCounts, parseFtrace, parseFtraceLine, textLines,
  type Attribution, type FtraceEvent, type ImportResult,
} from '../../src/sources/ftrace/index.js';
import { run as importCli } from '../../src/cli/import.js';
import { ROOT } from '../helpers.js';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'ftrace');
// The real captures and their stats (README.md there).
const REAL = join(ROOT, 'test', 'fixtures', 'realtraces');
const haveReal = existsSync(join(REAL, 'linux-e1000-ftrace.txt.xz'));
assert.ok(haveReal, `the real traces are missing from ${REAL}`);

const fixture = (name: string): string => readFileSync(join(FIXTURES, name), 'utf8');
const xz = (name: string): string => execFileSync('xz', ['-dc', join(REAL, name)], { maxBuffer: 1 << 28 }).toString();
const one = (line: string): FtraceEvent => {
  const ev = parseFtraceLine(line, 7);
  assert.ok(ev, `no event from ${line}`);
  return ev;
};
const rid = (bus: number, dev: number, fn: number): number => (bus << 8) | (dev << 3) | fn;

/** The line number of a TRACE error, asserting its code and message. */
function traceError(f: () => unknown, line: number, message: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof VtdError, String(e));
    assert.equal(e.code, 'TRACE');
    assert.equal(e.line, line);
    assert.match(e.message, message);
    return true;
  });
}

/**
 * The consistency invariant, checked on the formatted output (parsed by
 * src/trace/parse.ts): no map overlaps a live mapping of its domain, every unmap
 * covers pages mapped in its domain, and every dma translates (in this
 * simple model) to the gpa QEMU logged.
 */
function assertConsistent(r: ImportResult): { live: Map<number, Map<number, number>>; ops: number } {
  const trace = parseTrace([...formatImport(r)].join('\n'));
  const live = new Map<number, Map<number, number>>();
  const domainOf = new Map<number, number>();
  const expected = r.ops.filter((o) => o.op === 'dma').map((o) => (o as { gpa: bigint }).gpa);
  let dma = 0;
  for (const op of trace.ops) {
    if (op.op === 'attach') domainOf.set(op.sid, op.domain);
    else if (op.op === 'map') {
      const m = live.get(op.domain) ?? live.set(op.domain, new Map()).get(op.domain)!;
      const first = Number(op.iova / 4096n), gpa = Number(op.gpa / 4096n);
      for (let i = 0; i < op.len / 4096; i++) {
        assert.ok(!m.has(first + i), `line ${op.line}: map over the live page 0x${(first + i).toString(16)} of domain ${op.domain}`);
        m.set(first + i, gpa + i);
      }
    } else if (op.op === 'unmap') {
      const m = live.get(op.domain);
      const first = Number(op.iova / 4096n);
      for (let i = 0; i < op.len / 4096; i++) {
        assert.ok(m?.delete(first + i), `line ${op.line}: unmap of page 0x${(first + i).toString(16)}, not mapped in domain ${op.domain}`);
      }
    } else if (op.op === 'dma') {
      const d = domainOf.get(op.sid);
      assert.ok(d !== undefined, `line ${op.line}: dma from a device never attached`);
      const gpa = live.get(d)?.get(Number(op.iova / 4096n));
      assert.equal(gpa === undefined ? undefined : BigInt(gpa) * 4096n, expected[dma++] & ~0xfffn, `line ${op.line}: dma translation`);
    }
  }
  return { live, ops: trace.ops.length };
}

function domainOfLine(audit: Attribution[] | undefined, line: number): number | undefined {
  return audit?.find((a) => a.line === line)?.domain;
}

// ---------------------------------------------------------------------------
// Parsing

test('textLines splits on LF and CRLF, with or without a final newline', () => {
  assert.deepEqual([...textLines('a\r\nb\nc')], ['a', 'b', 'c']);
  assert.deepEqual([...textLines('a\n')], ['a']);
  assert.deepEqual([...textLines('')], []);
});

test('each event of the ftrace layout parses with its fields', () => {
  const map = one('  insmod-108   [000] .N...     2.376210: map: IOMMU: iova=0x00000000ffffe000 - 0x00000000fffff000 paddr=0x0000000028356000 size=4096');
  assert.deepEqual(map, { line: 7, task: 'insmod', pid: 108, cpu: 0, flags: '.N...', seconds: 2.37621, event: 'map', iova: 0xffffe000n, paddr: 0x28356000n, size: 4096n });
  const unmap = one('<idle>-0     [000] d.h2.     2.379916: unmap: IOMMU: iova=0x00000000ffff8000 - 0x00000000ffff9000 size=4096 unmapped_size=4096');
  assert.equal(unmap.event, 'unmap');
  assert.equal(unmap.task, '<idle>');
  assert.equal(unmap.flags, 'd.h2.');
  assert.deepEqual(unmap.event === 'unmap' && [unmap.iova, unmap.size, unmap.unmappedSize], [0xffff8000n, 4096n, 4096n]);
  const attach = one('init-1       [000] .....     1.189736: attach_device_to_domain: IOMMU: device=0000:00:1f.3');
  assert.deepEqual(attach.event === 'attach' && attach.device, { segment: 0, sid: rid(0, 0x1f, 3) });
  const group = one('init-1       [000] .....     1.187014: add_device_to_group: IOMMU: groupID=4 device=0000:01:00.0');
  assert.deepEqual(group.event === 'group' && [group.group, group.device], [4, { segment: 0, sid: rid(1, 0, 0) }]);
  const qi = one('insmod-108   [000] dN.1.     2.376303: qi_submit: iotlb_inv dmar0: 0x700f2 0xffffe001 0x0 0x0');
  assert.deepEqual(qi.event === 'qi' && [qi.type, qi.unit, qi.qw], ['iotlb_inv', 'dmar0', [0x700f2n, 0xffffe001n, 0n, 0n]]);
  for (const [name, qw0] of [['cc_inv', '0x31'], ['iec_inv', '0x100000014'], ['dev_tlb_inv', '0x3'], ['inv_wait', '0x25'], ['p_iotlb_inv', '0x36'], ['pc_inv', '0x7'], ['0xa', '0xa']]) {
    const e = one(`init-1 [001] d..2. 1.0: qi_submit: ${name} dmar0: ${qw0} 0x0 0x0 0x0`);
    assert.equal(e.event === 'qi' && e.type, name);
  }
  const mark = one('init-1       [001] .....     1.918389: tracing_mark_write: RT_PHASE 1 modules-load');
  assert.equal(mark.event === 'mark' && mark.text, 'RT_PHASE 1 modules-load');
  const detach = one('vfio-9 [001] ..... 5.0: detach_device_from_domain: IOMMU: device=0000:00:03.0');
  assert.equal(detach.event, 'detach');
  const fault = one('<idle>-0 [000] d.h1. 5.0: io_page_fault: IOMMU:e1000 0000:00:03.0 iova=0x00000000fffff000 flags=0x0002');
  assert.deepEqual(fault.event === 'fault' && [fault.driver, fault.device, fault.iova, fault.faultFlags], ['e1000', '0000:00:03.0', 0xfffff000n, 2]);
});

test('the trace-cmd report layout parses: no flags column, padded event names, tgid column, system prefix', () => {
  const a = one('          <idle>-0     [000]     0.008000: qi_submit:            iec_inv dmar0: 0x4 0x0 0x0 0x0');
  assert.equal(a.flags, undefined);
  assert.equal(a.event === 'qi' && a.type, 'iec_inv');
  const b = one('  kworker/u4:1-45    [001]   563.231476: map:                  IOMMU: iova=0x00000000fffff000 - 0x0000000100000000 paddr=0x0000000001000000 size=4096');
  assert.deepEqual([b.task, b.pid, b.cpu, b.event], ['kworker/u4:1', 45, 1, 'map']);
  const c = one('     irq/24-virtio0-123   (    123) [001] d.h1.  5.5: unmap: IOMMU: iova=0x1000 - 0x2000 size=4096 unmapped_size=4096');
  assert.deepEqual([c.task, c.pid, c.flags], ['irq/24-virtio0', 123, 'd.h1.']);
  const d = one('dd-1 [000] .... 1.5: iommu:map: IOMMU: iova=0x1000 paddr=0x2000 size=4096');
  assert.deepEqual(d.event === 'map' && [d.flags, d.iova, d.paddr], ['....', 0x1000n, 0x2000n]); // 4-column flags, pre-6.x payload
  const e = one('dd-1 [000] 1.5: unmap: IOMMU: iova=0x1000 size=8192 unmapped_size=4096');
  assert.deepEqual(e.event === 'unmap' && [e.size, e.unmappedSize], [8192n, 4096n]);
});

test('comments, blank lines, other events and non-event lines are skipped and counted', () => {
  const counts = newParseCounts();
  const events = [...parseFtrace(textLines(fixture('trace-cmd.txt')), counts)];
  assert.equal(counts.lines, 19);
  assert.equal(counts.other, 2); // cpus=2, CPU 1 is empty
  assert.deepEqual(counts.firstOther, { line: 1, text: 'cpus=2' });
  assert.deepEqual(counts.unknown, { sched_switch: 1 });
  assert.equal(events.length, 16);
  const c2 = newParseCounts();
  assert.equal([...parseFtrace(['# tracer: nop', '', '#  TASK-PID', 'some text'], c2)].length, 0);
  assert.deepEqual([c2.comments, c2.other], [3, 1]);
});

test('a malformed line of a known event is an error naming its line and what is wrong', () => {
  const lines = (bad: string): string[] => ['# tracer: nop', 'init-1 [000] ..... 1.0: tracing_mark_write: x', bad];
  const parse = (bad: string) => () => [...parseFtrace(lines(bad))];
  traceError(parse('a-1 [000] ..... 1.0: map: IOMMU: iova=0x1000 - 0x2000 paddr=oops size=4096'), 3, /map: expected "IOMMU: iova=0x\.\.\. - 0x\.\.\. paddr=0x\.\.\. size=N"/);
  traceError(parse('a-1 [000] ..... 1.0: map: IOMMU: iova=0x1000 - 0x3000 paddr=0x0 size=4096'), 3, /map: the end 0x3000 is not iova \+ size/);
  traceError(parse('a-1 [000] ..... 1.0: unmap: IOMMU: iova=0x1000 - 0x2000 size=4096'), 3, /unmap: expected/);
  traceError(parse('a-1 [000] ..... 1.0: qi_submit: iotlb_inv dmar0: 0x31 0x0 0x0 0x0'), 3, /type name iotlb_inv does not match QW0 bits 3:0 = 0x1 \(cc_inv\)/);
  traceError(parse('a-1 [000] ..... 1.0: qi_submit: iotlb_inv dmar0: 0x32 0x0'), 3, /qi_submit: expected/);
  traceError(parse('a-1 [000] ..... 1.0: attach_device_to_domain: IOMMU: dev=0000:00:03.0'), 3, /attach_device_to_domain: expected/);
  traceError(parse('a-1 [000] ..... 1.0: add_device_to_group: IOMMU: groupID=x device=0000:00:03.0'), 3, /add_device_to_group: expected/);
  traceError(parse('a-1 [000] ..... 1.0: attach_device_to_domain: IOMMU: device=0000:00:23.0'), 3, /device number 0x23/);
  traceError(parse('garbage before map: IOMMU: iova=0x1000'), 3, /an event line must read/);
});

// ---------------------------------------------------------------------------
// Attribution

test('CM on: flushes name the attach domains, page-selective invalidations name map and unmap domains', () => {
  const r = importFtrace(fixture('e1000-head.txt'), { audit: true, source: 'e1000-head.txt' });
  const attaches = r.ops.filter((o) => o.op === 'attach').map((o) => o.op === 'attach' && `${o.sid.toString(16)}=${o.domain}`);
  assert.deepEqual(attaches, ['0=2', '18=3', '20=4', '30=5', 'f8=6', 'fa=6', 'fb=6', '100=7']);
  assert.deepEqual(r.stats.attribution.attach, { flush: 8 });
  assert.deepEqual(r.stats.attachInference, { checked: 8, agreed: 8 }); // the inference rule gives the same ids
  // The ISA bridge group's 16 MiB identity map precedes its first attach: moved after it, into domain 6.
  const iso = r.ops.findIndex((o) => o.op === 'map' && o.iova === 0n);
  assert.deepEqual(r.ops[iso - 1], { op: 'attach', sid: 0xf8, domain: 6, line: 43 });
  assert.equal(domainOfLine(r.audit, 40), 6);
  // One page-selective invalidation (AM 1) covers the two maps before it.
  assert.deepEqual(r.audit?.filter((a) => a.line === 82 || a.line === 83).map((a) => [a.domain, a.rule]), [[7, 'invalidation'], [7, 'invalidation']]);
  // The excerpt ends before the last map's invalidation: the heuristic takes over (same task, same domain).
  assert.deepEqual(r.audit?.at(-1), { line: 130, event: 'map', rule: 'heuristic', domain: 7 });
  assert.deepEqual(r.stats.attribution, { map: { direct: 1, invalidation: 15, heuristic: 1 }, unmap: { invalidation: 8 }, attach: { flush: 8 } });
  assert.equal(r.header.cm, true);
  assert.deepEqual(r.header.devices, [0, 0x18, 0x20, 0x30, 0xf8, 0xfa, 0xfb, 0x100]);
  assert.equal(r.header.ram, 0x40000000n); // gpas up to 0x104cb000: 2 x that, rounded up to a power of two
  assert.deepEqual(r.stats.warnings, {});
  assertConsistent(r);
  const text = [...formatImport(r)];
  assert.match(text[0], /^# vtd import of e1000-head\.txt: 130 lines, .* maps 1 direct, 15 invalidation, 1 heuristic;/);
  assert.equal(text[1], '{"vtd-trace":1,"iommu":{"aw":48,"cm":true,"ram":"0x40000000"},"devices":["00:00.0","00:03.0","00:04.0","00:06.0","00:1f.0","00:1f.2","00:1f.3","01:00.0"]}');
  assert.ok(text.includes('# line 67 (2.358899 s): RT_PHASE 1 modules-load'));
  assert.ok(text.includes('{"op":"map","domain":7,"iova":"0xffffe000","gpa":"0x104ca000","len":4096,"perm":"rw"}'));
});

test('without invalidations: the same attach ids and the same grouping; nothing anchors the maps\' domain id', () => {
  const r = importFtrace(fixture('e1000-head.txt'), { audit: true, ignoreInvalidations: true });
  const truth = importFtrace(fixture('e1000-head.txt'), { audit: true });
  assert.deepEqual(r.stats.attribution.attach, { inferred: 8 });
  assert.deepEqual(r.ops.filter((o) => o.op === 'attach'), truth.ops.filter((o) => o.op === 'attach'));
  // Every map and unmap of the virtio-blk (domain 7) lands in one domain; with no invalidation
  // or flush naming it, the first map takes the lowest id (2).
  const got = new Set(r.audit!.filter((a) => a.event !== 'attach' && a.rule !== 'direct').map((a) => a.domain));
  assert.deepEqual([...got], [2]);
  assert.equal(domainOfLine(r.audit, 40), 6);
  assert.equal(r.header.cm, false); // nothing shows caching mode now
  assertConsistent(r);
});

test('CM off, lazy: inferred attach ids, flush-queue flushes label the domains, the heuristic keeps devices apart', () => {
  const r = importFtrace(fixture('lazy-head.txt'), { audit: true });
  assert.deepEqual(r.stats.attribution.attach, { inferred: 8 });
  assert.equal(r.header.cm, false);
  // insmod/cat (virtio-blk at 01:00.0) map into 7; ip (the e1000 at 00:03.0) into 3.
  for (const line of [66, 67, 73, 89, 98]) assert.equal(domainOfLine(r.audit, line), 7, `line ${line}`);
  for (const line of [108, 110, 131, 361]) assert.equal(domainOfLine(r.audit, line), 3, `line ${line}`);
  const lazy = r.stats.domains.filter((d) => d.lazy).map((d) => d.did);
  assert.deepEqual(lazy, [3, 7]);
  assert.deepEqual(r.stats.warnings, {});
  assertConsistent(r);
});

test('trace-cmd layout: page-selective invalidations separate two domains mapping the same IOVA', () => {
  const r = importFtrace(fixture('trace-cmd.txt'), { audit: true });
  assert.deepEqual(r.audit!.map((a) => `${a.event}@${a.line}=${a.domain}/${a.rule}`), [
    'attach@7=2/flush', 'attach@10=3/flush', 'map@11=2/invalidation', 'map@13=3/invalidation', 'unmap@16=3/invalidation', 'unmap@18=2/invalidation',
  ]);
  assert.deepEqual(r.stats.unknownEvents, { sched_switch: 1 });
  assert.equal(r.stats.otherLines, 2);
  assertConsistent(r);
});

/** Events for hand-made scenarios: `cpu task-pid flags event payload`. */
function scenario(lines: string[], opts = {}): ImportResult {
  const text = lines.map((l, i) => {
    const [cpu, who, flags, ...rest] = l.split(' ');
    return `${who} [00${cpu}] ${flags} ${(1 + i / 1000).toFixed(6)}: ${rest.join(' ')}`;
  });
  return importFtrace(text, { audit: true, ...opts });
}
const mapEv = (iova: number, pages: number, paddr = 0x100000) =>
  `map: IOMMU: iova=0x${iova.toString(16)} - 0x${(iova + pages * 4096).toString(16)} paddr=0x${paddr.toString(16)} size=${pages * 4096}`;
const unmapEv = (iova: number, pages: number, done = pages) =>
  `unmap: IOMMU: iova=0x${iova.toString(16)} - 0x${(iova + pages * 4096).toString(16)} size=${pages * 4096} unmapped_size=${done * 4096}`;
const psi = (did: number, iova: number, am = 0) => `qi_submit: iotlb_inv dmar0: 0x${(did * 0x10000 + 0xf2).toString(16)} 0x${(iova + am).toString(16)} 0x0 0x0`;
const groups = [
  '0 init-1 ..... add_device_to_group: IOMMU: groupID=0 device=0000:00:03.0',
  '0 init-1 ..... add_device_to_group: IOMMU: groupID=1 device=0000:00:1f.0',
  '0 init-1 ..... add_device_to_group: IOMMU: groupID=1 device=0000:00:1f.2',
  '0 init-1 ..... add_device_to_group: IOMMU: groupID=2 device=0000:01:00.0',
  '0 init-1 ..... attach_device_to_domain: IOMMU: device=0000:00:03.0',
  '0 init-1 ..... attach_device_to_domain: IOMMU: device=0000:00:1f.0',
  '0 init-1 ..... attach_device_to_domain: IOMMU: device=0000:00:1f.2',
  '0 init-1 ..... attach_device_to_domain: IOMMU: device=0000:01:00.0',
];

test('inferred attach ids: one domain per group, in attach order from 2; a re-attach starts a new domain', () => {
  const r = scenario([...groups, '0 init-1 ..... attach_device_to_domain: IOMMU: device=0000:00:03.0']);
  assert.deepEqual(r.ops.map((o) => o.op === 'attach' && o.domain), [2, 3, 3, 4, 5]);
  const f = scenario(groups, { firstDid: 10 });
  assert.deepEqual(f.ops.map((o) => o.op === 'attach' && o.domain), [10, 11, 11, 12]);
});

test('nested invalidations: an interrupt\'s unmap and its invalidation inside a map and its own', () => {
  const r = scenario([
    ...groups,
    '0 dd-5 ..... ' + mapEv(0xffffe000, 1),
    '0 dd-5 ..... ' + psi(2, 0xffffe000),
    '0 dd-6 ..... ' + mapEv(0xfffff000, 1), // its invalidation comes after the interrupt's
    '0 <idle>-0 d.h2. ' + unmapEv(0xffffe000, 1),
    '0 <idle>-0 d.h3. ' + psi(2, 0xffffe000),
    '0 dd-6 d..1. ' + psi(4, 0xfffff000),
  ]);
  assert.deepEqual(r.audit!.filter((a) => a.event !== 'attach').map((a) => `${a.event}=${a.domain}/${a.rule}`), ['map=2/invalidation', 'map=4/invalidation', 'unmap=2/invalidation']);
  assertConsistent(r);
});

test('without invalidations: live mappings, the acting task and adjacency decide; unmaps undo whole or partly live ranges', () => {
  const r = scenario([
    ...groups,
    '0 insmod-7 ..... ' + mapEv(0xffffe000, 2), // first map: no evidence; lowest domain id
    '0 ip-8 ..... ' + mapEv(0xfffff000, 1), // overlaps domain 2's: another domain
    '0 ip-8 ..... ' + mapEv(0xffffd000, 1), // fits anywhere: ip's domain
    '0 insmod-7 ..... ' + mapEv(0xffffc000, 1), // insmod's domain
    '1 <idle>-0 ..s1. ' + unmapEv(0xffffe000, 2), // live only in domain 2
    '1 <idle>-0 ..s1. ' + unmapEv(0xffffc000, 2), // 0xffffc000 live in 2, 0xffffd000 in 3: partly live in each
    '1 <idle>-0 ..s1. ' + unmapEv(0x10000000, 1), // live nowhere: dropped
    '1 <idle>-0 ..s1. ' + unmapEv(0xfffff000, 2, 1), // unmapped_size 4096 of 8192
  ]);
  const got = r.audit!.filter((a) => a.event !== 'attach').map((a) => `${a.event}=${a.domain}/${a.rule}`);
  assert.deepEqual(got.slice(0, 5), ['map=2/heuristic', 'map=3/heuristic', 'map=3/heuristic', 'map=2/heuristic', 'unmap=2/only-candidate']);
  assert.equal(got[6], 'unmap=undefined/dropped');
  assert.equal(got[7], 'unmap=3/only-candidate');
  assert.equal(r.stats.warnings['unmap-partly-live'].count, 1);
  assert.equal(r.stats.warnings['unmap-short'].count, 1);
  assert.equal(r.stats.warnings['unmap-not-live'].count, 1);
  assertConsistent(r);
});

test('an unmap covering several maps is one unmap op', () => {
  const r = scenario([...groups, '0 dd-5 ..... ' + mapEv(0x10000, 1), '0 dd-5 ..... ' + mapEv(0x11000, 2), '0 <idle>-0 d.h2. ' + unmapEv(0x10000, 3)]);
  const unmaps = r.ops.filter((o) => o.op === 'unmap');
  assert.deepEqual(unmaps, [{ op: 'unmap', domain: 2, iova: 0x10000n, len: 3 * 4096, line: 11 }]);
});

test('a map the invalidation puts over a live mapping unmaps the stale one first (events lost from the ring buffer)', () => {
  const r = scenario([...groups, '0 dd-5 ..... ' + mapEv(0x10000, 2), '0 dd-5 ..... ' + psi(2, 0x10000, 1), '0 dd-5 ..... ' + mapEv(0x11000, 1), '0 dd-5 ..... ' + psi(2, 0x11000)]);
  assert.deepEqual(r.ops.slice(-2).map((o) => o.op), ['unmap', 'map']);
  assert.equal(r.stats.warnings['map-over-live'].count, 1);
  assertConsistent(r);
});

test('segments other than 0000 and a second remapping unit are refused with a clear error', () => {
  assert.throws(() => scenario(['0 init-1 ..... attach_device_to_domain: IOMMU: device=0001:00:03.0']), (e: unknown) =>
    e instanceof VtdError && e.code === 'UNSUPPORTED' && /PCI segment 1/.test(e.message) && e.line === 1);
  assert.throws(() => scenario(['0 a-1 ..... ' + psi(2, 0), '0 a-1 ..... qi_submit: iotlb_inv dmar1: 0x200f2 0x0 0x0 0x0']), (e: unknown) =>
    e instanceof VtdError && e.code === 'UNSUPPORTED' && /second remapping unit dmar1/.test(e.message) && e.line === 2);
  traceError(() => scenario([...groups, '0 dd-5 ..... ' + mapEv(2 ** 48 - 4096, 2)]), 9, /beyond the 48-bit address width/);
  const ok = scenario([...groups, '0 dd-5 ..... ' + mapEv(2 ** 48 - 4096, 2)], { aw: 57 });
  assert.equal(ok.header.aw, 57);
});

test('header options: --aw, --cm, --ram, attaches given before the trace', () => {
  const r = scenario(['0 dd-5 ..... ' + mapEv(0x10000, 1, 0x30000000)], { cm: true, ram: 0x80000000n, attach: [{ sid: 0x18, domain: 9 }] });
  assert.deepEqual(r.header, { aw: 48, cm: true, ram: 0x80000000n, devices: [0x18], sm: false, flts: false });
  assert.deepEqual(r.ops.map((o) => o.op === 'map' || o.op === 'attach' ? o.domain : undefined), [9, 9]);
  const d = scenario(['0 dd-5 ..... ' + mapEv(0x10000, 1, 0x30000000)], { attach: [{ sid: 0x18, domain: 9 }] });
  assert.equal(d.header.ram, 0x80000000n); // >= 2 x 0x30001000, a power of two
  const none = scenario(['0 dd-5 ..... ' + mapEv(0x10000, 1, 0x30000000)]);
  assert.deepEqual(none.stats.warnings['map-unattributable'], { count: 1, firstLine: 1 }); // no domain exists
  assert.equal(none.header.ram, 0x10000000n);
});

// The invariant for arbitrary event sequences: whatever the importer keeps is consistent.
test('property: any sequence of maps, unmaps and invalidations imports into a consistent trace', () => {
  const ev = fc.oneof(
    fc.record({ k: fc.constant('map'), page: fc.integer({ min: 0, max: 15 }), pages: fc.integer({ min: 1, max: 3 }), cpu: fc.integer({ min: 0, max: 1 }), ctx: fc.constantFrom('.....', 'd.h2.', '..s1.') }),
    fc.record({ k: fc.constant('unmap'), page: fc.integer({ min: 0, max: 15 }), pages: fc.integer({ min: 1, max: 3 }), cpu: fc.integer({ min: 0, max: 1 }), ctx: fc.constantFrom('.....', 'd.h2.', '..s1.') }),
    fc.record({ k: fc.constant('psi'), page: fc.integer({ min: 0, max: 15 }), pages: fc.constant(1), cpu: fc.integer({ min: 0, max: 1 }), ctx: fc.constantFrom(2, 3, 4) }),
    fc.record({ k: fc.constant('dsi'), page: fc.constant(0), pages: fc.constant(1), cpu: fc.integer({ min: 0, max: 1 }), ctx: fc.constantFrom(2, 3, 4) }),
  );
  fc.assert(fc.property(fc.array(ev, { maxLength: 60 }), fc.integer({ min: 1, max: 8 }), (evs, window) => {
    const lines = [...groups, ...evs.map((e) => {
      const iova = 0x100000 + e.page * 4096;
      if (e.k === 'map') return `${e.cpu} t-${e.cpu + 5} ${e.ctx} ${mapEv(iova, e.pages)}`;
      if (e.k === 'unmap') return `${e.cpu} t-${e.cpu + 5} ${e.ctx} ${unmapEv(iova, e.pages)}`;
      if (e.k === 'psi') return `${e.cpu} t-${e.cpu + 5} ..... ${psi(e.ctx as number, iova)}`;
      return `${e.cpu} t-${e.cpu + 5} ..s1. qi_submit: iotlb_inv dmar0: 0x${((e.ctx as number) * 0x10000 + 0xe2).toString(16)} 0x0 0x0 0x0`;
    })];
    const r = scenario(lines, { window });
    assertConsistent(r);
    const kept = r.audit!.filter((a) => a.event !== 'attach' && a.rule !== 'dropped').length;
    assert.equal(kept + (r.stats.attribution.map.dropped ?? 0) + (r.stats.attribution.unmap.dropped ?? 0), evs.filter((e) => e.k === 'map' || e.k === 'unmap').length);
  }), { numRuns: 300 });
});

test('maxEvents: stops after N events, reading a window further only to name domains', () => {
  const full = importFtrace(fixture('lazy-head.txt'), { audit: true });
  const part = importFtrace(fixture('lazy-head.txt'), { audit: true, maxEvents: 120 });
  assert.equal(part.stats.events, 120);
  assert.ok(part.stats.read.map + part.stats.read.unmap < 120);
  for (const a of part.audit!) assert.equal(a.domain, domainOfLine(full.audit, a.line), `line ${a.line}`);
  assertConsistent(part);
});

// ---------------------------------------------------------------------------
// QEMU log placement

test('QEMU translations are placed between the matching descriptors, where the mapping holds', () => {
  const r = importFtrace(fixture('trace-cmd.txt'));
  // Guest descriptors: cc, iotlb(2), cc, iotlb(3), psi(2), psi(3), psi(3), psi(2).
  const q = (desc: string) => `1@1.0:vtd_inv_desc invalidate desc type ${desc}`;
  const t = (dev: string, iova: string, gpa: string) => `2@1.0:vtd_dmar_translate dev ${dev} iova ${iova} -> gpa ${gpa} mask 0xfff`;
  const placer = new QemuDmaPlacer(r);
  for (const l of [
    q('context-cache high 0x0 low 0x1800000031'), q('wait high 0x1052004 low 0x200000025'), q('iotlb high 0x0 low 0x200e2'),
    q('context-cache high 0x0 low 0x2000000031'), q('iotlb high 0x0 low 0x300e2'), q('iotlb high 0xffffe001 low 0x200f2'),
    t('00:03.00', '0xfffff000', '0x1001000'), // after the first map's invalidation: domain 2 maps it
    q('iotlb high 0xfffff000 low 0x300f2'),
    t('00:04.00', '0xfffff000', '0x2000000'), t('00:03.00', '0xffffe000', '0x1000000'),
    q('iotlb high 0xfffff000 low 0x300f2'),
    t('00:04.00', '0xfffff000', '0x2000000'), // after 00:04.0's unmap: nowhere in its window, placed in the one before
    t('00:04.00', '0xffffe000', '0x9000000'), // never mapped so: dropped
    q('iotlb high 0xffffe001 low 0x200f2'), q('iotlb high 0x0 low 0x2'),
    t('00:03.00', '0xffffe000', '0x1000000'), // after the guest's last descriptor and QEMU's next: dropped
  ]) placer.pushLine(l);
  const st = placer.finish();
  assert.deepEqual(st, { translations: 6, anchors: 8, placed: 4, inWindow: 3, reordered: 0, neighbour: 1, unplaced: 1, afterGuest: 1, unknownDevice: 0 });
  assertConsistent(r);
  assert.throws(() => new QemuDmaPlacer(importFtrace(fixture('trace-cmd.txt'))).pushLine(q('iotlb high 0x0 low 0x200e2')), (e: unknown) =>
    e instanceof VtdError && e.code === 'TRACE' && /descriptor 0 .* differs from the guest's qi_submit 0 at ftrace line 5/.test(e.message));
});

// ---------------------------------------------------------------------------
// The real captures (test/fixtures/realtraces)

/** Share of events the heuristic (invalidations ignored) puts where the invalidations say: raw, and after the best one-to-one relabelling of domains. */
function agreement(heuristic: Attribution[], truth: Map<number, number>, event: 'map' | 'unmap'): { n: number; same: number; relabelled: number } {
  const pairs = new Map<string, number>();
  let n = 0, same = 0;
  for (const a of heuristic) {
    if (a.event !== event || !truth.has(a.line)) continue;
    n++;
    if (truth.get(a.line) === a.domain) same++;
    const k = `${a.domain}>${truth.get(a.line)}`;
    pairs.set(k, (pairs.get(k) ?? 0) + 1);
  }
  const usedA = new Set<string>(), usedT = new Set<string>();
  let relabelled = 0;
  for (const [k, c] of [...pairs].sort((x, y) => y[1] - x[1])) {
    const [a, t] = k.split('>');
    if (usedA.has(a) || usedT.has(t)) continue;
    usedA.add(a);
    usedT.add(t);
    relabelled += c;
  }
  return { n, same, relabelled };
}

test('real run net (CM on, strict): counts, domains, consistency, heuristic accuracy', () => {
  const text = xz('linux-e1000-ftrace.txt.xz');
  const r = importFtrace(text, { audit: true });
  const s = r.stats;
  // aux-e1000/stats.txt and the README table.
  assert.deepEqual([s.read.map, s.read.unmap, s.read.attach, s.read.group, s.read.qi, s.read.mark], [16355, 16092, 8, 8, 32501, 10]);
  assert.deepEqual([s.written.map, s.written.unmap, s.written.attach], [16355, 16092, 8]);
  assert.equal(s.mapBytes, 104837120);
  assert.equal(s.unmapBytes, 86618112);
  assert.deepEqual(s.attribution, { map: { direct: 1, invalidation: 16354 }, unmap: { invalidation: 16092 }, attach: { flush: 8 } });
  assert.deepEqual(s.attachInference, { checked: 8, agreed: 8 });
  assert.deepEqual(s.warnings, {});
  const dom = Object.fromEntries(s.domains.map((d) => [d.did, d]));
  assert.deepEqual(dom[3].devices, ['00:03.0']); // the e1000
  assert.deepEqual(dom[7].devices, ['01:00.0']); // the virtio-blk
  assert.deepEqual(dom[6].devices, ['00:1f.0', '00:1f.2', '00:1f.3']);
  assert.deepEqual([dom[3].maps, dom[3].unmaps, dom[7].maps, dom[7].unmaps, dom[6].maps], [15470, 15212, 884, 880, 1]);
  assert.equal(r.header.cm, true);
  const { live } = assertConsistent(r);
  let livePages = 0;
  for (const m of live.values()) livePages += m.size;
  assert.equal(livePages * 4096, s.mapBytes - s.unmapBytes); // every unmap was live
  // The heuristic, invalidations ignored, against what the invalidations say.
  const truth = new Map(r.audit!.filter((a) => a.event !== 'attach').map((a) => [a.line, a.domain!]));
  const h = importFtrace(text, { audit: true, ignoreInvalidations: true });
  assert.deepEqual(h.stats.attribution.attach, { inferred: 8 });
  assert.deepEqual(h.audit!.filter((a) => a.event === 'attach').map((a) => a.domain), r.audit!.filter((a) => a.event === 'attach').map((a) => a.domain));
  const maps = agreement(h.audit!, truth, 'map'), unmaps = agreement(h.audit!, truth, 'unmap');
  assert.deepEqual([maps.n, maps.same, maps.relabelled], [16355, 15471, 16350]); // 94.6 %, 99.97 % relabelled
  assert.deepEqual([unmaps.n, unmaps.same, unmaps.relabelled], [16092, 15212, 16087]);
  assertConsistent(h);
});

test('real run lazy (CM off, flush queue): counts, domains, consistency', () => {
  const r = importFtrace(xz('linux-lazy-ftrace.txt.xz'), { audit: true });
  const s = r.stats;
  assert.deepEqual([s.read.map, s.read.unmap, s.read.attach, s.read.qi], [16073, 15811, 8, 156]);
  assert.deepEqual([s.written.map, s.written.unmap, s.written.attach], [16073, 15811, 8]);
  assert.deepEqual(s.attribution.attach, { inferred: 8 });
  assert.deepEqual(s.invalidations, { page: 0, domain: 115, global: 1, other: 40 });
  assert.deepEqual(s.warnings, {});
  const dom = Object.fromEntries(s.domains.map((d) => [d.did, d]));
  assert.deepEqual([dom[3].devices, dom[7].devices], [['00:03.0'], ['01:00.0']]);
  assert.deepEqual([dom[3].maps, dom[7].maps, dom[6].maps, dom[2].maps + dom[4].maps + dom[5].maps], [15573, 499, 1, 0]);
  assert.equal(r.header.cm, false);
  assertConsistent(r);
});

test('real runs with their QEMU logs: every translation placed, and a replay gives QEMU\'s gpa', () => {
  for (const [ftrace, log, translations, anchors] of [
    ['linux-e1000-ftrace.txt.xz', 'qemu-vtd-e1000.log.xz', 80073, 32501],
    ['linux-lazy-ftrace.txt.xz', 'qemu-vtd-lazy.log.xz', 79895, 156],
  ] as const) {
    const r = importFtrace(xz(ftrace), { qemuLog: textLines(xz(log)) });
    assert.equal(r.stats.dma?.translations, translations);
    assert.equal(r.stats.dma?.anchors, anchors);
    assert.equal(r.stats.dma?.placed, translations, JSON.stringify(r.stats.dma));
    assertConsistent(r);
    const expected = r.ops.filter((o) => o.op === 'dma').map((o) => (o as { gpa: bigint }).gpa);
    const trace = parseTrace([...formatImport(r)].join('\n'));
    for (const policy of ['strict', 'lazy'] as const) {
      const results = replayTrace(trace, { driver: { policy } }).map((l) => JSON.parse(l) as { op: string; ok: boolean; gpa?: string });
      const dma = results.filter((x) => x.op === 'dma');
      assert.equal(dma.length, translations);
      const differing = dma.filter((x, i) => !x.ok || BigInt(x.gpa!) !== expected[i]).length;
      assert.equal(differing, 0, `${ftrace} ${policy}: ${differing} replayed translations differ from QEMU's`);
    }
  }
});

test('an imported slice replays through the guest-driver model without error', () => {
  const r = importFtrace(fixture('lazy-head.txt'));
  const results = replayTrace(parseTrace([...formatImport(r)].join('\n')));
  assert.deepEqual(results, []); // workload ops produce no result lines
});

// ---------------------------------------------------------------------------
// The command

test('vtd import: a file to --out, .xz through xz -dc, usage errors', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtd-import-'));
  const write = process.stderr.write;
  try {
    let err = '';
    process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
    const out = join(dir, 'a.jsonl');
    assert.equal(await importCli([join(FIXTURES, 'trace-cmd.txt'), '--out', out, '--aw', '39']), 0);
    assert.match(err, /vtd import: 19 lines, 16 events read/);
    assert.match(err, /attribution: maps 2 invalidation/);
    const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
    assert.match(lines[0], /^# vtd import of trace-cmd\.txt/);
    assert.equal(lines[1], '{"vtd-trace":1,"iommu":{"aw":39,"cm":true,"ram":"0x10000000"},"devices":["00:03.0","00:04.0"]}');
    assert.equal(lines.length, 2 + 2 + 2 + 2);
    if (haveReal) {
      err = '';
      const out2 = join(dir, 'b.jsonl');
      assert.equal(await importCli([join(REAL, 'linux-lazy-ftrace.txt.xz'), '--max-events', '500', '--out', out2, '--no-cm', '--ram', '1G', '--quiet']), 0);
      assert.equal(err, '');
      const t = parseTrace(readFileSync(out2, 'utf8'));
      assert.equal(t.header.config.ram, 1n << 30n);
      assert.equal(t.header.config.cm, false);
    }
    const bad = join(dir, 'bad.xz');
    writeFileSync(bad, 'not xz\n');
    await assert.rejects(importCli([bad]), (e: unknown) => e instanceof VtdError && e.code === 'TRACE' && /xz -dc .*bad\.xz failed/.test(e.message));
    await assert.rejects(importCli([join(dir, 'missing.txt')]), /ENOENT/);
    await assert.rejects(importCli([]), /import takes one ftrace file/);
    await assert.rejects(importCli(['x', '--aw', '40']), /--aw must be 39, 48 or 57/);
    await assert.rejects(importCli(['x', '--ram', '12345']), /multiple of 4 KiB/);
    await assert.rejects(importCli(['x', '--cm', '--no-cm']), /not both/);
    await assert.rejects(importCli(['x', '--attach', '00:03.0']), /--attach takes BB:DD.F=DID/);
    await assert.rejects(importCli(['x', '--frobnicate']), /unknown option --frobnicate/);
  } finally {
    process.stderr.write = write;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the importer streams: it pulls lines one at a time and stops a window past maxEvents', () => {
  let pulled = 0;
  const all = fixture('lazy-head.txt').split('\n');
  function* lines(): Generator<string> {
    for (const l of all) {
      pulled++;
      yield l;
    }
  }
  const r = importFtrace(lines(), { maxEvents: 50, window: 16 });
  assert.equal(r.stats.events, 50);
  assert.ok(pulled < 120 && pulled < all.length, `pulled ${pulled} lines`);
});
