// Scalable-mode root entry (VT-d spec §9.2; digest §3.4), 128 bits at RTA + 16 * bus,
// used when RTADDR.TTM = 01:
//
//   lo  63:12 LCTP  lower context-table pointer (devfn 0-127)  | 11:1 Rsvd | 0 LP
//   hi  63:12 UCTP  upper context-table pointer (devfn 128-255) | 11:1 Rsvd | 0 UP
//
// Both halves have the same shape: the half for a devfn is lo (devfn < 128) or
// hi, and its context entry sits at CTP + 32 * (devfn & 0x7f). Pointer bits at
// or above the host address width are reserved, as in a legacy root entry.

import { rangeMask64 } from "./bits";
import { pointerBits } from "./config";

/** Present bit of either half (LP in lo, UP in hi). */
// @ts-ignore: decorator
@inline export const SMRE_P_BIT: u32 = 0;
/** Pointer field of either half. */
// @ts-ignore: decorator
@inline export const SMRE_CTP_SHIFT: u32 = 12;
/** Devfns at or above this use the upper half. */
// @ts-ignore: decorator
@inline export const SMRE_UPPER_DEVFN: u32 = 128;

/** Reserved bits of either half (11:1 and 63:HAW), set by smRootInit once per configuration. */
export let smRootReserved: u64 = 0;

export function smRootInit(): void {
  smRootReserved = rangeMask64(1, SMRE_CTP_SHIFT) | rangeMask64(pointerBits, 64);
}
