/**
 * The API an embedder calls: one VT-d remapping unit.
 *
 * ```ts
 * const iommu = Iommu.create({ aw: 48, ram: 0x10000000 });
 * iommu.writeGuest(0x100000, rootTableBytes);
 * iommu.mmioWrite(0x20, 8, 0x100000n);             // RTADDR
 * const r = iommu.translate(0x18, 0x1000, 'r');     // sid 00:03.0
 * if (r.ok) use(r.gpa); else if (r.fault !== undefined) log(r.fault);
 * ```
 *
 * Register accesses use bigint values (they are not a hot path). Translation
 * has an allocation-free path (`translateInto`) and a batch path
 * (`batch`), neither of which uses bigint.
 */
import { BatchPath, Core, CoreFlag, RequestFlag, PASID_MAX, MAX_REQUEST_LEN, MemStatus, Status, type ContextInfo, type GuestMemoryHooks, type IommuEvent, type LeafVisitor } from './core.js';
import { VtdError } from './errors.js';

export type { ContextInfo, GuestMemoryHooks, IommuEvent, LeafVisitor } from './core.js';
export { BatchPath, BATCH_WORDS, BATCH_WRITE, BATCH_PASID, BATCH_PRIV, BATCH_EXE, BATCH_PASID_LO_SHIFT, BATCH_PASID_HI_SHIFT, BREQ_IOVA, BREQ_LEN, BREQ_SID, BRESP_OUT, BRESP_SPLIT, BRESP_STATUS } from './core.js';

/** Options of a unit. Defaults follow the trace format (trace-format.md). */
export interface IommuOptions {
  /** Guest address width: 39, 48 or 57 (CAP.MGAW + 1; also the host address width). Default 39. */
  aw?: 39 | 48 | 57;
  /** Caching mode, CAP.CM. Default false. */
  cm?: boolean;
  /** Interrupt remapping, ECAP.IR. Default false. */
  ir?: boolean;
  /** Extended interrupt mode (x2APIC), ECAP.EIM. Default false. */
  eim?: boolean;
  /** Pass-through translation type, ECAP.PT. Default true. */
  pt?: boolean;
  /** Snoop control, ECAP.SC. Default false. */
  sc?: boolean;
  /** Device-TLB support, ECAP.DT. Default false. */
  dt?: boolean;
  /**
   * Scalable mode (ECAP.SMTS, SLTS, SRS; QEMU's x-scalable-mode): RTADDR.TTM = 01 selects scalable-mode
   * tables, IQA.DW 256-bit descriptors. Default false.
   */
  sm?: boolean;
  /** First-stage translation in place of second-stage (ECAP.FLTS, CAP.FS1GP; QEMU's x-flts). Needs sm and aw 48 or 57 (57: 5-level, CAP.FS5LP). Default false. */
  flts?: boolean;
  /** Requests with PASID (ECAP.PASID, PSS 0; QEMU's x-pasid-mode). Needs sm; excludes dt. Default false. */
  pasid?: boolean;
  /** Nested translation (ECAP.NEST with FLTS and SLTS; beyond QEMU). Needs sm and aw 48 or 57. Default false. */
  nest?: boolean;
  /** Fault-recording registers, 1 to 64. Default 1. */
  nfr?: number;
  /** Bytes of guest RAM from address 0 (ignored when `ramRegions` is given). Default 256 MiB. */
  ram?: number | bigint;
  /** Guest RAM as [start, end) ranges (at most 16). */
  ramRegions?: ReadonlyArray<readonly [number | bigint, number | bigint]>;
  /** Protected memory regions (CAP.PLMR/PHMR, PMEN and the base/limit registers). Default false (as QEMU). */
  pmr?: boolean;
  /** Posted interrupts (CAP.PI): IRTEs with IM = 1 are reported as posted. Default false (as QEMU). */
  pi?: boolean;
  /** IOTLB capacity in entries (rounded down to a power of two, 4-way sets); 0 disables it. Default 4096. */
  iotlbEntries?: number;
  /** Context cache on (default) or off. */
  contextCache?: boolean;
  /** Guest memory owned by the embedder instead of the core's sparse store. */
  guestMemory?: GuestMemoryHooks;
  /** Most bytes of linear memory the core may use (guest frames included). Default 2 GiB. */
  maxMemoryBytes?: number;
}

/**
 * Attributes of a DMA request beyond its address and direction (scalable mode). Without `pasid` the
 * request has no PASID (it uses the context entry's RID_PASID); `priv` (a supervisor request) and
 * `exe` (an execute request) go with a `pasid`.
 */
