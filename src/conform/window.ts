/**
 * The window tracker: knows when a trace observes an open window
 * (trace-format.md): a request whose translation reads an entry that the
 * guest changed after a cache may have taken it, before an invalidation that
 * covers it has completed. Then either the cached or the new entry is a
 * correct answer, and a difference between two correct units proves nothing.
 *
 * How. Before every dma and msi op the tracker reads the entries the request
 * uses (walk.ts), as our unit would, and remembers each present entry with
 * the cache that may hold it (context cache: root and context entries, by
 * requester; IOTLB: paging entries, by domain and IOVA range; interrupt entry
 * cache: IRTEs, by index). A `mem` op that changes a remembered entry makes
 * it dirty. An invalidation our unit performs (its invalidation events)
 * cleans the dirty entries it covers. QEMU does the same invalidations and
 * more (SRTP and TE changes flush everything, a domain-selective context
 * invalidation flushes every context entry, IRTEs are never cached); those
 * only make QEMU fresher, and the cause is kept for the report.
 *
 * Conservative in the direction that matters: an entry is remembered once
 * any request read it, and forgotten only by an invalidation that covers it.
 * A driver-like trace never has a request through a dirty entry.
 */
import type { Iommu, IommuEvent } from '../iommu.js';
import type { TraceOp } from '../trace/parse.js';
import type { WindowCause } from './deviations.js';
import { decodeMsi, levelSpan, readQ, walkDma } from './walk.js';
import { RTADDR_TTM_SM } from '../guest/layout.js';

type Cache = 'ctx' | 'iotlb' | 'iec';

interface Use {
  /** ctx: requester ids; iotlb: domain ids with IOVA ranges; iec: indexes. */
  sid?: number;
  /** DID of the context entry read (for ctx uses: the DID a cache would tag it with). */
  did?: number;
  base?: bigint;
  span?: bigint;
  index?: number;
  /** Scalable mode: a PASID directory or PASID entry (ctx uses), cached by the PASID cache. */
  pasidEntry?: boolean;
  /** Scalable mode: the RID_PASID the request used (iotlb uses), the tag of first-stage IOTLB entries. */
  pasid?: number;
}

interface Remembered {
  cache: Cache;
  value: bigint;
  uses: Use[];
  /** Scalable mode: the other quadword of the same PASID entry, forgotten with this one when it becomes dirty. */
  pair?: bigint;
}

interface Dirty {
  cache: Cache;
  uses: Use[];
  /** Every requester (an SRTP to another root table). */
  anySid?: boolean;
  /** QEMU has flushed it since (SRTP/TE), or flushed it with a domain-selective context invalidation. */
  srtpTe: boolean;
  ctxDsi: boolean;
}

export class WindowTracker {
  private readonly remembered = new Map<bigint, Remembered>();
  private dirty: Dirty[] = [];
  /** Requests that went through an open window so far. */
  observed = 0;

  constructor(private readonly iommu: Iommu, private readonly ram: bigint) {
    iommu.on((e) => this.onEvent(e));
  }

  private remember(addr: bigint, cache: Cache, value: bigint, use: Use, pair?: bigint): void {
    const r = this.remembered.get(addr);
    if (r && r.cache === cache && r.value === value) {
      if (!r.uses.some((u) => u.sid === use.sid && u.did === use.did && u.base === use.base && u.span === use.span && u.index === use.index)) r.uses.push(use);
    } else {
      this.remembered.set(addr, { cache, value, uses: [use], ...(pair !== undefined ? { pair } : {}) });
    }
  }

