// Fields of the remapping unit's registers (VT-d spec §10.4; digest §1, §6,
// §7.2-§7.4, §9.1). Offsets and the one write rule are in regs.ts; unit.ts
// builds each register's masks from the fields here. FSTS and FECTL/IECTL
// fields are in faults.ts, PMEN's in pmr.ts, beside the code that owns them.
//
// Single bits are `*_BIT` positions; wider fields `*_SHIFT`/`*_LEN` pairs.

import { bitMask64, fieldMask64 } from "./bits";

// ---- GCMD (§10.4.4) and GSTS (§10.4.5), 32 bits; digest §1.3 ----------------
//   31 TE | 30 SRTP | 29 SFL | 28 EAFL | 27 WBF | 26 QIE | 25 IRE | 24 SIRTP | 23 CFI | 22:0 Rsvd
//   31 TES| 30 RTPS | 29 FLS | 28 AFLS | 27 WBFS| 26 QIES| 25 IRES| 24 IRTPS | 23 CFIS| 22:0 Rsvd
// Each status bit sits at its command bit's position, so one constant names both.
// TE, EAFL, QIE, IRE and CFI are persistent (act when they differ from the
// status); SRTP, SFL, WBF and SIRTP are one-shot (act when written as 1).
// @ts-ignore: decorator
@inline export const GCMD_TE: u32 = 1 << 31;
// @ts-ignore: decorator
@inline export const GCMD_SRTP: u32 = 1 << 30;
// @ts-ignore: decorator
@inline export const GCMD_SFL: u32 = 1 << 29;
// @ts-ignore: decorator
@inline export const GCMD_EAFL: u32 = 1 << 28;
// @ts-ignore: decorator
@inline export const GCMD_WBF: u32 = 1 << 27;
// @ts-ignore: decorator
@inline export const GCMD_QIE: u32 = 1 << 26;
// @ts-ignore: decorator
@inline export const GCMD_IRE: u32 = 1 << 25;
// @ts-ignore: decorator
@inline export const GCMD_SIRTP: u32 = 1 << 24;
// @ts-ignore: decorator
@inline export const GCMD_CFI: u32 = 1 << 23;
// @ts-ignore: decorator
@inline export const GSTS_TES: u32 = GCMD_TE;
// @ts-ignore: decorator
@inline export const GSTS_RTPS: u32 = GCMD_SRTP;
// @ts-ignore: decorator
@inline export const GSTS_QIES: u32 = GCMD_QIE;
// @ts-ignore: decorator
@inline export const GSTS_IRES: u32 = GCMD_IRE;
// @ts-ignore: decorator
@inline export const GSTS_IRTPS: u32 = GCMD_SIRTP;
// @ts-ignore: decorator
@inline export const GSTS_CFIS: u32 = GCMD_CFI;
/** Every defined GCMD bit (the register's writable bits). */
// @ts-ignore: decorator
@inline export const GCMD_ALL: u32 = GCMD_TE | GCMD_SRTP | GCMD_SFL | GCMD_EAFL | GCMD_WBF | GCMD_QIE | GCMD_IRE
  | GCMD_SIRTP | GCMD_CFI;

// ---- VER (§10.4.1), 32 bits: 7:4 MAX | 3:0 MIN ------------------------------
// @ts-ignore: decorator
@inline export const VER_MAX_SHIFT: u32 = 4;

