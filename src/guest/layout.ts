/**
 * The guest's view of the remapping unit's programming interface: register
 * offsets, GCMD/GSTS bits, and the encoders and decoders of the in-memory
 * structures a guest driver writes (root and context entries, second-level
 * paging entries, invalidation descriptors, IRTEs) and of the register
 * commands it issues. Section numbers (§) refer to the VT-d digest
 * (docs/DESIGN.md, "Sources"), which cites the specification and its
 * public implementations for every field.
 *
 * Used by everything on the host that plays the guest: the guest-driver
 * model (guest/driver.ts), the conformance generator and its comparison
 * (conform/), the ftrace importer's descriptor decoder and the tests' guest
 * helpers. The plain-TS reference model (test/model/) keeps its own copy on
 * purpose: it is the independent second reading of the specification the
 * core is checked against.
 *
 * Values are BigInt where a field can pass bit 31 of a quadword, numbers for
 * 32-bit registers and for the single-bit flags the driver model tests on
 * plain-number entries (`SL_R`, `SL_W`, `SL_PS`: all below bit 31).
 *
 * Browser-safe: no Node imports.
 */

// ---------------------------------------------------------------- registers (§1.1)

/**
 * Register offsets. IVA and IOTLB sit at ECAP.IRO·16 and the fault-recording
 * registers at CAP.FRO·16; the trace format fixes IRO = 0xf and FRO = 0x22
 * (QEMU 7.2's values), so they are constants here.
 */
export const REG = {
  VER: 0x000, CAP: 0x008, ECAP: 0x010,
  GCMD: 0x018, GSTS: 0x01c, RTADDR: 0x020, CCMD: 0x028,
  FSTS: 0x034, FECTL: 0x038, FEDATA: 0x03c, FEADDR: 0x040, FEUADDR: 0x044,
  AFLOG: 0x058, PMEN: 0x064, PLMBASE: 0x068, PLMLIMIT: 0x06c, PHMBASE: 0x070, PHMLIMIT: 0x078,
  IQH: 0x080, IQT: 0x088, IQA: 0x090, ICS: 0x09c,
  IECTL: 0x0a0, IEDATA: 0x0a4, IEADDR: 0x0a8, IEUADDR: 0x0ac, IQER: 0x0b0, IRTA: 0x0b8,
  MTRRCAP: 0x100,
  /** ECAP.IRO·16. */
  IVA: 0x0f0,
  /** ECAP.IRO·16 + 8. */
  IOTLB: 0x0f8,
  /** FRCD[0], CAP.FRO·16; record i at FRCD + 16·i (§6.1). */
  FRCD: 0x220,
} as const;

/**
 * The dwords of fault record i (§6.1), as a guest reads them: +8 holds SID
 * (15:0) and PP (31); +12 holds FR (7:0), PV (27:8), AT (29:28), T (30),
 * F (31), the record's bits 127:96.
 */
export const frcdLo = (i: number): number => REG.FRCD + 16 * i;
export const frcdSidDword = (i: number): number => REG.FRCD + 16 * i + 8;
export const frcdTopDword = (i: number): number => REG.FRCD + 16 * i + 12;
/** PP, bit 31 of dword +8 (record bit 95). */
export const FRCD_PP = 0x80000000;
/** PV, bits 27:8 of dword +12 (record bits 123:104). */
export const FRCD_PV_MASK = 0x0fffff00;
/** F, bit 31 of dword +12 (record bit 127); RW1C. */
export const FRCD_F = 0x80000000;

/*
 * GCMD / GSTS (§1.3): one bit per command, the status in GSTS at the same
 * position.
 *
 *   31  30   29  28   27  26  25  24    23  22..0
 *   TE  SRTP SFL EAFL WBF QIE IRE SIRTP CFI Rsvd     GCMD
 *   TES RTPS FLS AFLS WBFS QIES IRES IRTPS CFIS       GSTS
 *
 * Persistent: TE, EAFL, QIE, IRE, CFI (a GCMD write must repeat them);
 * one-shot: SRTP, SFL, WBF, SIRTP.
 */
export const GCMD_TE = 0x80000000, GCMD_SRTP = 0x40000000, GCMD_SFL = 0x20000000, GCMD_EAFL = 0x10000000;
export const GCMD_WBF = 0x08000000, GCMD_QIE = 0x04000000, GCMD_IRE = 0x02000000, GCMD_SIRTP = 0x01000000, GCMD_CFI = 0x00800000;
export const GSTS_TES = GCMD_TE, GSTS_RTPS = GCMD_SRTP, GSTS_QIES = GCMD_QIE, GSTS_IRES = GCMD_IRE, GSTS_IRTPS = GCMD_SIRTP, GSTS_CFIS = GCMD_CFI;
/** The persistent command bits a guest keeps in its shadow of GCMD (TE, QIE, IRE, CFI; EAFL is never set here). */
export const GCMD_PERSISTENT = (GCMD_TE | GCMD_QIE | GCMD_IRE | GCMD_CFI) >>> 0;

