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

import { bit64, extract64, fieldMask64, lowMask64 } from "./bits";
import { hasFlag, pointerMask } from "./config";
import { tryAlloc } from "./alloc";
import { count, C_IR_REQUESTS, C_IR_REMAPPED, C_IR_COMPAT, C_IR_POSTED, C_IR_FAULTS, C_IEC_HIT, C_IEC_MISS, C_FAULTS_FPD } from "./counters";
import { recordFault } from "./faults";
import { unitRead64, memError } from "./guestmem";
import { RTE_VECTOR_SHIFT, RTE_VECTOR_LEN, RTE_DLM_SHIFT, RTE_DLM_LEN, RTE_DM_BIT, RTE_TM_BIT, RTE_FORMAT_BIT, RTE_DEST_SHIFT, RTE_DEST_LEN, rteHandle } from "./ioapic";
import { IRTE_P_BIT, IRTE_FPD_BIT, IRTE_DM_BIT, IRTE_RH_BIT, IRTE_TM_BIT, IRTE_DLM_SHIFT, IRTE_DLM_LEN, IRTE_IM_BIT, IRTE_URG_BIT, IRTE_VECTOR_SHIFT, IRTE_VECTOR_LEN, IRTE_DST_SHIFT, IRTE_DST_LEN, IRTE_DST_XAPIC_SHIFT, IRTE_DST_XAPIC_LEN, IRTE_PDA_LO_SHIFT, IRTE_PDA_LO_LEN, IRTE_PDA_ALIGN_BITS, IRTE_PDA_HI_SHIFT, IRTE_PDA_HI_LEN, irteLoReserved, irteHiReserved, irtePostedLoReserved, checkSource } from "./irte";
import { MSI_ADDR_FORMAT_BIT, MSI_ADDR_SHV_BIT, MSI_DATA_SUBHANDLE_LEN, msiAddressValid, msiHandle, msiRemappableAddr, msiCompatAddr, msiCompatData } from "./msi";
import { GSTS_IRES, GSTS_CFIS, IRTA_EIME_BIT, IRTA_S_SHIFT, IRTA_S_LEN } from "./regfields";
import { reg32, GSTS_REG } from "./regs";
import { FLAG_EIM, FLAG_PI, NO_INDEX, ST_FAULT, ST_FPD, ST_POSTED } from "./abi";

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

/** Result of an interrupt request (ABI: src/core.ts decodes it). */
// @ts-ignore: decorator
@inline export const IR_DELIVERED: u32 = 0; // irOutAddr/irOutData: the interrupt as delivered
// A posted interrupt answers ST_POSTED (irOutAddr = descriptor address, irOutData = vector | urgent);
// faults answer ST_FAULT | reason (| ST_FPD), as requests do (abi.ts).

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
  irtSizeLog2 = <u32>extract64(irta, IRTA_S_SHIFT, IRTA_S_LEN) + 1;
  irtExtended = hasFlag(FLAG_EIM) && bit64(irta, IRTA_EIME_BIT);
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
 * ST_POSTED, or ST_FAULT | reason (| ST_FPD).
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
  if (!msiAddressValid(addr)) return irFault(sid, FR_IR_REQUEST_RESERVED, 0, false);
  if (!bit64(addr, MSI_ADDR_FORMAT_BIT)) {
    // Compatibility format: bypasses remapping only with CFIS = 1 in xAPIC mode.
    if ((sts & GSTS_CFIS) != 0 && !irtExtended) {
      count(C_IR_COMPAT);
      irOutAddr = addr;
      irOutData = data;
      return IR_DELIVERED;
    }
    return irFault(sid, FR_IR_COMPAT_BLOCKED, 0, false);
  }
  const handle = msiHandle(addr);
  const shv = bit64(addr, MSI_ADDR_SHV_BIT);
  if (shv && (data >> MSI_DATA_SUBHANDLE_LEN) != 0) return irFault(sid, FR_IR_REQUEST_RESERVED, 0, false);
  const index: u32 = handle + (shv ? (data & <u32>lowMask64(MSI_DATA_SUBHANDLE_LEN)) : 0);
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
  const vector = <u32>extract64(irteLo, IRTE_VECTOR_SHIFT, IRTE_VECTOR_LEN);
  if (posted) {
    count(C_IR_POSTED);
    irOutAddr = (irteHi & fieldMask64(IRTE_PDA_HI_SHIFT, IRTE_PDA_HI_LEN))
      | (extract64(irteLo, IRTE_PDA_LO_SHIFT, IRTE_PDA_LO_LEN) << IRTE_PDA_ALIGN_BITS);
    irOutData = vector | (<u32>extract64(irteLo, IRTE_URG_BIT, 1) << 8);
    return ST_POSTED;
  }
  count(C_IR_REMAPPED);
  const dst: u32 = irtExtended ? <u32>extract64(irteLo, IRTE_DST_SHIFT, IRTE_DST_LEN)
    : <u32>extract64(irteLo, IRTE_DST_XAPIC_SHIFT, IRTE_DST_XAPIC_LEN);
  // The delivered message in compatibility format (trace-format.md, msi.ts).
  irOutAddr = msiCompatAddr(dst, extract64(irteLo, IRTE_RH_BIT, 1), extract64(irteLo, IRTE_DM_BIT, 1));
  irOutData = msiCompatData(vector, <u32>extract64(irteLo, IRTE_DLM_SHIFT, IRTE_DLM_LEN),
    <u32>extract64(irteLo, IRTE_TM_BIT, 1));
  return IR_DELIVERED;
}

/**
 * An IOAPIC redirection-table entry (ioapic.ts, digest §9.4) as the IOAPIC
 * sends it. A remappable-format RTE becomes a remappable MSI with SHV = 0 and
 * the RTE's handle; a compatibility-format RTE a compatibility-format message
 * with the RTE's vector.
 */
export function irRemapIoapic(sid: u32, hasSid: bool, rte: u64): u32 {
  const vector = <u32>extract64(rte, RTE_VECTOR_SHIFT, RTE_VECTOR_LEN);
  if (!bit64(rte, RTE_FORMAT_BIT)) {
    const addr = msiCompatAddr(<u32>extract64(rte, RTE_DEST_SHIFT, RTE_DEST_LEN), 0, extract64(rte, RTE_DM_BIT, 1));
    const data = msiCompatData(vector, <u32>extract64(rte, RTE_DLM_SHIFT, RTE_DLM_LEN),
      <u32>extract64(rte, RTE_TM_BIT, 1));
    return irRemap(sid, hasSid, addr, data);
  }
  return irRemap(sid, hasSid, msiRemappableAddr(rteHandle(rte)), vector);
}
