// Scalable-mode PASID table entry (VT-d spec §9.6; digest §3.6), 512 bits at
// SMPTBLPTR + 64 * PASID[5:0]. The unit reads all eight quadwords: QW3-QW7
// hold nothing it implements and are reserved (digest §3.6).
//
//   QW0  63:12 SLPTPTR | 11:10 Rsvd | 9 SLADE | 8:6 PGTT | 5 SLEE | 4:2 AW | 1 FPD | 0 P
//   QW1  63:32 PAT | 31 PCD | 30 PWT | 29:27 EMT | 26 EMTE | 25 CD | 24 PGSNP | 23 PWSNP
//        22:16 Rsvd | 15:0 DID
//   QW2  63:12 FSPTPTR | 11:8 Rsvd | 7 EAFE | 6:5 Rsvd | 4 WPE | 3:2 FSPM | 1 ERE | 0 SRE
//   QW3-QW7 Rsvd
//
// A field whose capability the unit does not report is a reserved bit (the
// specification's "treated as Reserved(0) when ... is Clear"): SLEE and ERE
// (ECAP.ERS = 0), SLADE (ECAP.SLADS = 0), the memory-type fields 63:25 of QW1
// (ECAP.MTS = 0), EAFE (ECAP.EAFS = 0), SRE without ECAP.SRS. Bits 6:5 of QW2
// are reserved too: the unit implements no SMEP/NXE-like control there, and a
// guest setting them gets a fault rather than a silently different walk.
//
// PGTT: 001 first-stage, 010 second-stage, 011 nested, 100 pass-through,
// others reserved; a PGTT the unit does not offer (ECAP.FLTS/SLTS/NEST/PT)
// makes the entry invalid (5Bh), as does an AW outside CAP.SAGAW where the
// second stage is used and an FSPM other than 00 (4-level) or, with
// CAP.FS5LP, 01 (5-level). SLADE needs ECAP.SLADS (not offered): reserved.
// Pointer bits at or above the host address width are reserved (5Ah) in the
// pointers the PGTT field names (SLPTPTR for 010/011, FSPTPTR for 001/011),
// checked with the other reserved bits, before PGTT, AW and FSPM (5Bh).

import { bitMask64, rangeMask64 } from "./bits";
import { pointerBits, srsSupported } from "./config";

// ---- QW0 ----
// @ts-ignore: decorator
@inline export const PE_P_BIT: u32 = 0;
// @ts-ignore: decorator
@inline export const PE_FPD_BIT: u32 = 1;
// @ts-ignore: decorator
@inline export const PE_AW_SHIFT: u32 = 2;
// @ts-ignore: decorator
@inline export const PE_AW_LEN: u32 = 3;
// @ts-ignore: decorator
@inline export const PE_SLEE_BIT: u32 = 5;
// @ts-ignore: decorator
@inline export const PE_PGTT_SHIFT: u32 = 6;
// @ts-ignore: decorator
@inline export const PE_PGTT_LEN: u32 = 3;
// @ts-ignore: decorator
@inline export const PE_SLADE_BIT: u32 = 9;
// @ts-ignore: decorator
@inline export const PE_SLPTPTR_SHIFT: u32 = 12;
// ---- QW1 ----
// @ts-ignore: decorator
@inline export const PE_DID_SHIFT: u32 = 0;
// @ts-ignore: decorator
@inline export const PE_DID_LEN: u32 = 16;
/** QW1 bits 22:16 are reserved; PWSNP (23) and PGSNP (24) are fields; 63:25 are memory-type fields (reserved without ECAP.MTS). */
// @ts-ignore: decorator
@inline export const PE_QW1_RSVD_LO: u32 = 16;
// @ts-ignore: decorator
@inline export const PE_PWSNP_BIT: u32 = 23;
// @ts-ignore: decorator
@inline export const PE_CD_BIT: u32 = 25;
// ---- QW2 ----
// @ts-ignore: decorator
@inline export const PE_SRE_BIT: u32 = 0;
// @ts-ignore: decorator
@inline export const PE_ERE_BIT: u32 = 1;
// @ts-ignore: decorator
@inline export const PE_FSPM_SHIFT: u32 = 2;
// @ts-ignore: decorator
@inline export const PE_FSPM_LEN: u32 = 2;
// @ts-ignore: decorator
@inline export const PE_WPE_BIT: u32 = 4;
// @ts-ignore: decorator
@inline export const PE_EAFE_BIT: u32 = 7;
// @ts-ignore: decorator
@inline export const PE_FSPTPTR_SHIFT: u32 = 12;
/** Bytes of one entry, and its quadwords. */
// @ts-ignore: decorator
@inline export const PE_SIZE: u32 = 64;
// @ts-ignore: decorator
@inline export const PE_QWORDS: u32 = 8;

/** PGTT values. */
// @ts-ignore: decorator
@inline export const PGTT_FS: u32 = 1;
// @ts-ignore: decorator
@inline export const PGTT_SS: u32 = 2;
// @ts-ignore: decorator
@inline export const PGTT_NESTED: u32 = 3;
// @ts-ignore: decorator
@inline export const PGTT_PT: u32 = 4;
/** FSPM values. */
// @ts-ignore: decorator
@inline export const FSPM_4LEVEL: u32 = 0;
// @ts-ignore: decorator
@inline export const FSPM_5LEVEL: u32 = 1;

/** Reserved bits, set once per configuration (pointer bits are checked per PGTT: peSlptrReserved, peFsptrReserved). */
export let peReserved0: u64 = 0;
export let peReserved1: u64 = 0;
export let peReserved2: u64 = 0;
/** Bits of SLPTPTR (QW0) and FSPTPTR (QW2) at or above the host address width. */
export let pePtrReserved: u64 = 0;

export function pasidEntryInit(): void {
  // 11:10 reserved; SLADE is reserved without ECAP.SLADS and SLEE without ECAP.ERS (neither offered).
  peReserved0 = rangeMask64(PE_SLADE_BIT + 1, PE_SLPTPTR_SHIFT) | bitMask64(PE_SLADE_BIT) | bitMask64(PE_SLEE_BIT);
  // 22:16 reserved; the memory-type fields 63:25 without ECAP.MTS (not offered).
  peReserved1 = rangeMask64(PE_QW1_RSVD_LO, PE_PWSNP_BIT) | rangeMask64(PE_CD_BIT, 64);
  // 11:5 reserved (EAFE without ECAP.EAFS); ERE without ECAP.ERS; SRE without ECAP.SRS.
  peReserved2 = rangeMask64(PE_WPE_BIT + 1, PE_FSPTPTR_SHIFT) | bitMask64(PE_ERE_BIT)
    | (srsSupported ? 0 : bitMask64(PE_SRE_BIT));
  pePtrReserved = rangeMask64(pointerBits, 64);
}
