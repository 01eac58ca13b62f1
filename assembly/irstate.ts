// Interrupt remapping (digest §9): the table latched by GCMD.SIRTP, the
// interrupt entry cache, and the processing of interrupt requests.
//
// Request processing with GSTS.IRES = 1 (digest §9.6), in this order:
//   address 63:32 != 0 or 31:20 != 0xFEE            -> 20h (not an interrupt address)
//   compatibility format (address bit 4 = 0):       pass through if CFIS = 1 and EIME = 0, else 25h
//   SHV = 1 and data 31:16 != 0                     -> 20h
//   index = HANDLE + (SHV ? SUBHANDLE : 0) >= size  -> 21h
//   read the IRTE (IEC, else memory)                -> 23h on a memory error
//   P = 0                                           -> 22h (FPD honoured)
//   reserved bits (IM without CAP.PI, xAPIC DST)    -> 24h (FPD honoured)
//   source-id validation                            -> 26h (FPD honoured)
//   deliver (remapped) or report as posted
// With IRES = 0 every message passes unchanged. FI of the fault record holds
// the interrupt index in bits 63:48 (0 for 20h and 25h, where it is undefined).

import { bit64, extract64 } from "./bits";
import { hasFlag, FLAG_EIM, FLAG_PI, pointerMask } from "./config";
import { tryAlloc } from "./alloc";
import { count, C_IR_REQUESTS, C_IR_REMAPPED, C_IR_COMPAT, C_IR_POSTED, C_IR_FAULTS, C_IEC_HIT, C_IEC_MISS,
  C_FAULTS_FPD } from "./counters";
import { recordFault } from "./faults";
import { unitRead64, memError } from "./guestmem";
import { IRTE_P_BIT, IRTE_FPD_BIT, IRTE_DM_BIT, IRTE_RH_BIT, IRTE_TM_BIT, IRTE_DLM_SHIFT, IRTE_IM_BIT, IRTE_URG_BIT,
  IRTE_VECTOR_SHIFT, IRTE_DST_SHIFT, IRTE_PDA_LO_SHIFT, irteLoReserved, irteHiReserved, irtePostedLoReserved,
  checkSource } from "./irte";
import { reg32, GSTS_REG } from "./regs";

// ---- Fault reasons (digest §5.3) -------------------------------------------
// @ts-ignore: decorator
@inline export const FR_IR_REQUEST_RESERVED: u32 = 0x20;
// @ts-ignore: decorator
@inline export const FR_IR_INDEX: u32 = 0x21;
// @ts-ignore: decorator
@inline export const FR_IR_NOT_PRESENT: u32 = 0x22;
// @ts-ignore: decorator
@inline export const FR_IR_TABLE_ACCESS: u32 = 0x23;
// @ts-ignore: decorator
@inline export const FR_IR_IRTE_RESERVED: u32 = 0x24;
// @ts-ignore: decorator
@inline export const FR_IR_COMPAT_BLOCKED: u32 = 0x25;
// @ts-ignore: decorator
@inline export const FR_IR_SOURCE: u32 = 0x26;

// @ts-ignore: decorator
@inline const GSTS_IRES: u32 = 1 << 25;
// @ts-ignore: decorator
@inline const GSTS_CFIS: u32 = 1 << 23;

/** Result of an interrupt request (ABI: src/core.ts decodes it). */
// @ts-ignore: decorator
@inline export const IR_DELIVERED: u32 = 0; // irOutAddr/irOutData: the interrupt as delivered
// @ts-ignore: decorator
@inline export const IR_POSTED: u32 = 0x1000; // irOutAddr = descriptor address, irOutData = vector | urgent << 8
// (faults use translate.ts's ST_FAULT | ST_FPD | reason encoding)
// @ts-ignore: decorator
@inline const ST_FAULT: u32 = 0x100;
// @ts-ignore: decorator
@inline const ST_FPD: u32 = 0x200;

export let irtAddr: u64 = 0;
export let irtSizeLog2: u32 = 1; // entries = 2^(S+1)
export let irtExtended: bool = false; // EIME

/** Interrupt entry cache: 65536 slots of 16 bytes (the IRTE) + a valid byte each. */
let iecBase: usize = 0;
let iecValid: usize = 0;
let iecEnabled: bool = true;

