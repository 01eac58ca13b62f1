/**
 * The network workload: an e1000 under Linux 6.1 (drivers/net/ethernet/intel/e1000/e1000_main.c).
 *
 * Browser-safe: no Node imports.
 */
import { Emitter, type DmaBuf } from './emit.js';
import type { NetworkGenOptions } from './options.js';
import { PAGE } from './units.js';

/** A 32 KiB page_frag chunk (order-3 compound page) and the frags still using it. */
interface Chunk { pfn: number; pages: number; refs: number; held: boolean }
interface Frag { chunk: Chunk; gpa: number; len: number }

/** e1000 maps MAXIMUM_ETHERNET_VLAN_SIZE bytes per RX buffer... */
const RX_BUFFER_LEN = 1522;
/** ...at NET_SKB_PAD (64) into a frag of SKB_DATA_ALIGN(1522 + 64) + SKB_DATA_ALIGN(sizeof(skb_shared_info)) = 1600 + 320. */
const RX_HEADROOM = 64;
const RX_FRAG_LEN = 1920;
/** e1000_clean_rx_irq hands cleaned slots back in groups of E1000_RX_BUFFER_WRITE. */
const RX_BUFFER_WRITE = 16;
/** Ethernet + IPv4 + TCP with timestamps: the linear head of a TCP frame; the payload goes in page frags. */
const TX_HEADER_LEN = 66;
/** Frames up to this size are built linear (one buffer): ACKs, pings, small UDP. */
const TX_LINEAR_MAX = 256;
/** TX heads come from kmalloc-1k slab objects; the data starts after the skb headroom. */
const TX_HEAD_SLOT = 1024;
const TX_HEAD_OFFSET = 128;
const DESC_LEN = 16;

export class Network {
  private readonly o: NetworkGenOptions;
  private txRingMem?: { buf: DmaBuf; pfns: number[] };
  private rxRingMem?: { buf: DmaBuf; pfns: number[] };
  private readonly rxSlots: ({ buf: DmaBuf; frag: Frag } | null)[];
  private rxNextToUse = 0;
  private rxNextToClean = 0;
  /** The device's next RX descriptor (RDH). */
  private rxHead = 0;
  /** Frame lengths received since the last poll, in slot order. */
  private readonly rxDone: number[] = [];
  private txTail = 0;
  private readonly txPending: { seq: number; bufs: DmaBuf[]; frags: Frag[]; head: number }[] = [];
  private rxCache: { chunk: Chunk | null; offset: number } = { chunk: null, offset: 0 };
  private txCache: { chunk: Chunk | null; offset: number } = { chunk: null, offset: 0 };
  private readonly headSlots: number[] = [];
  private seq = 0;

  constructor(private readonly e: Emitter) {
    this.o = e.o as NetworkGenOptions;
    this.rxSlots = new Array(this.o.rxRing).fill(null);
  }

  *run(): Generator<string> {
    const { o, e } = this;
    // e1000_open: TX ring, RX ring (dma_alloc_coherent, sizes aligned to 4 KiB), then the RX buffers.
    if (o.ringDma) {
      this.txRingMem = e.coherent(o.txRing * DESC_LEN);
      this.rxRingMem = e.coherent(o.rxRing * DESC_LEN);
    }
    this.allocRx(this.rxUnused());
    yield* e.drain();
    while (this.seq < o.ops) {
      const n = Math.min(1 + e.rng.below(o.burst), o.ops - this.seq);
      for (let k = 0; k < n; k++) {
        const len = this.frameLen();
        if (e.rng.float() < o.rxFraction) this.receive(len);
        else this.transmit(len);
        this.seq++;
      }
      this.poll(this.seq >= o.ops);
      yield* e.drain();
    }
    if (o.teardown) {
      // e1000_close: e1000_down cleans the rings (unmapping RX buffers), then the rings are freed.
      for (let i = 0; i < o.rxRing; i++) {
        const s = this.rxSlots[i];
        if (s) {
          e.unmap(s.buf);
          this.releaseFrag(s.frag);
          this.rxSlots[i] = null;
        }
      }
      if (this.txRingMem) e.freeCoherent(this.txRingMem);
      if (this.rxRingMem) e.freeCoherent(this.rxRingMem);
      yield* e.drain();
    }
  }

  private frameLen(): number {
    const { o, e } = this;
    if (typeof o.packetSize === 'number') return o.packetSize;
    if (o.packetSize === 'uniform') return e.rng.between(o.minPacket, o.maxPacket);
    // Simple IMIX 7:4:1 of 60, 590 and 1514-byte frames, clamped to the bounds.
    const r = e.rng.below(12);
    const len = r < 7 ? 60 : r < 11 ? 590 : 1514;
    return Math.min(o.maxPacket, Math.max(o.minPacket, len));
  }

  /** E1000_DESC_UNUSED. */
  private rxUnused(): number {
    const r = this.o.rxRing;
    return (this.rxNextToClean > this.rxNextToUse ? 0 : r) + this.rxNextToClean - this.rxNextToUse - 1;
  }

  /** e1000_alloc_rx_buffers: slots that kept their buffer (copybreak) are skipped. */
  private allocRx(count: number): void {
    for (; count > 0; count--) {
      const i = this.rxNextToUse;
      if (!this.rxSlots[i]) {
        const frag = this.allocFrag(RX_FRAG_LEN);
        const gpa = frag.gpa + RX_HEADROOM;
        this.rxSlots[i] = { buf: this.e.mapSingle(gpa, RX_BUFFER_LEN, 'w'), frag };
      }
      this.rxNextToUse = (i + 1) % this.o.rxRing;
    }
  }

