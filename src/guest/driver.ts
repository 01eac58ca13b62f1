/**
 * The guest-driver model: lowers the workload operations of a trace
 * (`attach`, `map`, `unmap`; trace-format.md, "Higher-level operations")
 * into the raw operations a guest makes, guest-memory writes (`mem`) and
 * register writes (`wr`), the way Linux 6.1's intel-iommu driver programs a
 * legacy-mode remapping unit. The lowered trace runs unchanged on this
 * project's replayer and on QEMU 7.2. docs/workloads/driver.md gives every
 * rule with its source; section numbers (§) are those of the VT-d digest
 * (docs/DESIGN.md, "Sources").
 *
 * The driver never reads guest memory or registers back: it keeps its own
 * copy of everything it wrote (tables, queue position, GCMD bits). Its tables
 * come from a page pool at the top of guest RAM (`poolLayout`).
 *
 * Costs: a map or unmap costs O(levels + entries written); no BigInt is built
 * per page, only one per emitted operation. Page numbers (`pfn`, 4 KiB units)
 * and entry values are plain numbers: an IOVA below 2^64 has a page number
 * below 2^52, and an entry (address below 2^52 plus flag bits) is exact in a
 * double.
 *
 * Browser-safe: no Node imports.
 */
import { VtdError } from '../errors.js';
import type { Trace, TraceHeader, TraceOp } from '../trace/parse.js';
import { formatComment, formatHeader as writeHeader, formatOp, hex } from '../trace/write.js';
import {
  REG, GCMD_TE, GCMD_SRTP, GCMD_QIE, SL_R, SL_W, SL_PS, G_GLOBAL, G_DOMAIN, G_DEVICE, G_PAGE,
  ccDesc, iotlbDesc, waitDesc, ccmdValue, iotlbRegValue, ivaValue, rootEntry, contextEntry, contextAw, type Desc,
  RTADDR_TTM_SM, IQA_DW, wide, smContextEntry, pasidDirEntry, pasidEntry, piotlbDesc, pcDesc, FS, SM_ROOT,
  PGTT_FIRST, PGTT_SECOND, PIOTLB_G_PAGE, PIOTLB_G_PASID, PC_G_PASID, PC_G_GLOBAL, type Desc256,
} from './layout.js';

/** A raw operation the driver makes: a guest-memory write or a register write. */
export type LoweredOp =
  | { op: 'mem'; gpa: bigint; data: Uint8Array }
  | { op: 'wr'; reg: number; size: 4 | 8; val: bigint };

/** The workload operations the driver lowers. */
export type WorkloadOp = Extract<TraceOp, { op: 'attach' | 'map' | 'unmap' }>;

/** How the modelled guest driver behaves. */
export interface DriverOptions {
  /**
   * Unmap invalidation policy: 'strict' invalidates after every unmap,
   * 'lazy' queues unmaps per domain and flushes the domain when its queue
   * fills. Default 'lazy' (Linux 6.1's default); caching mode forces 'strict'
   * (digest §8.2), as Linux does.
   */
  policy?: 'strict' | 'lazy';
  /** Lazy: unmaps queued per domain before its flush [256, Linux IOVA_FQ_SIZE]. */
  flushQueue?: number;
  /** Invalidate through the queue ('qi', Linux's choice when ECAP.QI) or the CCMD/IOTLB registers [qi]. */
  invalidation?: 'qi' | 'register';
  /** Use 2 MiB and 1 GiB leaves where iova, gpa and length allow [true]. */
  superpages?: boolean;
}

/**
 * Invalidation requests by kind: IOTLB and context cache by granularity and, in scalable mode,
 * PASID-based IOTLB ones (type 6) for all of a PASID or pages in it, and PASID-cache ones (type 7).
 * The driver counts what it submits, the replay what the unit processed (replayer.ts), the report
 * shows the latter (report/types.ts).
 */
export interface InvalidationCounts {
  iotlbGlobal: number; iotlbDomain: number; iotlbPage: number;
  contextGlobal: number; contextDomain: number; contextDevice: number;
  pasidIotlb: number; pasidIotlbPage: number; pasidCache: number;
}

/** Invalidation requests the driver submitted, by kind. */
export interface DriverInvalidations extends InvalidationCounts {
  /** Invalidation-wait descriptors (one after each queued invalidation). */
  wait: number;
}

/** What the driver did, cumulative. Byte counts are plain numbers. */
export interface DriverStats {
  attaches: number;
  maps: number;
  unmaps: number;
  mapBytes: number;
  /** Bytes actually unmapped (a partly covered superpage counts whole). */
  unmapBytes: number;
  /** Flush-queue flushes (lazy policy), one per domain flushed. */
  flushes: number;
  /** Of `flushes`: early ones, because a map reused an IOVA still waiting in its domain's queue. */
  reuseFlushes: number;
  /** Paging-structure pages allocated (a page reused after being freed counts again). */
  tablePages: number;
  /** Paging-structure pages given back to the pool (after the invalidation that covers them). */
  tablePagesFreed: number;
  /** Context tables allocated (one per bus). */
  contextTables: number;
  /** Most pool pages in use at once (root table, queue and status page included). */
  poolPagesHighWater: number;
  /** Paging entries written, set or cleared (8 bytes each). */
  pteWrites: number;
  /** Leaf entries written, by page size. */
  leaves: { k4: number; m2: number; g1: number };
  /** Root and context entries written (scalable mode: PASID directory and table entries too), in 8-byte units. */
  contextWrites: number;
  /** Invalidation descriptors written to the queue (waits included), 16 bytes each. */
  descriptorWrites: number;
  /** `mem` operations emitted. */
  memOps: number;
  /** `wr` operations emitted (IQT doorbells included). */
  registerWrites: number;
  invalidations: DriverInvalidations;
}

/** Where the driver's pool lies in guest RAM (`ram` from the trace header). */
export interface PoolLayout {
  /** Lowest pool address; the pool is [base, ram). Workload gpas should stay below it. */
  base: bigint;
  /** The root table (4 KiB). */
  rootTable: bigint;
  /** The invalidation queue: 256 descriptors of 16 bytes (IQA.QS = 0), or in scalable mode 256 of 32 bytes (two pages, QS = 1, DW = 1). */
  queue: bigint;
  /** The invalidation-wait status words: 256 x 4 bytes, one per queue slot. */
  status: bigint;
  /** Pages for context and paging tables: [base, tablesTop), handed out downward. */
  tablesTop: bigint;
  /** Pages in the pool. */
  pages: number;
}

const PAGE = 4096;
const TWO32 = 2 ** 32;


/**
 * What the unit reports (CAP, §2.3; the trace format fixes CAP to QEMU 7.2's
 * for every option this model depends on): ND = 6 (64 Ki domain ids),
 * MAMV = 18, PSI = 1, SLLPS = 2 MiB and 1 GiB, DRD = DWD = 1.
 */
const CAP_ND = 6, CAP_MAMV = 18, CAP_SUPERPAGE_LEVELS = 2;

