/**
 * The conformance generator's guest-driver model (`Driver`): lowers a
 * scenario's abstract actions into raw trace ops the way a driver programs
 * the unit: build the tables, latch them, invalidate, enable; and for every
 * change to a present entry, the covering invalidation before the next
 * request (change -> invalidate -> use), so a driver-like trace never
 * observes an open window (trace-format.md). Actions that do not apply to
 * the current state are interpreted modulo what exists, so every drawn list
 * is a valid trace and fast-check can shrink it freely. The hostile actions
 * are hostile.ts's (`HostileDriver`).
 *
 * It also keeps traces inside what QEMU 7.2 and the harness can run (see
 * index.ts).
 */
import { Iommu, TranslateResult } from '../../iommu.js';
import { formatRid } from '../../trace/parse.js';
import type { WritableOp } from '../../trace/write.js';
import {
  REG, FRCD_F, FSTS_IQE, GCMD_CFI, GCMD_IRE, GCMD_QIE, GCMD_SIRTP, GCMD_SRTP, GCMD_TE, GSTS_TES, CCMD_CAIG_MASK, G_DEVICE, G_DOMAIN, G_GLOBAL,
  G_PAGE, IOTLB_IAIG_MASK, SL_RW, SL_SNP, ccDesc, ccmdValue, contextEntry, contextEntryAddr, frcdLo, frcdSidDword, frcdTopDword, iecDesc, iotlbDesc,
  iotlbRegValue, iqaValue, decodeIrte, irteEntry, irtaValue, ivaValue, levelSpan, rootEntry, rootEntryAddr, slAddr, slEntry, slEntryAddr,
  slPresent, slPs, waitDesc,
} from '../../guest/layout.js';
import type { Unit } from './render.js';
import { SID_POOL, type Action, type Scenario } from './scenario.js';

export const hx = (v: bigint | number): string => '0x' + v.toString(16);

export const rid = formatRid;

const ROOT = 0x100000n, ROOT_ALT = 0x108000n;
export const QUEUE = 0x180000n, STATUS = 0x190000n, IRT = 0x1a0000n;
const POOL_START = 0x200000n, POOL_END = 0x600000n;
export const IR_BASE = 0xfee00000n;
/** Address of IRTE `index` in the driver's interrupt remapping table (16 bytes each, §9.2). */
export const irteAddr = (index: number): bigint => IRT + 16n * BigInt(index);


export interface Mapping {
  iova: bigint;
  level: number;
  frame: bigint;
  perm: number;
}

export interface Domain {
  did: number;
  levels: number;
  top: bigint;
  passThrough: boolean;
  /** Leaf mappings by iova base. */
  maps: Map<bigint, Mapping>;
}

interface Pending {
  ctx: Array<{ sid: number; did: number }>;
  /** Scalable mode: PASID-cache entries (DID, PASID) to invalidate (pasid undefined: the whole domain). */
  pc: Array<{ did: number; pasid?: number }>;
  pcAll: boolean;
  /** Scalable mode: PASID-based IOTLB invalidations (am undefined: every mapping of the PASID). */
  piotlb: Array<{ did: number; pasid: number; addr: bigint; am?: number }>;
  ctxAll: boolean;
  iotlb: Array<{ did: number; addr: bigint; am: number }>;
  iotlbDids: Set<number>;
  iotlbAll: boolean;
  iec: number[];
  iecAll: boolean;
}

const emptyPending = (): Pending => ({ ctx: [], pc: [], pcAll: false, piotlb: [], ctxAll: false, iotlb: [], iotlbDids: new Set(), iotlbAll: false, iec: [], iecAll: false });

/** A deterministic stream of choices from one action's numbers. */
export class Dice {
  protected s: number;
  constructor(a: Action) {
    this.s = (a.a * 0x10001 + a.b * 0x101 + a.c * 7 + a.d) >>> 0 || 1;
  }
  next(): number {
    // xorshift32
    let x = this.s;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.s = x;
    return x;
  }
  int(n: number): number {
    return n <= 1 ? 0 : this.next() % n;
  }
  chance(p: number): boolean {
    return this.next() / 0x100000000 < p;
  }
  of<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  big(bits: number): bigint {
    let v = 0n;
    for (let i = 0; i < bits; i += 32) v = (v << 32n) | BigInt(this.next());
    return v & ((1n << BigInt(bits)) - 1n);
  }
}

export class Driver {
  readonly units: Unit[] = [];
  protected comments: string[] = [];
  protected readonly mem = new Map<bigint, bigint>();
  protected nextPage = POOL_START;
  protected readonly ctxTables = new Map<number, bigint>();
  protected domains: Domain[] = [];
  protected readonly attached = new Map<number, { domain: Domain; fpd: boolean; aw: number }>();
  protected gcmd = 0;
  protected rta = ROOT;
  protected pending = emptyPending();
  protected readonly qi = { on: false, qs: 0, tail: 0, lastWait: false, status: 1 };
  protected readonly ir = { on: false, latched: false, s: 3, eime: false, irtes: new Map<number, [bigint, bigint]>(), cfi: false };
  protected te = false;
  protected nextDid = 1;

  /**
   * Our core, replaying every op as it is emitted: it predicts where a DMA
   * really goes, so that no device write reaches anything but RAM (on QEMU
   * the edu device really performs it).
   */
  protected readonly core: Iommu;
  protected readonly tr = new TranslateResult();

  constructor(readonly sc: Scenario, readonly hostile: boolean) {
    this.core = Iommu.create({ aw: sc.aw, cm: sc.cm, ir: sc.ir, eim: sc.eim, pt: sc.pt, sc: sc.sc, dt: sc.dt, ram: sc.ram, sm: !!sc.sm, flts: !!sc.flts, pasid: !!sc.pasid });
  }

  // ---- emission

  note(c: string): void {
    this.comments.push(c);
  }

  protected emit(op: WritableOp): void {
    this.units.push({ comments: this.comments, op });
    this.comments = [];
    switch (op.op) {
      case 'mem': this.core.writeGuestQwords(op.gpa, op.q ?? []); break;
      case 'wr': this.core.mmioWrite(op.reg, op.size, op.val); break;
      case 'dma': this.core.translateInto(op.sid, op.iova, op.dir, op.len, this.tr); break;
      case 'msi': this.core.remapMsi(op.sid, op.addr, Number(op.data)); break;
    }
  }

  // ---- hooks scalable mode (sm.ts) overrides

  /** RTADDR for a root table at `addr` (legacy: TTM 00). */
  protected rtaddr(addr: bigint): bigint {
    return addr;
  }

