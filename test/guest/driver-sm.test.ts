/**
 * The guest-driver model in scalable mode (header `sm`): what it writes is
 * read back by a small walker written here from the VT-d digest (§3.4-§3.6,
 * §4, §7.5) and the x86-64 paging format, independent of src/guest/layout.ts
 * and of the core, so these tests hold before the core's scalable mode runs
 * the lowered traces. Descriptor sequences are those of Linux 6.x
 * (drivers/iommu/intel/pasid.c, iommu.c; docs/workloads/driver.md).
 *
 *   node --import tsx --test test/guest/driver-sm.test.ts
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { VtdError } from '../../src/errors.js';
import { parseRid, parseTrace, type TraceHeader } from '../../src/trace/parse.js';
import { GuestDriver, lowerTrace, type DriverOptions, type LoweredOp, type WorkloadOp } from '../../src/guest/driver.js';

const ADDR = 0x000ffffffffff000n;

function header(iommu: Record<string, unknown>, devices = ['00:03.0', '01:10.0']): TraceHeader {
  return parseTrace(JSON.stringify({ 'vtd-trace': 1, iommu: { aw: 48, ram: '0x4000000', ...iommu }, devices })).header;
}

/** Guest memory and registers as the lowered ops leave them, and the descriptors each IQT write submitted. */
class Guest {
  readonly mem = new Map<bigint, bigint>();
  readonly regs = new Map<number, bigint>();
  /** Non-wait descriptors, as "qw0 qw1 qw2 qw3" hex, in submission order. */
  readonly descs: string[] = [];
  /** Every submitted slot was 32 bytes with QW2 = QW3 = 0 for types 1-5, and every wait wrote its status. */
  private tail = 0n;
  readonly driver: GuestDriver;
  private line = 2;
  readonly emit = (op: LoweredOp): void => {
    if (op.op === 'mem') {
      assert.equal(op.gpa % 8n, 0n);
      const dv = new DataView(op.data.buffer, op.data.byteOffset, op.data.byteLength);
      for (let k = 0; k < op.data.length; k += 8) this.mem.set(op.gpa + BigInt(k), dv.getBigUint64(k, true));
      return;
    }
    this.regs.set(op.reg, op.val);
    if (op.reg === 0x88 && this.regs.has(0x90)) {
      const iqa = this.regs.get(0x90)!;
      assert.equal(iqa & 0x800n, 0x800n, 'IQA.DW = 1');
      const base = iqa & ~0xfffn, size = 4096n << (iqa & 7n);
      for (let at = this.tail; at !== op.val; at = (at + 32n) % size) {
        const q = [0n, 1n, 2n, 3n].map((i) => this.q(base + at + 8n * i));
        if ((q[0] & 0xfn) === 5n) continue;
        this.descs.push(q.map((x) => '0x' + x.toString(16)).join(' '));
      }
      this.tail = op.val;
    }
  };

  constructor(readonly h: TraceHeader, opts: DriverOptions = {}) {
    this.driver = new GuestDriver(h, opts);
    this.driver.init(this.emit);
  }

  q(a: bigint): bigint {
    return this.mem.get(a) ?? 0n;
  }

  lower(op: Record<string, unknown>): void {
    this.driver.lower({ ...op, line: this.line++, index: 0 } as unknown as WorkloadOp, this.emit);
  }

