/**
 * The one wrapper of the Wasm core's exports. Everything else in src/ goes
 * through this class; nothing else touches `instance.exports` or builds views
 * of the core's memory.
 *
 * Views are cached and rebuilt only when linear memory has grown (the old
 * ArrayBuffer is then detached), which can happen only in calls that allocate:
 * configure and guest-memory writes. Translation never allocates, so the hot
 * path reads results through views built once.
 */
import { VtdError } from './errors.js';
import * as abi from './generated/abi.js';
import { CORE_WASM_BASE64 } from './generated/wasm.js';

/** The core's numeric exports (assembly/index.ts). */
interface CoreExports {
  memory: WebAssembly.Memory;
  configure(aw: number, flags: number, nfr: number, iotlbEntries: number, contextCache: number, maxPages: number): number;
  addRamRegion(start: number, end: number): number;
  layoutIo(): number;
  layoutIoSize(): number;
  layoutResult(): number;
  layoutBatchRequests(): number;
  layoutBatchResponses(): number;
  layoutBatchCapacity(): number;
  layoutEvents(): number;
  layoutCounters(): number;
  layoutCounterCount(): number;
  layoutCounterNames(): number;
  layoutCounterNamesLength(): number;
  mmioRead(off: number, size: number): void;
  mmioWrite(off: number, size: number, lo: number, hi: number): void;
  writeGuest(gpa: number, len: number): number;
  readGuest(gpa: number, len: number): number;
  translate(sid: number, iovaLo: number, iovaHi: number, len: number, isWrite: number): number;
  translatePasid(sid: number, iovaLo: number, iovaHi: number, len: number, flags: number, pasid: number): number;
  translateBatch(n: number): number;
  probe(sid: number, iovaLo: number, iovaHi: number, flags: number, pasid: number): number;
  remapMsi(sid: number, hasSid: number, addrLo: number, addrHi: number, data: number): number;
  contextOf(sid: number): number;
  layoutRangeCapacity(): number;
  walkRange(tableLo: number, tableHi: number, levels: number, startLo: number, startHi: number, endLo: number, endHi: number, budget: number): number;
  remapIoapic(sid: number, hasSid: number, rteLo: number, rteHi: number): number;
  guestFrames(): number;
  iotlbEntries(): number;
  iotlbLiveEntries(): number;
  contextCacheLiveEntries(): number;
  memoryPages(): number;
}

/** Configuration flags (configure's `flags`). */
export const CoreFlag = {
  CM: abi.FLAG_CM, IR: abi.FLAG_IR, EIM: abi.FLAG_EIM, PT: abi.FLAG_PT, SC: abi.FLAG_SC, DT: abi.FLAG_DT,
  EXTERNAL_MEMORY: abi.FLAG_EXTERNAL_MEMORY, PMR: abi.FLAG_PMR, PI: abi.FLAG_PI,
  SM: abi.FLAG_SM, FLTS: abi.FLAG_FLTS, PASID: abi.FLAG_PASID, NEST: abi.FLAG_NEST,
} as const;

/** Attributes of a request (translatePasid's and probe's `flags`). */
export const RequestFlag = {
  WRITE: abi.TREQ_WRITE, PRIV: abi.TREQ_PRIV, EXE: abi.TREQ_EXE, PASID: abi.TREQ_PASID,
} as const;

/** Largest PASID (20 bits). */
export const PASID_MAX = abi.PASID_MAX;

/** Request status bits (translate, translateBatch, probe, remapMsi, remapIoapic). */
export const Status = {
  OK: abi.ST_OK, FAULT: abi.ST_FAULT, FPD: abi.ST_FPD, BLOCKED: abi.ST_BLOCKED, INTERRUPT: abi.ST_INTERRUPT,
  POSTED: abi.ST_POSTED, INVALID: abi.ST_INVALID, REASON_MASK: abi.ST_REASON_MASK,
} as const;

/** Most bytes of one DMA request. */
export const MAX_REQUEST_LEN = abi.MAX_REQUEST_LEN;

/** writeGuest/readGuest answers. */
export const MemStatus = {
  OK: abi.MEM_OK, OUTSIDE_RAM: abi.MEM_OUTSIDE_RAM, EXHAUSTED: abi.MEM_EXHAUSTED, BAD_LENGTH: abi.MEM_BAD_LENGTH,
} as const;

