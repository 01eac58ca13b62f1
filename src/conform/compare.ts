/**
 * The differential comparison of one trace: our unit's answers against
 * QEMU's (any source of result lines, so tests can feed altered ones).
 *
 * The trace is replayed through our core op by op, beside a second core with
 * every cache off (the "fresh" answer) and the window tracker. Each op's
 * result lines are compared under the format's rules (results.ts). A
 * difference is either explained by exactly one known deviation
 * (deviations.ts: its detector recognises the shape), or it is NEW. Some
 * deviations show no difference in the compared fields at all but change
 * state (a fault recorded on one side only, a descriptor one side rejects):
 * those "silent" events are found by inspecting our unit after the op.
 *
 * After a classified difference the comparison continues with the
 * deviation's taint (register bits allowed to differ from then on), or stops
 * when the taint is `all` ("diverged at op k: deviation X"). The first NEW
 * difference ends the comparison.
 */
import { Iommu, TranslateResult } from '../iommu.js';
import { faultHex, hex, Replayer } from '../replay/replayer.js';
import { optionsFromHeader, type Trace, type TraceConfig, type TraceOp } from '../trace/parse.js';
import type { QemuVersion } from '../qemu/harness.js';
import { DEVIATIONS, deviation, deviationsFor, type DetectContext, type DwordDiff, type Taint, type WindowCause } from './deviations.js';
import { byIndex, diffResults, faultPresenceDiffers, parseResult, type FieldDiff, type Result } from './results.js';
import { decodeMsi, readIrte, smRidPasidPgtt, walkDma, type DmaPath, type Irte } from './walk.js';
import { WindowTracker } from './window.js';
import { PGTT_PT, RTADDR_TTM_SM, frcdLo, frcdSidDword, frcdTopDword, REG, DESC_WAIT, FSTS_IQE, GCMD_SIRTP, GCMD_SRTP, GSTS_IRES, GSTS_QIES, GSTS_TES, IQ_OFFSET_MASK, descType, iqaBase, iqaBytes } from '../guest/layout.js';

/** A difference explained by a known deviation (or a silent event it causes). */
export interface ClassifiedEvent {
  index: number;
  op: string;
  id: string;
  /** No compared field differed; the deviation was recognised from the state it changes. */
  silent: boolean;
  /** Attributed to an earlier deviation's taint. */
  tainted?: boolean;
  ours?: string;
  qemu?: string;
}

export interface NewDifference {
  index: number;
  op: TraceOp;
  fields: FieldDiff[];
  ours?: string;
  qemu?: string;
  /** Why nothing explains it (for the report). */
  note: string;
}

export interface Verdict {
  status: 'agree' | 'known' | 'new';
  /** Ops whose results were compared (up to the end, a divergence or the first new difference). */
  opsCompared: number;
  events: ClassifiedEvent[];
  /** Where comparing stopped because a deviation may have changed everything after it. */
  diverged?: { index: number; id: string };
  difference?: NewDifference;
  /** Requests the window tracker saw go through an open window. */
  windowsObserved: number;
  /** Our result lines (all ops, for reports). */
  ours: string[];
}

// ---------------------------------------------------------------- a cacheless replayer

/** Result lines of a unit with every cache off, formatted exactly as replay/replayer.ts does. */
class FreshStepper {
  readonly iommu: Iommu;
  private readonly tr = new TranslateResult();

  constructor(trace: Trace) {
    this.iommu = Iommu.create({ ...optionsFromHeader(trace.header.config), iotlbEntries: 0, contextCache: false });
  }

