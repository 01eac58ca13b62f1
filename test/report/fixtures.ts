/** Plausible replay reports for the HTML and compare tests, built from a few numbers. */
import { costParams, modelCost } from '../../src/report/cost.js';
import type { BackendMetrics, GuestMetrics, ReplayReport, RunReport, Sample, Strategy } from '../../src/report/types.js';

export interface RunSpec {
  policy?: Strategy['policy'];
  shadow?: Strategy['shadow'];
  backend?: Strategy['backend'];
  label?: string;
  guestMaps?: number;
  guestUnmaps?: number;
  /** Page-selective IOTLB invalidations. */
  invalidations?: number;
  registerWrites?: number;
  iotlbHits?: number;
  iotlbMisses?: number;
  contextHits?: number;
  contextMisses?: number;
  backendMaps?: number;
  backendUnmaps?: number;
  /** Bytes per backend map. */
  mapSize?: number;
  liveHighWater?: number;
  liveLimit?: number | null;
  pinnedHighWater?: number;
  pinnedLimit?: number | null;
  errors?: Record<string, number>;
  /** Timeline samples (0: an empty timeline). */
  samples?: number;
  traceOps?: number;
}

function bucket(size: number): string {
  for (let s = 4096; s <= 1 << 30; s *= 2) {
    if (size <= s) return s >= 1 << 30 ? `${s / (1 << 30)}G` : s >= 1 << 20 ? `${s / (1 << 20)}M` : `${s / 1024}K`;
  }
  return '>1G';
}

function histogram(count: number, size: number): Record<string, number> {
  const h: Record<string, number> = {};
  for (let s = 4096; s <= 1 << 30; s *= 2) h[bucket(s)] = 0;
  h['>1G'] = 0;
  if (count) h[bucket(size)] += count;
  return h;
}

/** A RunReport whose numbers are consistent with each other (cost from the real model). */
export function makeRun(spec: RunSpec = {}): RunReport {
  const policy = spec.policy ?? 'strict';
  const shadow = spec.shadow ?? 'merged';
  const backendKind = spec.backend ?? (shadow === 'none' ? 'none' : 'type1');
  const maps = spec.guestMaps ?? 1000, unmaps = spec.guestUnmaps ?? 1000;
  const inval = spec.invalidations ?? (policy === 'strict' ? maps + unmaps : Math.ceil(unmaps / 256));
  const guest: GuestMetrics = {
    attaches: 1, maps, unmaps, mapBytes: maps * 4096, unmapBytes: unmaps * 4096,
    invalidations: { iotlbGlobal: 0, iotlbDomain: policy === 'lazy' ? inval : 0, iotlbPage: policy === 'lazy' ? 0 : inval, contextGlobal: 1, contextDomain: 0, contextDevice: 1, iec: 0, wait: inval, pasidIotlb: 0, pasidIotlbPage: 0, pasidCache: 0 },
    flushes: policy === 'lazy' ? inval : 0,
    registerWrites: spec.registerWrites ?? inval + 4,
    tableWrites: maps * 2 + unmaps, dmas: 500, dmaFaults: 0, msis: 0,
  };
  const bMaps = spec.backendMaps ?? (shadow === 'qemu' ? maps * 128 : maps);
  const bUnmaps = spec.backendUnmaps ?? bMaps;
  const mapSize = spec.mapSize ?? (shadow === 'qemu' ? 4096 : 2 << 20);
  const backend: BackendMetrics | null = shadow === 'none' ? null : {
    maps: bMaps, unmaps: bUnmaps, mapBytes: bMaps * mapSize, unmapBytes: bUnmaps * mapSize,
    mapSizeHistogram: histogram(bMaps, mapSize), unmapSizeHistogram: histogram(bUnmaps, mapSize),
    liveHighWater: spec.liveHighWater ?? 300, liveLimit: spec.liveLimit === undefined ? 65535 : spec.liveLimit,
    pinnedHighWater: spec.pinnedHighWater ?? 300 * mapSize, pinnedLimit: spec.pinnedLimit === undefined ? null : spec.pinnedLimit,
    errors: spec.errors ?? {}, syncWalks: inval, syncEntriesRead: inval * 5, redundantAvoided: 10, unmappedWindows: 2, notRam: 0,
  };
  const unit = {
    translations: 500, walks: spec.iotlbMisses ?? 50, firstStageWalks: 0, adWrites: 0, entriesRead: 4 * (spec.iotlbMisses ?? 50),
    iotlbHits: spec.iotlbHits ?? 450, iotlbMisses: spec.iotlbMisses ?? 50,
    contextHits: spec.contextHits ?? 499, contextMisses: spec.contextMisses ?? 1, faults: 0,
  };
  const params = costParams();
  const cost = modelCost(guest, backend, params);
  const n = spec.samples ?? 11;
  const ops = spec.traceOps ?? 3000;
  const every = n > 1 ? Math.ceil(ops / (n - 1)) : ops;
  const samples: Sample[] = [];
  for (let k = 0; k < n; k++) {
    const f = n > 1 ? k / (n - 1) : 1;
    const c = (v: number) => Math.round(v * f);
    samples.push({
      op: Math.min(ops, k * every), guestMaps: c(maps), guestUnmaps: c(unmaps), invalidations: c(inval),
      backendMaps: backend ? c(bMaps) : 0, backendUnmaps: backend ? c(bUnmaps) : 0,
      liveMappings: backend ? Math.round(backend.liveHighWater * Math.sin(Math.PI * f)) : 0,
      pinnedBytes: backend ? Math.round(backend.pinnedHighWater * Math.sin(Math.PI * f)) : 0,
      iotlbHits: c(unit.iotlbHits), iotlbMisses: c(unit.iotlbMisses), modelledNs: cost.totalNs * f,
    });
  }
  const label = spec.label ?? `${policy}${shadow !== 'none' ? `+${shadow}/${backendKind}` : ''}`;
  return {
    strategy: { label, policy, policyForced: false, flushQueue: 256, shadow, backend: backendKind },
    guest, unit, backend, cost, timeline: { every, samples }, wallMs: 12.5, opsPerSecond: ops / 0.0125,
  };
}

export function makeReport(runs: RunReport[], name = 'net-rx.jsonl'): ReplayReport {
  return {
    vtdReport: 1,
    trace: { name, ops: 3000, workloadOps: 2001, aw: 48, cm: true, devices: ['00:03.0', '00:04.0'] },
    runs,
  };
}
