// IOAPIC redirection-table entries (RTEs), 64 bits (VT-d spec §5.1.5.1;
// digest §9.4), as the IOAPIC turns them into interrupt requests.
//
// Compatibility format (bit 48 = 0):
//   63:56 DEST | 55:49 Rsvd | 48 format = 0 | 47:17 Rsvd | 16 mask | 15 TM | 14 remote IRR
//   13 polarity | 12 delivery status | 11 DM | 10:8 DLM | 7:0 vector
// Remappable format (bit 48 = 1):
//   63:49 HANDLE[14:0] | 48 format = 1 | 47:17 Rsvd | 16 mask | 15 TM | 14 remote IRR
//   13 polarity | 12 delivery status | 11 HANDLE[15] | 10:8 000 | 7:0 vector
// A remappable RTE becomes a remappable MSI with SHV = 0 (RTE 63:49 -> address
// 19:5, RTE 11 -> address 2); a compatibility RTE a compatibility MSI.

import { extract64 } from "./bits";

// @ts-ignore: decorator
@inline export const RTE_VECTOR_SHIFT: u32 = 0;
// @ts-ignore: decorator
@inline export const RTE_VECTOR_LEN: u32 = 8;
// @ts-ignore: decorator
@inline export const RTE_DLM_SHIFT: u32 = 8;
// @ts-ignore: decorator
@inline export const RTE_DLM_LEN: u32 = 3;
/** DM in compatibility format, HANDLE[15] in remappable format. */
// @ts-ignore: decorator
@inline export const RTE_DM_BIT: u32 = 11;
// @ts-ignore: decorator
@inline export const RTE_HANDLE_HI_BIT: u32 = 11;
// @ts-ignore: decorator
@inline export const RTE_TM_BIT: u32 = 15;
// @ts-ignore: decorator
@inline export const RTE_MASK_BIT: u32 = 16;
// @ts-ignore: decorator
@inline export const RTE_FORMAT_BIT: u32 = 48;
// @ts-ignore: decorator
@inline export const RTE_HANDLE_LO_SHIFT: u32 = 49;
// @ts-ignore: decorator
@inline export const RTE_HANDLE_LO_LEN: u32 = 15;
// @ts-ignore: decorator
@inline export const RTE_DEST_SHIFT: u32 = 56;
// @ts-ignore: decorator
@inline export const RTE_DEST_LEN: u32 = 8;

/** The 16-bit HANDLE of a remappable-format RTE. */
// @ts-ignore: decorator
@inline export function rteHandle(rte: u64): u64 {
  return extract64(rte, RTE_HANDLE_LO_SHIFT, RTE_HANDLE_LO_LEN)
    | (extract64(rte, RTE_HANDLE_HI_BIT, 1) << RTE_HANDLE_LO_LEN);
}