/**
 * The batch blocks' layout in u32 words, for embedders that fill `BatchPath.requests` and read
 * `BatchPath.responses` directly: request i starts at word i * BATCH_WORDS, with the iova (low,
 * high) at BREQ_IOVA, sid | BATCH_WRITE at BREQ_SID, the length at BREQ_LEN; response i has the
 * output address (low, high) at BRESP_OUT, the status at BRESP_STATUS, the split at BRESP_SPLIT.
 */
export const BATCH_WORDS = abi.BATCH_RECORD / 4;
export const BREQ_IOVA = abi.BREQ_IOVA / 4, BREQ_SID = abi.BREQ_SID / 4, BREQ_LEN = abi.BREQ_LEN / 4;
export const BRESP_OUT = abi.BRESP_OUT / 4, BRESP_STATUS = abi.BRESP_STATUS / 4, BRESP_SPLIT = abi.BRESP_SPLIT / 4;
/** The bit of a request's sid word that makes it a write. */
export const BATCH_WRITE = abi.BREQ_WRITE;
/**
 * A request with PASID (scalable mode) in the batch block: BATCH_PASID in the sid word, with
 * BATCH_PRIV / BATCH_EXE for a supervisor / execute request; PASID bits 11:0 in the sid word from
 * bit BATCH_PASID_LO_SHIFT and bits 19:12 in the length word from bit BATCH_PASID_HI_SHIFT (the
 * length keeps bits 12:0). A request without BATCH_PASID is read exactly as before.
 */
export const BATCH_PASID = abi.BREQ_PASID, BATCH_PRIV = abi.BREQ_PRIV, BATCH_EXE = abi.BREQ_EXE;
export const BATCH_PASID_LO_SHIFT = abi.BREQ_PASID_LO_SHIFT, BATCH_PASID_HI_SHIFT = abi.BREQ_PASID_HI_SHIFT;
const TWO32 = 2 ** 32;

/** A raw event record as the core queues it (abi.ts EVR_*), decoded by `toEvent` below. */
interface RawEvent {
  kind: number; a: number; b: number; c: number;
  addrLo: number; addrHi: number; xLo: number; xHi: number;
}

/** Events the unit raises. */
export type IommuEvent =
  | { type: 'fault-interrupt'; addr: bigint; data: number }
  | { type: 'completion-interrupt'; addr: bigint; data: number }
  | { type: 'invalidation'; cache: 'context' | 'iotlb' | 'device-tlb' | 'interrupt-entry'; granularity: number;
      did: number; sid: number; fm: number; addr: bigint; am: number; ih: number }
  /**
   * Scalable mode: a PASID-based IOTLB invalidation (descriptor 0x6; granularity 2 every mapping of
   * `pasid` in `did`, 3 the 2^am pages at `addr`) or a PASID-cache invalidation (0x7; granularity
   * 0 every PASID of `did`, 1 `pasid` in `did`, 3 global).
   */
  | { type: 'invalidation'; cache: 'pasid-iotlb' | 'pasid-cache'; granularity: number;
      did: number; pasid: number; addr: bigint; am: number; ih: number };

const CACHE_NAMES: Record<number, 'context' | 'iotlb' | 'device-tlb' | 'interrupt-entry'> = {
  [abi.INV_CONTEXT]: 'context', [abi.INV_IOTLB]: 'iotlb', [abi.INV_DEVTLB]: 'device-tlb', [abi.INV_IEC]: 'interrupt-entry',
};

function toEvent(e: RawEvent): IommuEvent {
  const addr = (BigInt(e.addrHi) << 32n) | BigInt(e.addrLo);
  if (e.kind === abi.EV_FAULT_MSI) return { type: 'fault-interrupt', addr, data: e.a };
  if (e.kind === abi.EV_COMPLETION_MSI) return { type: 'completion-interrupt', addr, data: e.a };
  if (e.a === abi.INV_PASID_IOTLB || e.a === abi.INV_PASID_CACHE) {
    return {
      type: 'invalidation', cache: e.a === abi.INV_PASID_IOTLB ? 'pasid-iotlb' : 'pasid-cache', granularity: (e.xLo >>> abi.EVX_G_SHIFT) & 3,
      did: e.b, pasid: e.c, addr, am: e.xLo & abi.EVX_AM_MASK, ih: (e.xLo >>> abi.EVX_IH_SHIFT) & 1,
    };
  }
  return {
    type: 'invalidation', cache: CACHE_NAMES[e.a] ?? 'context', granularity: (e.xLo >>> abi.EVX_G_SHIFT) & 3,
    did: e.b, sid: e.c & 0xffff, fm: e.c >>> abi.EVC_FM_SHIFT, addr, am: e.xLo & abi.EVX_AM_MASK, ih: (e.xLo >>> abi.EVX_IH_SHIFT) & 1,
  };
}

