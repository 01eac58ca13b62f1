/**
 * Linux ftrace text to vtd workload traces (`vtd import`, docs/workloads/import.md).
 *
 * Input: the text of /sys/kernel/tracing/trace or of `trace-cmd report`, with
 * the guest's `iommu:*` events and, where present, `intel_iommu:qi_submit`.
 * Output: a workload trace (docs/trace-format.md): a header, then
 * `attach`, `map` and `unmap` ops, optionally `dma` ops placed from a QEMU
 * `-trace vtd_*` log of the same run.
 *
 * Two stages, both streaming:
 *
 * 1. `parseFtrace` turns lines into events, one line at a time.
 * 2. `FtraceImporter` attributes each map, unmap and attach to a domain.
 *    ftrace's map and unmap events name neither the device nor the domain;
 *    the invalidation descriptors the driver submits right after them do
 *    (page-selective IOTLB invalidation, §7.5: DID in QW0 31:16), so events
 *    wait in a bounded look-ahead window for their descriptor before they
 *    are committed in order. Events no descriptor names are attributed by
 *    the live mappings of each domain and a documented heuristic.
 *
 * Browser-safe: no Node modules. Section numbers (§) are those of the VT-d
 * digest (docs/DESIGN.md, "Sources").
 */
import { VtdError } from '../../errors.js';
import { formatRid } from '../../trace/parse.js';
import { formatComment, formatHeader as writeHeader, formatOp as writeOp, hex } from '../../trace/write.js';
import { decodeDesc, descType, DESC_IOTLB, G_DEVICE, G_DOMAIN, G_GLOBAL, G_PAGE } from '../../guest/layout.js';

// ---------------------------------------------------------------------------
// Lines

/** The lines of a text, one at a time (no array of all lines is built). */
export function* textLines(text: string): Generator<string> {
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) {
      if (start < text.length) yield stripCr(text.slice(start));
      return;
    }
    yield stripCr(text.slice(start, nl));
    start = nl + 1;
  }
}

function stripCr(s: string): string {
  return s.endsWith('\r') ? s.slice(0, -1) : s;
}

// ---------------------------------------------------------------------------
// Events

/** Where and when an event happened: the columns every ftrace event line has. */
export interface FtraceWhere {
  /** 1-based line number in the input. */
  line: number;
  /** Task name (comm) as printed, e.g. `<idle>`, `ksoftirqd/0`. */
  task: string;
  pid: number;
  cpu: number;
  /**
   * The latency flags column (`d.h2.`: irqs-off, need-resched,
   * hardirq/softirq, preempt depth, migrate-disable), or undefined when the
   * layout has none (`trace-cmd report` without `-l`).
   */
  flags?: string;
  /** Timestamp in seconds, as printed. */
  seconds: number;
}

/** A PCI device as ftrace names it (`SSSS:BB:DD.F`). */
export interface PciDevice {
  segment: number;
  /** Requester id: bus << 8 | device << 3 | function. */
  sid: number;
}

/** One parsed event line. 64-bit values are bigint, as printed. */
export type FtraceEvent =
  | FtraceWhere & { event: 'map'; iova: bigint; paddr: bigint; size: bigint }
  | FtraceWhere & { event: 'unmap'; iova: bigint; size: bigint; unmappedSize: bigint }
  | FtraceWhere & { event: 'attach' | 'detach'; device: PciDevice | string }
  | FtraceWhere & { event: 'group' | 'ungroup'; group: number; device: PciDevice | string }
  | FtraceWhere & { event: 'qi'; type: string; unit: string; qw: readonly [bigint, bigint, bigint, bigint] }
  | FtraceWhere & { event: 'fault'; device: string; driver: string; iova: bigint; faultFlags: number }
  | FtraceWhere & { event: 'mark'; text: string };

/** What the parser saw besides events. */
export interface FtraceParseCounts {
  /** Lines read. */
  lines: number;
  /** `#` lines and blank lines. */
  comments: number;
  /** Event lines of known events (each yielded). */
  events: number;
  /** Event lines of events this importer does not use, by event name. */
  unknown: Record<string, number>;
  /** Lines that are not event lines (trace-cmd's `cpus=2`, `CPU 1 is empty`, ...). */
  other: number;
  /** The first such line, for the summary. */
  firstOther?: { line: number; text: string };
}

/** A fresh set of counts for `parseFtrace`. */
export function newParseCounts(): FtraceParseCounts {
  return { lines: 0, comments: 0, events: 0, unknown: {}, other: 0 };
}

/**
 * `task-pid [cpu] flags seconds: event: payload`; the tgid column
 * (`(  123)` or `(-------)`, option record-tgid) and the flags column are
 * optional (trace-cmd report prints no flags unless asked). The task is
 * matched lazily so a task name holding `-` still parses.
 */
const EVENT_LINE = /^\s*(.{1,64}?)-(\d+)\s+(?:\(\s*(?:\d+|-+)\)\s+)?\[(\d{1,5})\]\s+(?:([^\s\d][^\s]{2,5})\s+)?(\d+(?:\.\d+)?):\s+([\w:]+):\s*(.*)$/;

const HEX = '0x[0-9a-fA-F]{1,16}';
const MAP_PAYLOAD = new RegExp(`^IOMMU: iova=(${HEX})(?: - (${HEX}))? paddr=(${HEX}) size=(\\d{1,20})$`);
const UNMAP_PAYLOAD = new RegExp(`^IOMMU: iova=(${HEX})(?: - (${HEX}))? size=(\\d{1,20}) unmapped_size=(\\d{1,20})$`);
const DEVICE_PAYLOAD = /^IOMMU: device=(\S+)$/;
const GROUP_PAYLOAD = /^IOMMU: groupID=(-?\d{1,10}) device=(\S+)$/;
const QI_PAYLOAD = new RegExp(`^(\\w+) (\\S+): (${HEX}) (${HEX}) (${HEX}) (${HEX})$`);
const FAULT_PAYLOAD = new RegExp(`^IOMMU:(\\S*) (\\S+) iova=(${HEX}) flags=(${HEX})$`);
const PCI_NAME = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/;

/** qi_submit's type names (the tracepoint's `__print_symbolic` of QW0 bits 3:0, §7.5). */
export const QI_TYPE_NAMES: Readonly<Record<number, string>> = {
  0x1: 'cc_inv', 0x2: 'iotlb_inv', 0x3: 'dev_tlb_inv', 0x4: 'iec_inv', 0x5: 'inv_wait',
  0x6: 'p_iotlb_inv', 0x7: 'pc_inv', 0x8: 'p_dev_tlb_inv', 0x9: 'page_grp_resp',
};

/** Lines of the trace-cmd report preamble, which are not events. */
const TRACE_CMD_PREAMBLE = /^(cpus=\d+|version\s*=|CPU\s*\d+ (is empty|data recorded)|trace-cmd:)/;

function malformed(where: { line: number }, event: string, expected: string, payload: string): never {
  throw new VtdError('TRACE', `${event}: expected "${expected}", got ${JSON.stringify(payload.slice(0, 160))}`, { event }, where.line);
}

function parseDevice(name: string, where: { line: number }, event: string): PciDevice | string {
  const m = PCI_NAME.exec(name);
  if (!m) return name;
  const dev = parseInt(m[3], 16);
  if (dev > 0x1f) throw new VtdError('TRACE', `${event}: device number 0x${m[3]} in ${name} is above 0x1f`, { device: name }, where.line);
  return { segment: parseInt(m[1], 16), sid: (parseInt(m[2], 16) << 8) | (dev << 3) | parseInt(m[4], 10) };
}

/** The known events, by the name ftrace prints (with or without the `system:` prefix). */
const KNOWN: Readonly<Record<string, string>> = {
  map: 'map', unmap: 'unmap', attach_device_to_domain: 'attach', detach_device_from_domain: 'detach',
  add_device_to_group: 'group', remove_device_from_group: 'ungroup', qi_submit: 'qi', io_page_fault: 'fault',
  tracing_mark_write: 'mark', print: 'mark',
};