  /** Invalidations only by queue (scalable mode): QI is enabled first and stays on. */
  protected get queueOnly(): boolean {
    return false;
  }

  /** Bytes per queue slot: 16, or 32 with IQA.DW (scalable mode). */
  protected get slotBytes(): number {
    return 16;
  }

  /** IQA's value for the queue (DW added in scalable mode). */
  protected iqa(qs: number): bigint {
    return iqaValue(QUEUE, qs);
  }

  /** A non-leaf paging entry pointing to `table` with rights `perm` (R = 1, W = 2). */
  protected tableEntry(table: bigint, perm: bigint): bigint {
    return slEntry(table, perm);
  }

  /** A leaf paging entry for `frame` (plus ignored or extra bits) at `level`. */
  protected leafEntry(frame: bigint, perm: bigint, level: number, extra = 0n): bigint {
    return slEntry(frame | extra, perm, level > 1);
  }

  /** Whether a paging entry is present, and whether it is a large leaf (PS, levels 3 and below). */
  protected present(e: bigint): boolean {
    return slPresent(e);
  }

  protected large(e: bigint): boolean {
    return slPs(e);
  }

  /** Whether `sid`'s requests are not translated now (TE off, pass-through). */
  protected untranslated(sid: number): boolean {
    return !(this.core.mmioRead32(REG.GSTS) & GSTS_TES) || !!(this.core.contextOf(sid) as { passThrough?: boolean }).passThrough;
  }

  /** Where a DMA would reach memory (undefined: blocked, or an interrupt request). */
  protected target(sid: number, iova: bigint, dir: 'r' | 'w'): bigint | undefined {
    if (iova >= IR_BASE && iova <= 0xfeefffffn) return undefined;
    if (!(this.core.mmioRead32(REG.GSTS) & GSTS_TES)) return iova;
    const c = this.core.contextOf(sid);
    if (!c.ok) return undefined;
    if (c.passThrough) return iova;
    const pr = this.core.probe(sid, iova, dir);
    if (!pr.ok) return undefined;
    const span = levelSpan(pr.level);
    return (slAddr(pr.leaf) & ~(span - 1n)) | (iova & (span - 1n));
  }

  /** RAM a device may write (the harness restores it), or space nothing answers (above 4 GiB on these machines). */
  protected safe(gpa: bigint, len: number): boolean {
    const end = gpa + BigInt(len);
    if (gpa >= 1n << 32n) return true;
    if (gpa >= IR_BASE && end <= 0xfef00000n) return true;
    return end <= this.sc.ram && !(end > 0xa0000n && gpa < 0x100000n);
  }

  /**
   * Emits a DMA whose device access (on QEMU a real one) stays on RAM: an
   * untranslated request to anything else goes to a RAM frame instead, and a
   * translated write that would land elsewhere (hostile tables) becomes a read.
   */
  protected safeDma(sid: number, iova: bigint, len: number, dir: 'r' | 'w', p: Dice): void {
    let gpa = this.target(sid, iova, dir);
    if (gpa !== undefined && !this.safe(gpa, len)) {
      if (this.untranslated(sid)) {
        iova = this.frame(p, 1) | (iova & 0xfffn);
        gpa = iova;
      } else if (gpa === iova) {
        // A translation onto itself outside RAM: the harness cannot tell QEMU's failed access
        // there from a refusal on an IOTLB hit. Not issued.
        this.note('(a DMA the harness could not judge is left out here)');
        return;
      }
      if (!this.safe(gpa, len)) dir = 'r';
    }
    // A device write to the interrupt address range is an interrupt request, which the format's
    // dma op does not model but QEMU performs (QEMU 10 records its remapping fault, with SID
    // 0xffff): issued as a read instead.
    if (dir === 'w' && iova >= IR_BASE && iova <= 0xfeefffffn) dir = 'r';
    this.dma(sid, iova, len, dir);
  }

  memQ(gpa: bigint, qs: bigint[]): void {
    qs.forEach((q, i) => this.mem.set(gpa + 8n * BigInt(i), q));
    this.emit({ op: 'mem', gpa, q: [...qs] });
  }

  protected q(gpa: bigint): bigint {
    return this.mem.get(gpa) ?? 0n;
  }

  wr(reg: number, size: 4 | 8, val: bigint | number): void {
    this.emit({ op: 'wr', reg, size, val: BigInt(val) & (size === 4 ? 0xffffffffn : (1n << 64n) - 1n) });
  }

  /** A 64-bit register write, as one access or as two dword writes, low first (Linux dmar_writeq). */
  wr64(reg: number, val: bigint, split: boolean): void {
    if (split) {
      this.wr(reg, 4, val & 0xffffffffn);
      this.wr(reg + 4, 4, val >> 32n);
    } else this.wr(reg, 8, val);
  }

  rd(reg: number, size: 4 | 8, mask?: bigint): void {
    this.emit(mask === undefined ? { op: 'rd', reg, size } : { op: 'rd', reg, size, mask });
  }

  dma(sid: number, iova: bigint, len: number, dir: 'r' | 'w'): void {
    this.emit({ op: 'dma', sid, iova, len, dir });
  }

  msi(sid: number, addr: bigint, data: number): void {
    this.emit({ op: 'msi', sid, addr, data: BigInt(data) });
  }

  mrd(gpa: bigint, len: number): void {
    this.emit({ op: 'mrd', gpa, len });
  }

  // ---- guest memory layout

  /** Table pages this driver allocated: a table pointer elsewhere (hostile bits) is not followed. */
  protected readonly tables = new Set<bigint>();

  protected page(): bigint {
    const p = this.nextPage;
    this.tables.add(p);
    this.nextPage += 0x1000n;
    if (this.nextPage > POOL_END) this.nextPage = POOL_END; // never reached by the action counts used
    return p;
  }

  /** A page frame the devices may really read and write: RAM, away from the tables and 0xa0000-0xfffff. */
  frame(p: Dice, level: number): bigint {
    const ram = this.sc.ram;
    const span = levelSpan(level);
    if (level === 3) return 0n; // the 1 GiB page from 0: accesses are kept inside RAM
    const lo = 0x800000n, hi = ram - span;
    const slots = (hi - lo) / span;
    return lo + span * (BigInt(p.next()) % slots);
  }

  // ---- commands

  protected gcmdWrite(bits: number, comment: string): void {
    this.note(comment);
    this.wr(REG.GCMD, 4, (this.gcmd | bits) >>> 0);
  }

  protected setPersistent(bit: number, on: boolean, comment: string): void {
    this.gcmd = on ? (this.gcmd | bit) >>> 0 : (this.gcmd & ~bit) >>> 0;
    this.note(comment);
    this.wr(REG.GCMD, 4, this.gcmd);
  }