/** FSTS (§6.2): PFO 0, PPF 1, IQE 4 (RW1C except PPF). */
export const FSTS_PFO = 0x1, FSTS_PPF = 0x2, FSTS_IQE = 0x10;
/** FECTL / IECTL: IM 31 (RW), IP 30 (RO). */
export const ECTL_IM = 0x80000000, ECTL_IP = 0x40000000;
/** ICS.IWC, bit 0, RW1C. */
export const ICS_IWC = 0x1;

/** IQT / IQH: the byte offset of a 128-bit slot, index << 4 (§7.4, DW = 0). */
export const iqOffset = (slot: number | bigint): bigint => BigInt(slot) << 4n;
/** IQH / IQT bits 18:4: the slot's byte offset (DW = 0). */
export const IQ_OFFSET_MASK = 0x7fff0n;
/** IQA (§7.4): 63:12 base, 11 DW, 2:0 QS (2^(QS+8) descriptors). */
export const iqaValue = (queue: bigint, qs: number): bigint => queue | BigInt(qs);
/** The queue base of an IQA value (bits 63:12). */
export const iqaBase = (iqa: bigint): bigint => iqa & 0xfffffffffffff000n;
/** The queue's size in bytes: 2^(QS+8) descriptors of 16 bytes (DW = 0). */
export const iqaBytes = (iqa: bigint): number => (1 << (Number(iqa & 7n) + 8)) * 16;
/** IRTA (§9.1): 63:12 base, 11 EIME, 3:0 S (2^(S+1) entries). */
export const irtaValue = (table: bigint, eime: boolean, s: number): bigint => table | (eime ? IRTA_EIME : 0n) | BigInt(s);
export const IRTA_EIME = 0x800n;
/** IRT entries 2^(S+1) of an IRTA value. */
export const irtaEntries = (irta: bigint): number => 2 ** (Number(irta & 0xfn) + 1);

// ---------------------------------------------------------------- register invalidation (§7.2, §7.3)

/** Invalidation granularities (CIRG, IIRG, descriptor G): 1 global, 2 domain, 3 device (context) or page (IOTLB). */
export const G_GLOBAL = 1, G_DOMAIN = 2, G_DEVICE = 3, G_PAGE = 3;

/**
 * CCMD (§7.2):
 *
 *   63  62:61 60:59 58:34 33:32 31:16 15:0
 *   ICC CIRG  CAIG  Rsvd  FM    SID   DID
 */
export function ccmdValue(cirg: number, did: number, sid = 0, fm = 0): bigint {
  return CCMD_ICC | (BigInt(cirg) << 61n) | (BigInt(fm) << 32n) | (BigInt(sid) << 16n) | BigInt(did);
}
export const CCMD_ICC = 1n << 63n;
/** CAIG, bits 60:59 (RO: the granularity performed). */
export const CCMD_CAIG_MASK = 3n << 59n;

/**
 * IOTLB register (§7.3):
 *
 *   63  62   61:60 59   58:57 56:50 49 48 47:32 31:0
 *   IVT Rsvd IIRG  Rsvd IAIG  Rsvd  DR DW DID   Rsvd
 */
export function iotlbRegValue(iirg: number, did: number, drain: { dr?: boolean; dw?: boolean } = {}): bigint {
  return IOTLB_IVT | (BigInt(iirg) << 60n) | (drain.dr ? IOTLB_DR : 0n) | (drain.dw ? IOTLB_DW : 0n) | (BigInt(did) << 32n);
}
export const IOTLB_IVT = 1n << 63n, IOTLB_DR = 1n << 49n, IOTLB_DW = 1n << 48n;
/** IAIG, bits 58:57 (RO). */
export const IOTLB_IAIG_MASK = 3n << 57n;

/**
 * IVA (§7.3), and QW1 of the IOTLB descriptor (§7.5), the same layout:
 *
 *   63:12 11:7 6  5:0
 *   ADDR  Rsvd IH AM
 */
export function ivaValue(addr: bigint, am: number, ih = false): bigint {
  return addr | (ih ? IVA_IH : 0n) | BigInt(am);
}
export const IVA_IH = 0x40n;

// ---------------------------------------------------------------- root and context entries (§3.2, §3.3)

/** Bits 51:12: the address field of root, context and paging entries. */
export const ADDR_MASK = 0x000ffffffffff000n;
/** Root entry address: RTA + 16·bus (§3.1). */
export const rootEntryAddr = (rta: bigint, bus: number): bigint => (rta & ~0xfffn) + 16n * BigInt(bus);
/** Context entry address: CTP + 16·devfn (§3.1). */
export const contextEntryAddr = (ctp: bigint, devfn: number): bigint => ctp + 16n * BigInt(devfn);

/**
 * Legacy root entry (§3.2), 128 bits:
 *
 *   lo: 63:12 CTP | 11:1 Rsvd | 0 P        hi: Rsvd
 */
