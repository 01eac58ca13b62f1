/**
 * The guest-driver model (src/guest/driver.ts): its lowering, applied to a
 * real unit, must give the translations the workload describes; its
 * invalidations must be the ones Linux 6.1 issues (checked against a real
 * Linux 6.1 trace, test/guest/driver-linux.test.ts); its lowered traces
 * must replay identically here and on QEMU 7.2 (driver-qemu.test.ts).
 *
 *   npx tsx --test test/guest/driver.test.ts
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { VtdError } from '../../src/errors.js';
import { Iommu, type IommuEvent } from '../../src/iommu.js';
import { replayTrace } from '../../src/replay/replayer.js';
import { optionsFromHeader, parseRid, parseTrace, type TraceHeader } from '../../src/trace/parse.js';
import {
  GuestDriver, formatLowered, lowerTrace, poolLayout, type DriverOptions, type LoweredOp, type WorkloadOp,
} from '../../src/guest/driver.js';
import { parseLowerArgs } from '../../src/cli/lower.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const K4 = 0x1000, M2 = 0x200000, G1 = 0x40000000;
const GSTS = 0x1c, FSTS = 0x34;

interface UnitOptions { aw?: 39 | 48 | 57; cm?: boolean; ram?: bigint; devices?: string[] }

function header(u: UnitOptions = {}): TraceHeader {
  const devices = u.devices ?? ['00:03.0', '00:04.0', '01:00.0'];
  return parseTrace(`{"vtd-trace":1,"iommu":{"aw":${u.aw ?? 48},"cm":${u.cm ?? false},"ram":"0x${(u.ram ?? 0x4000000n).toString(16)}"},"devices":${JSON.stringify(devices)}}`).header;
}

/** An op without its position in a trace (distributes over the union). */
type Bare<T> = T extends unknown ? Omit<T, 'line' | 'index'> : never;

type Dma = { ok: true; gpa: bigint } | { ok: false; fault: number | undefined };

/** A unit and a driver whose lowered ops are applied to it as they come. */
class Rig {
  readonly header: TraceHeader;
  readonly iommu: Iommu;
  readonly driver: GuestDriver;
  readonly ops: LoweredOp[] = [];
  readonly invs: Extract<IommuEvent, { type: 'invalidation' }>[] = [];
  private line = 2;
  readonly emit = (op: LoweredOp): void => {
    this.ops.push(op);
    if (op.op === 'mem') this.iommu.writeGuest(op.gpa, op.data);
    else this.iommu.mmioWrite(op.reg, op.size, op.val);
  };

  constructor(u: UnitOptions = {}, d: DriverOptions = {}) {
    this.header = header(u);
    this.iommu = Iommu.create(optionsFromHeader(this.header.config));
    this.iommu.on((e) => { if (e.type === 'invalidation') this.invs.push(e); });
    this.driver = new GuestDriver(this.header, d);
    this.driver.init(this.emit);
  }

  lower(op: Bare<WorkloadOp>): void {
    this.driver.lower({ ...op, line: this.line++, index: 0 } as WorkloadOp, this.emit);
  }
  attach(sid: string, domain: number): void {
    this.lower({ op: 'attach', sid: parseRid(sid, 0, 'sid'), domain });
  }
  map(domain: number, iova: number | bigint, gpa: number | bigint, len: number, perm: 'r' | 'w' | 'rw' = 'rw'): void {
    this.lower({ op: 'map', domain, iova: BigInt(iova), gpa: BigInt(gpa), len, perm });
  }
  unmap(domain: number, iova: number | bigint, len: number): void {
    this.lower({ op: 'unmap', domain, iova: BigInt(iova), len });
  }
  finish(): void {
    this.driver.finish(this.emit);
  }
  dma(sid: string, iova: number | bigint, dir: 'r' | 'w' = 'r'): Dma {
    const r = this.iommu.translate(parseRid(sid, 0, 'sid'), BigInt(iova), dir, 4);
    return r.ok ? { ok: true, gpa: r.gpaBig } : { ok: false, fault: r.faultReason };
  }
  reg(off: number): bigint {
    return this.iommu.mmioRead(off, 4);
  }
  /** Invalidation descriptors written to the queue since `from` (waits left out), as [qw0, qw1]. */
  descriptors(from = 0): [bigint, bigint][] {
    const q = this.driver.layout.queue;
    const out: [bigint, bigint][] = [];
    for (const op of this.ops.slice(from)) {
      if (op.op !== 'mem' || op.gpa < q || op.gpa >= q + 4096n) continue;
      const dv = new DataView(op.data.buffer, op.data.byteOffset, op.data.byteLength);
      for (let k = 0; k < op.data.length; k += 16) {
        const qw0 = dv.getBigUint64(k, true);
        if ((qw0 & 0xfn) !== 5n) out.push([qw0, dv.getBigUint64(k + 8, true)]);
      }
    }
    return out;
  }
  /** IOTLB invalidations the unit performed since `from`, as "kind did addr am ih". */
  iotlb(from = 0): string[] {
    return this.invs.slice(from).filter((e) => e.cache === 'iotlb')
      .map((e) => e.granularity === 3 ? `page ${e.did} 0x${e.addr.toString(16)} ${e.am} ${e.ih}` : e.granularity === 2 ? `domain ${e.did}` : 'global');
  }
}

const ok = (gpa: number | bigint): Dma => ({ ok: true, gpa: BigInt(gpa) });
const fault = (f: number): Dma => ({ ok: false, fault: f });

function throwsVtd(fn: () => void, code: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof VtdError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    return true;
  });
}

// -------------------------------------------------------------------- boot