export interface DmaRequest { pasid?: number; priv?: boolean; exe?: boolean }

/** A DMA direction: the device reads ('r') or writes ('w') memory. */
export type Direction = 'r' | 'w';

/** The outcome of one translation. Reusable: `translateInto` overwrites it. */
export class TranslateResult {
  /** Raw status from the core (0 = ok). */
  status = 0;
  /** Output address, low and high 32 bits. */
  addrLo = 0;
  addrHi = 0;
  /**
   * 0, or for a completed request that crossed a 4 KiB boundary onto a frame not contiguous with
   * the first page's: the bytes that go to `gpa` (those before the boundary); the rest go to `gpa2`.
   */
  split = 0;
  /** When `split` is not 0: where the bytes after the boundary go, low and high 32 bits. */
  addr2Lo = 0;
  addr2Hi = 0;

  /** The request completes (memory access, or an interrupt request to 0xFEEx_xxxx). */
  get ok(): boolean { return this.status === Status.OK || this.status === Status.INTERRUPT; }
  /** Output address as a number; exact below 2^53 (always, for translated requests). */
  get gpa(): number { return this.addrHi * 2 ** 32 + this.addrLo; }
  /** Output address as a bigint. */
  get gpaBig(): bigint { return (BigInt(this.addrHi) << 32n) | BigInt(this.addrLo); }
  /** Where the bytes after the 4 KiB boundary go, when `split` is not 0 (a number, exact below 2^53). */
  get gpa2(): number { return this.addr2Hi * 2 ** 32 + this.addr2Lo; }
  /** As `gpa2`, a bigint. */
  get gpa2Big(): bigint { return (BigInt(this.addr2Hi) << 32n) | BigInt(this.addr2Lo); }
  /** The fault reason the unit reports (recorded unless overflow/collapse), or undefined. */
  get fault(): number | undefined {
    return (this.status & Status.FAULT) !== 0 && (this.status & Status.FPD) === 0 ? this.status & Status.REASON_MASK : undefined;
  }
  /** The fault reason even when fault processing was disabled (FPD) for it. */
  get faultReason(): number | undefined {
    return (this.status & Status.FAULT) !== 0 ? this.status & Status.REASON_MASK : undefined;
  }
  /** Blocked by a qualified fault that FPD kept from being recorded. */
  get suppressed(): boolean { return (this.status & Status.FPD) !== 0; }
  /** A write to the interrupt address range: an interrupt request, not translated. */
  get interrupt(): boolean { return this.status === Status.INTERRUPT; }
  /** Blocked without a remapping fault (a read of the interrupt range, a protected memory range). */
  get blockedWithoutFault(): boolean { return this.status === Status.BLOCKED; }
}

/** The outcome of an interrupt request. */
export type MsiResult =
  | {
      ok: true; posted: false;
      /** The interrupt as delivered, in compatibility format (destination bits 31:8 in address 63:40). */
      addr: bigint; data: number;
      /** Decoded: APIC destination (8 bits xAPIC, 32 bits x2APIC), vector, delivery mode, trigger mode (1 = level), destination mode (1 = logical), redirection hint. */
      destination: number; vector: number; deliveryMode: number; triggerMode: number; destinationMode: number; redirectionHint: number;
      /** The interrupt-table index used, when remapped (undefined when the message passed unchanged). */
      index?: number;
    }
  | { ok: true; posted: true; /** Posted-interrupt descriptor address. */ descriptor: bigint; vector: number; urgent: boolean; index: number }
  | { ok: false; /** The fault reason reported (undefined when the IRTE's FPD suppressed it). */ fault?: number; reason: number };

/**
 * A fault record as FRCD holds it (digest §6.1). `pasid` is present when the record's PP = 1 (a request
 * with PASID), with `priv` / `exe` (bits 93 / 94) then.
 */
export interface FaultRecord {
  index: number; reason: number; sid: number; addr: bigint; read: boolean;
  pasid?: number; priv?: boolean; exe?: boolean;
}

/** A present leaf mapping found by `walkRange`: `size` bytes at `iova` map to `gpa`. */
export interface LeafMapping { iova: bigint; gpa: bigint; size: bigint; level: number; read: boolean; write: boolean }

/**
 * Default budget of a range walk: guest table entries read. 2^24 entries is
 * the tables of 64 GiB mapped with 4 KiB pages; a hostile table can make a
 * walk read 512^levels entries (docs/SHADOW.md, Limits).
 */
