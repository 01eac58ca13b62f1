// Invalidation descriptors of the invalidation queue (VT-d spec §6.5.2;
// digest §7.5), 128 bits each: QW0 = bits 63:0 (first in memory), QW1 = 127:64.
// Every type keeps its type code in QW0 bits 3:0; VT-d 3.x extends the code
// with QW0 bits 11:9, which no type below uses (so they are reserved for all).
//
// Each type's fields are declared once here. Its reserved bits are derived:
// every bit of a quadword that none of the type's fields covers. A field the
// unit does not act on (DW, DR, PFSID, MIP, FN) is still a field, not reserved.
//
// 0x1 context-cache invalidate (§6.5.2.1)
//   QW0  63:50 Rsvd | 49:48 FM | 47:32 SID | 31:16 DID | 15:6 Rsvd | 5:4 G | 3:0 type
//   QW1  63:0 Rsvd
// 0x2 IOTLB invalidate (§6.5.2.3)
//   QW0  63:32 Rsvd | 31:16 DID | 15:8 Rsvd | 7 DR | 6 DW | 5:4 G | 3:0 type
//   QW1  63:12 ADDR | 11:7 Rsvd | 6 IH | 5:0 AM
// 0x3 device-TLB invalidate (§6.5.2.5)
//   QW0  63:52 PFSID[15:4] | 51:48 Rsvd | 47:32 SID | 31:21 Rsvd | 20:16 MIP
//        15:12 PFSID[3:0] | 11:4 Rsvd | 3:0 type
//   QW1  63:12 ADDR | 11:1 Rsvd | 0 S
// 0x4 interrupt-entry-cache invalidate (§6.5.2.7)
//   QW0  63:48 Rsvd | 47:32 IIDX | 31:27 IM | 26:5 Rsvd | 4 G | 3:0 type
//   QW1  63:0 Rsvd
// 0x5 invalidation wait (§6.5.2.8)
//   QW0  63:32 status data | 31:7 Rsvd | 6 FN | 5 SW | 4 IF | 3:0 type
//   QW1  63:2 status address | 1:0 Rsvd
// 0x6 PASID-based IOTLB invalidate (§6.5.2.4), 256-bit descriptors only (IQA.DW = 1)
//   QW0  63:52 Rsvd | 51:32 PASID | 31:16 DID | 15:6 Rsvd | 5:4 G | 3:0 type
//   QW1  63:12 ADDR | 11:7 Rsvd | 6 IH | 5:0 AM
//   QW2, QW3 Rsvd
//   G: 10 every mapping of PASID in DID, 11 page-selective within PASID (00, 01 invalid)
// 0x7 PASID-cache invalidate (§6.5.2.2), 256-bit descriptors only
//   QW0  63:52 Rsvd | 51:32 PASID | 31:16 DID | 15:6 Rsvd | 5:4 G | 3:0 type
//   QW1, QW2, QW3 Rsvd
//   G: 00 every PASID of DID, 01 PASID-selective in DID, 11 global (10 invalid)
// With IQA.DW = 1 every descriptor occupies 256 bits: the 128-bit types above in
// QW0/QW1, with QW2 and QW3 reserved (zero).
// Bit 7 of the wait descriptor (PD, page-request drain) is left reserved: this
// unit has no page requests. Type 0x8 (PASID-based device-TLB; this unit offers
// no device-TLBs with PASIDs) and 0x9/0xA page-request responses are invalid.

import { fieldMask64 } from "./bits";

// ---- Type codes (QW0 3:0) ---------------------------------------------------
// @ts-ignore: decorator
@inline export const QI_TYPE_SHIFT: u32 = 0;
// @ts-ignore: decorator
@inline export const QI_TYPE_LEN: u32 = 4;
/** Type bits 6:4 (VT-d 3.x), QW0 11:9: zero for every type this unit accepts. */
// @ts-ignore: decorator
@inline export const QI_TYPE_HI_SHIFT: u32 = 9;
// @ts-ignore: decorator
@inline export const QI_TYPE_HI_LEN: u32 = 3;

// @ts-ignore: decorator
@inline export const QI_TYPE_CC: u32 = 0x1;
// @ts-ignore: decorator
@inline export const QI_TYPE_IOTLB: u32 = 0x2;
// @ts-ignore: decorator
@inline export const QI_TYPE_DEV_IOTLB: u32 = 0x3;
// @ts-ignore: decorator
@inline export const QI_TYPE_IEC: u32 = 0x4;
// @ts-ignore: decorator
@inline export const QI_TYPE_WAIT: u32 = 0x5;
/** PASID-based IOTLB, PASID-cache and PASID-based device-TLB invalidation (scalable mode only). */
// @ts-ignore: decorator
@inline export const QI_TYPE_PASID_IOTLB: u32 = 0x6;
// @ts-ignore: decorator
@inline export const QI_TYPE_PASID_CACHE: u32 = 0x7;
// @ts-ignore: decorator
@inline export const QI_TYPE_PASID_DEV_IOTLB: u32 = 0x8;