/** Invalidation-wait status data: QI_DONE = 2 (Linux qi_submit_sync). */
const WAIT_STATUS_DONE = 2;
/** Queue: 2^(QS+8) descriptors with QS = 0, as Linux (QI_LENGTH 256). */
const QUEUE_SLOTS = 256;

/** Pages a level-L entry covers: 512^(L-1). Index = level. */
const SPAN = [0, 1, 512, 512 ** 2, 512 ** 3, 512 ** 4];

/**
 * One 4 KiB paging structure as the driver wrote it.
 *
 * `entries` holds each entry's value as written to guest memory, except that
 * an entry the lazy policy cleared and no flush has covered yet holds a
 * negative mark, -(flush generation + 1) of its domain (memory holds 0 there):
 * that IOVA may still be cached, so it must not be reused before a flush.
 * Present ⇔ value > 0.
 */
class Table {
  readonly entries = new Float64Array(512);
  /** Tables that non-leaf entries point to (levels 2 and up). */
  children: (Table | undefined)[] | undefined;
  level = 0;
  /** First page number this table translates. */
  basePfn = 0;
  constructor(readonly gpa: number) {}
}

/** One domain (DID): its tables, its devices, its flush queue. */
class Domain {
  /** Devices attached: the domain is on the unit (flushes are issued) only while this is > 0 (Linux iommu_array). */
  devices = 0;
  /** Lazy: unmaps queued since the last flush. */
  queued = 0;
  /** Lazy: table pages the queued unmaps freed; they go back to the pool at the flush. */
  pendingFree: Table[] = [];
  /** Domain-wide IOTLB flushes so far; see `Table.entries`. */
  flushGen = 0;
  constructor(readonly did: number, readonly top: Table) {}
}

/** Stores a 32-bit word little-endian (cheaper than a DataView per operation). */
function put32(b: Uint8Array, at: number, w: number): void {
  b[at] = w;
  b[at + 1] = w >>> 8;
  b[at + 2] = w >>> 16;
  b[at + 3] = w >>> 24;
}

/** Quadwords as the 32-bit words `writeMem` takes, low word first. */
function words(...qwords: bigint[]): number[] {
  const w: number[] = [];
  for (const q of qwords) w.push(Number(q & 0xffffffffn), Number(q >> 32n));
  return w;
}

/** Bit `b` of a non-negative integer below 2^53. */
const bitAt = (x: number, b: number): number => Math.floor(x / 2 ** b) % 2;

/**
 * The pool layout the driver uses for a unit with `ram` bytes of RAM: the
 * top eighth of RAM (at least 8 pages). In scalable mode the queue takes two
 * pages (256 descriptors of 32 bytes), one page lower than in legacy mode.
 */
export function poolLayout(ram: bigint, sm = false): PoolLayout {
  const top = Number(ram);
  const eighth = Math.floor(top / 8 / PAGE) * PAGE;
  const bytes = Math.min(top, Math.max(eighth, 8 * PAGE));
  const base = top - bytes;
  const queuePages = sm ? 2 : 1;
  const status = top - (2 + queuePages) * PAGE;
  return {
    base: BigInt(base), rootTable: BigInt(top - PAGE), queue: BigInt(top - (1 + queuePages) * PAGE), status: BigInt(status),
    tablesTop: BigInt(status), pages: bytes / PAGE,
  };
}

/**
 * Pages of guest RAM the driver owns. Never-used pages are handed out from
 * the top down; freed pages are reused last-in first-out. A freed page keeps
 * what was written to it (Linux does not clear freed tables); `take` reports
 * it so the caller zeroes the entries still set before linking it.
 */
class PagePool {
  private next: number;
  private readonly free: Table[] = [];
  used: number;
  highWater: number;
  constructor(private readonly base: number, tablesTop: number, private readonly ram: bigint) {
    this.next = tablesTop;
    this.used = this.highWater = (Number(ram) - tablesTop) / PAGE;
  }

  take(line: number): { gpa: number; stale: Table | undefined } {
    const stale = this.free.pop();
    let gpa: number;
    if (stale) gpa = stale.gpa;
    else {
      if (this.next - PAGE < this.base) {
        throw new VtdError('GUEST_MEMORY', `guest-driver model: its page pool [0x${this.base.toString(16)}, 0x${this.ram.toString(16)}) (the top eighth of RAM, ${(Number(this.ram) - this.base) / PAGE} pages) is exhausted; give the trace more RAM (header iommu.ram) or map less`, { poolBase: this.base, ram: this.ram }, line);
      }
      this.next -= PAGE;
      gpa = this.next;
    }
    if (++this.used > this.highWater) this.highWater = this.used;
    return { gpa, stale };
  }

  release(t: Table): void {
    this.used--;
    this.free.push(t);
  }
}

/** What one device has in scalable mode: its PASID directory and the PASID table of PASIDs 0-63. */
interface SmDevice { dir: number; table: number }

/** First-stage entry flags (x86-64 paging; layout.ts FS). Plain numbers: all below bit 31. */
const FS_P = Number(1n << BigInt(FS.P.shift)), FS_RW = Number(1n << BigInt(FS.RW.shift)), FS_US = Number(1n << BigInt(FS.US.shift));
const FS_A = Number(1n << BigInt(FS.A.shift)), FS_D = Number(1n << BigInt(FS.D.shift));

/** RID_PASID: Linux programs PASID 0 (IOMMU_NO_PASID) for requests without PASID. */
const RID_PASID = 0;
/** PASID directory size PDTS = 2 (512 entries, one page): Linux's for a device without the PASID capability (max_pasid 2^15). */
const SM_PDTS = 2;

/**
 * Linux 6.x's intel-iommu driver as far as a workload shows it: boot
 * programming, context entries, page tables, invalidations. Legacy mode as
 * Linux 6.1 programs it; with a scalable-mode unit (header `sm`), as Linux
 * 6.x programs that: scalable-mode root and context entries, a PASID
 * directory and table per device, the domain's PASID entry at RID_PASID,
 * first-stage tables when the unit has them (ECAP.FLTS: `flts` or `nest`),
 * PASID-based invalidations (docs/workloads/driver.md, "Scalable mode").
 * One instance per replay.
 */
export class GuestDriver {
  readonly policy: 'strict' | 'lazy';
  /** True when caching mode forced 'strict' over a requested (or default) 'lazy'. */
  readonly policyForced: boolean;
  /** Lazy: unmaps per domain before its flush. */
  readonly flushQueue: number;
  /** How invalidations reach the unit: the invalidation queue or the CCMD/IOTLB registers. */
  readonly invalidation: 'qi' | 'register';
  /** Whether 2 MiB and 1 GiB leaves are used. */
  readonly superpages: boolean;
  /** Where the page pool, root table, queue and status words are. */
  readonly layout: PoolLayout;
  /** What the driver did so far. */
  readonly stats: DriverStats = {
    attaches: 0, maps: 0, unmaps: 0, mapBytes: 0, unmapBytes: 0, flushes: 0, reuseFlushes: 0,
    tablePages: 0, tablePagesFreed: 0, contextTables: 0, poolPagesHighWater: 3, pteWrites: 0, leaves: { k4: 0, m2: 0, g1: 0 },
    contextWrites: 0, descriptorWrites: 0, memOps: 0, registerWrites: 0,
    invalidations: {
      iotlbGlobal: 0, iotlbDomain: 0, iotlbPage: 0, contextGlobal: 0, contextDomain: 0, contextDevice: 0, wait: 0,
      pasidCache: 0, pasidIotlb: 0, pasidIotlbPage: 0,
    },
  };