  protected readStatus(p?: Dice): void {
    if (!p || p.chance(0.6)) this.rd(REG.GSTS, 4);
  }

  // ---- set-up

  preamble(): void {
    const s = this.sc;
    const p = new Dice({ k: 'pre', a: s.actions.length, b: s.sids.length, c: s.aw, d: Number(s.ram >> 20n) });
    if (s.readCaps) {
      this.note('Identification: VER, CAP, ECAP, and the reset status.');
      this.rd(REG.VER, 4);
      this.rd(REG.CAP, 8);
      this.rd(REG.ECAP, 8);
      this.rd(REG.GSTS, 4);
      this.rd(REG.FSTS, 4);
      this.rd(REG.FECTL, 4);
    }
    this.note(`Root table at ${hx(ROOT)} (empty: devices get context entries as they are attached).`);
    this.memQ(ROOT, [0n, 0n]);
    this.note('RTADDR, then SRTP: latch the root table.');
    this.wr64(REG.RTADDR, this.rtaddr(ROOT), s.splitWrites);
    this.gcmdWrite(GCMD_SRTP, 'GCMD.SRTP');
    this.readStatus();
    if (s.qiFirst || this.queueOnly) this.qiEnable(p);
    this.note('After SRTP software invalidates globally (no CAP.ESRTPS).');
    this.pending.ctxAll = true;
    this.pending.iotlbAll = true;
    this.flush(p);
    // Most devices start in a domain with a few mappings, as after a driver's probe.
    for (const sid of s.sids) {
      if (p.chance(0.8)) this.attachSid(sid, p);
    }
    for (const d of this.xlateDomains()) {
      const n = 1 + p.int(4);
      for (let k = 0; k < n; k++) this.mapIn(d, p);
    }
    this.flush(p);
    if (s.ir) this.irSetup(p);
    if (s.teAtStart) {
      this.setPersistent(GCMD_TE, true, 'GCMD.TE: translation on.');
      this.te = true;
      this.readStatus();
    }
  }

  // ---- invalidation

  /** Performs every pending invalidation, by queue when QI is on, else by registers. */
  flush(p: Dice): void {
    const pd = this.pending;
    const nothing = !pd.ctxAll && !pd.ctx.length && !pd.iotlbAll && !pd.iotlb.length && !pd.iotlbDids.size && !pd.iecAll && !pd.iec.length
      && !pd.pcAll && !pd.pc.length && !pd.piotlb.length;
    if (nothing) return;
    if ((pd.iecAll || pd.iec.length || this.queueOnly) && !this.qi.on) this.qiEnable(p);
    if (this.qi.on) this.flushQueued(p);
    else this.flushRegisters(p);
    this.pending = emptyPending();
  }

  /** An IOTLB descriptor, sometimes with DR and DW, sometimes with IH on a page-selective one. */
  protected iotlbDesc(g: number, did: number, addr: bigint, am: number, p: Dice): [bigint, bigint] {
    const drain = p.chance(0.3);
    const qw1 = g === G_PAGE ? ivaValue(addr & ~0xfffn, am, p.chance(0.2)) : 0n;
    return iotlbDesc(g, did, qw1, { dr: drain, dw: drain });
  }

  /** Context-cache then IOTLB invalidations the pending changes need, as (kind, granularity, fields). */
  protected plan(p: Dice): { ctx: Array<[number, number, number, number]>; iotlb: Array<[number, number, bigint, number]> } {
    const pd = this.pending;
    const ctx: Array<[number, number, number, number]> = [];
    const iotlb: Array<[number, number, bigint, number]> = [];
    if (pd.ctxAll || (pd.ctx.length && p.chance(0.2))) ctx.push([G_GLOBAL, 0, 0, 0]);
    else {
      for (const c of pd.ctx) {
        // (Scalable-mode context entries have no DID: device-selective only.)
        if (p.chance(0.25) && !this.sc.sm) ctx.push([G_DOMAIN, c.did, 0, 0]);
        else ctx.push([G_DEVICE, c.did, c.sid, p.chance(0.2) ? 3 : 0]);
      }
    }
    // After a context change software invalidates the IOTLB of the old domain.
    const dids = new Set(pd.iotlbDids);
    for (const c of pd.ctx) dids.add(c.did);
    if (pd.iotlbAll || pd.ctxAll || (dids.size + pd.iotlb.length > 0 && p.chance(0.15))) iotlb.push([G_GLOBAL, 0, 0n, 0]);
    else {
      for (const did of dids) iotlb.push([G_DOMAIN, did, 0n, 0]);
      for (const t of pd.iotlb) {
        if (dids.has(t.did)) continue;
        if (t.am > 18 || p.chance(0.15)) iotlb.push([G_DOMAIN, t.did, 0n, 0]);
        else iotlb.push([G_PAGE, t.did, t.addr, t.am]);
      }
    }
    return { ctx, iotlb };
  }

  protected flushRegisters(p: Dice): void {
    const { ctx, iotlb } = this.plan(p);
    const split = this.sc.splitWrites;
    for (const [g, did, sid, fm] of ctx) {
      this.note(g === 1 ? 'CCMD: global context-cache invalidation.' : g === 2 ? `CCMD: domain-selective context-cache invalidation, DID ${did}.` : `CCMD: device-selective context-cache invalidation, SID ${rid(sid)}${fm ? `, FM ${fm}` : ''}.`);
      this.wr64(REG.CCMD, ccmdValue(g, did, sid, fm), split);
      // CAIG (bits 60:59) reports the granularity performed; the architecture lets it be coarser.
      if (p.chance(0.5)) this.rd(REG.CCMD, 8, g === G_DOMAIN && p.chance(0.7) ? ~CCMD_CAIG_MASK & ((1n << 64n) - 1n) : undefined);
    }
    for (const [g, did, addr, am] of iotlb) {
      if (g === G_PAGE) {
        this.note(`IVA + IOTLB: page-selective invalidation, DID ${did}, ${hx(addr)}, AM ${am}.`);
        this.wr64(REG.IVA, ivaValue(addr, am, p.chance(0.2)), split);
      } else this.note(g === G_GLOBAL ? 'IOTLB: global invalidation.' : `IOTLB: domain-selective invalidation, DID ${did}.`);
      const drain = p.chance(0.3);
      this.wr64(REG.IOTLB, iotlbRegValue(g, did, { dr: drain, dw: drain }), split);
      if (p.chance(0.5)) this.rd(REG.IOTLB, 8, p.chance(0.5) ? ~IOTLB_IAIG_MASK & ((1n << 64n) - 1n) : undefined);
    }
  }