export function rootEntry(ctp: bigint): [bigint, bigint] {
  return [ctp | 1n, 0n];
}
export const rootPresent = (lo: bigint): boolean => (lo & 1n) !== 0n;
export const rootCtp = (lo: bigint): bigint => lo & ADDR_MASK;

/** Context-entry fields (§3.3). TT: 0 translated, 1 + device-TLB, 2 pass-through, 3 reserved. */
export interface ContextFields {
  present?: boolean;
  fpd?: boolean;
  tt?: number;
  /** SLPTPTR (the top table), 4 KiB aligned. */
  table: bigint;
  /** AW: levels - 2 (1 = 39-bit/3 levels, 2 = 48/4, 3 = 57/5). */
  aw: number;
  avail?: number;
  did: number;
}

/**
 * Legacy context entry (§3.3), 128 bits:
 *
 *   lo: 63:12 SLPTPTR | 11:4 Rsvd | 3:2 TT | 1 FPD | 0 P
 *   hi: 63:24 Rsvd | 23:8 DID | 7 Rsvd | 6:3 AVAIL | 2:0 AW
 */
export function contextEntry(f: ContextFields): [bigint, bigint] {
  const lo = f.table | (BigInt(f.tt ?? 0) << 2n) | (f.fpd ? 2n : 0n) | (f.present === false ? 0n : 1n);
  return [lo, (BigInt(f.did) << 8n) | (BigInt(f.avail ?? 0) << 3n) | BigInt(f.aw)];
}

export function decodeContext(lo: bigint, hi: bigint): Required<ContextFields> {
  return {
    present: (lo & 1n) !== 0n, fpd: (lo & 2n) !== 0n, tt: Number((lo >> 2n) & 3n), table: lo & ADDR_MASK,
    aw: Number(hi & 7n), avail: Number((hi >> 3n) & 0xfn), did: Number((hi >> 8n) & 0xffffn),
  };
}

/** Context AW field of a table with `levels` levels (§4.1: levels = AW + 2). */
export const contextAw = (levels: number): number => levels - 2;

// ---------------------------------------------------------------- second-level paging entries (§4.1, §4.2)

/*
 * Every level, 64 bits:
 *
 *   63  62 61:52  51:12          11  10:8 7  6:2  1 0
 *   ign TM ign    address        SNP ign  PS  -   W R
 *
 * Not present ⇔ R = W = 0. PS = 1 makes a level-2 (2 MiB) or level-3 (1 GiB)
 * entry a leaf. The flags are numbers so that the driver model can test them
 * on entries it keeps as plain numbers (below 2^53).
 */
export const SL_R = 0x1, SL_W = 0x2, SL_PS = 0x80, SL_SNP = 0x800;
export const SL_RW = SL_R | SL_W;

/** Shift of the IOVA bits a level-`level` entry translates: 12 + 9·(level - 1) (§4.1). */
export const levelShift = (level: number): number => 12 + 9 * (level - 1);
/** The bytes a level-`level` entry maps. */
export const levelSpan = (level: number): bigint => 1n << BigInt(levelShift(level));
/** Index of `iova`'s entry in a level-`level` table: (iova >> shift) & 0x1ff. */
export const levelIndex = (iova: bigint, level: number): bigint => (iova >> BigInt(levelShift(level))) & 0x1ffn;
/** Address of `iova`'s entry in the level-`level` table at `table`. */
export const slEntryAddr = (table: bigint, iova: bigint, level: number): bigint => table + 8n * levelIndex(iova, level);

/** A second-level entry: `addr` (table or frame) with R/W (`perm`, bits 1:0) and, for a large leaf, PS. */
export function slEntry(addr: bigint, perm: number | bigint, ps = false): bigint {
  return addr | BigInt(perm) | (ps ? BigInt(SL_PS) : 0n);
}
export const slPresent = (e: bigint): boolean => (e & BigInt(SL_RW)) !== 0n;
export const slPs = (e: bigint): boolean => (e & BigInt(SL_PS)) !== 0n;
export const slAddr = (e: bigint): bigint => e & ADDR_MASK;
/** Whether a present entry at `level` ends the walk: level 1, or PS at level 2 or 3. */
export const slIsLeaf = (e: bigint, level: number): boolean => level === 1 || ((level === 2 || level === 3) && slPs(e));

// ---------------------------------------------------------------- invalidation descriptors (§7.5)

/** Descriptor types, QW0 bits 3:0. */
export const DESC_CC = 0x1, DESC_IOTLB = 0x2, DESC_DEVTLB = 0x3, DESC_IEC = 0x4, DESC_WAIT = 0x5, DESC_PIOTLB = 0x6, DESC_PC = 0x7, DESC_PDEVTLB = 0x8;

export type Desc = [bigint, bigint];

/**
 * Context-cache invalidate (0x1):
 *
 *   QW0: 63:50 Rsvd | 49:48 FM | 47:32 SID | 31:16 DID | 15:6 Rsvd | 5:4 G | 3:0 type
 *   QW1: Rsvd
 */
