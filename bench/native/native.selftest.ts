// Self-check of the native baseline: node --import tsx bench/native/native.selftest.ts (from the repository root).
// Builds a 4-level (aw 48) table image, computes every answer with a small independent bigint walk written here from
// vtd-digest.md 3.2, 3.3, 4 and 5.1, and checks walk.c's checksum and fault count in both modes. Exits 0 on success.

import { spawnSync } from 'node:child_process';
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  buildNative,
  expectedChecksum,
  runNative,
  writeImage,
  type NativeImage,
  type TranslationResult,
} from './native.ts';
import { rng } from '../lib/image.js'; // mulberry32: failures are reproducible

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

let failures = 0;
function check(cond: boolean, what: string): void {
  if (!cond) {
    failures++;
    console.error(`FAIL: ${what}`);
  }
}

/** Mask with bits hi..lo (inclusive) set; empty when hi < lo. */
function bits(hi: number, lo: number): bigint {
  if (hi < lo) return 0n;
  return ((1n << BigInt(hi + 1)) - 1n) ^ ((1n << BigInt(lo)) - 1n);
}
const bit = (n: number): bigint => 1n << BigInt(n);
const hex = (v: bigint): string => `0x${v.toString(16)}`;

const rand = rng(0x5eed1234);
const randInt = (n: number): number => Math.floor(rand() * n);
const randBig = (bitsWanted: number): bigint => {
  let v = 0n;
  for (let i = 0; i < bitsWanted; i += 16) v = (v << 16n) | BigInt(randInt(0x10000));
  return v & bits(bitsWanted - 1, 0);
};

