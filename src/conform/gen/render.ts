/**
 * A generated conformance trace and its text: each op with the comments
 * written above it, rendered through trace/write.ts (the one trace writer).
 */
import { formatTrace, type HeaderOptions, type WritableOp } from '../../trace/write.js';

/** An op with the comments written above it. */
export interface Unit {
  comments: string[];
  op: WritableOp;
}

export interface GeneratedTrace {
  /** The unit options that differ from the format's defaults (aw always), and the requester ids. */
  header: { iommu: HeaderOptions; devices: number[] };
  units: Unit[];
  hostile: boolean;
}

/** Trace text: optional leading comment lines, the header, then each op with its comments. */
export function renderTrace(g: Pick<GeneratedTrace, 'header' | 'units'>, leading: string[] = []): string {
  return formatTrace({ leading, iommu: g.header.iommu, devices: g.header.devices, ops: g.units });
}