export function ccDesc(g: number, did = 0, sid = 0, fm = 0): Desc {
  return [BigInt(DESC_CC) | (BigInt(g) << 4n) | (BigInt(did) << 16n) | (BigInt(sid) << 32n) | (BigInt(fm) << 48n), 0n];
}

/**
 * IOTLB invalidate (0x2):
 *
 *   QW0: 63:32 Rsvd | 31:16 DID | 15:8 Rsvd | 7 DR | 6 DW | 5:4 G | 3:0 type
 *   QW1: 63:12 ADDR | 11:7 Rsvd | 6 IH | 5:0 AM       (as IVA)
 */
export function iotlbDesc(g: number, did = 0, qw1 = 0n, drain: { dr?: boolean; dw?: boolean } = {}): Desc {
  return [BigInt(DESC_IOTLB) | (BigInt(g) << 4n) | (drain.dw ? DESC_IOTLB_DW : 0n) | (drain.dr ? DESC_IOTLB_DR : 0n) | (BigInt(did) << 16n), qw1];
}
export const DESC_IOTLB_DW = 0x40n, DESC_IOTLB_DR = 0x80n;

/**
 * Device-TLB invalidate (0x3):
 *
 *   QW0: 63:52 PFSID[15:4] | 51:48 Rsvd | 47:32 SID | 31:21 Rsvd | 20:16 MIP | 15:12 PFSID[3:0] | 11:4 Rsvd | 3:0 type
 *   QW1: 63:12 ADDR | 11:1 Rsvd | 0 S
 */
export function devTlbDesc(sid: number, addr: bigint, size: boolean, mip = 0, pfsid = 0): Desc {
  const p = BigInt(pfsid);
  return [BigInt(DESC_DEVTLB) | ((p & 0xfn) << 12n) | (BigInt(mip) << 16n) | (BigInt(sid) << 32n) | ((p >> 4n) << 52n), addr | (size ? 1n : 0n)];
}

/**
 * Interrupt-entry-cache invalidate (0x4):
 *
 *   QW0: 63:48 Rsvd | 47:32 IIDX | 31:27 IM | 26:5 Rsvd | 4 G (0 global, 1 index) | 3:0 type
 *   QW1: Rsvd
 */
export function iecDesc(index?: number, im = 0): Desc {
  if (index === undefined) return [BigInt(DESC_IEC), 0n];
  return [BigInt(DESC_IEC) | 0x10n | (BigInt(im) << 27n) | (BigInt(index) << 32n), 0n];
}

/**
 * Invalidation wait (0x5):
 *
 *   QW0: 63:32 status data | 31:8 Rsvd | 7 PD | 6 FN | 5 SW | 4 IF | 3:0 type
 *   QW1: 63:2 status address | 1:0 Rsvd
 */
export function waitDesc(w: { sw?: boolean; if?: boolean; fn?: boolean; data?: number; addr?: bigint }): Desc {
  const qw0 = BigInt(DESC_WAIT) | (w.if ? WAIT_IF : 0n) | (w.sw ? WAIT_SW : 0n) | (w.fn ? WAIT_FN : 0n) | (BigInt(w.data ?? 0) << 32n);
  return [qw0, w.addr ?? 0n];
}
export const WAIT_IF = 0x10n, WAIT_SW = 0x20n, WAIT_FN = 0x40n;

/** A descriptor's fields, by type (§7.5); types 0x6..0x8 decode the fields the host reads. */
export type DecodedDesc =
  | { type: 0x1; g: number; did: number; sid: number; fm: number }
  | { type: 0x2 | 0x6; g: number; did: number; dw: boolean; dr: boolean; addr: bigint; ih: boolean; am: number; pasid: number }
  | { type: 0x3; sid: number; mip: number; pfsid: number; addr: bigint; s: boolean }
  | { type: 0x4; g: number; im: number; index: number }
  | { type: 0x5; iflag: boolean; sw: boolean; fn: boolean; data: number; addr: bigint }
  | { type: 0x7; pcG: number; did: number; pasid: number }
  | { type: number };

export const descType = (qw0: bigint): number => Number(qw0 & 0xfn);