class GuestMemory {
  readonly frames = new Map<bigint, Uint8Array>();
  private frame(pa: bigint): DataView {
    const gfn = pa >> 12n;
    let f = this.frames.get(gfn);
    if (!f) this.frames.set(gfn, (f = new Uint8Array(4096)));
    return new DataView(f.buffer, f.byteOffset, 4096);
  }
  write64(pa: bigint, v: bigint): void {
    this.frame(pa).setBigUint64(Number(pa & 0xfffn), v, true);
  }
  read64(pa: bigint): bigint {
    const f = this.frames.get(pa >> 12n);
    return f ? new DataView(f.buffer, f.byteOffset, 4096).getBigUint64(Number(pa & 0xfffn), true) : 0n;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Independent reference walk (legacy mode, no caches; digest 5.1). Order of checks as the Wasm core
// (assembly/translate.ts): per level, not present (R = W = 0: 5h/6h) -> reserved (Ch) -> AND R/W; after the leaf,
// the cumulative right for the access (5h/6h) -> output in the interrupt range (Eh). A malformed entry therefore
// reports Ch whatever the access (QEMU 7.2 checks the access's right at each level first and reports 5h/6h).

function refTranslate(mem: GuestMemory, aw: number, rta: bigint, iova: bigint, sid: number, dir: 'r' | 'w'): TranslationResult {
  const fail = (fault: number): TranslationResult => ({ ok: false, fault });
  const bus = BigInt(sid >> 8);
  const devfn = BigInt(sid & 0xff);

  const rootAddr = (rta & bits(63, 12)) + 16n * bus;
  const rootLo = mem.read64(rootAddr);
  const rootHi = mem.read64(rootAddr + 8n);
  if ((rootLo & 1n) === 0n) return fail(0x1);
  if ((rootLo & bits(11, 1)) !== 0n || (rootLo & bits(63, aw)) !== 0n || rootHi !== 0n) return fail(0xa);

  const ctxAddr = (rootLo & bits(63, 12)) + 16n * devfn;
  const ctxLo = mem.read64(ctxAddr);
  const ctxHi = mem.read64(ctxAddr + 8n);
  if ((ctxLo & 1n) === 0n) return fail(0x2);
  if ((ctxLo & bits(11, 4)) !== 0n || (ctxLo & bits(63, aw)) !== 0n || (ctxHi & bit(7)) !== 0n ||
    (ctxHi & bits(63, 24)) !== 0n) {
    return fail(0xb);
  }
  const agawField = Number(ctxHi & 7n);
  const sagaw = aw === 39 ? [1] : aw === 48 ? [1, 2] : [1, 2, 3];
  if (!sagaw.includes(agawField)) return fail(0x3);
  if (((ctxLo >> 2n) & 3n) !== 0n) return fail(0x3);

  const inputWidth = Math.min(aw, 30 + 9 * agawField);
  if (iova >= 1n << BigInt(inputWidth)) return fail(0x4);

  const addrMask = bits(Math.min(aw, 52) - 1, 12);
  let table = ctxLo & bits(63, 12);
  let readable = true;
  let writable = true;
  for (let level = agawField + 2; level >= 1; level--) {
    const shift = BigInt(12 + 9 * (level - 1));
    const entry = mem.read64(table + 8n * ((iova >> shift) & 0x1ffn));
    if ((entry & 3n) === 0n) return fail(dir === 'w' ? 0x5 : 0x6); // not present
    const ps = (entry & bit(7)) !== 0n;
    const isLeaf = level === 1 || (ps && (level === 2 || level === 3));
    let reserved = bit(11) | bit(62) | bits(51, aw);
    if (level >= 4) reserved |= bit(7);
    if (isLeaf && level > 1) reserved |= bits(Number(shift) - 1, 12);
    if ((entry & reserved) !== 0n) return fail(0xc);
    readable &&= (entry & 1n) !== 0n;
    writable &&= (entry & 2n) !== 0n;
    if (isLeaf) {
      if (!(dir === 'w' ? writable : readable)) return fail(dir === 'w' ? 0x5 : 0x6);
      const size = 1n << shift;
      const base = entry & addrMask & ~(size - 1n);
      if (base <= 0xfeefffffn && base + size - 1n >= 0xfee00000n) return fail(0xe);
      return { ok: true, gpa: base | (iova & (size - 1n)) };
    }
    table = entry & addrMask;
  }
  throw new Error('unreachable');
}

// ---------------------------------------------------------------------------------------------------------------
// The image: aw 48, RTA 0x100000, bus 0 -> context table, 00:03.0 (SID 0x18) AW=2 DID 1 -> PML4

const AW = 48 as const;
const RTA = 0x100000n;
const CTX0 = 0x101000n;
const mem = new GuestMemory();
let nextTable = 0x200000n;
const allocTable = (): bigint => {
  const a = nextTable;
  nextTable += 0x1000n;
  mem.write64(a, 0n); // materialise the (zeroed) frame
  return a;
};

const R = 1n;
const W = 2n;
const RW = 3n;
const PS = bit(7);

// Root table.
mem.write64(RTA + 16n * 0n, CTX0 | 1n); // bus 0
// bus 1: not present (left zero)
mem.write64(RTA + 16n * 2n, 0x102000n | 1n | bit(1)); // bus 2: reserved lo bit 1
mem.write64(RTA + 16n * 3n, 0x102000n | 1n);
mem.write64(RTA + 16n * 3n + 8n, 1n); // bus 3: hi != 0
mem.write64(RTA + 16n * 4n, 0x102000n | bit(50) | 1n); // bus 4: CTP above aw

function setContext(devfn: number, lo: bigint, hi: bigint): void {
  mem.write64(CTX0 + 16n * BigInt(devfn), lo);
  mem.write64(CTX0 + 16n * BigInt(devfn) + 8n, hi);
}
const SID_DEV = 0x18; // 00:03.0
const SID_3LVL = 0x28; // 00:05.0, AW=1 (3-level, 39-bit input)
const pml4 = allocTable();
setContext(SID_DEV, pml4 | 1n, 2n | (1n << 8n));
const pdpt3 = allocTable();
setContext(SID_3LVL, pdpt3 | 1n, 1n | (2n << 8n));
setContext(0x21, pml4 | 1n, 3n | (3n << 8n)); // AW=3 (5-level) not in SAGAW for aw 48 -> 3h
setContext(0x22, pml4 | 1n | (2n << 2n), 2n); // TT=10 -> 3h
setContext(0x23, pml4 | 1n | bit(4), 2n); // lo bit 4 reserved -> Bh
setContext(0x24, pml4 | 1n, 2n | bit(7)); // hi bit 7 reserved -> Bh
setContext(0x25, pml4 | 1n, 2n | bit(40)); // hi bit 40 reserved -> Bh
setContext(0x26, pml4 | 1n | bit(48), 2n); // lo bit 48 (>= aw) reserved -> Bh
// devfn 0x20 (SID 0x20): not present -> 2h

/** Walks/creates the non-leaf path for iova down to `level`, returning the table holding the level's entry. */
function tableFor(top: bigint, topLevel: number, iova: bigint, level: number, perms: bigint = RW): bigint {
  let table = top;
  for (let l = topLevel; l > level; l--) {
    const slot = table + 8n * ((iova >> BigInt(12 + 9 * (l - 1))) & 0x1ffn);
    let e = mem.read64(slot);
    if ((e & 3n) === 0n) {
      e = allocTable() | perms;
      mem.write64(slot, e);
    }
    table = e & bits(47, 12);
  }
  return table;
}
function setEntry(iova: bigint, level: number, value: bigint, top = pml4, topLevel = 4): void {
  const t = tableFor(top, topLevel, iova, level);
  mem.write64(t + 8n * ((iova >> BigInt(12 + 9 * (level - 1))) & 0x1ffn), value);
}
const randomTarget = (): bigint => (0x100000n + randBig(32)) << 12n; // 4 GiB .. 2^44, never the interrupt range
const randomPerm = (): bigint => [R, W, RW, RW][randInt(4)];

type Req = NativeImage['requests'][number];
const requests: Req[] = [];
const mapped4k: bigint[] = [];

// Region A: 3000 consecutive 4 KiB pages from 1 GiB (spans several page directories).
for (let i = 0n; i < 3000n; i++) {
  const iova = 0x40000000n + (i << 12n);
  setEntry(iova, 1, randomTarget() | randomPerm());
  mapped4k.push(iova);
}
// Region B: 1000 pages scattered over the whole 48-bit space (many PML4/PDPT/PD tables).
for (let i = 0; i < 1000; i++) {
  const iova = randBig(36) << 12n;
  if (iova >= 0xfee00000n && iova <= 0xfeefffffn) continue;
  setEntry(iova, 1, randomTarget() | randomPerm());
  mapped4k.push(iova);
}
// 2 MiB superpages (PS at level 2), one read-only, one write-only.
const superpages: bigint[] = [];
for (let k = 0n; k < 4n; k++) {
  const iova = 0x100000000n + k * 0x200000n;
  const perm = k === 1n ? R : k === 2n ? W : RW;
  setEntry(iova, 2, (0x200000000n + k * 0x200000n) | PS | perm);
  superpages.push(iova);
}
// A 1 GiB superpage (PS at level 3).
setEntry(0x8000000000n, 3, 0x4000000000n | PS | RW);
superpages.push(0x8000000000n);
// A page directory entry that is read-only above read-write PTEs: writes must fail (R/W are ANDed over levels).
// Below a write-only PDE, a PTE with a reserved bit: a read reports Ch, not 6h (rights only after a well-formed walk).
const WO_PDE = 0x210000000000n;
{
  const pdTable = tableFor(pml4, 4, WO_PDE, 2);
  const pt = allocTable();
  mem.write64(pdTable + 8n * ((WO_PDE >> 21n) & 0x1ffn), pt | W);
  mem.write64(pt, 0x123a000n | bit(51) | RW); // reserved address bit 51
  mem.write64(pt + 8n, 0x123b000n | RW);
}
{
  const base = 0x200000000000n;
  const pdTable = tableFor(pml4, 4, base, 2);
  const pt = allocTable();
  mem.write64(pdTable + 8n * ((base >> 21n) & 0x1ffn), pt | R);
  for (let i = 0n; i < 64n; i++) {
    mem.write64(pt + 8n * i, randomTarget() | RW);
    mapped4k.push(base + (i << 12n));
  }
}
// The 3-level device: a few pages below 2^39.
const mapped3 = [0x1000n, 0x7f_ffff_f000n, 0x12_3456_7000n];
for (const iova of mapped3) setEntry(iova, 1, randomTarget() | RW, pdpt3, 3);

// Hand-checked special cases: [iova, sid, dir, expected result, description].
const SPECIAL = 0x300000000000n; // a private PML4 slot for the odd entries
const sp = (i: bigint): bigint => SPECIAL + (i << 12n);
setEntry(sp(0n), 1, 0x1234000n | bit(11) | RW); // SNP without ECAP.SC -> Ch
setEntry(sp(1n), 1, 0x1235000n | bit(51) | RW); // address bit 51 (>= aw) -> Ch
setEntry(sp(2n), 1, 0x1236000n | bit(62) | RW); // TM without ECAP.DT -> Ch
setEntry(sp(3n), 1, 0x1237000n | bits(6, 2) | PS | bits(61, 52) | bit(63) | RW); // ignored bits -> ok
setEntry(sp(4n), 1, 0xfee00000n | RW); // output in the interrupt range -> Eh
setEntry(sp(5n), 1, 0x1238000n | bit(11) | R); // read-only with a reserved bit: write -> Ch (reserved first)
setEntry(sp(6n), 1, 0x1239000n | W); // write-only PTE: read -> 6h at the leaf
mem.write64(tableFor(pml4, 4, sp(7n), 1) + 8n * 7n, bit(11) | bit(62) | bits(47, 12)); // R = W = 0 with reserved bits
setEntry(0x310000000000n, 2, 0xfee00000n | PS | RW); // 2 MiB superpage over the interrupt range -> Eh
setEntry(0x320000000000n, 2, 0x40201000n | PS | RW); // 2 MiB superpage with address bit 12 -> Ch
setEntry(0x330000000000n, 3, 0x40000000n | bit(20) | PS | RW); // 1 GiB superpage with bit 20 -> Ch
setEntry(0x340000000000n, 2, allocTable() | bit(11) | RW); // non-leaf PDE with bit 11 -> Ch
mem.write64(pml4 + 8n * 0x1f0n, allocTable() | PS | RW); // PML4E with PS (reserved at level 4) -> Ch
const pml4Ps = 0x1f0n << 39n;

type Special = [bigint, number, 'r' | 'w', TranslationResult, string];
const ok = (gpa: bigint): TranslationResult => ({ ok: true, gpa });
const fl = (fault: number): TranslationResult => ({ ok: false, fault });
const A0 = mem.read64(tableFor(pml4, 4, 0x40000000n, 1)) & bits(47, 12); // target of the first region-A page
const special: Special[] = [
  [0x40000000n + 0x123n, SID_DEV, (mem.read64(tableFor(pml4, 4, 0x40000000n, 1)) & 1n) ? 'r' : 'w', ok(A0 | 0x123n),
    'first region-A page'],
  [0x100000000n + 0x1abcden, SID_DEV, 'w', ok(0x200000000n + 0x1abcden), '2 MiB superpage, RW'],
  [0x100200000n + 0x5n, SID_DEV, 'w', fl(0x5), '2 MiB superpage, read-only, write'],
  [0x100200000n + 0x5n, SID_DEV, 'r', ok(0x200200005n), '2 MiB superpage, read-only, read'],
  [0x100400000n + 0x7n, SID_DEV, 'r', fl(0x6), '2 MiB superpage, write-only, read'],
  [0x8000000000n + 0x3abcdef1n, SID_DEV, 'r', ok(0x4000000000n + 0x3abcdef1n), '1 GiB superpage'],
  [0x200000000000n + 0x10n, SID_DEV, 'r', ok(mem.read64(tableFor(pml4, 4, 0x200000000000n, 1)) & bits(47, 12) | 0x10n),
    'read under a read-only PDE'],
  [0x200000000000n + 0x10n, SID_DEV, 'w', fl(0x5), 'write under a read-only PDE'],
  [0x7000_0000_0000n, SID_DEV, 'r', fl(0x6), 'not present (PML4E), read'],
  [0x7000_0000_0000n, SID_DEV, 'w', fl(0x5), 'not present (PML4E), write'],
  [0x40000000n + (3000n << 12n), SID_DEV, 'r', fl(0x6), 'not present (PTE), read'],
  [0x40000000n + (3000n << 12n), SID_DEV, 'w', fl(0x5), 'not present (PTE), write'],
  [sp(0n), SID_DEV, 'r', fl(0xc), 'PTE bit 11 (SNP)'],
  [sp(1n), SID_DEV, 'r', fl(0xc), 'PTE bit 51'],
  [sp(2n), SID_DEV, 'w', fl(0xc), 'PTE bit 62'],
  [sp(3n) + 0xabcn, SID_DEV, 'w', ok(0x1237abcn), 'PTE ignored bits 6:2, 7, 61:52, 63'],
  [sp(4n) + 4n, SID_DEV, 'r', fl(0xe), 'PTE -> interrupt range'],
  [sp(5n), SID_DEV, 'w', fl(0xc), 'read-only PTE with reserved bit, write (reserved before rights)'],
  [sp(6n) + 8n, SID_DEV, 'r', fl(0x6), 'write-only PTE, read'],
  [sp(6n) + 8n, SID_DEV, 'w', ok(0x1239008n), 'write-only PTE, write'],
  [sp(7n), SID_DEV, 'r', fl(0x6), 'not-present PTE with reserved bits, read (not present first)'],
  [sp(7n), SID_DEV, 'w', fl(0x5), 'not-present PTE with reserved bits, write'],
  [WO_PDE + 0x20n, SID_DEV, 'r', fl(0xc), 'reserved PTE under a write-only PDE, read (Ch, not 6h)'],
  [WO_PDE + 0x1020n, SID_DEV, 'r', fl(0x6), 'good PTE under a write-only PDE, read'],
  [WO_PDE + 0x1020n, SID_DEV, 'w', ok(0x123b020n), 'good PTE under a write-only PDE, write'],
  [sp(5n), SID_DEV, 'r', fl(0xc), 'read-only PTE with reserved bit, read'],
  [0x310000000000n + 0x1234n, SID_DEV, 'r', fl(0xe), '2 MiB superpage -> interrupt range'],
  [0x320000000000n, SID_DEV, 'r', fl(0xc), '2 MiB superpage with address bit 12'],
  [0x330000000000n, SID_DEV, 'r', fl(0xc), '1 GiB superpage with address bit 20'],
  [0x340000000000n, SID_DEV, 'r', fl(0xc), 'non-leaf PDE with bit 11'],
  [pml4Ps, SID_DEV, 'r', fl(0xc), 'PML4E with PS'],
  [1n << 48n, SID_DEV, 'r', fl(0x4), 'iova = 2^48'],
  [(1n << 64n) - 1n, SID_DEV, 'w', fl(0x4), 'iova = 2^64 - 1'],
  [0x1000n + 0x42n, SID_3LVL, 'r', ok(mem.read64(tableFor(pdpt3, 3, 0x1000n, 1) + 8n) & bits(47, 12) | 0x42n),
    '3-level device'],
  [1n << 39n, SID_3LVL, 'r', fl(0x4), '3-level device, iova = 2^39 (min(aw, AGAW) rule)'],
  [0x40000000n, 0x100, 'r', fl(0x1), 'root not present'],
  [0x40000000n, 0x200, 'r', fl(0xa), 'root lo bit 1'],
  [0x40000000n, 0x300, 'r', fl(0xa), 'root hi != 0'],
  [0x40000000n, 0x400, 'r', fl(0xa), 'root CTP bit 50'],
  [0x40000000n, 0x20, 'r', fl(0x2), 'context not present'],
  [0x40000000n, 0x21, 'r', fl(0x3), 'context AW=3 with aw 48'],
  [0x40000000n, 0x22, 'r', fl(0x3), 'context TT=10'],
  [0x40000000n, 0x23, 'r', fl(0xb), 'context lo bit 4'],
  [0x40000000n, 0x24, 'r', fl(0xb), 'context hi bit 7'],
  [0x40000000n, 0x25, 'r', fl(0xb), 'context hi bit 40'],
  [0x40000000n, 0x26, 'r', fl(0xb), 'context lo bit 48'],
];

const same = (a: TranslationResult, b: TranslationResult): boolean =>
  a.ok ? b.ok && a.gpa === b.gpa : !b.ok && a.fault === b.fault;
const show = (r: TranslationResult): string => (r.ok ? `ok ${hex(r.gpa)}` : `fault ${r.fault.toString(16)}h`);
const translate = (r: Req): TranslationResult => refTranslate(mem, AW, RTA, r.iova, r.sid, r.dir);

// 1. The reference walk agrees with the hand-written answers.
for (const [iova, sid, dir, want, what] of special) {
  const got = translate({ iova, sid, dir });
  check(same(got, want), `reference walk, ${what}: got ${show(got)}, want ${show(want)}`);
}

// 2. The request list: every special case, every mapped page (random offset and direction), superpages, holes.
for (const [iova, sid, dir] of special) requests.push({ iova, sid, dir });
for (const iova of mapped4k) {
  const n = 1 + randInt(2);
  for (let i = 0; i < n; i++) requests.push({ iova: iova | BigInt(randInt(4096)), sid: SID_DEV, dir: rand() < 0.5 ? 'r' : 'w' });
}
for (const iova of superpages) {
  const size = iova === 0x8000000000n ? 1n << 30n : 1n << 21n;
  for (let i = 0; i < 200; i++) requests.push({ iova: iova + randBig(30) % size, sid: SID_DEV, dir: rand() < 0.5 ? 'r' : 'w' });
}
for (let i = 0; i < 1500; i++) requests.push({ iova: randBig(48), sid: SID_DEV, dir: rand() < 0.5 ? 'r' : 'w' }); // mostly holes
for (const iova of mapped3) requests.push({ iova: iova | 0x77n, sid: SID_3LVL, dir: 'w' });
for (let i = requests.length - 1; i > 0; i--) {
  const j = randInt(i + 1);
  [requests[i], requests[j]] = [requests[j], requests[i]];
}

const img: NativeImage = { aw: AW, rta: RTA, frames: mem.frames, requests };
const expected = requests.map(translate);
const wantChecksum = expectedChecksum(expected);
const wantFaults = expected.filter((r) => !r.ok).length;
const faultKinds = new Map<number, number>();
for (const r of expected) if (!r.ok) faultKinds.set(r.fault, (faultKinds.get(r.fault) ?? 0) + 1);
console.log(`image: aw ${AW}, ${mem.frames.size} frames, ${requests.length} requests, ${wantFaults} faulting ` +
  `(${[...faultKinds].sort((a, b) => a[0] - b[0]).map(([f, n]) => `${f.toString(16)}h x${n}`).join(', ')})`);

// 3. Every special case on its own through the C walker, in both modes, so a mismatch names the case.
const bin = buildNative();
console.log(`native binary: ${bin}`);
for (const [iova, sid, dir, want, what] of special) {
  for (const mode of [0, 1] as const) {
    const r = runNative({ ...img, requests: [{ iova, sid, dir }] }, mode, 1);
    const wantSum = expectedChecksum([want]);
    check(r.checksum === wantSum && r.faults === (want.ok ? 0 : 1) && r.ops === 1,
      `native mode ${mode}, ${what}: got ${hex(r.checksum)} (${r.faults} faults), want ${hex(wantSum)}`);
  }
}

// 4. The whole image in both modes: checksum and fault count must equal the reference walk's.
const ITER = { 0: 200, 1: 2000 } as const;
const ns: Record<number, number> = {};
for (const mode of [0, 1] as const) {
  const r = runNative(img, mode, ITER[mode]);
  check(r.checksum === wantChecksum, `mode ${mode} checksum ${hex(r.checksum)}, want ${hex(wantChecksum)}`);
  check(r.faults === wantFaults, `mode ${mode} faults ${r.faults}, want ${wantFaults}`);
  check(r.ops === ITER[mode] * requests.length, `mode ${mode} ops ${r.ops}, want ${ITER[mode] * requests.length}`);
  check(Number.isFinite(r.nsPerOp) && r.nsPerOp > 0, `mode ${mode} ns_per_op ${r.nsPerOp}`);
  ns[mode] = r.nsPerOp;
  console.log(`mode ${mode} (${mode === 0 ? 'walk' : 'hash-lookup'}): ${r.nsPerOp.toFixed(2)} ns/op over ${r.ops} ops, ` +
    `checksum ${hex(r.checksum)}, ${r.faults} faults`);
}

// 5. Malformed images are refused with a non-zero exit and a message, never read past the end.
{
  const here = dirname(fileURLToPath(import.meta.url));
  const path = join(here, '..', 'out', `selftest-bad-${process.pid}.bin`);
  const small: NativeImage = { aw: 48, rta: RTA, frames: new Map([[0x100n, new Uint8Array(4096)]]),
    requests: [{ iova: 0n, sid: 0, dir: 'r' }] };
  writeImage(small, 0, path);
  const good = readFileSync(path);
  const variants: [string, Buffer][] = [
    ['bad magic', Buffer.concat([Buffer.from([0, 0, 0, 0]), good.subarray(4)])],
    ['truncated header', good.subarray(0, 20)],
    ['truncated body', good.subarray(0, good.length - 1)],
    ['trailing bytes', Buffer.concat([good, Buffer.alloc(1)])],
    ['nframes too large', (() => { const b = Buffer.from(good); b.writeUInt32LE(0xffffffff, 12); return b; })()],
    ['bad version', (() => { const b = Buffer.from(good); b.writeUInt32LE(2, 4); return b; })()],
    ['bad aw', (() => { const b = Buffer.from(good); b.writeUInt32LE(40, 8); return b; })()],
    ['bad mode', (() => { const b = Buffer.from(good); b.writeUInt32LE(2, 20); return b; })()],
    ['bad dir', (() => { const b = Buffer.from(good); b[good.length - 6] = 7; return b; })()],
    ['empty file', Buffer.alloc(0)],
  ];
  try {
    const r0 = spawnSync(bin, [path, '3'], { encoding: 'utf8' });
    check(r0.status === 0 && /^\{"ns_per_op": [0-9.]+, "ops": 3, "checksum": "0x[0-9a-f]+", "faults": 1\}\n$/.test(r0.stdout),
      `well-formed small image: exit ${r0.status}, stdout ${JSON.stringify(r0.stdout)}`);
    for (const [what, bytes] of variants) {
      writeFileSync(path, bytes);
      const r = spawnSync(bin, [path, '1'], { encoding: 'utf8' });
      check(r.status !== 0 && r.stderr.trim().length > 0 && r.stdout === '',
        `malformed (${what}): exit ${r.status}, stderr ${JSON.stringify(r.stderr)}`);
    }
    const missing = spawnSync(bin, [path + '.missing', '1'], { encoding: 'utf8' });
    check(missing.status !== 0 && missing.stderr.length > 0, 'missing file is refused');
    const badIter = spawnSync(bin, [path, 'x'], { encoding: 'utf8' });
    check(badIter.status !== 0 && badIter.stderr.length > 0, 'bad ITERATIONS is refused');
  } finally {
    unlinkSync(path);
  }
}

if (failures) {
  console.error(`native self-test: ${failures} failure(s)`);
  process.exit(1);
}
console.log(`native self-test: OK (${special.length} hand-checked cases, ${requests.length} requests; ` +
  `walk ${ns[0].toFixed(2)} ns/op, hash-lookup ${ns[1].toFixed(2)} ns/op)`);