  /** Scalable-mode descriptors (PASID-cache, PASID-based IOTLB) for the pending changes: none in legacy mode. */
  protected smDescs(_p: Dice, _descs: Array<readonly bigint[]>, _what: string[]): void {}

  protected flushQueued(p: Dice): void {
    const { ctx, iotlb } = this.plan(p);
    const descs: Array<readonly bigint[]> = [];
    const what: string[] = [];
    for (const [g, did, sid, fm] of ctx) {
      descs.push(ccDesc(g, did, sid, fm));
      what.push(g === 1 ? 'context global' : g === 2 ? `context DID ${did}` : `context SID ${rid(sid)}${fm ? ` FM ${fm}` : ''}`);
    }
    for (const [g, did, addr, am] of iotlb) {
      descs.push(this.iotlbDesc(g, did, addr, am, p));
      what.push(g === 1 ? 'IOTLB global' : g === 2 ? `IOTLB DID ${did}` : `IOTLB DID ${did} ${hx(addr)} AM ${am}`);
    }
    this.smDescs(p, descs, what);
    const pd = this.pending;
    if (pd.iecAll || (pd.iec.length && p.chance(0.2))) {
      descs.push(iecDesc());
      what.push('IEC global');
    } else {
      for (const i of pd.iec) {
        descs.push(iecDesc(i));
        what.push(`IEC index ${i}`);
      }
    }
    this.submit(descs, what, p);
  }

  /** Writes descriptors at the tail, a status-write wait after them, and the new tail. */
  submit(descs: Array<readonly bigint[]>, what: string[], p: Dice, wait: 'sw' | 'if' = 'sw'): void {
    const wq = this.slotBytes / 8;
    const size = (256 << this.qi.qs) / (wq / 2);
    const all = [...descs];
    const status = STATUS + 8n * BigInt(this.qi.status % 64);
    const data = this.qi.status++;
    if (wait === 'sw') all.push(waitDesc({ sw: true, data, fn: p.chance(0.2), addr: status }));
    else all.push(waitDesc({ if: true }));
    this.note(`Queue: ${[...what, wait === 'sw' ? `wait (status ${hx(data)} to ${hx(status)})` : 'wait (IF)'].join(', ')}.`);
    let start = this.qi.tail;
    let chunk: bigint[] = [];
    for (const d of all) {
      if (d.length > wq) throw new Error(`conform driver: a ${d.length * 64}-bit descriptor in a queue of ${wq * 64}-bit slots`);
      chunk.push(...d, ...new Array<bigint>(wq - d.length).fill(0n));
      this.qi.tail = (this.qi.tail + 1) % size;
      if (this.qi.tail === 0) {
        this.memQ(QUEUE + BigInt(this.slotBytes * start), chunk);
        chunk = [];
        start = 0;
      }
    }
    if (chunk.length) this.memQ(QUEUE + BigInt(this.slotBytes * start), chunk);
    this.wr64(REG.IQT, BigInt(this.qi.tail * this.slotBytes), false);
    this.qi.lastWait = true;
    if (p.chance(0.4)) this.rd(REG.IQH, 8);
    if (wait === 'sw' && p.chance(0.5)) this.mrd(status, 4);
  }

  qiEnable(p: Dice): void {
    if (this.qi.on) return;
    this.qi.qs = p.chance(0.25) ? 1 : 0;
    this.note(`Queued invalidation: IQA ${hx(QUEUE)} (QS ${this.qi.qs}), IQT 0, GCMD.QIE.`);
    this.wr64(REG.IQA, this.iqa(this.qi.qs), false);
    this.wr64(REG.IQT, 0n, false);
    this.setPersistent(GCMD_QIE, true, 'GCMD.QIE');
    this.qi.on = true;
    this.qi.tail = 0;
    this.qi.lastWait = false;
    this.readStatus(p);
  }

  qiDisable(p: Dice): void {
    if (!this.qi.on || this.ir.on || this.queueOnly) return;
    if (!this.qi.lastWait) this.submit([], [], p);
    this.setPersistent(GCMD_QIE, false, 'GCMD without QIE: queued invalidation off (the queue is idle, the last descriptor a wait).');
    this.qi.on = false;
    this.readStatus(p);
  }

  // ---- interrupt remapping

  protected irtEntries(): number {
    return 2 ** (this.ir.s + 1);
  }

  irSetup(p: Dice): void {
    this.qiEnable(p);
    this.ir.s = p.of([3, 4, 7]);
    this.ir.eime = this.sc.eim && p.chance(0.6);
    const n = 1 + p.int(4);
    for (let k = 0; k < n; k++) this.setIrte(p.int(this.irtEntries()), p, false);
    this.irtaLatch(p);
    this.setPersistent(GCMD_IRE, true, 'GCMD.IRE: interrupt remapping on (CFI stays clear: compatibility-format interrupts are to be blocked).');
    this.ir.on = true;
    this.readStatus(p);
  }

  protected irtaLatch(p: Dice): void {
    this.note(`IRTA: table at ${hx(IRT)}, ${this.irtEntries()} entries, ${this.ir.eime ? 'x2APIC (EIME)' : 'xAPIC'} mode; GCMD.SIRTP; then a global IEC invalidation.`);
    // Hostile: sometimes EIME without EIM (reserved then).
    const eime = this.ir.eime || (this.hostile && !this.sc.eim && p.chance(0.3));
    this.wr64(REG.IRTA, irtaValue(IRT, eime, this.ir.s), this.sc.splitWrites);
    this.gcmdWrite(GCMD_SIRTP, 'GCMD.SIRTP');
    this.ir.latched = true;
    if (p.chance(0.5)) this.rd(REG.IRTA, 8);
    this.pending.iecAll = true;
    this.flush(p);
  }

  /** A well-formed IRTE (or, rarely, one QEMU reads differently). */
  protected irteValue(p: Dice, odd: boolean): [bigint, bigint] {
    const dm = p.chance(0.3) ? 1 : 0, rh = p.chance(0.2) ? 1 : 0, tm = p.chance(0.3) ? 1 : 0;
    const dlm = p.of([0, 0, 0, 1, 4]);
    const vector = 0x20 + p.int(0xd0);
    const avail = p.chance(0.2) ? p.int(16) : 0;
    let dst: bigint;
    if (this.ir.eime) dst = p.chance(0.5) ? BigInt(p.int(256)) : BigInt(p.next() >>> 0);
    else dst = BigInt(p.int(256)) << 8n;
    if (odd && !this.ir.eime && p.chance(0.5)) dst |= 1n; // xAPIC DST bits 39:32: reserved
    const fpd = p.chance(0.15);
    const im = odd && p.chance(0.3);
    let svt = 0, sq = 0, sid = 0;
    const r = p.int(10);
    if (r < 4) {
      svt = 1;
      sq = p.of([0, 0, 0, 1, 2, 3]);
      sid = p.chance(0.8) ? p.of(this.sc.sids) : p.of(SID_POOL);
    } else if (r < 6) {
      svt = 2;
      const bus = p.of(this.sc.sids) >> 8;
      sid = odd ? (p.int(3) << 8) | p.int(3) : (bus << 8) | bus;
    } else if (odd && r === 9) svt = 3;
    return irteEntry({ fpd, dm, rh, tm, dlm, avail, im, vector, dst, sid, sq, svt });
  }