  /**
   * Scalable-mode walk of a request without PASID (digest §3.6 "lookup"):
   * root half → context → RID_PASID → directory → PASID entry → tables.
   */
  walk(sid: string, iova: bigint, write: boolean): { gpa: bigint; pgtt: number; did: number } | string {
    const rtaddr = this.regs.get(0x20)!;
    if (((rtaddr >> 10n) & 3n) !== 1n) return 'TTM is not 01';
    const s = parseRid(sid, 0, 'sid'), bus = BigInt(s >> 8), devfn = s & 0xff;
    const root = this.q((rtaddr & ~0xfffn) + 16n * bus + (devfn >= 128 ? 8n : 0n));
    if ((root & 1n) === 0n) return 'root half not present';
    const ce = (root & ADDR) + 32n * BigInt(devfn & 0x7f);
    const c0 = this.q(ce), c1 = this.q(ce + 8n);
    if ((c0 & 1n) === 0n) return 'context not present';
    const pasid = c1 & 0xfffffn;
    if ((pasid >> 6n) >= 1n << (((c0 >> 9n) & 7n) + 7n)) return 'RID_PASID beyond the directory';
    const de = this.q((c0 & ADDR) + 8n * (pasid >> 6n));
    if ((de & 1n) === 0n) return 'directory entry not present';
    const pe = (de & ADDR) + 64n * (pasid & 63n);
    const p = [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n].map((i) => this.q(pe + 8n * i));
    if ((p[0] & 1n) === 0n) return 'PASID entry not present';
    const pgtt = Number((p[0] >> 6n) & 7n), did = Number(p[1] & 0xffffn);
    if (pgtt === 1) {
      // x86-64 paging: P bit 0, RW bit 1, PS bit 7 at levels 2 and 3.
      let table = p[2] & ADDR;
      for (let level = ((p[2] >> 2n) & 3n) === 1n ? 5 : 4; ; level--) {
        const shift = BigInt(12 + 9 * (level - 1));
        const e = this.q(table + 8n * ((iova >> shift) & 0x1ffn));
        if ((e & 1n) === 0n) return `first-stage level ${level} not present`;
        if (write && (e & 2n) === 0n) return `first-stage level ${level} not writable`;
        if ((e & 4n) === 0n) return `first-stage level ${level} without US`;
        if (level === 1 || (e & 0x80n) !== 0n) return { gpa: (e & ADDR & ~((1n << shift) - 1n)) | (iova & ((1n << shift) - 1n)), pgtt, did };
        table = e & ADDR;
      }
    }
    if (pgtt === 2) {
      let table = p[0] & ADDR;
      for (let level = Number((p[0] >> 2n) & 7n) + 2; ; level--) {
        const shift = BigInt(12 + 9 * (level - 1));
        const e = this.q(table + 8n * ((iova >> shift) & 0x1ffn));
        if ((e & (write ? 2n : 1n)) === 0n) return `second-stage level ${level} lacks ${write ? 'W' : 'R'}`;
        if (level === 1 || (e & 0x80n) !== 0n) return { gpa: (e & ADDR & ~((1n << shift) - 1n)) | (iova & ((1n << shift) - 1n)), pgtt, did };
        table = e & ADDR;
      }
    }
    return `PGTT ${pgtt}`;
  }
}

const hexq = (...q: bigint[]): string => q.map((x) => '0x' + x.toString(16)).join(' ');