export function irInit(cacheEntries: bool): bool {
  iecEnabled = cacheEntries;
  iecBase = tryAlloc(65536 * 16);
  iecValid = tryAlloc(65536);
  return iecBase != 0 && iecValid != 0;
}

export function latchIrta(irta: u64): void {
  irtAddr = irta & pointerMask();
  irtSizeLog2 = <u32>extract64(irta, 0, 4) + 1;
  irtExtended = hasFlag(FLAG_EIM) && extract64(irta, 11, 1) != 0;
}

/** Interrupt entry cache invalidation (descriptor 0x4): global, or the 2^im entries from `index`. */
export function iecInvalidate(indexSelective: bool, index: u32, im: u32): void {
  if (!indexSelective) {
    memory.fill(iecValid, 0, 65536);
    return;
  }
  const n: u32 = 1 << im;
  const first = index & ~(n - 1);
  for (let i: u32 = 0; i < n && first + i < 65536; i++) store<u8>(iecValid + first + i, 0);
}

/** Outputs of irRemap. */
export let irOutAddr: u64 = 0;
export let irOutData: u32 = 0;
/** The interrupt index of the last request; NO_INDEX when it was not remapped (passed unchanged). */
export let irIndex: u32 = 0;
// @ts-ignore: decorator
@inline export const NO_INDEX: u32 = 0xffffffff;

function irFault(sid: u32, reason: u32, index: u32, fpd: bool): u32 {
  count(C_IR_FAULTS);
  // FPD of the IRTE suppresses only the faults that read a present entry (digest §5.3).
  if (fpd && (reason == FR_IR_NOT_PRESENT || reason == FR_IR_IRTE_RESERVED || reason == FR_IR_SOURCE)) {
    count(C_FAULTS_FPD);
    return ST_FAULT | ST_FPD | reason;
  }
  const fi: u64 = reason == FR_IR_REQUEST_RESERVED || reason == FR_IR_COMPAT_BLOCKED ? 0 : <u64>index << 48;
  recordFault(sid, reason, fi, false);
  return ST_FAULT | reason;
}

/** Reads IRTE `index` (lo into irteLo, hi into irteHi); false on a memory error. */
let irteLo: u64 = 0;
let irteHi: u64 = 0;

function readIrte(index: u32): bool {
  const slot = iecBase + (<usize>index << 4);
  if (iecEnabled && load<u8>(iecValid + index) != 0) {
    count(C_IEC_HIT);
    irteLo = load<u64>(slot);
    irteHi = load<u64>(slot, 8);
    return true;
  }
  count(C_IEC_MISS);
  const at = irtAddr + (<u64>index << 4);
  irteLo = unitRead64(at);
  if (memError) return false;
  irteHi = unitRead64(at + 8);
  if (memError) return false;
  return true;
}

function cacheIrte(index: u32): void {
  if (!iecEnabled) return;
  const slot = iecBase + (<usize>index << 4);
  store<u64>(slot, irteLo);
  store<u64>(slot, irteHi, 8);
  store<u8>(iecValid + index, 1);
}

/**
 * Processes an interrupt request (an MSI write of `data` to `addr`) from `sid`
 * (`hasSid` false for sources without a requester id). Returns IR_DELIVERED
 * (irOutAddr/irOutData hold the interrupt in compatibility format),
 * IR_POSTED, or ST_FAULT | reason (| ST_FPD).
 */
