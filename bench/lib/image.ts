// Table images shared by the suites: guest memory holding legacy-mode root, context and second-level tables
// (vtd-digest.md §3.2, §3.3, §4), plus the DMA requests run against them. One image feeds the Wasm core, the
// reference model and the native C walker byte for byte, so the three answer the very same questions.

import type { NativeImage } from '../native/native.js';

/** Guest RAM of every unit and model built here (the tables live far below its end). */
export const RAM_BYTES = 0x10000000;
/** Root table (RTADDR) and the context table of bus 0, as in test/fixtures/conformance/basic-4level.jsonl. */
export const RTA = 0x100000n;
const CONTEXT_TABLE = 0x101000n;
/** The one device: 00:03.0 (devfn 0x18), domain 1, AW = 2 (48-bit input, 4 levels). */
export const SID = 0x18;
export const DID = 1;
const AW_4LEVEL = 2n;
/** Paging structures are allocated upwards from here. */
const FIRST_TABLE = 0x200000n;

const SL_R = 1n;
const SL_W = 2n;
const SL_RW = 3n;
const SL_SNP = 1n << 11n; // reserved in a leaf without ECAP.SC (digest §4.3)
const ADDR_MASK_48 = ((1n << 48n) - 1n) & ~0xfffn;

/** The interrupt address range (digest §5.1): the core never walks for input addresses in it. */
const INTR_FIRST = 0xfee00000;
const INTR_LAST = 0xfeefffff;

export type Direction = 'r' | 'w';

/** One DMA request of a benchmark, with the iova both as a number (host paths) and a bigint (model, C image). */
export interface BenchRequest {
  iova: number;
  iovaBig: bigint;
  sid: number;
  dir: Direction;
  len: number;
}

/** Guest memory as 4 KiB frames keyed by gfn; frames not present read as zero. */
export class GuestFrames {
  readonly frames = new Map<bigint, Uint8Array>();

  private view(gpa: bigint, create: boolean): DataView | undefined {
    const gfn = gpa >> 12n;
    let f = this.frames.get(gfn);
    if (!f) {
      if (!create) return undefined;
      f = new Uint8Array(4096);
      this.frames.set(gfn, f);
    }
    return new DataView(f.buffer, f.byteOffset, 4096);
  }

  write64(gpa: bigint, value: bigint): void {
    this.view(gpa, true)!.setBigUint64(Number(gpa & 0xfffn), value, true);
  }

  read64(gpa: bigint): bigint {
    return this.view(gpa, false)?.getBigUint64(Number(gpa & 0xfffn), true) ?? 0n;
  }
}

/** A table image with its request list. */
export interface TableImage {
  aw: 48;
  rta: bigint;
  frames: Map<bigint, Uint8Array>;
  requests: BenchRequest[];
  /** 4 KiB pages mapped by the second-level tables. */
  mappedPages: number;
  /** Paging-structure frames (PML4, PDPT, PD, PT). */
  tables: number;
  /** One line for the report. */
  description: string;
}

/** Deterministic PRNG (mulberry32), so every run and every commit benchmarks the same image. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Builds root, context and 4-level second-level tables for device SID in domain DID. */
class TableBuilder {
  readonly mem = new GuestFrames();
  private nextTable = FIRST_TABLE;
  tables = 0;
  readonly pml4: bigint;

  constructor() {
    this.mem.write64(RTA, CONTEXT_TABLE | 1n); // root entry of bus 0: CTP | P
    this.mem.write64(RTA + 8n, 0n);
    this.pml4 = this.allocTable();
    const ctx = CONTEXT_TABLE + 16n * BigInt(SID & 0xff);
    this.mem.write64(ctx, this.pml4 | 1n); // SLPTPTR | TT = 00 | P
    this.mem.write64(ctx + 8n, (BigInt(DID) << 8n) | AW_4LEVEL);
  }

  allocTable(): bigint {
    const a = this.nextTable;
    this.nextTable += 0x1000n;
    if (this.nextTable > BigInt(RAM_BYTES)) throw new Error('bench image: paging structures exceed guest RAM');
    this.mem.write64(a, 0n); // materialise the zeroed frame
    this.tables++;
    return a;
  }

  /** The table holding iova's entry at `level`, creating RW non-leaf entries (and tables) on the way. */
  tableFor(iova: bigint, level: number): bigint {
    let table = this.pml4;
    for (let l = 4; l > level; l--) {
      const slot = table + 8n * ((iova >> BigInt(12 + 9 * (l - 1))) & 0x1ffn);
      let e = this.mem.read64(slot);
      if ((e & SL_RW) === 0n) {
        e = this.allocTable() | SL_RW;
        this.mem.write64(slot, e);
      }
      table = e & ADDR_MASK_48;
    }
    return table;
  }

  /** Sets iova's level-1 entry (a 4 KiB leaf). */
  setLeaf(iova: bigint, entry: bigint): void {
    this.mem.write64(this.tableFor(iova, 1) + 8n * ((iova >> 12n) & 0x1ffn), entry);
  }

  /** Whether iova's walk reaches a present leaf (every level present). */
  isMapped(iova: bigint): boolean {
    let table = this.pml4;
    for (let l = 4; l >= 1; l--) {
      const e = this.mem.read64(table + 8n * ((iova >> BigInt(12 + 9 * (l - 1))) & 0x1ffn));
      if ((e & SL_RW) === 0n) return false;
      table = e & ADDR_MASK_48;
    }
    return true;
  }
}

function overlapsInterruptRange(iova: number, len: number): boolean {
  return iova <= INTR_LAST && iova + len - 1 >= INTR_FIRST;
}