  /** page_frag_alloc (6.1): carves a 32 KiB chunk from its end downwards; a chunk every frag has left is reused in place. */
  private allocFrag(len: number): Frag {
    const c = this.rxCache;
    if (!c.chunk || c.offset - len < 0) {
      if (c.chunk && c.chunk.refs === 0) c.offset = c.chunk.pages * PAGE;
      else {
        if (c.chunk) c.chunk.held = false;
        c.chunk = this.newChunk();
        c.offset = c.chunk.pages * PAGE;
      }
    }
    c.offset -= len;
    c.chunk!.refs++;
    return { chunk: c.chunk!, gpa: c.chunk!.pfn * PAGE + c.offset, len };
  }

  /** skb_page_frag_refill + tcp_sendmsg (6.1): a socket's chunk filled upwards; one frame's payload may span two chunks. */
  private txFrags(len: number): Frag[] {
    const c = this.txCache;
    const frags: Frag[] = [];
    while (len > 0) {
      if (c.chunk && c.chunk.refs === 0) c.offset = 0;
      else if (!c.chunk || c.offset + 32 > c.chunk.pages * PAGE) {
        if (c.chunk) c.chunk.held = false;
        c.chunk = this.newChunk();
        c.offset = 0;
      }
      const n = Math.min(len, c.chunk.pages * PAGE - c.offset);
      frags.push({ chunk: c.chunk, gpa: c.chunk.pfn * PAGE + c.offset, len: n });
      c.chunk.refs++;
      c.offset += n;
      len -= n;
    }
    return frags;
  }

  private newChunk(): Chunk {
    // An order-3 page when the buddy allocator has one, else a single page (as page_frag falls back).
    const pfn = this.e.ram.block(8);
    return pfn !== undefined ? { pfn, pages: 8, refs: 0, held: true } : { pfn: this.e.ram.page(), pages: 1, refs: 0, held: true };
  }

  private releaseFrag(f: Frag): void {
    f.chunk.refs--;
    if (f.chunk.refs === 0 && !f.chunk.held) this.e.ram.free(f.chunk.pfn, f.chunk.pages);
  }

  /** The device receives a frame into the next slot (QEMU e1000: descriptor read, data and FCS written, descriptor written back). */
  private receive(len: number): void {
    const { e } = this;
    const slot = this.rxHead;
    const s = this.rxSlots[slot]!;
    if (this.rxRingMem) e.dma(this.rxRingMem.buf, slot * DESC_LEN, DESC_LEN, 'r');
    e.dma(s.buf, 0, len + 4, 'w');
    if (this.rxRingMem) e.dma(this.rxRingMem.buf, slot * DESC_LEN, DESC_LEN, 'w');
    this.rxDone.push(len);
    this.rxHead = (slot + 1) % this.o.rxRing;
  }

  /** The stack hands a frame to e1000_xmit_frame: head and payload frags mapped, then the device reads them. */
  private transmit(len: number): void {
    const { e, o } = this;
    const head = this.headSlot();
    const headLen = len <= TX_LINEAR_MAX ? len : TX_HEADER_LEN;
    const frags = len > headLen ? this.txFrags(len - headLen) : [];
    const bufs = [e.mapSingle(head + TX_HEAD_OFFSET, headLen, 'r')];
    for (const f of frags) bufs.push(e.mapSingle(f.gpa, f.len, 'r'));
    const lens = [headLen, ...frags.map((f) => f.len)];
    for (let i = 0; i < bufs.length; i++) {
      const desc = this.txTail;
      if (this.txRingMem) e.dma(this.txRingMem.buf, desc * DESC_LEN, DESC_LEN, 'r');
      e.dma(bufs[i], 0, lens[i], 'r');
      // Only the last descriptor carries RS: the device writes back its status dword.
      if (this.txRingMem && i === bufs.length - 1) e.dma(this.txRingMem.buf, desc * DESC_LEN + 12, 4, 'w');
      this.txTail = (desc + 1) % o.txRing;
    }
    this.txPending.push({ seq: this.seq, bufs, frags, head });
  }

  /** A kmalloc-1k object for a TX head: the slab's freelist is last-in first-out. */
  private headSlot(): number {
    if (this.headSlots.length === 0) {
      const pfn = this.e.ram.page();
      for (let k = PAGE / TX_HEAD_SLOT - 1; k >= 0; k--) this.headSlots.push(pfn * PAGE + k * TX_HEAD_SLOT);
    }
    return this.headSlots.pop()!;
  }

  /** e1000_clean (NAPI): TX cleanup first, then RX. At the end every transmitted frame is reclaimed. */
  private poll(final: boolean): void {
    const { e, o } = this;
    while (this.txPending.length > 0 && (final || this.seq - 1 - this.txPending[0].seq >= o.txDelay)) {
      const p = this.txPending.shift()!;
      for (const b of p.bufs) e.unmap(b);
      for (const f of p.frags) this.releaseFrag(f);
      this.headSlots.push(p.head);
    }
    let cleaned = 0;
    for (const len of this.rxDone) {
      const i = this.rxNextToClean;
      const s = this.rxSlots[i]!;
      // e1000_copybreak: a short frame is copied out and its buffer stays mapped for the next one.
      if (len > o.copybreak) {
        e.unmap(s.buf);
        this.releaseFrag(s.frag);
        this.rxSlots[i] = null;
      }
      this.rxNextToClean = (i + 1) % o.rxRing;
      if (++cleaned >= RX_BUFFER_WRITE) {
        this.allocRx(cleaned);
        cleaned = 0;
      }
    }
    this.rxDone.length = 0;
    const unused = this.rxUnused();
    if (unused) this.allocRx(unused);
  }
}
