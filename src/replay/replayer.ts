/**
 * Replays a parsed trace against a fresh unit and yields the result lines the
 * format defines, as JSON text in canonical form: keys `i`, `op`, then the
 * op's fields; lowercase hex with `0x`, no leading zeros; `fault` two digits.
 */
import { Iommu, TranslateResult } from '../iommu.js';
import { optionsFromHeader, type Trace, type TraceOp } from '../trace/parse.js';
import { GuestDriver, type DriverOptions, type DriverStats, type InvalidationCounts, type LoweredOp } from '../guest/driver.js';
import { MemlockAccount, emptyErrors, type BackendStats } from '../shadow/backend.js';
import { backendFactory, type BackendFactory, type BackendSpec } from '../shadow/factory.js';
import { ShadowSync, type ShadowMetrics, type SyncMode } from '../shadow/sync.js';

/** How a replay runs: the guest-driver model for workload ops, and an optional shadowed backend. */
export interface ReplayOptions {
  /** Options of the guest-driver model that lowers attach/map/unmap (workload traces). */
  driver?: DriverOptions;
  /** Shadow the guest's mappings of every header device into a VFIO backend model. */
  shadow?: {
    mode: SyncMode;
    /** The backend of each shadowed domain: by name (with its options below), or a factory the caller built. */
    backend: BackendSpec['backend'] | BackendFactory;
    type1?: BackendSpec['type1'];
    iommufd?: BackendSpec['iommufd'];
    /** Most guest table entries one sync's walk reads (ShadowOptions.maxWalkEntries). */
    maxWalkEntries?: number;
  };
}

/** Invalidations the unit processed, by kind (from its invalidation events), with interrupt-entry-cache ones. */
export interface InvalidationTally extends InvalidationCounts {
  iec: number;
}

/** What a replay counted so far. */
export interface ReplayTally {
  ops: number; results: number;
  dmaOk: number; dmaFault: number; dmaSuppressed: number; dmaBlocked: number;
  msiOk: number; msiBlocked: number; faultEvents: number; completionEvents: number;
  /** Register writes (trace `wr` and the driver's), guest-memory quadwords written (trace `mem` and the driver's). */
  registerWrites: number; memoryQwords: number;
}

/** The backends' accounting over every shadowed domain, with the limits in force (null: none). */
export type ShadowBackendStats = BackendStats & { liveLimit: number | null; pinnedLimit: bigint | null };

/**
 * What a replay so far tells its reports (report/metrics.ts reads only
 * this): the replay's own tallies, the core's counters, the guest-driver
 * model's statistics, the shadow's metrics and its backends' accounting.
 * Each read is cheap: a report samples it every few thousand operations.
 */
export interface ReplayView {
  readonly tally: Readonly<ReplayTally>;
  readonly invalidations: Readonly<InvalidationTally>;
  /** The core's counters (Iommu.counters). */
  counters(): Record<string, number>;
  /** The guest-driver model's statistics; undefined before the first workload op. */
  readonly driverStats: Readonly<DriverStats> | undefined;
  /** Shadow sync's metrics; undefined without a shadow. */
  readonly shadowMetrics: Readonly<ShadowMetrics> | undefined;
  /** The backends' accounting; undefined without a shadow. */
  backendStats(): ShadowBackendStats | undefined;
}

export function hex(v: bigint | number): string {
  return '0x' + v.toString(16);
}

export function faultHex(r: number): string {
  return '0x' + r.toString(16).padStart(2, '0');
}

