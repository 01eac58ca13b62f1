/**
 * The synthetic workload generators: determinism, the trace format, the
 * invariants of a guest driver's DMA API use (checked by an independent
 * replay of the op stream), op counts, option validation, streaming, and the
 * dma-iommu IOVA allocator against what the recorded Linux guest did.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VtdError } from '../../src/errors.js';
import { parseTrace, type Trace } from '../../src/trace/parse.js';
import {
  GEN_KINDS, IovaDomain, generate, generateText, q35ReservedIova, resolveGenOptions,
  type GenKind, type GenOptionsByKind,
} from '../../src/sources/gen/index.js';
import { run, usage } from '../../src/cli/gen.js';
import { lowerOps, lowerTrace } from '../../src/guest/driver.js';
import { replayTrace } from '../../src/replay/replayer.js';
import { ROOT } from '../helpers.js';

const PAGE = 4096n;

/** What a trace did, counted while checking it. */
interface Tally {
  maps: number; unmaps: number; dmas: number; liveAtEnd: number;
  dmaByKey: Map<string, number>;
}

/**
 * An independent model of the rules a guest driver's DMA API use obeys:
 * page-aligned maps that never overlap a live mapping of their domain, gpas in
 * the workload's part of guest RAM, unmaps that cover whole live mappings
 * exactly, and DMAs that stay inside one 4 KiB page of one live mapping whose
 * permission allows the direction.
 */
function check(trace: Trace): Tally {
  const { ram, aw } = trace.header.config;
  const gpaEnd = ram - (ram + 8n * PAGE - 1n) / (8n * PAGE) * PAGE;
  const domains = new Map<number, { start: bigint; end: bigint; perm: string }[]>();
  const attached = new Map<number, number>();
  const t: Tally = { maps: 0, unmaps: 0, dmas: 0, liveAtEnd: 0, dmaByKey: new Map() };
  const at = (op: { line: number }, msg: string) => `line ${op.line}: ${msg}`;
  /** Index of the first live range ending after x. */
  const find = (live: { end: bigint }[], x: bigint) => {
    let a = 0, b = live.length;
    while (a < b) {
      const m = (a + b) >> 1;
      if (live[m].end <= x) a = m + 1;
      else b = m;
    }
    return a;
  };
  for (const op of trace.ops) {
    switch (op.op) {
      case 'attach':
        assert.ok(trace.header.devices.includes(op.sid));
        attached.set(op.sid, op.domain);
        if (!domains.has(op.domain)) domains.set(op.domain, []);
        break;
      case 'map': {
        t.maps++;
        const live = domains.get(op.domain);
        assert.ok(live, at(op, 'map in a domain nothing is attached to'));
        const len = BigInt(op.len);
        assert.equal(op.iova % PAGE, 0n, at(op, 'iova not page-aligned'));
        assert.equal(op.gpa % PAGE, 0n, at(op, 'gpa not page-aligned'));
        assert.equal(len % PAGE, 0n, at(op, 'len not a page multiple'));
        assert.ok(op.iova + len <= 1n << BigInt(aw), at(op, 'iova above the address width'));
        assert.ok(op.gpa >= 0x100000n && op.gpa + len <= gpaEnd, at(op, `gpa 0x${op.gpa.toString(16)} outside [1 MiB, ram - ram/8)`));
        const i = find(live, op.iova);
        assert.ok(i === live.length || live[i].start >= op.iova + len, at(op, `map 0x${op.iova.toString(16)} overlaps a live mapping`));
        live.splice(i, 0, { start: op.iova, end: op.iova + len, perm: op.perm });
        break;
      }
      case 'unmap': {
        t.unmaps++;
        const live = domains.get(op.domain)!;
        const end = op.iova + BigInt(op.len);
        const i = find(live, op.iova);
        let j = i, cursor = op.iova;
        while (j < live.length && live[j].start === cursor && live[j].end <= end) cursor = live[j++].end;
        assert.ok(j > i && cursor === end, at(op, `unmap [0x${op.iova.toString(16)}, 0x${end.toString(16)}) does not cover whole live mappings exactly`));
        live.splice(i, j - i);
        break;
      }
      case 'dma': {
        t.dmas++;
        const key = `${op.dir}${op.len}`;
        t.dmaByKey.set(key, (t.dmaByKey.get(key) ?? 0) + 1);
        const d = attached.get(op.sid);
        assert.ok(d !== undefined, at(op, 'dma from a device not attached'));
        const end = op.iova + BigInt(op.len);
        assert.ok(op.iova / PAGE === (end - 1n) / PAGE, at(op, 'dma crosses a 4 KiB page'));
        const live = domains.get(d)!;
        const m = live[find(live, op.iova)];
        assert.ok(m && m.start <= op.iova && end <= m.end, at(op, `dma 0x${op.iova.toString(16)} outside every live mapping`));
        assert.ok(m.perm.includes(op.dir), at(op, `dma ${op.dir} into a mapping with perm ${m.perm}`));
        break;
      }
      default:
        assert.fail(at(op, `unexpected op ${op.op}`));
    }
  }
  for (const live of domains.values()) t.liveAtEnd += live.length;
  return t;
}