  /**
   * Before a dma or msi op: which open window (if any) covers it, and
   * remember what it reads. `rta` / `irta`: the latched table registers.
   */
  beforeRequest(op: TraceOp, rta: bigint | undefined, irta: bigint | undefined, irEnabled: boolean, teEnabled: boolean): WindowCause | undefined {
    let cause: WindowCause | undefined;
    if (op.op === 'dma' && teEnabled && rta !== undefined) {
      const p = walkDma(this.iommu, this.ram, rta, op.sid, op.iova);
      const did = p.context?.did;
      cause = this.covering(op.sid, did, op.iova);
      // Scalable mode (TTM = 01): the entries after the context entry are the PASID directory and PASID entries.
      const sm = (rta & RTADDR_TTM_SM) !== 0n;
      const pasid = sm && p.entries[1]?.hi !== undefined ? Number(p.entries[1].hi & 0xfffffn) : undefined;
      let contexts = 0;
      if (pasid !== undefined) this.ridPasids.set(op.sid, pasid);
      for (const e of p.entries) {
        if (e.kind === 'root' && (e.value & 1n)) this.remember(e.addr, 'ctx', e.value, { sid: op.sid, did });
        if (e.kind === 'context' && (e.value & 1n)) {
          const use: Use = { sid: op.sid, did, ...(sm && contexts > 0 ? { pasidEntry: true } : {}) };
          const pasidEntry = use.pasidEntry && e.hi !== undefined;
          this.remember(e.addr, 'ctx', e.value, use, pasidEntry ? e.addr + 8n : undefined);
          if (e.hi !== undefined) this.remember(e.addr + 8n, 'ctx', e.hi, use, pasidEntry ? e.addr : undefined);
        }
        if (e.kind === 'context') contexts++;
        if (e.kind === 'paging' && (e.value & 3n) && did !== undefined) {
          const span = levelSpan(e.level);
          this.remember(e.addr, 'iotlb', e.value, { did, base: op.iova & ~(span - 1n), span, pasid });
        }
      }
    } else if (op.op === 'msi' && irEnabled && irta !== undefined) {
      const m = decodeMsi(op.addr, op.data);
      if (m.remappable && m.index !== undefined && m.index < 2 ** (Number(irta & 0xfn) + 1)) {
        if (this.dirty.some((d) => d.cache === 'iec' && d.uses.some((u) => u.index === m.index))) cause = 'irte';
        const at = (irta & 0xfffffffffffff000n) + 16n * BigInt(m.index);
        const lo = readQ(this.iommu, this.ram, at), hi = readQ(this.iommu, this.ram, at + 8n);
        if (lo !== undefined && hi !== undefined && (lo & 1n)) {
          this.remember(at, 'iec', lo, { index: m.index });
          this.remember(at + 8n, 'iec', hi, { index: m.index });
        }
      }
    }
    if (cause) this.observed++;
    return cause;
  }

  private covering(sid: number, did: number | undefined, iova: bigint): WindowCause | undefined {
    for (const d of this.dirty) {
      const hit = d.cache === 'ctx'
        ? d.anySid || d.uses.some((u) => u.sid === sid)
        : d.cache === 'iotlb' && d.uses.some((u) => (did === undefined || u.did === did) && iova >= u.base! && iova < u.base! + u.span!);
      // A dirty context entry of this requester also makes any domain's IOTLB entries reachable.
      if (hit) return d.srtpTe ? 'srtp-te' : d.ctxDsi ? 'ctx-dsi' : 'unflushed';
    }
    return undefined;
  }

  private pendingCtx: Array<{ addr: bigint; value: bigint; hi: bigint; sid: number; did?: number }> = [];

  /**
   * Before a `mem` op: the present context entries of the listed devices it
   * overwrites. A unit may hold a present context entry before any request
   * used it (QEMU puts a pass-through device on an untranslated address space
   * as soon as TE is enabled, until the next context invalidation), so a
   * change to one opens a window whether or not a request read it.
   */
  beforeMem(gpa: bigint, len: number, rta: bigint | undefined, sids: readonly number[]): void {
    this.pendingCtx = [];
    if (rta === undefined) return;
    const end = gpa + BigInt(len);
    for (const sid of sids) {
      const root = (rta & ~0xfffn) + 16n * BigInt(sid >> 8);
      const rlo = readQ(this.iommu, this.ram, root), rhi = readQ(this.iommu, this.ram, root + 8n);
      if (rlo === undefined || rhi === undefined || !(rlo & 1n)) continue;
      const at = (rlo & 0x000ffffffffff000n) + 16n * BigInt(sid & 0xff);
      const clo = readQ(this.iommu, this.ram, at), chi = readQ(this.iommu, this.ram, at + 8n);
      // The present root entry of the device's bus: a change reaches the device's context.
      if (!(root + 16n <= gpa || root >= end)) {
        this.pendingCtx.push({ addr: root, value: rlo, hi: rhi, sid, did: clo !== undefined && chi !== undefined && clo & 1n ? Number((chi >> 8n) & 0xffffn) : undefined });
      }
      if (at + 16n <= gpa || at >= end) continue;
      const lo = readQ(this.iommu, this.ram, at), hi = readQ(this.iommu, this.ram, at + 8n);
      if (lo === undefined || hi === undefined || !(lo & 1n)) continue;
      this.pendingCtx.push({ addr: at, value: lo, hi, sid, did: Number((hi >> 8n) & 0xffffn) });
    }
  }

