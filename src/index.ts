/**
 * vtd-wasm: an emulator of the Intel VT-d remapping unit.
 * Usable in browsers and Node: nothing here imports Node modules.
 */
export { Iommu, TranslateResult, BatchPath, DEFAULT_WALK_ENTRIES, DEFAULT_WALK_LEAVES } from './iommu.js';
export { BATCH_WORDS, BATCH_WRITE, BATCH_PASID, BATCH_PRIV, BATCH_EXE, BATCH_PASID_LO_SHIFT, BATCH_PASID_HI_SHIFT, BREQ_IOVA, BREQ_SID, BREQ_LEN, BRESP_OUT, BRESP_STATUS, BRESP_SPLIT } from './iommu.js';
export type { IommuOptions, IommuEvent, DmaRequest, FaultRecord, Direction, GuestMemoryHooks, MsiResult, LeafMapping, ContextInfo, RangeScan, LeafVisitor } from './iommu.js';
export { VtdError } from './errors.js';
export type { VtdErrorCode } from './errors.js';
export { parseTrace, optionsFromHeader, parseRid, formatRid } from './trace/parse.js';
export type { Trace, TraceOp, TraceHeader, TraceConfig } from './trace/parse.js';
export { Replayer, replayTrace } from './replay/replayer.js';
export { ShadowSync, mergeRuns, Type1Backend, IommufdBackend, RecordingBackend } from './shadow/index.js';
export type { Backend, BackendResult, BackendStats, Mapping, Perm, Errno, SyncMode, Run, ShadowOptions, ShadowMetrics } from './shadow/index.js';
