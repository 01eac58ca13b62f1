/**
 * The storage workload: a blk-mq disk with an NVMe-like queue pair.
 *
 * Browser-safe: no Node imports.
 */
import { Emitter, type DmaBuf } from './emit.js';
import type { StorageGenOptions } from './options.js';
import { PAGE } from './units.js';

const SQE_LEN = 64;
const CQE_LEN = 16;

interface Request { buf: DmaBuf; pfns: number[]; dir: 'r' | 'w' }

export class Storage {
  private readonly o: StorageGenOptions;
  private sq?: { buf: DmaBuf; pfns: number[] };
  private cq?: { buf: DmaBuf; pfns: number[] };
  private sqTail = 0;
  private cqHead = 0;

  constructor(private readonly e: Emitter) {
    this.o = e.o as StorageGenOptions;
  }

  *run(): Generator<string> {
    const { o, e } = this;
    if (o.ringDma) {
      this.sq = e.coherent(o.qd * SQE_LEN);
      this.cq = e.coherent(o.qd * CQE_LEN);
    }
    yield* e.drain();
    const inflight: Request[] = [];
    let submitted = 0;
    while (submitted < o.ops || inflight.length > 0) {
      if (submitted < o.ops && inflight.length < o.qd) {
        inflight.push(this.submit());
        submitted++;
      } else {
        // Completions arrive in any order among the requests in flight.
        const k = e.rng.below(inflight.length);
        const r = inflight[k];
        inflight[k] = inflight[inflight.length - 1];
        inflight.pop();
        this.complete(r);
      }
      yield* e.drain();
    }
    if (o.teardown) {
      if (this.sq) e.freeCoherent(this.sq);
      if (this.cq) e.freeCoherent(this.cq);
      yield* e.drain();
    }
  }

  private pages(): number {
    const { o, e } = this;
    const lo = o.minSize / PAGE, hi = o.maxSize / PAGE;
    if (o.sizeDist === 'uniform') return e.rng.between(lo, hi);
    return 2 ** e.rng.between(Math.log2(lo), Math.log2(hi));
  }

  /** blk_mq_start_request + nvme_map_data: the bio's pages (page cache), dma_map_sg, the device fetches the command. */
  private submit(): Request {
    const { o, e } = this;
    const n = this.pages();
    const pfns = [e.ram.page()];
    for (let i = 1; i < n; i++) pfns.push(e.rng.float() < o.contig ? e.ram.pageAfter(pfns[i - 1]) : e.ram.page());
    // A read request: the device writes memory (DMA_FROM_DEVICE); a write: the device reads it.
    const dir = e.rng.float() < o.readFraction ? 'w' : 'r';
    const buf = e.mapPages(pfns, dir);
    if (this.sq) e.dma(this.sq.buf, this.sqTail * SQE_LEN, SQE_LEN, 'r');
    this.sqTail = (this.sqTail + 1) % o.qd;
    return { buf, pfns, dir };
  }

  /** The device moves the data and posts a completion; the driver's dma_unmap_sg unmaps the whole list at once. */
  private complete(r: Request): void {
    const { e, o } = this;
    for (let i = 0; i < r.pfns.length; i++) e.dma(r.buf, i * PAGE, PAGE, r.dir);
    if (this.cq) e.dma(this.cq.buf, this.cqHead * CQE_LEN, CQE_LEN, 'w');
    this.cqHead = (this.cqHead + 1) % o.qd;
    e.unmap(r.buf);
    for (const p of r.pfns) e.ram.free(p);
  }
}