/** The IOMMU events an import needs at least one of, as ftrace names them (marks alone are not enough). */
export const IOMMU_EVENTS: readonly string[] = [
  'iommu:map', 'iommu:unmap', 'iommu:attach_device_to_domain', 'iommu:detach_device_from_domain', 'iommu:add_device_to_group',
  'iommu:remove_device_from_group', 'iommu:io_page_fault', 'intel_iommu:qi_submit',
];

function parsePayload(w: FtraceWhere, name: string, payload: string): FtraceEvent | undefined {
  switch (KNOWN[name]) {
    case 'map': {
      const m = MAP_PAYLOAD.exec(payload);
      if (!m) malformed(w, name, 'IOMMU: iova=0x... - 0x... paddr=0x... size=N', payload);
      const iova = BigInt(m[1]), size = BigInt(m[4]);
      if (m[2] !== undefined && BigInt(m[2]) !== iova + size) {
        throw new VtdError('TRACE', `map: the end ${m[2]} is not iova + size (${m[1]} + ${m[4]})`, {}, w.line);
      }
      return { ...w, event: 'map', iova, paddr: BigInt(m[3]), size };
    }
    case 'unmap': {
      const m = UNMAP_PAYLOAD.exec(payload);
      if (!m) malformed(w, name, 'IOMMU: iova=0x... - 0x... size=N unmapped_size=M', payload);
      const iova = BigInt(m[1]), size = BigInt(m[3]), unmappedSize = BigInt(m[4]);
      if (m[2] !== undefined && BigInt(m[2]) !== iova + size) {
        throw new VtdError('TRACE', `unmap: the end ${m[2]} is not iova + size (${m[1]} + ${m[3]})`, {}, w.line);
      }
      return { ...w, event: 'unmap', iova, size, unmappedSize };
    }
    case 'attach':
    case 'detach': {
      const m = DEVICE_PAYLOAD.exec(payload);
      if (!m) malformed(w, name, 'IOMMU: device=SSSS:BB:DD.F', payload);
      return { ...w, event: KNOWN[name] as 'attach' | 'detach', device: parseDevice(m[1], w, name) };
    }
    case 'group':
    case 'ungroup': {
      const m = GROUP_PAYLOAD.exec(payload);
      if (!m) malformed(w, name, 'IOMMU: groupID=G device=SSSS:BB:DD.F', payload);
      return { ...w, event: KNOWN[name] as 'group' | 'ungroup', group: Number(m[1]), device: parseDevice(m[2], w, name) };
    }
    case 'qi': {
      const m = QI_PAYLOAD.exec(payload);
      if (!m) malformed(w, name, '<type> <unit>: 0xQW0 0xQW1 0xQW2 0xQW3', payload);
      const qw = [BigInt(m[3]), BigInt(m[4]), BigInt(m[5]), BigInt(m[6])] as const;
      const code = descType(qw[0]);
      // Unknown types print as their hex value (__print_symbolic).
      const expected = QI_TYPE_NAMES[code] ?? `0x${code.toString(16)}`;
      if (m[1] !== expected) {
        throw new VtdError('TRACE', `qi_submit: type name ${m[1]} does not match QW0 bits 3:0 = 0x${code.toString(16)} (${expected})`, {}, w.line);
      }
      return { ...w, event: 'qi', type: m[1], unit: m[2], qw };
    }
    case 'fault': {
      const m = FAULT_PAYLOAD.exec(payload);
      if (!m) malformed(w, name, 'IOMMU:<driver> <device> iova=0x... flags=0x...', payload);
      return { ...w, event: 'fault', driver: m[1], device: m[2], iova: BigInt(m[3]), faultFlags: Number(BigInt(m[4])) };
    }
    case 'mark':
      return { ...w, event: 'mark', text: payload.trim() };
    default:
      return undefined;
  }
}

/**
 * Parses one line (1-based number `line`). Returns its event, or undefined
 * for `#` lines, blank lines, non-event lines and events of other kinds
 * (each counted in `counts`). A malformed line of a known event is a
 * VtdError('TRACE') naming the line.
 */
export function parseFtraceLine(raw: string, line: number, counts: FtraceParseCounts = newParseCounts()): FtraceEvent | undefined {
  counts.lines = Math.max(counts.lines, line);
  const s = raw.trimEnd();
  const t = s.trimStart();
  if (t === '' || t.startsWith('#')) {
    counts.comments++;
    return undefined;
  }
  const m = EVENT_LINE.exec(s);
  if (!m) {
    // Not an event line. trace-cmd's preamble is expected and other text is
    // counted and reported, but a line naming a known event must parse.
    if (!TRACE_CMD_PREAMBLE.test(t) && /\b(map|unmap|qi_submit|attach_device_to_domain|add_device_to_group):/.test(t)) {
      throw new VtdError('TRACE', `an event line must read "<task>-<pid> [<cpu>] [flags] <seconds>: <event>: <payload>", got ${JSON.stringify(t.slice(0, 160))}`, {}, line);
    }
    counts.other++;
    counts.firstOther ??= { line, text: t.slice(0, 120) };
    return undefined;
  }
  const name = m[6].includes(':') ? m[6].slice(m[6].lastIndexOf(':') + 1) : m[6];
  const where: FtraceWhere = { line, task: m[1].trim(), pid: Number(m[2]), cpu: Number(m[3]), seconds: Number(m[5]) };
  if (m[4] !== undefined) where.flags = m[4];
  const ev = parsePayload(where, name, m[7]);
  if (ev === undefined) {
    counts.unknown[name] = (counts.unknown[name] ?? 0) + 1;
    return undefined;
  }
  counts.events++;
  return ev;
}

/**
 * Parses ftrace text line by line, yielding the events of the known kinds
 * (see `parseFtraceLine`).
 */
export function* parseFtrace(lines: Iterable<string>, counts: FtraceParseCounts = newParseCounts()): Generator<FtraceEvent> {
  let line = 0;
  for (const raw of lines) {
    const ev = parseFtraceLine(raw, ++line, counts);
    if (ev !== undefined) yield ev;
  }
}

// ---------------------------------------------------------------------------
// Invalidation descriptors (§7.5)

/** What one qi_submit descriptor tells the importer. */
type Descriptor =
  | { kind: 'iotlb-page'; did: number; firstPage: number; pages: number }
  | { kind: 'iotlb-domain'; did: number }
  | { kind: 'iotlb-global' }
  | { kind: 'cc-device'; did: number; sid: number }
  | { kind: 'other' };

/**
 * What the importer makes of a descriptor (fields decoded by guest/layout.ts).
 * IOTLB (0x2) and PASID-based IOTLB (0x6): G 11 page-selective (the 2^AM
 * pages holding ADDR), 10 domain-selective (or all of a PASID), 01 global
 * (0x2 only). Context cache (0x1): G 11 device-selective, with DID and SID.
 */
function decodeDescriptor(qw0: bigint, qw1: bigint): Descriptor {
  const d = decodeDesc(qw0, qw1);
  if ('am' in d) {
    if (d.g === G_PAGE) {
      const pages = 2 ** d.am;
      return { kind: 'iotlb-page', did: d.did, firstPage: Math.floor(Number(d.addr >> 12n) / pages) * pages, pages };
    }
    if (d.g === G_DOMAIN) return { kind: 'iotlb-domain', did: d.did };
    if (d.type === DESC_IOTLB && d.g === G_GLOBAL) return { kind: 'iotlb-global' };
    return { kind: 'other' };
  }
  if ('fm' in d && d.g === G_DEVICE) return { kind: 'cc-device', did: d.did, sid: d.sid };
  return { kind: 'other' };
}

// ---------------------------------------------------------------------------
// Page ranges

/**
 * Disjoint [start, end) ranges of 4 KiB pages, sorted, each kept as it was
 * added (adjacent ranges are not merged, so map boundaries stay known).
 * Invariant: starts ascending and ends[i] <= starts[i + 1].
 */
class PageRanges {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  get count(): number {
    return this.starts.length;
  }