function request(iova: bigint, dir: Direction, len: number): BenchRequest {
  return { iova: Number(iova), iovaBig: iova, sid: SID, dir, len };
}

/**
 * The walk image shared by walk4, iotlb-hit and iotlb-miss: aw 48, 4-level tables, 8192 distinct 4 KiB pages
 * scattered as 256 random 1 GiB regions x 4 random 2 MiB slots x 8 random pages, so that consecutive requests walk
 * different PDPT, PD and PT tables (about 1,500 paging-structure frames, 6 MiB). Leaves point at random frames
 * between 4 GiB and 2^44. One request per page (random 8-byte-aligned offset, 8 bytes, read or write at random),
 * plus 64 requests to unmapped iovas, shuffled. Faults, all deliberate: ~1.5% of pages are read-only and ~1.5%
 * write-only (5h/6h for the other direction), 16 leaves are read-only with the reserved SNP bit (Ch for either
 * direction in the core's order of checks), and the 64 holes (5h/6h at the first not-present level).
 */
export function buildWalkImage(seed = 0x1d07ab1e): TableImage {
  const rand = rng(seed);
  const randInt = (n: number): number => Math.floor(rand() * n);
  const b = new TableBuilder();

  const REGIONS = 256;
  const SLOTS_PER_REGION = 4;
  const PAGES_PER_SLOT = 8;
  const regions = new Set<number>();
  while (regions.size < REGIONS) {
    const r = randInt(1 << 18); // 1 GiB regions of the 48-bit space
    if (r !== 3) regions.add(r); // [3 GiB, 4 GiB) holds the interrupt range
  }
  const pages: bigint[] = [];
  for (const r of regions) {
    const slots = new Set<number>();
    while (slots.size < SLOTS_PER_REGION) slots.add(randInt(512));
    for (const s of slots) {
      const idx = new Set<number>();
      while (idx.size < PAGES_PER_SLOT) idx.add(randInt(512));
      for (const i of idx) pages.push((BigInt(r) << 30n) | (BigInt(s) << 21n) | (BigInt(i) << 12n));
    }
  }

  const RESERVED_LEAVES = 16;
  const reqs: BenchRequest[] = [];
  pages.forEach((page, n) => {
    const target = (0x100000n + BigInt(randInt(0xfff00000))) << 12n; // 4 GiB .. 2^44: never the interrupt range
    const p = rand();
    let entry: bigint;
    if (n < RESERVED_LEAVES) entry = target | SL_SNP | SL_R;
    else entry = target | (p < 0.015 ? SL_R : p < 0.03 ? SL_W : SL_RW);
    b.setLeaf(page, entry);
    reqs.push(request(page + BigInt(8 * randInt(512)), rand() < 0.5 ? 'r' : 'w', 8));
  });

  // Holes: half anywhere in the 48-bit space (usually not present at PML4 or PDPT level), half in mapped page
  // tables at an unmapped index (not present at the leaf, after a full walk).
  const HOLES = 64;
  let holes = 0;
  while (holes < HOLES) {
    const iova = holes < HOLES / 2
      ? BigInt(randInt(1 << 24)) << 24n | BigInt(randInt(1 << 12)) << 12n
      : (pages[randInt(pages.length)] & ~0x1fffffn) | (BigInt(randInt(512)) << 12n);
    if (b.isMapped(iova) || overlapsInterruptRange(Number(iova), 8)) continue;
    reqs.push(request(iova, rand() < 0.5 ? 'r' : 'w', 8));
    holes++;
  }

  for (let i = reqs.length - 1; i > 0; i--) {
    const j = randInt(i + 1);
    [reqs[i], reqs[j]] = [reqs[j], reqs[i]];
  }
  return {
    aw: 48, rta: RTA, frames: b.mem.frames, requests: reqs, mappedPages: pages.length, tables: b.tables,
    description: `aw 48, 4-level, ${pages.length} pages in ${REGIONS} x ${SLOTS_PER_REGION} x ${PAGES_PER_SLOT} ` +
      `scattered groups, ${b.tables} table frames, ${reqs.length} requests`,
  };
}

/**
 * The fill image of invalidation-cost: 65,536 consecutive 4 KiB pages from iova 0 (one PDPT entry, 128 PD entries)
 * that all share one page table of 512 RW leaves, so any number of distinct IOTLB entries costs four table frames.
 * Requests: one read per page, in page order.
 */
export function buildFillImage(): TableImage {
  const b = new TableBuilder();
  const PD_ENTRIES = 128;
  const pt = b.allocTable();
  for (let i = 0n; i < 512n; i++) b.mem.write64(pt + 8n * i, ((0x200000n + i) << 12n) | SL_RW);
  const pd = b.tableFor(0n, 2);
  for (let i = 0n; i < BigInt(PD_ENTRIES); i++) b.mem.write64(pd + 8n * i, pt | SL_RW);
  const reqs: BenchRequest[] = [];
  for (let p = 0; p < PD_ENTRIES * 512; p++) reqs.push(request(BigInt(p) << 12n, 'r', 8));
  return {
    aw: 48, rta: RTA, frames: b.mem.frames, requests: reqs, mappedPages: reqs.length, tables: b.tables,
    description: `aw 48, ${reqs.length} consecutive pages sharing one page table`,
  };
}

/** The image in the native walker's format, for `requests` (default: the image's own). */
export function toNativeImage(img: TableImage, requests: readonly BenchRequest[] = img.requests): NativeImage {
  return {
    aw: img.aw, rta: img.rta, frames: img.frames,
    requests: requests.map((r) => ({ iova: r.iovaBig, sid: r.sid, dir: r.dir })),
  };
}