function gen<K extends GenKind>(kind: K, o: Partial<GenOptionsByKind[K]>): { text: string; trace: Trace; tally: Tally } {
  const text = generateText(kind, o);
  const trace = parseTrace(text);
  return { text, trace, tally: check(trace) };
}

test('the same seed gives the same bytes; another seed differs', () => {
  for (const kind of GEN_KINDS) {
    const a = generateText(kind, { seed: 7, ops: 300 });
    assert.equal(generateText(kind, { seed: 7, ops: 300 }), a, kind);
    assert.notEqual(generateText(kind, { seed: 8, ops: 300 }), a, kind);
  }
});

test('the leading comment records the generator, its version and every option, rate as N/s', () => {
  const text = generateText('network', { ops: 20, rate: 2500 });
  const [first, second, third] = text.split('\n');
  assert.match(first, /^# vtd-gen network version=1 seed=1 ops=20 rate=2500\/s device=00:03\.0 domain=3 cm=true aw=48 ram=1G /);
  // The replayer's cost model reads exactly this.
  assert.equal(/^#\s*vtd-gen\b.*\brate=([0-9.]+)\/s\b/.exec(first)?.[1], '2500');
  for (const k of ['flush-queue', 'teardown', 'rx-ring', 'tx-ring', 'rx-fraction', 'packet-size', 'burst', 'tx-delay', 'copybreak', 'ring-dma']) {
    assert.match(first, new RegExp(` ${k}=`), k);
  }
  assert.match(second, /^# reproduce: vtd gen network --seed 1 --ops 20 --rate 2500 /);
  assert.equal(third, '{"vtd-trace":1,"iommu":{"aw":48,"cm":true,"ram":"0x40000000"},"devices":["00:03.0"]}');
  assert.match(generateText('storage', { ops: 1, rate: 0.5 }).split('\n')[0], / rate=0\.5\/s /);
});

const VARIANTS: { [K in GenKind]: Partial<GenOptionsByKind[K]>[] } = {
  network: [
    {}, { cm: false }, { aw: 39, teardown: true }, { aw: 57, ringDma: false }, { packetSize: 'uniform', rxFraction: 0.9, burst: 64, rxRing: 128 },
    { packetSize: 1514, copybreak: 0, txDelay: 0, burst: 1 }, { flushQueue: 8, ram: 64 * 1024 * 1024, seed: 99 },
  ],
  storage: [
    {}, { cm: false, teardown: true }, { aw: 57, qd: 1 }, { sizeDist: 'uniform', minSize: 4096, maxSize: 4 << 20, qd: 8, contig: 0.9 },
    { ringDma: false, readFraction: 0, flushQueue: 3 }, { qd: 1024, maxSize: 8192 },
  ],
  accelerator: [
    {}, { teardown: true, remapEvery: 7 }, { pattern: 'stream', dmaLen: 100, remapEvery: 0 }, { aw: 39, buffers: 1, minSize: 2 << 20, maxSize: 2 << 20 },
    { buffers: 8, minSize: 2 << 20, maxSize: 96 << 20, dmaReadFraction: 1, remapEvery: 50, cm: false },
    { buffers: 3, minSize: 1 << 30, maxSize: 1 << 30, ram: 4 * (1 << 30), remapEvery: 100 },
  ],
};

test('every variant parses and keeps the invariants (live ranges, dma inside a mapping with its permission)', () => {
  for (const kind of GEN_KINDS) {
    for (const v of VARIANTS[kind] as Partial<GenOptionsByKind[GenKind]>[]) {
      for (const seed of [1, 2]) {
        const { tally } = gen(kind, { ops: kind === 'accelerator' ? 2000 : 600, seed, ...v });
        assert.ok(tally.maps > 0 && tally.dmas > 0, `${kind} ${JSON.stringify(v)}`);
        if ((v as { teardown?: boolean }).teardown) assert.equal(tally.liveAtEnd, 0, `${kind} teardown leaves nothing mapped`);
      }
    }
  }
});

test('network: op counts follow from the packets', () => {
  const ops = 2000;
  const o = resolveGenOptions('network', { ops });
  const { tally } = gen('network', { ops });
  const rx = tally.dmaByKey.get('w16') ?? 0; // one RX descriptor write-back per received frame
  const tx = tally.dmaByKey.get('w4') ?? 0; // one TX status write-back per sent frame
  assert.equal(rx + tx, ops);
  assert.ok(Math.abs(rx / ops - o.rxFraction) < 0.05);
  // Both rings and the RX buffers stay mapped; every TX buffer is reclaimed by the end. The ring arms
  // rx-ring - 1 slots; the one left unarmed may still hold a buffer copybreak kept (as in e1000).
  assert.ok(tally.liveAtEnd === 2 + o.rxRing - 1 || tally.liveAtEnd === 2 + o.rxRing, String(tally.liveAtEnd));
  assert.equal(tally.maps - tally.unmaps, tally.liveAtEnd);

  // All frames received and short: copybreak keeps every buffer, nothing is ever unmapped; the first
  // poll arms the slot the initial fill left empty, so all 256 slots end up with a buffer.
  const small = gen('network', { ops: 500, rxFraction: 1, packetSize: 60 }).tally;
  assert.equal(small.unmaps, 0);
  assert.equal(small.maps, 2 + 256);
  assert.equal(small.dmaByKey.get('w64'), 500); // frame + FCS
  // All frames received and full-size: one unmap and one map per frame.
  const big = gen('network', { ops: 500, rxFraction: 1, packetSize: 1514, ringDma: false }).tally;
  assert.equal(big.unmaps, 500);
  assert.equal(big.maps, 255 + 500);
  assert.equal(big.dmaByKey.get('r16'), undefined);
  // All frames sent, fixed small size: one linear buffer, one map and one unmap each.
  const acks = gen('network', { ops: 500, rxFraction: 0, packetSize: 66, ringDma: false, teardown: true }).tally;
  assert.equal(acks.maps, 255 + 500);
  assert.equal(acks.unmaps, 255 + 500);
  assert.equal(acks.dmas, 500);
});

test('network: RX buffers are e1000 frags, two or three per page, some spanning two pages', () => {
  const { trace } = gen('network', { ops: 1, rxRing: 64, burst: 1, txRing: 64, txDelay: 0 });
  // The ring fill: rx-ring - 1 buffers (the one frame may add one more).
  const rx = trace.ops.filter((o) => o.op === 'map' && o.perm === 'w').slice(0, 63);
  const sizes = new Map<number, number>();
  for (const m of rx) if (m.op === 'map') sizes.set(m.len, (sizes.get(m.len) ?? 0) + 1);
  // 1920-byte frags from 32 KiB chunks, mapped 1522 bytes at +64: 12 of 17 fit one page, 5 span two.
  assert.deepEqual([...sizes.keys()].sort(), [4096, 8192]);
  assert.ok(sizes.get(8192)! > 10 && sizes.get(8192)! < 30);
  // The first buffers of a fresh 32 KiB chunk, as in the recorded guest's RX ring fill: two per page, then one
  // spanning two pages (IOVA aligned to two pages, leaving a hole the next-fit allocator skips).
  const first = rx.slice(0, 7).map((m) => (m.op === 'map' ? `${m.iova.toString(16)}+${m.len / 4096}` : ''));
  assert.deepEqual(first, ['ffffd000+1', 'ffffc000+1', 'ffffb000+1', 'ffffa000+1', 'ffff8000+2', 'ffff7000+1', 'ffff4000+2']);
  const gpas = rx.slice(0, 4).map((m) => (m.op === 'map' ? m.gpa : 0n));
  assert.equal(gpas[0], gpas[1]);
  assert.equal(gpas[2], gpas[3]);
  assert.equal(gpas[0] - gpas[2], 4096n);
});

test('storage: op counts follow from the requests', () => {
  const ops = 1500;
  const { trace, tally } = gen('storage', { ops, teardown: true });
  assert.equal(tally.unmaps, ops + 2); // one dma_unmap_sg per request, then both queues
  assert.equal(tally.dmaByKey.get('r64'), ops); // command fetches
  assert.equal(tally.dmaByKey.get('w16'), ops); // completions
  const unmapped = trace.ops.reduce((s, o) => s + (o.op === 'unmap' ? o.len : 0), 0);
  const data = (tally.dmaByKey.get('r4096') ?? 0) + (tally.dmaByKey.get('w4096') ?? 0);
  assert.equal(data * 4096 + 2 * 4096, unmapped); // every mapped page is transferred once
  assert.ok(tally.maps >= ops + 2);
  // Power-of-two sizes between 4 KiB and 128 KiB.
  for (const o of trace.ops) if (o.op === 'unmap' && o.len !== 4096) assert.ok([8192, 16384, 32768, 65536, 131072].includes(o.len), String(o.len));
  // Completions come out of order: requests are unmapped in another order than they were mapped.
  const mappedAt = new Map<bigint, number>();
  const order: number[] = [];
  trace.ops.forEach((o, i) => {
    if (o.op === 'map' && !mappedAt.has(o.iova)) mappedAt.set(o.iova, i);
    if (o.op === 'unmap') {
      order.push(mappedAt.get(o.iova)!);
      for (const k of [...mappedAt.keys()]) if (k >= o.iova && k < o.iova + BigInt(o.len)) mappedAt.delete(k);
    }
  });
  const inversions = order.filter((x, i) => i > 0 && x < order[i - 1]).length;
  assert.ok(inversions > order.length / 4, `${inversions} of ${order.length}`);
});

test('storage: a read maps "w" and the device writes; a write maps "r" and the device reads', () => {
  const reads = gen('storage', { ops: 50, readFraction: 1, ringDma: false });
  assert.ok(reads.trace.ops.every((o) => (o.op === 'map' ? o.perm === 'w' : o.op === 'dma' ? o.dir === 'w' : true)));
  const writes = gen('storage', { ops: 50, readFraction: 0, ringDma: false });
  assert.ok(writes.trace.ops.every((o) => (o.op === 'map' ? o.perm === 'r' : o.op === 'dma' ? o.dir === 'r' : true)));
});

test('accelerator: op counts, 2 MiB-aligned buffers, remaps', () => {
  const ops = 5000, remapEvery = 1000, buffers = 4;
  const { trace, tally } = gen('accelerator', { ops, remapEvery, buffers });
  assert.equal(tally.dmas, ops);
  assert.equal(tally.unmaps, Math.floor((ops - 1) / remapEvery));
  assert.equal(tally.maps, buffers + tally.unmaps);
  for (const o of trace.ops) {
    if (o.op !== 'map') continue;
    assert.equal(o.gpa % (2n << 20n), 0n);
    assert.equal(o.iova % (2n << 20n), 0n);
    assert.equal(o.len % (2 << 20), 0);
    assert.ok(o.len >= 64 << 20 && o.len <= 128 << 20);
  }
  // Three 1 GiB buffers: the 32-bit space (less q35's PCI windows) has room for one; the rest go to the top of the aperture.
  const big = gen('accelerator', { ops: 10, buffers: 3, minSize: 1 << 30, maxSize: 1 << 30, ram: 4 * (1 << 30) }).trace;
  const iovas = big.ops.filter((o) => o.op === 'map').map((o) => (o.op === 'map' ? o.iova : 0n));
  assert.deepEqual(iovas, [0x40000000n, (1n << 48n) - (1n << 30n), (1n << 48n) - (2n << 30n)]);
});

test('IOVA allocation: top-down below 4 GiB, size-aligned, next-fit from the last allocation (as the recorded guest)', () => {
  const d = new IovaDomain({ aw: 48 });
  // The e1000 RX ring fill of the recorded guest: one-page and two-page buffers.
  const sizes = [1, 1, 1, 1, 1, 1, 2, 1, 2, 1, 2, 1];
  const got = sizes.map((n) => d.alloc(n).toString(16));
  assert.deepEqual(got, ['fffff', 'ffffe', 'ffffd', 'ffffc', 'ffffb', 'ffffa', 'ffff8', 'ffff7', 'ffff4', 'ffff3', 'ffff0', 'fffef']);
});

test('IOVA allocation: freed IOVAs come back last-in first-out (the per-CPU rcache)', () => {
  const d = new IovaDomain({ aw: 48 });
  const p = [d.alloc(1), d.alloc(1), d.alloc(1), d.alloc(1)]; // fffff ffffe ffffd ffffc
  for (const i of [3, 0, 1, 2]) d.free(p[i], 1);
  assert.deepEqual([d.alloc(1), d.alloc(1), d.alloc(1), d.alloc(1)], [p[2], p[1], p[0], p[3]]);
  // Sizes below 32 pages round up to a power of two (3 -> 4, aligned to 4); 33 pages stay 33, aligned to 64.
  const d2 = new IovaDomain({ aw: 48 });
  assert.equal(d2.alloc(3), 0xffffc);
  assert.deepEqual(d2.nodes().at(-1), [0xffffc, 0xfffff]);
  assert.equal(d2.alloc(33), 0xfffc0);
  assert.deepEqual(d2.nodes()[0], [0xfffc0, 0xfffc0 + 32]);
});

test('IOVA allocation: the flush queue delays reuse until it is full', () => {
  const d = new IovaDomain({ aw: 48, flushQueue: 2 });
  const a = d.alloc(1), b = d.alloc(1);
  d.free(a, 1);
  d.free(b, 1);
  const c = d.alloc(1);
  assert.ok(c !== a && c !== b, 'queued IOVAs are not reused');
  d.free(c, 1); // queue full: a and b are freed first
  assert.equal(d.alloc(1), b);
});

test('IOVA allocation: q35 reservations are skipped; 32-bit space exhausted goes above 4 GiB', () => {
  const d = new IovaDomain({ aw: 39, reserved: q35ReservedIova(1 << 30) });
  for (let i = 0; i < 0x1100; i++) assert.ok(d.alloc(1) >= 0xfef00); // 0xfef00000-0xffffffff: 17 MiB
  assert.equal(d.alloc(1), 0xfedff); // below the interrupt window 0xfee00000-0xfeefffff
  const e = new IovaDomain({ aw: 39 });
  assert.deepEqual([e.alloc(0x40000), e.alloc(0x40000), e.alloc(0x40000), e.alloc(0x40000)], [0xc0000, 0x80000, 0x40000, 2 ** 27 - 0x40000]);
});

test('bad options are ARGUMENT errors naming the option', () => {
  const bad: [GenKind, Record<string, unknown>, RegExp][] = [
    ['network', { ops: 0 }, /--ops must be an integer from 1/],
    ['network', { seed: 2 ** 32 }, /--seed/],
    ['network', { rxRing: 8 }, /--rx-ring/],
    ['network', { rxFraction: -0.1 }, /--rx-fraction/],
    ['network', { packetSize: 59 }, /--packet-size/],
    ['network', { minPacket: 1000, maxPacket: 100 }, /--min-packet 1000 is above --max-packet 100/],
    ['network', { burst: 100 }, /--burst/],
    ['network', { txRing: 48 }, /--tx-ring 48 is too small/],
    ['network', { qd: 4 }, /--qd is an option of storage, not network/],
    ['network', { device: '0:3.0' }, /--device must be a requester id/],
    ['network', { domain: 0 }, /--domain/],
    ['network', { aw: 40 }, /--aw must be 39 or 48 or 57/],
    ['network', { ram: 1e9 }, /--ram must be a multiple of 4 KiB/],
    ['network', { ram: 2 ** 40, aw: 39 }, /above what --aw 39 can address/],
    ['network', { rate: 0 }, /--rate/],
    ['network', { rxRing: 4096, ram: 64 << 20 }, /need up to .* of guest RAM/],
    ['storage', { minSize: 12288 }, /power of two/],
    ['storage', { sizeDist: 'uniform', minSize: 5000 }, /multiple of 4 KiB/],
    ['storage', { maxSize: 8 << 20 }, /at most 4M/],
    ['storage', { minSize: 65536, maxSize: 4096 }, /--min-size 64K is above --max-size 4K/],
    ['storage', { qd: 1024, maxSize: 4 << 20 }, /guest RAM/],
    ['storage', { sizeDist: 'normal' }, /--size-dist must be pow2 or uniform/],
    ['accelerator', { minSize: 3 << 20 }, /multiple of 2M/],
    ['accelerator', { buffers: 16, maxSize: 1 << 30 }, /guest RAM/],
    ['accelerator', { dmaLen: 5000 }, /--dma-len/],
    ['accelerator', { pattern: 'zigzag' }, /--pattern/],
    ['accelerator', { ringDma: false }, /--ring-dma is an option of network and storage/],
    ['accelerator', { bogus: 1 }, /unknown option bogus/],
  ];
  for (const [kind, o, re] of bad) {
    assert.throws(() => generate(kind, o as never), (e: unknown) => e instanceof VtdError && e.code === 'ARGUMENT' && re.test(e.message), `${kind} ${JSON.stringify(o)}`);
  }
  assert.throws(() => generate('disk' as GenKind), /the kind must be network, storage, accelerator/);
});

test('vtd gen: arguments are validated before anything is written', async () => {
  const bad: [string[], RegExp][] = [
    [[], /gen takes one kind/],
    [['disk'], /gen takes one kind/],
    [['network', 'storage'], /gen takes one kind/],
    [['network', '--seed'], /--seed needs a value/],
    [['network', '--seed', 'x'], /--seed takes a non-negative integer, got "x"/],
    [['network', '--frob', '1'], /unknown option --frob/],
    [['network', '--qd', '4'], /--qd is an option of storage, not network/],
    [['network', '--cm', '--no-cm'], /--cm given twice/],
    [['storage', '--max-size', 'lots'], /--max-size takes a byte count/],
    [['storage', '--read-fraction', '2'], /--read-fraction takes a fraction/],
    [['network', '--rate', 'fast'], /--rate takes operations per second/],
    [['accelerator', '--no-ring-dma'], /--ring-dma is an option of network and storage/],
    [['network', '--out'], /--out needs a value/],
  ];
  for (const [args, re] of bad) {
    await assert.rejects(async () => run(args), (e: unknown) => e instanceof VtdError && e.code === 'ARGUMENT' && re.test(e.message), args.join(' '));
  }
});

test('vtd gen --out writes the same bytes as generateText; the reproduce line regenerates them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtd-gen-'));
  const f = join(dir, 'w.jsonl');
  assert.equal(await run(['storage', '--seed', '5', '--ops', '200', '--max-size', '64K', '--no-cm', '--out', f]), 0);
  const text = readFileSync(f, 'utf8');
  assert.equal(text, generateText('storage', { seed: 5, ops: 200, maxSize: 65536, cm: false }));
  assert.match(text, / flush-queue=256 /); // lazy by default without caching mode
  const again = join(dir, 'again.jsonl');
  const args = text.split('\n')[1].replace(/^# reproduce: vtd gen /, '').split(' ');
  assert.equal(await run([...args, '--out', again]), 0);
  assert.equal(readFileSync(again, 'utf8'), text);
  // A failed run leaves no file behind.
  await assert.rejects(async () => run(['storage', '--qd', '0', '--out', join(dir, 'none.jsonl')]));
  assert.ok(!existsSync(join(dir, 'none.jsonl')));
});

test('the usage text lists every option of every kind', () => {
  for (const kind of GEN_KINDS) {
    const o = resolveGenOptions(kind);
    for (const k of Object.keys(o)) {
      const flag = k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
      assert.ok(usage.includes(`--${flag}`) || usage.includes(`--no-${flag}`), flag);
    }
  }
  for (const line of usage.trimEnd().split('\n')) assert.match(line, /^(?: {2}\S| {4}\S| {6}--| {25}\S)/);
});

test('streaming: the generator yields lazily; 1M lines are produced without building the text', (t) => {
  // A billion packets could never be built in memory: pulling the first lines must return at once.
  const it = generate('network', { ops: 1e9 });
  let n = 0;
  for (const line of it) {
    if (++n === 5000) break;
    assert.ok(line.length > 0);
  }
  assert.equal(n, 5000);
  for (const kind of GEN_KINDS) {
    // Sized to about a million lines each.
    const ops = kind === 'network' ? 170000 : kind === 'storage' ? 32000 : 1000000;
    const t0 = performance.now();
    let lines = 0, bytes = 0;
    for (const line of generate(kind, { ops })) {
      lines++;
      bytes += line.length + 1;
    }
    const s = (performance.now() - t0) / 1000;
    t.diagnostic(`${kind}: ${lines} lines (${(bytes / 1e6).toFixed(0)} MB) in ${s.toFixed(2)} s, ${(lines / s / 1e6).toFixed(2)} M lines/s`);
    assert.ok(lines > 500000);
  }
});

test('examples/network-small.jsonl is what its leading comment regenerates', () => {
  const f = join(ROOT, 'examples', 'network-small.jsonl');
  const text = readFileSync(f, 'utf8');
  const args = text.split('\n')[1].replace(/^# reproduce: vtd gen network /, '').split(' ');
  const o: Record<string, string | boolean> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i].slice(2);
    if (args[i + 1] === undefined || args[i + 1].startsWith('--')) {
      if (a.startsWith('no-')) o[a.slice(3)] = false;
      else o[a] = true;
    } else o[a] = args[++i];
  }
  assert.equal(o.ops, '300');
  assert.equal(text, generateText('network', { seed: Number(o.seed), ops: Number(o.ops) }));
  check(parseTrace(text));
});