// ---- Granularity, shared by context-cache and IOTLB (QW0 5:4) ---------------
// @ts-ignore: decorator
@inline export const QI_G_SHIFT: u32 = 4;
// @ts-ignore: decorator
@inline export const QI_G_LEN: u32 = 2;
/** Page address, shared by IOTLB and device-TLB (QW1 63:12). */
// @ts-ignore: decorator
@inline export const QI_ADDR_SHIFT: u32 = 12;
// @ts-ignore: decorator
@inline export const QI_ADDR_LEN: u32 = 52;

// ---- 0x1 context-cache ------------------------------------------------------
// @ts-ignore: decorator
@inline export const QI_CC_DID_SHIFT: u32 = 16;
// @ts-ignore: decorator
@inline export const QI_CC_DID_LEN: u32 = 16;
// @ts-ignore: decorator
@inline export const QI_CC_SID_SHIFT: u32 = 32;
// @ts-ignore: decorator
@inline export const QI_CC_SID_LEN: u32 = 16;
// @ts-ignore: decorator
@inline export const QI_CC_FM_SHIFT: u32 = 48;
// @ts-ignore: decorator
@inline export const QI_CC_FM_LEN: u32 = 2;

// ---- 0x2 IOTLB --------------------------------------------------------------
// @ts-ignore: decorator
@inline export const QI_IOTLB_DW_BIT: u32 = 6;
// @ts-ignore: decorator
@inline export const QI_IOTLB_DR_BIT: u32 = 7;
// @ts-ignore: decorator
@inline export const QI_IOTLB_DID_SHIFT: u32 = 16;
// @ts-ignore: decorator
@inline export const QI_IOTLB_DID_LEN: u32 = 16;
// @ts-ignore: decorator
@inline export const QI_IOTLB_AM_SHIFT: u32 = 0; // QW1
// @ts-ignore: decorator
@inline export const QI_IOTLB_AM_LEN: u32 = 6;
// @ts-ignore: decorator
@inline export const QI_IOTLB_IH_BIT: u32 = 6; // QW1

// ---- 0x3 device-TLB ---------------------------------------------------------
// @ts-ignore: decorator
@inline export const QI_DEV_PFSID_LO_SHIFT: u32 = 12;
// @ts-ignore: decorator
@inline export const QI_DEV_PFSID_LO_LEN: u32 = 4;
// @ts-ignore: decorator
@inline export const QI_DEV_MIP_SHIFT: u32 = 16;
// @ts-ignore: decorator
@inline export const QI_DEV_MIP_LEN: u32 = 5;
// @ts-ignore: decorator
@inline export const QI_DEV_SID_SHIFT: u32 = 32;
// @ts-ignore: decorator
@inline export const QI_DEV_SID_LEN: u32 = 16;
// @ts-ignore: decorator
@inline export const QI_DEV_PFSID_HI_SHIFT: u32 = 52;
// @ts-ignore: decorator
@inline export const QI_DEV_PFSID_HI_LEN: u32 = 12;
// @ts-ignore: decorator
@inline export const QI_DEV_S_BIT: u32 = 0; // QW1

// ---- 0x4 interrupt entry cache ------------------------------------------------
/** G: 0 = global, 1 = index-selective. */
// @ts-ignore: decorator
@inline export const QI_IEC_G_BIT: u32 = 4;
// @ts-ignore: decorator
@inline export const QI_IEC_IM_SHIFT: u32 = 27;
// @ts-ignore: decorator
@inline export const QI_IEC_IM_LEN: u32 = 5;
// @ts-ignore: decorator
@inline export const QI_IEC_IIDX_SHIFT: u32 = 32;
// @ts-ignore: decorator
@inline export const QI_IEC_IIDX_LEN: u32 = 16;

// ---- 0x5 invalidation wait ------------------------------------------------------
// @ts-ignore: decorator
@inline export const QI_WAIT_IF_BIT: u32 = 4;
// @ts-ignore: decorator
@inline export const QI_WAIT_SW_BIT: u32 = 5;
// @ts-ignore: decorator
@inline export const QI_WAIT_FN_BIT: u32 = 6;
// @ts-ignore: decorator
@inline export const QI_WAIT_DATA_SHIFT: u32 = 32;
// @ts-ignore: decorator
@inline export const QI_WAIT_DATA_LEN: u32 = 32;
/** Status address, dword aligned (QW1 63:2). */
// @ts-ignore: decorator
@inline export const QI_WAIT_ADDR_SHIFT: u32 = 2;
// @ts-ignore: decorator
@inline export const QI_WAIT_ADDR_LEN: u32 = 62;