export const DEFAULT_WALK_ENTRIES = 1 << 24;
/** Default most leaves `walkRange` returns in one call (1 GiB of 4 KiB pages). */
export const DEFAULT_WALK_LEAVES = 1 << 18;

/** What a bounded range walk did. */
export interface RangeScan {
  /** Guest table entries read (at most the budget + levels - 1). */
  entriesRead: number;
  /** Present entries that map nothing because a request through them would fault. */
  malformed: number;
  /** Whether [start, end) was walked to its end. */
  complete: boolean;
  /** Where the walk stopped: nothing at or above it was looked at (end when complete). */
  resume: bigint;
}





const TWO32 = 2 ** 32;

function splitU64(v: number | bigint, what: string): [number, number] {
  if (typeof v === 'bigint') {
    if (v < 0n || v >= 1n << 64n) throw new VtdError('ARGUMENT', `${what} must fit in 64 bits`, { value: v });
    return [Number(v & 0xffffffffn), Number(v >> 32n)];
  }
  if (!Number.isSafeInteger(v) || v < 0) throw new VtdError('ARGUMENT', `${what} must be a non-negative safe integer (or a bigint)`, { value: v });
  return [v % TWO32, Math.floor(v / TWO32)];
}

function toGpa(v: number | bigint, what: string): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (!Number.isSafeInteger(n) || n < 0 || n > 2 ** 52) throw new VtdError('ARGUMENT', `${what} must be an address below 2^52`, { value: v });
  return n;
}

/** Most bytes one readGuest/writeGuest/writeGuestQwords call copies (checked before anything is allocated). */
export const MAX_GUEST_COPY = 2 ** 30;

function checkCopy(a: number, len: number): void {
  if (!Number.isInteger(len) || len < 0) throw new VtdError('ARGUMENT', 'length must be a non-negative integer', { len });
  if (len > MAX_GUEST_COPY) throw new VtdError('ARGUMENT', `one guest-memory copy is at most 2^30 bytes, not ${len}`, { len });
  if (a + len > 2 ** 52) throw new VtdError('GUEST_MEMORY', `[0x${a.toString(16)}, +${len}) reaches beyond 2^52`, { gpa: a, len });
}

function checkDir(dir: unknown): asserts dir is Direction {
  if (dir !== 'r' && dir !== 'w') throw new VtdError('ARGUMENT', `direction must be 'r' or 'w'`, { dir });
}

/** A request's attributes as translatePasid flags, or -1 for a request without PASID. */
function requestFlags(req: DmaRequest | undefined, sm: boolean): number {
  if (req === undefined || req === null) return -1;
  if (typeof req !== 'object') throw new VtdError('ARGUMENT', 'the request attributes must be an object { pasid?, priv?, exe? }', { req });
  const { pasid, priv, exe } = req;
  if (priv !== undefined && typeof priv !== 'boolean') throw new VtdError('ARGUMENT', 'priv must be a boolean', { priv });
  if (exe !== undefined && typeof exe !== 'boolean') throw new VtdError('ARGUMENT', 'exe must be a boolean', { exe });
  if (pasid === undefined) {
    if (priv || exe) throw new VtdError('ARGUMENT', 'priv and exe go with a pasid (a request without PASID is a user, non-execute request)', { req });
    return -1;
  }
  if (!Number.isInteger(pasid) || pasid < 0 || pasid > PASID_MAX) throw new VtdError('ARGUMENT', 'pasid must be an integer 0..0xfffff (20 bits)', { pasid });
  if (!sm) throw new VtdError('ARGUMENT', 'requests with PASID need a scalable-mode unit (option sm)', { pasid });
  return (priv ? RequestFlag.PRIV : 0) | (exe ? RequestFlag.EXE : 0);
}

function checkSid(sid: number): void {
  if (!Number.isInteger(sid) || sid < 0 || sid > 0xffff) throw new VtdError('ARGUMENT', `requester id must be 0..0xffff`, { sid });
}

/** One VT-d remapping unit. */
export class Iommu {
  private readonly core: Core;
  private readonly listeners = new Set<(e: IommuEvent) => void>();
  private readonly scratch = new TranslateResult();
  readonly options: Readonly<Required<Pick<IommuOptions, 'aw' | 'cm' | 'ir' | 'eim' | 'pt' | 'sc' | 'dt' | 'nfr' | 'pmr' | 'pi' | 'sm' | 'flts' | 'pasid' | 'nest'>>>;