  setIrte(index: number, p: Dice, odd: boolean): void {
    const at = irteAddr(index);
    const present = this.ir.irtes.has(index) && (this.q(at) & 1n) === 1n;
    const v = p.chance(0.1) && present ? [0n, 0n] as [bigint, bigint] : this.irteValue(p, odd);
    const e = decodeIrte(v[0], v[1]);
    this.note(`IRTE ${index}: ${e.present ? `vector ${hx(e.vector)}, destination ${hx(e.dst)}, SVT ${e.svt}` : 'not present'}.`);
    this.memQ(at, v);
    this.ir.irtes.set(index, v);
    if (present && this.ir.latched) this.pending.iec.push(index);
  }

  // ---- DMA remapping structures

  protected ctxTable(bus: number): bigint {
    let t = this.ctxTables.get(bus);
    if (t === undefined) {
      t = this.page();
      this.ctxTables.set(bus, t);
      this.note(`Root entry for bus ${bus}: context table at ${hx(t)}.`);
      const at = rootEntryAddr(this.rta, bus);
      // Replacing a present root entry (one pointing outside RAM, see broken()): a global context invalidation.
      if (this.q(at) & 1n) this.pending.ctxAll = true;
      this.memQ(at, rootEntry(t));
      if (this.rta !== ROOT) this.memQ(rootEntryAddr(ROOT, bus), rootEntry(t));
      else this.memQ(rootEntryAddr(ROOT_ALT, bus), rootEntry(t));
    }
    return t;
  }

  protected newDomain(p: Dice, passThrough: boolean): Domain {
    const levels = this.sc.aw === 48 && p.chance(0.6) ? 4 : 3;
    let did = this.nextDid++;
    if (!this.sc.cm && p.chance(0.05)) did = 0;
    else if (p.chance(0.2)) did = 0x100 + p.int(0xfe00);
    const d: Domain = { did, levels, top: passThrough ? 0n : this.page(), passThrough, maps: new Map() };
    this.domains.push(d);
    return d;
  }

  attach(p: Dice): void {
    this.attachSid(p.of(this.sc.sids), p);
  }

  protected attachSid(sid: number, p: Dice): void {
    const passThrough = this.sc.pt && p.chance(0.15);
    const existing = this.domains.filter((d) => d.passThrough === passThrough);
    const dom = existing.length && p.chance(0.5) ? p.of(existing) : this.newDomain(p, passThrough);
    const fpd = p.chance(0.15);
    // AW: the domain's levels; rarely a width CAP.SAGAW does not offer (3h, a guest error with a defined outcome).
    let aw = dom.levels - 2;
    if (!passThrough && p.chance(0.04)) aw = this.sc.aw === 39 ? 2 : 3;
    const table = this.ctxTable(sid >> 8);
    const at = contextEntryAddr(table, sid & 0xff);
    const old = this.attached.get(sid);
    const avail = p.chance(0.1) ? p.int(16) : 0;
    const entry = contextEntry({ table: passThrough ? 0n : dom.top, tt: passThrough ? 2 : 0, fpd, aw, avail, did: dom.did });
    this.note(`Context entry of ${rid(sid)}: ${passThrough ? 'pass-through' : `tables at ${hx(dom.top)}, ${dom.levels} levels`}, DID ${dom.did}${fpd ? ', FPD' : ''}${aw !== dom.levels - 2 ? `, AW ${aw} (not supported)` : ''}.`);
    this.memQ(at, entry);
    if (old) this.pending.ctx.push({ sid, did: old.domain.did });
    else if (this.sc.cm) {
      // Caching mode: a not-present -> present change is invalidated too (Linux: device-selective with DID 0).
      this.pending.ctx.push({ sid, did: 0 });
      this.pending.iotlbDids.add(0);
    }
    this.attached.set(sid, { domain: dom, fpd, aw });
  }

  detach(p: Dice): void {
    const sids = [...this.attached.keys()];
    if (!sids.length) return;
    const sid = p.of(sids);
    const old = this.attached.get(sid)!;
    this.note(`Context entry of ${rid(sid)} cleared.`);
    this.memQ(contextEntryAddr(this.ctxTable(sid >> 8), sid & 0xff), [0n, 0n]);
    this.pending.ctx.push({ sid, did: old.domain.did });
    this.attached.delete(sid);
  }

  protected xlateDomains(): Domain[] {
    return this.domains.filter((d) => !d.passThrough);
  }

  /** An IOVA from a small set of slots, so that mappings share tables and collide. */
  protected iovaFor(p: Dice, dom: Domain, level: number): bigint {
    const idx = (n: number): bigint => BigInt(p.of([0, 1, 2, 3, 0x1ff, 0x100].slice(0, n)));
    let v = 0n;
    if (dom.levels === 4 && p.chance(0.3)) v |= idx(6) << 39n;
    if (level <= 3) v |= idx(level === 3 ? 4 : 6) << 30n;
    if (level <= 2) v |= idx(6) << 21n;
    if (level <= 1) v |= idx(6) << 12n;
    return v;
  }

  protected ensurePath(dom: Domain, iova: bigint, level: number, p: Dice): bigint {
    // Returns the table address holding the entry for `iova` at `level`.
    let table = dom.top;
    for (let l = dom.levels; l > level; l--) {
      const at = slEntryAddr(table, iova, l);
      const e = this.q(at);
      // PS is tested at levels 3 and below, where a leaf can be (bit 7 is reserved above).
      const isTable = this.present(e) && !(l <= 3 && this.large(e)) && this.tables.has(slAddr(e));
      if (isTable) {
        table = slAddr(e);
        continue;
      }
      const t = this.page();
      // Intermediate rights: RW, rarely R or W only (cumulative rights).
      const perm = p.chance(0.9) ? 3n : p.chance(0.5) ? 1n : 2n;
      const wasPresent = this.present(e);
      this.note(`Level-${l} entry -> new table ${hx(t)}${perm !== 3n ? ` (${perm === 1n ? 'read' : 'write'}-only)` : ''}${wasPresent ? ', replacing a large page' : ''}.`);
      this.memQ(at, [this.tableEntry(t, perm)]);
      if (wasPresent) this.invalidateRange(dom, iova, l);
      table = t;
    }
    return table;
  }