describe('boot programming', () => {
  test('queued invalidation: IQT = 0, IQA, QIE, RTADDR, SRTP, global context and IOTLB flushes, TE (Linux 6.1 order)', () => {
    const r = new Rig();
    const l = r.driver.layout;
    const regs = r.ops.filter((o) => o.op === 'wr').map((o) => o.op === 'wr' ? `${o.reg.toString(16)}=${o.val.toString(16)}` : '');
    assert.deepEqual(regs, ['88=0', `90=${l.queue.toString(16)}`, '18=4000000', `20=${l.rootTable.toString(16)}`, '18=44000000', '88=20', '88=40', '18=84000000']);
    assert.deepEqual(r.descriptors(), [[0x11n, 0n], [0xd2n, 0n]]); // the real Linux 6.1 boot: cc_inv 0x11, iotlb_inv 0xd2
    assert.equal(r.reg(GSTS), 0xc4000000n); // TES | RTPS | QIES
    assert.equal(r.reg(FSTS), 0n);
    assert.deepEqual(r.iotlb(), ['global']);
    // Every wait wrote QI_DONE (2) to its own status word.
    assert.deepEqual([...r.iommu.readGuest(l.status + 4n, 4)], [2, 0, 0, 0]);
    assert.deepEqual([...r.iommu.readGuest(l.status + 12n, 4)], [2, 0, 0, 0]);
  });

  test('register invalidation: CCMD and IOTLB registers, QI stays off', () => {
    const r = new Rig({}, { invalidation: 'register' });
    const regs = r.ops.map((o) => o.op === 'wr' ? `${o.reg.toString(16)}=${o.val.toString(16)}` : 'mem');
    assert.deepEqual(regs, [`20=${r.driver.layout.rootTable.toString(16)}`, '18=40000000', '28=a000000000000000', 'f8=9001000000000000', '18=80000000']);
    assert.equal(r.reg(GSTS), 0xc0000000n);
    assert.equal(r.iommu.mmioRead(0x28, 8) >> 63n, 0n, 'ICC cleared: done');
    assert.deepEqual(r.iotlb(), ['global']);
  });

  test('the pool is the top eighth of RAM: root table, queue, status words, then tables downward', () => {
    const p = poolLayout(0x10000000n);
    assert.deepEqual(p, { base: 0xe000000n, rootTable: 0xffff000n, queue: 0xfffe000n, status: 0xfffd000n, tablesTop: 0xfffd000n, pages: 8192 });
    assert.equal(poolLayout(0x20000n).pages, 8, 'at least 8 pages');
  });
});

// -------------------------------------------------------------------- translation

describe('lowered workloads translate as the workload says', () => {
  test('inside a mapping: the right gpa and rights (5h write without W, 6h read without R); outside: not present', () => {
    const r = new Rig();
    r.attach('00:03.0', 3);
    r.map(3, 0x10000, 0x123000, 2 * K4, 'rw');
    r.map(3, 0x20000, 0x200000, K4, 'r');
    r.map(3, 0x30000, 0x300000, K4, 'w');
    assert.deepEqual(r.dma('00:03.0', 0x10008, 'r'), ok(0x123008));
    assert.deepEqual(r.dma('00:03.0', 0x11ff0, 'w'), ok(0x124ff0));
    assert.deepEqual(r.dma('00:03.0', 0x20010, 'r'), ok(0x200010));
    assert.deepEqual(r.dma('00:03.0', 0x20010, 'w'), fault(0x05));
    assert.deepEqual(r.dma('00:03.0', 0x30010, 'w'), ok(0x300010));
    assert.deepEqual(r.dma('00:03.0', 0x30010, 'r'), fault(0x06));
    assert.deepEqual(r.dma('00:03.0', 0x12000, 'r'), fault(0x06));
    assert.deepEqual(r.dma('00:03.0', 0x40000000, 'w'), fault(0x05));
  });

  test('devices not attached: root entry (1h) or context entry (2h) not present', () => {
    const r = new Rig();
    assert.deepEqual(r.dma('00:03.0', 0x1000), fault(0x01));
    r.attach('00:03.0', 3);
    assert.deepEqual(r.dma('00:04.0', 0x1000), fault(0x02));
    assert.deepEqual(r.dma('01:00.0', 0x1000), fault(0x01));
  });

  test('after a strict unmap the page faults; its neighbours stay', () => {
    const r = new Rig({}, { policy: 'strict' });
    r.attach('00:03.0', 3);
    r.map(3, 0x10000, 0x500000, 3 * K4);
    for (let i = 0; i < 3; i++) assert.deepEqual(r.dma('00:03.0', 0x10000 + i * K4), ok(0x500000 + i * K4)); // cached now
    r.unmap(3, 0x11000, K4);
    assert.deepEqual(r.dma('00:03.0', 0x11000), fault(0x06));
    assert.deepEqual(r.dma('00:03.0', 0x10000), ok(0x500000));
    assert.deepEqual(r.dma('00:03.0', 0x12000), ok(0x502000));
    assert.deepEqual(r.iotlb().slice(1), ['page 3 0x11000 0 0']);
  });

  test('domains are separate address spaces; devices in one domain share it', () => {
    const r = new Rig();
    r.attach('00:03.0', 3);
    r.attach('00:04.0', 3);
    r.attach('01:00.0', 7);
    r.map(3, 0x10000, 0x500000, K4);
    r.map(7, 0x10000, 0x600000, K4);
    assert.deepEqual(r.dma('00:03.0', 0x10000), ok(0x500000));
    assert.deepEqual(r.dma('00:04.0', 0x10000), ok(0x500000));
    assert.deepEqual(r.dma('01:00.0', 0x10000), ok(0x600000));
    assert.equal(r.driver.stats.contextTables, 2, 'one context table per bus');
  });

  test('re-attach: the old context is cleared and invalidated with the old DID, then the new one is used', () => {
    const r = new Rig();
    r.attach('00:03.0', 3);
    r.map(3, 0x10000, 0x500000, K4);
    r.map(4, 0x10000, 0x600000, K4);
    assert.deepEqual(r.dma('00:03.0', 0x10000), ok(0x500000));
    const from = r.ops.length;
    r.attach('00:03.0', 4);
    // Linux domain_context_clear_one: device-selective context (DID 3, SID 0x18), domain-selective IOTLB (DID 3).
    assert.deepEqual(r.descriptors(from), [[0x1800030031n, 0n], [0x300e2n, 0n]]);
    assert.deepEqual(r.dma('00:03.0', 0x10000), ok(0x600000));
    const n = r.ops.length;
    r.attach('00:03.0', 4);
    assert.equal(r.ops.length, n, 'attaching to the current domain writes nothing');
  });

  test('RAM above 4 GiB: tables, context table and queue in a pool above 4 GiB', () => {
    const r = new Rig({ ram: 0x200000000n });
    assert.equal(r.driver.layout.base, 0x1c0000000n);
    r.attach('00:03.0', 3);
    r.map(3, 0x10000, 0x180000000n, 2 * K4);
    assert.deepEqual(r.dma('00:03.0', 0x11008), ok(0x180001008));
    assert.equal(r.reg(FSTS), 0n);
  });

  test('aw 39, 48, 57: 3, 4, 5 levels (context AW 1, 2, 3); IOVAs up to the width translate', () => {
    for (const [aw, ctxAw] of [[39, 1], [48, 2], [57, 3]] as const) {
      const r = new Rig({ aw });
      r.attach('00:03.0', 3);
      const top = (1n << BigInt(aw)) - 0x2000n;
      r.map(3, top, 0x700000, 2 * K4);
      assert.deepEqual(r.dma('00:03.0', top + 0x1234n), ok(0x701234), `aw ${aw}`);
      const ce = r.iommu.contextOf(0x18);
      assert.ok(ce.ok);
      assert.equal(ce.levels, ctxAw + 2);
    }
  });
});