  private readonly cm: boolean;
  /** Scalable mode (header `sm`). */
  private readonly sm: boolean;
  /** Domains use first-stage tables: scalable mode with ECAP.FLTS (Linux first_level_by_default prefers them). */
  private readonly firstStage: boolean;
  /** Flags of a non-leaf entry: R|W (second stage) or P|RW|US|A (first stage, Linux pfn_to_dma_pte). */
  private readonly nonLeaf: number;
  /** Scalable mode with header `pasid`: context entries set PASIDE (the modelled devices can issue requests with PASID). */
  private readonly pasidRequests: boolean;
  /** Scalable mode: each device's PASID structures. */
  private readonly smDevices = new Map<number, SmDevice>();
  private readonly aw: number;
  /** Levels of every domain's tables: aw 39 → 3, 48 → 4, 57 → 5 (§4.1; Linux picks the largest AGAW in SAGAW). */
  private readonly levels: number;
  /** Context AW field: levels - 2. */
  private readonly ctxAw: number;
  /** Pages below 2^aw. */
  private readonly pfnLimit: number;
  private readonly ramPages: number;
  /** Largest leaf level: 3 with superpages (1 GiB), else 1. */
  private readonly maxLeafLevel: number;
  /** Page sizes the iommu core splits unmaps into (Linux pgsize_bitmap), in pages, ascending. */
  private readonly pgsizes: number[];
  private readonly ndoms: number;
  private readonly pool: PagePool;
  private readonly domains = new Map<number, Domain>();
  /** Context table of each bus that has one (address). */
  private readonly contexts = new Map<number, number>();
  /** Domain each attached device is in. */
  private readonly attached = new Map<number, number>();
  /** GCMD persistent bits the driver has set (Linux iommu->gcmd). */
  private gcmd = 0;
  /** Next free queue slot (Linux qi->free_head). */
  private qiHead = 0;
  private initialized = false;
  /** Line of the operation being lowered, for errors. */
  private line = 0;

  constructor(header: TraceHeader, opts: DriverOptions = {}) {
    const c = header.config;
    const requested = opts.policy ?? 'lazy';
    if (requested !== 'strict' && requested !== 'lazy') throw new VtdError('ARGUMENT', `driver: policy must be "strict" or "lazy", got ${JSON.stringify(requested)}`);
    const inv = opts.invalidation ?? 'qi';
    if (inv !== 'qi' && inv !== 'register') throw new VtdError('ARGUMENT', `driver: invalidation must be "qi" or "register", got ${JSON.stringify(inv)}`);
    const fq = opts.flushQueue ?? 256;
    if (!Number.isSafeInteger(fq) || fq < 1) throw new VtdError('ARGUMENT', `driver: flushQueue must be a positive integer, got ${fq}`);
    this.cm = c.cm;
    this.sm = c.sm;
    this.firstStage = c.sm && (c.flts || c.nest);
    this.pasidRequests = c.sm && c.pasid;
    this.nonLeaf = this.firstStage ? FS_P + FS_RW + FS_US + FS_A : SL_R + SL_W;
    if (c.sm && inv === 'register') {
      throw new VtdError('ARGUMENT', 'driver: scalable mode needs queued invalidation (PASID-cache invalidation has no register form); use invalidation "qi"');
    }
    // Linux intel_iommu_init: caching mode disallows batching ("IOMMU batching disallowed due to
    // virtualization"), except when DMA domains use first-stage tables, which caching mode does not concern.
    const cmStrict = c.cm && !this.firstStage;
    this.policy = cmStrict ? 'strict' : requested;
    this.policyForced = cmStrict && requested === 'lazy';
    this.flushQueue = fq;
    this.invalidation = inv;
    this.superpages = opts.superpages ?? true;
    this.aw = c.aw;
    this.levels = c.aw === 39 ? 3 : c.aw === 48 ? 4 : 5;
    this.ctxAw = contextAw(this.levels);
    // A first-stage IOVA must be canonical: this model keeps to the lower half, below 2^(aw-1).
    this.pfnLimit = 2 ** (c.aw - 12 - (this.firstStage ? 1 : 0));
    this.ramPages = Number(c.ram) / PAGE;
    this.maxLeafLevel = this.superpages ? 1 + CAP_SUPERPAGE_LEVELS : 1;
    this.pgsizes = this.superpages ? [1, SPAN[2], SPAN[3]] : [1];
    this.ndoms = 2 ** (4 + 2 * CAP_ND);
    this.layout = poolLayout(c.ram, c.sm);
    if (this.layout.pages < 8) throw new VtdError('CONFIG', `guest-driver model: RAM of 0x${c.ram.toString(16)} bytes leaves no room for its page pool (8 pages at least)`, { ram: c.ram });
    this.pool = new PagePool(Number(this.layout.base), Number(this.layout.tablesTop), c.ram);
    this.stats.poolPagesHighWater = this.pool.highWater;
  }

  // ------------------------------------------------------------------ boot

  /**
   * Boot programming, in Linux 6.1's order (init_dmars, intel_iommu_init):
   * queued invalidation on (IQT = 0, IQA, GCMD.QIE), root table (RTADDR,
   * GCMD.SRTP), global context-cache and IOTLB invalidations (§1.3), then
   * GCMD.TE. Interrupt remapping stays off. Called by `lower` if not yet done.
   */
  init(emit: (op: LoweredOp) => void): void {
    if (this.initialized) return;
    this.initialized = true;
    if (this.invalidation === 'qi') {
      this.writeReg(REG.IQT, 4, 0, emit);
      // Legacy: QS = 0, DW = 0. Scalable mode (__dmar_enable_qi with ECAP.SMTS): DW = 1, QS = 1.
      this.emitWr(REG.IQA, 8, this.sm ? this.layout.queue | IQA_DW | 1n : this.layout.queue, emit);
      this.gcmd |= GCMD_QIE;
      this.writeReg(REG.GCMD, 4, this.gcmd, emit);
    }
    // TTM = 00 legacy mode, 01 scalable mode (Linux DMA_RTADDR_SMT).
    this.emitWr(REG.RTADDR, 8, this.sm ? this.layout.rootTable | RTADDR_TTM_SM : this.layout.rootTable, emit);
    this.writeReg(REG.GCMD, 4, this.gcmd + GCMD_SRTP, emit);
    // iommu_set_root_entry: global context cache, (scalable mode) global PASID cache, global IOTLB.
    this.contextInv(G_GLOBAL, 0, 0, emit);
    if (this.sm) this.pasidCacheInv(PC_G_GLOBAL, 0, emit);
    this.iotlbInv(G_GLOBAL, 0, 0, 0, false, emit);
    this.gcmd += GCMD_TE;
    this.writeReg(REG.GCMD, 4, this.gcmd, emit);
  }

