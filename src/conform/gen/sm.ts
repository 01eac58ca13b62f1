/**
 * The conformance generator's driver model in scalable mode (`SmDriver`),
 * for QEMU 10: the same abstract actions as driver.ts, lowered onto
 * scalable-mode structures the way Linux 6.x programs them.
 *
 * - RTADDR.TTM = 01; root entries with a lower context table (every
 *   requester id the generator uses has devfn < 128), 256-bit context
 *   entries, one PASID directory and one PASID table per device, and the
 *   device's domain in the PASID entry named by the context entry's RID_PASID
 *   (usually 0, as Linux): PGTT 010 second-stage tables, or with `flts` PGTT
 *   001 first-stage tables (4-level x86 paging, U/S set, R/W from the
 *   mapping's rights), PGTT 100 for pass-through.
 * - Queued invalidation only, with IQA.DW = 1 (256-bit slots): context-cache
 *   (device-selective or global: scalable-mode context entries have no DID),
 *   PASID-cache (type 7) after a PASID entry changes, IOTLB (type 2) for
 *   second-stage domains and PASID-based IOTLB (type 6) for first-stage ones.
 *   Every change is invalidated before the next request (change ->
 *   invalidate -> use), so a trace never observes an open window.
 * - Guest errors with a defined outcome (`broken`): a PASID directory beyond
 *   RAM, a directory or PASID entry not present, a PGTT the unit does not
 *   offer, a reserved bit in a PASID entry, a context or paging table beyond
 *   RAM.
 * - After a successful first-stage DMA the leaf entry is sometimes read back
 *   (`mrd`), showing the Accessed and Dirty flags the walk set.
 *
 * Requests carry no PASID: QEMU's edu device has no PASID capability.
 */
import {
  IQA_DW, PC_G_DOMAIN, PC_G_GLOBAL, PC_G_PASID, PGTT_FIRST, PGTT_NESTED, PGTT_PT, PGTT_SECOND, PIOTLB_G_PAGE, PIOTLB_G_PASID, REG, RTADDR_TTM_SM,
  fsEntry, iqaValue, levelSpan, pasidDirEntry, pasidDirEntryAddr, pasidEntry, pasidEntryAddr, pcDesc, piotlbDesc, slAddr, slEntryAddr, smContextEntry,
  smContextEntryAddr, GSTS_TES, type Qw8,
} from '../../guest/layout.js';
import { Dice, Driver, hx, rid, QUEUE, IR_BASE, type Domain } from './driver.js';
import type { Scenario } from './scenario.js';

/** What the driver built for one device: its PASID directory and table, and its RID_PASID. */
interface SmDevice {
  dir: bigint;
  pdts: number;
  ridPasid: number;
  table: bigint;
  /** The context entry (and directory entry) as written for this device: false after a broken() change. */
  ctxOk: boolean;
}

export class SmDriver extends Driver {
  private readonly devs = new Map<number, SmDevice>();
  /** RID_PASIDs of the devices ever attached to a first-stage domain (its IOTLB entries carry them). */
  private readonly pasidsOf = new Map<Domain, Set<number>>();

  constructor(sc: Scenario) {
    super(sc, false);
  }

  private get fs(): boolean {
    return !!this.sc.flts;
  }

  // ---- hooks

  protected override rtaddr(addr: bigint): bigint {
    return addr | RTADDR_TTM_SM;
  }

  protected override get queueOnly(): boolean {
    return true;
  }

  protected override get slotBytes(): number {
    return 32;
  }

  protected override iqa(qs: number): bigint {
    return iqaValue(QUEUE, qs) | IQA_DW;
  }

  protected override tableEntry(table: bigint, perm: bigint): bigint {
    if (!this.fs) return super.tableEntry(table, perm);
    // First stage: no write-only rights; U/S set at every level (requests without PASID are user requests).
    return fsEntry({ addr: table, rw: (perm & 2n) !== 0n, us: true });
  }

  protected override leafEntry(frame: bigint, perm: bigint, level: number, extra = 0n): bigint {
    if (!this.fs) return super.leafEntry(frame, perm, level, extra);
    return fsEntry({ addr: frame, rw: (perm & 2n) !== 0n, us: true, ps: level > 1 });
  }

