// Queued invalidation (digest §7.4-7.6).
//
// The queue is 2^(QS+8) 128-bit descriptors at the base latched from IQA when
// QI is enabled. IQT (written by software) and IQH (advanced by the unit) hold
// byte offsets in bits 18:4. Processing runs on an IQT write, on enabling QI
// with a non-empty queue, and when software clears FSTS.IQE. Every pass is
// bounded by the queue size, so no queue content can make the unit loop.
//
// Descriptor, QW0 bits 3:0 = type (bits 11:9 must be 0):
//   0x1 context-cache   QW0: 5:4 G | 31:16 DID | 47:32 SID | 49:48 FM        QW1: Rsvd
//   0x2 IOTLB           QW0: 5:4 G | 6 DW | 7 DR | 31:16 DID                  QW1: 5:0 AM | 6 IH | 63:12 ADDR
//   0x3 device-TLB      QW0: 15:12 PFSID | 20:16 MIP | 47:32 SID | 63:52 PFSID QW1: 0 S | 63:12 ADDR
//   0x4 int. entry cache QW0: 4 G | 31:27 IM | 47:32 IIDX                     QW1: Rsvd
//   0x5 wait            QW0: 4 IF | 5 SW | 6 FN | 63:32 status data          QW1: 63:2 status address
// Types 0x6-0x8 need scalable mode, 0x9-0xA page requests: invalid here, as
// are 0x0 and 0xB-0xF. An invalid descriptor, a fetch error, a failed status
// write or a tail beyond the queue sets FSTS.IQE with IQH left on the
// offending descriptor; nothing more is fetched until IQE is cleared.

import { extract64, rangeMask64 } from "./bits";
import { MAMV_VALUE, MHMV_VALUE } from "./config";
import { count, C_QI_DESC, QI_DESC_TYPES, C_QI_ERRORS, C_COMPLETION_EVENTS } from "./counters";
import { pushEvent, EV_COMPLETION_MSI, EV_INVALIDATION, INV_DEVTLB, INV_IEC } from "./events";
import { raiseStatus, FSTS_IQE, ECTL_IM, ECTL_IP } from "./faults";
import { unitRead64, unitWrite32, memError } from "./guestmem";
import { invalidateContext, invalidateIotlb } from "./invalidate";
import { reg32, setReg32, reg64, setReg64, IQH_REG, IQT_REG, IQA_REG, ICS_REG, IECTL_REG, IEDATA_REG,
  IEADDR_REG, IEUADDR_REG, FSTS_REG, GSTS_REG } from "./regs";
import { iecInvalidate } from "./irstate";

// @ts-ignore: decorator
@inline export const GSTS_QIES: u32 = 1 << 26;
// @ts-ignore: decorator
@inline const IQ_OFFSET_MASK: u64 = 0x7fff0; // bits 18:4
// @ts-ignore: decorator
@inline const ICS_IWC: u32 = 1;

// @ts-ignore: decorator
@inline const DESC_CONTEXT: u32 = 0x1;
// @ts-ignore: decorator
@inline const DESC_IOTLB: u32 = 0x2;
// @ts-ignore: decorator
@inline const DESC_DEVTLB: u32 = 0x3;
// @ts-ignore: decorator
@inline const DESC_IEC: u32 = 0x4;
// @ts-ignore: decorator
@inline const DESC_WAIT: u32 = 0x5;

// Reserved bits per type (QW0 includes the type-extension bits 11:9).
// @ts-ignore: decorator
@inline const CC_RSVD0: u64 = 0xfffc00000000ffc0; // 15:6, 63:50
// @ts-ignore: decorator
@inline const IOTLB_RSVD0: u64 = 0xffffffff0000ff00; // 15:8, 63:32
// @ts-ignore: decorator
@inline const IOTLB_RSVD1: u64 = 0xf80; // 11:7
// @ts-ignore: decorator
@inline const DEVTLB_RSVD0: u64 = 0x000f0000ffe00ff0; // 11:4, 31:21, 51:48
// @ts-ignore: decorator
@inline const DEVTLB_RSVD1: u64 = 0xffe; // 11:1
// @ts-ignore: decorator
@inline const IEC_RSVD0: u64 = 0xffff000007ffffe0; // 26:5, 63:48
// @ts-ignore: decorator
@inline const WAIT_RSVD0: u64 = 0xffffff80; // 31:7 (7 = PD: page-request drain, unsupported)
// @ts-ignore: decorator
@inline const WAIT_RSVD1: u64 = 0x3;

