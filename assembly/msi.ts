// Interrupt requests: the MSI address and data (VT-d spec §5.1.2, requests in
// compatibility format §5.1.2.1 and remappable format §5.1.2.2, programmed as in
// §5.1.5.2; digest §9.4). A request is a DWORD write of `data` to `address`;
// address bit 4 selects the format.
//
// Compatibility format (also the form of every interrupt this unit delivers):
//   address  63:40 DEST[31:8] (x2APIC) | 39:32 0 | 31:20 FEEh | 19:12 DEST[7:0]
//            11:5 Rsvd | 4 format = 0 | 3 RH | 2 DM | 1:0 ignored
//   data     31:16 Rsvd | 15 TM | 14 level (asserted) | 13:11 Rsvd | 10:8 DLM | 7:0 vector
// Remappable format:
//   address  63:32 0 | 31:20 FEEh | 19:5 HANDLE[14:0] | 4 format = 1 | 3 SHV
//            2 HANDLE[15] | 1:0 ignored
//   data     31:16 Rsvd (0 when SHV = 1) | 15:0 SUBHANDLE
// The upper address bits 63:40 of a delivered interrupt follow trace-format.md:
// they carry bits 31:8 of an x2APIC destination.

import { bitMask64, extract64, fieldMask64 } from "./bits";

// ---- Address, both formats ----------------------------------------------------
/** Bits 31:20 hold FEEh in every interrupt request. */
// @ts-ignore: decorator
@inline export const MSI_ADDR_FEE_SHIFT: u32 = 20;
// @ts-ignore: decorator
@inline export const MSI_ADDR_FEE_LEN: u32 = 12;
// @ts-ignore: decorator
@inline export const MSI_ADDR_FEE_VALUE: u64 = 0xfee;
/** Address bits 63:32: zero in a request (a delivered x2APIC interrupt uses 63:40). */
// @ts-ignore: decorator
@inline export const MSI_ADDR_HI_SHIFT: u32 = 32;
// @ts-ignore: decorator
@inline export const MSI_ADDR_FORMAT_BIT: u32 = 4;

// ---- Compatibility format ------------------------------------------------------
// @ts-ignore: decorator
@inline export const MSI_ADDR_DEST_SHIFT: u32 = 12;
// @ts-ignore: decorator
@inline export const MSI_ADDR_DEST_LEN: u32 = 8;
// @ts-ignore: decorator
@inline export const MSI_ADDR_DEST_HI_SHIFT: u32 = 40;
// @ts-ignore: decorator
@inline export const MSI_ADDR_RH_BIT: u32 = 3;
// @ts-ignore: decorator
@inline export const MSI_ADDR_DM_BIT: u32 = 2;
// @ts-ignore: decorator
@inline export const MSI_DATA_VECTOR_SHIFT: u32 = 0;
// @ts-ignore: decorator
@inline export const MSI_DATA_VECTOR_LEN: u32 = 8;
// @ts-ignore: decorator
@inline export const MSI_DATA_DLM_SHIFT: u32 = 8;
// @ts-ignore: decorator
@inline export const MSI_DATA_DLM_LEN: u32 = 3;
// @ts-ignore: decorator
@inline export const MSI_DATA_LEVEL_BIT: u32 = 14;
// @ts-ignore: decorator
@inline export const MSI_DATA_TM_BIT: u32 = 15;

// ---- Remappable format ---------------------------------------------------------
// @ts-ignore: decorator
@inline export const MSI_ADDR_HANDLE_LO_SHIFT: u32 = 5;
// @ts-ignore: decorator
@inline export const MSI_ADDR_HANDLE_LO_LEN: u32 = 15;
/** HANDLE[15] sits in address bit 2. */
// @ts-ignore: decorator
@inline export const MSI_ADDR_HANDLE_HI_BIT: u32 = 2;
// @ts-ignore: decorator
@inline export const MSI_ADDR_SHV_BIT: u32 = 3;
// @ts-ignore: decorator
@inline export const MSI_DATA_SUBHANDLE_LEN: u32 = 16;

/** The FEEh window with every other address bit 0. */
// @ts-ignore: decorator
@inline export function msiBase(): u64 {
  return MSI_ADDR_FEE_VALUE << MSI_ADDR_FEE_SHIFT;
}

/** True when `addr` is an interrupt request address: bits 63:32 zero, 31:20 FEEh. */
// @ts-ignore: decorator
@inline export function msiAddressValid(addr: u64): bool {
  return (addr >> MSI_ADDR_HI_SHIFT) == 0
    && extract64(addr, MSI_ADDR_FEE_SHIFT, MSI_ADDR_FEE_LEN) == MSI_ADDR_FEE_VALUE;
}

/** The 16-bit HANDLE of a remappable-format address. */
// @ts-ignore: decorator
@inline export function msiHandle(addr: u64): u32 {
  return <u32>extract64(addr, MSI_ADDR_HANDLE_LO_SHIFT, MSI_ADDR_HANDLE_LO_LEN)
    | (<u32>extract64(addr, MSI_ADDR_HANDLE_HI_BIT, 1) << MSI_ADDR_HANDLE_LO_LEN);
}

/** A remappable-format address carrying `handle` (16 bits), SHV = 0. */
// @ts-ignore: decorator
@inline export function msiRemappableAddr(handle: u64): u64 {
  return msiBase() | ((handle & fieldMask64(0, MSI_ADDR_HANDLE_LO_LEN)) << MSI_ADDR_HANDLE_LO_SHIFT)
    | bitMask64(MSI_ADDR_FORMAT_BIT) | ((handle >> MSI_ADDR_HANDLE_LO_LEN) << MSI_ADDR_HANDLE_HI_BIT);
}

/** A compatibility-format address: 32-bit destination `dest`, RH and DM (0 or 1). */
// @ts-ignore: decorator
@inline export function msiCompatAddr(dest: u32, rh: u64, dm: u64): u64 {
  const destLo = dest & <u32>fieldMask64(0, MSI_ADDR_DEST_LEN);
  return msiBase() | (<u64>destLo << MSI_ADDR_DEST_SHIFT) | (rh << MSI_ADDR_RH_BIT) | (dm << MSI_ADDR_DM_BIT)
    | (<u64>(dest >> MSI_ADDR_DEST_LEN) << MSI_ADDR_DEST_HI_SHIFT);
}

/** Compatibility-format data of an asserted interrupt: vector, delivery mode, trigger mode (0 or 1). */
// @ts-ignore: decorator
@inline export function msiCompatData(vector: u32, dlm: u32, tm: u32): u32 {
  return (vector << MSI_DATA_VECTOR_SHIFT) | (dlm << MSI_DATA_DLM_SHIFT) | (1 << MSI_DATA_LEVEL_BIT)
    | (tm << MSI_DATA_TM_BIT);
}