  private constructor(core: Core, options: Iommu['options']) {
    this.core = core;
    this.options = options;
    // Runs after the core call that raised the event (src/core.ts settle): every listener gets the
    // event even when an earlier one threw; the first exception is then rethrown (several: an
    // AggregateError), and the Core offers the remaining events before it reaches the embedder.
    core.onEvent = (ev) => {
      if (this.listeners.size === 0) return;
      let errors: unknown[] | undefined;
      for (const l of [...this.listeners]) {
        try {
          l(ev);
        } catch (e) {
          (errors ??= []).push(e);
        }
      }
      if (errors) throw errors.length === 1 ? errors[0] : new AggregateError(errors, `${errors.length} event listeners threw`);
    };
  }

  /** Creates a configured unit (synchronous; the core is embedded in the library). */
  static create(opts: IommuOptions = {}): Iommu {
    const aw = opts.aw ?? 39;
    if (aw !== 39 && aw !== 48 && aw !== 57) throw new VtdError('CONFIG', 'aw must be 39, 48 or 57', { aw });
    const sm = !!opts.sm, flts = !!opts.flts, pasid = !!opts.pasid, nest = !!opts.nest;
    if (flts && !sm) throw new VtdError('CONFIG', 'flts (first-stage translation) requires sm (scalable mode)');
    if (pasid && !sm) throw new VtdError('CONFIG', 'pasid (requests with PASID) requires sm (scalable mode)');
    if (nest && !sm) throw new VtdError('CONFIG', 'nest (nested translation) requires sm (scalable mode)');
    if (pasid && opts.dt) throw new VtdError('CONFIG', 'pasid and dt exclude each other (as QEMU refuses x-pasid-mode with device-iotlb)');
    if ((flts || nest) && aw === 39) throw new VtdError('CONFIG', `${flts ? 'flts' : 'nest'} (first-stage translation) requires aw 48 or 57`, { aw });
    if (opts.eim && !opts.ir) throw new VtdError('CONFIG', 'eim requires ir (as on QEMU: eim=on needs intremap=on)');
    const nfr = opts.nfr ?? 1;
    if (!Number.isInteger(nfr) || nfr < 1 || nfr > 64) throw new VtdError('CONFIG', 'nfr must be an integer from 1 to 64', { nfr });
    const iotlbEntries = opts.iotlbEntries ?? 4096;
    if (!Number.isInteger(iotlbEntries) || iotlbEntries < 0 || iotlbEntries > 1 << 24) {
      throw new VtdError('CONFIG', 'iotlbEntries must be an integer from 0 to 2^24', { iotlbEntries });
    }
    const maxBytes = opts.maxMemoryBytes ?? 2 ** 31;
    const o = { aw, cm: !!opts.cm, ir: !!opts.ir, eim: !!opts.eim, pt: opts.pt ?? true, sc: !!opts.sc, dt: !!opts.dt, nfr, pmr: !!opts.pmr, pi: !!opts.pi, sm, flts, pasid, nest } as const;
    if (o.pi && !o.ir) throw new VtdError('CONFIG', 'pi (posted interrupts) requires ir');
    let flags = 0;
    if (o.cm) flags |= CoreFlag.CM;
    if (o.ir) flags |= CoreFlag.IR;
    if (o.eim) flags |= CoreFlag.EIM;
    if (o.pt) flags |= CoreFlag.PT;
    if (o.sc) flags |= CoreFlag.SC;
    if (o.dt) flags |= CoreFlag.DT;
    if (o.pmr) flags |= CoreFlag.PMR;
    if (o.pi) flags |= CoreFlag.PI;
    if (sm) flags |= CoreFlag.SM;
    if (flts) flags |= CoreFlag.FLTS;
    if (pasid) flags |= CoreFlag.PASID;
    if (nest) flags |= CoreFlag.NEST;
    if (opts.guestMemory) flags |= CoreFlag.EXTERNAL_MEMORY;
    const core = new Core({
      aw, flags, nfr, iotlbEntries, contextCache: opts.contextCache ?? true,
      maxPages: Math.max(64, Math.min(65536, Math.floor(maxBytes / 65536))), guestMemory: opts.guestMemory,
    });
    const regions = opts.ramRegions ?? [[0, opts.ram ?? 0x10000000]];
    if (regions.length === 0 || regions.length > 16) throw new VtdError('CONFIG', 'ramRegions must hold 1 to 16 ranges');
    for (const [s, e] of regions) {
      const start = toGpa(s, 'RAM region start'), end = toGpa(e, 'RAM region end');
      if (!core.addRamRegion(start, end)) throw new VtdError('CONFIG', `bad RAM region [${start.toString(16)}, ${end.toString(16)})`, { start, end });
    }
    return new Iommu(core, o);
  }