  /** A `mem` op: remembered entries whose value changes become dirty. */
  onMem(gpa: bigint, data: Uint8Array): void {
    for (const c of this.pendingCtx) {
      if (readQ(this.iommu, this.ram, c.addr) !== c.value || readQ(this.iommu, this.ram, c.addr + 8n) !== c.hi) {
        this.dirty.push({ cache: 'ctx', uses: [{ sid: c.sid, did: c.did }], srtpTe: false, ctxDsi: false });
      }
    }
    this.pendingCtx = [];
    const end = gpa + BigInt(data.length);
    for (const [addr, r] of this.remembered) {
      if (addr + 8n <= gpa || addr >= end) continue;
      const now = readQ(this.iommu, this.ram, addr);
      if (now === r.value) continue;
      this.dirty.push({ cache: r.cache, uses: r.uses, srtpTe: false, ctxDsi: false });
      this.remembered.delete(addr);
      if (r.pair !== undefined) this.remembered.delete(r.pair);
    }
  }

  /** SRTP latched a root table: QEMU flushes; a different table makes every cached context stale. */
  onSrtp(changedTable: boolean): void {
    for (const d of this.dirty) if (d.cache !== 'iec') d.srtpTe = true;
    if (changedTable) {
      this.dirty.push({ cache: 'ctx', uses: [], anySid: true, srtpTe: true, ctxDsi: false });
      for (const [a, r] of this.remembered) if (r.cache === 'ctx') this.remembered.delete(a);
    }
  }

  /** TE changed: QEMU flushes its DMA caches. */
  onTeChange(): void {
    for (const d of this.dirty) if (d.cache !== 'iec') d.srtpTe = true;
  }

  private onEvent(e: IommuEvent): void {
    if (e.type !== 'invalidation') return;
    const keep = (d: Dirty): boolean => {
      if (e.cache === 'pasid-cache' && d.cache === 'ctx') {
        // PASID directory and PASID entries only; global (3), the DID's (0), or one PASID of the DID (1).
        d.uses = d.uses.filter((u) => !(u.pasidEntry && (e.granularity === 3 || (u.did === e.did && e.granularity === 0))));
        if (e.granularity === 1) d.uses = d.uses.filter((u) => !(u.pasidEntry && u.did === e.did && this.ridPasid(u.sid) === e.pasid));
        return d.uses.length > 0 || !!d.anySid;
      }
      if (e.cache === 'pasid-iotlb' && d.cache === 'iotlb') {
        const size = 1n << BigInt(12 + e.am);
        const lo = e.addr & ~(size - 1n);
        d.uses = d.uses.filter((u) => !(u.did === e.did && u.pasid === e.pasid && (e.granularity === 2 || (u.base! >= lo && u.base! + u.span! <= lo + size))));
        return d.uses.length > 0;
      }
      if (e.cache === 'context' && d.cache === 'ctx') {
        if (e.granularity === 1) return false;
        if (e.granularity === 2) {
          d.ctxDsi = true;
          d.uses = d.uses.filter((u) => u.did !== e.did);
          return d.uses.length > 0 || !!d.anySid;
        }
        if (e.granularity === 3) {
          const m = [0xffff, 0xfffb, 0xfff9, 0xfff8][e.fm & 3];
          d.uses = d.uses.filter((u) => ((u.sid! ^ e.sid) & m) !== 0);
          return d.uses.length > 0 || !!d.anySid;
        }
        return true;
      }
      if (e.cache === 'iotlb' && d.cache === 'iotlb') {
        if (e.granularity === 1) return false;
        if (e.granularity === 2) d.uses = d.uses.filter((u) => u.did !== e.did);
        if (e.granularity === 3) {
          const size = 1n << BigInt(12 + e.am);
          const lo = e.addr & ~(size - 1n);
          d.uses = d.uses.filter((u) => !(u.did === e.did && u.base! >= lo && u.base! + u.span! <= lo + size));
        }
        return d.uses.length > 0;
      }
      if (e.cache === 'interrupt-entry' && d.cache === 'iec') {
        // Global: granularity 1; index-selective: 3, IIDX in `sid`, IM in `am`.
        if (e.granularity !== 3) return false;
        const n = 2 ** e.am;
        const lo = e.sid & ~(n - 1);
        d.uses = d.uses.filter((u) => !(u.index! >= lo && u.index! < lo + n));
        return d.uses.length > 0;
      }
      return true;
    };
    this.dirty = this.dirty.filter(keep);
  }

  /** The RID_PASID a requester used last (scalable mode), as seen by beforeRequest. */
  private readonly ridPasids = new Map<number, number>();
  private ridPasid(sid: number | undefined): number | undefined {
    return sid === undefined ? undefined : this.ridPasids.get(sid);
  }

  /** Whether any change is still waiting for its invalidation. */
  get pending(): number {
    return this.dirty.length;
  }
}