  protected override present(e: bigint): boolean {
    return this.fs ? (e & 1n) === 1n : super.present(e);
  }

  protected override untranslated(sid: number): boolean {
    if (!(this.core.mmioRead32(REG.GSTS) & GSTS_TES)) return true;
    const pr = this.core.probe(sid, 0n, 'r');
    return pr.ok && pr.level === 0 && pr.leaf === 0n;
  }

  protected override target(sid: number, iova: bigint, dir: 'r' | 'w'): bigint | undefined {
    if (iova >= IR_BASE && iova <= 0xfeefffffn) return undefined;
    const pr = this.core.probe(sid, iova, dir);
    return pr.ok ? pr.gpa : undefined;
  }

  protected override newDomain(p: Dice, passThrough: boolean): Domain {
    const d = super.newDomain(p, passThrough);
    if (this.fs && !passThrough) d.levels = 4; // FSPM 00: 4-level first-stage tables (aw 48)
    return d;
  }

  // ---- invalidation

  /** The invalidation of everything the domain `dom` may have cached for `pasid`. */
  private dropDomain(dom: Domain, pasid: number): void {
    if (this.fs && !dom.passThrough) this.pending.piotlb.push({ did: dom.did, pasid, addr: 0n });
    else this.pending.iotlbDids.add(dom.did);
  }

  protected override invalidateRange(dom: Domain, iova: bigint, level: number): void {
    super.invalidateRange(dom, iova, level);
    if (!this.fs) return;
    // First-stage translations are cached with their PASID: PASID-based IOTLB invalidations.
    const t = this.pending.iotlb.pop()!;
    for (const pasid of this.pasidsOf.get(dom) ?? []) this.pending.piotlb.push({ did: t.did, pasid, addr: t.addr, am: t.am });
  }

  protected override smDescs(p: Dice, descs: Array<readonly bigint[]>, what: string[]): void {
    const pd = this.pending;
    if (pd.pcAll || (pd.pc.length && p.chance(0.2))) {
      descs.push(pcDesc({ g: PC_G_GLOBAL }));
      what.push('PASID-cache global');
    } else {
      for (const c of pd.pc) {
        if (c.pasid === undefined || p.chance(0.3)) {
          descs.push(pcDesc({ g: PC_G_DOMAIN, did: c.did }));
          what.push(`PASID-cache DID ${c.did}`);
        } else {
          descs.push(pcDesc({ g: PC_G_PASID, did: c.did, pasid: c.pasid }));
          what.push(`PASID-cache DID ${c.did} PASID ${c.pasid}`);
        }
      }
    }
    for (const t of pd.piotlb) {
      if (t.am === undefined || t.am > 18 || p.chance(0.15)) {
        descs.push(piotlbDesc({ g: PIOTLB_G_PASID, did: t.did, pasid: t.pasid }));
        what.push(`PASID-IOTLB DID ${t.did} PASID ${t.pasid}`);
      } else {
        descs.push(piotlbDesc({ g: PIOTLB_G_PAGE, did: t.did, pasid: t.pasid, addr: t.addr, am: t.am }));
        what.push(`PASID-IOTLB DID ${t.did} PASID ${t.pasid} ${hx(t.addr)} AM ${t.am}`);
      }
    }
  }

  // ---- structures

  /** The device's context entry, PASID directory and table, written (again) when needed. */
  private device(sid: number, p: Dice): SmDevice {
    let d = this.devs.get(sid);
    if (!d) {
      const pdts = p.of([0, 0, 1, 2]);
      const ridPasid = p.chance(0.75) ? 0 : p.of([1, 5, 63, 64, 200, 0x1fff]);
      d = { dir: this.page(), pdts, ridPasid, table: this.page(), ctxOk: false };
      this.devs.set(sid, d);
    }
    if (!d.ctxOk) {
      const fpd = p.chance(0.1);
      const ctxTable = this.ctxTable(sid >> 8);
      this.note(`PASID directory of ${rid(sid)} at ${hx(d.dir)} (${2 ** (d.pdts + 7)} entries), its PASID table at ${hx(d.table)}.`);
      this.memQ(pasidDirEntryAddr(d.dir, d.ridPasid), [pasidDirEntry({ table: d.table })]);
      this.note(`Scalable-mode context entry of ${rid(sid)}: RID_PASID ${d.ridPasid}${fpd ? ', FPD' : ''}.`);
      this.memQ(smContextEntryAddr(ctxTable, sid & 0xff), smContextEntry({ pdts: d.pdts, pasidDir: d.dir, ridPasid: d.ridPasid, fpd }));
      // A context entry was not present (or pointed elsewhere): context-cache, then PASID-cache invalidations.
      this.pending.ctx.push({ sid, did: 0 });
      this.pending.pcAll = true;
      d.ctxOk = true;
    }
    return d;
  }