  /** Lowers one workload operation. */
  lower(op: WorkloadOp, emit: (op: LoweredOp) => void): void {
    if (!this.initialized) this.init(emit);
    this.line = op.line;
    this.checkDomain(op.op, op.domain);
    switch (op.op) {
      case 'attach': this.attach(op.sid, op.domain, emit); break;
      case 'map': this.map(op, emit); break;
      case 'unmap': this.unmap(op, emit); break;
    }
  }

  /** End of the trace: drains every flush queue (lazy). */
  finish(emit: (op: LoweredOp) => void): void {
    if (!this.initialized) return;
    for (const d of this.domains.values()) if (d.queued > 0) this.flushDomain(d, emit);
  }

  // ------------------------------------------------------------------ attach

  private checkDomain(what: string, did: number): void {
    if (this.cm && did === 0) {
      throw new VtdError('TRACE', `${what}: domain 0 is reserved under caching mode (the unit tags what it caches from not-present entries with DID 0; Linux never assigns it)`, { domain: did }, this.line);
    }
    if (did >= this.ndoms) {
      throw new VtdError('TRACE', `${what}: domain ${did} is beyond the ${this.ndoms} domain ids the unit supports (CAP.ND = ${CAP_ND})`, { domain: did }, this.line);
    }
  }

  private domain(did: number, emit: (op: LoweredOp) => void): Domain {
    let d = this.domains.get(did);
    if (!d) {
      // Linux allocates the top table with the domain (md_domain_init); a fresh page needs no write.
      d = new Domain(did, this.allocTable(this.levels, 0, emit));
      this.domains.set(did, d);
    }
    return d;
  }

  /**
   * Linux 6.1 intel_iommu_attach_device: a device already in a domain is
   * detached first (domain_context_clear_one: clear the context entry, then
   * device-selective context invalidation and domain-selective IOTLB
   * invalidation with the old DID); then domain_context_mapping_one writes the
   * entry and, under caching mode only, invalidates: device-selective context
   * with DID 0, domain-selective IOTLB with the new DID (the real Linux 6.1
   * trace shows the new DID there; the digest's §7.7 says DID 0).
   */
  private attach(sid: number, did: number, emit: (op: LoweredOp) => void): void {
    this.stats.attaches++;
    const old = this.attached.get(sid);
    if (old === did) return; // already there: nothing to do
    if (this.sm) {
      this.attachSm(sid, did, old, emit);
      return;
    }
    const bus = sid >> 8, devfn = sid & 0xff;
    let ct = this.contexts.get(bus);
    if (old !== undefined) {
      this.writeMem(ct! + devfn * 16, words(0n, 0n), emit);
      this.stats.contextWrites += 2;
      this.contextInv(G_DEVICE, old, sid, emit);
      this.iotlbInv(G_DOMAIN, old, 0, 0, false, emit);
      const od = this.domains.get(old)!;
      od.flushGen++;
      od.devices--;
      this.attached.delete(sid);
    }
    const d = this.domain(did, emit);
    if (ct === undefined) {
      // iommu_context_addr(..., alloc = 1): a zeroed page, then the root entry (low quadword only).
      const { gpa, stale } = this.pool.take(this.line);
      if (stale) this.zeroStale(stale, emit);
      ct = gpa;
      this.contexts.set(bus, ct);
      this.stats.contextTables++;
      this.writeMem(Number(this.layout.rootTable) + bus * 16, words(rootEntry(BigInt(ct))[0]), emit);
      this.stats.contextWrites++;
    }
    // Context entry (§3.3): P, FPD = 0, TT = 00, SLPTPTR; AW, DID.
    this.writeMem(ct + devfn * 16, words(...contextEntry({ table: BigInt(d.top.gpa), aw: this.ctxAw, did })), emit);
    this.stats.contextWrites += 2;
    this.attached.set(sid, did);
    d.devices++;
    if (this.cm) {
      this.contextInv(G_DEVICE, 0, sid, emit);
      this.iotlbInv(G_DOMAIN, did, 0, 0, false, emit);
      d.flushGen++;
    }
  }

  /**
   * Scalable mode, as Linux 6.x attaches a device (dmar_domain_attach_device,
   * device_block_translation, intel_pasid_setup_first_level / _second_level,
   * intel_pasid_tear_down_entry):
   *
   * - the first time a device is attached (Linux: at probe), its PASID
   *   directory (PDTS 2) and the PASID table of PASIDs 0-63 are allocated,
   *   directory entry 0 is written, then the context table of its half of the
   *   bus (lower for devfn < 128, upper otherwise) and the root entry's half if
   *   new, then the 256-bit context entry (P, PDTS, PASIDDIRPTR, RID_PASID 0;
   *   PASIDE with header `pasid`), under caching mode followed by a
   *   device-selective context invalidation with DID 0 and a domain-selective
   *   IOTLB one with the new DID;
   * - a device already in a domain has its RID_PASID entry torn down: the
   *   entry cleared, PASID-selective PASID-cache invalidation with the old DID,
   *   then all of PASID 0 in the old domain (PASID-based IOTLB, type 6) for a
   *   first-stage domain or a domain-selective IOTLB invalidation for a
   *   second-stage one; the context entry stays;
   * - the new domain's PASID entry at RID_PASID: first stage (PGTT 001,
   *   FSPTPTR, FSPM 1 for 5 levels) or second stage (PGTT 010, SSPTPTR, AW),
   *   DID, AW = the unit's AGAW for first stage; under caching mode followed by
   *   a PASID-selective PASID-cache invalidation and a PASID-based IOTLB
   *   invalidation of all of PASID 0 (pasid_flush_caches).
   */
  private attachSm(sid: number, did: number, old: number | undefined, emit: (op: LoweredOp) => void): void {
    const bus = sid >> 8, devfn = sid & 0xff, upper = devfn >= 0x80 ? 1 : 0;
    let dev = this.smDevices.get(sid);
    if (dev === undefined) {
      const dir = this.takePage(emit), table = this.takePage(emit);
      dev = { dir, table };
      this.smDevices.set(sid, dev);
      this.writeMem(dir, words(pasidDirEntry({ table: BigInt(table) })), emit);
      this.stats.contextWrites++;
      let ct = this.contexts.get(bus * 2 + upper);
      if (ct === undefined) {
        ct = this.takePage(emit);
        this.contexts.set(bus * 2 + upper, ct);
        this.stats.contextTables++;
        // iommu_context_addr: the root entry's half for this devfn, `table | present`, one quadword.
        const half = upper ? SM_ROOT.UCTP : SM_ROOT.LCTP;
        this.writeMem(Number(this.layout.rootTable) + bus * 16 + half.qw * 8, words(BigInt(ct) | 1n), emit);
        this.stats.contextWrites++;
      }
      const ce = smContextEntry({ pdts: SM_PDTS, pasidDir: BigInt(dir), ridPasid: RID_PASID, paside: this.pasidRequests });
      this.writeMem(ct + (devfn & 0x7f) * 32, words(...ce), emit);
      this.stats.contextWrites += 4;
      if (this.cm) {
        this.contextInv(G_DEVICE, 0, sid, emit);
        this.iotlbInv(G_DOMAIN, did, 0, 0, false, emit);
      }
    }
    const entryAt = dev.table + RID_PASID * 64;
    if (old !== undefined) {
      this.writeMem(entryAt, new Array<number>(16).fill(0), emit);
      this.stats.contextWrites += 8;
      this.pasidCacheInv(PC_G_PASID, old, emit);
      const od = this.domains.get(old)!;
      this.tlbDomainInv(old, emit);
      od.flushGen++;
      od.devices--;
      this.attached.delete(sid);
    }
    const d = this.domain(did, emit);
    const top = BigInt(d.top.gpa);
    const pe = this.firstStage
      ? pasidEntry({ pgtt: PGTT_FIRST, fsptptr: top, fspm: this.levels === 5 ? 1 : 0, did, aw: contextAw(this.aw === 57 ? 5 : 4) })
      : pasidEntry({ pgtt: PGTT_SECOND, ssptptr: top, did, aw: this.ctxAw });
    this.writeMem(entryAt, words(...pe), emit);
    this.stats.contextWrites += 8;
    this.attached.set(sid, did);
    d.devices++;
    if (this.cm) {
      this.pasidCacheInv(PC_G_PASID, did, emit);
      this.pasidIotlbInv(PIOTLB_G_PASID, did, 0, 0, false, emit);
      d.flushGen++;
    }
  }