// ---- CCMD (§10.4.7), 64 bits; digest §7.2 -----------------------------------
//   63 ICC | 62:61 CIRG | 60:59 CAIG (RO) | 58:34 Rsvd | 33:32 FM | 31:16 SID | 15:0 DID
// FM and SID are write-only.
// @ts-ignore: decorator
@inline export const CCMD_ICC_BIT: u32 = 63;
// @ts-ignore: decorator
@inline export const CCMD_CIRG_SHIFT: u32 = 61;
// @ts-ignore: decorator
@inline export const CCMD_CAIG_SHIFT: u32 = 59;
/** CIRG and CAIG: 2-bit granularities. */
// @ts-ignore: decorator
@inline export const CCMD_G_LEN: u32 = 2;
// @ts-ignore: decorator
@inline export const CCMD_FM_SHIFT: u32 = 32;
// @ts-ignore: decorator
@inline export const CCMD_FM_LEN: u32 = 2;
// @ts-ignore: decorator
@inline export const CCMD_SID_SHIFT: u32 = 16;
// @ts-ignore: decorator
@inline export const CCMD_SID_LEN: u32 = 16;
// @ts-ignore: decorator
@inline export const CCMD_DID_SHIFT: u32 = 0;
// @ts-ignore: decorator
@inline export const CCMD_DID_LEN: u32 = 16;

// ---- IOTLB (§10.4.8.1), 64 bits; digest §7.3 ----------------------------------
//   63 IVT | 62 Rsvd | 61:60 IIRG | 59 Rsvd | 58:57 IAIG (RO) | 56:50 Rsvd | 49 DR | 48 DW
//   47:32 DID | 31:0 Rsvd
// @ts-ignore: decorator
@inline export const IOTLB_IVT_BIT: u32 = 63;
// @ts-ignore: decorator
@inline export const IOTLB_IIRG_SHIFT: u32 = 60;
// @ts-ignore: decorator
@inline export const IOTLB_IAIG_SHIFT: u32 = 57;
/** IIRG and IAIG: 2-bit granularities. */
// @ts-ignore: decorator
@inline export const IOTLB_G_LEN: u32 = 2;
// @ts-ignore: decorator
@inline export const IOTLB_DR_BIT: u32 = 49;
// @ts-ignore: decorator
@inline export const IOTLB_DW_BIT: u32 = 48;
// @ts-ignore: decorator
@inline export const IOTLB_DID_SHIFT: u32 = 32;
// @ts-ignore: decorator
@inline export const IOTLB_DID_LEN: u32 = 16;

// ---- IVA (§10.4.8.2), 64 bits, write-only: 63:12 ADDR | 11:7 Rsvd | 6 IH | 5:0 AM
// @ts-ignore: decorator
@inline export const IVA_ADDR_SHIFT: u32 = 12;
// @ts-ignore: decorator
@inline export const IVA_ADDR_LEN: u32 = 52;
// @ts-ignore: decorator
@inline export const IVA_IH_BIT: u32 = 6;
// @ts-ignore: decorator
@inline export const IVA_AM_SHIFT: u32 = 0;
// @ts-ignore: decorator
@inline export const IVA_AM_LEN: u32 = 6;

// ---- Event data / address of the fault and invalidation-completion events ----
// FEDATA/IEDATA (§10.4.11, §10.4.26): 31:16 EIMD (not implemented) | 15:0 IMD
// FEADDR/IEADDR (§10.4.12, §10.4.27): 31:2 MA | 1:0 Rsvd
// FEUADDR/IEUADDR (§10.4.13, §10.4.28): 31:0 MUA (used only for x2APIC, EIM)
// @ts-ignore: decorator
@inline export const EDATA_IMD_LEN: u32 = 16;
// @ts-ignore: decorator
@inline export const EADDR_MA_SHIFT: u32 = 2;
// @ts-ignore: decorator
@inline export const EADDR_MA_LEN: u32 = 30;
// @ts-ignore: decorator
@inline export const EUADDR_MUA_LEN: u32 = 32;

// ---- IQH (§10.4.21), IQT (§10.4.22), 64 bits: 63:19 Rsvd | 18:4 QH/QT | 3:0 Rsvd
// (byte offsets of 128-bit descriptors; 18:5 with 256-bit descriptors, DW = 1)
// @ts-ignore: decorator
@inline export const IQ_OFFSET_SHIFT: u32 = 4;
// @ts-ignore: decorator
@inline export const IQ_OFFSET_LEN: u32 = 15;