describe('scalable-mode lowering', () => {
  test('boot: IQA with DW = 1 and QS = 1, RTADDR with TTM = 01, then global context, PASID-cache and IOTLB invalidations', () => {
    const g = new Guest(header({ sm: true }));
    const l = g.driver.layout;
    assert.equal(g.regs.get(0x90), l.queue | 0x801n);
    assert.equal(g.regs.get(0x20), l.rootTable | 0x400n);
    assert.equal(g.regs.get(0x18), 0x84000000n, 'TE and QIE');
    assert.deepEqual(g.descs, [hexq(0x11n, 0n, 0n, 0n), hexq(0x37n, 0n, 0n, 0n), hexq(0xd2n, 0n, 0n, 0n)]);
    assert.equal(l.queue + 0x2000n, l.rootTable, 'a two-page queue under the root table');
  });

  test('first stage (flts): PASID entry PGTT 001 at RID_PASID 0, x86 tables, PASID-based IOTLB invalidations on unmap', () => {
    const g = new Guest(header({ sm: true, flts: true }), { policy: 'strict' });
    g.lower({ op: 'attach', sid: 0x18, domain: 1 });
    g.lower({ op: 'attach', sid: 0x180, domain: 2 }); // 01:10.0, devfn 0x80: the upper context table
    g.lower({ op: 'map', domain: 1, iova: 0x10000n, gpa: 0x200000n, len: 0x2000, perm: 'rw' });
    g.lower({ op: 'map', domain: 1, iova: 0x400000n, gpa: 0x600000n, len: 0x200000, perm: 'r' });
    g.lower({ op: 'map', domain: 2, iova: 0x10000n, gpa: 0x300000n, len: 0x1000, perm: 'w' });
    assert.deepEqual(g.walk('00:03.0', 0x11234n, true), { gpa: 0x201234n, pgtt: 1, did: 1 });
    assert.deepEqual(g.walk('00:03.0', 0x5ff008n, false), { gpa: 0x7ff008n, pgtt: 1, did: 1 }, 'a 2 MiB leaf');
    assert.equal(g.walk('00:03.0', 0x400000n, true), 'first-stage level 2 not writable');
    assert.deepEqual(g.walk('01:10.0', 0x10010n, true), { gpa: 0x300010n, pgtt: 1, did: 2 });
    assert.equal(g.walk('01:10.0', 0x11000n, false), 'first-stage level 1 not present');
    // Leaf flags: P, US, A always; RW and D for a writable mapping (Linux __domain_mapping, first level).
    assert.deepEqual(g.descs.length, 3, 'no map-time invalidation without caching mode');
    g.lower({ op: 'unmap', domain: 1, iova: 0x10000n, len: 0x2000 });
    assert.equal(g.walk('00:03.0', 0x10000n, false), 'first-stage level 1 not present');
    // Type 6, G = 11, DID 1, PASID 0, ADDR 0x10000, AM 1, IH 1 (no table freed); QW2 = QW3 = 0.
    assert.deepEqual(g.descs.slice(3), [hexq(0x10036n, 0x10041n, 0n, 0n)]);
  });

  test('first-stage entry words are the x86-64 format Linux writes', () => {
    const g = new Guest(header({ sm: true, flts: true }), { policy: 'strict' });
    g.lower({ op: 'attach', sid: 0x18, domain: 1 });
    g.lower({ op: 'map', domain: 1, iova: 0x0n, gpa: 0x200000n, len: 0x1000, perm: 'rw' });
    g.lower({ op: 'map', domain: 1, iova: 0x1000n, gpa: 0x300000n, len: 0x1000, perm: 'r' });
    const entries = [...g.mem.entries()].filter(([, v]) => v === 0x200067n || v === 0x300025n);
    assert.equal(entries.length, 2, 'leaves P|RW|US|A|D (0x67) and P|US|A (0x25)');
    // Non-leaf entries: the next table | P|RW|US|A (0x27).
    const nonLeaf = [...g.mem.values()].filter((v) => (v & 0xfffn) === 0x27n);
    assert.equal(nonLeaf.length, 3, 'levels 4, 3 and 2 point down with 0x27');
  });

  test('second stage (sm only): PGTT 010 with the AW of the tables; IOTLB descriptors in 256-bit slots', () => {
    const g = new Guest(header({ sm: true }), { policy: 'lazy', flushQueue: 1 });
    g.lower({ op: 'attach', sid: 0x18, domain: 3 });
    g.lower({ op: 'map', domain: 3, iova: 0x1000n, gpa: 0x5000n, len: 0x1000, perm: 'rw' });
    assert.deepEqual(g.walk('00:03.0', 0x1010n, true), { gpa: 0x5010n, pgtt: 2, did: 3 });
    g.lower({ op: 'unmap', domain: 3, iova: 0x1000n, len: 0x1000 });
    // The flush queue of one entry flushes at once: domain-selective IOTLB (type 2) with DR, DW.
    assert.deepEqual(g.descs.slice(3), [hexq(0x300e2n, 0n, 0n, 0n)]);
  });

  test('moving a device: its RID_PASID entry is torn down (PASID cache, then all of PASID 0), the context entry stays', () => {
    const g = new Guest(header({ sm: true, flts: true }), { policy: 'strict' });
    g.lower({ op: 'attach', sid: 0x18, domain: 1 });
    g.lower({ op: 'map', domain: 4, iova: 0x1000n, gpa: 0x7000n, len: 0x1000, perm: 'rw' });
    const before = g.descs.length;
    g.lower({ op: 'attach', sid: 0x18, domain: 4 });
    // PASID-cache PASID-selective DID 1 (0x10017), PASID-based IOTLB all of PASID 0 in DID 1 (0x10026).
    assert.deepEqual(g.descs.slice(before), [hexq(0x10017n, 0n, 0n, 0n), hexq(0x10026n, 0n, 0n, 0n)]);
    assert.deepEqual(g.walk('00:03.0', 0x1000n, false), { gpa: 0x7000n, pgtt: 1, did: 4 });
  });

  test('caching mode: context flush with DID 0 and the PASID flushes after each new PASID entry; first stage stays lazy', () => {
    const g = new Guest(header({ sm: true, flts: true, cm: true }));
    assert.equal(g.driver.policy, 'lazy', 'caching mode does not force strict for first-stage domains');
    g.lower({ op: 'attach', sid: 0x18, domain: 1 });
    assert.deepEqual(g.descs.slice(3), [
      hexq(0x1800000031n, 0n, 0n, 0n), // context cache, device-selective, DID 0, SID 00:03.0
      hexq(0x100e2n, 0n, 0n, 0n), // IOTLB domain-selective DID 1
      hexq(0x10017n, 0n, 0n, 0n), // PASID cache, PASID 0 of DID 1
      hexq(0x10026n, 0n, 0n, 0n), // PASID-based IOTLB, all of PASID 0 in DID 1
    ]);
    const n = g.descs.length;
    g.lower({ op: 'map', domain: 1, iova: 0x1000n, gpa: 0x7000n, len: 0x1000, perm: 'rw' });
    assert.equal(g.descs.length, n, 'no map-time flush for first-stage tables');
    assert.equal(new GuestDriver(header({ sm: true, cm: true })).policy, 'strict', 'second stage under caching mode: strict');
  });

  test('aw 57 with flts: 5-level first stage (FSPM 01); header pasid sets PASIDE', () => {
    const g = new Guest(header({ aw: 57, sm: true, flts: true, pasid: true, ram: '0x8000000' }));
    g.lower({ op: 'attach', sid: 0x18, domain: 1 });
    g.lower({ op: 'map', domain: 1, iova: 1n << 50n, gpa: 0x3000n, len: 0x1000, perm: 'r' });
    assert.deepEqual(g.walk('00:03.0', (1n << 50n) + 8n, false), { gpa: 0x3008n, pgtt: 1, did: 1 });
    const ctx = [...g.mem.values()].find((v) => (v & 0xe0fn) === 0x409n);
    assert.ok(ctx !== undefined, 'a context entry with P, PASIDE and PDTS 2');
  });

  test('refusals: register invalidation in scalable mode, a non-canonical first-stage IOVA', () => {
    assert.throws(() => new GuestDriver(header({ sm: true }), { invalidation: 'register' }), (e: unknown) => e instanceof VtdError && e.code === 'ARGUMENT' && /needs queued invalidation/.test(e.message));
    const g = new Guest(header({ sm: true, flts: true }));
    g.lower({ op: 'attach', sid: 0x18, domain: 1 });
    assert.throws(() => g.lower({ op: 'map', domain: 1, iova: 1n << 47n, gpa: 0n, len: 0x1000, perm: 'r' }), /beyond the domain's 48-bit address width/);
  });

  test('a lowered scalable-mode trace keeps its scalable-mode header and parses', () => {
    const t = parseTrace([
      '{"vtd-trace":1,"iommu":{"aw":48,"sm":true,"flts":true,"ram":"0x4000000"},"devices":["00:03.0"]}',
      '{"op":"attach","sid":"00:03.0","domain":1}',
      '{"op":"map","domain":1,"iova":"0x1000","gpa":"0x2000","len":4096,"perm":"rw"}',
    ].join('\n'));
    const text = lowerTrace(t);
    assert.match(text.split('\n')[0], /"sm":true,"flts":true,"pasid":false,"nest":false/);
    assert.ok(parseTrace(text).ops.length > 10);
    // A legacy header is written as before, without the scalable-mode keys.
    assert.doesNotMatch(lowerTrace(parseTrace('{"vtd-trace":1,"iommu":{"aw":48}}')).split('\n')[0], /flts|pasid|nest/);
  });
});