  /** Invalidations after `sid`'s PASID entry (or what leads to it) changed, for the domain it had. */
  private dropAttachment(sid: number, d: SmDevice): void {
    const old = this.attached.get(sid);
    if (!old) return;
    this.pending.pc.push({ did: old.domain.did, pasid: d.ridPasid });
    this.dropDomain(old.domain, d.ridPasid);
    this.attached.delete(sid);
  }

  protected override attachSid(sid: number, p: Dice): void {
    const passThrough = this.sc.pt && p.chance(0.15);
    const existing = this.domains.filter((x) => x.passThrough === passThrough);
    const dom = existing.length && p.chance(0.5) ? p.of(existing) : this.newDomain(p, passThrough);
    const fpd = p.chance(0.15);
    // AW: the second stage's levels; rarely a width CAP.SAGAW does not offer (an invalid PASID entry).
    let aw = dom.levels - 2;
    if (!passThrough && !this.fs && p.chance(0.04)) aw = this.sc.aw === 39 ? 2 : 3;
    const d = this.device(sid, p);
    this.dropAttachment(sid, d);
    // Caching mode: a not-present PASID entry may be cached; it has no DID to select it by.
    if (this.sc.cm) this.pending.pcAll = true;
    const pgtt = passThrough ? PGTT_PT : this.fs ? PGTT_FIRST : PGTT_SECOND;
    const entry = pasidEntry({
      aw, pgtt, did: dom.did, fpd,
      ssptptr: pgtt === PGTT_SECOND ? dom.top : 0n,
      fsptptr: pgtt === PGTT_FIRST ? dom.top : 0n,
    });
    const kind = passThrough ? 'pass-through (PGTT 100)' : `${this.fs ? 'first-stage (PGTT 001)' : 'second-stage (PGTT 010)'} tables at ${hx(dom.top)}, ${dom.levels} levels`;
    this.note(`PASID entry ${d.ridPasid} of ${rid(sid)}: ${kind}, DID ${dom.did}${fpd ? ', FPD' : ''}${aw !== dom.levels - 2 ? `, AW ${aw} (not supported)` : ''}.`);
    this.memQ(pasidEntryAddr(d.table, d.ridPasid), entry);
    if (this.fs && !passThrough) {
      const set = this.pasidsOf.get(dom) ?? new Set<number>();
      set.add(d.ridPasid);
      this.pasidsOf.set(dom, set);
    }
    this.attached.set(sid, { domain: dom, fpd, aw });
  }

  override detach(p: Dice): void {
    const sids = [...this.attached.keys()];
    if (!sids.length) return;
    const sid = p.of(sids);
    const d = this.devs.get(sid)!;
    if (p.chance(0.75)) {
      this.note(`PASID entry ${d.ridPasid} of ${rid(sid)} cleared.`);
      this.memQ(pasidEntryAddr(d.table, d.ridPasid), new Array<bigint>(8).fill(0n));
    } else {
      this.note(`Context entry of ${rid(sid)} cleared.`);
      this.memQ(smContextEntryAddr(this.ctxTable(sid >> 8), sid & 0xff), [0n, 0n, 0n, 0n]);
      this.pending.ctx.push({ sid, did: 0 });
      d.ctxOk = false;
    }
    this.dropAttachment(sid, d);
  }

