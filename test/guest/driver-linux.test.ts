/**
 * Fidelity of the guest-driver model to Linux 6.1: the real trace of a Linux
 * 6.1 guest driving QEMU's intel-iommu with caching mode on
 * (test/fixtures/realtraces/linux-e1000-ftrace.txt.xz, README.md beside it) is
 * turned back into a workload (its attach, map and unmap events), lowered
 * with cm = true, and the context-cache and IOTLB descriptors the model
 * writes are compared, event by event, with the ones Linux submitted
 * (qi_submit: qw0, qw1).
 *
 * Reading the trace: events are merged from two CPUs, so each event's
 * descriptors are looked for in its own stream (CPU, task, irq context). A
 * map's or unmap's domain is the DID of the next IOTLB descriptor in its
 * stream (the identity map made before its domain is attached takes the DID
 * of that attach); an attach's domain is the DID of the domain-selective
 * descriptor just before it. Linux logs an attach after its invalidations and
 * a map or unmap before them.
 *
 *   npx tsx --test test/guest/driver-linux.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatRid, parseTrace } from '../../src/trace/parse.js';
import { GuestDriver, type LoweredOp, type WorkloadOp } from '../../src/guest/driver.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const DIR = process.env.VTD_REALTRACES_DIR ?? join(REPO, 'test', 'fixtures', 'realtraces');
const TRACE = join(DIR, 'linux-e1000-ftrace.txt.xz');

type Desc = [bigint, bigint];
type Work = { op: 'attach'; sid: number; domain: number } | { op: 'map'; domain: number; iova: bigint; gpa: bigint; len: number } | { op: 'unmap'; domain: number; iova: bigint; len: number };
interface Item { w: Work; real: Desc[]; stream: string }

const LINE = /^\s*(.+?)\s+\[(\d+)\]\s+(\S+)\s+[\d.]+: (\w+): (.*)$/;
const gran = (d: Desc): bigint => (d[0] >> 4n) & 3n;
const did = (d: Desc): number => Number((d[0] >> 16n) & 0xffffn);

/** The workload events of the trace with the descriptors Linux submitted for each, and the boot descriptors. */
function readTrace(text: string): { boot: Desc[]; items: Item[] } {
  const items: Item[] = [];
  const boot: Desc[] = [];
  const last = new Map<string, Item>();        // per stream: the map/unmap its next descriptors belong to
  const beforeAttach = new Map<string, Desc[]>();
  const needDid = new Map<string, Item[]>();
  for (const l of text.split('\n')) {
    const m = LINE.exec(l);
    if (!m) continue;
    const [, task, cpu, flags, ev, rest] = m;
    const stream = `${cpu}/${task}/${flags[2]}`;
    if (ev === 'qi_submit') {
      const q = /^(cc_inv|iotlb_inv) dmar0: (0x[0-9a-f]+) (0x[0-9a-f]+)/.exec(rest);
      if (!q) continue; // interrupt-entry-cache descriptors: interrupt remapping is not modelled
      const d: Desc = [BigInt(q[2]), BigInt(q[3])];
      if (q[1] === 'iotlb_inv') {
        for (const it of needDid.get(stream) ?? []) it.w.domain = did(d);
        needDid.set(stream, []);
      }
      if (items.length === 0 && gran(d) === 1n) boot.push(d);
      else if (q[1] === 'cc_inv' || gran(d) === 2n) (beforeAttach.get(stream) ?? beforeAttach.set(stream, []).get(stream)!).push(d);
      else {
        const it = last.get(stream);
        assert.ok(it, `a page-selective descriptor with no map or unmap before it in its stream: ${l}`);
        it.real.push(d);
      }
    } else if (ev === 'attach_device_to_domain') {
      const a = /device=0000:([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])/.exec(rest)!;
      const real = beforeAttach.get(stream) ?? [];
      beforeAttach.set(stream, []);
      const dsi = real.find((d) => (d[0] & 0xfn) === 2n && gran(d) === 2n);
      assert.ok(dsi, `no domain-selective flush before ${l}`);
      items.push({ w: { op: 'attach', sid: (parseInt(a[1], 16) << 8) | (parseInt(a[2], 16) << 3) | parseInt(a[3], 16), domain: did(dsi) }, real, stream });
      last.delete(stream);
    } else if (ev === 'map' || ev === 'unmap') {
      const r = /iova=(0x[0-9a-f]+) - (0x[0-9a-f]+)(?: paddr=(0x[0-9a-f]+))?/.exec(rest)!;
      const iova = BigInt(r[1]), len = Number(BigInt(r[2]) - iova);
      const w: Work = ev === 'map' ? { op: 'map', domain: -1, iova, gpa: BigInt(r[3]), len } : { op: 'unmap', domain: -1, iova, len };
      const it: Item = { w, real: [], stream };
      items.push(it);
      last.set(stream, it);
      (needDid.get(stream) ?? needDid.set(stream, []).get(stream)!).push(it);
    }
  }
  for (let i = 0; i < items.length; i++) {
    if (items[i].w.domain >= 0) continue;
    const next = items.slice(i + 1).find((x) => x.w.op === 'attach');
    assert.ok(next, 'a map with no domain');
    items[i].w.domain = next.w.domain;
  }
  return { boot, items };
}

/**
 * Merges the `map` events of one iommu_map_sg call (consecutive in their
 * stream, IOVA-contiguous, one flush after the last): the trace format's
 * `map` has one gpa, so such a call is several workload maps. The merged map
 * takes the first chunk's gpa (the descriptors do not depend on gpas here:
 * every leaf is 4 KiB).
 */