test('a generated workload lowers through the guest-driver model and every dma translates', () => {
  const dmaResults = (lines: string[]) => lines.map((l) => JSON.parse(l) as { op: string; ok?: boolean }).filter((r) => r.op === 'dma');
  for (const kind of GEN_KINDS) {
    for (const cm of [true, false]) {
      const o = { ops: kind === 'accelerator' ? 3000 : 400, cm, teardown: true, ...(kind === 'accelerator' ? { remapEvery: 700, minSize: 2 << 20, maxSize: 8 << 20 } : {}) };
      const trace = parseTrace(generateText(kind, o as never));
      const dmas = trace.ops.filter((op) => op.op === 'dma').length;
      // The lowered trace is itself a raw trace: replay it.
      const lowered = parseTrace(lowerTrace(trace, {}));
      assert.ok(lowered.ops.every((op) => op.op !== 'map' && op.op !== 'unmap'));
      const a = dmaResults(replayTrace(lowered));
      assert.equal(a.length, dmas, `${kind} cm=${cm}`);
      assert.ok(a.every((r) => r.ok === true), `${kind} cm=${cm}: every dma translates (lowered, then replayed)`);
      // The generator's flush queue (256 without caching mode) matches the model's: no IOVA is reused before its flush.
      const { stats } = lowerOps(trace.header, trace.ops, () => {}, { policy: 'lazy' });
      assert.equal(stats.reuseFlushes, 0, `${kind} cm=${cm}: early flushes for IOVA reuse`);
      // Replayed directly, under both invalidation policies (caching mode forces strict).
      for (const policy of ['strict', 'lazy'] as const) {
        const b = dmaResults(replayTrace(trace, { driver: { policy } }));
        assert.ok(b.length === dmas && b.every((r) => r.ok === true), `${kind} cm=${cm} ${policy}: every dma translates`);
      }
    }
  }
});
