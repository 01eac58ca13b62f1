/**
 * Linux ftrace text to vtd workload traces (`vtd import`, docs/workloads/import.md).
 *
 * Input: the text of /sys/kernel/tracing/trace or of `trace-cmd report`, with
 * the guest's `iommu:*` events and, where present, `intel_iommu:qi_submit`.
 * Output: a workload trace (docs/trace-format.md): a header, then
 * `attach`, `map` and `unmap` ops, optionally `dma` ops placed from a QEMU
 * `-trace vtd_*` log of the same run.
 *
 * The stages, each streaming, one concept per module:
 *
 * 1. parse.ts: lines into events, one line at a time.
 * 2. importer.ts: attributes each map, unmap and attach to a domain, helped
 *    by the invalidation descriptors (descriptor.ts) and each domain's live
 *    page ranges (page-ranges.ts).
 * 3. qemu-log.ts: optionally, DMA translations from a QEMU log, placed among
 *    the ops.
 * 4. format.ts: the trace text and the human summary.
 *
 * Browser-safe: no Node modules.
 */
import { FtraceImporter, type ImportOptions, type ImportResult } from './importer.js';
import { textLines } from './parse.js';
import { QemuDmaPlacer } from './qemu-log.js';

export {
  textLines, newParseCounts, parseFtraceLine, parseFtrace, QI_TYPE_NAMES, IOMMU_EVENTS,
  type FtraceWhere, type PciDevice, type FtraceEvent, type FtraceParseCounts,
} from './parse.js';
export {
  FtraceImporter, type WorkloadOp, type AttributionRule, type Attribution, type ImportOptions, type ImportStats, type QiAnchors, type ImportResult,
} from './importer.js';
export { formatHeader, formatOp, formatImport, formatSummary } from './format.js';
export { QemuDmaPlacer, type DmaPlacementStats } from './qemu-log.js';

/** Imports ftrace text (a string or lines) in one call; with `qemuLog`, adds its DMA as `dma` ops. */
export function importFtrace(input: string | Iterable<string>, opts: ImportOptions & { qemuLog?: string | Iterable<string> } = {}): ImportResult {
  const imp = new FtraceImporter(opts);
  for (const line of typeof input === 'string' ? textLines(input) : input) if (!imp.pushLine(line)) break;
  const r = imp.finish();
  if (opts.qemuLog !== undefined) {
    const placer = new QemuDmaPlacer(r);
    for (const line of typeof opts.qemuLog === 'string' ? textLines(opts.qemuLog) : opts.qemuLog) placer.pushLine(line);
    placer.finish();
  }
  return r;
}