/** A device's context as the unit reads it (no cache involved). */
export type ContextInfo =
  | { ok: true; did: number; table: bigint; levels: number; passThrough: boolean; fpd: boolean }
  | { ok: false; fault: number };

/** A leaf as a range walk passes it (no object is built per leaf); return false to stop before this leaf. */
export type LeafVisitor = (iova: bigint, gpa: bigint, level: number, read: boolean, write: boolean) => boolean;

/** Embedder-owned guest memory (external mode). Return false when the access fails. */
export interface GuestMemoryHooks {
  read(gpa: number, dst: Uint8Array): boolean;
  write(gpa: number, src: Uint8Array): boolean;
}

const CONFIG_ERRORS: Record<number, string> = {
  [abi.CFG_BAD_AW]: 'aw must be 39, 48 or 57',
  [abi.CFG_BAD_NFR]: 'nfr must be 1 to 64',
  [abi.CFG_NO_MEMORY]: 'the core could not allocate its tables within the memory budget',
  [abi.CFG_TWICE]: 'a core instance is configured once',
  [abi.CFG_BAD_SM]: 'flts, pasid and nest need sm; pasid excludes dt; flts and nest need aw 48 or 57',
};

let compiled: WebAssembly.Module | undefined;

function decodeBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The compiled core module, compiled once per process from the embedded bytes. */
export function coreModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(decodeBase64(CORE_WASM_BASE64) as BufferSource);
  return compiled;
}

export interface CoreConfig {
  aw: number; flags: number; nfr: number; iotlbEntries: number; contextCache: boolean; maxPages: number;
  guestMemory?: GuestMemoryHooks;
}

export class Core {
  private readonly x: CoreExports;
  private buffer!: ArrayBuffer;
  private u8!: Uint8Array;
  private u32!: Uint32Array;
  private dead: string | undefined;
  private readonly ioPtr: number;
  readonly ioSize: number;
  private readonly resultIdx: number;
  readonly batchCapacity: number;
  private readonly batchReqIdx: number;
  private readonly batchRespIdx: number;
  private readonly eventIdx: number;
  private readonly counterIdx: number;
  readonly counterNames: readonly string[];
  /**
   * Receives every event the core raised, in order, after the core call that raised it has returned
   * (never during one, so it may call this Core). An exception it throws propagates once every
   * queued event has been offered (see `settle`).
   */
  onEvent: (e: IommuEvent) => void = () => {};
  /** Events copied out of the core's ring when it filled during a call, waiting for `settle`. */
  private pending: RawEvent[] = [];
  /** The first exception a guest-memory hook threw during the current core call. */
  private hookError: VtdError | undefined;

