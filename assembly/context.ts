// Legacy root and context entries (digest §3.2, §3.3).
//
// Root entry, 128 bits at RTA + 16 * bus:
//   lo  63:12 CTP  context-table pointer (bits at or above HAW reserved)
//       11:1  Rsvd
//        0    P
//   hi  127:64 Rsvd (all of it)
//
// Context entry, 128 bits at CTP + 16 * devfn:
//   lo  63:12 SLPTPTR   11:4 Rsvd   3:2 TT   1 FPD   0 P
//   hi  127:88 Rsvd   87:72 DID   71 Rsvd   70:67 AVAIL   66:64 AW
//       (in hi-qword bit numbers: 63:24 Rsvd, 23:8 DID, 7 Rsvd, 6:3 AVAIL, 2:0 AW)

import { bitMask64, rangeMask64 } from "./bits";
import { pointerBits } from "./config";

// @ts-ignore: decorator
@inline export const ROOT_P_BIT: u32 = 0;
// @ts-ignore: decorator
@inline export const CTX_P_BIT: u32 = 0;
// @ts-ignore: decorator
@inline export const CTX_FPD_BIT: u32 = 1;
// @ts-ignore: decorator
@inline export const CTX_TT_SHIFT: u32 = 2;
// @ts-ignore: decorator
@inline export const CTX_TT_LEN: u32 = 2;
// @ts-ignore: decorator
@inline export const CTX_AW_SHIFT: u32 = 0; // in hi
// @ts-ignore: decorator
@inline export const CTX_AW_LEN: u32 = 3;
// @ts-ignore: decorator
@inline export const CTX_DID_SHIFT: u32 = 8; // in hi
// @ts-ignore: decorator
@inline export const CTX_DID_LEN: u32 = 16;

/** Translation types (context TT). */
// @ts-ignore: decorator
@inline export const TT_UNTRANSLATED: u32 = 0;
// @ts-ignore: decorator
@inline export const TT_DEVTLB: u32 = 1;
// @ts-ignore: decorator
@inline export const TT_PASSTHROUGH: u32 = 2;

/** Reserved bits of a root entry's low half: 11:1 and 63:HAW. */
export function rootLoReserved(): u64 {
  return rangeMask64(1, 12) | rangeMask64(pointerBits, 64);
}

/** Reserved bits of a context entry's low half: 11:4 and 63:HAW. */
export function ctxLoReserved(): u64 {
  return rangeMask64(4, 12) | rangeMask64(pointerBits, 64);
}

/** Reserved bits of a context entry's high half: bit 71 (hi 7) and 127:88 (hi 63:24). */
export function ctxHiReserved(): u64 {
  return bitMask64(7) | rangeMask64(24, 64);
}
