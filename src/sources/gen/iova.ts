/**
 * The guest's IOVA allocator: dma-iommu's, as Linux 6.1 iova.c implements it
 * (top-down below 4 GiB first, size-aligned, per-size caches that reuse
 * freed IOVAs last-in first-out).
 *
 * Browser-safe: no Node imports.
 */
import { VtdError } from '../../errors.js';
import { GiB, PAGE } from './units.js';

/** First pfn above the 32-bit space (iovad->dma_32bit_pfn). */
const DMA_32BIT_PFN = 0x100000;
/** iovad->start_pfn: IOVA 0 is never handed out. */
const START_PFN = 1;
/** The anchor node's pfn (IOVA_ANCHOR): above every real pfn. */
const ANCHOR_PFN = 2 ** 53;
/** Sizes up to 2^(6-1) pages are cached per order (IOVA_RANGE_CACHE_MAX_SIZE). */
const IOVA_RANGE_CACHE_MAX_SIZE = 6;
const IOVA_MAG_SIZE = 128;
const MAX_GLOBAL_MAGS = 32;

/** order_base_2: the smallest k with 2^k >= n. */
function orderBase2(n: number): number {
  let k = 0;
  while (2 ** k < n) k++;
  return k;
}

/** One CPU's rcache of one order: two magazines and the shared depot. */
interface Rcache { loaded: number[]; prev: number[]; depot: number[][] }

/** Options of an IOVA domain. */
export interface IovaDomainOptions {
  /** Guest address width: the device's DMA limit is the domain aperture, 2^aw - 1. */
  aw: number;
  /** Inclusive pfn ranges never handed out (reserve_iova). */
  reserved?: readonly (readonly [number, number])[];
  /** Entries of the flush queue (0: strict, freed IOVAs are reusable at once). */
  flushQueue?: number;
}

/**
 * One DMA domain's IOVA allocator, following Linux 6.1: `alloc` is
 * iommu_dma_alloc_iova (a 32-bit address first for a 64-bit PCI device, then
 * the whole aperture), `free` is iommu_dma_free_iova (through the flush queue
 * when lazy). Underneath, alloc_iova_fast: sizes below 32 pages rounded up to
 * a power of two; a per-order cache (one CPU's two magazines of 128 and a
 * depot of 32) handing freed IOVAs back last-in first-out; otherwise the
 * tree's top-down next-fit search from the cached node, size-aligned.
 *
 * The tree is a sorted array of [lo, hi] pfn nodes ending with the anchor;
 * cached rcache entries stay allocated in it, as in Linux. Pfns are numbers
 * (exact below 2^53).
 */
export class IovaDomain {
  private readonly lo: number[] = [ANCHOR_PFN];
  private readonly hi: number[] = [ANCHOR_PFN];
  /** pfn_lo of cached32_node / cached_node: where the next search below / above 4 GiB starts. */
  private cached32 = ANCHOR_PFN;
  private cached = ANCHOR_PFN;
  /** A 32-bit request this large or larger failed since the last 32-bit free: fail it at once. */
  private max32AllocSize = DMA_32BIT_PFN;
  private readonly rcaches: Rcache[] = [];
  private readonly fq: [number, number][] = [];
  private readonly fqSize: number;
  /** Last pfn the device may use. */
  readonly limitPfn: number;

  constructor(o: IovaDomainOptions) {
    this.limitPfn = 2 ** (o.aw - 12) - 1;
    this.fqSize = o.flushQueue ?? 0;
    for (let i = 0; i < IOVA_RANGE_CACHE_MAX_SIZE; i++) this.rcaches.push({ loaded: [], prev: [], depot: [] });
    for (const [lo, hi] of o.reserved ?? []) this.insert(lo, hi);
  }

