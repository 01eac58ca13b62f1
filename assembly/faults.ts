// Fault recording and fault events (digest §5.2, §6).
//
// FRCD[i], 128 bits at FRO*16 + 16*i (i < nfr):
//   lo  63:12 FI (page address of the request; interrupt faults: 63:48 index)
//   hi  63 F (RW1C) | 62 T (1 = read) | 61:60 AT | 59:40 PV | 39:32 FR | 31 PP | 15:0 SID
//
// FSTS: 15:8 FRI (RO) | 6 ITE | 5 ICE | 4 IQE | 3 APF | 2 AFO | 1 PPF (RO) | 0 PFO
// FECTL: 31 IM (RW) | 30 IP (RO)

import { bitMask64 } from "./bits";
import { cfgNfr, FRO_VALUE } from "./config";
import { count, C_FAULTS, C_FAULTS_RECORDED, C_FAULTS_FPD, C_FAULTS_COLLAPSED, C_FAULTS_OVERFLOW, C_FAULT_EVENTS, C_FAULT_REASON } from "./counters";
import { pushEvent } from "./events";
import { reg32, setReg32, reg64, setReg64, FSTS_REG, FECTL_REG, FEDATA_REG, FEADDR_REG, FEUADDR_REG } from "./regs";
import { EV_FAULT_MSI } from "./abi";

// ---- Fault reasons (digest §5.2, §5.3) -------------------------------------
// @ts-ignore: decorator
@inline export const FR_ROOT_NOT_PRESENT: u32 = 0x1;
// @ts-ignore: decorator
@inline export const FR_CTX_NOT_PRESENT: u32 = 0x2;
// @ts-ignore: decorator
@inline export const FR_CTX_INVALID: u32 = 0x3;
// @ts-ignore: decorator
@inline export const FR_ADDR_BEYOND_AW: u32 = 0x4;
// @ts-ignore: decorator
@inline export const FR_WRITE: u32 = 0x5;
// @ts-ignore: decorator
@inline export const FR_READ: u32 = 0x6;
// @ts-ignore: decorator
@inline export const FR_PAGING_ENTRY_ACCESS: u32 = 0x7;
// @ts-ignore: decorator
@inline export const FR_ROOT_ACCESS: u32 = 0x8;
// @ts-ignore: decorator
@inline export const FR_CTX_ACCESS: u32 = 0x9;
// @ts-ignore: decorator
@inline export const FR_ROOT_RESERVED: u32 = 0xa;
// @ts-ignore: decorator
@inline export const FR_CTX_RESERVED: u32 = 0xb;
// @ts-ignore: decorator
@inline export const FR_PAGING_RESERVED: u32 = 0xc;
// @ts-ignore: decorator
@inline export const FR_ATS_BLOCKED: u32 = 0xd;
// @ts-ignore: decorator
@inline export const FR_INTERRUPT_ADDR: u32 = 0xe;