  constructor(cfg: CoreConfig, module: WebAssembly.Module = coreModule()) {
    const hooks = cfg.guestMemory;
    const imports = {
      env: {
        abort: (_msg: number, _file: number, line: number, col: number) => {
          throw new VtdError('CORE_TRAP', `core aborted at ${line}:${col}`);
        },
        // An embedder's hook that throws must not unwind through the core (that would leave it
        // half-way through a call): the access fails as one the bus could not complete, the core
        // finishes its call, and `settle` then throws the error to the embedder.
        guestRead: (gpa: number, dst: number, len: number): number => {
          if (!hooks) return 1;
          try {
            this.refresh();
            return hooks.read(gpa, this.u8.subarray(dst, dst + len)) ? 0 : 1;
          } catch (e) {
            this.noteHookError('read', gpa, len, e);
            return 1;
          }
        },
        guestWrite: (gpa: number, src: number, len: number): number => {
          if (!hooks) return 1;
          try {
            this.refresh();
            return hooks.write(gpa, this.u8.slice(src, src + len)) ? 0 : 1;
          } catch (e) {
            this.noteHookError('write', gpa, len, e);
            return 1;
          }
        },
        drainEvents: () => this.collectEvents(),
      },
    };
    const instance = new WebAssembly.Instance(module, imports);
    this.x = instance.exports as unknown as CoreExports;
    const rc = this.x.configure(cfg.aw, cfg.flags, cfg.nfr, cfg.iotlbEntries, cfg.contextCache ? 1 : 0, cfg.maxPages);
    if (rc !== 0) throw new VtdError('CONFIG', CONFIG_ERRORS[rc] ?? `configure failed (${rc})`, { rc });
    this.refresh();
    this.ioPtr = this.x.layoutIo();
    this.ioSize = this.x.layoutIoSize();
    this.resultIdx = this.x.layoutResult() >>> 2;
    this.batchCapacity = this.x.layoutBatchCapacity();
    this.batchReqIdx = this.x.layoutBatchRequests() >>> 2;
    this.batchRespIdx = this.x.layoutBatchResponses() >>> 2;
    this.eventIdx = this.x.layoutEvents() >>> 2;
    this.counterIdx = this.x.layoutCounters() >>> 2;
    const namesPtr = this.x.layoutCounterNames();
    const namesLen = this.x.layoutCounterNamesLength();
    const names = String.fromCharCode(...new Uint16Array(this.buffer, namesPtr, namesLen)).split('\n');
    this.counterNames = names;
  }

  private refresh(): void {
    // Growing linear memory detaches the old buffer, and a view of a detached buffer has length 0:
    // testing that is much cheaper than fetching `memory.buffer` on every call.
    if (this.u32 !== undefined && this.u32.length !== 0) return;
    this.buffer = this.x.memory.buffer;
    this.u8 = new Uint8Array(this.buffer);
    this.u32 = new Uint32Array(this.buffer);
  }

  /**
   * Runs a core call; a trap discards the instance (it may be inconsistent). Nothing the embedder
   * supplies runs inside a core call any more (hooks are caught, events are queued), so whatever
   * escapes one is the core's own trap.
   */
  private guard<T>(f: () => T): T {
    if (this.dead) throw new VtdError('CORE_TRAP', `the core trapped earlier (${this.dead}); create a new instance`);
    let r: T;
    try {
      r = f();
    } catch (e) {
      this.trapped(e);
    }
    this.refresh();
    this.settle();
    return r;
  }

  private trapped(e: unknown): never {
    this.dead = e instanceof Error ? e.message : String(e);
    this.pending = [];
    this.hookError = undefined;
    throw new VtdError('CORE_TRAP', `the core trapped: ${this.dead}; this instance is discarded`, { cause: this.dead });
  }

  private noteHookError(op: 'read' | 'write', gpa: number, len: number, e: unknown): void {
    this.hookError ??= new VtdError('GUEST_MEMORY_HOOK',
      `the guestMemory ${op} hook threw for ${len} bytes at 0x${gpa.toString(16)}; the unit treated that access as failed`,
      { gpa, len, op, cause: e });
  }