  // ---- registers ----

  private checkMmio(off: number, size: number): void {
    if (size !== 1 && size !== 2 && size !== 4 && size !== 8) {
      throw new VtdError('MMIO_ACCESS', `register access size must be 1, 2, 4 or 8 bytes, not ${size}`, { off, size });
    }
    if (!Number.isInteger(off) || off < 0 || off + size > 0x1000) {
      throw new VtdError('MMIO_ACCESS', `register access [${off}, +${size}) is outside the 4 KiB register block`, { off, size });
    }
  }

  /** A guest register read of `size` bytes at `off` (any alignment inside the 4 KiB block). */
  mmioRead(off: number, size: 1 | 2 | 4 | 8): bigint {
    this.checkMmio(off, size);
    const { lo, hi } = this.core.mmioRead(off, size);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** A 32-bit register read as a number. */
  mmioRead32(off: number): number {
    this.checkMmio(off, 4);
    return this.core.mmioRead32(off);
  }

  /** A guest register write of `size` bytes at `off`; bits above `size` bytes are ignored. */
  mmioWrite(off: number, size: 1 | 2 | 4 | 8, value: bigint | number): void {
    this.checkMmio(off, size);
    if (typeof value !== 'bigint' && typeof value !== 'number') throw new VtdError('ARGUMENT', 'register value must be a bigint or a number', { value });
    const [lo, hi] = splitU64(typeof value === 'number' ? value : BigInt.asUintN(64, value), 'register value');
    this.core.mmioWrite(off, size, lo, hi);
  }

  // ---- guest memory ----

  /** The guest CPU writes guest-physical memory. Throws outside declared RAM or when memory runs out. */
  writeGuest(gpa: number | bigint, bytes: Uint8Array): void {
    const a = toGpa(gpa, 'gpa');
    if (!(bytes instanceof Uint8Array)) throw new VtdError('ARGUMENT', 'bytes must be a Uint8Array');
    checkCopy(a, bytes.length);
    const rc = this.core.writeGuest(a, bytes);
    if (rc === MemStatus.OUTSIDE_RAM) throw new VtdError('GUEST_MEMORY', `write of ${bytes.length} bytes at 0x${a.toString(16)} is outside guest RAM`, { gpa: a, len: bytes.length });
    if (rc === MemStatus.EXHAUSTED) throw new VtdError('GUEST_MEMORY', `guest memory exhausted writing at 0x${a.toString(16)} (raise maxMemoryBytes)`, { gpa: a });
    if (rc !== 0) throw new VtdError('GUEST_MEMORY', `guest write failed (${rc})`, { gpa: a });
  }

  /** Writes little-endian quadwords, as the trace format's `q` field does. */
  writeGuestQwords(gpa: number | bigint, qwords: ReadonlyArray<bigint>): void {
    const a = toGpa(gpa, 'gpa');
    if (!Array.isArray(qwords)) throw new VtdError('ARGUMENT', 'qwords must be an array of bigints');
    checkCopy(a, qwords.length * 8);
    const bad = qwords.findIndex((q) => typeof q !== 'bigint');
    if (bad >= 0) throw new VtdError('ARGUMENT', `quadword ${bad} is not a bigint`, { index: bad });
    const b = new Uint8Array(qwords.length * 8);
    const dv = new DataView(b.buffer);
    qwords.forEach((q, i) => dv.setBigUint64(i * 8, BigInt.asUintN(64, q), true));
    this.writeGuest(gpa, b);
  }

  /** The guest CPU reads guest-physical memory. */
  readGuest(gpa: number | bigint, len: number): Uint8Array {
    const a = toGpa(gpa, 'gpa');
    checkCopy(a, len);
    const out = new Uint8Array(len);
    const rc = this.core.readGuest(a, out);
    if (rc === MemStatus.OUTSIDE_RAM) throw new VtdError('GUEST_MEMORY', `read of ${len} bytes at 0x${a.toString(16)} is outside guest RAM`, { gpa: a, len });
    if (rc !== 0) throw new VtdError('GUEST_MEMORY', `guest read failed (${rc})`, { gpa: a });
    return out;
  }

  // ---- translation ----

  /**
   * Translates a DMA request of `len` bytes (1..4096) from requester `sid`.
   * Allocates a result; use `translateInto` on hot paths.
   *
   * Every byte must be covered by a translation with the needed right. A request that crosses a
   * 4 KiB boundary is translated as the two page requests a DMA engine issues for it (PCIe requests
   * never cross one), in address order, each with its own cache lookups, counters and fault
   * recording: it completes only when both do, and otherwise reports the first page that does not
   * (a recorded fault names that page's address). On success `gpa` is the first byte's; when the
   * second page's frame does not follow the first, `split` is the bytes before the boundary and
   * `gpa2` where the rest go.
   */
  translate(sid: number, iova: number | bigint, dir: Direction, len = 1, req?: DmaRequest): TranslateResult {
    return this.translateInto(sid, iova, dir, len, new TranslateResult(), req);
  }

  /**
   * As `translate`, filling `out` (no allocation for number iovas). `req` (scalable mode): a request
   * with `pasid`, and `priv` / `exe` for a supervisor / execute request; without it (or without
   * `pasid`) a request without PASID, which takes the same path as before.
   */
  translateInto(sid: number, iova: number | bigint, dir: Direction, len: number, out: TranslateResult, req?: DmaRequest): TranslateResult {
    checkSid(sid);
    if (!Number.isInteger(len) || len < 1 || len > MAX_REQUEST_LEN) throw new VtdError('ARGUMENT', 'DMA length must be 1..4096 bytes', { len });
    checkDir(dir);
    let lo: number, hi: number;
    if (typeof iova === 'number' && iova >= 0 && iova < TWO32 && Number.isInteger(iova)) {
      lo = iova; hi = 0;
    } else {
      [lo, hi] = splitU64(iova, 'iova');
    }
    const flags = req === undefined ? -1 : requestFlags(req, this.options.sm);
    const st = flags < 0 ? this.core.translate(sid, lo, hi, len, dir === 'w')
      : this.core.translatePasid(sid, lo, hi, len, flags | (dir === 'w' ? RequestFlag.WRITE : 0), req!.pasid!);
    out.status = st;
    out.addrLo = this.core.outLo;
    out.addrHi = this.core.outHi;
    out.split = 0;
    if ((lo & 0xfff) + len > 0x1000 && st === Status.OK) {
      // Crossed a boundary and completed: the core also gave the second page's output.
      const first = 0x1000 - (lo & 0xfff);
      const lo2 = this.core.out2Lo, hi2 = this.core.out2Hi;
      const sum = out.addrLo + first;
      const contiguous = sum % TWO32 === lo2 && out.addrHi + (sum >= TWO32 ? 1 : 0) === hi2;
      if (!contiguous) {
        out.split = first;
        out.addr2Lo = lo2;
        out.addr2Hi = hi2;
      }
    }
    return out;
  }

  /**
   * The batch path: requests and responses live in the core's memory.
   * Fill `requests` (BATCH_WORDS u32 words per request: iova lo, iova hi, sid | BATCH_WRITE for a
   * write, len 1..4096), call `run(n)`, read `responses` (out lo, out hi, status, split).
   * Requests are translated as `translate` does them; `split` is 0, or for a completed request
   * whose two pages map to frames that are not contiguous, the bytes at `out` (the rest start at
   * the translation of iova + split, which the embedder requests on its own).
   */
  get batch(): BatchPath {
    return new BatchPath(this.core);
  }

  /**
   * What a one-byte request (sid, iova, dir) would get on this unit with empty caches, without
   * touching caches, fault registers or counters (a debugging probe). It runs the request path of
   * `translate` itself, so the two cannot disagree. On success: the output `gpa`, and when tables
   * were walked the `leaf` entry (frame | W | R, rights the AND over the path) and its `level`
   * (0 and 0n otherwise: translation off, pass-through, an interrupt request); `did` is the
   * context's (0 when none was read). Otherwise `fault` is the reason a request would report
   * (undefined when FPD suppresses it or the request is blocked without a fault), `reason` the
   * reason even when suppressed; `status` is the raw status either way. `req` as `translate`'s; a
   * probe writes no Accessed/Dirty flags. For a first-stage or nested translation `leaf` is the
   * final frame | W | R and `level` the smaller of the two stages' leaf levels.
   */
  probe(sid: number, iova: number | bigint, dir: Direction, req?: DmaRequest):
    { ok: true; gpa: bigint; leaf: bigint; level: number; did: number; status: number }
    | { ok: false; fault?: number; reason?: number; status: number } {
    checkSid(sid);
    checkDir(dir);
    const [lo, hi] = splitU64(iova, 'iova');
    const flags = requestFlags(req, this.options.sm);
    const st = flags < 0 ? this.core.probe(sid, lo, hi, dir === 'w')
      : this.core.probe(sid, lo, hi, dir === 'w', flags | RequestFlag.PASID, req!.pasid!);
    const r = new TranslateResult();
    r.status = st;
    if (r.ok) return { ok: true, status: st, ...this.core.probeResult() };
    const out: { ok: false; fault?: number; reason?: number; status: number } = { ok: false, status: st };
    if (r.fault !== undefined) out.fault = r.fault;
    if (r.faultReason !== undefined) out.reason = r.faultReason;
    return out;
  }

  // ---- shadow sync support ----

  /**
   * Reads `sid`'s root and context entries now, without caches or side effects. Legacy entries only
   * (RTADDR.TTM = 00): a scalable-mode unit's PASID entries are not read (the shadow sync, its user,
   * refuses scalable-mode units).
   */
  contextOf(sid: number): ContextInfo {
    checkSid(sid);
    return this.core.contextOf(sid);
  }

  /**
   * The present leaf mappings of a second-level table over [start, end)
   * (end exclusive, at most 2^64), with their effective rights (the AND over
   * the path). Not-present entries prune their subtrees; entries a request
   * would fault on map nothing and are counted in `malformed`. No side
   * effects besides counters.
   *
   * Bounded whatever the tables hold: it stops after `maxEntries` entries
   * read or `maxLeaves` leaves (defaults DEFAULT_WALK_ENTRIES and
   * DEFAULT_WALK_LEAVES) with `complete` false; `resume` is where to continue.
   */
  walkRange(table: bigint, levels: number, start: bigint, end: bigint, opts: { maxEntries?: number; maxLeaves?: number } = {}): { mappings: LeafMapping[] } & RangeScan {
    const maxLeaves = opts.maxLeaves ?? DEFAULT_WALK_LEAVES;
    if (!Number.isSafeInteger(maxLeaves) || maxLeaves < 0) throw new VtdError('ARGUMENT', 'maxLeaves must be a non-negative integer', { maxLeaves });
    const mappings: LeafMapping[] = [];
    const scan = this.scanRange(table, levels, start, end, opts.maxEntries ?? DEFAULT_WALK_ENTRIES, (iova, gpa, level, read, write) => {
      if (mappings.length >= maxLeaves) return false;
      mappings.push({ iova, gpa, size: 1n << BigInt(12 + 9 * (level - 1)), level, read, write });
      return true;
    });
    return { mappings, ...scan };
  }

  /**
   * The range walk of `walkRange` without building its result: each leaf, in
   * IOVA order, goes to `visit`, which may stop the walk. At most about
   * `maxEntries` guest table entries are read (the core walks in steps of at
   * most one response block and the remaining budget).
   */
  scanRange(table: bigint, levels: number, start: bigint, end: bigint, maxEntries: number, visit: LeafVisitor): RangeScan {
    if (!Number.isInteger(levels) || levels < 1 || levels > 5) throw new VtdError('ARGUMENT', 'levels must be 1..5', { levels });
    if (start < 0n || end > 1n << 64n || end <= start) throw new VtdError('ARGUMENT', 'need 0 <= start < end <= 2^64', { start, end });
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 0) throw new VtdError('ARGUMENT', 'maxEntries must be a non-negative integer', { maxEntries });
    const [tlo, thi] = splitU64(table, 'table');
    const [elo, ehi] = end === 1n << 64n ? [0, 0] : splitU64(end, 'end');
    let entriesRead = 0, malformed = 0;
    let at = start;
    for (;;) {
      const [slo, shi] = splitU64(at, 'start');
      // One step reads at most its budget plus a descent; the u32 budget of a step is capped.
      const step = this.core.walkRange(tlo, thi, levels, slo, shi, elo, ehi, Math.min(Math.max(0, maxEntries - entriesRead), 0xffffffff));
      const resume = step.resume;
      entriesRead += step.entriesRead;
      malformed += step.malformed;
      let stoppedAt: bigint | undefined;
      const seen = this.core.visitRange(step.count, (iova, gpa, level, read, write) => {
        if (visit(iova, gpa, level, read, write)) return true;
        stoppedAt = iova;
        return false;
      });
      if (seen < step.count) return { entriesRead, malformed, complete: false, resume: stoppedAt! > at ? stoppedAt! : at };
      const done = end === 1n << 64n ? resume === 0n : resume >= end;
      if (done) return { entriesRead, malformed, complete: true, resume: end };
      if (entriesRead >= maxEntries) return { entriesRead, malformed, complete: false, resume };
      at = resume;
    }
  }