  /** A zeroed page from the pool (a reused page's stale entries are cleared first). */
  private takePage(emit: (op: LoweredOp) => void): number {
    const { gpa, stale } = this.pool.take(this.line);
    if (stale) this.zeroStale(stale, emit);
    if (this.pool.highWater > this.stats.poolPagesHighWater) this.stats.poolPagesHighWater = this.pool.highWater;
    return gpa;
  }

  // ------------------------------------------------------------------ map

  private checkRange(what: string, d: number, iova: bigint, len: number, gpa?: bigint): void {
    const misaligned = (iova & 0xfffn) !== 0n || len % PAGE !== 0 || (gpa !== undefined && (gpa & 0xfffn) !== 0n);
    if (misaligned) {
      throw new VtdError('TRACE', `${what}: iova ${hex(iova)}${gpa !== undefined ? `, gpa ${hex(gpa)}` : ''} and len ${hex(len)} must be multiples of 4 KiB (the driver maps whole pages)`, { domain: d, iova, len }, this.line);
    }
    if (iova + BigInt(len) > BigInt(this.pfnLimit) * 4096n) {
      throw new VtdError('TRACE', `${what}: domain ${d}: iova range [${hex(iova)}, ${hex(iova + BigInt(len))}) is beyond the domain's ${this.aw}-bit address width`, { domain: d, iova, len }, this.line);
    }
  }

  private map(op: Extract<WorkloadOp, { op: 'map' }>, emit: (op: LoweredOp) => void): void {
    this.checkRange('map', op.domain, op.iova, op.len, op.gpa);
    const pages = op.len / PAGE;
    const gpaPfn = Number(op.gpa >> 12n);
    if (gpaPfn + pages > this.ramPages) {
      throw new VtdError('TRACE', `map: domain ${op.domain}: gpa range [${hex(op.gpa)}, ${hex(op.gpa + BigInt(op.len))}) is outside guest RAM [0, ${hex(this.ramPages * PAGE)})`, { domain: op.domain, gpa: op.gpa, len: op.len }, this.line);
    }
    const d = this.domain(op.domain, emit);
    const iovaPfn = Number(op.iova >> 12n);
    // Refuse overlaps (Linux would WARN "PTE already set" and corrupt); note IOVAs still waiting for a lazy flush.
    if (this.scanFree(d, d.top, this.levels, iovaPfn, iovaPfn + pages - 1)) {
      // Linux's IOVA allocator never hands out an IOVA before its flush; a workload that
      // reuses one gets the flush first, so no stale translation survives the new mapping.
      this.stats.reuseFlushes++;
      this.flushDomain(d, emit);
    }
    this.stats.maps++;
    this.stats.mapBytes += op.len;
    this.mapPages(d, iovaPfn, gpaPfn, pages, this.leafFlags(op.perm), emit);
    // __mapping_notify_one: not-present → present needs a flush only under caching mode,
    // and never for first-stage tables (caching mode does not concern them).
    if (this.cm && !this.firstStage && d.devices > 0) this.flushPsi(d, iovaPfn, pages, false, emit);
  }

  /**
   * A leaf's flags for `perm`. Second stage: R and W as asked. First stage
   * (Linux __domain_mapping with use_first_level): P, US and A always (a
   * present entry is readable, so a write-only mapping is readable too), RW
   * and D for a writable one.
   */
  private leafFlags(perm: 'r' | 'w' | 'rw'): number {
    const write = perm !== 'r';
    if (this.firstStage) return FS_P + FS_US + FS_A + (write ? FS_RW + FS_D : 0);
    return (perm === 'w' ? 0 : SL_R) + (write ? SL_W : 0);
  }

  /**
   * Checks that [first, last] holds no present leaf; returns whether an entry
   * the lazy policy cleared lies there without a flush since.
   */
  private scanFree(d: Domain, t: Table, level: number, first: number, last: number): boolean {
    const span = SPAN[level];
    let stale = false;
    const i0 = Math.floor((first - t.basePfn) / span), i1 = Math.floor((last - t.basePfn) / span);
    const e = t.entries;
    for (let i = i0; i <= i1; i++) {
      const v = e[i];
      if (v > 0) {
        if (level === 1 || (v & SL_PS) !== 0) {
          const at = Math.max(first, t.basePfn + i * span);
          throw new VtdError('TRACE', `map: domain ${d.did} already maps iova ${hex(BigInt(at) * 4096n)}: the range overlaps an existing mapping (unmap it first)`, { domain: d.did, iova: BigInt(at) * 4096n }, this.line);
        }
        const c = t.children![i]!;
        if (this.scanFree(d, c, level - 1, Math.max(first, c.basePfn), Math.min(last, c.basePfn + span - 1))) stale = true;
      } else if (v < 0 && -v - 1 === d.flushGen) stale = true;
    }
    return stale;
  }

