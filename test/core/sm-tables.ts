/**
 * Scalable-mode structures for the core's tests, encoded from the VT-d specification's layouts
 * (chapter 9): root entry halves, 256-bit context entries, PASID directory entries, 512-bit PASID
 * entries, and second- and first-stage page tables built by a bump allocator in guest memory.
 */
import { Iommu, type IommuOptions } from '../../src/index.js';

export const RTADDR = 0x20, GCMD = 0x18, GSTS = 0x1c, FSTS = 0x34, IQH = 0x80, IQT = 0x88, IQA = 0x90, FRCD = 0x220;
export const GCMD_TE = 0x80000000, GCMD_SRTP = 0x40000000, GCMD_QIE = 0x04000000;
export const ROOT = 0x100000, CTX_LO = 0x101000, CTX_HI = 0x102000, DIR = 0x103000, PTAB = 0x104000;
/** 00:03.0: devfn 0x18, in the lower context table. */
export const SID = 0x18;
export const PGTT = { FS: 1, SS: 2, NESTED: 3, PT: 4 } as const;

export interface CtxFields { p?: boolean; fpd?: boolean; dte?: boolean; paside?: boolean; pre?: boolean; pdts?: number; dir?: number; ridPasid?: number; rsvd?: boolean }
export function ctxEntry(f: CtxFields = {}): bigint[] {
  const q0 = BigInt(f.dir ?? DIR) | (BigInt(f.pdts ?? 0) << 9n) | (f.pre ? 16n : 0n) | (f.paside ?? true ? 8n : 0n)
    | (f.dte ? 4n : 0n) | (f.fpd ? 2n : 0n) | (f.p ?? true ? 1n : 0n) | (f.rsvd ? 0x20n : 0n);
  return [q0, BigInt(f.ridPasid ?? 0), 0n, 0n];
}

export interface PeFields { p?: boolean; fpd?: boolean; aw?: number; pgtt: number; slptr?: number; did?: number; sre?: boolean; ere?: boolean; fspm?: number; wpe?: boolean; fsptr?: number; rsvd?: boolean }
export function pasidEntry(f: PeFields): bigint[] {
  const q0 = BigInt(f.slptr ?? 0) | (BigInt(f.pgtt) << 6n) | (BigInt(f.aw ?? 2) << 2n) | (f.fpd ? 2n : 0n) | (f.p ?? true ? 1n : 0n) | (f.rsvd ? 0x400n : 0n);
  const q1 = BigInt(f.did ?? 1);
  const q2 = BigInt(f.fsptr ?? 0) | (f.wpe ? 16n : 0n) | (BigInt(f.fspm ?? 0) << 2n) | (f.ere ? 2n : 0n) | (f.sre ? 1n : 0n);
  return [q0, q1, q2, 0n, 0n, 0n, 0n, 0n];
}

/** Every unit the scalable-mode tests created, for the fault-reason coverage check. */
export const created: Iommu[] = [];
export function tracked(u: Iommu): Iommu {
  created.push(u);
  return u;
}

/** Page-table pages from `next` up, and mapping helpers for both table formats. */
export class Tables {
  constructor(private readonly u: Iommu, private next: number) {}
  page(): number { const p = this.next; this.next += 0x1000; this.u.writeGuest(p, new Uint8Array(0x1000)); return p; }
  read(gpa: number): bigint { return new DataView(this.u.readGuest(gpa, 8).buffer).getBigUint64(0, true); }
  write(gpa: number, v: bigint): void { this.u.writeGuestQwords(gpa, [v]); }

  /** Second-stage (legacy format): maps the 4 KiB page at iova to frame with rights (1 R, 2 W) in a `levels`-level table at `top`. */
  mapSs(top: number, levels: number, iova: number, frame: number, rights = 3, leafLevel = 1): void {
    let table = top;
    for (let level = levels; level > leafLevel; level--) {
      const at = table + Number((BigInt(iova) >> BigInt(12 + 9 * (level - 1))) & 511n) * 8;
      let e = this.read(at);
      if ((e & 3n) === 0n) { e = BigInt(this.page()) | 3n; this.write(at, e); }
      table = Number(e & ~0xfffn);
    }
    const at = table + Number((BigInt(iova) >> BigInt(12 + 9 * (leafLevel - 1))) & 511n) * 8;
    this.write(at, BigInt(frame) | BigInt(rights) | (leafLevel > 1 ? 0x80n : 0n));
  }