export function decodeDesc(qw0: bigint, qw1: bigint): DecodedDesc {
  const type = descType(qw0);
  switch (type) {
    case DESC_CC:
      return { type, g: Number((qw0 >> 4n) & 3n), did: Number((qw0 >> 16n) & 0xffffn), sid: Number((qw0 >> 32n) & 0xffffn), fm: Number((qw0 >> 48n) & 3n) };
    case DESC_IOTLB:
    case DESC_PIOTLB:
      return {
        type, g: Number((qw0 >> 4n) & 3n), did: Number((qw0 >> 16n) & 0xffffn), dw: (qw0 & DESC_IOTLB_DW) !== 0n, dr: (qw0 & DESC_IOTLB_DR) !== 0n,
        addr: qw1 & ~0xfffn, ih: (qw1 & IVA_IH) !== 0n, am: Number(qw1 & 0x3fn), pasid: type === DESC_PIOTLB ? Number((qw0 >> 32n) & 0xfffffn) : 0,
      };
    case DESC_DEVTLB:
      return { type, sid: Number((qw0 >> 32n) & 0xffffn), mip: Number((qw0 >> 16n) & 0x1fn), pfsid: Number(((qw0 >> 12n) & 0xfn) | ((qw0 >> 52n) << 4n)), addr: qw1 & ~0xfffn, s: (qw1 & 1n) !== 0n };
    case DESC_IEC:
      return { type, g: Number((qw0 >> 4n) & 1n), im: Number((qw0 >> 27n) & 0x1fn), index: Number((qw0 >> 32n) & 0xffffn) };
    case DESC_PC:
      return { type, pcG: Number((qw0 >> 4n) & 3n), did: Number((qw0 >> 16n) & 0xffffn), pasid: Number((qw0 >> 32n) & 0xfffffn) };
    case DESC_WAIT:
      return { type, iflag: (qw0 & WAIT_IF) !== 0n, sw: (qw0 & WAIT_SW) !== 0n, fn: (qw0 & WAIT_FN) !== 0n, data: Number(qw0 >> 32n), addr: qw1 & ~3n };
    default:
      return { type };
  }
}

// ---------------------------------------------------------------- IRTE (§9.2)

/** IRTE fields, remapped format (IM = 0 unless `im`). */
export interface IrteFields {
  present?: boolean;
  fpd?: boolean;
  dm?: number;
  rh?: number;
  tm?: number;
  dlm?: number;
  avail?: number;
  im?: boolean;
  vector: number;
  /** DST (63:32): xAPIC ID << 8 when EIME = 0, x2APIC ID when EIME = 1. */
  dst: bigint;
  sid?: number;
  sq?: number;
  svt?: number;
}

/**
 * IRTE, remapped format (§9.2), 128 bits:
 *
 *   lo: 63:32 DST | 31:24 Rsvd | 23:16 V | 15 IM | 14:12 Rsvd | 11:8 AVAIL | 7:5 DLM | 4 TM | 3 RH | 2 DM | 1 FPD | 0 P
 *   hi: 63:20 Rsvd | 19:18 SVT | 17:16 SQ | 15:0 SID
 */
export function irteEntry(f: IrteFields): [bigint, bigint] {
  const lo = (f.present === false ? 0n : 1n) | (f.fpd ? 2n : 0n) | (BigInt(f.dm ?? 0) << 2n) | (BigInt(f.rh ?? 0) << 3n) | (BigInt(f.tm ?? 0) << 4n)
    | (BigInt(f.dlm ?? 0) << 5n) | (BigInt(f.avail ?? 0) << 8n) | (f.im ? 1n << 15n : 0n) | (BigInt(f.vector) << 16n) | (f.dst << 32n);
  return [lo, BigInt(f.sid ?? 0) | (BigInt(f.sq ?? 0) << 16n) | (BigInt(f.svt ?? 0) << 18n)];
}

export interface DecodedIrte {
  present: boolean;
  fpd: boolean;
  im: boolean;
  vector: number;
  dst: bigint;
  sid: number;
  sq: number;
  svt: number;
}

export function decodeIrte(lo: bigint, hi: bigint): DecodedIrte {
  return {
    present: (lo & 1n) === 1n, fpd: (lo & 2n) !== 0n, im: ((lo >> 15n) & 1n) === 1n,
    vector: Number((lo >> 16n) & 0xffn), dst: lo >> 32n, sid: Number(hi & 0xffffn), sq: Number((hi >> 16n) & 3n), svt: Number((hi >> 18n) & 3n),
  };
}

// ================================================================ scalable mode (§3.4-§3.6, §7.5; issue 13)

/*
 * Scalable-mode structures are wider than 64 bits and have many fields, so
 * each field is declared once, as its quadword, shift and width, and every
 * encoder writes it through `put`. A value wider than its field is an error
 * (a caller's mistake, not something to truncate silently).
 */

/** A field of a multi-quadword structure: quadword `qw`, bits [shift, shift + width). */
export interface Field { readonly qw: number; readonly shift: number; readonly width: number }
const field = (qw: number, shift: number, width: number): Field => ({ qw, shift, width });

/** Deposits `value` into field `f` of the quadwords `q`. */
function put(q: bigint[], f: Field, value: number | bigint | boolean): void {
  const v = typeof value === 'boolean' ? (value ? 1n : 0n) : BigInt(value);
  const max = (1n << BigInt(f.width)) - 1n;
  if (v < 0n || v > max) throw new RangeError(`layout: value 0x${v.toString(16)} does not fit a ${f.width}-bit field (QW${f.qw} bit ${f.shift})`);
  q[f.qw] |= v << BigInt(f.shift);
}

/** Extracts field `f` of the quadwords `q`. */
export function get(q: readonly bigint[], f: Field): bigint {
  return (q[f.qw] >> BigInt(f.shift)) & ((1n << BigInt(f.width)) - 1n);
}