  /**
   * Linux __domain_mapping: at each position the largest leaf that the iova
   * and gpa alignment and the remaining length allow (hardware_largepage_caps),
   * entries of one table written together (one `mem` per run).
   */
  private mapPages(d: Domain, iovaPfn: number, gpaPfn: number, pages: number, attr: number, emit: (op: LoweredOp) => void): void {
    let p = iovaPfn, g = gpaPfn, n = pages;
    while (n > 0) {
      let level = 1;
      for (let l = this.maxLeafLevel; l > 1; l--) {
        const s = SPAN[l];
        if (n >= s && p % s === 0 && g % s === 0) {
          level = l;
          break;
        }
      }
      const t = this.tableFor(d, p, level, emit);
      const span = SPAN[level];
      const i0 = (p - t.basePfn) / span;
      const count = Math.min(512 - i0, Math.floor(n / span));
      if (level > 1) {
        // switch_to_super_page: an (empty) table where a superpage goes is freed and flushed first.
        for (let i = i0; i < i0 + count; i++) if (t.entries[i] > 0) this.replaceTable(d, t, i, emit);
      }
      const flags = attr + (level > 1 ? SL_PS : 0);
      const e = t.entries;
      let v = g * PAGE + flags;
      const step = span * PAGE;
      for (let i = i0; i < i0 + count; i++, v += step) e[i] = v;
      this.writeEntries(t, i0, i0 + count - 1, emit);
      if (level === 1) this.stats.leaves.k4 += count;
      else if (level === 2) this.stats.leaves.m2 += count;
      else this.stats.leaves.g1 += count;
      p += count * span;
      g += count * span;
      n -= count * span;
    }
  }

  /** The level-`level` table holding `pfn`'s entry, allocating tables on the way (Linux pfn_to_dma_pte). */
  private tableFor(d: Domain, pfn: number, level: number, emit: (op: LoweredOp) => void): Table {
    let t = d.top;
    for (let l = this.levels; l > level; l--) {
      const i = Math.floor((pfn - t.basePfn) / SPAN[l]);
      if (t.entries[i] > 0) {
        t = t.children![i]!;
        continue;
      }
      const c = this.allocTable(l - 1, t.basePfn + i * SPAN[l], emit);
      t.entries[i] = c.gpa + this.nonLeaf; // non-leaf: every right, the leaves decide
      (t.children ??= new Array<Table | undefined>(512))[i] = c;
      this.writeEntries(t, i, i, emit);
      t = c;
    }
    return t;
  }

  /** switch_to_super_page for one slot: free the empty table there, clear the entry, page-selective flush. */
  private replaceTable(d: Domain, t: Table, i: number, emit: (op: LoweredOp) => void): void {
    const freed: Table[] = [];
    this.collectTables(t.children![i]!, freed);
    t.entries[i] = 0;
    t.children![i] = undefined;
    this.writeEntries(t, i, i, emit);
    if (d.devices > 0) this.flushPsi(d, t.basePfn + i * SPAN[t.level], SPAN[t.level], false, emit);
    for (const f of freed) this.freeTable(f);
  }

  // ------------------------------------------------------------------ unmap

  private unmap(op: Extract<WorkloadOp, { op: 'unmap' }>, emit: (op: LoweredOp) => void): void {
    this.checkRange('unmap', op.domain, op.iova, op.len);
    const d = this.domains.get(op.domain);
    let first = Number(op.iova >> 12n), last = first + op.len / PAGE - 1;
    if (!d) {
      throw new VtdError('TRACE', `unmap: domain ${op.domain} has nothing mapped at iova ${hex(op.iova)}`, { domain: op.domain, iova: op.iova }, this.line);
    }
    // A superpage the range covers in part goes whole (Linux intel_iommu_unmap grows the size
    // to the leaf at the start; this model also grows the end, see docs/workloads/driver.md).
    const lf = this.leafLevel(d, first), ll = this.leafLevel(d, last);
    if (lf > 1) first -= first % SPAN[lf];
    if (ll > 1) last += SPAN[ll] - 1 - (last % SPAN[ll]);
    this.scanMapped(d, d.top, this.levels, first, last);
    const pages = last - first + 1;
    this.stats.unmaps++;
    this.stats.unmapBytes += pages * PAGE;
    const strict = this.policy === 'strict';
    // The iommu core (__iommu_unmap) splits the range by iommu_pgsize; each chunk goes to
    // intel_iommu_unmap, and the gather syncs whenever the chunk size changes.
    let gStart = 0, gPages = 0, gSize = 0;
    const freed: Table[] = [];
    let p = first, n = pages;
    while (n > 0) {
      let size = this.chunk(p, n);
      const leaf = this.leafLevel(d, p);
      if (size < SPAN[leaf]) size = SPAN[leaf];
      const before = freed.length;
      this.clearLevel(d, d.top, this.levels, p, p + size - 1, freed, strict, emit);
      if (strict) {
        if (gPages > 0 && gSize !== size) {
          this.syncGather(d, gStart, gPages, freed.slice(0, before), emit);
          freed.splice(0, before);
          gPages = 0;
        }
        if (gPages === 0) gStart = p;
        gPages += size;
        gSize = size;
      }
      p += size;
      n -= size;
    }
    if (strict) this.syncGather(d, gStart, gPages, freed, emit);
    else {
      for (const f of freed) d.pendingFree.push(f);
      if (++d.queued >= this.flushQueue) this.flushDomain(d, emit);
    }
  }

  /** iommu_pgsize: pages in the next chunk of an unmap at `p` with `n` pages left. */
  private chunk(p: number, n: number): number {
    const sizes = this.pgsizes;
    let k = 0;
    for (let j = sizes.length - 1; j > 0; j--) {
      if (sizes[j] <= n && (p === 0 || p % sizes[j] === 0)) {
        k = j;
        break;
      }
    }
    const s = sizes[k];
    let count = Math.floor(n / s);
    if (k + 1 < sizes.length) {
      const next = sizes[k + 1];
      const offset = next - (p % next);
      if (offset + next <= n) count = offset / s;
    }
    return count * s;
  }

  /** intel_iommu_tlb_sync: one page-selective flush, IH = 1 when no table was freed; then the freed pages go back. */
  private syncGather(d: Domain, start: number, pages: number, freed: Table[], emit: (op: LoweredOp) => void): void {
    if (d.devices > 0) this.flushPsi(d, start, pages, freed.length === 0, emit);
    for (const f of freed) this.freeTable(f);
  }

  /** Level of the leaf mapping `pfn`, or 0. */
  private leafLevel(d: Domain, pfn: number): number {
    let t = d.top;
    for (let l = this.levels; ; l--) {
      const i = Math.floor((pfn - t.basePfn) / SPAN[l]);
      const v = t.entries[i];
      if (!(v > 0)) return 0;
      if (l === 1 || (v & SL_PS) !== 0) return l;
      t = t.children![i]!;
    }
  }

  /** Throws unless every page of [first, last] is mapped. */
  private scanMapped(d: Domain, t: Table, level: number, first: number, last: number): void {
    const span = SPAN[level];
    const i0 = Math.floor((first - t.basePfn) / span), i1 = Math.floor((last - t.basePfn) / span);
    for (let i = i0; i <= i1; i++) {
      const v = t.entries[i];
      if (!(v > 0)) {
        const at = BigInt(Math.max(first, t.basePfn + i * span)) * 4096n;
        throw new VtdError('TRACE', `unmap: domain ${d.did} has nothing mapped at iova ${hex(at)}`, { domain: d.did, iova: at }, this.line);
      }
      if (level > 1 && (v & SL_PS) === 0) {
        const c = t.children![i]!;
        this.scanMapped(d, c, level - 1, Math.max(first, c.basePfn), Math.min(last, c.basePfn + span - 1));
      }
    }
  }