// -------------------------------------------------------------------- caching mode

describe('caching mode (digest §8, checked against the real Linux 6.1 trace)', () => {
  test('attach: device-selective context invalidation with DID 0, then domain-selective IOTLB with the new DID', () => {
    const r = new Rig({ cm: true });
    const from = r.ops.length;
    r.attach('00:03.0', 3);
    // linux-e1000-ftrace: "cc_inv dmar0: 0x1800000031", "iotlb_inv dmar0: 0x300e2" before attaching 00:03.0.
    assert.deepEqual(r.descriptors(from), [[0x1800000031n, 0n], [0x300e2n, 0n]]);
  });

  test('map: page-selective, AM as Linux computes it (real trace: 0x700f2 0xffffe001 for two pages)', () => {
    const r = new Rig({ cm: true, ram: 0x80000000n });
    r.attach('01:00.0', 7);
    let from = r.ops.length;
    r.map(7, 0xffffe000, 0x4ca000, 2 * K4);
    assert.deepEqual(r.descriptors(from), [[0x700f2n, 0xffffe001n]]);
    // Unaligned start: 2 pages at pfn 0x1 need the 4-page block at 0 (AM 2); the address stays the start.
    from = r.ops.length;
    r.map(7, 0x1000, 0x100000, 2 * K4);
    assert.deepEqual(r.descriptors(from), [[0x700f2n, 0x1002n]]);
    // 3 pages at pfn 0x3 (3..5): rounded to 4, then widened to the 8-page block.
    from = r.ops.length;
    r.map(7, 0x3000, 0x200000, 3 * K4);
    assert.deepEqual(r.descriptors(from), [[0x700f2n, 0x3003n]]);
    // 1 GiB at an aligned IOVA: AM 18 = MAMV, still page-selective.
    from = r.ops.length;
    r.map(7, 0x80000000n, 0, G1);
    assert.deepEqual(r.descriptors(from), [[0x700f2n, 0x80000012n]]);
    // A range that needs AM 19 > MAMV: domain-selective instead.
    from = r.ops.length;
    r.map(7, 0x13ffff000n, 0x1000000, 2 * K4);
    assert.deepEqual(r.descriptors(from), [[0x700e2n, 0n]]);
    assert.equal(r.reg(FSTS), 0n);
  });

  test('map without caching mode: no invalidation (not-present → present, CAP.RWBF = 0)', () => {
    const r = new Rig({ cm: false });
    r.attach('00:03.0', 3);
    const from = r.ops.length;
    r.map(3, 0x10000, 0x500000, 4 * K4);
    assert.deepEqual(r.descriptors(from), []);
    assert.equal(r.ops.slice(from).filter((o) => o.op === 'wr').length, 0);
  });

  test('caching mode forces strict (policyForced); an explicit strict is not forced; without CM lazy stays', () => {
    assert.deepEqual([new GuestDriver(header({ cm: true })).policy, new GuestDriver(header({ cm: true })).policyForced], ['strict', true]);
    const lazy = new GuestDriver(header({ cm: true }), { policy: 'lazy' });
    assert.deepEqual([lazy.policy, lazy.policyForced], ['strict', true]);
    const strict = new GuestDriver(header({ cm: true }), { policy: 'strict' });
    assert.deepEqual([strict.policy, strict.policyForced], ['strict', false]);
    const plain = new GuestDriver(header({ cm: false }));
    assert.deepEqual([plain.policy, plain.policyForced], ['lazy', false]);
  });

  test('maps to a domain no device is attached to issue no invalidation (Linux flushes per attached unit)', () => {
    const r = new Rig({ cm: true });
    const from = r.ops.length;
    r.map(6, 0, 0, 16 << 20); // the identity map Linux builds before attaching the ISA bridge
    assert.deepEqual(r.descriptors(from), []);
    r.attach('00:04.0', 6);
    assert.deepEqual(r.dma('00:04.0', 0x123456), ok(0x123456));
  });
});