// ---- Scalable-mode fault reasons (VT-d spec §7.1.3 table; Linux
// dma_remap_sm_fault_reasons; digest §5.4): used when RTADDR.TTM = 01 --------
// Never raised here (docs/DESIGN.md "Scalable mode"): 32h, 47h (page requests),
// 43h (a context entry's unsupported fields are reserved bits: 42h), 44h (no
// translation requests), 79h, 7Ch, 82h (no execute requests reach a walk),
// 84h, 90h.
// @ts-ignore: decorator
@inline export const FR_SM_BAD_RTA: u32 = 0x30;
// @ts-ignore: decorator
@inline export const FR_SM_PASID_IN_LEGACY: u32 = 0x31;
// @ts-ignore: decorator
@inline export const FR_SM_ROOT_ACCESS: u32 = 0x38;
// @ts-ignore: decorator
@inline export const FR_SM_ROOT_NOT_PRESENT: u32 = 0x39;
// @ts-ignore: decorator
@inline export const FR_SM_ROOT_RESERVED: u32 = 0x3a;
// @ts-ignore: decorator
@inline export const FR_SM_CTX_ACCESS: u32 = 0x40;
// @ts-ignore: decorator
@inline export const FR_SM_CTX_NOT_PRESENT: u32 = 0x41;
// @ts-ignore: decorator
@inline export const FR_SM_CTX_RESERVED: u32 = 0x42;
// @ts-ignore: decorator
@inline export const FR_SM_PASIDE_CLEAR: u32 = 0x45;
// @ts-ignore: decorator
@inline export const FR_SM_PASID_BEYOND_DIR: u32 = 0x46;
/** RID_PASID (a request without PASID) beyond the PASID directory's 2^(PDTS+7) entries. */
// @ts-ignore: decorator
@inline export const FR_SM_RID_PASID_ERROR: u32 = 0x48;
// @ts-ignore: decorator
@inline export const FR_SM_DIR_ACCESS: u32 = 0x50;
// @ts-ignore: decorator
@inline export const FR_SM_DIR_NOT_PRESENT: u32 = 0x51;
// @ts-ignore: decorator
@inline export const FR_SM_DIR_RESERVED: u32 = 0x52;
// @ts-ignore: decorator
@inline export const FR_SM_PE_ACCESS: u32 = 0x58;
// @ts-ignore: decorator
@inline export const FR_SM_PE_NOT_PRESENT: u32 = 0x59;
// @ts-ignore: decorator
@inline export const FR_SM_PE_RESERVED: u32 = 0x5a;
// @ts-ignore: decorator
@inline export const FR_SM_PE_INVALID: u32 = 0x5b;
// @ts-ignore: decorator
@inline export const FR_SM_ERE_CLEAR: u32 = 0x5c;
// @ts-ignore: decorator
@inline export const FR_SM_SRE_CLEAR: u32 = 0x5d;
/** First-stage entry access error (below the top table). */
// @ts-ignore: decorator
@inline export const FR_SM_FS_ACCESS: u32 = 0x70;
// @ts-ignore: decorator
@inline export const FR_SM_FS_NOT_PRESENT: u32 = 0x71;
// @ts-ignore: decorator
@inline export const FR_SM_FS_RESERVED: u32 = 0x72;
/** Access error reading the top first-stage table (FSPTPTR, "FL-PML4"). */
// @ts-ignore: decorator
@inline export const FR_SM_FS_TOP_ACCESS: u32 = 0x73;
/** Nested: a first-stage table address is beyond the second stage's input width. */
// @ts-ignore: decorator
@inline export const FR_SM_NEST_FS_BEYOND: u32 = 0x74;
/** Nested: the second stage denies reading the top first-stage table. */
// @ts-ignore: decorator
@inline export const FR_SM_NEST_TOP_READ: u32 = 0x75;
/** Nested: the second stage denies reading a first-stage table below the top. */
// @ts-ignore: decorator
@inline export const FR_SM_NEST_FS_READ: u32 = 0x76;
/** Nested: the second stage denies the write of an Accessed/Dirty update to a first-stage entry. */
// @ts-ignore: decorator
@inline export const FR_SM_NEST_FS_WRITE: u32 = 0x77;
// @ts-ignore: decorator
@inline export const FR_SM_SS_ACCESS: u32 = 0x78;
// @ts-ignore: decorator
@inline export const FR_SM_SS_RESERVED: u32 = 0x7a;
// @ts-ignore: decorator
@inline export const FR_SM_SS_BAD_PTR: u32 = 0x7b;
// @ts-ignore: decorator
@inline export const FR_SM_NON_CANONICAL: u32 = 0x80;
// @ts-ignore: decorator
@inline export const FR_SM_USER_SUPERVISOR: u32 = 0x81;
// @ts-ignore: decorator
@inline export const FR_SM_ADDR_BEYOND: u32 = 0x83;
// @ts-ignore: decorator
@inline export const FR_SM_WRITE: u32 = 0x85;
// @ts-ignore: decorator
@inline export const FR_SM_READ: u32 = 0x86;
// @ts-ignore: decorator
@inline export const FR_SM_INTERRUPT_ADDR: u32 = 0x87;

/**
 * The scalable-mode reason for a reason the second-stage walk (translate.ts walkTables, shared
 * with legacy mode) or the request tail returned in its legacy code; SM codes pass unchanged.
 */
