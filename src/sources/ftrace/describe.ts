/**
 * Words for an import's outcome: the warnings' explanations, and the one-line
 * description the importer writes as the trace's leading comment.
 *
 * Browser-safe.
 */
import type { ImportResult, ImportStats } from './importer.js';

export const WARNING_TEXT: Readonly<Record<string, string>> = {
  'map-unattributable': 'map: no domain where it fits (each has a live mapping there, or none exists); dropped',
  'map-over-live': 'map over a live mapping of the domain its invalidation names; the old mapping unmapped first',
  'unmap-not-live': 'unmap of a range live in no domain; dropped',
  'unmap-partly-live': 'unmap of a range only partly live; the live parts unmapped',
  'unmap-short': 'unmapped_size below size; unmapped_size used',
  'zero-size': 'map or unmap of size 0; dropped',
  'unaligned': 'map or unmap not 4 KiB aligned; dropped',
  'domain-without-device': 'a domain named by an invalidation has no attached device',
  'detach': 'detach_device_from_domain has no workload op; ignored',
  'io-page-fault': 'io_page_fault events; ignored',
  'non-pci-device': 'a device that is not PCI; ignored',
  'flush-of-unknown-domain': 'a flush-queue flush names a domain the trace never attached or mapped',
  'invalidation-unmatched': 'a page-selective invalidation matched no pending map or unmap',
  'ram-below-mappings': '--ram is below the highest mapped gpa',
};

export function countsText(c: Partial<Record<string, number>>): string {
  const parts = Object.entries(c).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`);
  return parts.length ? parts.join(', ') : 'none';
}

function warningsText(w: ImportStats['warnings']): string {
  const parts = Object.entries(w).map(([k, v]) => `${k} ${v.count} (first at line ${v.firstLine})`);
  return parts.length ? parts.join(', ') : 'none';
}

/** The one-line description written as the trace's leading comment. */
export function describeImport(r: ImportResult, source: string | undefined, cmInferred: boolean): string {
  const s = r.stats;
  const domains = s.domains.map((d) => `${d.did} (${d.devices.join(' ') || 'no device'})`).join(', ');
  const policy = s.invalidations.page > 0 && s.unmapsInvalidated > 0 ? 'strict (page-selective invalidation after unmaps)'
    : s.invalidations.domain > 0 ? 'lazy (flush-queue domain flushes)' : 'unknown (no IOTLB invalidations seen)';
  return `vtd import of ${source ?? 'ftrace text'}: ${s.lines} lines, ${s.events} events; ` +
    `${s.read.map} maps, ${s.read.unmap} unmaps, ${s.read.attach} attaches read; ` +
    `${s.written.map} maps, ${s.written.unmap} unmaps, ${s.written.attach} attaches written; ` +
    `domains ${domains || 'none'}; ` +
    `attribution: maps ${countsText(s.attribution.map)}; unmaps ${countsText(s.attribution.unmap)}; attaches ${countsText(s.attribution.attach)}; ` +
    `warnings: ${warningsText(s.warnings)}; ` +
    `cm ${r.header.cm}${cmInferred ? ' (inferred)' : ''}; guest invalidation ${policy}; perm "rw" for every map (ftrace does not record it)`;
}
