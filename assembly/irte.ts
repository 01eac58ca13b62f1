// Interrupt remapping table entries (digest §9.2, §9.3) and source-id
// validation (§9.5).
//
// Remapped format (IM = 0), 128 bits:
//   lo  63:32 DST | 31:24 Rsvd | 23:16 V | 15 IM | 14:12 Rsvd | 11:8 AVAIL
//       7:5 DLM | 4 TM | 3 RH | 2 DM | 1 FPD | 0 P
//   hi  63:20 Rsvd | 19:18 SVT | 17:16 SQ | 15:0 SID
// In xAPIC mode (IRTA.EIME = 0) the destination is DST[15:8] (lo 47:40), and
// lo bits 39:32 and 63:48 are reserved.
//
// Posted format (IM = 1, only with CAP.PI), 128 bits:
//   lo  63:38 PDA[31:6] | 37:24 Rsvd | 23:16 VV | 15 IM | 14 URG | 13:12 Rsvd
//       11:8 AVAIL | 7:2 Rsvd | 1 FPD | 0 P
//   hi  63:32 PDA[63:32] | 31:20 Rsvd | 19:18 SVT | 17:16 SQ | 15:0 SID

import { rangeMask64, extract64, bitMask64 } from "./bits";

// @ts-ignore: decorator
@inline export const IRTE_P_BIT: u32 = 0;
// @ts-ignore: decorator
@inline export const IRTE_FPD_BIT: u32 = 1;
// @ts-ignore: decorator
@inline export const IRTE_DM_BIT: u32 = 2;
// @ts-ignore: decorator
@inline export const IRTE_RH_BIT: u32 = 3;
// @ts-ignore: decorator
@inline export const IRTE_TM_BIT: u32 = 4;
// @ts-ignore: decorator
@inline export const IRTE_DLM_SHIFT: u32 = 5;
// @ts-ignore: decorator
@inline export const IRTE_IM_BIT: u32 = 15;
// @ts-ignore: decorator
@inline export const IRTE_URG_BIT: u32 = 14;
// @ts-ignore: decorator
@inline export const IRTE_VECTOR_SHIFT: u32 = 16;
// @ts-ignore: decorator
@inline export const IRTE_DST_SHIFT: u32 = 32;
// @ts-ignore: decorator
@inline export const IRTE_DST_LEN: u32 = 32;
/** xAPIC destination: DST[15:8]. */
// @ts-ignore: decorator
@inline export const IRTE_DST_XAPIC_SHIFT: u32 = 40;
// @ts-ignore: decorator
@inline export const IRTE_DST_XAPIC_LEN: u32 = 8;
// @ts-ignore: decorator
@inline export const IRTE_VECTOR_LEN: u32 = 8;
// @ts-ignore: decorator
@inline export const IRTE_DLM_LEN: u32 = 3;
// @ts-ignore: decorator
@inline export const IRTE_SID_LEN: u32 = 16;
// @ts-ignore: decorator
@inline export const IRTE_SQ_SHIFT: u32 = 16;
// @ts-ignore: decorator
@inline export const IRTE_SVT_SHIFT: u32 = 18;
/** Posted format: PDA[31:6] in lo 63:38, PDA[63:32] in hi 63:32. */
// @ts-ignore: decorator
@inline export const IRTE_PDA_LO_SHIFT: u32 = 38;
// @ts-ignore: decorator
@inline export const IRTE_PDA_LO_LEN: u32 = 26;
/** The descriptor is 64-byte aligned: PDA[31:6] lands at address bit 6. */
// @ts-ignore: decorator
@inline export const IRTE_PDA_ALIGN_BITS: u32 = 6;
// @ts-ignore: decorator
@inline export const IRTE_PDA_HI_SHIFT: u32 = 32;
// @ts-ignore: decorator
@inline export const IRTE_PDA_HI_LEN: u32 = 32;

/** Reserved bits of a remapped-format IRTE's low half; `xapic` adds DST 39:32 and 63:48; `pi` frees IM. */
export function irteLoReserved(xapic: bool, pi: bool): u64 {
  let m = rangeMask64(12, 15) | rangeMask64(24, 32);
  if (!pi) m |= bitMask64(IRTE_IM_BIT);
  if (xapic) m |= rangeMask64(32, 40) | rangeMask64(48, 64);
  return m;
}

/** Reserved bits of an IRTE's high half: 63:20 (remapped); 31:20 (posted: 63:32 hold the descriptor address). */
export function irteHiReserved(posted: bool): u64 {
  return posted ? rangeMask64(20, 32) : rangeMask64(20, 64);
}

/** Reserved bits of a posted-format IRTE's low half. */
export function irtePostedLoReserved(): u64 {
  return rangeMask64(2, 8) | rangeMask64(12, 14) | rangeMask64(24, 38);
}

/**
 * Source-id validation (digest §9.5). Returns 0 when the request passes, else
 * 1 (fault 26h) or 2 (SVT = 11, a reserved encoding: fault 24h).
 */
export function checkSource(hi: u64, sid: u32): u32 {
  const svt = <u32>extract64(hi, IRTE_SVT_SHIFT, 2);
  const irteSid = <u32>extract64(hi, 0, IRTE_SID_LEN);
  if (svt == 0) return 0;
  if (svt == 1) {
    const sq = <u32>extract64(hi, IRTE_SQ_SHIFT, 2);
    // SQ selects which function bits are ignored: none, bit 2, bits 2:1, bits 2:0.
    const mask: u32 = sq == 0 ? 0xffff : (sq == 1 ? 0xfffb : (sq == 2 ? 0xfff9 : 0xfff8));
    return (sid & mask) == (irteSid & mask) ? 0 : 1;
  }
  if (svt == 2) {
    // Bus range: start bus in SID[15:8], end bus in SID[7:0] (Linux, FreeBSD;
    // QEMU 7.2 reads them the other way round).
    const bus = sid >> 8;
    return bus >= (irteSid >> 8) && bus <= (irteSid & 0xff) ? 0 : 1;
  }
  return 2;
}