  step(op: TraceOp): string | undefined {
    const head = `{"i":${op.index},"op":"${op.op}"`;
    const m = this.iommu;
    switch (op.op) {
      case 'mem': m.writeGuest(op.gpa, op.data); return undefined;
      case 'wr': m.mmioWrite(op.reg, op.size, op.val); return undefined;
      case 'mrd': {
        let s = '';
        for (const b of m.readGuest(op.gpa, op.len)) s += b.toString(16).padStart(2, '0');
        return `${head},"hex":"${s}"}`;
      }
      case 'rd': {
        let v = m.mmioRead(op.reg, op.size);
        if (op.mask !== undefined) v &= op.mask;
        return `${head},"val":"${hex(v)}"}`;
      }
      case 'dma': {
        const r = m.translateInto(op.sid, op.iova, op.dir, op.len, this.tr);
        if (r.ok) return `${head},"ok":true,"gpa":"${hex(r.gpaBig)}"}`;
        return r.fault !== undefined ? `${head},"ok":false,"fault":"${faultHex(r.fault)}"}` : `${head},"ok":false}`;
      }
      case 'msi': {
        const r = m.remapMsi(op.sid, op.addr, Number(op.data));
        if (r.ok && !r.posted) return `${head},"ok":true,"addr":"${hex(r.addr)}","data":"${hex(r.data)}"}`;
        return !r.ok && r.fault !== undefined ? `${head},"ok":false,"fault":"${faultHex(r.fault)}"}` : `${head},"ok":false}`;
      }
      default:
        return undefined;
    }
  }
}

/** The result lines of `trace` on a unit with every cache off: where they differ from ours, a trace observed a cache window. */
export function replayWithoutCaches(trace: Trace): string[] {
  const f = new FreshStepper(trace);
  const out: string[] = [];
  for (const op of trace.ops) {
    const l = f.step(op);
    if (l !== undefined) out.push(l);
  }
  return out;
}

// ---------------------------------------------------------------- the comparison


/** The 32-bit register slices an access of `size` bytes at `reg` covers, with their values. */
function dwords(reg: number, size: number, v: bigint): Array<[number, number]> {
  const out: Array<[number, number]> = [[reg, Number(v & 0xffffffffn)]];
  if (size === 8) out.push([reg + 4, Number((v >> 32n) & 0xffffffffn)]);
  return out;
}

export interface CompareOptions {
  /** The deviations that may explain a difference [those of `qemuVersion`]. */
  deviations?: typeof DEVIATIONS;
  /** The QEMU that gave the answers ['7.2']: its deviations are the known ones. */
  qemuVersion?: QemuVersion;
}

/**
 * Compares our unit's answers to `qemuLines` for `trace`. Replays the core
 * itself; QEMU's lines may come from anywhere.
 */