  /** Index of the first range whose end is above `page`. */
  private firstEndingAfter(page: number): number {
    let lo = 0, hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid] <= page) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  overlaps(start: number, end: number): boolean {
    const i = this.firstEndingAfter(start);
    return i < this.starts.length && this.starts[i] < end;
  }

  /** The parts of [start, end) inside ranges, merged where contiguous. */
  pieces(start: number, end: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = this.firstEndingAfter(start); i < this.starts.length && this.starts[i] < end; i++) {
      const s = Math.max(start, this.starts[i]), e = Math.min(end, this.ends[i]);
      const last = out[out.length - 1];
      if (last !== undefined && last[1] === s) last[1] = e;
      else out.push([s, e]);
    }
    return out;
  }

  /** Pages of [start, end) inside ranges. */
  covered(start: number, end: number): number {
    let n = 0;
    for (const [s, e] of this.pieces(start, end)) n += e - s;
    return n;
  }

  /** True when a range starts at `start` and one (maybe the same) ends at `end`. */
  bounds(start: number, end: number): boolean {
    const i = this.firstEndingAfter(start);
    const j = this.firstEndingAfter(end - 1);
    return i < this.starts.length && this.starts[i] === start && j < this.ends.length && this.ends[j] === end;
  }

  /** Adds [start, end); the caller guarantees it overlaps nothing. */
  add(start: number, end: number): void {
    const i = this.firstEndingAfter(start);
    this.starts.splice(i, 0, start);
    this.ends.splice(i, 0, end);
  }

  /** Removes [start, end), splitting ranges it cuts. */
  remove(start: number, end: number): void {
    let i = this.firstEndingAfter(start);
    while (i < this.starts.length && this.starts[i] < end) {
      const s = this.starts[i], e = this.ends[i];
      // What survives of the cut range: its part below `start`, its part above `end`.
      const below = s < start, above = e > end;
      const keptStarts = [...(below ? [s] : []), ...(above ? [end] : [])];
      const keptEnds = [...(below ? [start] : []), ...(above ? [e] : [])];
      this.starts.splice(i, 1, ...keptStarts);
      this.ends.splice(i, 1, ...keptEnds);
      i += keptStarts.length;
    }
  }

  clear(): void {
    this.starts.length = this.ends.length = 0;
  }
}

// ---------------------------------------------------------------------------
// The importer

/** A workload operation (trace-format.md, "Higher-level operations"), or a note printed as a `#` comment. */
export type WorkloadOp =
  | { op: 'attach'; sid: number; domain: number; line: number }
  | { op: 'map'; domain: number; iova: bigint; gpa: bigint; len: number; perm: 'r' | 'w' | 'rw'; line: number }
  | { op: 'unmap'; domain: number; iova: bigint; len: number; line: number }
  | { op: 'dma'; sid: number; iova: bigint; len: number; dir: 'r' | 'w'; line: number; /** QEMU's translation, for checking a replay. */ gpa: bigint }
  | { op: 'note'; text: string; line: number };

/** How an event's domain was decided (docs/workloads/import.md, "Attribution"). */
export type AttributionRule =
  | 'flush'           // attach: the context-cache and IOTLB flush just before it named the domain
  | 'inferred'        // attach: the group's domain, or the next domain id in attach order
  | 'invalidation'    // map/unmap: the page-selective IOTLB invalidation that followed it
  | 'direct'          // map: a direct mapping made just before its domain's first attach
  | 'only-candidate'  // the only domain where the range fits (map) or is live (unmap)
  | 'heuristic'       // several candidates; ranked (see `rankCandidates`)
  | 'dropped';        // no domain: not emitted, counted as a warning

/** One event's attribution, recorded with `audit: true`. */
export interface Attribution {
  line: number;
  event: 'map' | 'unmap' | 'attach';
  /** The domain chosen, or undefined when the event was dropped. */
  domain?: number;
  rule: AttributionRule;
}

/** Options of `importFtrace` and `FtraceImporter`. */
export interface ImportOptions {
  /** Guest address width of the header [48]. */
  aw?: 39 | 48 | 57;
  /** Caching mode of the header [inferred: true when most maps are followed by a page-selective invalidation]. */
  cm?: boolean;
  /** Guest RAM in bytes [the smallest power of two >= 2 x the highest mapped gpa end, at least 256 MiB]. */
  ram?: bigint;
  /** Stop after this many known events (reading up to `window` more, only to see the invalidations that name domains). */
  maxEvents?: number;
  /** Name of the input, for the leading comment. */
  source?: string;
  /** Attribute without looking at invalidation descriptors (to measure the heuristic). */
  ignoreInvalidations?: boolean;
  /** The first domain id handed out when inferring [2: Linux 6.1 in legacy mode, as both real runs show]. */
  firstDid?: number;
  /** Events held back in the look-ahead window [4096]. */
  window?: number;
  /** Devices attached before the trace starts (tracing began after boot). */
  attach?: ReadonlyArray<{ sid: number; domain: number }>;
  /** Record every attribution in `ImportResult.audit`. */
  audit?: boolean;
}

/** Counts `vtd import` reports. */
export interface ImportStats {
  /** Input lines read (up to the `maxEvents`-th event). */
  lines: number;
  /** Events of the known kinds read (at most `maxEvents`). */
  events: number;
  /** Events of other kinds, skipped, by name. */
  unknownEvents: Record<string, number>;
  /** Lines that are not events (trace-cmd's preamble), skipped. */
  otherLines: number;
  /** Events by kind as read. */
  read: { map: number; unmap: number; attach: number; group: number; qi: number; mark: number; detach: number; fault: number };
  /** Ops written. */
  written: { attach: number; map: number; unmap: number; dma: number };
  /** Bytes of the maps and unmaps written. */
  mapBytes: number;
  unmapBytes: number;
  /** How maps, unmaps and attaches were attributed, by rule. */
  attribution: { map: Partial<Record<AttributionRule, number>>; unmap: Partial<Record<AttributionRule, number>>; attach: Partial<Record<AttributionRule, number>> };
  /** Attaches whose domain a flush named: how many the inference rule would have given the same domain. */
  attachInference: { checked: number; agreed: number };
  /** Warnings by kind, with the first line of each. */
  warnings: Record<string, { count: number; firstLine: number }>;
  /** Invalidation descriptors seen: page-selective IOTLB, domain-selective not part of an attach (flush queue), global. */
  invalidations: { page: number; domain: number; global: number; other: number };
  /** Maps and unmaps that a page-selective invalidation followed. */
  mapsInvalidated: number;
  unmapsInvalidated: number;
  /** Guest timestamps of the first and last event. */
  firstSeconds?: number;
  lastSeconds?: number;
  /** Domains at the end: devices, maps and unmaps written, live mappings. */
  domains: Array<{ did: number; devices: string[]; maps: number; unmaps: number; live: number; lazy: boolean }>;
  /** With a QEMU log: how the dma ops were placed (`QemuDmaPlacer`). */
  dma?: DmaPlacementStats;
}

/** The guest's invalidation descriptors in order, with where each fell among the ops (for `--qemu-log`). */
export interface QiAnchors {
  qw0: bigint[];
  qw1: bigint[];
  /** Index into `ops` of the first op after the descriptor. */
  pos: number[];
  /** Input line of each descriptor. */
  line: number[];
}

/** What `FtraceImporter.finish` returns. */
export interface ImportResult {
  /** The workload trace's header: address width, caching mode, RAM, requester ids. */
  header: { aw: 39 | 48 | 57; cm: boolean; ram: bigint; devices: number[] };
  /** The ops in order (`dma` ops added by `QemuDmaPlacer`). */
  ops: WorkloadOp[];
  stats: ImportStats;
  qi: QiAnchors;
  /** The leading comment (without `# `). */
  comment: string;
  /** Every attribution, with `audit: true`. */
  audit?: Attribution[];
}