  protected invalidateRange(dom: Domain, iova: bigint, level: number): void {
    const am = 9 * (level - 1);
    const span = levelSpan(level);
    this.pending.iotlb.push({ did: dom.did, addr: iova & ~(span - 1n), am });
    for (const [k, m] of dom.maps) if (m.iova >= (iova & ~(span - 1n)) && m.iova < (iova & ~(span - 1n)) + span && !(m.iova === (iova & ~(span - 1n)) && m.level === level)) dom.maps.delete(k);
  }

  map(p: Dice): void {
    const doms = this.xlateDomains();
    if (!doms.length) return;
    this.mapIn(p.of(doms), p);
  }

  protected mapIn(dom: Domain, p: Dice): void {
    const r = p.int(20);
    const level = r < 15 ? 1 : r < 19 ? 2 : 3;
    const iova = this.iovaFor(p, dom, level);
    const table = this.ensurePath(dom, iova, level, p);
    const at = slEntryAddr(table, iova, level);
    const perm = BigInt(p.of([3, 3, 3, 1, 2]));
    let frame = this.frame(p, level);
    let extra = 0n;
    if (level === 3 && p.chance(0.3)) frame = 0xc0000000n; // 1 GiB over the interrupt range (QEMU blocks all of it)
    else if (level === 1 && p.chance(0.05)) frame = IR_BASE + BigInt(p.int(256)) * 0x1000n; // into the interrupt range: Eh
    if (level === 1 && this.sc.sc && p.chance(0.2)) extra |= BigInt(SL_SNP);
    if (p.chance(0.1)) extra |= BigInt(p.int(4)) << 52n; // ignored bits
    const e = this.leafEntry(frame, perm, level, extra);
    const old = this.q(at);
    this.note(`Map ${hx(iova)} (${level === 1 ? '4 KiB' : level === 2 ? '2 MiB' : '1 GiB'}) -> ${hx(frame)} ${perm === 3n ? 'RW' : perm === 1n ? 'R' : 'W'} in DID ${dom.did}.`);
    this.memQ(at, [e]);
    if (this.present(old)) this.invalidateRange(dom, iova, level);
    if (level > 1 && this.present(old) && !this.large(old)) this.invalidateRange(dom, iova, level);
    dom.maps.set(iova, { iova, level, frame, perm: Number(perm) });
  }

  unmap(p: Dice, change: boolean): void {
    const doms = this.xlateDomains().filter((d) => d.maps.size);
    if (!doms.length) return;
    const dom = p.of(doms);
    const m = p.of([...dom.maps.values()]);
    const table = this.ensurePath(dom, m.iova, m.level, p);
    const at = slEntryAddr(table, m.iova, m.level);
    if (change) {
      const perm = BigInt(p.of([1, 2, 3]));
      const frame = p.chance(0.5) ? this.frame(p, m.level) : m.frame;
      this.note(`Change the mapping of ${hx(m.iova)} in DID ${dom.did}: -> ${hx(frame)} ${perm === 3n ? 'RW' : perm === 1n ? 'R' : 'W'}.`);
      this.memQ(at, [this.leafEntry(frame, perm, m.level)]);
      dom.maps.set(m.iova, { ...m, frame, perm: Number(perm) });
    } else {
      this.note(`Unmap ${hx(m.iova)} in DID ${dom.did}.`);
      this.memQ(at, [0n]);
      dom.maps.delete(m.iova);
    }
    this.invalidateRange(dom, m.iova, m.level);
  }

  // ---- requests

  dmaAction(p: Dice): void {
    this.flush(p);
    const users = [...this.attached.keys()];
    const sid = users.length && p.chance(0.85) ? p.of(users) : p.of(this.sc.sids);
    const att = this.attached.get(sid);
    const r = p.int(100);
    const dir: 'r' | 'w' = p.chance(0.5) ? 'r' : 'w';
    let iova: bigint;
    let len = p.of([1, 4, 8, 8, 64, 256, 4096]);
    let why: string;
    if (r < 60 && att && !att.domain.passThrough && att.domain.maps.size) {
      const m = p.of([...att.domain.maps.values()]);
      const span = levelSpan(m.level);
      let off = (BigInt(p.next()) << 20n | BigInt(p.next())) % span & ~0xfffn;
      // Keep the access on RAM: the 1 GiB page from 0 is only used below the RAM size.
      if (m.level === 3 && m.frame === 0n) off = this.frame(p, 1);
      iova = m.iova + off;
      why = `through the mapping of ${hx(m.iova)}`;
    } else if (r < 75) {
      iova = this.iovaFor(p, att?.domain ?? { levels: this.sc.aw === 48 ? 4 : 3 } as Domain, 1) + BigInt(p.int(8)) * 0x1000n;
      why = 'to an address that may not be mapped';
    } else if (r < 80) {
      iova = (1n << BigInt(p.of([39, 48, 57]))) + BigInt(p.int(16)) * 0x1000n;
      why = 'above the address width';
    } else if (r < 85) {
      iova = IR_BASE + BigInt(p.int(0x100)) * 0x1000n;
      why = 'to the interrupt address range';
    } else {
      // Pass-through, or TE off: the request goes to its own address, which must be RAM.
      iova = this.frame(p, 1);
      why = 'to plain RAM';
    }
    const off = BigInt(p.int(4096));
    iova = (iova & ~0xfffn) | (len === 4096 ? 0n : off & ~BigInt(len - 1));
    if ((iova & 0xfffn) + BigInt(len) > 0x1000n) len = Number(0x1000n - (iova & 0xfffn));
    this.note(`DMA ${dir === 'r' ? 'read' : 'write'} of ${len} bytes by ${rid(sid)} ${why}.`);
    this.safeDma(sid, iova, len, dir, p);
  }