  /** A PASID entry with `f` changed, for a device attached now (a guest error with a defined outcome). */
  private brokenPasidEntry(p: Dice, why: string, change: (e: Qw8) => void): void {
    const sids = [...this.attached.keys()];
    if (!sids.length) return;
    const sid = p.of(sids);
    const d = this.devs.get(sid)!;
    const at = pasidEntryAddr(d.table, d.ridPasid);
    const e = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => this.q(at + 8n * BigInt(i))) as Qw8;
    change(e);
    this.note(`PASID entry ${d.ridPasid} of ${rid(sid)}: ${why}.`);
    this.memQ(at, e);
    this.dropAttachment(sid, d);
  }

  override broken(p: Dice): void {
    const beyond = this.sc.ram + 0x1000n * BigInt(1 + p.int(64));
    const r = p.int(7);
    if (r === 0) return this.brokenRoot(p, beyond);
    if (r === 1) return this.brokenTable(p, beyond);
    if (r === 2) {
      const sid = p.of(this.sc.sids);
      const d = this.device(sid, p);
      this.note(`Context entry of ${rid(sid)}: PASID directory at ${hx(beyond)}, beyond RAM (reads fail).`);
      this.memQ(smContextEntryAddr(this.ctxTable(sid >> 8), sid & 0xff), smContextEntry({ pdts: d.pdts, pasidDir: beyond, ridPasid: d.ridPasid }));
      this.pending.ctx.push({ sid, did: 0 });
      this.pending.pcAll = true;
      d.ctxOk = false;
      this.dropAttachment(sid, d);
      return;
    }
    if (r === 3) {
      const sid = p.of(this.sc.sids);
      const d = this.device(sid, p);
      const table = p.chance(0.5) ? beyond : undefined;
      this.note(`PASID directory entry of ${rid(sid)} for PASID ${d.ridPasid}: ${table ? `a PASID table at ${hx(table)}, beyond RAM` : 'not present'}.`);
      this.memQ(pasidDirEntryAddr(d.dir, d.ridPasid), [table ? pasidDirEntry({ table }) : 0n]);
      this.pending.pcAll = true;
      d.ctxOk = false;
      this.dropAttachment(sid, d);
      return;
    }
    if (r === 4) return this.brokenPasidEntry(p, 'P clear, the other fields kept', (e) => { e[0] &= ~1n; });
    if (r === 5) {
      // PGTT the unit does not offer: 011 (nested, no nest), 001 without flts, 010 with flts, reserved 000, 101-111.
      const pgtt = p.of([0, PGTT_NESTED, this.fs ? PGTT_SECOND : PGTT_FIRST, 5, 6, 7]);
      return this.brokenPasidEntry(p, `PGTT ${pgtt.toString(2).padStart(3, '0')}, which this unit does not offer`, (e) => { e[0] = (e[0] & ~(7n << 6n)) | (BigInt(pgtt) << 6n); });
    }
    const q = p.of([3, 4, 5, 6, 7]), bit = BigInt(p.int(64));
    return this.brokenPasidEntry(p, `reserved bit ${64 * q + Number(bit)} set`, (e) => { e[q] |= 1n << bit; });
  }

  /** A new root table: after SRTP also a global PASID-cache invalidation (digest §2: Linux iommu_set_root_entry). */
  override srtp(p: Dice): void {
    this.pending.pcAll = true;
    super.srtp(p);
  }

  // ---- requests

  /** After a successful first-stage DMA, sometimes read its leaf entry back (Accessed and Dirty). */
  override dma(sid: number, iova: bigint, len: number, dir: 'r' | 'w'): void {
    super.dma(sid, iova, len, dir);
    const att = this.attached.get(sid);
    if (!this.fs || !this.tr.ok || !att || att.domain.passThrough || this.untranslated(sid)) return;
    const p = new Dice({ k: 'ad', a: Number(iova & 0xffffn), b: sid, c: len, d: this.units.length });
    if (!p.chance(0.35)) return;
    let table = att.domain.top;
    for (let l = att.domain.levels; l >= 1; l--) {
      const at = slEntryAddr(table, iova, l);
      const e = this.q(at);
      if (!this.present(e)) return;
      if (l === 1 || ((l === 2 || l === 3) && this.large(e))) {
        this.note(`The leaf entry of ${hx(iova & ~(levelSpan(l) - 1n))} (level ${l}) after the walk: Accessed${dir === 'w' ? ' and Dirty' : ''} set.`);
        this.mrd(at, 8);
        return;
      }
      table = slAddr(e);
    }
  }
}