/** A domain as the importer tracks it. */
interface Domain {
  did: number;
  devices: Set<number>;
  live: PageRanges;
  /**
   * Ranges unmapped since the domain's last domain-selective flush, while
   * the domain is known to be lazy (a flush-queue flush was seen): Linux
   * frees their IOVAs only after that flush, so no map of this domain can
   * reuse them before it.
   */
  quarantine: PageRanges;
  lazy: boolean;
  /** Its unmaps are followed by page-selective invalidations: never lazy, whatever domain flushes it gets. */
  strict: boolean;
  /** Last input line with a map or unmap in this domain (direct mappings aside); 0: none yet. */
  lastLine: number;
  /** Pages of the domain's latest map. */
  lastMap?: [number, number];
  maps: number;
  unmaps: number;
}

/** An event waiting in the look-ahead window, with what later lines told about it. */
interface Pending {
  ev: FtraceEvent;
  /** Domain named by an invalidation (map/unmap) or a flush (attach). */
  did?: number;
  /** A domain-selective IOTLB flush not part of an attach (a flush-queue flush). */
  queueFlush?: boolean;
  /** A page-selective IOTLB invalidation. */
  pageInvalidation?: boolean;
  /** For a map made right before an attach on the same CPU: that attach. */
  beforeAttach?: Pending;
  /**
   * A soft hint (lazy guests): the domain of the first flush-queue flush
   * after this unmap, or after the unmap that undoes this map.
   */
  hint?: number;
  /** For an unmap: the waiting map that starts where it starts (the map it undoes). */
  undoes?: Pending;
  /** Read past `maxEvents`: look-ahead only, never committed. */
  beyond?: boolean;
  /** For an attach, once committed: its domain and whether the attach created it. */
  attached?: { did: number; created: boolean };
}

/** Per-CPU state of the flush Linux issues before an attach (CM=1: device context invalidation, then domain IOTLB). */
interface AttachFlush {
  sid?: number;
  ccDid?: number;
  dsiDid?: number;
}