// -------------------------------------------------------------------- policies

describe('strict and lazy invalidation', () => {
  test('strict: one page-selective invalidation per unmap; lazy: one domain-selective per full queue, the rest at finish', () => {
    const strict = new Rig({}, { policy: 'strict' });
    const lazy = new Rig({}, { policy: 'lazy', flushQueue: 4 });
    for (const r of [strict, lazy]) {
      r.attach('00:03.0', 3);
      r.attach('01:00.0', 7);
      for (let i = 0; i < 10; i++) r.map(3, 0x100000 + i * K4, 0x500000 + i * K4, K4);
      r.map(7, 0x100000, 0x600000, K4);
      for (let i = 0; i < 10; i++) r.unmap(3, 0x100000 + i * K4, K4);
      r.unmap(7, 0x100000, K4);
      r.finish();
    }
    assert.equal(strict.driver.stats.invalidations.iotlbPage, 11);
    assert.equal(strict.driver.stats.invalidations.iotlbDomain, 0);
    assert.equal(strict.driver.stats.flushes, 0);
    assert.deepEqual(lazy.iotlb().slice(1), ['domain 3', 'domain 3', 'domain 3', 'domain 7']);
    assert.equal(lazy.driver.stats.flushes, 4);
    assert.equal(lazy.driver.stats.invalidations.iotlbPage, 0);
    for (const r of [strict, lazy]) assert.deepEqual(r.dma('00:03.0', 0x100000), fault(0x06));
  });

  test('lazy: a cached translation may outlive its unmap until the flush, then the page faults', () => {
    const r = new Rig({}, { policy: 'lazy', flushQueue: 256 });
    r.attach('00:03.0', 3);
    r.map(3, 0x10000, 0x500000, K4);
    assert.deepEqual(r.dma('00:03.0', 0x10000), ok(0x500000));
    r.unmap(3, 0x10000, K4);
    assert.deepEqual(r.dma('00:03.0', 0x10000), ok(0x500000), 'stale, but allowed until the flush');
    r.finish();
    assert.deepEqual(r.dma('00:03.0', 0x10000), fault(0x06));
  });

  test('lazy: a map reusing an IOVA still in the flush queue flushes first, so the new mapping is seen', () => {
    const r = new Rig({}, { policy: 'lazy' });
    r.attach('00:03.0', 3);
    r.map(3, 0x10000, 0x500000, K4);
    assert.deepEqual(r.dma('00:03.0', 0x10000), ok(0x500000));
    r.unmap(3, 0x10000, K4);
    r.map(3, 0x10000, 0x600000, K4);
    assert.equal(r.driver.stats.reuseFlushes, 1);
    assert.deepEqual(r.dma('00:03.0', 0x10000), ok(0x600000));
    // A table freed by a lazy unmap also waits: mapping under its cleared parent flushes first.
    r.map(3, 0x400000, 0x700000, M2, 'rw');
    r.unmap(3, 0x400000, M2);
    const freedBefore = r.driver.stats.tablePagesFreed;
    r.map(3, 0x401000, 0x800000, K4);
    assert.equal(r.driver.stats.reuseFlushes, 2);
    assert.ok(r.driver.stats.tablePagesFreed >= freedBefore);
  });

  test('IH: the register path sets IH = 1 when no table was freed, 0 when one was; the queue path always carries 0 (Linux qi_flush_iotlb drops it)', () => {
    const reg = new Rig({}, { policy: 'strict', invalidation: 'register', superpages: false });
    const qi = new Rig({}, { policy: 'strict', superpages: false });
    for (const r of [reg, qi]) {
      r.attach('00:03.0', 3);
      r.map(3, 0x200000, 0x400000, M2 + K4);
      r.unmap(3, 0x400000, K4); // no table freed
      r.unmap(3, 0x200000, M2); // the level-1 table goes
    }
    assert.deepEqual(reg.iotlb().slice(1), ['page 3 0x400000 0 1', 'page 3 0x200000 9 0']);
    assert.deepEqual(qi.iotlb().slice(1), ['page 3 0x400000 0 0', 'page 3 0x200000 9 0']);
    for (const r of [reg, qi]) assert.equal(r.driver.stats.tablePagesFreed, 1);
  });
});

// -------------------------------------------------------------------- tables