  /**
   * First-stage (x86-64): maps iova to frame in a `levels`-level table at `top`; `flags` of the leaf
   * (P = 1, RW = 2, US = 4, PS added for large leaves), non-leaf entries get P | RW | US unless
   * `tableFlags` says otherwise. Returns the entries' addresses, top first.
   */
  mapFs(top: number, levels: number, iova: bigint | number, frame: number, flags = 7n, leafLevel = 1, tableFlags = 7n): number[] {
    const v = BigInt(iova);
    const at: number[] = [];
    let table = top;
    for (let level = levels; level > leafLevel; level--) {
      const a = table + Number((v >> BigInt(12 + 9 * (level - 1))) & 511n) * 8;
      at.push(a);
      let e = this.read(a);
      if ((e & 1n) === 0n) { e = BigInt(this.page()) | tableFlags; this.write(a, e); }
      table = Number(e & 0xffffffffff000n);
    }
    const a = table + Number((v >> BigInt(12 + 9 * (leafLevel - 1))) & 511n) * 8;
    at.push(a);
    this.write(a, BigInt(frame) | flags | (leafLevel > 1 ? 0x80n : 0n));
    return at;
  }
}

/**
 * A scalable-mode unit (aw 48 unless given) with one device (SID) whose context entry points to a
 * PASID directory at DIR whose entry 0 points to the PASID table at PTAB; `pe` is written for
 * PASID `pasid` (default 0 = RID_PASID). Translation is enabled with TTM = 01.
 */
export function smUnit(opts: IommuOptions, pe?: PeFields, ctx: CtxFields = {}, pasid = 0): { u: Iommu; t: Tables } {
  const u = tracked(Iommu.create({ aw: 48, sm: true, ...opts }));
  u.writeGuestQwords(ROOT, [BigInt(CTX_LO) | 1n, BigInt(CTX_HI) | 1n]);
  u.writeGuestQwords(CTX_LO + (SID & 0x7f) * 32, ctxEntry(ctx));
  u.writeGuestQwords(DIR + (pasid >> 6) * 8, [BigInt(PTAB) | 1n]);
  if (pe) u.writeGuestQwords(PTAB + (pasid & 63) * 64, pasidEntry(pe));
  u.mmioWrite(RTADDR, 8, BigInt(ROOT) | 0x400n); // TTM = 01
  u.mmioWrite(GCMD, 4, GCMD_SRTP);
  u.mmioWrite(GCMD, 4, GCMD_TE);
  return { u, t: new Tables(u, 0x200000) };
}

/** The fault record i: reason, PP, PV, PRIV, EXE, T (read), SID, F, FI. */
export function frcd(u: Iommu, i = 0): { f: boolean; reason: number; pp: boolean; pasid: number; priv: boolean; exe: boolean; read: boolean; sid: number; fi: bigint } {
  const lo = u.mmioRead(FRCD + 16 * i, 8), hi = u.mmioRead(FRCD + 16 * i + 8, 8);
  return {
    f: (hi >> 63n) === 1n, reason: Number((hi >> 32n) & 0xffn), pp: ((hi >> 31n) & 1n) === 1n, pasid: Number((hi >> 40n) & 0xfffffn),
    priv: ((hi >> 29n) & 1n) === 1n, exe: ((hi >> 30n) & 1n) === 1n, read: ((hi >> 62n) & 1n) === 1n, sid: Number(hi & 0xffffn), fi: lo,
  };
}

/** Clears the fault record 0 and FSTS so the next fault is recorded. */
export function clearFaults(u: Iommu): void {
  u.mmioWrite(FRCD + 12, 4, 0x80000000);
  u.mmioWrite(FSTS, 4, 0x7f);
}