  /**
   * Linux dma_pte_clear_level: an entry whose whole span lies in the range is
   * cleared, and the tables under it are listed for freeing (their own
   * entries are left as they are); an entry covered in part is descended
   * into. Cleared entries of one table form one run: one `mem`.
   */
  private clearLevel(d: Domain, t: Table, level: number, first: number, last: number, freed: Table[], strict: boolean, emit: (op: LoweredOp) => void): void {
    const span = SPAN[level];
    const mark = strict ? 0 : -(d.flushGen + 1);
    const i0 = Math.floor((Math.max(first, t.basePfn) - t.basePfn) / span);
    const i1 = Math.min(511, Math.floor((last - t.basePfn) / span));
    let c0 = -1, c1 = -1;
    for (let i = i0; i <= i1; i++) {
      const v = t.entries[i];
      if (!(v > 0)) continue;
      const base = t.basePfn + i * span;
      if (first <= base && last >= base + span - 1) {
        if (level > 1 && (v & SL_PS) === 0) {
          this.collectTables(t.children![i]!, freed);
          t.children![i] = undefined;
        }
        t.entries[i] = mark;
        if (c0 < 0) c0 = i;
        c1 = i;
      } else if (level > 1) {
        this.clearLevel(d, t.children![i]!, level - 1, first, last, freed, strict, emit);
      }
    }
    if (c0 >= 0) this.writeEntries(t, c0, c1, emit);
  }

  /** Linux dma_pte_list_pagetables: a table and every table below it. */
  private collectTables(t: Table, out: Table[]): void {
    out.push(t);
    if (t.level > 1 && t.children) {
      const e = t.entries;
      for (let i = 0; i < 512; i++) {
        const c = t.children[i];
        if (c && e[i] > 0 && (e[i] & SL_PS) === 0) this.collectTables(c, out);
      }
    }
  }

  // ------------------------------------------------------------------ flushes

  /** Flush-queue flush (Linux fq_flush_iotlb → intel_flush_iotlb_all): domain-selective, then the queued pages go back. */
  private flushDomain(d: Domain, emit: (op: LoweredOp) => void): void {
    if (d.devices > 0) this.tlbDomainInv(d.did, emit);
    d.flushGen++;
    d.queued = 0;
    for (const f of d.pendingFree) this.freeTable(f);
    d.pendingFree = [];
    this.stats.flushes++;
  }

  /**
   * iommu_flush_iotlb_psi: AM = log2 of the page count rounded up to a power
   * of two, widened until one aligned block holds the range when the start is
   * not aligned to it; the address stays the range's start (hardware ignores
   * its low AM bits). AM > CAP.MAMV falls back to domain-selective.
   */
  private flushPsi(d: Domain, pfn: number, pages: number, ih: boolean, emit: (op: LoweredOp) => void): void {
    let am = 0;
    while (2 ** am < pages) am++;
    if (pfn % 2 ** am !== 0) {
      // shared_bits = ~(pfn ^ end) & ~bitmask; AM = __ffs(shared_bits): the lowest bit at or
      // above AM where the first and last page numbers agree.
      const end = pfn + pages - 1;
      while (am < 64 && bitAt(pfn, am) !== bitAt(end, am)) am++;
    }
    if (am > CAP_MAMV) {
      this.tlbDomainInv(d.did, emit);
      d.flushGen++;
      return;
    }
    // First stage (Linux qi_flush_piotlb): pages of PASID 0 in the domain, the address aligned to the block.
    if (this.firstStage) this.pasidIotlbInv(PIOTLB_G_PAGE, d.did, pfn - (pfn % 2 ** am), am, ih, emit);
    else this.iotlbInv(G_PAGE, d.did, pfn, am, ih, emit);
  }

  /**
   * Everything a domain's tables gave: all of PASID 0 in the domain
   * (PASID-based IOTLB, G = 10) for first-stage tables, a domain-selective
   * IOTLB invalidation for second-stage ones (Linux intel_flush_iotlb_all).
   */
  private tlbDomainInv(did: number, emit: (op: LoweredOp) => void): void {
    if (this.firstStage) this.pasidIotlbInv(PIOTLB_G_PASID, did, 0, 0, false, emit);
    else this.iotlbInv(G_DOMAIN, did, 0, 0, false, emit);
  }

  // ------------------------------------------------------------------ invalidation

  /** A context-cache invalidation: descriptor 0x1 (§7.5) or CCMD (§7.2); FM = 0. */
  private contextInv(g: number, did: number, sid: number, emit: (op: LoweredOp) => void): void {
    const inv = this.stats.invalidations;
    if (g === G_GLOBAL) inv.contextGlobal++;
    else if (g === G_DOMAIN) inv.contextDomain++;
    else inv.contextDevice++;
    if (this.invalidation === 'qi') this.submit(ccDesc(g, did, sid), emit);
    else this.emitWr(REG.CCMD, 8, ccmdValue(g, did, sid), emit); // one 8-byte write (Linux dmar_writeq)
  }

  /**
   * An IOTLB invalidation: descriptor 0x2 (§7.5) with DR and DW (CAP.DRD/DWD;
   * Linux qi_flush_iotlb), or IVA + IOTLB registers (§7.3) with DW only
   * (Linux __iommu_flush_iotlb). Linux's queued path drops IH (QI_IOTLB_ADDR
   * masks the address to its page), so IH reaches the unit only through the
   * register path.
   */
  private iotlbInv(g: number, did: number, pfn: number, am: number, ih: boolean, emit: (op: LoweredOp) => void): void {
    const inv = this.stats.invalidations;
    if (g === G_GLOBAL) inv.iotlbGlobal++;
    else if (g === G_DOMAIN) inv.iotlbDomain++;
    else inv.iotlbPage++;
    const addr = BigInt(pfn) << 12n;
    if (this.invalidation === 'qi') {
      this.submit(iotlbDesc(g, did, g === G_PAGE ? ivaValue(addr, am) : 0n, { dr: true, dw: true }), emit);
    } else {
      if (g === G_PAGE) this.emitWr(REG.IVA, 8, ivaValue(addr, am, ih), emit);
      this.emitWr(REG.IOTLB, 8, iotlbRegValue(g, did, { dw: true }), emit);
    }
  }

  /** PASID-cache invalidation (0x7) of PASID 0 (RID_PASID): PASID-selective in `did`, or global. */
  private pasidCacheInv(g: number, did: number, emit: (op: LoweredOp) => void): void {
    this.stats.invalidations.pasidCache++;
    this.submit(pcDesc({ g, did, pasid: RID_PASID }), emit);
  }