  // ---- interrupt remapping ----

  /**
   * A device signals a message-signalled interrupt: a DWORD write of `data` to
   * `addr`. `sid` is its requester id, or null for a source without one (no
   * source-id validation then).
   */
  remapMsi(sid: number | null, addr: number | bigint, data: number): MsiResult {
    if (sid !== null) checkSid(sid);
    if (!Number.isInteger(data) || data < 0 || data > 0xffffffff) throw new VtdError('ARGUMENT', 'MSI data must be a 32-bit value', { data });
    const [lo, hi] = splitU64(addr, 'MSI address');
    return this.msiResult(this.core.remapMsi(sid ?? 0, sid !== null, lo, hi, data));
  }

  /**
   * The IOAPIC sends the interrupt of a redirection-table entry `rte` (64 bits;
   * remappable format when bit 48 is set). `sid` is the IOAPIC's source id
   * (the DMAR device scope's), or null.
   */
  remapIoapic(sid: number | null, rte: bigint): MsiResult {
    if (sid !== null) checkSid(sid);
    const [lo, hi] = splitU64(rte, 'redirection-table entry');
    return this.msiResult(this.core.remapIoapic(sid ?? 0, sid !== null, lo, hi));
  }

  private msiResult(st: number): MsiResult {
    const c = this.core;
    if (st === Status.OK) {
      const lo = c.irAddrLo, hi = c.irAddrHi, data = c.irData, index = c.irIndex;
      const r: MsiResult = {
        ok: true, posted: false, addr: (BigInt(hi) << 32n) | BigInt(lo), data,
        destination: ((hi >>> 8) << 8) | ((lo >>> 12) & 0xff), vector: data & 0xff, deliveryMode: (data >>> 8) & 7,
        triggerMode: (data >>> 15) & 1, destinationMode: (lo >>> 2) & 1, redirectionHint: (lo >>> 3) & 1,
      };
      if (index !== undefined) r.index = index;
      return r;
    }
    if (st === Status.POSTED) {
      return { ok: true, posted: true, descriptor: (BigInt(c.irAddrHi) << 32n) | BigInt(c.irAddrLo), vector: c.irData & 0xff, urgent: c.irUrgent, index: c.irIndex! };
    }
    const reason = st & Status.REASON_MASK;
    return (st & Status.FPD) !== 0 ? { ok: false, reason } : { ok: false, fault: reason, reason };
  }

