/**
 * What every generator shares: the stream of trace lines (header, attach,
 * then ops), the domain's IOVA allocator and guest RAM, and DMA buffers
 * mapped and unmapped through them.
 *
 * Browser-safe: no Node imports.
 */
import { PageAllocator } from './guest-ram.js';
import { IovaDomain, q35ReservedIova } from './iova.js';
import { dataArea, type CommonGenOptions } from './options.js';
import { Rng } from './rng.js';
import { PAGE } from './units.js';

/** pfn * 4096 + off as "0x..." without going through a double above 2^53. */
export function hexAddr(pfn: number, off: number): string {
  pfn += Math.floor(off / PAGE);
  off %= PAGE;
  if (pfn === 0) return '0x' + off.toString(16);
  return '0x' + pfn.toString(16) + off.toString(16).padStart(3, '0');
}

export type Perm = 'r' | 'w' | 'rw';

/** A mapped buffer: its IOVA allocation and where the buffer starts in it. */
export interface DmaBuf {
  iovaPfn: number;
  /** Pages of IOVA mapped (and allocated, before rounding). */
  pages: number;
  /** Byte offset of the buffer from iovaPfn's page (the DMA address is iovaPfn * 4096 + off). */
  off: number;
}

/** The state shared by the generators: trace line output, IOVA and guest page allocation. */
export class Emitter {
  readonly out: string[] = [];
  readonly rng: Rng;
  readonly iova: IovaDomain;
  readonly ram: PageAllocator;
  private readonly dmaHead: string;
  private readonly mapHead: string;
  private readonly unmapHead: string;

  constructor(readonly o: CommonGenOptions) {
    this.rng = new Rng(o.seed);
    this.iova = new IovaDomain({ aw: o.aw, reserved: q35ReservedIova(o.ram), flushQueue: o.flushQueue });
    const area = dataArea(o.ram);
    this.ram = new PageAllocator(this.rng, area.first, area.end);
    this.dmaHead = `{"op":"dma","sid":"${o.device}","iova":"`;
    this.mapHead = `{"op":"map","domain":${o.domain},"iova":"`;
    this.unmapHead = `{"op":"unmap","domain":${o.domain},"iova":"`;
  }

  /** The header and the device's attach. */
  head(): void {
    const o = this.o;
    this.out.push(
      `{"vtd-trace":1,"iommu":{"aw":${o.aw},"cm":${o.cm},"ram":"${hexAddr(o.ram / PAGE, 0)}"},"devices":["${o.device}"]}`,
      `{"op":"attach","sid":"${o.device}","domain":${o.domain}}`,
    );
  }

  /** dma_map_single / dma_map_page of [gpa, gpa + len): one map of the pages it spans. */
  mapSingle(gpa: number, len: number, perm: Perm): DmaBuf {
    const off = gpa % PAGE;
    const pages = Math.ceil((off + len) / PAGE);
    const iovaPfn = this.iova.alloc(pages);
    this.mapLine(iovaPfn, Math.floor(gpa / PAGE), pages, perm);
    return { iovaPfn, pages, off };
  }

  /** One map of `pages` physically contiguous pages from gpaPfn (a large contiguous buffer). */
  mapRun(gpaPfn: number, pages: number, perm: Perm): DmaBuf {
    const iovaPfn = this.iova.alloc(pages);
    this.mapLine(iovaPfn, gpaPfn, pages, perm);
    return { iovaPfn, pages, off: 0 };
  }

  /** dma_map_sg (and coherent allocations): one IOVA range, one map per physically contiguous run. */
  mapPages(pfns: readonly number[], perm: Perm): DmaBuf {
    const iovaPfn = this.iova.alloc(pfns.length);
    let start = 0;
    for (let i = 1; i <= pfns.length; i++) {
      if (i === pfns.length || pfns[i] !== pfns[i - 1] + 1) {
        this.mapLine(iovaPfn + start, pfns[start], i - start, perm);
        start = i;
      }
    }
    return { iovaPfn, pages: pfns.length, off: 0 };
  }

  /** Unmaps a whole buffer (one unmap) and frees its IOVA. */
  unmap(b: DmaBuf): void {
    this.out.push(`${this.unmapHead}${hexAddr(b.iovaPfn, 0)}","len":${b.pages * PAGE}}`);
    this.iova.free(b.iovaPfn, b.pages);
  }

  /** The device accesses [start, start + len) of a buffer: one dma op per 4 KiB page touched. */
  dma(b: DmaBuf, start: number, len: number, dir: 'r' | 'w'): void {
    let at = b.off + start;
    const end = at + len;
    while (at < end) {
      const n = Math.min(end, (Math.floor(at / PAGE) + 1) * PAGE) - at;
      this.out.push(`${this.dmaHead}${hexAddr(b.iovaPfn, at)}","len":${n},"dir":"${dir}"}`);
      at += n;
    }
  }

  /** dma_alloc_coherent of `bytes`: order-0 pages from the page allocator, mapped read-write. */
  coherent(bytes: number): { buf: DmaBuf; pfns: number[] } {
    const pfns: number[] = [];
    for (let i = 0; i < Math.ceil(bytes / PAGE); i++) pfns.push(this.ram.page());
    return { buf: this.mapPages(pfns, 'rw'), pfns };
  }

  freeCoherent(c: { buf: DmaBuf; pfns: number[] }): void {
    this.unmap(c.buf);
    for (const p of c.pfns) this.ram.free(p);
  }

  private mapLine(iovaPfn: number, gpaPfn: number, pages: number, perm: Perm): void {
    this.out.push(`${this.mapHead}${hexAddr(iovaPfn, 0)}","gpa":"${hexAddr(gpaPfn, 0)}","len":${pages * PAGE},"perm":"${perm}"}`);
  }

  *drain(): Generator<string> {
    const lines = this.out;
    for (let i = 0; i < lines.length; i++) yield lines[i];
    lines.length = 0;
  }
}