export function compareTrace(trace: Trace, qemuLines: readonly string[], opts: CompareOptions = {}): Verdict {
  const list = opts.deviations ?? deviationsFor(opts.qemuVersion ?? '7.2');
  const cfg = trace.header.config;
  const ram = cfg.ram;
  const ours = new Replayer(trace);
  const fresh = new FreshStepper(trace);
  const unit = ours.iommu;
  const windows = new WindowTracker(unit, ram);
  const qemu = byIndex(qemuLines);
  const latched: DetectContext['latched'] = {};
  const written = new Map<number, number>();
  const taints = new Map<number, { mask: number; id: string }>();
  const events: ClassifiedEvent[] = [];
  const ourLines: string[] = [];
  let pendingResume: { index: number; op: string } | undefined;
  /** Whether the last descriptor our unit processed since QI was enabled was a wait (undefined: none yet). */
  const lastDesc: { wait?: boolean } = {};
  /** Scalable mode: devices whose RID_PASID entry has been pass-through (PGTT 100) in memory at some point. */
  const smPassThrough = new Set<number>();
  let stopped: Verdict['diverged'];
  let difference: NewDifference | undefined;
  let compared = 0;

  const addTaint = (id: string, t: Taint): boolean => {
    if (t === 'all') return false;
    for (const [off, mask] of t) {
      const prev = taints.get(off);
      taints.set(off, { mask: ((prev?.mask ?? 0) | mask) >>> 0, id: prev?.id ?? id });
    }
    return true;
  };
  /** Records a classified event; returns false when comparing must stop. */
  const classify = (ev: ClassifiedEvent): boolean => {
    if (!events.some((e) => e.index === ev.index && e.id === ev.id)) events.push(ev);
    const d = deviation(ev.id);
    if (!addTaint(d.id, d.taint)) {
      stopped = { index: ev.index, id: d.id };
      return false;
    }
    return true;
  };

  for (const op of trace.ops) {
    // -- before the op
    let cause: WindowCause | undefined;
    const gsts0 = unit.mmioRead32(REG.GSTS);
    if (op.op === 'dma' || op.op === 'msi') {
      cause = windows.beforeRequest(op, latched.rta, latched.irta, (gsts0 & GSTS_IRES) !== 0, (gsts0 & GSTS_TES) !== 0);
    }
    const iqh0 = Number(unit.mmioRead(REG.IQH, 8) & IQ_OFFSET_MASK), fsts0 = unit.mmioRead32(REG.FSTS);
    const frcdBefore = { top: unit.mmioRead32(frcdTopDword(0)), sid: unit.mmioRead32(frcdSidDword(0)), fi: unit.mmioRead32(frcdLo(0) + 4) };
    if (op.op === 'mem') windows.beforeMem(op.gpa, op.data.length, latched.rta, trace.header.devices);

    // -- the op, on both cores
    const ourLine = ours.step(op);
    const freshLine = fresh.step(op);
    if (ourLine !== undefined) ourLines.push(ourLine);
    if (stopped || difference) continue;

    // -- after the op: what our unit latched, what the trace wrote
    if (op.op === 'mem') windows.onMem(op.gpa, op.data);
    if (cfg.sm && latched.rta !== undefined && (latched.rta & RTADDR_TTM_SM) && (op.op === 'mem' || op.op === 'wr')) {
      for (const sid of trace.header.devices) if (smRidPasidPgtt(unit, ram, latched.rta, sid) === PGTT_PT) smPassThrough.add(sid);
    }
    if (op.op === 'wr') {
      for (const [off, v] of dwords(op.reg, op.size, op.val)) {
        written.set(off, v);
        if (off === REG.GCMD) {
          if (v & GCMD_SRTP) {
            const rta = unit.mmioRead(REG.RTADDR, 8);
            windows.onSrtp(latched.rta !== undefined && latched.rta !== rta);
            latched.rta = rta;
          }
          if (v & GCMD_SIRTP) {
            latched.irta = unit.mmioRead(REG.IRTA, 8);
            latched.irtaWritten = BigInt(written.get(REG.IRTA) ?? 0) | (BigInt(written.get(REG.IRTA + 4) ?? 0) << 32n);
          }
        }
      }
      const gsts1 = unit.mmioRead32(REG.GSTS);
      if ((gsts0 ^ gsts1) & GSTS_TES) windows.onTeChange();
      if (!(gsts0 & GSTS_QIES) && gsts1 & GSTS_QIES) {
        latched.iqa = unit.mmioRead(REG.IQA, 8);
        lastDesc.wait = undefined;
      }
      if (gsts0 & GSTS_QIES && !(gsts1 & GSTS_QIES)) {
        const busy = iqh0 !== Number(unit.mmioRead(REG.IQT, 8) & IQ_OFFSET_MASK);
        const id = busy ? 'qi-disable-busy' : lastDesc.wait !== true ? 'qi-disable-needs-wait' : undefined;
        if (id && !classify({ index: op.index, op: op.op, id, silent: true })) continue;
      }
    }

    // -- our queue ran when IQE was cleared; QEMU's runs at the next tail write.
    // Register accesses in between are compared as usual (a difference there
    // is this deviation); a tail write brings QEMU level; anything else that
    // could see the queue's effects first ends the comparison.
    if (pendingResume) {
      const p = pendingResume;
      if (op.op === 'wr' && op.reg === REG.IQT) pendingResume = undefined;
      else if (op.op !== 'wr' && op.op !== 'rd') {
        pendingResume = undefined;
        if (!classify({ index: p.index, op: p.op, id: 'iqe-resume-on-clear', silent: true })) continue;
      }
    }

    // -- queued invalidation: what our unit processed in this op
    if (op.op === 'wr' && latched.iqa !== undefined) {
      const qev = inspectQueue(unit, op, cfg, latched.iqa, iqh0, fsts0, list, lastDesc);
      if (qev === 'resume') pendingResume = { index: op.index, op: op.op };
      else if (qev && !classify({ index: op.index, op: op.op, id: qev, silent: true })) continue;
    }

    // -- compare the result lines
    const o = ourLine !== undefined ? parseResult(ourLine) : undefined;
    const q = qemu.get(op.index);
    if (!o && !q) continue;
    compared = op.index + 1;
    let pathCache: DmaPath | undefined | null = null;
    let irteCache: Irte | undefined | null = null;
    const ctx: DetectContext = {
      config: cfg, op, ours: o, qemu: q, fresh: freshLine !== undefined ? parseResult(freshLine) : undefined, iommu: unit, latched, written,
      path: () => {
        if (pathCache === null) pathCache = op.op === 'dma' && latched.rta !== undefined ? walkDma(unit, ram, latched.rta, op.sid, op.iova) : undefined;
        return pathCache;
      },
      irte: () => {
        if (irteCache === null) {
          const m = op.op === 'msi' ? decodeMsi(op.addr, op.data) : undefined;
          irteCache = m?.index !== undefined && latched.irta !== undefined ? readIrte(unit, ram, latched.irta, m.index) : undefined;
        }
        return irteCache;
      },
      window: () => cause,
      smPassThrough,
      frcdBefore,
      tainted: (off) => taints.get(off)?.mask ?? 0,
    };
    const diffs = diffResults(o, q);
    if (diffs.length && pendingResume) {
      classify({ index: op.index, op: op.op, id: 'iqe-resume-on-clear', silent: false, ours: o?.line, qemu: q?.line });
      continue;
    }
    if (diffs.length === 0) {
      if (!faultPresenceDiffers(o, q)) continue;
      // The fault-recording state changes on one side only: a known silent deviation, or an open window.
      const id = list.find((d) => d.detect.silent?.(ctx) || (d.kind === 'window' && d.detect.line?.(ctx)))?.id;
      if (id) {
        if (!classify({ index: op.index, op: op.op, id, silent: true, ours: o?.line, qemu: q?.line })) continue;
        continue;
      }
      difference = { index: op.index, op, fields: [{ field: 'fault', ours: o?.fault !== undefined ? faultHex(o.fault) : undefined, qemu: q?.fault !== undefined ? faultHex(q.fault) : undefined }], ours: o?.line, qemu: q?.line, note: 'a fault reason on one side only: one unit recorded a fault the other did not' };
      continue;
    }
    if (op.op === 'rd' && o?.val !== undefined && q?.val !== undefined) {
      // Every differing 32-bit slice must be explained, by an earlier taint or a register detector.
      const od = dwords(op.reg, op.size, o.val), qd = dwords(op.reg, op.size, q.val);
      const found: ClassifiedEvent[] = [];
      let unexplained: DwordDiff | undefined;
      for (let k = 0; k < od.length; k++) {
        let d: DwordDiff = { off: od[k][0], ours: od[k][1], qemu: qd[k][1] };
        if (d.ours === d.qemu) continue;
        const t = taints.get(d.off);
        if (t && ((d.ours ^ d.qemu) & ~t.mask) === 0) {
          found.push({ index: op.index, op: op.op, id: t.id, silent: false, tainted: true, ours: o.line, qemu: q.line });
          continue;
        }
        // Bits an earlier deviation may have changed are set aside; the rest must be explained.
        if (t) d = { ...d, qemu: ((d.qemu & ~t.mask) | (d.ours & t.mask)) >>> 0 };
        const id = list.find((x) => x.detect.dword?.(ctx, d))?.id;
        if (id) found.push({ index: op.index, op: op.op, id, silent: false, ours: o.line, qemu: q.line });
        else { unexplained = d; break; }
      }
      if (!unexplained) {
        for (const ev of found) if (!classify(ev)) break;
        continue;
      }
      difference = {
        index: op.index, op, fields: diffs, ours: o.line, qemu: q.line,
        note: `register 0x${unexplained.off.toString(16)}: ours 0x${(unexplained.ours >>> 0).toString(16)}, QEMU 0x${(unexplained.qemu >>> 0).toString(16)}`,
      };
      continue;
    }
    const id = list.find((d) => d.detect.line?.(ctx))?.id;
    if (id) {
      classify({ index: op.index, op: op.op, id, silent: false, ours: o?.line, qemu: q?.line });
      continue;
    }
    difference = { index: op.index, op, fields: diffs, ours: o?.line, qemu: q?.line, note: cause ? `inside an open window (${cause}), but not one QEMU is known to show this way` : 'no known deviation explains it' };
  }
  const status = difference ? 'new' : events.length ? 'known' : 'agree';
  return { status, opsCompared: difference ? difference.index + 1 : stopped ? stopped.index + 1 : compared, events, diverged: stopped, difference, windowsObserved: windows.observed, ours: ourLines };
}

