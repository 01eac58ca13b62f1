/**
 * The ftrace importer (`vtd import`, docs/workloads/import.md): attributes
 * each map, unmap and attach event (parse.ts) to a domain and writes the
 * workload ops of a trace (docs/trace-format.md).
 *
 * ftrace's map and unmap events name neither the device nor the domain; the
 * invalidation descriptors the driver submits right after them do
 * (page-selective IOTLB invalidation, §7.5: DID in QW0 31:16), so events
 * wait in a bounded look-ahead window for their descriptor before they are
 * committed in order. Events no descriptor names are attributed by the live
 * mappings of each domain and a documented heuristic.
 *
 * Browser-safe: no Node modules. Section numbers (§) are those of the VT-d
 * digest (docs/DESIGN.md, "Sources").
 */
import { VtdError } from '../../errors.js';
import { formatRid } from '../../trace/parse.js';
import { describeImport } from './describe.js';
import { decodeDescriptor, isScalableModeDescriptor } from './descriptor.js';
import { DESC_PIOTLB } from '../../guest/layout.js';
import { PAGE, PageRanges } from './page-ranges.js';
import { newParseCounts, parseFtraceLine, type FtraceEvent, type FtraceParseCounts, type FtraceWhere, type PciDevice } from './parse.js';
import type { DmaPlacementStats } from './qemu-log.js';

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
  /**
   * The workload trace's header: address width, caching mode, RAM, requester
   * ids; scalable mode (`sm`) when the guest submitted a descriptor that
   * exists only there (PASID cache, PASID-based IOTLB), and first-stage
   * tables (`flts`) when it invalidated mappings through PASID-based IOTLB
   * invalidations (Linux does so only for first-stage domains).
   */
  header: { aw: 39 | 48 | 57; cm: boolean; ram: bigint; devices: number[]; sm: boolean; flts: boolean };
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
  /**
   * Scalable mode, per CPU: the domain of the PASID-cache invalidation just
   * submitted. Linux follows one (a PASID entry set up or torn down) with an
   * invalidation of all of that PASID, or of the domain: part of an attach,
   * not a flush-queue flush.
   */
  private readonly pasidEntryFlush = new Map<number, number>();
  /** Scalable-mode descriptors seen (header `sm`); PASID-based IOTLB invalidations of mappings seen (header `flts`). */
  private scalable = false;
  private firstStage = false;
  /**
   * A device-selective context-cache invalidation with DID 0 was seen: Linux
   * issues one after making a context entry present only under caching mode
   * (domain_context_mapping_one; the unit tags cached not-present entries
   * with DID 0). The evidence for caching mode that first-stage domains leave,
   * since Linux does not flush after their maps.
   */
  private contextDid0 = false;
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
    const cm = this.opts.cm ?? ((maps > 0 && s.mapsInvalidated * 2 > maps) || this.contextDid0);
    let ram = this.opts.ram;
    if (ram === undefined) {
      ram = 0x10000000n;
      while (ram < 2n * this.maxGpaEnd) ram *= 2n;
    } else if (ram < this.maxGpaEnd) {
      this.warn('ram-below-mappings', 0);
    }
    const result: ImportResult = {
      header: { aw: this.opts.aw, cm, ram, devices: [...this.devices], sm: this.scalable, flts: this.scalable && this.firstStage },
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
    if (isScalableModeDescriptor(ev.qw[0])) this.scalable = true;
    const d = decodeDescriptor(ev.qw[0], ev.qw[1]);
    const flush = this.attachFlush.get(ev.cpu);
    const pasidIotlb = Number(ev.qw[0] & 0xfn) === DESC_PIOTLB;
    if (d.kind === 'iotlb-domain' && this.pasidEntryFlush.get(ev.cpu) === d.did) {
      // The invalidation after a PASID entry changed (pasid_flush_caches, intel_pasid_tear_down_entry).
      this.pasidEntryFlush.delete(ev.cpu);
      return;
    }
    if (d.kind !== 'pasid-cache') this.pasidEntryFlush.delete(ev.cpu);
    switch (d.kind) {
      case 'pasid-cache':
        if (!d.global) this.pasidEntryFlush.set(ev.cpu, d.did);
        break;
      case 'iotlb-page':
        if (pasidIotlb) this.firstStage = true;
        p.pageInvalidation = true;
        this.seenActive.add(d.did);
        this.annotate(ev, d.did, d.firstPage, d.firstPage + d.pages);
        this.attachFlush.delete(ev.cpu);
        break;
      case 'iotlb-domain':
        if (flush?.sid !== undefined && flush.dsiDid === undefined) flush.dsiDid = d.did;
        else {
          if (pasidIotlb) this.firstStage = true;
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
        if (d.did === 0) this.contextDid0 = true;
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
        // The map an unmap undoes was most likely made in the same domain: a soft hint for it
        // (first-stage and non-caching-mode guests invalidate nothing at map time).
        if (e.event === 'unmap' && p.undoes !== undefined) p.undoes.hint ??= did;
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

  /** The domain a map or unmap's own invalidation names (warned about when no device is in it). */
  private namedDomain(did: number, line: number): Domain {
    const d = this.domain(did);
    if (d.devices.size === 0) this.warn('domain-without-device', line);
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
      d = this.namedDomain(p.did, ev.line);
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
      d = this.namedDomain(p.did, ev.line);
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