// ---- IQA (§10.4.23), 64 bits: 63:12 IQA | 11 DW | 10:3 Rsvd | 2:0 QS ---------
// DW is writable only with scalable mode (unit.ts).
// @ts-ignore: decorator
@inline export const IQA_ADDR_SHIFT: u32 = 12;
// @ts-ignore: decorator
@inline export const IQA_ADDR_LEN: u32 = 52;
// @ts-ignore: decorator
@inline export const IQA_QS_SHIFT: u32 = 0;
// @ts-ignore: decorator
@inline export const IQA_QS_LEN: u32 = 3;
/** IQA.DW (bit 11): 256-bit descriptors (scalable mode only). */
// @ts-ignore: decorator
@inline export const IQA_DW_BIT: u32 = 11;
/** RTADDR.TTM (11:10): translation table mode, latched by SRTP: 00 legacy, 01 scalable. */
// @ts-ignore: decorator
@inline export const RTADDR_TTM_SHIFT: u32 = 10;
// @ts-ignore: decorator
@inline export const RTADDR_TTM_LEN: u32 = 2;
/** TTM value of scalable mode. */
// @ts-ignore: decorator
@inline export const TTM_SCALABLE: u32 = 1;

// ---- ICS (§10.4.24), 32 bits: 31:1 Rsvd | 0 IWC (RW1C) -----------------------
// @ts-ignore: decorator
@inline export const ICS_IWC: u32 = 1 << 0;

// ---- IRTA (§10.4.30), 64 bits: 63:12 IRTA | 11 EIME | 10:4 Rsvd | 3:0 S ------
// (EIME is writable only with ECAP.EIM)
// @ts-ignore: decorator
@inline export const IRTA_EIME_BIT: u32 = 11;
// @ts-ignore: decorator
@inline export const IRTA_S_SHIFT: u32 = 0;
// @ts-ignore: decorator
@inline export const IRTA_S_LEN: u32 = 4;

// ---- Writable masks derived from the fields -----------------------------------

/** CCMD: ICC, CIRG, FM, SID, DID (CAIG is set by the unit). */
// @ts-ignore: decorator
@inline export function ccmdWritable(): u64 {
  return bitMask64(CCMD_ICC_BIT) | fieldMask64(CCMD_CIRG_SHIFT, CCMD_G_LEN) | fieldMask64(CCMD_FM_SHIFT, CCMD_FM_LEN)
    | fieldMask64(CCMD_SID_SHIFT, CCMD_SID_LEN) | fieldMask64(CCMD_DID_SHIFT, CCMD_DID_LEN);
}

/** CCMD bits that read as 0: FM and SID. */
// @ts-ignore: decorator
@inline export function ccmdWriteOnly(): u64 {
  return fieldMask64(CCMD_FM_SHIFT, CCMD_FM_LEN) | fieldMask64(CCMD_SID_SHIFT, CCMD_SID_LEN);
}

/** IOTLB: IVT, IIRG, DR, DW, DID (IAIG is set by the unit). */
// @ts-ignore: decorator
@inline export function iotlbWritable(): u64 {
  return bitMask64(IOTLB_IVT_BIT) | fieldMask64(IOTLB_IIRG_SHIFT, IOTLB_G_LEN) | bitMask64(IOTLB_DR_BIT)
    | bitMask64(IOTLB_DW_BIT) | fieldMask64(IOTLB_DID_SHIFT, IOTLB_DID_LEN);
}

/** IVA: ADDR, IH, AM. */
// @ts-ignore: decorator
@inline export function ivaWritable(): u64 {
  return fieldMask64(IVA_ADDR_SHIFT, IVA_ADDR_LEN) | bitMask64(IVA_IH_BIT) | fieldMask64(IVA_AM_SHIFT, IVA_AM_LEN);
}