/**
 * What our unit did with the invalidation queue during `op`: the descriptors
 * it processed (and the one it stopped on), checked against the queue
 * detectors. Returns a deviation id, 'resume' (the queue ran when IQE was
 * cleared: QEMU waits for the next tail write), or undefined.
 */
function inspectQueue(unit: Iommu, op: Extract<TraceOp, { op: 'wr' }>, config: TraceConfig, iqa: bigint, iqh0: number, fsts0: number, list: typeof DEVIATIONS, lastDesc: { wait?: boolean }): string | 'resume' | undefined {
  if (!(unit.mmioRead32(REG.GSTS) & GSTS_QIES)) return undefined;
  const iqh1 = Number(unit.mmioRead(REG.IQH, 8) & IQ_OFFSET_MASK), fsts1 = unit.mmioRead32(REG.FSTS);
  const stoppedNow = !(fsts0 & FSTS_IQE) && (fsts1 & FSTS_IQE);
  // Software wrote 1 to a set IQE: our queue runs again at once (and may stop again).
  const clearsIqe = op.reg === REG.FSTS && (fsts0 & FSTS_IQE) !== 0 && (Number(op.val) & FSTS_IQE) !== 0;
  const resumed = clearsIqe && (iqh0 !== iqh1 || (fsts1 & FSTS_IQE) !== 0);
  if (iqh0 === iqh1 && !stoppedNow) return resumed ? 'resume' : undefined;
  const base = iqaBase(iqa), bytes = iqaBytes(iqa);
  const ram = config.ram;
  const check = (off: number, accepted: boolean): string | undefined => {
    const at = base + BigInt(off);
    if (at + 16n > ram) return undefined;
    const b = unit.readGuest(at, 16);
    const dv = new DataView(b.buffer, b.byteOffset, 16);
    const q = { config, op, lo: dv.getBigUint64(0, true), hi: dv.getBigUint64(8, true), accepted, ram };
    if (accepted) lastDesc.wait = descType(q.lo) === DESC_WAIT;
    return list.find((d) => d.detect.queue?.(q))?.id;
  };
  for (let off = iqh0, n = 0; off !== iqh1 && n < bytes / 16; off = (off + 16) % bytes, n++) {
    const id = check(off, true);
    if (id) return id;
  }
  if (stoppedNow || (resumed && fsts1 & FSTS_IQE)) {
    const id = check(iqh1, false);
    if (id) return id;
  }
  return resumed ? 'resume' : undefined;
}