describe('page tables', () => {
  test('superpages where iova, gpa and length allow (Linux hardware_largepage_caps); 4 KiB otherwise', () => {
    const r = new Rig({ ram: 0x100000000n });
    r.attach('00:03.0', 3);
    r.map(3, 0x40000000, 0x40000000, G1 + 2 * M2 + K4); // 1 GiB + two 2 MiB + one 4 KiB
    assert.deepEqual(r.driver.stats.leaves, { k4: 1, m2: 2, g1: 1 });
    assert.deepEqual(r.dma('00:03.0', 0x7ffff000), ok(0x7ffff000));
    assert.deepEqual(r.dma('00:03.0', 0x80123000), ok(0x80123000));
    assert.deepEqual(r.dma('00:03.0', 0x80400000), ok(0x80400000));
    // gpa not 2 MiB aligned: 4 KiB leaves only.
    r.map(3, 0x200000, 0x1001000, M2);
    assert.deepEqual(r.driver.stats.leaves, { k4: 513, m2: 2, g1: 1 });
    // Starting off a 2 MiB boundary: 4 KiB up to it, then a superpage, then 4 KiB.
    r.map(3, 0x1ff000, 0x2ff000, K4); // abuts the mapping above (0x200000..)
    r.map(3, 0x600000 - K4, 0x800000 - K4, K4 + M2 + K4);
    assert.deepEqual(r.driver.stats.leaves, { k4: 514 + 2, m2: 3, g1: 1 });
    assert.deepEqual(r.dma('00:03.0', 0x600010), ok(0x800010));
    const off = new Rig({ ram: 0x100000000n }, { superpages: false });
    off.attach('00:03.0', 3);
    off.map(3, 0x40000000, 0x40000000, 2 * M2);
    assert.deepEqual(off.driver.stats.leaves, { k4: 1024, m2: 0, g1: 0 });
  });

  test('an unmap covering part of a superpage removes it whole', () => {
    const r = new Rig({}, { policy: 'strict' });
    r.attach('00:03.0', 3);
    r.map(3, 0x400000, 0x800000, 2 * M2);
    assert.deepEqual(r.driver.stats.leaves.m2, 2);
    r.unmap(3, 0x401000, K4);
    assert.equal(r.driver.stats.unmapBytes, M2);
    assert.deepEqual(r.dma('00:03.0', 0x400000), fault(0x06));
    assert.deepEqual(r.dma('00:03.0', 0x5ff000), fault(0x06));
    assert.deepEqual(r.dma('00:03.0', 0x600000), ok(0xa00000));
    assert.deepEqual(r.iotlb().slice(1), ['page 3 0x400000 9 0']);
  });

  test('a fully covered table is freed after its invalidation, reused, and zeroed before it is linked again', () => {
    const r = new Rig({}, { policy: 'strict', superpages: false });
    r.attach('00:03.0', 3);
    r.map(3, 0x200000, 0x400000, M2);
    const pages = r.driver.stats.tablePages;
    r.unmap(3, 0x200000, M2);
    assert.equal(r.driver.stats.tablePagesFreed, 1);
    // The freed page (still full of old entries in memory) comes back for the next table.
    const from = r.ops.length;
    r.map(3, 0x600000, 0x900000, K4);
    assert.equal(r.driver.stats.tablePages, pages + 1);
    const zeroing = r.ops.slice(from).find((o) => o.op === 'mem' && o.data.length === 4096);
    assert.ok(zeroing && zeroing.op === 'mem' && zeroing.data.every((b) => b === 0), 'the stale entries are cleared');
    assert.deepEqual(r.dma('00:03.0', 0x600000), ok(0x900000));
    assert.deepEqual(r.dma('00:03.0', 0x601000), fault(0x06), 'an old entry must not reappear');
    assert.deepEqual(r.dma('00:03.0', 0x200000), fault(0x06));
  });

  test('a superpage over an empty table left by an earlier unmap frees it and flushes the range (switch_to_super_page)', () => {
    const r = new Rig({ cm: false }, { policy: 'strict' });
    r.attach('00:03.0', 3);
    r.map(3, 0x400000, 0x800000, K4);
    assert.deepEqual(r.dma('00:03.0', 0x400000), ok(0x800000));
    r.unmap(3, 0x400000, K4); // the level-1 table stays (only part of it was covered)
    const from = r.invs.length;
    r.map(3, 0x400000, 0xa00000, M2);
    assert.deepEqual(r.iotlb(from), ['page 3 0x400000 9 0']);
    assert.equal(r.driver.stats.tablePagesFreed, 1);
    assert.deepEqual(r.dma('00:03.0', 0x400000), ok(0xa00000));
    assert.deepEqual(r.dma('00:03.0', 0x5ff000), ok(0xbff000));
  });

  test('unmaps are cut where the iommu core cuts them (iommu_pgsize): one invalidation per run of one chunk size', () => {
    const sp = new Rig({}, { policy: 'strict' });
    const nosp = new Rig({}, { policy: 'strict', superpages: false });
    const from: number[] = [], inv: number[] = [];
    for (const r of [sp, nosp]) {
      r.attach('00:03.0', 3);
      r.map(3, 0x1000, 0x1002000, 4 * M2 - K4); // iova and gpa differ mod 2 MiB: 4 KiB leaves only
      from.push(r.ops.length);
      inv.push(r.invs.length);
      r.unmap(3, 0x1000, 2 * M2 - K4);
    }
    // With 2 MiB in the page-size bitmap: [4K, 2M) as 511 pages (AM 9 from pfn 1), then [2M, 4M) as one
    // 2 MiB chunk (its table freed). The unit applies AM to the address's low bits.
    assert.deepEqual(sp.descriptors(from[0]), [[0x300f2n, 0x1009n], [0x300f2n, 0x200009n]]);
    assert.deepEqual(sp.iotlb(inv[0]), ['page 3 0x0 9 0', 'page 3 0x200000 9 0']);
    // 4 KiB only: one chunk, 1023 pages from pfn 1: AM 10.
    assert.deepEqual(nosp.descriptors(from[1]), [[0x300f2n, 0x100an]]);
    assert.equal(sp.driver.stats.tablePagesFreed, 1);
    assert.equal(nosp.driver.stats.tablePagesFreed, 1);
  });

  test('the queue wraps after 256 slots and keeps going (no queue error)', () => {
    const r = new Rig({ cm: true });
    r.attach('00:03.0', 3);
    for (let i = 0; i < 300; i++) r.map(3, 0x100000 + i * K4, 0x500000 + i * K4, K4);
    const s = r.driver.stats.invalidations;
    assert.equal(s.wait, 2 + 2 + 300);
    assert.equal(r.reg(FSTS), 0n);
    assert.equal(r.invs.filter((e) => e.cache === 'iotlb' || e.cache === 'context').length, s.wait);
    assert.equal(r.iommu.mmioRead(0x88, 8), BigInt(((s.wait * 2) % 256) * 16));
    assert.deepEqual(r.dma('00:03.0', 0x100000 + 299 * K4), ok(0x500000 + 299 * K4));
  });
});

// -------------------------------------------------------------------- errors

