// PASID directory entry (VT-d spec §9.5; digest §3.6), 64 bits at
// PASIDDIRPTR + 8 * PASID[19:6]:
//
//   63:12 SMPTBLPTR (PASID table, 64 entries of 64 bytes) | 11:2 Rsvd | 1 FPD | 0 P

import { rangeMask64 } from "./bits";
import { pointerBits } from "./config";

// @ts-ignore: decorator
@inline export const PDE_P_BIT: u32 = 0;
// @ts-ignore: decorator
@inline export const PDE_FPD_BIT: u32 = 1;
// @ts-ignore: decorator
@inline export const PDE_TABLE_SHIFT: u32 = 12;
/** PASID bits below this index the table; the bits above index the directory. */
// @ts-ignore: decorator
@inline export const PASID_TABLE_BITS: u32 = 6;

/** Reserved bits (11:2, 63:HAW), set once per configuration. */
export let pdeReserved: u64 = 0;

export function pasidDirInit(): void {
  pdeReserved = rangeMask64(PDE_FPD_BIT + 1, PDE_TABLE_SHIFT) | rangeMask64(pointerBits, 64);
}
