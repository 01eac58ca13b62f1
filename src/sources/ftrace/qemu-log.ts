/**
 * DMA from a QEMU log: places the `vtd_dmar_translate` lines of QEMU's
 * `-trace vtd_*` log of the same run into an import's op list, as `dma`
 * ops, anchored on the invalidation descriptors both sides saw.
 *
 * Browser-safe.
 */
import { VtdError } from '../../errors.js';
import { isScalableModeDescriptor } from './descriptor.js';
import { hex } from '../../trace/write.js';
import type { ImportResult, WorkloadOp } from './importer.js';
import { PAGE } from './page-ranges.js';

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
      const lo = BigInt(m[3]), hi = BigInt(m[2]);
      const same = (j: number): boolean => this.result.qi.qw0[j] === lo && this.result.qi.qw1[j] === hi;
      // QEMU 7.2 accepts the scalable-mode descriptors (PASID cache, PASID-based IOTLB and
      // device-TLB) without logging them: a guest's that QEMU's log lacks is passed over.
      let k = this.desc;
      while (k < this.guestDescs && !same(k) && isScalableModeDescriptor(this.result.qi.qw0[k])) k++;
      this.desc = k + 1;
      if (k >= this.guestDescs) return;
      const qw0 = this.result.qi.qw0[k], qw1 = this.result.qi.qw1[k];
      if (!same(k)) {
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
