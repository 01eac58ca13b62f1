/**
 * An import as text: the workload trace (through trace/write.ts, the one
 * trace writer) and the human summary `vtd import` prints on standard error.
 *
 * Browser-safe.
 */
import { formatComment, formatHeader as writeHeader, formatOp as writeOp, hex } from '../../trace/write.js';
import { countsText, WARNING_TEXT } from './describe.js';
import type { ImportResult, WorkloadOp } from './importer.js';

/** The workload trace's header line. */
export function formatHeader(h: ImportResult['header']): string {
  // A scalable-mode capture keeps its mode (and first-stage tables) in the header, so it is lowered in scalable mode.
  return writeHeader(h.sm ? { aw: h.aw, cm: h.cm, sm: true, flts: h.flts, ram: h.ram } : { aw: h.aw, cm: h.cm, ram: h.ram }, h.devices);
}

/** One op as a trace line (a note as a `#` comment). */
export function formatOp(o: WorkloadOp): string {
  return o.op === 'note' ? formatComment(o.text) : writeOp(o);
}

/** The whole workload trace, line by line: the comment, the header, the ops. */
export function* formatImport(r: ImportResult): Generator<string> {
  yield formatComment(r.comment);
  yield formatHeader(r.header);
  for (const o of r.ops) yield formatOp(o);
}

/** A human summary of an import (several lines), for standard error. */
export function formatSummary(r: ImportResult, seconds?: number): string {
  const s = r.stats;
  const out = [
    `vtd import: ${s.lines} lines, ${s.events} events read` +
      (s.firstSeconds !== undefined ? ` (guest time ${s.firstSeconds.toFixed(3)} .. ${s.lastSeconds!.toFixed(3)} s)` : '') +
      (seconds !== undefined ? ` in ${seconds.toFixed(2)} s` : ''),
    `  read:    ${s.read.map} maps, ${s.read.unmap} unmaps, ${s.read.attach} attaches, ${s.read.group} group adds, ${s.read.qi} invalidation descriptors, ${s.read.mark} markers`,
    `  written: ${s.written.map} maps (${s.mapBytes} bytes), ${s.written.unmap} unmaps (${s.unmapBytes} bytes), ${s.written.attach} attaches` +
      (s.dma ? `, ${s.written.dma} dma` : ''),
    `  attribution: maps ${countsText(s.attribution.map)}`,
    `               unmaps ${countsText(s.attribution.unmap)}`,
    `               attaches ${countsText(s.attribution.attach)}` +
      (s.attachInference.checked ? ` (inference agrees with ${s.attachInference.agreed} of ${s.attachInference.checked} flushes)` : ''),
    `  domains:`,
    ...s.domains.map((d) => `    ${d.did}: ${d.devices.join(' ') || 'no device'}; ${d.maps} maps, ${d.unmaps} unmaps, ${d.live} live at the end${d.lazy ? ', lazy' : ''}`),
    `  header: aw ${r.header.aw}, cm ${r.header.cm}${r.header.sm ? `, sm true, flts ${r.header.flts}` : ''}, ram ${hex(r.header.ram)}, ${r.header.devices.length} devices`,
    `  warnings: ${Object.keys(s.warnings).length ? '' : 'none'}`,
    ...Object.entries(s.warnings).map(([k, v]) => `    ${k}: ${v.count} (first at line ${v.firstLine}): ${WARNING_TEXT[k] ?? ''}`),
  ];
  if (Object.keys(s.unknownEvents).length) out.push(`  other events skipped: ${countsText(s.unknownEvents)}`);
  if (s.otherLines) out.push(`  non-event lines skipped: ${s.otherLines}`);
  if (s.dma) {
    const d = s.dma;
    out.push(`  qemu log: ${d.translations} translations, ${d.anchors} descriptors matched the guest's; dma placed ${d.placed} ` +
      `(${d.inWindow} in order in their window, ${d.reordered} reordered within it, ${d.neighbour} in a neighbouring window); ` +
      `dropped ${d.unplaced} with no position where the mapping holds, ${d.afterGuest} after the guest trace ended, ${d.unknownDevice} of devices never attached`);
  }
  return out.join('\n') + '\n';
}