describe('errors: a workload the driver cannot lower is refused with its line', () => {
  test('domain 0 under caching mode; allowed without', () => {
    const r = new Rig({ cm: true });
    throwsVtd(() => r.attach('00:03.0', 0), 'TRACE', /line \d+: attach: domain 0 is reserved under caching mode/);
    throwsVtd(() => r.map(0, 0, 0, K4), 'TRACE', /map: domain 0 is reserved/);
    const plain = new Rig({ cm: false });
    plain.attach('00:03.0', 0);
    plain.map(0, 0x1000, 0x1000, K4);
    assert.deepEqual(plain.dma('00:03.0', 0x1000), ok(0x1000));
  });

  test('a domain id beyond CAP.ND', () => {
    const d = new GuestDriver(header());
    throwsVtd(() => d.lower({ op: 'attach', sid: 0x18, domain: 0x10000, line: 5, index: 0 }, () => {}), 'TRACE', /line 5: attach: domain 65536 is beyond the 65536 domain ids/);
  });

  test('unaligned iova, gpa or length; gpa outside RAM; iova beyond the address width', () => {
    const r = new Rig({ aw: 39 });
    throwsVtd(() => r.map(3, 0x1800, 0x1000, K4), 'TRACE', /map: iova 0x1800, gpa 0x1000 and len 0x1000 must be multiples of 4 KiB/);
    throwsVtd(() => r.map(3, 0x1000, 0x1010, K4), 'TRACE', /multiples of 4 KiB/);
    throwsVtd(() => r.map(3, 0x1000, 0x1000, 100), 'TRACE', /multiples of 4 KiB/);
    throwsVtd(() => r.unmap(3, 0x1000, 0x800), 'TRACE', /unmap: iova 0x1000 and len 0x800 must be multiples/);
    throwsVtd(() => r.map(3, 0x1000, 0x3fff000, 2 * K4), 'TRACE', /gpa range \[0x3fff000, 0x4001000\) is outside guest RAM \[0, 0x4000000\)/);
    throwsVtd(() => r.map(3, (1n << 39n) - 0x1000n, 0x1000, 2 * K4), 'TRACE', /beyond the domain's 39-bit address width/);
  });

  test('a map overlapping a mapping of its domain (4 KiB or superpage)', () => {
    const r = new Rig();
    r.map(3, 0x10000, 0x10000, 4 * K4);
    r.map(3, 0x400000, 0x400000, M2);
    throwsVtd(() => r.map(3, 0xe000, 0x20000, 4 * K4), 'TRACE', /map: domain 3 already maps iova 0x10000: the range overlaps an existing mapping/);
    throwsVtd(() => r.map(3, 0x5ff000, 0x20000, K4), 'TRACE', /domain 3 already maps iova 0x5ff000/);
    r.map(4, 0x10000, 0x10000, 4 * K4); // another domain: fine
  });

  test('an unmap of pages that are not mapped names the domain and the iova', () => {
    const r = new Rig();
    throwsVtd(() => r.unmap(3, 0x10000, K4), 'TRACE', /unmap: domain 3 has nothing mapped at iova 0x10000/);
    r.map(3, 0x10000, 0x10000, 2 * K4);
    throwsVtd(() => r.unmap(3, 0x10000, 3 * K4), 'TRACE', /unmap: domain 3 has nothing mapped at iova 0x12000/);
    r.unmap(3, 0x10000, 2 * K4);
    throwsVtd(() => r.unmap(3, 0x11000, K4), 'TRACE', /nothing mapped at iova 0x11000/);
  });

  test('the page pool running out names its limit', () => {
    const r = new Rig({ ram: 0x200000n }); // 2 MiB: a 64-page pool
    throwsVtd(() => {
      for (let i = 0; i < 100; i++) r.map(3, BigInt(i) << 30n, 0x1000, K4); // a level-2 and a level-1 table each
    }, 'GUEST_MEMORY', /page pool \[0x1c0000, 0x200000\) \(the top eighth of RAM, 64 pages\) is exhausted/);
  });

  test('bad options are ARGUMENT errors', () => {
    throwsVtd(() => new GuestDriver(header(), { flushQueue: 0 }), 'ARGUMENT', /flushQueue must be a positive integer/);
    throwsVtd(() => new GuestDriver(header(), { policy: 'eager' as 'lazy' }), 'ARGUMENT', /policy must be "strict" or "lazy"/);
    throwsVtd(() => new GuestDriver(header(), { invalidation: 'mmio' as 'qi' }), 'ARGUMENT', /invalidation must be "qi" or "register"/);
    throwsVtd(() => parseLowerArgs(['a.jsonl', '--policy', 'eager']), 'ARGUMENT', /--policy takes strict or lazy/);
    throwsVtd(() => parseLowerArgs(['a.jsonl', '--flush-queue', 'x']), 'ARGUMENT', /--flush-queue takes a positive integer/);
    throwsVtd(() => parseLowerArgs(['a.jsonl', 'b.jsonl']), 'ARGUMENT', /one trace file/);
    throwsVtd(() => parseLowerArgs(['a.jsonl', '--nope']), 'ARGUMENT', /unknown option --nope/);
    assert.deepEqual(parseLowerArgs(['-', '--policy', 'strict', '--flush-queue', '8', '--register-invalidation', '--no-superpages']),
      { file: '-', opts: { policy: 'strict', flushQueue: 8, invalidation: 'register', superpages: false } });
  });
});

// -------------------------------------------------------------------- text

const WORKLOAD = `{"vtd-trace":1,"iommu":{"aw":48,"cm":true,"ram":"0x8000000"},"devices":["00:03.0","01:00.0"]}
{"op":"rd","reg":"0x1c","size":4}
# comment
{"op":"attach","sid":"00:03.0","domain":3}
{"op":"map","domain":3,"iova":"0xffffe000","gpa":"0x4ca000","len":8192,"perm":"rw"}
{"op":"dma","sid":"00:03.0","iova":"0xfffff010","len":4,"dir":"w"}
{"op":"mem","gpa":"0x1001","hex":"abcd"}
{"op":"mrd","gpa":"0x1000","len":4}
{"op":"unmap","domain":3,"iova":"0xfffff000","len":4096}
{"op":"dma","sid":"00:03.0","iova":"0xfffff010","len":4,"dir":"w"}
{"op":"rd","reg":"0x34","size":4,"mask":"0x3"}
`;

describe('lowered traces as text', () => {
  test('formatLowered: q for whole aligned quadwords, hex otherwise, an index on demand', () => {
    assert.equal(formatLowered({ op: 'mem', gpa: 0x1000n, data: new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0x80]) }), '{"op":"mem","gpa":"0x1000","q":["0x8000000000000001"]}');
    assert.equal(formatLowered({ op: 'mem', gpa: 0x1004n, data: new Uint8Array(8) }), '{"op":"mem","gpa":"0x1004","hex":"0000000000000000"}');
    assert.equal(formatLowered({ op: 'mem', gpa: 0x1000n, data: new Uint8Array([0xab, 0xcd]) }), '{"op":"mem","gpa":"0x1000","hex":"abcd"}');
    assert.equal(formatLowered({ op: 'wr', reg: 0x18, size: 4, val: 0x84000000n }, 7), '{"i":7,"op":"wr","reg":"0x18","size":4,"val":"0x84000000"}');
  });

  test('lowerTrace: same header, raw ops unchanged, boot before the first workload op; it replays as the workload says', () => {
    const text = lowerTrace(parseTrace(WORKLOAD));
    const lowered = parseTrace(text);
    assert.deepEqual(lowered.header.config, parseTrace(WORKLOAD).header.config);
    assert.deepEqual(lowered.header.devices, [0x18, 0x100]);
    assert.deepEqual(lowered.ops[0], { op: 'rd', line: 2, index: 0, reg: 0x1c, size: 4 }, 'the raw op before the workload stays first');
    assert.equal(lowered.ops.filter((o) => o.op === 'attach' || o.op === 'map' || o.op === 'unmap').length, 0);
    const results = replayTrace(lowered).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(results.map(({ i: _i, ...rest }) => rest), [
      { op: 'rd', val: '0x0' },
      { op: 'dma', ok: true, gpa: '0x4cb010' },
      { op: 'mrd', hex: '00abcd00' },
      { op: 'dma', ok: false, fault: '0x05' },
      { op: 'rd', val: '0x2' }, // FSTS.PPF: the fault was recorded
    ]);
    // Lowering the lowered trace changes nothing (no workload ops left).
    assert.equal(lowerTrace(lowered), text.split('\n').filter((l) => !l.startsWith('#')).join('\n'));
  });

  test('vtd lower prints the lowered trace; bad usage exits 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtd-lower-'));
    const file = join(dir, 'w.jsonl');
    writeFileSync(file, WORKLOAD);
    const cli = (args: string[], input?: string) => spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e',
      `import { main } from ${JSON.stringify(join(REPO, 'src', 'cli', 'main.ts'))}; process.exitCode = await main(${JSON.stringify(args)});`],
    { input, encoding: 'utf8', cwd: REPO });
    const a = cli(['lower', file]);
    assert.equal(a.status, 0, a.stderr);
    assert.equal(a.stdout, lowerTrace(parseTrace(WORKLOAD)));
    const b = cli(['lower', '-', '--register-invalidation', '--policy', 'strict'], WORKLOAD);
    assert.equal(b.status, 0, b.stderr);
    assert.equal(b.stdout, lowerTrace(parseTrace(WORKLOAD), { invalidation: 'register', policy: 'strict' }));
    assert.equal(cli(['lower', file, '--flush-queue', '0']).status, 2);
    const bad = cli(['lower', '-'], WORKLOAD.replace('"len":8192', '"len":8000'));
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /line 5: map: .* must be multiples of 4 KiB/);
  });
});

