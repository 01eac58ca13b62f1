/**
 * The accelerator workload: few large long-lived buffers, many DMAs, occasional remaps.
 *
 * Browser-safe: no Node imports.
 */
import { Emitter, type DmaBuf } from './emit.js';
import type { AcceleratorGenOptions } from './options.js';
import { MiB, PAGE } from './units.js';

const SUPERPAGE_PAGES = 512;

interface AccBuffer { buf: DmaBuf; gpaPfn: number; cursor: number }

export class Accelerator {
  private readonly o: AcceleratorGenOptions;
  private readonly bufs: AccBuffer[] = [];
  private readonly slotPages: number;
  private readonly firstSlot: number;

  constructor(private readonly e: Emitter) {
    this.o = e.o as AcceleratorGenOptions;
    // Each buffer lives in its own 2 MiB-aligned slot of guest RAM, as large as the largest buffer.
    this.slotPages = this.o.maxSize / PAGE;
    const area = e.ram;
    const first = Math.ceil(area.first / SUPERPAGE_PAGES) * SUPERPAGE_PAGES;
    const spare = Math.floor((area.end - first - this.o.buffers * this.slotPages) / SUPERPAGE_PAGES);
    this.firstSlot = first + e.rng.between(0, spare) * SUPERPAGE_PAGES;
  }

  *run(): Generator<string> {
    const { o, e } = this;
    for (let i = 0; i < o.buffers; i++) this.bufs.push(this.mapBuffer(i));
    yield* e.drain();
    for (let d = 0; d < o.ops; d++) {
      const b = this.bufs[e.rng.below(o.buffers)];
      const dir = e.rng.float() < o.dmaReadFraction ? 'r' : 'w';
      e.dma(b.buf, this.offset(b), o.dmaLen, dir);
      if (o.remapEvery > 0 && (d + 1) % o.remapEvery === 0 && d + 1 < o.ops) {
        const i = e.rng.below(o.buffers);
        e.unmap(this.bufs[i].buf);
        this.bufs[i] = this.mapBuffer(i);
      }
      if (e.out.length >= 256) yield* e.drain();
    }
    if (o.teardown) for (const b of this.bufs) e.unmap(b.buf);
    yield* e.drain();
  }

  /** A buffer of random size (2 MiB multiple) at a random 2 MiB-aligned place in slot i: one physically contiguous map. */
  private mapBuffer(i: number): AccBuffer {
    const { o, e } = this;
    const units = e.rng.between(o.minSize / (2 * MiB), o.maxSize / (2 * MiB));
    const pages = units * SUPERPAGE_PAGES;
    const gpaPfn = this.firstSlot + i * this.slotPages + e.rng.between(0, (this.slotPages - pages) / SUPERPAGE_PAGES) * SUPERPAGE_PAGES;
    return { buf: e.mapRun(gpaPfn, pages, 'rw'), gpaPfn, cursor: 0 };
  }

  /** Byte offset of the next DMA: random (64-byte aligned inside a page), or the buffer's stream cursor. */
  private offset(b: AccBuffer): number {
    const { o, e } = this;
    const len = o.dmaLen;
    if (o.pattern === 'random') {
      return e.rng.below(b.buf.pages) * PAGE + 64 * e.rng.below(Math.floor((PAGE - len) / 64) + 1);
    }
    let at = b.cursor;
    if (at % PAGE + len > PAGE) at = (Math.floor(at / PAGE) + 1) * PAGE;
    if (at + len > b.buf.pages * PAGE) at = 0;
    b.cursor = at + len;
    return at;
  }
}
