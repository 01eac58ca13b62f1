// Queued invalidation (digest §7.4-7.6).
//
// The queue is 2^(QS+8) 128-bit descriptors at the base latched from IQA when
// QI is enabled, or with IQA.DW = 1 (scalable mode only) 2^(QS+7) 256-bit
// ones. IQT (written by software) and IQH (advanced by the unit) hold byte
// offsets in bits 18:4 (18:5 with DW = 1: IQT bit 4 set is a queue error). Processing runs on an IQT write, on enabling QI
// with a non-empty queue, and when software clears FSTS.IQE. Every pass is
// bounded by the queue size, so no queue content can make the unit loop.
//
// Descriptor layouts and their reserved bits are in qidesc.ts. Types 0x1-0x5
// are handled; 0x6 and 0x7 (PASID-based IOTLB, PASID cache) only on a
// scalable-mode unit and with DW = 1 (they are 256-bit descriptors); 0x8 and
// 0x9-0xA (device-TLBs with PASID, page requests) are invalid here, as are 0x0
// and 0xB-0xF. With DW = 1, QW2 and QW3 of a 128-bit type must be zero. An invalid descriptor, a fetch
// error, a failed status write or a tail beyond the queue sets FSTS.IQE with
// IQH left on the offending descriptor; nothing more is fetched until IQE is
// cleared.

import { bit64, extract64, fieldMask64 } from "./bits";
import { MAMV_VALUE, MHMV_VALUE } from "./config";
import { rootTtm } from "./translate";
import { count, C_QI_DESC, C_QI_ERRORS, C_COMPLETION_EVENTS } from "./counters";
import { pushEvent } from "./events";
import { raiseStatus, FSTS_IQE, ECTL_IM, ECTL_IP } from "./faults";
import { unitRead64, unitWrite32, memError } from "./guestmem";
import { invalidateContext, invalidateIotlb, invalidatePasidIotlb, invalidatePasidCache } from "./invalidate";
import { QI_TYPE_SHIFT, QI_TYPE_LEN, QI_TYPE_HI_SHIFT, QI_TYPE_HI_LEN, QI_TYPE_CC, QI_TYPE_IOTLB, QI_TYPE_DEV_IOTLB, QI_TYPE_IEC, QI_TYPE_WAIT, QI_G_SHIFT, QI_G_LEN, QI_ADDR_SHIFT, QI_ADDR_LEN, QI_CC_DID_SHIFT, QI_CC_DID_LEN, QI_CC_SID_SHIFT, QI_CC_SID_LEN, QI_CC_FM_SHIFT, QI_CC_FM_LEN, QI_IOTLB_DID_SHIFT, QI_IOTLB_DID_LEN, QI_IOTLB_AM_SHIFT, QI_IOTLB_AM_LEN, QI_IOTLB_IH_BIT, QI_DEV_SID_SHIFT, QI_DEV_SID_LEN, QI_DEV_S_BIT, QI_IEC_G_BIT, QI_IEC_IM_SHIFT, QI_IEC_IM_LEN, QI_IEC_IIDX_SHIFT, QI_IEC_IIDX_LEN, QI_WAIT_IF_BIT, QI_WAIT_SW_BIT, QI_WAIT_DATA_SHIFT, QI_WAIT_DATA_LEN, QI_WAIT_ADDR_SHIFT, QI_WAIT_ADDR_LEN, qiCcReservedLo, qiCcReservedHi, qiIotlbReservedLo, qiIotlbReservedHi, qiDevReservedLo, qiDevReservedHi, qiIecReservedLo, qiIecReservedHi, qiWaitReservedLo, qiWaitReservedHi, QI_TYPE_PASID_IOTLB, QI_TYPE_PASID_CACHE, QI_P_DID_SHIFT, QI_P_DID_LEN, QI_P_PASID_SHIFT, QI_P_PASID_LEN, QI_PIOTLB_G_PASID, QI_PIOTLB_G_PAGE, QI_PC_G_DOMAIN, QI_PC_G_PASID, QI_PC_G_GLOBAL, qiPasidReservedLo, qiPiotlbReservedHi, qiPcReservedHi } from "./qidesc";
import { GSTS_QIES, ICS_IWC, IQ_OFFSET_SHIFT, IQ_OFFSET_LEN, IQA_ADDR_SHIFT, IQA_ADDR_LEN, IQA_QS_SHIFT, IQA_QS_LEN, IQA_DW_BIT, TTM_SCALABLE } from "./regfields";
import { reg32, setReg32, reg64, setReg64, IQH_REG, IQT_REG, IQA_REG, ICS_REG, IECTL_REG, IEDATA_REG, IEADDR_REG, IEUADDR_REG, FSTS_REG, GSTS_REG } from "./regs";
import { iecInvalidate } from "./irstate";
import { EV_COMPLETION_MSI, EV_INVALIDATION, INV_DEVTLB, INV_IEC } from "./abi";

let queueBase: u64 = 0;
let queueBytes: u64 = 0;
/** IQA.DW latched at enable: 256-bit descriptors. */
let wide: bool = false;