function toHexBytes(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

/** A replay in progress: the unit, and what happened so far. */
export class Replayer implements ReplayView {
  readonly iommu: Iommu;
  readonly tally: ReplayTally = {
    ops: 0, results: 0, dmaOk: 0, dmaFault: 0, dmaSuppressed: 0, dmaBlocked: 0, msiOk: 0, msiBlocked: 0, faultEvents: 0, completionEvents: 0,
    registerWrites: 0, memoryQwords: 0,
  };
  readonly invalidations: InvalidationTally = { iotlbGlobal: 0, iotlbDomain: 0, iotlbPage: 0, contextGlobal: 0, contextDomain: 0, contextDevice: 0, iec: 0, pasidIotlb: 0, pasidIotlbPage: 0, pasidCache: 0 };
  /** The guest-driver model, created at the first workload op. */
  driver: GuestDriver | undefined;
  readonly shadow: ShadowSync | undefined;
  /** The VMM process's locked memory, shared by the backends of every shadowed domain. */
  readonly memlock = new MemlockAccount();
  /** Builds the backend of each shadowed domain; undefined without a shadow. */
  private readonly backends: BackendFactory | undefined;
  private readonly tr = new TranslateResult();
  private readonly emit = (op: LoweredOp): void => this.runLowered(op);

  constructor(readonly trace: Trace, readonly options: ReplayOptions = {}) {
    const config = trace.header.config;
    this.iommu = Iommu.create(optionsFromHeader(config));
    this.iommu.on((e) => {
      if (e.type === 'fault-interrupt') this.tally.faultEvents++;
      else if (e.type === 'completion-interrupt') this.tally.completionEvents++;
      else if (e.type === 'invalidation') {
        const t = this.invalidations;
        if (e.cache === 'iotlb') {
          if (e.granularity === 1) t.iotlbGlobal++;
          else if (e.granularity === 2) t.iotlbDomain++;
          else t.iotlbPage++;
        } else if (e.cache === 'context') {
          if (e.granularity === 1) t.contextGlobal++;
          else if (e.granularity === 2) t.contextDomain++;
          else t.contextDevice++;
        } else if (e.cache === 'interrupt-entry') t.iec++;
        else if (e.cache === 'pasid-iotlb') {
          if (e.granularity === 3) t.pasidIotlbPage++;
          else t.pasidIotlb++;
        } else if (e.cache === 'pasid-cache') t.pasidCache++;
      }
    });
    const sh = options.shadow;
    if (sh) {
      const backends = typeof sh.backend === 'string' ? backendFactory({ backend: sh.backend, type1: sh.type1, iommufd: sh.iommufd }) : sh.backend;
      this.backends = backends;
      this.shadow = new ShadowSync(this.iommu, (did) => backends.create(did, this.memlock), { mode: sh.mode, ram: [[0n, config.ram]], maxWalkEntries: sh.maxWalkEntries });
      // Every device the trace names is assigned: its domain is shadowed once its context is present.
      for (const sid of trace.header.devices) this.shadow.attach(sid);
    }
  }

  /** Executes one op; returns its result line, or undefined for ops that have none. */
  step(op: TraceOp): string | undefined {
    this.tally.ops++;
    const line = this.run(op);
    if (line !== undefined) this.tally.results++;
    return line;
  }

  /**
   * The backends' accounting summed over every shadowed domain; the
   * high-water of live mappings is the largest of one container (the limit is
   * per container), the pinned figures are the process's (the limit is per
   * process). Undefined without a shadow.
   */
  backendStats(): ShadowBackendStats | undefined {
    const f = this.backends;
    if (!this.shadow || !f) return undefined;
    const all = [...this.shadow.backends().values()].map((b) => b.stats());
    const sum: BackendStats = {
      maps: 0, unmaps: 0, mappedBytes: 0n, unmappedBytes: 0n, liveMappings: 0, liveHighWater: 0,
      pinnedBytes: this.memlock.locked, pinnedHighWater: this.memlock.highWater,
      errors: emptyErrors(),
      mapSizeHistogram: {}, unmapSizeHistogram: {},
    };
    for (const s of all) {
      sum.maps += s.maps;
      sum.unmaps += s.unmaps;
      sum.mappedBytes += s.mappedBytes;
      sum.unmappedBytes += s.unmappedBytes;
      sum.liveMappings += s.liveMappings;
      sum.liveHighWater = Math.max(sum.liveHighWater, s.liveHighWater);
      for (const [k, v] of Object.entries(s.errors)) sum.errors[k as keyof typeof sum.errors] += v;
      for (const [k, v] of Object.entries(s.mapSizeHistogram)) sum.mapSizeHistogram[k] = (sum.mapSizeHistogram[k] ?? 0) + v;
      for (const [k, v] of Object.entries(s.unmapSizeHistogram)) sum.unmapSizeHistogram[k] = (sum.unmapSizeHistogram[k] ?? 0) + v;
    }
    return { ...sum, liveLimit: f.liveLimit, pinnedLimit: f.pinnedLimit };
  }

  counters(): Record<string, number> {
    return this.iommu.counters();
  }

  get driverStats(): Readonly<DriverStats> | undefined {
    return this.driver?.stats;
  }

  get shadowMetrics(): Readonly<ShadowMetrics> | undefined {
    return this.shadow?.metrics;
  }

  /** Ends the replay: the driver drains its flush queues (their invalidations reach the shadow). */
  finish(): void {
    this.driver?.finish(this.emit);
  }

  private runLowered(op: LoweredOp): void {
    if (op.op === 'mem') {
      this.tally.memoryQwords += op.data.length >>> 3;
      this.iommu.writeGuest(op.gpa, op.data);
    } else {
      this.tally.registerWrites++;
      this.iommu.mmioWrite(op.reg, op.size, op.val);
    }
  }

  private run(op: TraceOp): string | undefined {
    const head = `{"i":${op.index},"op":"${op.op}"`;
    switch (op.op) {
      case 'mem':
        this.tally.memoryQwords += Math.ceil(op.data.length / 8);
        this.iommu.writeGuest(op.gpa, op.data);
        return undefined;
      case 'mrd':
        return `${head},"hex":"${toHexBytes(this.iommu.readGuest(op.gpa, op.len))}"}`;
      case 'wr':
        this.tally.registerWrites++;
        this.iommu.mmioWrite(op.reg, op.size, op.val);
        return undefined;
      case 'rd': {
        let v = this.iommu.mmioRead(op.reg, op.size);
        if (op.mask !== undefined) v &= op.mask;
        return `${head},"val":"${hex(v)}"}`;
      }
      case 'dma': {
        // A request without PASID keeps the plain call (the fast path); one with a PASID
        // passes {pasid, priv, exe} (priv and exe default to false).
        const r = op.pasid === undefined
          ? this.iommu.translateInto(op.sid, op.iova, op.dir, op.len, this.tr)
          : this.iommu.translateInto(op.sid, op.iova, op.dir, op.len, this.tr, { pasid: op.pasid, priv: op.priv ?? false, exe: op.exe ?? false });
        if (r.ok) {
          this.tally.dmaOk++;
          return `${head},"ok":true,"gpa":"${hex(r.gpaBig)}"}`;
        }
        const f = r.fault;
        if (f !== undefined) {
          this.tally.dmaFault++;
          return `${head},"ok":false,"fault":"${faultHex(f)}"}`;
        }
        if (r.suppressed) this.tally.dmaSuppressed++;
        else this.tally.dmaBlocked++;
        return `${head},"ok":false}`;
      }
      case 'msi': {
        const m = this.iommu.remapMsi(op.sid, op.addr, Number(op.data));
        if (m.ok && !m.posted) {
          this.tally.msiOk++;
          return `${head},"ok":true,"addr":"${hex(m.addr)}","data":"${hex(m.data)}"}`;
        }
        this.tally.msiBlocked++;
        if (!m.ok && m.fault !== undefined) return `${head},"ok":false,"fault":"${faultHex(m.fault)}"}`;
        return `${head},"ok":false}`;
      }
      case 'attach':
      case 'map':
      case 'unmap':
        if (!this.driver) {
          this.driver = new GuestDriver(this.trace.header, this.options.driver);
          this.driver.init(this.emit);
        }
        this.driver.lower(op, this.emit);
        return undefined;
    }
  }
}

/** Replays a whole trace (workload ops lowered by the guest-driver model); returns its result lines. */
export function replayTrace(trace: Trace, options: ReplayOptions = {}): string[] {
  const r = new Replayer(trace, options);
  const out: string[] = [];
  for (const op of trace.ops) {
    const line = r.step(op);
    if (line !== undefined) out.push(line);
  }
  r.finish();
  return out;
}