  /** Allocates `pages` pages of IOVA; returns the first pfn. */
  alloc(pages: number): number {
    let pfn = 0;
    if (this.limitPfn > DMA_32BIT_PFN - 1) pfn = this.allocFast(pages, DMA_32BIT_PFN - 1, false);
    if (!pfn) pfn = this.allocFast(pages, this.limitPfn, true);
    if (!pfn) throw new VtdError('GUEST_MEMORY', `IOVA space exhausted allocating ${pages} pages`, { pages });
    return pfn;
  }

  /** Frees what `alloc(pages)` returned, through the flush queue when there is one. */
  free(pfn: number, pages: number): void {
    if (this.fqSize === 0) {
      this.freeFast(pfn, pages);
      return;
    }
    // fq_ring_add: a full queue is flushed (the IOTLB invalidated) and its IOVAs freed first.
    if (this.fq.length >= this.fqSize) {
      for (const [p, n] of this.fq) this.freeFast(p, n);
      this.fq.length = 0;
    }
    this.fq.push([pfn, pages]);
  }

  /** Allocated nodes (reserved ranges, live and cached IOVAs), for tests. */
  nodes(): [number, number][] {
    return this.lo.slice(0, -1).map((lo, i) => [lo, this.hi[i]]);
  }

  private allocFast(pages: number, limitPfn: number, flushRcache: boolean): number {
    const size = pages < 1 << (IOVA_RANGE_CACHE_MAX_SIZE - 1) ? 2 ** orderBase2(pages) : pages;
    const cached = this.rcacheGet(size, limitPfn + 1);
    if (cached) return cached;
    for (;;) {
      const pfn = this.allocRange(size, limitPfn + 1);
      if (pfn >= 0) return pfn;
      if (!flushRcache) return 0;
      flushRcache = false;
      for (const rc of this.rcaches) {
        for (const mag of [rc.loaded, rc.prev, ...rc.depot]) this.freeMagazine(mag);
        rc.depot.length = 0;
      }
    }
  }

  private freeFast(pfn: number, pages: number): void {
    if (!this.rcacheInsert(pfn, pages)) this.remove(pfn);
  }

  private rcacheInsert(pfn: number, pages: number): boolean {
    const order = orderBase2(pages);
    if (order >= IOVA_RANGE_CACHE_MAX_SIZE) return false;
    const rc = this.rcaches[order];
    if (rc.loaded.length >= IOVA_MAG_SIZE) {
      if (rc.prev.length < IOVA_MAG_SIZE) {
        [rc.loaded, rc.prev] = [rc.prev, rc.loaded];
      } else {
        if (rc.depot.length < MAX_GLOBAL_MAGS) rc.depot.push(rc.loaded);
        else this.freeMagazine(rc.loaded);
        rc.loaded = [];
      }
    }
    rc.loaded.push(pfn);
    return true;
  }

  private rcacheGet(size: number, limitPfn: number): number {
    const order = orderBase2(size);
    if (order >= IOVA_RANGE_CACHE_MAX_SIZE) return 0;
    const rc = this.rcaches[order];
    if (rc.loaded.length === 0) {
      if (rc.prev.length > 0) [rc.loaded, rc.prev] = [rc.prev, rc.loaded];
      else if (rc.depot.length > 0) rc.loaded = rc.depot.pop()!;
      else return 0;
    }
    // iova_magazine_pop: the most recent entry that fits below the limit; swap-remove it.
    const mag = rc.loaded;
    const max = limitPfn - size;
    let i = mag.length - 1;
    while (mag[i] > max) {
      if (i === 0) return 0;
      i--;
    }
    const pfn = mag[i];
    mag[i] = mag[mag.length - 1];
    mag.pop();
    return pfn;
  }

  private freeMagazine(mag: number[]): void {
    for (const pfn of mag) this.remove(pfn);
    mag.length = 0;
  }

  /** Index of the first node with lo >= pfn. */
  private lowerBound(pfn: number): number {
    let a = 0, b = this.lo.length;
    while (a < b) {
      const m = (a + b) >> 1;
      if (this.lo[m] < pfn) a = m + 1;
      else b = m;
    }
    return a;
  }