export function smReason(r: u32): u32 {
  if (r == FR_CTX_INVALID) return FR_SM_SS_BAD_PTR; // the top table could not be read
  if (r == FR_ADDR_BEYOND_AW) return FR_SM_ADDR_BEYOND;
  if (r == FR_WRITE) return FR_SM_WRITE;
  if (r == FR_READ) return FR_SM_READ;
  if (r == FR_PAGING_ENTRY_ACCESS) return FR_SM_SS_ACCESS;
  if (r == FR_PAGING_RESERVED) return FR_SM_SS_RESERVED;
  if (r == FR_INTERRUPT_ADDR) return FR_SM_INTERRUPT_ADDR;
  return r;
}

// ---- FSTS / FECTL / FRCD fields --------------------------------------------
// @ts-ignore: decorator
@inline export const FSTS_PFO: u32 = 1 << 0;
// @ts-ignore: decorator
@inline export const FSTS_PPF: u32 = 1 << 1;
// @ts-ignore: decorator
@inline export const FSTS_AFO: u32 = 1 << 2;
// @ts-ignore: decorator
@inline export const FSTS_APF: u32 = 1 << 3;
// @ts-ignore: decorator
@inline export const FSTS_IQE: u32 = 1 << 4;
// @ts-ignore: decorator
@inline export const FSTS_ICE: u32 = 1 << 5;
// @ts-ignore: decorator
@inline export const FSTS_ITE: u32 = 1 << 6;
// @ts-ignore: decorator
@inline export const FSTS_FRI_SHIFT: u32 = 8;
/** Status bits that are interrupt conditions for the fault event (digest §6.4). */
// @ts-ignore: decorator
@inline export const FSTS_EVENT_CONDITIONS: u32 = FSTS_PFO | FSTS_PPF | FSTS_AFO | FSTS_APF | FSTS_IQE | FSTS_ICE | FSTS_ITE;
// @ts-ignore: decorator
@inline export const ECTL_IM: u32 = 1 << 31;
// @ts-ignore: decorator
@inline export const ECTL_IP: u32 = 1 << 30;
// @ts-ignore: decorator
@inline export const FRCD_F_BIT: u32 = 63; // of the high qword
// @ts-ignore: decorator
@inline export const FRCD_T_BIT: u32 = 62;
// @ts-ignore: decorator
@inline export const FRCD_FR_SHIFT: u32 = 32;
/** Of the high qword: PRIV (bit 93 of the record), EXE (94), PP (95), PV (123:104). */
// @ts-ignore: decorator
@inline export const FRCD_PRIV_BIT: u32 = 29;
// @ts-ignore: decorator
@inline export const FRCD_EXE_BIT: u32 = 30;
// @ts-ignore: decorator
@inline export const FRCD_PP_BIT: u32 = 31;
// @ts-ignore: decorator
@inline export const FRCD_PV_SHIFT: u32 = 40;
// @ts-ignore: decorator
@inline export const FRCD_PV_LEN: u32 = 20;

/**
 * Faults suppressed by FPD = 1 ("qualified", digest §5.2): 2h-7h, Ch-Eh; in scalable mode every
 * reason from 41h on except a context entry's reserved bits (42h), so not 30h-3Ah (root table and
 * root entry, read before any FPD) nor 40h (the context entry could not be read).
 */
// @ts-ignore: decorator
@inline export function isQualified(reason: u32): bool {
  return (reason >= FR_CTX_NOT_PRESENT && reason <= FR_PAGING_ENTRY_ACCESS)
    || (reason >= FR_PAGING_RESERVED && reason <= FR_INTERRUPT_ADDR)
    || (reason >= FR_SM_CTX_NOT_PRESENT && reason != FR_SM_CTX_RESERVED);
}

/** The high-qword bits of a fault record for a request with PASID `pasid` (PP = 1, PV, PRIV, EXE). */
export function frcdPasidBits(pasid: u32, priv: bool, exe: bool): u64 {
  let b: u64 = bitMask64(FRCD_PP_BIT) | (<u64>(pasid & 0xfffff) << FRCD_PV_SHIFT);
  if (priv) b |= bitMask64(FRCD_PRIV_BIT);
  if (exe) b |= bitMask64(FRCD_EXE_BIT);
  return b;
}

/** Index of the record hardware writes next (round-robin over nfr records). */
let nextRecord: u32 = 0;

// @ts-ignore: decorator
@inline export function frcdOffset(i: u32): u32 {
  return FRO_VALUE * 16 + (i << 4);
}