// -------------------------------------------------------------------- property

/**
 * Random consistent workloads (maps of random sizes and alignments into
 * several domains, unmaps of what was mapped or of parts of it, attaches and
 * re-attaches), with probe DMAs after every op: the unit's answer must be what
 * the workload says is mapped. Under the lazy policy an unmapped page may
 * still translate to its old frame, but only until its domain's flush.
 */
describe('property: the unit translates what the workload mapped', () => {
  const DEVS = ['00:03.0', '00:04.0', '01:00.0'];
  const DOMS = [3, 4, 7];
  type Step =
    | { k: 'attach'; dev: number; dom: number }
    | { k: 'map'; dom: number; at: number; pages: number; huge: boolean; gpaPick: number; perm: 'r' | 'w' | 'rw' }
    | { k: 'unmap'; dom: number; pick: number; part: number }
    | { k: 'remap'; dom: number; pick: number; gpaPick: number };
  const step: fc.Arbitrary<Step> = fc.oneof(
    { weight: 1, arbitrary: fc.record({ k: fc.constant('attach' as const), dev: fc.nat(2), dom: fc.nat(2) }) },
    { weight: 4, arbitrary: fc.record({ k: fc.constant('map' as const), dom: fc.nat(2), at: fc.nat(0x1ff), pages: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 5, max: 700 })), huge: fc.boolean(), gpaPick: fc.nat(0x3fff), perm: fc.constantFrom('r' as const, 'w' as const, 'rw' as const) }) },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('unmap' as const), dom: fc.nat(2), pick: fc.nat(), part: fc.nat(3) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('remap' as const), dom: fc.nat(2), pick: fc.nat(), gpaPick: fc.nat(0x3fff) }) },
  );
  const config = fc.record({
    cm: fc.boolean(), aw: fc.constantFrom<39 | 48>(39, 48), policy: fc.constantFrom<'strict' | 'lazy'>('strict', 'lazy'),
    flushQueue: fc.integer({ min: 1, max: 5 }), invalidation: fc.constantFrom<'qi' | 'register'>('qi', 'register'), superpages: fc.boolean(),
  });

  test('after every op, probe DMAs agree with the workload (stale only until the flush under lazy)', () => {
    fc.assert(fc.property(config, fc.array(step, { minLength: 1, maxLength: 40 }), (c, steps) => {
      const r = new Rig({ aw: c.aw, cm: c.cm, ram: 0x8000000n, devices: DEVS }, c);
      const lazy = r.driver.policy === 'lazy';
      /** Per domain: page → [gpa page, perm]. */
      const mapped = DOMS.map(() => new Map<number, [number, string]>());
      /** Per domain: the ranges mapped, as [first page, pages] (what unmaps pick from). */
      const ranges = DOMS.map(() => [] as [number, number][]);
      /** Per domain: ranges unmapped so far (what remaps pick from). */
      const unmapped = DOMS.map(() => [] as [number, number][]);
      /** Per domain: pages unmapped since the last flush, with their old frame (lazy). */
      const stale = DOMS.map(() => new Map<number, number>());
      const queued = DOMS.map(() => 0);
      const devDom = DEVS.map(() => -1);
      const probes = new Set<number>();
      const flush = (d: number): void => { stale[d].clear(); queued[d] = 0; };
      const check = (): void => {
        for (let dev = 0; dev < DEVS.length; dev++) {
          const d = devDom[dev];
          for (const p of probes) {
            for (const dir of ['r', 'w'] as const) {
              const got = r.dma(DEVS[dev], p * K4 + 8, dir);
              const where = `${DEVS[dev]} page 0x${p.toString(16)} ${dir}`;
              if (d < 0) {
                assert.equal(got.ok, false, where);
                continue;
              }
              const m = mapped[d].get(p);
              if (m && m[1].includes(dir)) assert.deepEqual(got, ok(m[0] * K4 + 8), where);
              else if (m) assert.deepEqual(got, fault(dir === 'w' ? 5 : 6), where);
              else if (got.ok) {
                assert.ok(lazy && stale[d].has(p), `${where}: translated to 0x${got.gpa.toString(16)} but nothing is mapped`);
                assert.equal(got.gpa, BigInt(stale[d].get(p)! * K4 + 8), where);
              } else assert.equal(got.fault, dir === 'w' ? 5 : 6, where);
            }
          }
        }
      };
      let flushes = 0, reuseFlushes = 0;
      // Every device starts in its own domain (so translations get cached); attaches move them later.
      for (let i = 0; i < DEVS.length; i++) {
        r.attach(DEVS[i], DOMS[i]);
        devDom[i] = i;
      }
      for (const s of steps) {
        if (s.k === 'attach') {
          const old = devDom[s.dev];
          r.attach(DEVS[s.dev], DOMS[s.dom]);
          // Moving a device flushes its old domain (domain-selective, old DID): nothing of it stays cached.
          if (old >= 0 && old !== s.dom) stale[old].clear();
          devDom[s.dev] = s.dom;
        } else if (s.k === 'map' || s.k === 'remap') {
          const d = s.dom;
          let first = 0, pages = 0, gpa = 0x1000 + (s.gpaPick * 3) % 0x5000; // below the pool (0x7000000)
          if (s.k === 'remap') {
            // The same IOVAs again (often still in the flush queue), another frame.
            if (unmapped[d].length === 0) continue;
            [first, pages] = unmapped[d][s.pick % unmapped[d].length];
          } else if (s.huge) {
            first = (s.at % 8) * 512 + 0x8000;
            pages = 512 * (1 + (s.pages % 2)) + (s.pages % 3);
            gpa = 512 * (1 + (s.gpaPick % 40));
          } else {
            first = s.at * 4;
            pages = s.pages;
          }
          let free = true, reused = false;
          for (let p = first; p < first + pages; p++) {
            if (mapped[d].has(p)) free = false;
            if (stale[d].has(p)) reused = true;
          }
          if (!free) continue;
          r.map(DOMS[d], first * K4, gpa * K4, pages * K4, s.k === 'map' ? s.perm : 'rw');
          // Reusing an IOVA still in the flush queue flushes the domain first.
          if (reused) {
            flush(d);
            flushes++;
            reuseFlushes++;
          }
          for (let p = first; p < first + pages; p++) {
            mapped[d].set(p, [gpa + p - first, s.k === 'map' ? s.perm : 'rw']);
            probes.add(p);
          }
          ranges[d].push([first, pages]);
        } else {
          const d = s.dom;
          if (ranges[d].length === 0) continue;
          const k = s.pick % ranges[d].length;
          const [first, pages] = ranges[d][k];
          // The whole range, or (4 KiB leaves only) its first or last part.
          let a = first, n = pages;
          if (!c.superpages && pages > 1 && s.part > 0) {
            const half = Math.ceil(pages / 2);
            if (s.part === 1) n = half;
            else {
              a = first + half;
              n = pages - half;
            }
          }
          r.unmap(DOMS[d], a * K4, n * K4);
          unmapped[d].push([a, n]);
          for (let p = a; p < a + n; p++) {
            if (lazy) stale[d].set(p, mapped[d].get(p)![0]);
            mapped[d].delete(p);
          }
          if (n === pages) ranges[d].splice(k, 1);
          else ranges[d][k] = a === first ? [first + n, pages - n] : [first, pages - n];
          if (lazy && ++queued[d] >= c.flushQueue) {
            flush(d);
            flushes++;
          }
        }
        check();
      }
      assert.equal(r.driver.stats.reuseFlushes, reuseFlushes);
      assert.equal(r.driver.stats.flushes, flushes);
      r.finish();
      for (const st of stale) st.clear();
      check();
      assert.equal(r.reg(FSTS) & 0x10n, 0n, 'no invalidation-queue error');
    }), { numRuns: 150 });
  });
});