  /**
   * Ends a core call: delivers the events it raised (queued ones first, then the ring), then throws
   * what the embedder's code threw during it. The unit's state is complete before any listener runs.
   * Every event is offered to `onEvent` even when an earlier one threw; then a guest-memory hook's
   * error (a GUEST_MEMORY_HOOK VtdError) or the listener's exception is thrown, or an AggregateError
   * of all of them, in that order, when there were several.
   */
  private settle(): void {
    if (this.u32[this.eventIdx] === 0 && this.pending.length === 0 && this.hookError === undefined) return;
    this.collectEvents();
    const events = this.pending;
    this.pending = [];
    const errors: unknown[] = [];
    if (this.hookError) errors.push(this.hookError);
    this.hookError = undefined;
    for (const e of events) {
      try {
        this.onEvent(toEvent(e));
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} errors from the embedder's hooks and listeners`);
  }

  addRamRegion(start: number, end: number): boolean {
    return this.x.addRamRegion(start, end) === 0;
  }

  // ---- registers ----
  mmioRead(off: number, size: number): { lo: number; hi: number } {
    this.guard(() => this.x.mmioRead(off, size));
    return { lo: this.outLo, hi: this.outHi };
  }

  mmioRead32(off: number): number {
    this.guard(() => this.x.mmioRead(off, 4));
    return this.outLo;
  }

  mmioWrite(off: number, size: number, lo: number, hi: number): void {
    this.guard(() => this.x.mmioWrite(off, size, lo >>> 0, hi >>> 0));
  }

  // ---- guest memory ----
  /** Copies `src` to guest memory; returns 0, or the core's MEM_* code. */
  writeGuest(gpa: number, src: Uint8Array): number {
    let done = 0;
    while (done < src.length) {
      const n = Math.min(this.ioSize, src.length - done);
      this.refresh();
      this.u8.set(src.subarray(done, done + n), this.ioPtr);
      const rc = this.guard(() => this.x.writeGuest(gpa + done, n));
      if (rc !== 0) return rc;
      done += n;
    }
    this.refresh();
    return 0;
  }

  readGuest(gpa: number, dst: Uint8Array): number {
    let done = 0;
    while (done < dst.length) {
      const n = Math.min(this.ioSize, dst.length - done);
      const rc = this.guard(() => this.x.readGuest(gpa + done, n));
      if (rc !== 0) return rc;
      this.refresh();
      dst.set(this.u8.subarray(this.ioPtr, this.ioPtr + n), done);
      done += n;
    }
    return 0;
  }

  // ---- translation (hot path: no allocation) ----
  translate(sid: number, iovaLo: number, iovaHi: number, len: number, isWrite: boolean): number {
    if (this.dead) return this.guard(() => 0);
    let st: number;
    try {
      st = this.x.translate(sid, iovaLo, iovaHi, len, isWrite ? 1 : 0);
    } catch (e) {
      this.trapped(e);
    }
    if (this.u32[this.eventIdx] !== 0 || this.hookError !== undefined) this.settle();
    return st;
  }

  /** As `translate`, for a request with PASID (`flags`: RequestFlag WRITE, PRIV, EXE). */
  translatePasid(sid: number, iovaLo: number, iovaHi: number, len: number, flags: number, pasid: number): number {
    if (this.dead) return this.guard(() => 0);
    let st: number;
    try {
      st = this.x.translatePasid(sid, iovaLo, iovaHi, len, flags, pasid);
    } catch (e) {
      this.trapped(e);
    }
    if (this.u32[this.eventIdx] !== 0 || this.hookError !== undefined) this.settle();
    return st;
  }

  /** The output address of the last translate (result block value). */
  get outLo(): number { return this.u32[this.resultIdx + abi.RESULT_VALUE / 4]; }
  get outHi(): number { return this.u32[this.resultIdx + abi.RESULT_VALUE / 4 + 1]; }
  /** After a completed translate that crossed a 4 KiB boundary: the second page's output (words 2-3). */
  get out2Lo(): number { return this.u32[this.resultIdx + abi.RESULT_WORD2 / 4]; }
  get out2Hi(): number { return this.u32[this.resultIdx + abi.RESULT_WORD3 / 4]; }

  /** The buffer the views were built on: it changes (the old one detached) when linear memory grows. */
  get memoryBuffer(): ArrayBuffer {
    this.refresh();
    return this.buffer;
  }

  /** The request block as u32 words (BatchPath's layout). */
  get batchRequests(): Uint32Array {
    this.refresh();
    return this.u32.subarray(this.batchReqIdx, this.batchReqIdx + this.batchCapacity * BATCH_WORDS);
  }

  /** The response block as u32 words (BatchPath's layout). */
  get batchResponses(): Uint32Array {
    this.refresh();
    return this.u32.subarray(this.batchRespIdx, this.batchRespIdx + this.batchCapacity * BATCH_WORDS);
  }

  /**
   * Translates batch requests 0..n-1. Returns how many completed, or -1 - i when request i has a
   * length outside 1..MAX_REQUEST_LEN (requests before i were translated, i and later were not).
   */
  translateBatch(n: number): number {
    if (this.dead) return this.guard(() => 0);
    let ok: number;
    try {
      ok = this.x.translateBatch(n);
    } catch (e) {
      this.trapped(e);
    }
    if (this.u32[this.eventIdx] !== 0 || this.hookError !== undefined) this.settle();
    return ok < 0 ? -1 - ((ok >>> 0) - abi.BATCH_BAD_REQUEST) : ok;
  }

  /** The status a one-byte request would get with empty caches (result block as the export says). */
  probe(sid: number, iovaLo: number, iovaHi: number, isWrite: boolean, flags = 0, pasid = 0): number {
    return this.guard(() => this.x.probe(sid, iovaLo, iovaHi, (isWrite ? abi.TREQ_WRITE : 0) | flags, pasid >>> 0));
  }

  /** What the last probe found: the output address, the leaf entry walked to (frame | W | R), its level, the DID. */
  probeResult(): { gpa: bigint; leaf: bigint; level: number; did: number } {
    const r = this.resultIdx, leaf = this.batchRespIdx;
    return {
      gpa: (BigInt(this.u32[r + abi.RESULT_VALUE / 4 + 1]) << 32n) | BigInt(this.u32[r + abi.RESULT_VALUE / 4]),
      leaf: (BigInt(this.u32[leaf + 1]) << 32n) | BigInt(this.u32[leaf]),
      level: this.u32[r + abi.RESULT_WORD2 / 4], did: this.u32[r + abi.RESULT_WORD3 / 4],
    };
  }

  // ---- shadow sync support ----
  /** Reads `sid`'s root and context entries now, without caches or side effects. */
  contextOf(sid: number): ContextInfo {
    const st = this.guard(() => this.x.contextOf(sid));
    if (st !== 0) return { ok: false, fault: st };
    const r = this.resultIdx;
    const lo = this.u32[r + abi.RESULT_VALUE / 4], hi = this.u32[r + abi.RESULT_VALUE / 4 + 1];
    const aw = (lo >>> abi.CTXW_AW_SHIFT) & ((1 << abi.CTXW_AW_LEN) - 1);
    const tt = (lo >>> abi.CTXW_TT_SHIFT) & ((1 << abi.CTXW_TT_LEN) - 1);
    const tableMask = (~((1 << abi.CTXW_TABLE_SHIFT) - 1)) >>> 0;
    return {
      ok: true, did: this.u32[r + abi.RESULT_WORD2 / 4], table: (BigInt(hi) << 32n) | BigInt((lo & tableMask) >>> 0),
      levels: aw + 2, passThrough: tt === abi.CTX_TT_PASSTHROUGH, fpd: ((lo >>> abi.CTXW_FPD_BIT) & 1) !== 0,
    };
  }

  /** Records one range-walk step can return. */
  get rangeCapacity(): number { return this.x.layoutRangeCapacity(); }

  /**
   * Runs one range-walk step of about `budget` entries read at most. Returns the records written
   * (read them with `visitRange`), where to resume (end when done), the entries read and the
   * entries skipped as malformed.
   */
  walkRange(tableLo: number, tableHi: number, levels: number, startLo: number, startHi: number, endLo: number, endHi: number, budget: number):
    { count: number; resume: bigint; entriesRead: number; malformed: number } {
    const count = this.guard(() => this.x.walkRange(tableLo, tableHi, levels, startLo, startHi, endLo, endHi, budget >>> 0));
    const r = this.resultIdx;
    return {
      count, resume: (BigInt(this.u32[r + abi.RESULT_VALUE / 4 + 1]) << 32n) | BigInt(this.u32[r + abi.RESULT_VALUE / 4]),
      entriesRead: this.u32[r + abi.RESULT_WORD2 / 4], malformed: this.u32[r + abi.RESULT_WORD3 / 4],
    };
  }

  /** Passes the first `n` records of the last range-walk step to `visit`; returns the index it stopped at (n when it did not). */
  visitRange(n: number, visit: LeafVisitor): number {
    const u = this.u32;
    const W = abi.RANGE_RECORD / 4;
    for (let i = 0; i < n; i++) {
      const p = this.batchRespIdx + i * W;
      const iova = (BigInt(u[p + abi.RREC_IOVA / 4 + 1]) << 32n) | BigInt(u[p + abi.RREC_IOVA / 4]);
      const gpa = (BigInt(u[p + abi.RREC_FRAME / 4 + 1]) << 32n) | BigInt(u[p + abi.RREC_FRAME / 4]);
      const rights = u[p + abi.RREC_RIGHTS / 4];
      if (!visit(iova, gpa, u[p + abi.RREC_LEVEL / 4], (rights & abi.RREC_READ) !== 0, (rights & abi.RREC_WRITE) !== 0)) return i;
    }
    return n;
  }

  // ---- interrupt remapping ----
  remapMsi(sid: number, hasSid: boolean, addrLo: number, addrHi: number, data: number): number {
    return this.guard(() => this.x.remapMsi(sid, hasSid ? 1 : 0, addrLo >>> 0, addrHi >>> 0, data >>> 0));
  }

  remapIoapic(sid: number, hasSid: boolean, rteLo: number, rteHi: number): number {
    return this.guard(() => this.x.remapIoapic(sid, hasSid ? 1 : 0, rteLo >>> 0, rteHi >>> 0));
  }

  /** The interrupt the last remapMsi/remapIoapic delivered (ST_OK) or posted (ST_POSTED): address low and high words. */
  get irAddrLo(): number { return this.u32[this.resultIdx + abi.RESULT_VALUE / 4]; }
  get irAddrHi(): number { return this.u32[this.resultIdx + abi.RESULT_VALUE / 4 + 1]; }
  /** The data in compatibility format, or the posted vector (and POSTED_URGENT). */
  get irData(): number { return this.u32[this.resultIdx + abi.RESULT_WORD2 / 4]; }
  /** The interrupt-table index, undefined when the message passed unchanged. */
  get irIndex(): number | undefined {
    const index = this.u32[this.resultIdx + abi.RESULT_WORD3 / 4];
    return index === abi.NO_INDEX ? undefined : index;
  }
  /** Posted: the urgent bit. */
  get irUrgent(): boolean { return (this.irData & abi.POSTED_URGENT) !== 0; }

  // ---- events and counters ----
  /**
   * Copies the ring's records to `pending` and empties the ring. The core calls it (import
   * `drainEvents`) when the ring fills during a call; it calls no listener, so nothing of the
   * embedder's runs inside a core call.
   */
  private collectEvents(): void {
    this.refresh();
    const base = this.eventIdx;
    const n = this.u32[base];
    if (n === 0) return;
    const u = this.u32;
    const W = abi.EVENT_RECORD / 4;
    for (let i = 0; i < n; i++) {
      const r = base + abi.EVENT_HEADER / 4 + i * W;
      this.pending.push({
        kind: u[r + abi.EVR_KIND / 4], a: u[r + abi.EVR_A / 4], b: u[r + abi.EVR_B / 4], c: u[r + abi.EVR_C / 4],
        addrLo: u[r + abi.EVR_ADDR / 4], addrHi: u[r + abi.EVR_ADDR / 4 + 1], xLo: u[r + abi.EVR_X / 4], xHi: u[r + abi.EVR_X / 4 + 1],
      });
    }
    u[base] = 0;
  }

  /** Faults with reason `r` (0..255) so far. */
  faultReasonCount(r: number): number { return this.counter(abi.C_FAULT_REASON + r); }

  /** Counter i as a number (exact below 2^53). */
  counter(i: number): number {
    this.refresh();
    const p = this.counterIdx + i * 2;
    return this.u32[p] + this.u32[p + 1] * 2 ** 32;
  }

  get counterCount(): number { return this.counterNames.length; }
  get guestFrames(): number { return this.x.guestFrames(); }
  get iotlbCapacity(): number { return this.x.iotlbEntries(); }
  get iotlbLive(): number { return this.x.iotlbLiveEntries(); }
  get contextCacheLive(): number { return this.x.contextCacheLiveEntries(); }
  get memoryBytes(): number { return this.x.memoryPages() * 65536; }
}

/**
 * Batch translation through the core's request/response blocks.
 *
 * `requests` and `responses` are views of the core's linear memory. When guest memory grows (a
 * `writeGuest` of new frames), the memory's old buffer is detached: the getters and every method
 * here then rebuild their views, so a BatchPath taken earlier keeps working. A view the embedder
 * kept from an earlier `requests`/`responses` read is detached too (length 0); read the getter again.
 */
export class BatchPath {
  readonly capacity: number;
  private req: Uint32Array;
  private resp: Uint32Array;
  constructor(private readonly core: Core) {
    this.capacity = core.batchCapacity;
    this.req = core.batchRequests;
    this.resp = core.batchResponses;
  }