  /** PASID-based IOTLB invalidation (0x6) of PASID 0: all of it in `did` (G = 10) or 2^am pages from `pfn` (G = 11). */
  private pasidIotlbInv(g: number, did: number, pfn: number, am: number, ih: boolean, emit: (op: LoweredOp) => void): void {
    if (g === PIOTLB_G_PAGE) this.stats.invalidations.pasidIotlbPage++;
    else this.stats.invalidations.pasidIotlb++;
    this.submit(piotlbDesc(g === PIOTLB_G_PAGE ? { g, did, pasid: RID_PASID, addr: BigInt(pfn) << 12n, am, ih } : { g, did, pasid: RID_PASID }), emit);
  }

  /**
   * Linux qi_submit_sync with one descriptor: the descriptor and a wait
   * descriptor (SW = 1, status QI_DONE to the status word of the wait's slot)
   * go into the next two slots, then IQT moves past them. 256 slots, two per
   * submission: a pair never straddles the wrap. In scalable mode slots are
   * 32 bytes (IQA.DW = 1) and a 128-bit descriptor fills QW0, QW1 of its slot.
   */
  private submit(desc: Desc | Desc256, emit: (op: LoweredOp) => void): void {
    const slot = this.qiHead;
    const status = this.layout.status + BigInt((slot + 1) * 4);
    const wait = waitDesc({ sw: true, data: WAIT_STATUS_DONE, addr: status });
    const size = this.sm ? 32 : 16;
    const pair = this.sm ? [...(desc.length === 4 ? desc : wide(desc)), ...wide(wait)] : [...desc, ...wait];
    this.writeMem(Number(this.layout.queue) + slot * size, words(...pair), emit);
    this.stats.descriptorWrites += 2;
    this.stats.invalidations.wait++;
    this.qiHead = (slot + 2) % QUEUE_SLOTS;
    this.writeReg(REG.IQT, 4, this.qiHead * size, emit);
  }

  // ------------------------------------------------------------------ tables and memory

  private allocTable(level: number, basePfn: number, emit: (op: LoweredOp) => void): Table {
    const { gpa, stale } = this.pool.take(this.line);
    if (stale) this.zeroStale(stale, emit);
    const t = new Table(gpa);
    t.level = level;
    t.basePfn = basePfn;
    this.stats.tablePages++;
    if (this.pool.highWater > this.stats.poolPagesHighWater) this.stats.poolPagesHighWater = this.pool.highWater;
    return t;
  }

  /** A reused page still holds what was written to it: zero the span of entries still set (Linux allocates zeroed pages). */
  private zeroStale(t: Table, emit: (op: LoweredOp) => void): void {
    const e = t.entries;
    let a = -1, b = -1;
    for (let i = 0; i < 512; i++) {
      if (e[i] > 0) {
        if (a < 0) a = i;
        b = i;
      }
    }
    if (a < 0) return;
    e.fill(0);
    this.writeEntries(t, a, b, emit);
  }

  private freeTable(t: Table): void {
    t.children = undefined;
    this.pool.release(t);
    this.stats.tablePagesFreed++;
  }

  /** Writes entries [i0, i1] of `t` as they are now (a lazy mark is 0 in memory): one `mem`. */
  private writeEntries(t: Table, i0: number, i1: number, emit: (op: LoweredOp) => void): void {
    const n = i1 - i0 + 1;
    const data = new Uint8Array(n * 8);
    const e = t.entries;
    for (let k = 0; k < n; k++) {
      const v = e[i0 + k];
      if (v > 0) {
        put32(data, k * 8, v % TWO32);
        put32(data, k * 8 + 4, Math.floor(v / TWO32));
      }
    }
    this.stats.pteWrites += n;
    this.stats.memOps++;
    emit({ op: 'mem', gpa: BigInt(t.gpa + i0 * 8), data });
  }

  /** Writes 32-bit words (little-endian) at `gpa`. */
  private writeMem(gpa: number, words: number[], emit: (op: LoweredOp) => void): void {
    const data = new Uint8Array(words.length * 4);
    for (let k = 0; k < words.length; k++) put32(data, k * 4, words[k]);
    this.stats.memOps++;
    emit({ op: 'mem', gpa: BigInt(gpa), data });
  }

  private writeReg(reg: number, size: 4 | 8, val: number, emit: (op: LoweredOp) => void): void {
    this.emitWr(reg, size, BigInt(val), emit);
  }

  private emitWr(reg: number, size: 4 | 8, val: bigint, emit: (op: LoweredOp) => void): void {
    this.stats.registerWrites++;
    emit({ op: 'wr', reg, size, val });
  }
}

// ------------------------------------------------------------------ text

/**
 * One lowered op as a trace line (trace-format.md). With `index`, the line
 * starts with `"i": index` like a result line: a listing of lowered ops, not
 * a trace line.
 */
export function formatLowered(op: LoweredOp, index?: number): string {
  return formatOp(op, index);
}

/**
 * The header line of a trace, every option explicit, except that the
 * scalable-mode sub-options (`flts`, `pasid`, `nest`) are written only for a
 * scalable-mode unit: without `sm` they must be false, and a legacy trace's
 * header stays as it was.
 */
export function formatHeader(h: TraceHeader): string {
  const { flts, pasid, nest, ...legacy } = h.config;
  return writeHeader(h.config.sm ? h.config : legacy, h.devices);
}

/**
 * Lowers a trace's operations one at a time, writing lines through `write`:
 * raw operations pass through unchanged, workload operations become their
 * lowering, the driver's boot programming goes before the first workload
 * operation and the flush-queue drain after the last operation. Returns the
 * driver (its stats); a trace without workload operations comes out as it
 * went in.
 */
export function lowerOps(header: TraceHeader, ops: Iterable<TraceOp>, write: (line: string) => void, opts?: DriverOptions): GuestDriver {
  const driver = new GuestDriver(header, opts); // options are checked even when no workload op follows
  let started = false;
  const emit = (op: LoweredOp): void => write(formatLowered(op));
  for (const op of ops) {
    if (op.op === 'attach' || op.op === 'map' || op.op === 'unmap') {
      if (!started) {
        started = true;
        write(formatComment(`guest-driver model (docs/workloads/driver.md): policy ${driver.policy}${driver.policyForced ? ' (forced by caching mode)' : ''}, ${driver.invalidation === 'qi' ? 'queued' : 'register'} invalidation, ${driver.superpages ? '' : 'no '}superpages${driver.policy === 'lazy' ? `, flush queue ${driver.flushQueue}` : ''}; page pool [${hex(driver.layout.base)}, ${hex(header.config.ram)})`));
        driver.init(emit);
      }
      driver.lower(op, emit);
    } else write(formatOp(op));
  }
  driver.finish(emit);
  return driver;
}

/**
 * The whole lowered trace as text (one line each, newline-terminated): the
 * header (same unit options and devices), then the operations as `lowerOps`
 * writes them. The result is itself a raw trace.
 */
export function lowerTrace(trace: Trace, opts?: DriverOptions): string {
  const lines: string[] = [formatHeader(trace.header)];
  lowerOps(trace.header, trace.ops, (l) => lines.push(l), opts);
  return lines.join('\n') + '\n';
}