// ---- 0x6 PASID-based IOTLB, 0x7 PASID cache ------------------------------------
// @ts-ignore: decorator
@inline export const QI_P_DID_SHIFT: u32 = 16;
// @ts-ignore: decorator
@inline export const QI_P_DID_LEN: u32 = 16;
// @ts-ignore: decorator
@inline export const QI_P_PASID_SHIFT: u32 = 32;
// @ts-ignore: decorator
@inline export const QI_P_PASID_LEN: u32 = 20;
/** Type 6 granularities. */
// @ts-ignore: decorator
@inline export const QI_PIOTLB_G_PASID: u32 = 2;
// @ts-ignore: decorator
@inline export const QI_PIOTLB_G_PAGE: u32 = 3;
/** Type 7 granularities. */
// @ts-ignore: decorator
@inline export const QI_PC_G_DOMAIN: u32 = 0;
// @ts-ignore: decorator
@inline export const QI_PC_G_PASID: u32 = 1;
// @ts-ignore: decorator
@inline export const QI_PC_G_GLOBAL: u32 = 3;

// ---- Reserved bits, derived from the fields above ------------------------------
// Each is the complement of the union of a quadword's fields (a quadword with no
// field is reserved whole). All arguments are constants, so each mask folds to
// one constant at compile time.

// @ts-ignore: decorator
@inline function typeBits(): u64 {
  return fieldMask64(QI_TYPE_SHIFT, QI_TYPE_LEN);
}

// @ts-ignore: decorator
@inline function bitField(bit: u32): u64 {
  return fieldMask64(bit, 1);
}

// @ts-ignore: decorator
@inline export function qiCcReservedLo(): u64 {
  return ~(typeBits() | fieldMask64(QI_G_SHIFT, QI_G_LEN) | fieldMask64(QI_CC_DID_SHIFT, QI_CC_DID_LEN)
    | fieldMask64(QI_CC_SID_SHIFT, QI_CC_SID_LEN) | fieldMask64(QI_CC_FM_SHIFT, QI_CC_FM_LEN));
}
// @ts-ignore: decorator
@inline export function qiCcReservedHi(): u64 {
  return ~(<u64>0);
}

// @ts-ignore: decorator
@inline export function qiIotlbReservedLo(): u64 {
  return ~(typeBits() | fieldMask64(QI_G_SHIFT, QI_G_LEN) | bitField(QI_IOTLB_DW_BIT) | bitField(QI_IOTLB_DR_BIT)
    | fieldMask64(QI_IOTLB_DID_SHIFT, QI_IOTLB_DID_LEN));
}
// @ts-ignore: decorator
@inline export function qiIotlbReservedHi(): u64 {
  return ~(fieldMask64(QI_IOTLB_AM_SHIFT, QI_IOTLB_AM_LEN) | bitField(QI_IOTLB_IH_BIT)
    | fieldMask64(QI_ADDR_SHIFT, QI_ADDR_LEN));
}

// @ts-ignore: decorator
@inline export function qiDevReservedLo(): u64 {
  return ~(typeBits() | fieldMask64(QI_DEV_PFSID_LO_SHIFT, QI_DEV_PFSID_LO_LEN)
    | fieldMask64(QI_DEV_MIP_SHIFT, QI_DEV_MIP_LEN) | fieldMask64(QI_DEV_SID_SHIFT, QI_DEV_SID_LEN)
    | fieldMask64(QI_DEV_PFSID_HI_SHIFT, QI_DEV_PFSID_HI_LEN));
}
// @ts-ignore: decorator
@inline export function qiDevReservedHi(): u64 {
  return ~(bitField(QI_DEV_S_BIT) | fieldMask64(QI_ADDR_SHIFT, QI_ADDR_LEN));
}

// @ts-ignore: decorator
@inline export function qiIecReservedLo(): u64 {
  return ~(typeBits() | bitField(QI_IEC_G_BIT) | fieldMask64(QI_IEC_IM_SHIFT, QI_IEC_IM_LEN)
    | fieldMask64(QI_IEC_IIDX_SHIFT, QI_IEC_IIDX_LEN));
}
// @ts-ignore: decorator
@inline export function qiIecReservedHi(): u64 {
  return ~(<u64>0);
}

// @ts-ignore: decorator
@inline export function qiWaitReservedLo(): u64 {
  return ~(typeBits() | bitField(QI_WAIT_IF_BIT) | bitField(QI_WAIT_SW_BIT) | bitField(QI_WAIT_FN_BIT)
    | fieldMask64(QI_WAIT_DATA_SHIFT, QI_WAIT_DATA_LEN));
}
// @ts-ignore: decorator
@inline export function qiWaitReservedHi(): u64 {
  return ~fieldMask64(QI_WAIT_ADDR_SHIFT, QI_WAIT_ADDR_LEN);
}

// @ts-ignore: decorator
@inline export function qiPasidReservedLo(): u64 {
  return ~(typeBits() | fieldMask64(QI_G_SHIFT, QI_G_LEN) | fieldMask64(QI_P_DID_SHIFT, QI_P_DID_LEN)
    | fieldMask64(QI_P_PASID_SHIFT, QI_P_PASID_LEN));
}
/** QW1 of type 6: the IOTLB descriptor's QW1 fields. */
// @ts-ignore: decorator
@inline export function qiPiotlbReservedHi(): u64 {
  return qiIotlbReservedHi();
}
// @ts-ignore: decorator
@inline export function qiPcReservedHi(): u64 {
  return ~(<u64>0);
}