  /**
   * The fault records whose F bit is set, read as the guest reads them (each read counts in
   * `reg.reads`; nothing is cleared).
   */
  faultRecords(): FaultRecord[] {
    const out: FaultRecord[] = [];
    for (let i = 0; i < this.options.nfr; i++) {
      const at = 0x220 + 16 * i; // CAP.FRO = 0x22 (fixed by the trace format)
      const hi = this.mmioRead(at + 8, 8);
      if ((hi >> 63n) === 0n) continue;
      const r: FaultRecord = {
        index: i, reason: Number((hi >> 32n) & 0xffn), sid: Number(hi & 0xffffn), addr: this.mmioRead(at, 8) & ~0xfffn,
        read: ((hi >> 62n) & 1n) === 1n,
      };
      if (((hi >> 31n) & 1n) === 1n) {
        r.pasid = Number((hi >> 40n) & 0xfffffn);
        r.priv = ((hi >> 29n) & 1n) === 1n;
        r.exe = ((hi >> 30n) & 1n) === 1n;
      }
      out.push(r);
    }
    return out;
  }

  // ---- events and counters ----

  /** Subscribes to the unit's events (fault and completion interrupts, invalidations). Returns an unsubscribe function. */
  on(listener: (e: IommuEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The core's counters by name (fault reasons as `fault.reason.0xNN`, only those seen). */
  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    const names = this.core.counterNames;
    for (let i = 0; i < names.length; i++) out[names[i]] = this.core.counter(i);
    for (let r = 0; r < 256; r++) {
      const n = this.core.faultReasonCount(r);
      if (n > 0) out[`fault.reason.0x${r.toString(16).padStart(2, '0')}`] = n;
    }
    return out;
  }

  /** Sizes of the core's state. */
  stats(): { guestFrames: number; iotlbCapacity: number; iotlbLive: number; contextCacheLive: number; memoryBytes: number } {
    return {
      guestFrames: this.core.guestFrames, iotlbCapacity: this.core.iotlbCapacity, iotlbLive: this.core.iotlbLive,
      contextCacheLive: this.core.contextCacheLive, memoryBytes: this.core.memoryBytes,
    };
  }
}