  msiAction(p: Dice): void {
    this.flush(p);
    const sid = p.of(this.sc.sids);
    const r = p.int(10);
    if (r < 7) {
      const entries = this.irtEntries();
      const known = [...this.ir.irtes.keys()];
      let index = known.length && p.chance(0.8) ? p.of(known) : p.int(entries + 4);
      let shv = false, sub = 0;
      if (p.chance(0.3)) {
        shv = true;
        sub = p.int(4);
        index = Math.max(0, index - sub);
      }
      if (p.chance(0.03)) index |= 0x8000;
      const addr = IR_BASE | (BigInt(index & 0x7fff) << 5n) | 0x10n | (shv ? 0x8n : 0n) | (BigInt((index >> 15) & 1) << 2n);
      const data = shv ? sub : p.int(0x10000);
      this.note(`MSI from ${rid(sid)}, remappable: handle ${index}${shv ? ` + sub-handle ${sub}` : ''}.`);
      this.msi(sid, addr, data);
    } else {
      const dest = p.int(256), rh = p.chance(0.2) ? 8n : 0n, dm = p.chance(0.2) ? 4n : 0n;
      const data = (0x20 + p.int(0xd0)) | (p.of([0, 1, 4]) << 8) | (p.chance(0.3) ? 0xc000 : 0x4000);
      this.note(`MSI from ${rid(sid)}, compatibility format: destination ${dest}.`);
      this.msi(sid, IR_BASE | (BigInt(dest) << 12n) | rh | dm, data);
    }
  }

  // ---- fault handling and registers

  faults(p: Dice): void {
    this.note('Fault handling: FSTS, the fault record (PV, bits 123:104, masked: defined only with PP = 1), clear F, clear FSTS.');
    this.rd(REG.FSTS, 4);
    if (p.chance(0.85)) this.rd(frcdSidDword(0), 8, 0xf00000ffffffffffn);
    else this.rd(frcdSidDword(0), 8);
    this.rd(frcdLo(0), 8);
    this.rd(REG.FECTL, 4);
    if (p.chance(0.8)) {
      this.wr(frcdTopDword(0), 4, FRCD_F);
      if (p.chance(0.85)) this.wr(REG.FSTS, 4, p.of([0x1, 0x3, 0x11, 0x73]));
      this.rd(REG.FSTS, 4);
      this.rd(REG.FECTL, 4);
    }
  }

  regs(p: Dice): void {
    const all: Array<[number, 4 | 8, bigint?]> = [
      [0x0, 4], [0x8, 8], [0x10, 8], [0x18, 4], [0x1c, 4], [0x20, 8], [0x28, 8, ~(3n << 59n) & ((1n << 64n) - 1n)], [0x34, 4], [0x38, 4],
      [0x3c, 4], [0x40, 4], [0x44, 4], [0x58, 8], [0x64, 4], [0x68, 4], [0x70, 8], [0x80, 8], [0x88, 8], [0x90, 8], [0x9c, 4], [0xa0, 4], [0xa4, 4],
      [0xa8, 4], [0xac, 4], [0xb0, 8], [0xb8, 8], [0xc0, 8], [0xf0, 8], [0xf8, 8], [0x100, 8], [0x220, 8], [0x228, 8, 0xf00000ffffffffffn],
      [0x230, 4], [0x400, 8], [0xff8, 8],
    ];
    const n = 1 + p.int(5);
    this.note('Register reads.');
    for (let k = 0; k < n; k++) {
      const [reg, size, mask] = p.of(all);
      this.rd(reg, size, mask);
    }
  }

  feRegs(p: Dice): void {
    if (p.chance(0.5)) {
      this.note('Fault event: FEDATA, FEADDR' + (this.sc.eim ? ', FEUADDR' : '') + ', then FECTL (IM).');
      this.wr(REG.FEDATA, 4, p.int(0x10000));
      this.wr(REG.FEADDR, 4, Number(IR_BASE | (BigInt(p.int(256)) << 12n)));
      if (this.sc.eim && p.chance(0.5)) this.wr(REG.FEUADDR, 4, p.int(4));
      this.wr(REG.FECTL, 4, p.chance(0.5) ? 0 : 0x80000000);
      this.rd(REG.FECTL, 4);
      if (p.chance(0.5)) this.rd(REG.FEDATA, 4);
    } else {
      this.note('Invalidation event: IEDATA, IEADDR' + (this.sc.eim ? ', IEUADDR' : '') + ', then IECTL (IM).');
      this.wr(REG.IEDATA, 4, p.int(0x10000));
      this.wr(REG.IEADDR, 4, Number(IR_BASE | (BigInt(p.int(256)) << 12n)));
      if (this.sc.eim && p.chance(0.5)) this.wr(REG.IEUADDR, 4, p.int(4));
      this.wr(REG.IECTL, 4, p.chance(0.5) ? 0 : 0x80000000);
      this.rd(REG.IECTL, 4);
      if (p.chance(0.5)) this.rd(REG.IEDATA, 4);
    }
  }

  teToggle(p: Dice): void {
    this.te = !this.te;
    this.setPersistent(GCMD_TE, this.te, this.te ? 'GCMD.TE: translation on.' : 'GCMD without TE: translation off.');
    this.readStatus(p);
  }

  srtp(p: Dice): void {
    const next = this.rta === ROOT ? ROOT_ALT : ROOT;
    const entries: bigint[] = [];
    for (let bus = 0; bus < 3; bus++) entries.push(this.ctxTables.has(bus) ? this.ctxTables.get(bus)! | 1n : 0n, 0n);
    this.note(`A new root table at ${hx(next)} with the same entries; RTADDR, SRTP, then global invalidations.`);
    this.memQ(next, entries);
    this.wr64(REG.RTADDR, this.rtaddr(next), this.sc.splitWrites);
    this.gcmdWrite(GCMD_SRTP, 'GCMD.SRTP');
    this.rta = next;
    this.readStatus(p);
    this.pending.ctxAll = true;
    this.pending.iotlbAll = true;
    this.flush(p);
  }

  waitIf(p: Dice): void {
    if (!this.qi.on) this.qiEnable(p);
    this.flush(p);
    this.submit([], [], p, 'if');
    this.note('ICS.IWC and IECTL.IP, then clear IWC (write 1).');
    this.rd(REG.ICS, 4);
    this.rd(REG.IECTL, 4);
    this.wr(REG.ICS, 4, 1);
    this.rd(REG.ICS, 4);
    this.rd(REG.IECTL, 4);
  }

  qiError(p: Dice): void {
    if (!this.qi.on) this.qiEnable(p);
    this.flush(p);
    const bad = this.qi.tail;
    // Type 8 (PASID-based device-TLB invalidation) is a scalable-mode descriptor: only legacy traces use it as an invalid one.
    const bad8 = this.sc.sm ? [] : [[0x8n, 0n]];
    const badDesc = p.of([[0x0n, 0n], [0x12n | 0x100n, 0n], [0x1n, 0n], [0x32n, 19n], ...bad8] as Array<[bigint, bigint]>);
    this.note(`An invalid descriptor at slot ${bad} (${hx(badDesc[0])}): the queue stops with FSTS.IQE and IQH on it.`);
    this.submit([badDesc], ['invalid'], p);
    this.rd(REG.FSTS, 4);
    this.rd(REG.IQH, 8);
    this.rd(REG.FECTL, 4);
    this.note('Recovery: replace it by a wait, clear IQE, write the tail again.');
    const recovery = waitDesc({ sw: true, data: this.qi.status, addr: STATUS + 0x200n });
    this.memQ(QUEUE + BigInt(this.slotBytes * bad), this.slotBytes === 32 ? [...recovery, 0n, 0n] : recovery);
    this.qi.status++;
    this.wr(REG.FSTS, 4, FSTS_IQE);
    this.wr64(REG.IQT, BigInt(this.qi.tail * this.slotBytes), false);
    this.rd(REG.IQH, 8);
    this.rd(REG.FSTS, 4);
  }

