// Scalable-mode context entry (VT-d spec §9.4; digest §3.5), 256 bits at
// CTP + 32 * (devfn & 0x7f), CTP from the root entry half of the devfn:
//
//   QW0  63:12 PASIDDIRPTR | 11:9 PDTS | 8:5 Rsvd | 4 PRE | 3 PASIDE | 2 DTE | 1 FPD | 0 P
//   QW1  63:21 Rsvd | 20 RID_PRIV | 19:0 RID_PASID
//   QW2  Rsvd
//   QW3  Rsvd
//
// The PASID directory has 2^(PDTS + 7) 8-byte entries (one per 64 PASIDs).
// RID_PRIV (bit 84) is accepted and not acted on: requests without PASID are
// user requests here (docs/DESIGN.md). DTE needs device-TLBs (ECAP.DT) and PRE
// page requests (ECAP.PRS, never offered): where unsupported they are reserved
// bits (42h), as the specification treats such fields.

import { bitMask64, rangeMask64 } from "./bits";
import { pointerBits, hasFlag } from "./config";
import { FLAG_DT } from "./abi";

// @ts-ignore: decorator
@inline export const SMCE_P_BIT: u32 = 0;
// @ts-ignore: decorator
@inline export const SMCE_FPD_BIT: u32 = 1;
// @ts-ignore: decorator
@inline export const SMCE_DTE_BIT: u32 = 2;
// @ts-ignore: decorator
@inline export const SMCE_PASIDE_BIT: u32 = 3;
// @ts-ignore: decorator
@inline export const SMCE_PRE_BIT: u32 = 4;
// @ts-ignore: decorator
@inline export const SMCE_PDTS_SHIFT: u32 = 9;
// @ts-ignore: decorator
@inline export const SMCE_PDTS_LEN: u32 = 3;
// @ts-ignore: decorator
@inline export const SMCE_DIR_SHIFT: u32 = 12;
/** QW1 fields. */
// @ts-ignore: decorator
@inline export const SMCE_RID_PASID_SHIFT: u32 = 0;
// @ts-ignore: decorator
@inline export const SMCE_RID_PASID_LEN: u32 = 20;
// @ts-ignore: decorator
@inline export const SMCE_RID_PRIV_BIT: u32 = 20;
/** Bytes of one entry. */
// @ts-ignore: decorator
@inline export const SMCE_SIZE: u32 = 32;
/** log2 of the directory entries at PDTS 0. */
// @ts-ignore: decorator
@inline export const SMCE_PDTS_BASE: u32 = 7;

/** Reserved bits of QW0 (8:5, 63:HAW) and QW1 (63:21), set once per configuration; QW2 and QW3 are reserved whole. */
export let smCtxReserved0: u64 = 0;
export let smCtxReserved1: u64 = 0;

export function smContextInit(): void {
  // PRE needs ECAP.PRS (never offered), DTE needs ECAP.DT: without them they are Reserved(0).
  smCtxReserved0 = rangeMask64(SMCE_PRE_BIT + 1, SMCE_PDTS_SHIFT) | rangeMask64(pointerBits, 64)
    | bitMask64(SMCE_PRE_BIT) | (hasFlag(FLAG_DT) ? 0 : bitMask64(SMCE_DTE_BIT));
  smCtxReserved1 = rangeMask64(SMCE_RID_PRIV_BIT + 1, 64);
}
