/**
 * The ftrace line parser: the text of /sys/kernel/tracing/trace or of
 * `trace-cmd report`, one line at a time, into the `iommu:*` and
 * `intel_iommu:qi_submit` events the importer (importer.ts) reads. Lines of
 * other events are counted, not parsed; a malformed line of a known event is
 * a `VtdError('TRACE')` naming the line.
 *
 * Browser-safe: no Node modules.
 */
import { VtdError } from '../../errors.js';
import { descType } from '../../guest/layout.js';

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
