/**
 * VFIO backend models for shadow sync: VFIO type1 v2, iommufd IOAS, and a
 * recorder. See docs/BACKENDS.md.
 */
export type { Perm, Errno, BackendResult, Mapping, BackendStats, Backend, BackendLimits } from './backend.js';
export {
  MemlockAccount, DEFAULT_MAX_MAPPINGS, PAGE_SIZE, U64_MAX, DEFAULT_PAGE_SIZES, DEFAULT_APERTURE, X86_MSI_WINDOW, ERRNOS, HISTOGRAM_BUCKETS,
  sizeBucket, permString, hex,
} from './backend.js';
export { Type1Backend, excludeRanges, type Type1Options } from './type1.js';
export { IommufdBackend, type IommufdOptions } from './iommufd.js';
export { RecordingBackend, parseLog, parseLogLine, replayLog, type LogEntry, type RecordingOptions } from './recording.js';
export { ShadowSync, mergeRuns, WALK_LIMIT, type SyncMode, type Run, type ShadowOptions, type ShadowMetrics } from './sync.js';
export { backendFactory, type BackendSpec, type BackendFactory } from './factory.js';