/** GCMD.QIE set: latch IQA, reset the head, run anything already queued. */
export function qiEnable(): void {
  const iqa = reg64(IQA_REG);
  queueBase = iqa & fieldMask64(IQA_ADDR_SHIFT, IQA_ADDR_LEN);
  // 2^(QS+8) descriptors of 16 bytes
  queueBytes = (<u64>1 << (extract64(iqa, IQA_QS_SHIFT, IQA_QS_LEN) + 8)) << 4; // 2^QS pages either way
  wide = bit64(iqa, IQA_DW_BIT); // writable only with scalable mode
  setReg64(IQH_REG, 0);
  setReg32(GSTS_REG, reg32(GSTS_REG) | GSTS_QIES);
  qiProcess();
}

export function qiDisable(): void {
  setReg32(GSTS_REG, reg32(GSTS_REG) & ~GSTS_QIES);
  setReg64(IQH_REG, 0);
}

// @ts-ignore: decorator
@inline export function qiEnabled(): bool {
  return (reg32(GSTS_REG) & GSTS_QIES) != 0;
}

function queueError(): void {
  count(C_QI_ERRORS);
  raiseStatus(FSTS_IQE);
}

/** Processes descriptors from IQH up to IQT. */
export function qiProcess(): void {
  if (!qiEnabled() || (reg32(FSTS_REG) & FSTS_IQE) != 0) return;
  const tail = reg64(IQT_REG) & fieldMask64(IQ_OFFSET_SHIFT, IQ_OFFSET_LEN);
  if (tail >= queueBytes || (wide && (tail & 0x10) != 0)) {
    queueError();
    return;
  }
  let head = reg64(IQH_REG) & fieldMask64(IQ_OFFSET_SHIFT, IQ_OFFSET_LEN);
  while (head != tail) {
    const at = queueBase + head;
    const lo = unitRead64(at);
    let failed = memError;
    const hi = failed ? 0 : unitRead64(at + 8);
    failed = failed || memError;
    let upper: u64 = 0; // QW2 | QW3 of a 256-bit descriptor
    if (wide && !failed) {
      upper = unitRead64(at + 16);
      failed = memError;
      if (!failed) upper |= unitRead64(at + 24);
      failed = failed || memError;
    }
    if (failed || !execute(lo, hi, upper)) {
      queueError();
      return;
    }
    head += wide ? 32 : 16;
    if (head >= queueBytes) head = 0;
    setReg64(IQH_REG, head);
  }
}