/**
 * Records a DMA-remapping or interrupt-remapping fault as hardware does
 * (digest §6.3), and raises the fault event if it is a new interrupt
 * condition. The caller has already applied FPD. `fi` is the fault info
 * (lo qword), `isRead` sets T, `pasidBits` are ORed into the high qword
 * (PP, PV, PRIV, EXE of a request with PASID: `frcdPasidBits`).
 */
export function recordFault(sid: u32, reason: u32, fi: u64, isRead: bool, pasidBits: u64 = 0): void {
  count(C_FAULTS);
  count(C_FAULT_REASON + (reason & 0xff));
  const fsts = reg32(FSTS_REG);
  if ((fsts & FSTS_PFO) != 0) {
    count(C_FAULTS_OVERFLOW);
    return;
  }
  // Hardware may collapse faults from a requester that has a record pending
  // (digest §6.3 step 3); this unit always does, as QEMU 7.2 does.
  for (let i: u32 = 0; i < cfgNfr; i++) {
    const hi = reg64(frcdOffset(i) + 8);
    if ((hi >> FRCD_F_BIT) != 0 && <u32>(hi & 0xffff) == sid) {
      count(C_FAULTS_COLLAPSED);
      return;
    }
  }
  const at = frcdOffset(nextRecord);
  if ((reg64(at + 8) >> FRCD_F_BIT) != 0) {
    count(C_FAULTS_OVERFLOW);
    raiseStatus(FSTS_PFO);
    return;
  }
  setReg64(at, fi & ~(<u64>0xfff));
  let hi: u64 = bitMask64(FRCD_F_BIT) | (<u64>(reason & 0xff) << FRCD_FR_SHIFT) | <u64>(sid & 0xffff);
  if (isRead) hi |= bitMask64(FRCD_T_BIT);
  setReg64(at + 8, hi | pasidBits);
  count(C_FAULTS_RECORDED);
  if ((fsts & FSTS_PPF) == 0) {
    setReg32(FSTS_REG, (reg32(FSTS_REG) & ~(<u32>0xff << FSTS_FRI_SHIFT)) | (nextRecord << FSTS_FRI_SHIFT));
    raiseStatus(FSTS_PPF);
  }
  nextRecord = nextRecord + 1 >= cfgNfr ? 0 : nextRecord + 1;
}

/**
 * Sets status bit(s) in FSTS. If no interrupt condition was pending before,
 * this is a new one: FECTL.IP := 1, and the event is sent unless masked.
 */
export function raiseStatus(bits: u32): void {
  const before = reg32(FSTS_REG);
  setReg32(FSTS_REG, before | bits);
  if ((before & FSTS_EVENT_CONDITIONS) != 0) return;
  const fectl = reg32(FECTL_REG);
  if ((fectl & ECTL_IM) != 0) {
    setReg32(FECTL_REG, fectl | ECTL_IP);
  } else {
    sendFaultEvent();
  }
}

function sendFaultEvent(): void {
  setReg32(FECTL_REG, reg32(FECTL_REG) & ~ECTL_IP);
  count(C_FAULT_EVENTS);
  const addr = (<u64>reg32(FEUADDR_REG) << 32) | <u64>reg32(FEADDR_REG);
  pushEvent(EV_FAULT_MSI, reg32(FEDATA_REG), 0, 0, addr, 0);
}

/** PPF is the OR of every record's F bit; recomputed after F changes. */
export function recomputePpf(): void {
  let any = false;
  for (let i: u32 = 0; i < cfgNfr; i++) {
    if ((reg64(frcdOffset(i) + 8) >> FRCD_F_BIT) != 0) {
      any = true;
      break;
    }
  }
  const fsts = reg32(FSTS_REG);
  setReg32(FSTS_REG, any ? fsts | FSTS_PPF : fsts & ~FSTS_PPF);
}

/** After software cleared status (FSTS write, F cleared): IP drops when nothing is left pending. */
export function statusServiced(): void {
  if ((reg32(FSTS_REG) & FSTS_EVENT_CONDITIONS) == 0) {
    setReg32(FECTL_REG, reg32(FECTL_REG) & ~ECTL_IP);
  }
}

/** FECTL written: unmasking with IP set delivers the pending message. */
export function fectlWritten(): void {
  const fectl = reg32(FECTL_REG);
  if ((fectl & ECTL_IM) == 0 && (fectl & ECTL_IP) != 0) sendFaultEvent();
}