  private insert(lo: number, hi: number): void {
    const i = this.lowerBound(lo);
    this.lo.splice(i, 0, lo);
    this.hi.splice(i, 0, hi);
  }

  /** __alloc_and_insert_iova_range with size_aligned; limitPfn is exclusive. Returns -1 when full. */
  private allocRange(size: number, limitPfn: number): number {
    const align = 2 ** orderBase2(size);
    if (limitPfn <= DMA_32BIT_PFN && size >= this.max32AllocSize) return -1;
    let ci = this.lowerBound(limitPfn <= DMA_32BIT_PFN ? this.cached32 : this.cached);
    const retryPfn = this.hi[ci];
    let high = limitPfn, low = START_PFN;
    for (;;) {
      let newPfn: number;
      // Walk down from the start node; stop at the first gap the aligned block fits in.
      do {
        high = Math.min(high, this.lo[ci]);
        newPfn = high >= size ? Math.floor((high - size) / align) * align : -1;
        ci--;
      } while (ci >= 0 && newPfn <= this.hi[ci] && newPfn >= low);
      if (high < size || newPfn < low) {
        if (low === START_PFN && retryPfn < limitPfn) {
          // Retry the part above the cached node that the first walk skipped.
          high = limitPfn;
          low = retryPfn + 1;
          ci = this.findLimit(limitPfn);
          continue;
        }
        this.max32AllocSize = size;
        return -1;
      }
      this.insert(newPfn, newPfn + size - 1);
      if (newPfn + size - 1 < DMA_32BIT_PFN) this.cached32 = newPfn;
      else this.cached = newPfn;
      return newPfn;
    }
  }

  /** iova_find_limit: the node a retry walk starts from. */
  private findLimit(limitPfn: number): number {
    if (limitPfn > DMA_32BIT_PFN) return this.lo.length - 1;
    let i = 0;
    while (this.hi[i] < limitPfn) i++;
    return i;
  }

  /** remove_iova, with __cached_rbnode_delete_update. */
  private remove(pfn: number): void {
    const i = this.lowerBound(pfn);
    if (this.lo[i] !== pfn) throw new VtdError('ARGUMENT', `IOVA pfn 0x${pfn.toString(16)} is not allocated`, { pfn });
    const next = this.lo[i + 1];
    const hi = this.hi[i];
    if (pfn === this.cached32 || (hi < DMA_32BIT_PFN && pfn >= this.cached32)) this.cached32 = next;
    if (pfn < DMA_32BIT_PFN) this.max32AllocSize = DMA_32BIT_PFN;
    if (pfn >= this.cached) this.cached = next;
    this.lo.splice(i, 1);
    this.hi.splice(i, 1);
  }
}

/**
 * IOVA ranges a Linux guest on QEMU's q35 machine reserves in every DMA
 * domain (inclusive pfn ranges): the interrupt window 0xfee00000-0xfeefffff
 * (IOMMU_RESV_MSI) and the PCI host bridge's memory windows
 * (iova_reserve_pci_windows), as the recorded guest's dmesg lists them for
 * 1 GiB: [0xa0000, 0xbffff], [low RAM end, 0xafffffff], [0xc0000000,
 * 0xfebfffff] and 32 GiB above 4 GiB and high RAM.
 */
export function q35ReservedIova(ram: number): [number, number][] {
  const lowmem = ram < 0xb0000000 ? ram : 0x80000000;
  const high = Math.max(0, ram - lowmem);
  const hole64 = Math.ceil((4 * GiB + high) / GiB) * GiB;
  const r: [number, number][] = [[0xa0, 0xbf]];
  if (lowmem < 0xb0000000) r.push([Math.ceil(lowmem / PAGE), 0xaffff]);
  r.push([0xc0000, 0xfebff], [0xfee00, 0xfeeff], [hole64 / PAGE, (hole64 + 32 * GiB) / PAGE - 1]);
  return r;
}