/** A 4 KiB-aligned pointer field's value: the address bits 63:12 (the low 12 bits must be 0). */
function pfnOf(addr: bigint, what: string): bigint {
  if ((addr & 0xfffn) !== 0n) throw new RangeError(`layout: ${what} 0x${addr.toString(16)} is not 4 KiB aligned`);
  return addr >> 12n;
}

/** RTADDR.TTM (bits 11:10): 00 legacy, 01 scalable mode (§3). */
export const RTADDR_TTM_SM = 1n << 10n;
/** IQA.DW (bit 11): 256-bit descriptors, IQT/IQH count 32-byte slots (§7.4). */
export const IQA_DW = 1n << 11n;
/** IQT / IQH with DW = 1: the byte offset of a 256-bit slot, index << 5 (bits 18:5). */
export const iqOffset256 = (slot: number | bigint): bigint => BigInt(slot) << 5n;

// ---------------------------------------------------------------- scalable-mode root entry (§3.4)

/**
 * Scalable-mode root entry, 128 bits, one per bus; devfn 0-127 use the lower
 * context table, devfn 128-255 the upper one:
 *
 *   QW0: 63:12 LCTP | 11:1 Rsvd | 0 LP
 *   QW1: 63:12 UCTP | 11:1 Rsvd | 0 UP
 */
export const SM_ROOT = {
  LP: field(0, 0, 1), LCTP: field(0, 12, 52),
  UP: field(1, 0, 1), UCTP: field(1, 12, 52),
} as const;

/** A scalable-mode root entry: each half present when its table is given. */
export function smRootEntry(f: { lower?: bigint; upper?: bigint }): [bigint, bigint] {
  const q = [0n, 0n];
  if (f.lower !== undefined) { put(q, SM_ROOT.LP, true); put(q, SM_ROOT.LCTP, pfnOf(f.lower, 'LCTP')); }
  if (f.upper !== undefined) { put(q, SM_ROOT.UP, true); put(q, SM_ROOT.UCTP, pfnOf(f.upper, 'UCTP')); }
  return [q[0], q[1]];
}

/** Address of a scalable-mode context entry: 32 bytes each, devfn 128-255 in the upper table at devfn - 128 (§3.1). */
export const smContextEntryAddr = (table: bigint, devfn: number): bigint => table + 32n * BigInt(devfn & 0x7f);

// ---------------------------------------------------------------- scalable-mode context entry (§3.5)

/**
 * Scalable-mode context entry, 256 bits:
 *
 *   QW0: 63:12 PASIDDIRPTR | 11:9 PDTS | 8:5 Rsvd | 4 PRE | 3 PASIDE | 2 DTE | 1 FPD | 0 P
 *   QW1: 63:21 Rsvd | 20 RID_PRIV | 19:0 RID_PASID
 *   QW2, QW3: Rsvd
 *
 * The PASID directory has 2^(PDTS + 7) entries.
 */
export const SM_CONTEXT = {
  P: field(0, 0, 1), FPD: field(0, 1, 1), DTE: field(0, 2, 1), PASIDE: field(0, 3, 1), PRE: field(0, 4, 1),
  PDTS: field(0, 9, 3), PASIDDIRPTR: field(0, 12, 52),
  RID_PASID: field(1, 0, 20), RID_PRIV: field(1, 20, 1),
} as const;

export interface SmContextFields {
  present?: boolean; fpd?: boolean; dte?: boolean; paside?: boolean; pre?: boolean;
  /** PASID directory size: 2^(pdts + 7) entries. */
  pdts: number;
  /** The PASID directory, 4 KiB aligned. */
  pasidDir: bigint;
  /** The PASID used for requests without PASID [0]. */
  ridPasid?: number;
  ridPriv?: boolean;
}

export function smContextEntry(f: SmContextFields): [bigint, bigint, bigint, bigint] {
  const q = [0n, 0n, 0n, 0n];
  put(q, SM_CONTEXT.P, f.present ?? true);
  put(q, SM_CONTEXT.FPD, f.fpd ?? false);
  put(q, SM_CONTEXT.DTE, f.dte ?? false);
  put(q, SM_CONTEXT.PASIDE, f.paside ?? false);
  put(q, SM_CONTEXT.PRE, f.pre ?? false);
  put(q, SM_CONTEXT.PDTS, f.pdts);
  put(q, SM_CONTEXT.PASIDDIRPTR, pfnOf(f.pasidDir, 'PASIDDIRPTR'));
  put(q, SM_CONTEXT.RID_PASID, f.ridPasid ?? 0);
  put(q, SM_CONTEXT.RID_PRIV, f.ridPriv ?? false);
  return [q[0], q[1], q[2], q[3]];
}

// ---------------------------------------------------------------- PASID directory and table entries (§3.6)