  irte(p: Dice, odd = false): void {
    if (!this.sc.ir) return;
    if (!this.ir.latched) this.irSetup(p);
    const known = [...this.ir.irtes.keys()];
    const index = known.length && p.chance(0.5) ? p.of(known) : p.int(this.irtEntries());
    this.setIrte(index, p, odd || p.chance(0.08));
  }

  irToggle(p: Dice): void {
    if (!this.sc.ir) return;
    if (!this.ir.latched) return this.irSetup(p);
    if (p.chance(0.5)) {
      this.ir.on = !this.ir.on;
      this.setPersistent(GCMD_IRE, this.ir.on, this.ir.on ? 'GCMD.IRE: remapping on.' : 'GCMD without IRE: remapping off.');
      this.readStatus(p);
    } else {
      this.ir.eime = this.sc.eim && !this.ir.eime;
      this.ir.s = p.of([3, 4, 7]);
      // IRTEs beyond the new size are forgotten by the model.
      for (const k of [...this.ir.irtes.keys()]) if (k >= this.irtEntries()) this.ir.irtes.delete(k);
      this.irtaLatch(p);
    }
  }

  cfi(p: Dice): void {
    if (!this.sc.ir) return;
    this.ir.cfi = !this.ir.cfi;
    this.setPersistent(GCMD_CFI, this.ir.cfi, this.ir.cfi ? 'GCMD.CFI: compatibility-format interrupts pass through (xAPIC mode).' : 'GCMD without CFI.');
    this.readStatus(p);
  }

  /**
   * A structure outside RAM (still below 0xb0000000): the unit's read fails
   * as a memory access does (trace-format.md "ram"): a bus whose context
   * table is beyond RAM (9h), a domain whose top-level table is (3h), or a
   * level-2 entry pointing beyond RAM (7h below it). Guest errors with a
   * defined outcome; the driver never writes through these pointers.
   */
  broken(p: Dice): void {
    const beyond = this.sc.ram + 0x1000n * BigInt(1 + p.int(64));
    const r = p.int(3);
    if (r === 0) return this.brokenRoot(p, beyond);
    if (r === 1) {
      const sid = p.of(this.sc.sids);
      const dom: Domain = { did: this.nextDid++, levels: 3, top: beyond, passThrough: false, maps: new Map() };
      const old = this.attached.get(sid);
      this.note(`Context entry of ${rid(sid)}: top-level table at ${hx(beyond)}, beyond RAM (reads fail: 3h), DID ${dom.did}.`);
      this.memQ(contextEntryAddr(this.ctxTable(sid >> 8), sid & 0xff), contextEntry({ table: beyond, aw: 1, did: dom.did }));
      if (old) this.pending.ctx.push({ sid, did: old.domain.did });
      else if (this.sc.cm) this.pending.ctx.push({ sid, did: 0 });
      this.attached.delete(sid);
      return;
    }
    this.brokenTable(p, beyond);
  }

  /** A bus whose root entry points to a context table beyond RAM. */
  protected brokenRoot(p: Dice, beyond: bigint): void {
    const used = new Set(this.sc.sids.map((s) => s >> 8));
    const free = [0, 1, 2, 3].filter((b) => !this.ctxTables.has(b) && used.has(b));
    if (!free.length) return;
    const bus = p.of(free);
    this.note(`Root entry for bus ${bus}: a context table at ${hx(beyond)}, beyond RAM (reads fail${this.sc.sm ? '' : ': 9h'}).`);
    this.memQ(rootEntryAddr(this.rta, bus), rootEntry(beyond));
  }

  /** A level-2 paging entry pointing to a table beyond RAM, with a mapping through it for requests to use. */
  protected brokenTable(p: Dice, beyond: bigint): void {
    const doms = this.xlateDomains().filter((d) => this.tables.has(d.top));
    if (!doms.length) return;
    const dom = p.of(doms);
    const iova = this.iovaFor(p, dom, 2) & ~0x1fffffn;
    const table = this.ensurePath(dom, iova, 2, p);
    const at = slEntryAddr(table, iova, 2);
    const old = this.q(at);
    this.note(`Level-2 entry for ${hx(iova)} in DID ${dom.did}: a table at ${hx(beyond)}, beyond RAM (reads fail${this.sc.sm ? '' : ': 7h'}).`);
    this.memQ(at, [this.tableEntry(beyond, BigInt(SL_RW))]);
    if (this.present(old)) this.invalidateRange(dom, iova, 2);
    for (const [k, m] of dom.maps) if (m.iova >= iova && m.iova < iova + 0x200000n) dom.maps.delete(k);
    dom.maps.set(iova, { iova, level: 1, frame: 0n, perm: 3 });
  }

  /** An action of hostile mode: none in a driver-like trace (hostile.ts overrides this). */
  protected hostileAction(_kind: string, _p: Dice): void {}

  // ---- the interpreter

  run(a: Action): void {
    const p = new Dice(a);
    switch (a.k) {
      case 'attach': return this.attach(p);
      case 'detach': return this.detach(p);
      case 'map': return this.map(p);
      case 'unmap': return this.unmap(p, false);
      case 'remap': return this.unmap(p, true);
      case 'dma': return this.dmaAction(p);
      case 'faults': return this.faults(p);
      case 'regs': return this.regs(p);
      case 'feRegs': return this.feRegs(p);
      case 'te': return this.teToggle(p);
      case 'srtp': return this.srtp(p);
      case 'qi': return this.qi.on ? this.qiDisable(p) : this.qiEnable(p);
      case 'waitIf': return this.waitIf(p);
      case 'qiError': return this.qiError(p);
      case 'flush': return this.flush(p);
      case 'irte': return this.irte(p);
      case 'msi': return this.msiAction(p);
      case 'irToggle': return this.irToggle(p);
      case 'cfi': return this.cfi(p);
      case 'broken': return this.broken(p);
      default: return this.hostileAction(a.k, p);
    }
  }
}