  /** The request block (4 u32 words per request), valid until guest memory next grows. */
  get requests(): Uint32Array {
    if (this.req.length === 0) this.rebuild();
    return this.req;
  }

  /** The response block (4 u32 words per response), valid until guest memory next grows. */
  get responses(): Uint32Array {
    if (this.resp.length === 0) this.rebuild();
    return this.resp;
  }

  /** A detached view has length 0: rebuild both from the current buffer. */
  private rebuild(): void {
    this.req = this.core.batchRequests;
    this.resp = this.core.batchResponses;
  }

  /**
   * Writes request `i` (iova as a number below 2^53, len 1..4096). With `attrs.pasid`, a request with
   * that PASID (scalable mode), `attrs.priv` / `attrs.exe` a supervisor / execute request.
   */
  set(i: number, sid: number, iova: number, dir: 'r' | 'w', len = 1, attrs?: { pasid?: number; priv?: boolean; exe?: boolean }): void {
    if (!(i >= 0 && i < this.capacity && Number.isInteger(i))) throw new VtdError('ARGUMENT', `request index must be 0..${this.capacity - 1}`, { i });
    if (!(len >= 1 && len <= MAX_REQUEST_LEN && Number.isInteger(len))) throw new VtdError('ARGUMENT', 'DMA length must be 1..4096 bytes', { len });
    const req = this.requests;
    const p = i * BATCH_WORDS;
    req[p + BREQ_IOVA] = iova % TWO32;
    req[p + BREQ_IOVA + 1] = Math.floor(iova / TWO32);
    req[p + BREQ_SID] = (sid & 0xffff) | (dir === 'w' ? abi.BREQ_WRITE : 0);
    req[p + BREQ_LEN] = len;
    const pasid = attrs?.pasid;
    if (pasid !== undefined) {
      if (!Number.isInteger(pasid) || pasid < 0 || pasid > abi.PASID_MAX) throw new VtdError('ARGUMENT', 'PASID must be 0..0xfffff', { pasid });
      req[p + BREQ_SID] = (req[p + BREQ_SID] | abi.BREQ_PASID | (attrs!.priv ? abi.BREQ_PRIV : 0) | (attrs!.exe ? abi.BREQ_EXE : 0)
        | ((pasid & 0xfff) << abi.BREQ_PASID_LO_SHIFT)) >>> 0;
      req[p + BREQ_LEN] = (len | ((pasid >>> 12) << abi.BREQ_PASID_HI_SHIFT)) >>> 0;
    } else if (attrs?.priv || attrs?.exe) {
      throw new VtdError('ARGUMENT', 'priv and exe go with a pasid', { attrs });
    }
  }