const PAGE = 4096n;
const WARNING_TEXT: Readonly<Record<string, string>> = {
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

/**
 * Imports ftrace events into a workload trace, one line at a time
 * (`pushLine`), then `finish`. Events wait in a look-ahead window of
 * `window` events for the invalidation that names their domain, then are
 * committed in input order.
 */
export class FtraceImporter {
  private readonly opts: Required<Pick<ImportOptions, 'aw' | 'firstDid' | 'window'>> & ImportOptions;
  private readonly counts = newParseCounts();
  private lineNo = 0;
  private events = 0;
  private stopped = false;
  /** The parse counts when `maxEvents` was reached; later events are look-ahead only. */
  private atLimit?: FtraceParseCounts;
  private beyond = 0;
  private unit?: { name: string; line: number };
  private readonly buffer: Pending[] = [];
  private head = 0;
  private readonly attachFlush = new Map<number, AttachFlush>();
  /** Unmaps read since the last flush-queue flush of any domain. */
  private sinceQueueFlush: Pending[] = [];
  /** Maps waiting in the window, by first page, not yet linked to their unmap. */
  private readonly openMaps = new Map<number, Pending[]>();
  /** Domains an invalidation or flush has named so far (look-ahead knowledge of which domains do DMA). */
  private readonly seenActive = new Set<number>();

  private readonly domains = new Map<number, Domain>();
  private readonly groupOf = new Map<number, number>();
  private readonly groups = new Map<string, { did?: number; attached: Set<number> }>();
  private readonly deviceDomain = new Map<number, number>();
  private readonly devices = new Set<number>();
  private nextDid: number;
  /** The domain each actor (see `actor`) used last. */
  private readonly lastOfActor = new Map<string, number>();
  private maxGpaEnd = 0n;
  private readonly ops: WorkloadOp[] = [];
  private readonly qi: QiAnchors = { qw0: [], qw1: [], pos: [], line: [] };
  private readonly audit?: Attribution[];
  private readonly stats: ImportStats = {
    lines: 0, events: 0, unknownEvents: {}, otherLines: 0,
    read: { map: 0, unmap: 0, attach: 0, group: 0, qi: 0, mark: 0, detach: 0, fault: 0 },
    written: { attach: 0, map: 0, unmap: 0, dma: 0 }, mapBytes: 0, unmapBytes: 0,
    attribution: { map: {}, unmap: {}, attach: {} }, attachInference: { checked: 0, agreed: 0 },
    warnings: {}, invalidations: { page: 0, domain: 0, global: 0, other: 0 }, mapsInvalidated: 0, unmapsInvalidated: 0, domains: [],
  };

  constructor(opts: ImportOptions = {}) {
    this.opts = { ...opts, aw: opts.aw ?? 48, firstDid: opts.firstDid ?? 2, window: opts.window ?? 4096 };
    if (![39, 48, 57].includes(this.opts.aw)) throw new VtdError('ARGUMENT', `import: aw must be 39, 48 or 57, got ${this.opts.aw}`);
    if (!Number.isInteger(this.opts.window) || this.opts.window < 1) throw new VtdError('ARGUMENT', 'import: window must be a positive integer');
    if (!Number.isInteger(this.opts.firstDid) || this.opts.firstDid < 1 || this.opts.firstDid > 0xffff) throw new VtdError('ARGUMENT', 'import: firstDid must be 1..65535');
    this.nextDid = this.opts.firstDid;
    if (opts.audit) this.audit = [];
    for (const a of opts.attach ?? []) this.attachDevice(a.sid, a.domain, 0, 'flush', undefined);
  }

  /**
   * Feeds one input line. Returns false when no more lines are wanted: once
   * `maxEvents` events were read and a window of look-ahead past them (read
   * only for the invalidations and flushes that name domains) is full.
   */
  pushLine(text: string): boolean {
    if (this.stopped) return false;
    let ev: FtraceEvent | undefined;
    try {
      ev = parseFtraceLine(text, ++this.lineNo, this.counts);
    } catch (e) {
      if (this.atLimit === undefined) throw e;
      this.stopped = true; // past the limit, a bad line only ends the look-ahead
      return false;
    }
    if (ev !== undefined) this.pushEvent(ev);
    return !this.stopped;
  }

  /** Feeds one parsed event (events must arrive in input order). */
  pushEvent(ev: FtraceEvent): void {
    if (this.stopped) return;
    const p: Pending = { ev };
    if (this.atLimit !== undefined) {
      p.beyond = true;
      if (++this.beyond >= this.opts.window) this.stopped = true;
    } else {
      this.events++;
      this.stats.firstSeconds ??= ev.seconds;
      this.stats.lastSeconds = ev.seconds;
      if (ev.event in this.stats.read) this.stats.read[ev.event as keyof ImportStats['read']]++;
    }
    switch (ev.event) {
      case 'map':
      case 'unmap':
        this.attachFlush.delete(ev.cpu);
        this.link(p, ev);
        break;
      case 'qi':
        this.lookAtDescriptor(p, ev);
        break;
    }
    if (this.sinceQueueFlush.length > this.opts.window) this.sinceQueueFlush.splice(0, this.sinceQueueFlush.length - this.opts.window);
    if (ev.event === 'attach') this.buffer.push(p, ...this.takeMapsBeforeAttach(p, ev));
    else this.buffer.push(p);
    while (this.buffer.length - this.head > this.opts.window) this.commitOldest();
    if (this.atLimit === undefined && this.opts.maxEvents !== undefined && this.events >= this.opts.maxEvents) {
      this.atLimit = { ...this.counts, unknown: { ...this.counts.unknown } };
    }
  }

  /** Commits what is still waiting and returns the workload trace. */
  finish(): ImportResult {
    while (this.head < this.buffer.length) this.commitOldest();
    const s = this.stats;
    const counts = this.atLimit ?? this.counts;
    s.lines = counts.lines;
    s.events = this.events;
    s.unknownEvents = { ...counts.unknown };
    s.otherLines = counts.other;
    s.domains = [...this.domains.values()].sort((a, b) => a.did - b.did).map((d) => ({
      did: d.did, devices: [...d.devices].map(formatRid), maps: d.maps, unmaps: d.unmaps, live: d.live.count, lazy: d.lazy,
    }));
    const maps = s.read.map;
    const cm = this.opts.cm ?? (maps > 0 && s.mapsInvalidated * 2 > maps);
    let ram = this.opts.ram;
    if (ram === undefined) {
      ram = 0x10000000n;
      while (ram < 2n * this.maxGpaEnd) ram *= 2n;
    } else if (ram < this.maxGpaEnd) {
      this.warn('ram-below-mappings', 0);
    }
    const result: ImportResult = {
      header: { aw: this.opts.aw, cm, ram, devices: [...this.devices] },
      ops: this.ops, stats: s, qi: this.qi, comment: '',
    };
    if (this.audit) result.audit = this.audit;
    result.comment = describeImport(result, this.opts.source, this.opts.cm === undefined);
    return result;
  }

  // -- stage 1: the look-ahead window

  private lookAtDescriptor(p: Pending, ev: FtraceEvent & { event: 'qi' }): void {
    if (this.unit === undefined) this.unit = { name: ev.unit, line: ev.line };
    else if (ev.unit !== this.unit.name) {
      throw new VtdError('UNSUPPORTED', `qi_submit names a second remapping unit ${ev.unit} (the first was ${this.unit.name}, line ${this.unit.line}); a vtd trace models one unit, and ftrace's map and unmap events do not say which unit they belong to`, { unit: ev.unit }, ev.line);
    }
    if (this.opts.ignoreInvalidations) return;
    const d = decodeDescriptor(ev.qw[0], ev.qw[1]);
    const flush = this.attachFlush.get(ev.cpu);
    switch (d.kind) {
      case 'iotlb-page':
        p.pageInvalidation = true;
        this.seenActive.add(d.did);
        this.annotate(ev, d.did, d.firstPage, d.firstPage + d.pages);
        this.attachFlush.delete(ev.cpu);
        break;
      case 'iotlb-domain':
        if (flush?.sid !== undefined && flush.dsiDid === undefined) flush.dsiDid = d.did;
        else {
          p.queueFlush = true;
          p.did = d.did;
          this.seenActive.add(d.did);
          this.attachFlush.delete(ev.cpu);
          for (const u of this.sinceQueueFlush) {
            u.hint ??= d.did;
            if (u.undoes !== undefined) u.undoes.hint ??= d.did;
          }
          this.sinceQueueFlush = [];
        }
        break;
      case 'cc-device':
        this.attachFlush.set(ev.cpu, { sid: d.sid, ccDid: d.did });
        break;
      case 'iotlb-global':
      case 'other':
        this.attachFlush.delete(ev.cpu);
        break;
    }
  }

  /**
   * Links an unmap to the waiting map that starts where it starts (the map
   * it undoes, most likely), and remembers unmaps until the next
   * flush-queue flush: Linux arms a domain's flush-queue timer (10 ms) when
   * an unmap queues an IOVA, so that flush follows unmaps of its domain.
   */
  private link(p: Pending, ev: FtraceEvent & { event: 'map' | 'unmap' }): void {
    const first = Number(ev.iova / PAGE);
    if (ev.event === 'map') {
      const list = this.openMaps.get(first);
      if (list) list.push(p);
      else this.openMaps.set(first, [p]);
      return;
    }
    this.sinceQueueFlush.push(p);
    const list = this.openMaps.get(first);
    const m = list?.pop();
    if (m !== undefined) {
      p.undoes = m;
      if (list!.length === 0) this.openMaps.delete(first);
    }
  }

  /**
   * Gives the invalidation's domain to the maps and unmaps it covers: the
   * newest waiting events of the same CPU whose range lies inside the
   * invalidated range, skipping events already named (an interrupt's
   * map or unmap and its invalidation can nest inside another's) and
   * stopping at the first one outside it. If none on the CPU, the same task
   * (it may have migrated between the event and its invalidation).
   */
  private annotate(qi: FtraceWhere, did: number, firstPage: number, endPage: number): void {
    const match = (sameCpu: boolean): number => {
      let named = 0, seen = 0;
      for (let i = this.buffer.length - 1; i >= this.head && seen < 64; i--) {
        const p = this.buffer[i], e = p.ev;
        if (e.event !== 'map' && e.event !== 'unmap') continue;
        if (sameCpu ? e.cpu !== qi.cpu : e.pid !== qi.pid) continue;
        seen++;
        if (p.did !== undefined) continue;
        const s = Number(e.iova / PAGE), n = Number((e.iova + e.size + PAGE - 1n) / PAGE);
        if (s < firstPage || n > endPage) break;
        p.did = did;
        named++;
      }
      return named;
    };
    if (match(true) === 0 && (qi.pid === 0 || match(false) === 0) && this.atLimit === undefined) this.warn('invalidation-unmatched', qi.line);
  }

  /**
   * An attach: the flush just before it on the same CPU (device context
   * invalidation for this device, then a domain-selective IOTLB
   * invalidation) names its domain. Maps made on the same CPU right before
   * it (nothing but descriptors between) are moved after it: Linux makes a
   * group's direct mappings (RMRR, the ISA bridge's 16 MiB identity map)
   * just before attaching the group's devices to the new domain. Returns
   * those maps, to be queued after the attach.
   */
  private takeMapsBeforeAttach(p: Pending, ev: FtraceWhere & { device: PciDevice | string }): Pending[] {
    const f = this.attachFlush.get(ev.cpu);
    this.attachFlush.delete(ev.cpu);
    if (typeof ev.device !== 'string' && f?.sid === ev.device.sid) {
      if (f.dsiDid !== undefined && f.dsiDid !== 0) p.did = f.dsiDid;
      else if (f.ccDid !== undefined && f.ccDid !== 0) p.did = f.ccDid;
    }
    const moved: Pending[] = [];
    for (let i = this.buffer.length - 1; i >= this.head; i--) {
      const q = this.buffer[i], e = q.ev;
      if (e.cpu !== ev.cpu || e.event === 'qi') continue;
      if (e.event !== 'map' || q.did !== undefined || q.beforeAttach !== undefined) break;
      q.beforeAttach = p;
      moved.unshift(q);
      this.buffer.splice(i, 1);
    }
    return moved;
  }

  // -- stage 2: commit in order

  private commitOldest(): void {
    const p = this.buffer[this.head++];
    if (this.head > 4096 && this.head * 2 > this.buffer.length) {
      this.buffer.splice(0, this.head);
      this.head = 0;
    }
    if (!p.beyond) this.commit(p);
  }

  private warn(kind: string, line: number): void {
    const w = (this.stats.warnings[kind] ??= { count: 0, firstLine: line });
    w.count++;
  }

  private record(event: Attribution['event'], line: number, rule: AttributionRule, domain?: number): void {
    const t = this.stats.attribution[event];
    t[rule] = (t[rule] ?? 0) + 1;
    if (this.audit) this.audit.push(domain === undefined ? { line, event, rule } : { line, event, rule, domain });
  }

  private commit(p: Pending): void {
    const ev = p.ev;
    switch (ev.event) {
      case 'group':
        if (this.pciDevice(ev.device, ev.line) !== undefined) {
          const sid = (ev.device as PciDevice).sid;
          this.groupOf.set(sid, ev.group);
          this.devices.add(sid);
        }
        return;
      case 'attach': {
        if (this.pciDevice(ev.device, ev.line) === undefined) return;
        const sid = (ev.device as PciDevice).sid;
        p.attached = this.attachDevice(sid, p.did, ev.line, p.did !== undefined ? 'flush' : 'inferred', ev);
        return;
      }
      case 'map': {
        const first = Number(ev.iova / PAGE), list = this.openMaps.get(first);
        const at = list?.indexOf(p) ?? -1;
        if (at >= 0) {
          list!.splice(at, 1);
          if (list!.length === 0) this.openMaps.delete(first);
        }
        this.commitMap(p, ev);
        return;
      }
      case 'unmap':
        this.commitUnmap(p, ev);
        return;
      case 'qi':
        this.qi.qw0.push(ev.qw[0]);
        this.qi.qw1.push(ev.qw[1]);
        this.qi.pos.push(this.ops.length);
        this.qi.line.push(ev.line);
        this.commitDescriptor(p, ev);
        return;
      case 'mark':
        this.ops.push({ op: 'note', text: `line ${ev.line} (${ev.seconds.toFixed(6)} s): ${ev.text}`, line: ev.line });
        return;
      case 'detach':
        this.warn('detach', ev.line);
        return;
      case 'fault':
        this.warn('io-page-fault', ev.line);
        return;
      case 'ungroup':
        return;
    }
  }

  private pciDevice(d: PciDevice | string, line: number): PciDevice | undefined {
    if (typeof d === 'string') {
      this.warn('non-pci-device', line);
      return undefined;
    }
    if (d.segment !== 0) {
      throw new VtdError('UNSUPPORTED', `device ${d.segment.toString(16).padStart(4, '0')}:${formatRid(d.sid)} is in PCI segment ${d.segment}; a vtd trace models one remapping unit on segment 0`, {}, line);
    }
    return d;
  }

  /**
   * Attaches a device. Without a flush naming the domain, the inference rule
   * (Linux 6.1): devices of one IOMMU group share one domain; a group's
   * first attach takes the next domain id (ids handed out in attach order,
   * from `firstDid`, above any id a flush named); a device attached again
   * while already in its group's domain starts a new domain for the group.
   */
  private attachDevice(sid: number, flushDid: number | undefined, line: number, rule: AttributionRule, ev: FtraceEvent | undefined): { did: number; created: boolean } {
    const gid = this.groupOf.get(sid);
    const key = gid !== undefined ? `g${gid}` : `d${sid}`;
    let group = this.groups.get(key);
    if (!group) this.groups.set(key, (group = { attached: new Set() }));
    const joins = group.did !== undefined && !group.attached.has(sid);
    const inferred = joins ? group.did! : this.nextDid;
    const did = flushDid ?? inferred;
    if (ev !== undefined && flushDid !== undefined) {
      this.stats.attachInference.checked++;
      if (flushDid === inferred) this.stats.attachInference.agreed++;
    }
    if (group.did === did && !group.attached.has(sid)) group.attached.add(sid);
    else {
      group.did = did;
      group.attached = new Set([sid]);
    }
    this.nextDid = Math.max(this.nextDid, did + 1);
    const created = !this.domains.has(did);
    const d = this.domain(did);
    const old = this.deviceDomain.get(sid);
    if (old !== undefined && old !== did) this.domains.get(old)?.devices.delete(sid);
    d.devices.add(sid);
    this.deviceDomain.set(sid, did);
    this.devices.add(sid);
    this.ops.push({ op: 'attach', sid, domain: did, line });
    this.stats.written.attach++;
    if (ev !== undefined) this.record('attach', line, rule, did);
    return { did, created };
  }

  private domain(did: number): Domain {
    let d = this.domains.get(did);
    if (!d) {
      d = { did, devices: new Set(), live: new PageRanges(), quarantine: new PageRanges(), lazy: false, strict: false, lastLine: 0, maps: 0, unmaps: 0 };
      this.domains.set(did, d);
    }
    return d;
  }

  private commitDescriptor(p: Pending, ev: FtraceEvent & { event: 'qi' }): void {
    if (p.pageInvalidation) this.stats.invalidations.page++;
    else if (p.queueFlush) {
      this.stats.invalidations.domain++;
      const d = this.domains.get(p.did!);
      if (d === undefined) this.warn('flush-of-unknown-domain', ev.line);
      else {
        // A strict guest falls back to a domain flush for a range too large for a
        // page-selective one; only a domain whose unmaps go unflushed is lazy.
        d.lazy = !d.strict;
        d.quarantine.clear();
      }
    } else if (!this.opts.ignoreInvalidations && decodeDescriptor(ev.qw[0], ev.qw[1]).kind === 'iotlb-global') {
      this.stats.invalidations.global++;
      for (const d of this.domains.values()) d.quarantine.clear();
    } else this.stats.invalidations.other++;
  }

  /** Checks size and alignment; returns [first page, end page) or undefined (warned). */
  private pages(ev: { line: number; iova: bigint }, size: bigint): [number, number] | undefined {
    if (size === 0n) {
      this.warn('zero-size', ev.line);
      return undefined;
    }
    if (ev.iova % PAGE !== 0n || size % PAGE !== 0n) {
      this.warn('unaligned', ev.line);
      return undefined;
    }
    if (ev.iova + size > 1n << BigInt(this.opts.aw)) {
      throw new VtdError('TRACE', `iova range [0x${ev.iova.toString(16)}, 0x${(ev.iova + size).toString(16)}) is beyond the ${this.opts.aw}-bit address width (--aw 57 allows more)`, {}, ev.line);
    }
    return [Number(ev.iova / PAGE), Number((ev.iova + size) / PAGE)];
  }

  private commitMap(p: Pending, ev: FtraceEvent & { event: 'map' }): void {
    const r = this.pages(ev, ev.size);
    if (r === undefined || ev.paddr % PAGE !== 0n) {
      if (r !== undefined) this.warn('unaligned', ev.line);
      return;
    }
    const [s, e] = r;
    let d: Domain | undefined;
    let rule: AttributionRule;
    if (p.did !== undefined) {
      d = this.domain(p.did);
      if (d.devices.size === 0) this.warn('domain-without-device', ev.line);
      rule = 'invalidation';
      this.stats.mapsInvalidated++;
    } else if (p.beforeAttach?.attached?.created) {
      d = this.domain(p.beforeAttach.attached.did);
      rule = 'direct';
    } else {
      const cands = [...this.domains.values()].filter((x) => !x.live.overlaps(s, e) && !(x.lazy && x.quarantine.overlaps(s, e)));
      rule = cands.length === 1 ? 'only-candidate' : 'heuristic';
      d = cands.length === 0 ? undefined : this.rankCandidates(cands, p, ev, s, e)[0];
    }
    if (d === undefined) {
      this.warn('map-unattributable', ev.line);
      this.record('map', ev.line, 'dropped');
      return;
    }
    for (const [ps, pe] of d.live.pieces(s, e)) {
      this.warn('map-over-live', ev.line);
      this.emitUnmap(d, ps, pe, ev.line);
    }
    d.live.add(s, e);
    d.lastMap = [s, e];
    d.maps++;
    // A direct mapping is no sign of DMA-API use: it does not make the domain active.
    if (rule !== 'direct') d.lastLine = ev.line;
    const len = Number(ev.size);
    this.ops.push({ op: 'map', domain: d.did, iova: ev.iova, gpa: ev.paddr, len, perm: 'rw', line: ev.line });
    this.stats.written.map++;
    this.stats.mapBytes += len;
    if (ev.paddr + ev.size > this.maxGpaEnd) this.maxGpaEnd = ev.paddr + ev.size;
    this.record('map', ev.line, rule, d.did);
    this.learn(ev, d.did);
  }

  private commitUnmap(p: Pending, ev: FtraceEvent & { event: 'unmap' }): void {
    let size = ev.unmappedSize;
    if (size < ev.size) this.warn('unmap-short', ev.line);
    else size = ev.size;
    const r = this.pages(ev, size);
    if (r === undefined) return;
    const [s, e] = r;
    let d: Domain | undefined;
    let rule: AttributionRule;
    if (p.did !== undefined) {
      d = this.domain(p.did);
      if (d.devices.size === 0) this.warn('domain-without-device', ev.line);
      rule = 'invalidation';
      this.stats.unmapsInvalidated++;
      d.strict = true;
      d.lazy = false;
      d.quarantine.clear();
    } else {
      const all = [...this.domains.values()];
      let cands = all.filter((x) => x.live.covered(s, e) === e - s);
      rule = cands.length === 1 ? 'only-candidate' : 'heuristic';
      if (cands.length === 0) {
        // Partly live somewhere: the domain holding most of it.
        const cover = all.map((x) => [x, x.live.covered(s, e)] as const).filter(([, n]) => n > 0);
        const best = Math.max(0, ...cover.map(([, n]) => n));
        cands = cover.filter(([, n]) => n === best).map(([x]) => x);
        rule = 'heuristic';
      }
      d = cands.length === 0 ? undefined : cands.length === 1 ? cands[0] : this.rankCandidates(cands, p, ev, s, e)[0];
    }
    const pieces = d?.live.pieces(s, e) ?? [];
    if (d === undefined || pieces.length === 0) {
      this.warn('unmap-not-live', ev.line);
      this.record('unmap', ev.line, 'dropped');
      return;
    }
    if (pieces.length !== 1 || pieces[0][0] !== s || pieces[0][1] !== e) this.warn('unmap-partly-live', ev.line);
    for (const [ps, pe] of pieces) this.emitUnmap(d, ps, pe, ev.line);
    d.unmaps++;
    this.record('unmap', ev.line, rule, d.did);
    this.learn(ev, d.did);
  }

  private emitUnmap(d: Domain, s: number, e: number, line: number): void {
    d.live.remove(s, e);
    if (d.lazy) {
      d.quarantine.remove(s, e);
      d.quarantine.add(s, e);
    }
    d.lastLine = line;
    const len = (e - s) * 4096;
    this.ops.push({ op: 'unmap', domain: d.did, iova: BigInt(s) * PAGE, len, line });
    this.stats.written.unmap++;
    this.stats.unmapBytes += len;
  }

  // -- the heuristic

  /** The interrupt context of an event: flags column 3 (h hardirq, H hardirq in softirq, s softirq, . none), ? unknown. */
  private static irq(ev: FtraceWhere): string {
    return ev.flags !== undefined && ev.flags.length >= 3 ? ev.flags[2] : '?';
  }

  /**
   * Who did the event: the task in process context; in interrupt context
   * the task is whichever one was interrupted, so the CPU and context.
   */
  private static actor(ev: FtraceWhere): string {
    const irq = FtraceImporter.irq(ev);
    return irq === '.' || irq === '?' ? `p${ev.pid}` : `${irq}${ev.cpu}`;
  }

  private learn(ev: FtraceWhere, did: number): void {
    this.lastOfActor.set(FtraceImporter.actor(ev), did);
  }

  /** For an actor with no history yet: the first hint among its events waiting in the window. */
  private upcomingHint(actor: string): number | undefined {
    for (let i = this.head; i < this.buffer.length; i++) {
      const q = this.buffer[i];
      if (q.hint !== undefined && (q.ev.event === 'map' || q.ev.event === 'unmap') && FtraceImporter.actor(q.ev) === actor) return q.hint;
    }
    return undefined;
  }

  /**
   * Orders candidate domains for a map or unmap no invalidation named,
   * best first, by these keys in turn (docs/workloads/import.md measures
   * them):
   * 1. active: domains known to do DMA (an invalidation or flush named
   *    them, look-ahead included, or they hold or held mappings);
   * 2. bounds (unmap): the range starts and ends on map boundaries there
   *    (an unmap undoes whole maps);
   * 3. actor: the domain this task (process context) or this CPU's
   *    interrupt context (hardirq, softirq) used last; for an actor seen
   *    for the first time, the first hint (4) among its waiting events;
   * 4. hint (lazy guests): the domain of the first flush-queue flush after
   *    the unmap (for a map: after the unmap that undoes it);
   * 5. adjacent (map): the range adjoins the domain's latest map (Linux's
   *    IOVA allocator hands out contiguous ranges, downward);
   * 6. recent: the domain used most recently; then the lower domain id.
   */
  private rankCandidates(cands: Domain[], p: Pending, ev: FtraceEvent & { event: 'map' | 'unmap' }, s: number, e: number): Domain[] {
    const actor = FtraceImporter.actor(ev);
    const actorDid = this.lastOfActor.get(actor) ?? this.upcomingHint(actor);
    const hint = p.hint;
    const keys = (d: Domain): number[] => [
      this.seenActive.has(d.did) || d.lastLine > 0 ? 1 : 0,
      ev.event === 'unmap' && d.live.bounds(s, e) ? 1 : 0,
      actorDid === d.did ? 1 : 0,
      hint === d.did ? 1 : 0,
      ev.event === 'map' && d.lastMap !== undefined && (d.lastMap[0] === e || d.lastMap[1] === s) ? 1 : 0,
      d.lastLine,
      -d.did,
    ];
    const scored = cands.map((d) => ({ d, k: keys(d) }));
    scored.sort((x, y) => {
      for (let i = 0; i < x.k.length; i++) if (x.k[i] !== y.k[i]) return y.k[i] - x.k[i];
      return 0;
    });
    return scored.map((x) => x.d);
  }
}

// ---------------------------------------------------------------------------
// Output

/** The workload trace's header line. */
export function formatHeader(h: ImportResult['header']): string {
  return writeHeader({ aw: h.aw, cm: h.cm, ram: h.ram }, h.devices);
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

function countsText(c: Partial<Record<string, number>>): string {
  const parts = Object.entries(c).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`);
  return parts.length ? parts.join(', ') : 'none';
}

function warningsText(w: ImportStats['warnings']): string {
  const parts = Object.entries(w).map(([k, v]) => `${k} ${v.count} (first at line ${v.firstLine})`);
  return parts.length ? parts.join(', ') : 'none';
}

/** The one-line description written as the trace's leading comment. */
function describeImport(r: ImportResult, source: string | undefined, cmInferred: boolean): string {
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
    `  header: aw ${r.header.aw}, cm ${r.header.cm}, ram ${hex(r.header.ram)}, ${r.header.devices.length} devices`,
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

// ---------------------------------------------------------------------------
// DMA from a QEMU log

/** How `QemuDmaPlacer` placed QEMU's translations. */
export interface DmaPlacementStats {
  /** `vtd_dmar_translate` lines read. */
  translations: number;
  /** QEMU's non-wait descriptors that matched the guest's qi_submit sequence. */
  anchors: number;
  /** dma ops written. */
  placed: number;
  /** Placed in their window in QEMU's order, where the mapping holds. */
  inWindow: number;
  /** Placed in their window, but before an earlier translation. */
  reordered: number;
  /** Placed in the window before or after (QEMU's threads log a few microseconds out of order). */
  neighbour: number;
  /** No position near their window where the device's domain maps the iova to QEMU's gpa: dropped. */
  unplaced: number;
  /** After the guest's last traced descriptor (guest tracing had stopped): dropped. */
  afterGuest: number;
  /** Of a device the guest trace never attached: dropped. */
  unknownDevice: number;
}

const QEMU_DESC = /:vtd_inv_desc invalidate desc type (\S+) high (0x[0-9a-fA-F]+) low (0x[0-9a-fA-F]+)\s*$/;
const QEMU_TRANSLATE = /:vtd_dmar_translate dev ([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-9a-fA-F]{2}) iova (0x[0-9a-fA-F]+) -> gpa (0x[0-9a-fA-F]+) mask (0x[0-9a-fA-F]+)\s*$/;

/**
 * Places the DMA translations of a QEMU `-trace vtd_*` log of the same run
 * into an import's op list, as `dma` ops.
 *
 * The anchor: the guest's qi_submit descriptors (QW0, QW1) equal QEMU's
 * non-wait `vtd_inv_desc` descriptors (low, high), in order. A translation
 * QEMU logged between its descriptors k-1 and k happened, in the guest's
 * timeline, between qi_submit k-1 and k; within that window it is placed at
 * the earliest position, not before the previous translation, where the
 * device's domain maps the iova to the gpa QEMU logged (so a replay gives
 * QEMU's answer). Failing that: anywhere in the window, then in the windows
 * either side; failing that, it is dropped and counted.
 */
export class QemuDmaPlacer {
  private lineNo = 0;
  private desc = 0;
  private readonly guestDescs: number;
  private readonly sids: number[] = [];
  private readonly iovas: bigint[] = [];
  private readonly gpas: bigint[] = [];
  private readonly windows: number[] = [];
  private readonly lines: number[] = [];
  readonly stats: DmaPlacementStats = { translations: 0, anchors: 0, placed: 0, inWindow: 0, reordered: 0, neighbour: 0, unplaced: 0, afterGuest: 0, unknownDevice: 0 };

  constructor(private readonly result: ImportResult) {
    this.guestDescs = result.qi.qw0.length;
  }

  /** Feeds one line of the QEMU log. */
  pushLine(text: string): void {
    const line = ++this.lineNo;
    if (text.includes(':vtd_inv_desc ')) {
      const m = QEMU_DESC.exec(text);
      if (!m) return; // the per-type detail events share the prefix
      if (m[1] === 'wait') return;
      const k = this.desc++;
      if (k >= this.guestDescs) return;
      const qw0 = this.result.qi.qw0[k], qw1 = this.result.qi.qw1[k];
      if (BigInt(m[3]) !== qw0 || BigInt(m[2]) !== qw1) {
        throw new VtdError('TRACE', `QEMU log line ${line}: descriptor ${k} (low ${m[3]} high ${m[2]}) differs from the guest's qi_submit ${k} at ftrace line ${this.result.qi.line[k]} (${hex(qw0)} ${hex(qw1)}); the two logs must be of the same run, both from boot`, { descriptor: k }, line);
      }
      this.stats.anchors++;
      return;
    }
    if (!text.includes(':vtd_dmar_translate ')) return;
    const m = QEMU_TRANSLATE.exec(text);
    if (!m) throw new VtdError('TRACE', `QEMU log line ${line}: expected "vtd_dmar_translate dev BB:DD.FF iova 0x... -> gpa 0x... mask 0x...", got ${JSON.stringify(text.slice(0, 160))}`, {}, line);
    this.stats.translations++;
    const dev = parseInt(m[2], 16), fn = parseInt(m[3], 16);
    if (dev > 0x1f || fn > 7) throw new VtdError('TRACE', `QEMU log line ${line}: device ${m[1]}:${m[2]}.${m[3]} is not a PCI device/function`, {}, line);
    if (this.desc > this.guestDescs) {
      this.stats.afterGuest++;
      return;
    }
    this.sids.push((parseInt(m[1], 16) << 8) | (dev << 3) | fn);
    this.iovas.push(BigInt(m[4]));
    this.gpas.push(BigInt(m[5]));
    this.windows.push(this.desc);
    this.lines.push(line);
  }

  /** Places the translations read and inserts the dma ops into the result. */
  finish(): DmaPlacementStats {
    const ops = this.result.ops, pos = this.result.qi.pos, n = this.guestDescs;
    const st = this.stats;
    // Device -> domain over positions, from the attach ops.
    const attaches = new Map<number, Array<[number, number]>>();
    ops.forEach((o, i) => {
      if (o.op === 'attach') (attaches.get(o.sid) ?? attaches.set(o.sid, []).get(o.sid)!).push([i + 1, o.domain]);
    });
    const domainAt = (sid: number, p: number): number | undefined => {
      let d: number | undefined;
      for (const [from, did] of attaches.get(sid) ?? []) if (from <= p) d = did;
      return d;
    };
    // Validity intervals of the translated pages only: domain -> page -> [start, end, gpa page]*.
    const wanted = new Set(this.iovas.map((v) => Number(v / PAGE)));
    const valid = new Map<number, Map<number, number[]>>();
    const open = new Map<number, Map<number, number>>();
    const pagesOf = (iova: bigint, len: number): number[] => {
      const out: number[] = [];
      const first = Number(iova / PAGE), count = Math.ceil(len / 4096);
      if (count < wanted.size) {
        for (let pg = first; pg < first + count; pg++) if (wanted.has(pg)) out.push(pg);
      } else for (const pg of wanted) if (pg >= first && pg < first + count) out.push(pg);
      return out;
    };
    ops.forEach((o, i) => {
      if (o.op === 'map') {
        let v = valid.get(o.domain), op = open.get(o.domain);
        if (!v) valid.set(o.domain, (v = new Map()));
        if (!op) open.set(o.domain, (op = new Map()));
        const gpa0 = Number(o.gpa / PAGE), iova0 = Number(o.iova / PAGE);
        for (const pg of pagesOf(o.iova, o.len)) {
          const list = v.get(pg) ?? v.set(pg, []).get(pg)!;
          op.set(pg, list.length);
          list.push(i + 1, ops.length + 1, gpa0 + (pg - iova0));
        }
      } else if (o.op === 'unmap') {
        const v = valid.get(o.domain), op = open.get(o.domain);
        if (!v || !op) return;
        for (const pg of pagesOf(o.iova, o.len)) {
          const at = op.get(pg);
          if (at === undefined) continue;
          v.get(pg)![at + 1] = i + 1;
          op.delete(pg);
        }
      }
    });
    /** Earliest (or latest) position in [lo, hi] where the page maps to gpaPage. */
    const find = (list: number[] | undefined, gpaPage: number, lo: number, hi: number, latest: boolean): number | undefined => {
      if (!list || lo > hi) return undefined;
      let best: number | undefined;
      for (let j = 0; j < list.length; j += 3) {
        if (list[j + 2] !== gpaPage) continue;
        const a = Math.max(lo, list[j]), b = Math.min(hi, list[j + 1] - 1);
        if (a > b) continue;
        const q = latest ? b : a;
        if (best === undefined || (latest ? q > best : q < best)) best = q;
      }
      return best;
    };
    const bound = (k: number): [number, number] => [k <= 0 ? 0 : pos[Math.min(k, n) - 1], k >= n ? ops.length : pos[k]];
    const placed: Array<{ at: number; op: WorkloadOp }> = [];
    let last = 0;
    for (let t = 0; t < this.sids.length; t++) {
      const sid = this.sids[t], k = this.windows[t];
      const since = attaches.get(sid)?.[0]?.[0];
      if (since === undefined) {
        st.unknownDevice++;
        continue;
      }
      // Never before the device's first attach (its context entry is not present there).
      const [lo, hi] = bound(k).map((b) => Math.max(b, since));
      const did = domainAt(sid, lo)!;
      const list = valid.get(did)?.get(Number(this.iovas[t] / PAGE));
      const gpaPage = Number(this.gpas[t] / PAGE);
      let at = find(list, gpaPage, Math.max(lo, last), hi, false);
      if (at !== undefined) st.inWindow++;
      else if ((at = find(list, gpaPage, lo, Math.min(hi, last), true)) !== undefined) st.reordered++;
      else {
        const plo = Math.max(since, bound(k - 1)[0]), nhi = Math.max(since, bound(k + 1)[1]);
        const before = find(list, gpaPage, plo, lo, true), after = find(list, gpaPage, hi, nhi, false);
        at = before === undefined ? after : after === undefined ? before : lo - before <= after - hi ? before : after;
        if (at === undefined) {
          st.unplaced++;
          continue;
        }
        st.neighbour++;
      }
      last = Math.max(last, at);
      placed.push({ at, op: { op: 'dma', sid, iova: this.iovas[t], len: 4, dir: 'r', line: this.lines[t], gpa: this.gpas[t] } });
    }
    placed.sort((a, b) => a.at - b.at); // stable: QEMU order at one position
    const merged: WorkloadOp[] = [];
    let j = 0;
    for (let i = 0; i <= ops.length; i++) {
      while (j < placed.length && placed[j].at === i) merged.push(placed[j++].op);
      if (i < ops.length) merged.push(ops[i]);
    }
    ops.length = 0;
    for (const o of merged) ops.push(o);
    st.placed = placed.length;
    this.result.stats.written.dma = placed.length;
    this.result.stats.dma = st;
    this.result.comment += `; dma from the QEMU log: ${st.placed} placed, ${st.unplaced + st.afterGuest + st.unknownDevice} dropped (dir "r", len 4: QEMU does not log them)`;
    return st;
  }
}
