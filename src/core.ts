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
  translateBatch(n: number): number;
  probe(sid: number, iovaLo: number, iovaHi: number, isWrite: number): number;
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

/** Configuration flags (assembly/config.ts FLAG_*). */
export const CoreFlag = {
  CM: 1 << 0, IR: 1 << 1, EIM: 1 << 2, PT: 1 << 3, SC: 1 << 4, DT: 1 << 5,
  EXTERNAL_MEMORY: 1 << 6, PMR: 1 << 7, PI: 1 << 8,
} as const;

/** Result status bits (assembly/translate.ts ST_*). */
export const Status = {
  OK: 0, FAULT: 0x100, FPD: 0x200, BLOCKED: 0x400, INTERRUPT: 0x800, POSTED: 0x1000, INVALID: 0x2000, REASON_MASK: 0xff,
} as const;

/** Most bytes of one DMA request (assembly/translate.ts MAX_REQUEST_LEN). */
export const MAX_REQUEST_LEN = 4096;

/** translateBatch's answer for a request with a bad length: this bit | its index (assembly/index.ts BAD_REQUEST). */
const BATCH_BAD_REQUEST = 0x80000000;

/** Event kinds (assembly/events.ts EV_*). */
export const EventKind = { FAULT_MSI: 1, COMPLETION_MSI: 2, INVALIDATION: 3 } as const;

/** A raw event record as the core queues it. */
export interface RawEvent {
  kind: number; a: number; b: number; c: number;
  addrLo: number; addrHi: number; xLo: number; xHi: number;
}

/** Embedder-owned guest memory (external mode). Return false when the access fails. */
export interface GuestMemoryHooks {
  read(gpa: number, dst: Uint8Array): boolean;
  write(gpa: number, src: Uint8Array): boolean;
}

const CONFIG_ERRORS: Record<number, string> = {
  1: 'aw must be 39, 48 or 57',
  2: 'nfr must be 1 to 64',
  3: 'the core could not allocate its tables within the memory budget',
  4: 'a core instance is configured once',
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
  onEvent: (e: RawEvent) => void = () => {};
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
    if (this.buffer !== this.x.memory.buffer) {
      this.buffer = this.x.memory.buffer;
      this.u8 = new Uint8Array(this.buffer);
      this.u32 = new Uint32Array(this.buffer);
    }
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
        this.onEvent(e);
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
    return { lo: this.u32[this.resultIdx], hi: this.u32[this.resultIdx + 1] };
  }

  mmioRead32(off: number): number {
    this.guard(() => this.x.mmioRead(off, 4));
    return this.u32[this.resultIdx];
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

  get resultLo(): number { return this.u32[this.resultIdx]; }
  get resultHi(): number { return this.u32[this.resultIdx + 1]; }
  get resultWord2(): number { return this.u32[this.resultIdx + 2]; }
  get resultWord3(): number { return this.u32[this.resultIdx + 3]; }

  /** The buffer the views were built on: it changes (the old one detached) when linear memory grows. */
  get memoryBuffer(): ArrayBuffer {
    this.refresh();
    return this.buffer;
  }

  /** The request block as u32 words: 4 per request (iova lo, iova hi, sid | write << 16, len). */
  get batchRequests(): Uint32Array {
    this.refresh();
    return this.u32.subarray(this.batchReqIdx, this.batchReqIdx + this.batchCapacity * 4);
  }

  /** The response block as u32 words: 4 per response (out lo, out hi, status, reserved). */
  get batchResponses(): Uint32Array {
    this.refresh();
    return this.u32.subarray(this.batchRespIdx, this.batchRespIdx + this.batchCapacity * 4);
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
    return ok < 0 ? -1 - ((ok >>> 0) - BATCH_BAD_REQUEST) : ok;
  }

  /** The status a one-byte request would get with empty caches (result block as the export says). */
  probe(sid: number, iovaLo: number, iovaHi: number, isWrite: boolean): number {
    return this.guard(() => this.x.probe(sid, iovaLo, iovaHi, isWrite ? 1 : 0));
  }

  /** The leaf entry a probe walked to (its first response-block u64), low and high words. */
  get probeLeafLo(): number { return this.u32[this.batchRespIdx]; }
  get probeLeafHi(): number { return this.u32[this.batchRespIdx + 1]; }

  // ---- shadow sync support ----
  contextOf(sid: number): number {
    return this.guard(() => this.x.contextOf(sid));
  }

  get rangeCapacity(): number { return this.x.layoutRangeCapacity(); }

  /** Runs one range-walk step of about `budget` entries read at most; records are then in the response block (8 u32 words each). */
  walkRange(tableLo: number, tableHi: number, levels: number, startLo: number, startHi: number, endLo: number, endHi: number, budget: number): number {
    return this.guard(() => this.x.walkRange(tableLo, tableHi, levels, startLo, startHi, endLo, endHi, budget >>> 0));
  }

  // ---- interrupt remapping ----
  remapMsi(sid: number, hasSid: boolean, addrLo: number, addrHi: number, data: number): number {
    return this.guard(() => this.x.remapMsi(sid, hasSid ? 1 : 0, addrLo >>> 0, addrHi >>> 0, data >>> 0));
  }

  remapIoapic(sid: number, hasSid: boolean, rteLo: number, rteHi: number): number {
    return this.guard(() => this.x.remapIoapic(sid, hasSid ? 1 : 0, rteLo >>> 0, rteHi >>> 0));
  }

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
    for (let i = 0; i < n; i++) {
      const r = base + 4 + i * 8;
      this.pending.push({ kind: u[r], a: u[r + 1], b: u[r + 2], c: u[r + 3], addrLo: u[r + 4], addrHi: u[r + 5], xLo: u[r + 6], xHi: u[r + 7] });
    }
    u[base] = 0;
  }

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