  /**
   * Translates requests 0..n-1; returns how many completed. A request whose length is outside
   * 1..4096 is host misuse: a VtdError ('ARGUMENT', `details.index`), with the requests before it
   * translated (their responses valid) and it and the later ones not.
   */
  run(n: number): number {
    if (!Number.isInteger(n) || n < 0 || n > this.capacity) throw new VtdError('ARGUMENT', `batch size must be 0..${this.capacity}`, { n });
    if (this.req.length === 0) this.rebuild();
    const ok = this.core.translateBatch(n);
    if (ok < 0) {
      const index = -1 - ok;
      const len = this.req[index * BATCH_WORDS + BREQ_LEN];
      throw new VtdError('ARGUMENT', `batch request ${index} has length ${len}; DMA lengths are 1..4096 bytes (requests before it were translated)`, { index, len });
    }
    return ok;
  }

  status(i: number): number { return this.responses[i * BATCH_WORDS + BRESP_STATUS]; }
  gpa(i: number): number { const r = this.responses, p = i * BATCH_WORDS + BRESP_OUT; return r[p + 1] * TWO32 + r[p]; }
  /** 0, or the bytes of request i that go to `gpa(i)` when its two pages' frames are not contiguous. */
  split(i: number): number { return this.responses[i * BATCH_WORDS + BRESP_SPLIT]; }
}