export function irRemap(sid: u32, hasSid: bool, addr: u64, data: u32): u32 {
  count(C_IR_REQUESTS);
  irIndex = NO_INDEX;
  const sts = reg32(GSTS_REG);
  if ((sts & GSTS_IRES) == 0) {
    irOutAddr = addr;
    irOutData = data;
    return IR_DELIVERED;
  }
  if ((addr >> 32) != 0 || ((addr >> 20) & 0xfff) != 0xfee) return irFault(sid, FR_IR_REQUEST_RESERVED, 0, false);
  if (!bit64(addr, 4)) {
    // Compatibility format: bypasses remapping only with CFIS = 1 in xAPIC mode.
    if ((sts & GSTS_CFIS) != 0 && !irtExtended) {
      count(C_IR_COMPAT);
      irOutAddr = addr;
      irOutData = data;
      return IR_DELIVERED;
    }
    return irFault(sid, FR_IR_COMPAT_BLOCKED, 0, false);
  }
  const handle = <u32>extract64(addr, 5, 15) | (<u32>extract64(addr, 2, 1) << 15);
  const shv = bit64(addr, 3);
  if (shv && (data >> 16) != 0) return irFault(sid, FR_IR_REQUEST_RESERVED, 0, false);
  const index: u32 = handle + (shv ? (data & 0xffff) : 0);
  irIndex = index;
  if (index >= (<u32>1 << irtSizeLog2)) return irFault(sid, FR_IR_INDEX, index, false);
  if (!readIrte(index)) return irFault(sid, FR_IR_TABLE_ACCESS, index, false);
  const fpd = bit64(irteLo, IRTE_FPD_BIT);
  if (!bit64(irteLo, IRTE_P_BIT)) return irFault(sid, FR_IR_NOT_PRESENT, index, fpd);
  const posted = hasFlag(FLAG_PI) && bit64(irteLo, IRTE_IM_BIT);
  const loRsvd = posted ? irtePostedLoReserved() : irteLoReserved(!irtExtended, hasFlag(FLAG_PI));
  if ((irteLo & loRsvd) != 0 || (irteHi & irteHiReserved(posted)) != 0) {
    return irFault(sid, FR_IR_IRTE_RESERVED, index, fpd);
  }
  if (hasSid) {
    const src = checkSource(irteHi, sid);
    if (src == 2) return irFault(sid, FR_IR_IRTE_RESERVED, index, fpd);
    if (src == 1) return irFault(sid, FR_IR_SOURCE, index, fpd);
  }
  cacheIrte(index);
  const vector = <u32>extract64(irteLo, IRTE_VECTOR_SHIFT, 8);
  if (posted) {
    count(C_IR_POSTED);
    irOutAddr = (irteHi & 0xffffffff00000000) | (extract64(irteLo, IRTE_PDA_LO_SHIFT, 26) << 6);
    irOutData = vector | (<u32>extract64(irteLo, IRTE_URG_BIT, 1) << 8);
    return IR_POSTED;
  }
  count(C_IR_REMAPPED);
  const dst: u32 = irtExtended ? <u32>extract64(irteLo, IRTE_DST_SHIFT, 32) : <u32>extract64(irteLo, 40, 8);
  // The delivered message in compatibility format (trace-format.md): destination
  // 7:0 in address 19:12, bits 31:8 of an x2APIC destination in address 63:40.
  irOutAddr = 0xfee00000 | (<u64>(dst & 0xff) << 12) | (extract64(irteLo, IRTE_RH_BIT, 1) << 3)
    | (extract64(irteLo, IRTE_DM_BIT, 1) << 2) | (<u64>(dst >> 8) << 40);
  irOutData = vector | (<u32>extract64(irteLo, IRTE_DLM_SHIFT, 3) << 8) | (1 << 14)
    | (<u32>extract64(irteLo, IRTE_TM_BIT, 1) << 15);
  return IR_DELIVERED;
}

/**
 * An IOAPIC redirection-table entry in remappable format (digest §9.4) as the
 * IOAPIC sends it: a remappable MSI with SHV = 0, handle from RTE 63:49 and 11.
 * `rte` bit 48 must be 1 (remappable format); a compatibility-format RTE is
 * sent as a compatibility-format message with the RTE's vector.
 */
export function irRemapIoapic(sid: u32, hasSid: bool, rte: u64): u32 {
  if (!bit64(rte, 48)) {
    // Compatibility format: destination in 63:56, vector 7:0, delivery mode 10:8, trigger 15.
    const addr: u64 = 0xfee00000 | (extract64(rte, 56, 8) << 12) | (extract64(rte, 11, 1) << 2);
    const data = <u32>(rte & 0x7ff) | (<u32>extract64(rte, 15, 1) << 15) | (1 << 14);
    return irRemap(sid, hasSid, addr, data);
  }
  const handle = (extract64(rte, 49, 15)) | (extract64(rte, 11, 1) << 15);
  const addr: u64 = 0xfee00000 | ((handle & 0x7fff) << 5) | (1 << 4) | ((handle >> 15) << 2);
  return irRemap(sid, hasSid, addr, <u32>(rte & 0xff));
}