/** PASID → directory index PASID[19:6] (8-byte entries), table index PASID[5:0] (64-byte entries). */
export const pasidDirIndex = (pasid: number): number => pasid >>> 6;
export const pasidTableIndex = (pasid: number): number => pasid & 0x3f;
export const pasidDirEntryAddr = (dir: bigint, pasid: number): bigint => dir + 8n * BigInt(pasidDirIndex(pasid));
export const pasidEntryAddr = (table: bigint, pasid: number): bigint => table + 64n * BigInt(pasidTableIndex(pasid));

/**
 * PASID directory entry, 64 bits:
 *
 *   63:12 SMPTBLPTR (PASID table) | 11:2 Rsvd | 1 FPD | 0 P
 */
export const PASID_DIR = { P: field(0, 0, 1), FPD: field(0, 1, 1), SMPTBLPTR: field(0, 12, 52) } as const;

export function pasidDirEntry(f: { table: bigint; present?: boolean; fpd?: boolean }): bigint {
  const q = [0n];
  put(q, PASID_DIR.P, f.present ?? true);
  put(q, PASID_DIR.FPD, f.fpd ?? false);
  put(q, PASID_DIR.SMPTBLPTR, pfnOf(f.table, 'SMPTBLPTR'));
  return q[0];
}

/** PGTT, the PASID entry's translation type (§3.6). */
export const PGTT_FIRST = 1, PGTT_SECOND = 2, PGTT_NESTED = 3, PGTT_PT = 4;

/**
 * PASID table entry, 512 bits (Linux pasid.h gives every position here; ERE
 * is the specification's bit 129, which Linux does not set):
 *
 *   QW0: 63:12 SSPTPTR | 9 SSADE | 8:6 PGTT | 4:2 AW | 1 FPD | 0 P
 *   QW1: 24 PGSNP | 23 PWSNP | 15:0 DID
 *   QW2: 63:12 FSPTPTR | 7 EAFE | 4 WPE | 3:2 FSPM (0 4-level, 1 5-level) | 1 ERE | 0 SRE
 *   QW3-QW7: Rsvd
 *
 * SSPTPTR is the second-stage table (PGTT 010, 011), FSPTPTR the first-stage
 * one (PGTT 001, 011); PGTT 100 (pass-through) uses neither.
 */
export const PASID_ENTRY = {
  P: field(0, 0, 1), FPD: field(0, 1, 1), AW: field(0, 2, 3), PGTT: field(0, 6, 3), SSADE: field(0, 9, 1), SSPTPTR: field(0, 12, 52),
  DID: field(1, 0, 16), PWSNP: field(1, 23, 1), PGSNP: field(1, 24, 1),
  SRE: field(2, 0, 1), ERE: field(2, 1, 1), FSPM: field(2, 2, 2), WPE: field(2, 4, 1), EAFE: field(2, 7, 1), FSPTPTR: field(2, 12, 52),
} as const;

export interface PasidEntryFields {
  present?: boolean; fpd?: boolean;
  /** AW: levels - 2 of the second stage (Linux writes the unit's AGAW for first-stage and pass-through entries too). */
  aw: number;
  pgtt: number;
  did: number;
  /** Second-stage table (PGTT 010, 011). */
  ssptptr?: bigint;
  /** First-stage table (PGTT 001, 011). */
  fsptptr?: bigint;
  /** First-stage paging mode: 0 4-level, 1 5-level. */
  fspm?: number;
  ssade?: boolean; pwsnp?: boolean; pgsnp?: boolean; sre?: boolean; ere?: boolean; wpe?: boolean; eafe?: boolean;
}

export type Qw8 = [bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint];

export function pasidEntry(f: PasidEntryFields): Qw8 {
  const q: Qw8 = [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n];
  put(q, PASID_ENTRY.P, f.present ?? true);
  put(q, PASID_ENTRY.FPD, f.fpd ?? false);
  put(q, PASID_ENTRY.AW, f.aw);
  put(q, PASID_ENTRY.PGTT, f.pgtt);
  put(q, PASID_ENTRY.SSADE, f.ssade ?? false);
  put(q, PASID_ENTRY.SSPTPTR, pfnOf(f.ssptptr ?? 0n, 'SSPTPTR'));
  put(q, PASID_ENTRY.DID, f.did);
  put(q, PASID_ENTRY.PWSNP, f.pwsnp ?? false);
  put(q, PASID_ENTRY.PGSNP, f.pgsnp ?? false);
  put(q, PASID_ENTRY.SRE, f.sre ?? false);
  put(q, PASID_ENTRY.ERE, f.ere ?? false);
  put(q, PASID_ENTRY.FSPM, f.fspm ?? 0);
  put(q, PASID_ENTRY.WPE, f.wpe ?? false);
  put(q, PASID_ENTRY.EAFE, f.eafe ?? false);
  put(q, PASID_ENTRY.FSPTPTR, pfnOf(f.fsptptr ?? 0n, 'FSPTPTR'));
  return q;
}

// ---------------------------------------------------------------- first-stage paging entries (x86-64 format)

