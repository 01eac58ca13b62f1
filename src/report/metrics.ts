/**
 * Metrics of a replay, gathered into the report's RunReport: what the guest
 * did (through the driver model), what the unit did (its counters), what the
 * shadowed backend did, the cost model, and a timeline of cumulative samples.
 * A replay is read only through its documented `ReplayView`.
 *
 * Browser-safe.
 */
import type { ReplayView } from '../replay/replayer.js';
import { modelCost, costParams, type CostOverrides } from './cost.js';
import type { BackendMetrics, GuestMetrics, RunReport, Sample, Strategy, UnitMetrics } from './types.js';

/** Guest metrics so far. */
export function guestMetrics(r: ReplayView, c: Record<string, number> = r.counters()): GuestMetrics {
  const d = r.driverStats;
  const t = r.tally;
  return {
    attaches: d?.attaches ?? 0,
    maps: d?.maps ?? 0,
    unmaps: d?.unmaps ?? 0,
    mapBytes: d?.mapBytes ?? 0,
    unmapBytes: d?.unmapBytes ?? 0,
    invalidations: { ...r.invalidations, wait: c['qi.wait'] ?? 0 },
    flushes: d?.flushes ?? 0,
    registerWrites: t.registerWrites,
    tableWrites: t.memoryQwords,
    dmas: t.dmaOk + t.dmaFault + t.dmaSuppressed + t.dmaBlocked,
    dmaFaults: t.dmaFault + t.dmaSuppressed,
    msis: t.msiOk + t.msiBlocked,
  };
}

/** Every invalidation request of a run, whatever its kind (invalidation waits aside). */
export function invalidationCount(i: GuestMetrics['invalidations']): number {
  return i.iotlbGlobal + i.iotlbDomain + i.iotlbPage + i.contextGlobal + i.contextDomain + i.contextDevice + i.iec
    + i.pasidIotlb + i.pasidIotlbPage + i.pasidCache;
}

/** Unit metrics from the core's counters (translation activity; the shadow's own walks are reported under backend). */
export function unitMetrics(r: ReplayView, c: Record<string, number> = r.counters()): UnitMetrics {
  const levels = (c['walk.level1'] ?? 0) + (c['walk.level2'] ?? 0) + (c['walk.level3'] ?? 0) + (c['walk.level4'] ?? 0) + (c['walk.level5'] ?? 0);
  return {
    translations: c['translate'] ?? 0,
    walks: c['walk.count'] ?? 0,
    firstStageWalks: c['walk.firstStage'] ?? 0,
    adWrites: c['walk.adWrites'] ?? 0,
    // The walk.level* counters count request walks only (the shadow's range walks count under rangeWalk.*).
    entriesRead: levels + (c['walk.rootReads'] ?? 0) + (c['walk.ctxReads'] ?? 0),
    iotlbHits: c['iotlb.hit'] ?? 0,
    iotlbMisses: c['iotlb.miss'] ?? 0,
    contextHits: c['ctx.hit'] ?? 0,
    contextMisses: c['ctx.miss'] ?? 0,
    faults: c['fault.count'] ?? 0,
  };
}

/** Backend metrics (shadow sync and the backend's own accounting), or null without a shadow. */
export function backendMetrics(r: ReplayView, s = r.backendStats()): BackendMetrics | null {
  const m = r.shadowMetrics;
  if (!m || !s) return null;
  const errors: Record<string, number> = {};
  for (const [k, v] of Object.entries(s.errors)) if (v) errors[k] = v;
  return {
    maps: s.maps,
    unmaps: s.unmaps,
    mapBytes: Number(s.mappedBytes),
    unmapBytes: Number(s.unmappedBytes),
    mapSizeHistogram: { ...s.mapSizeHistogram },
    unmapSizeHistogram: { ...s.unmapSizeHistogram },
    liveHighWater: s.liveHighWater,
    liveLimit: s.liveLimit,
    pinnedHighWater: Number(s.pinnedHighWater),
    pinnedLimit: s.pinnedLimit === null ? null : Number(s.pinnedLimit),
    errors,
    syncWalks: m.walks,
    syncEntriesRead: m.entriesRead,
    incompleteSyncs: m.incompleteSyncs,
    limits: { ...m.limits },
    redundantAvoided: m.redundantAvoided,
    unmappedWindows: m.unmappedWindows,
    notRam: m.notRam,
  };
}

/**
 * Takes a sample every `every` trace operations. Cheap enough for a million
 * operations: a sample reads counters and backend totals, nothing more.
 */
export class Timeline {
  readonly samples: Sample[] = [];
  constructor(readonly every: number, private readonly params = costParams()) {}

  take(r: ReplayView): void {
    // One read of the counters and one of the backends per sample.
    const c = r.counters();
    const s = r.backendStats();
    const g = guestMetrics(r, c);
    const u = unitMetrics(r, c);
    const b = backendMetrics(r, s);
    this.samples.push({
      op: r.tally.ops,
      guestMaps: g.maps,
      guestUnmaps: g.unmaps,
      invalidations: invalidationCount(g.invalidations),
      backendMaps: b?.maps ?? 0,
      backendUnmaps: b?.unmaps ?? 0,
      liveMappings: s?.liveMappings ?? 0,
      pinnedBytes: s ? Number(s.pinnedBytes) : 0,
      iotlbHits: u.iotlbHits,
      iotlbMisses: u.iotlbMisses,
      contextHits: u.contextHits,
      contextMisses: u.contextMisses,
      modelledNs: modelCost(g, b, this.params).totalNs,
    });
  }
}

/** Chooses a sampling interval giving about `target` samples over `ops` operations. */
export function sampleInterval(ops: number, target = 400): number {
  return Math.max(1, Math.ceil(ops / target));
}

/** The run's report, after the replay finished. */
export function runReport(r: ReplayView, strategy: Strategy, timeline: Timeline, wallMs: number, overrides: CostOverrides = {}): RunReport {
  const c = r.counters();
  const guest = guestMetrics(r, c);
  const backend = backendMetrics(r);
  const params = costParams(overrides);
  return {
    strategy,
    guest,
    unit: unitMetrics(r, c),
    backend,
    cost: modelCost(guest, backend, params),
    timeline: { every: timeline.every, samples: timeline.samples },
    wallMs,
    opsPerSecond: wallMs > 0 ? r.tally.ops / (wallMs / 1000) : 0,
  };
}
