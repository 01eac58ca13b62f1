/**
 * The replay report (`vtd replay --report out.json`): what one or more
 * replays of a trace did and what they are modelled to cost. A public,
 * versioned format: `vtdReport` is bumped on any incompatible change.
 * Byte counts are plain numbers (exact up to 2^53 bytes, 8 PiB).
 * Browser-safe: types only.
 */
import type { InvalidationTally } from '../replay/replayer.js';

export interface ReplayReport {
  vtdReport: 1;
  /** The trace every run replayed. */
  trace: TraceInfo;
  /** One entry per strategy replayed (e.g. strict and lazy, merged and qemu), in the order given. */
  runs: RunReport[];
}

export interface TraceInfo {
  /** File name as given on the command line ('-' for standard input). */
  name: string;
  /** Operations in the trace (workload and raw). */
  ops: number;
  /** attach/map/unmap operations (lowered by the guest-driver model). */
  workloadOps: number;
  /** Header: unit options and devices (as "bb:dd.f"). */
  aw: number;
  cm: boolean;
  devices: string[];
  /**
   * Device operations per second, when the trace records it (a generator's
   * leading comment `# vtd-gen <kind> ... ops=N rate=R/s`); with `ops` it
   * gives the wall time the workload represents.
   */
  rate?: number;
  /** Wall time the workload represents (ops / rate), when both are recorded. */
  durationSeconds?: number;
}

export interface Strategy {
  /** A short label: e.g. "strict+merged/type1". */
  label: string;
  /** Guest driver invalidation policy (workload traces only; 'none' for raw traces). */
  policy: 'strict' | 'lazy' | 'none';
  /** Was the policy forced (Linux forces strict under caching mode)? */
  policyForced: boolean;
  /** Flush-queue size for the lazy policy. */
  flushQueue: number;
  /** Shadow sync mode, or 'none' when no backend is shadowed. */
  shadow: 'merged' | 'qemu' | 'none';
  backend: 'type1' | 'iommufd' | 'none';
}

/** What the guest (through its driver) did. */
export interface GuestMetrics {
  attaches: number;
  maps: number;
  unmaps: number;
  mapBytes: number;
  unmapBytes: number;
  /** Invalidation requests the unit processed, by kind. */
  invalidations: InvalidationTally & {
    /** Invalidation-wait descriptors processed. */
    wait: number;
  };
  /** Flush-queue flushes (lazy policy). */
  flushes: number;
  /** Guest register writes (each one a trap under emulation). */
  registerWrites: number;
  /** Guest memory writes to tables (PTE, context, descriptors: 8-byte units). */
  tableWrites: number;
  dmas: number;
  dmaFaults: number;
  msis: number;
}

/** What the remapping unit did. */
export interface UnitMetrics {
  translations: number;
  /** Second-stage request walks (legacy tables, PGTT 010, and the second-stage walks of nested translation). */
  walks: number;
  /** Scalable mode: first-stage request walks (PGTT 001 and 011), and the Accessed/Dirty flag writes they made. */
  firstStageWalks: number;
  adWrites: number;
  /** Paging-structure entries read by walks (all levels), plus root and context reads. */
  entriesRead: number;
  iotlbHits: number;
  iotlbMisses: number;
  contextHits: number;
  contextMisses: number;
  faults: number;
}

/** What the shadow sync made the backend do. Absent when no backend is shadowed. */
export interface BackendMetrics {
  maps: number;
  unmaps: number;
  mapBytes: number;
  unmapBytes: number;
  /** Successful maps by size, power-of-two buckets '4K', '8K', ... '1G', '>1G'. */
  mapSizeHistogram: Record<string, number>;
  unmapSizeHistogram: Record<string, number>;
  /** The most live mappings one container (one guest domain's backend) held at once. */
  liveHighWater: number;
  /** The live-mapping limit per container (type1 dma_entry_limit), or null when the backend has none. */
  liveLimit: number | null;
  /** The most bytes the VMM process had pinned at once, over all its containers (mm->locked_vm). */
  pinnedHighWater: number;
  /** The pinned-memory limit in bytes for the process (RLIMIT_MEMLOCK), or null when unlimited. */
  pinnedLimit: number | null;
  /** Failed backend calls by errno (only errnos seen). */
  errors: Record<string, number>;
  syncWalks: number;
  syncEntriesRead: number;
  /** Syncs that stopped at a limit: the shadow missed guest mappings (absent in reports before issue 11: read as 0). */
  incompleteSyncs?: number;
  /** Those syncs by the limit that stopped them: 'walk-entries', 'dma_entry_limit', 'max-mappings', 'RLIMIT_MEMLOCK'. */
  limits?: Record<string, number>;
  redundantAvoided: number;
  unmappedWindows: number;
  notRam: number;
}

/** One cost-model line: count x unit cost. */
export interface CostItem {
  /** Parameter name (see CostParams). */
  event: string;
  /** Human description of what is counted. */
  what: string;
  count: number;
  unitNs: number;
  totalNs: number;
}

export interface CostParam {
  value: number;
  unit: string;
  /** Where the default comes from (paper, measurement) or 'override'. */
  source: string;
}

export interface CostReport {
  params: Record<string, CostParam>;
  items: CostItem[];
  totalNs: number;
  /** totalNs divided by guest maps + unmaps (0 when there are none). */
  perGuestOpNs: number;
  /** totalNs / the workload's wall time, when the trace records its duration: CPUs the modelled work keeps busy at the recorded rate. */
  cpuShare?: number;
}

/** A sample of cumulative counters taken every `timeline.every` trace operations (and at the end). */
export interface Sample {
  /** Trace operations replayed so far. */
  op: number;
  guestMaps: number;
  guestUnmaps: number;
  invalidations: number;
  backendMaps: number;
  backendUnmaps: number;
  liveMappings: number;
  pinnedBytes: number;
  iotlbHits: number;
  iotlbMisses: number;
  contextHits: number;
  contextMisses: number;
  modelledNs: number;
}

export interface RunReport {
  strategy: Strategy;
  guest: GuestMetrics;
  unit: UnitMetrics;
  backend: BackendMetrics | null;
  cost: CostReport;
  timeline: { every: number; samples: Sample[] };
  /** Replay wall time and throughput (trace operations per second, lowering included). */
  wallMs: number;
  opsPerSecond: number;
}