/**
 * A first-stage paging entry at any level (the x86-64 4- and 5-level paging
 * format, FSPM 00 / 01):
 *
 *   63 62:52 51:12   11:9 8 7  6 5 4   3   2  1  0
 *   XD ign   address ign  G PS D A PCD PWT US RW P
 *
 * PS = 1 makes a level-2 (2 MiB) or level-3 (1 GiB, with CAP.FS1GP) entry a
 * leaf; in a level-1 entry bit 7 is PAT, which this model never sets. D and G
 * matter in leaves only. XD forbids execute requests.
 */
export const FS = {
  P: field(0, 0, 1), RW: field(0, 1, 1), US: field(0, 2, 1), PWT: field(0, 3, 1), PCD: field(0, 4, 1),
  A: field(0, 5, 1), D: field(0, 6, 1), PS: field(0, 7, 1), G: field(0, 8, 1), ADDR: field(0, 12, 40), XD: field(0, 63, 1),
} as const;

export interface FsEntryFields {
  /** The next table or the page frame, 4 KiB aligned. */
  addr: bigint;
  present?: boolean; rw?: boolean; us?: boolean; pwt?: boolean; pcd?: boolean; a?: boolean; d?: boolean; ps?: boolean; g?: boolean; xd?: boolean;
}

export function fsEntry(f: FsEntryFields): bigint {
  const q = [0n];
  put(q, FS.P, f.present ?? true);
  put(q, FS.RW, f.rw ?? false);
  put(q, FS.US, f.us ?? false);
  put(q, FS.PWT, f.pwt ?? false);
  put(q, FS.PCD, f.pcd ?? false);
  put(q, FS.A, f.a ?? false);
  put(q, FS.D, f.d ?? false);
  put(q, FS.PS, f.ps ?? false);
  put(q, FS.G, f.g ?? false);
  put(q, FS.ADDR, pfnOf(f.addr, 'first-stage address'));
  put(q, FS.XD, f.xd ?? false);
  return q[0];
}

// ---------------------------------------------------------------- 256-bit invalidation descriptors (§7.4, §7.5)

/** A 256-bit descriptor (IQA.DW = 1): QW0..QW3. */
export type Desc256 = [bigint, bigint, bigint, bigint];

/** A 128-bit descriptor (types 1-5) in DW = 1 form: the same QW0, QW1, with QW2 and QW3 zero. */
export const wide = (d: Desc): Desc256 => [d[0], d[1], 0n, 0n];

/** PASID-based IOTLB granularity (QW0 5:4): 10 all non-global mappings of a PASID in a domain, 11 pages within that PASID. */
export const PIOTLB_G_PASID = 2, PIOTLB_G_PAGE = 3;
/** PASID-cache granularity (QW0 5:4): 00 all PASIDs of a domain, 01 one PASID in a domain, 11 global. */
export const PC_G_DOMAIN = 0, PC_G_PASID = 1, PC_G_GLOBAL = 3;

/**
 * PASID-based IOTLB invalidate (0x6), 256 bits:
 *
 *   QW0: 63:52 Rsvd | 51:32 PASID | 31:16 DID | 15:6 Rsvd | 5:4 G | 3:0 type
 *   QW1: 63:12 ADDR | 11:7 Rsvd | 6 IH | 5:0 AM       (G = 11 only)
 *   QW2, QW3: Rsvd
 */
export const PIOTLB = { TYPE: field(0, 0, 4), G: field(0, 4, 2), DID: field(0, 16, 16), PASID: field(0, 32, 20), AM: field(1, 0, 6), IH: field(1, 6, 1), ADDR: field(1, 12, 52) } as const;

export function piotlbDesc(f: { g: number; did: number; pasid: number; addr?: bigint; am?: number; ih?: boolean }): Desc256 {
  const q: Desc256 = [0n, 0n, 0n, 0n];
  put(q, PIOTLB.TYPE, DESC_PIOTLB);
  put(q, PIOTLB.G, f.g);
  put(q, PIOTLB.DID, f.did);
  put(q, PIOTLB.PASID, f.pasid);
  put(q, PIOTLB.AM, f.am ?? 0);
  put(q, PIOTLB.IH, f.ih ?? false);
  put(q, PIOTLB.ADDR, pfnOf(f.addr ?? 0n, 'PASID-based IOTLB ADDR'));
  return q;
}

/**
 * PASID-cache invalidate (0x7), 256 bits:
 *
 *   QW0: 63:52 Rsvd | 51:32 PASID | 31:16 DID | 15:6 Rsvd | 5:4 G | 3:0 type
 *   QW1-QW3: Rsvd
 */
export const PC = { TYPE: field(0, 0, 4), G: field(0, 4, 2), DID: field(0, 16, 16), PASID: field(0, 32, 20) } as const;

export function pcDesc(f: { g: number; did?: number; pasid?: number }): Desc256 {
  const q: Desc256 = [0n, 0n, 0n, 0n];
  put(q, PC.TYPE, DESC_PC);
  put(q, PC.G, f.g);
  put(q, PC.DID, f.did ?? 0);
  put(q, PC.PASID, f.pasid ?? 0);
  return q;
}