/** Validates and performs one descriptor; false when it is invalid (IQE). `upper`: QW2 | QW3 (0 with DW = 0). */
function execute(lo: u64, hi: u64, upper: u64): bool {
  // A 4-bit field: the counter block has a slot for each of its 16 values (0xF included).
  const type = <u32>extract64(lo, QI_TYPE_SHIFT, QI_TYPE_LEN);
  count(C_QI_DESC + type);
  if ((lo & fieldMask64(QI_TYPE_HI_SHIFT, QI_TYPE_HI_LEN)) != 0) return false;
  // None of the descriptor types this unit implements has a field in QW2 or QW3.
  if (upper != 0) return false;
  // Types 6 and 7 are 256-bit descriptors of scalable mode: IQE in legacy mode (latched TTM 00)
  // and in a queue of 128-bit descriptors (DW = 0), as the specification says of each.
  if (type == QI_TYPE_PASID_IOTLB) {
    if (rootTtm != TTM_SCALABLE || !wide) return false;
    if ((lo & qiPasidReservedLo()) != 0 || (hi & qiPiotlbReservedHi()) != 0) return false;
    const g = <u32>extract64(lo, QI_G_SHIFT, QI_G_LEN);
    const am = <u32>extract64(hi, QI_IOTLB_AM_SHIFT, QI_IOTLB_AM_LEN);
    if (g < QI_PIOTLB_G_PASID || (g == QI_PIOTLB_G_PAGE && am > MAMV_VALUE)) return false;
    invalidatePasidIotlb(g, <u32>extract64(lo, QI_P_DID_SHIFT, QI_P_DID_LEN), <u32>extract64(lo, QI_P_PASID_SHIFT, QI_P_PASID_LEN),
      hi & fieldMask64(QI_ADDR_SHIFT, QI_ADDR_LEN), am, <u32>extract64(hi, QI_IOTLB_IH_BIT, 1));
    return true;
  }
  if (type == QI_TYPE_PASID_CACHE) {
    if (rootTtm != TTM_SCALABLE || !wide) return false;
    if ((lo & qiPasidReservedLo()) != 0 || (hi & qiPcReservedHi()) != 0) return false;
    const g = <u32>extract64(lo, QI_G_SHIFT, QI_G_LEN);
    if (g != QI_PC_G_DOMAIN && g != QI_PC_G_PASID && g != QI_PC_G_GLOBAL) return false;
    invalidatePasidCache(g, <u32>extract64(lo, QI_P_DID_SHIFT, QI_P_DID_LEN), <u32>extract64(lo, QI_P_PASID_SHIFT, QI_P_PASID_LEN));
    return true;
  }
  if (type == QI_TYPE_CC) {
    if ((lo & qiCcReservedLo()) != 0 || (hi & qiCcReservedHi()) != 0) return false;
    const g = <u32>extract64(lo, QI_G_SHIFT, QI_G_LEN);
    if (g == 0) return false;
    invalidateContext(g, <u32>extract64(lo, QI_CC_DID_SHIFT, QI_CC_DID_LEN),
      <u32>extract64(lo, QI_CC_SID_SHIFT, QI_CC_SID_LEN), <u32>extract64(lo, QI_CC_FM_SHIFT, QI_CC_FM_LEN));
    return true;
  }
  if (type == QI_TYPE_IOTLB) {
    if ((lo & qiIotlbReservedLo()) != 0 || (hi & qiIotlbReservedHi()) != 0) return false;
    const g = <u32>extract64(lo, QI_G_SHIFT, QI_G_LEN);
    const am = <u32>extract64(hi, QI_IOTLB_AM_SHIFT, QI_IOTLB_AM_LEN);
    if (g == 0 || (g == 3 && am > MAMV_VALUE)) return false;
    invalidateIotlb(g, <u32>extract64(lo, QI_IOTLB_DID_SHIFT, QI_IOTLB_DID_LEN),
      hi & fieldMask64(QI_ADDR_SHIFT, QI_ADDR_LEN), am, <u32>extract64(hi, QI_IOTLB_IH_BIT, 1));
    return true;
  }
  if (type == QI_TYPE_DEV_IOTLB) {
    // No device-TLBs are modelled: the descriptor completes at once, and the
    // host hears of it (a device model with ATS would act on it).
    if ((lo & qiDevReservedLo()) != 0 || (hi & qiDevReservedHi()) != 0) return false;
    pushEvent(EV_INVALIDATION, INV_DEVTLB, 0, <u32>extract64(lo, QI_DEV_SID_SHIFT, QI_DEV_SID_LEN),
      hi & fieldMask64(QI_ADDR_SHIFT, QI_ADDR_LEN), extract64(hi, QI_DEV_S_BIT, 1));
    return true;
  }
  if (type == QI_TYPE_IEC) {
    if ((lo & qiIecReservedLo()) != 0 || (hi & qiIecReservedHi()) != 0) return false;
    const indexSelective = bit64(lo, QI_IEC_G_BIT);
    const im = <u32>extract64(lo, QI_IEC_IM_SHIFT, QI_IEC_IM_LEN);
    if (indexSelective && im > MHMV_VALUE) return false;
    const iidx = <u32>extract64(lo, QI_IEC_IIDX_SHIFT, QI_IEC_IIDX_LEN);
    iecInvalidate(indexSelective, iidx, im);
    pushEvent(EV_INVALIDATION, INV_IEC, 0, iidx, 0, <u64>im | (indexSelective ? <u64>3 << 16 : <u64>1 << 16));
    return true;
  }
  if (type == QI_TYPE_WAIT) {
    if ((lo & qiWaitReservedLo()) != 0 || (hi & qiWaitReservedHi()) != 0) return false;
    // FN (fence): this unit processes descriptors one after the other, so
    // every earlier descriptor has completed already.
    if (bit64(lo, QI_WAIT_SW_BIT)) { // status write
      const status = <u32>extract64(lo, QI_WAIT_DATA_SHIFT, QI_WAIT_DATA_LEN);
      if (!unitWrite32(hi & fieldMask64(QI_WAIT_ADDR_SHIFT, QI_WAIT_ADDR_LEN), status)) return false;
    }
    if (bit64(lo, QI_WAIT_IF_BIT)) completionEvent();
    return true;
  }
  return false;
}

/** Invalidation-completion event (digest §6.4 last paragraph). */
function completionEvent(): void {
  const ics = reg32(ICS_REG);
  if ((ics & ICS_IWC) != 0) return; // a previous completion is still unserviced
  setReg32(ICS_REG, ics | ICS_IWC);
  const iectl = reg32(IECTL_REG);
  if ((iectl & ECTL_IM) != 0) setReg32(IECTL_REG, iectl | ECTL_IP);
  else sendCompletionEvent();
}

function sendCompletionEvent(): void {
  setReg32(IECTL_REG, reg32(IECTL_REG) & ~ECTL_IP);
  count(C_COMPLETION_EVENTS);
  const addr = (<u64>reg32(IEUADDR_REG) << 32) | <u64>reg32(IEADDR_REG);
  pushEvent(EV_COMPLETION_MSI, reg32(IEDATA_REG), 0, 0, addr, 0);
}

/** ICS written (IWC is RW1C): clearing IWC withdraws a pending completion message. */
export function icsWritten(): void {
  if ((reg32(ICS_REG) & ICS_IWC) == 0) setReg32(IECTL_REG, reg32(IECTL_REG) & ~ECTL_IP);
}

/** IECTL written: unmasking with IP set delivers the pending message. */
export function iectlWritten(): void {
  const v = reg32(IECTL_REG);
  if ((v & ECTL_IM) == 0 && (v & ECTL_IP) != 0) sendCompletionEvent();
}