function mergeSg(items: Item[]): Item[] {
  const out: Item[] = [];
  const open = new Map<string, Item>();
  for (const it of items) {
    const prev = open.get(it.stream);
    if (prev && prev.w.op === 'map' && it.w.op === 'map' && prev.real.length === 0 && prev.w.domain === it.w.domain && prev.w.iova + BigInt(prev.w.len) === it.w.iova) {
      prev.w = { ...prev.w, len: prev.w.len + it.w.len };
      prev.real = it.real;
      continue;
    }
    const copy = { ...it, w: { ...it.w } };
    out.push(copy);
    open.set(it.stream, copy);
  }
  return out;
}

interface Agreement { descriptors: number; agree: number; iotlb: number; iotlbAgree: number; context: number; contextAgree: number; extra: number; firstDifference?: string }

/** Lowers the items with cm = true (strict forced) and compares, per event, the descriptors written with Linux's. */
function compare(boot: Desc[], items: Item[]): Agreement {
  const sids = [...new Set(items.flatMap((x) => x.w.op === 'attach' ? [x.w.sid] : []))];
  const header = parseTrace(`{"vtd-trace":1,"iommu":{"aw":48,"cm":true,"ram":"0x40000000"},"devices":${JSON.stringify(sids.map(formatRid))}}`).header;
  const driver = new GuestDriver(header);
  assert.equal(driver.policy, 'strict');
  const q = driver.layout.queue;
  let mine: Desc[] = [];
  const emit = (op: LoweredOp): void => {
    if (op.op !== 'mem' || op.gpa < q || op.gpa >= q + 4096n) return;
    const dv = new DataView(op.data.buffer, op.data.byteOffset, op.data.byteLength);
    mine.push([dv.getBigUint64(0, true), dv.getBigUint64(8, true)]); // the wait descriptor follows at +16
  };
  const a: Agreement = { descriptors: 0, agree: 0, iotlb: 0, iotlbAgree: 0, context: 0, contextAgree: 0, extra: 0 };
  const hex = (d?: Desc): string => d ? `${d[0].toString(16)} ${d[1].toString(16)}` : 'none';
  const check = (real: Desc[], what: string): void => {
    for (let k = 0; k < Math.max(real.length, mine.length); k++) {
      const r = real[k], g = mine[k];
      if (!r) {
        a.extra++;
        a.firstDifference ??= `${what}: extra descriptor ${hex(g)}`;
        continue;
      }
      const same = g !== undefined && g[0] === r[0] && g[1] === r[1];
      a.descriptors++;
      if ((r[0] & 0xfn) === 2n) a.iotlb++;
      else a.context++;
      if (same) {
        a.agree++;
        if ((r[0] & 0xfn) === 2n) a.iotlbAgree++;
        else a.contextAgree++;
      } else a.firstDifference ??= `${what}: Linux ${hex(r)}, model ${hex(g)}`;
    }
    mine = [];
  };
  driver.init(emit);
  check(boot, 'boot');
  let line = 1;
  for (const it of items) {
    const op = { ...it.w, line: line++, index: 0, ...(it.w.op === 'map' ? { perm: 'rw' as const } : {}) } as WorkloadOp;
    driver.lower(op, emit);
    check(it.real, `${it.w.op} ${JSON.stringify(it.w, (_k, v) => (typeof v === 'bigint' ? '0x' + v.toString(16) : v))}`);
  }
  return a;
}

const pct = (n: number, d: number): string => `${((100 * n) / d).toFixed(3)}%`;

test('the model writes the invalidation descriptors Linux 6.1 wrote (real e1000 + virtio-blk trace, caching mode)', (t) => {
  assert.ok(existsSync(TRACE), `the real Linux trace is missing: ${TRACE} (set VTD_REALTRACES_DIR)`);
  const text = execFileSync('xz', ['-dc', TRACE], { maxBuffer: 1 << 28, encoding: 'utf8' });
  const { boot, items } = readTrace(text);
  const counts = { attach: 0, map: 0, unmap: 0 };
  for (const it of items) counts[it.w.op]++;
  assert.deepEqual(counts, { attach: 8, map: 16355, unmap: 16092 }, 'the README counts');

  // Each ftrace map event as one workload map: the two iommu_map_sg calls of the trace differ.
  const raw = compare(boot, items);
  t.diagnostic(`per event: ${raw.agree}/${raw.descriptors} descriptors agree (${pct(raw.agree, raw.descriptors)}); IOTLB ${raw.iotlbAgree}/${raw.iotlb}, context ${raw.contextAgree}/${raw.context}; ${raw.extra} extra; first difference: ${raw.firstDifference}`);
  assert.ok(raw.agree / raw.descriptors > 0.999);

  // With each iommu_map_sg call as one map: every descriptor agrees.
  const merged = compare(boot, mergeSg(items));
  t.diagnostic(`map_sg calls merged: ${merged.agree}/${merged.descriptors} descriptors agree (${pct(merged.agree, merged.descriptors)}); IOTLB ${merged.iotlbAgree}/${merged.iotlb}, context ${merged.contextAgree}/${merged.context}; ${merged.extra} extra`);
  assert.equal(merged.firstDifference, undefined);
  assert.equal(merged.iotlb, 32453);
  assert.equal(merged.context, 9);
  assert.equal(merged.agree, merged.descriptors);
  assert.equal(merged.extra, 0);
});