let queueBase: u64 = 0;
let queueBytes: u64 = 0;

/** GCMD.QIE set: latch IQA, reset the head, run anything already queued. */
export function qiEnable(): void {
  const iqa = reg64(IQA_REG);
  queueBase = iqa & ~(<u64>0xfff);
  queueBytes = (<u64>1 << (extract64(iqa, 0, 3) + 8)) << 4;
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
  const tail = reg64(IQT_REG) & IQ_OFFSET_MASK;
  if (tail >= queueBytes) {
    queueError();
    return;
  }
  let head = reg64(IQH_REG) & IQ_OFFSET_MASK;
  while (head != tail) {
    const at = queueBase + head;
    const lo = unitRead64(at);
    const fetchFailed = memError;
    const hi = fetchFailed ? 0 : unitRead64(at + 8);
    if (fetchFailed || memError || !execute(lo, hi)) {
      queueError();
      return;
    }
    head += 16;
    if (head >= queueBytes) head = 0;
    setReg64(IQH_REG, head);
  }
}

/** Validates and performs one descriptor; false when it is invalid (IQE). */
function execute(lo: u64, hi: u64): bool {
  // The mask is the counter block's size, so every type has its own slot (0xF included).
  const type = <u32>(lo & <u64>(QI_DESC_TYPES - 1));
  count(C_QI_DESC + type);
  if ((lo & rangeMask64(9, 12)) != 0) return false;
  if (type == DESC_CONTEXT) {
    if ((lo & CC_RSVD0) != 0 || hi != 0) return false;
    const g = <u32>extract64(lo, 4, 2);
    if (g == 0) return false;
    invalidateContext(g, <u32>extract64(lo, 16, 16), <u32>extract64(lo, 32, 16), <u32>extract64(lo, 48, 2));
    return true;
  }
  if (type == DESC_IOTLB) {
    if ((lo & IOTLB_RSVD0) != 0 || (hi & IOTLB_RSVD1) != 0) return false;
    const g = <u32>extract64(lo, 4, 2);
    const am = <u32>extract64(hi, 0, 6);
    if (g == 0 || (g == 3 && am > MAMV_VALUE)) return false;
    invalidateIotlb(g, <u32>extract64(lo, 16, 16), hi & ~(<u64>0xfff), am, <u32>extract64(hi, 6, 1));
    return true;
  }
  if (type == DESC_DEVTLB) {
    // No device-TLBs are modelled: the descriptor completes at once, and the
    // host hears of it (a device model with ATS would act on it).
    if ((lo & DEVTLB_RSVD0) != 0 || (hi & DEVTLB_RSVD1) != 0) return false;
    pushEvent(EV_INVALIDATION, INV_DEVTLB, 0, <u32>extract64(lo, 32, 16), hi & ~(<u64>0xfff), hi & 1);
    return true;
  }
  if (type == DESC_IEC) {
    if ((lo & IEC_RSVD0) != 0 || hi != 0) return false;
    const indexSelective = extract64(lo, 4, 1) != 0;
    const im = <u32>extract64(lo, 27, 5);
    if (indexSelective && im > MHMV_VALUE) return false;
    const iidx = <u32>extract64(lo, 32, 16);
    iecInvalidate(indexSelective, iidx, im);
    pushEvent(EV_INVALIDATION, INV_IEC, 0, iidx, 0, <u64>im | (indexSelective ? <u64>3 << 16 : <u64>1 << 16));
    return true;
  }
  if (type == DESC_WAIT) {
    if ((lo & WAIT_RSVD0) != 0 || (hi & WAIT_RSVD1) != 0) return false;
    // FN (fence): this unit processes descriptors one after the other, so
    // every earlier descriptor has completed already.
    if (extract64(lo, 5, 1) != 0) { // SW: status write
      if (!unitWrite32(hi & ~(<u64>3), <u32>(lo >> 32))) return false;
    }
    if (extract64(lo, 4, 1) != 0) completionEvent(); // IF
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
