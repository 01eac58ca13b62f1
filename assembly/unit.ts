// One remapping unit: its configuration, register definitions (digest §1),
// the MMIO entry points and every register side effect.

import { bitMask64, extract64, rangeMask64 } from "./bits";
import { setConfig, capValue, ecapValue, cfgAw, cfgNfr, hasFlag, FLAG_IR, FLAG_EIM, FLAG_PMR, NFR_MAX,
  MAMV_VALUE, pointerMask } from "./config";
import { count, countersInit, C_REG_READS, C_REG_WRITES } from "./counters";
import { ctxCacheInit } from "./ctxcache";
import { eventsInit } from "./events";
import { recomputePpf, statusServiced, fectlWritten, frcdOffset } from "./faults";
import { memInit } from "./guestmem";
import { invalidateContext, invalidateIotlb } from "./invalidate";
import { frontCacheInit } from "./frontcache";
import { iotlbInit, iotlbCapacity } from "./iotlb";
import { irInit, latchIrta } from "./irstate";
import { pmenWritten } from "./pmr";
import { qiEnable, qiDisable, qiProcess, qiEnabled, icsWritten, iectlWritten } from "./qi";
import { regsInit, defineReg32, defineReg64, reg32, setReg32, reg64, setReg64, guestRead, guestWriteBytes,
  VER_REG, CAP_REG, ECAP_REG, GCMD_REG, GSTS_REG, RTADDR_REG, CCMD_REG, FSTS_REG, FECTL_REG, FEDATA_REG,
  FEADDR_REG, FEUADDR_REG, PMEN_REG, PLMBASE_REG, PLMLIMIT_REG, PHMBASE_REG, PHMLIMIT_REG, IQH_REG, IQT_REG,
  IQA_REG, ICS_REG, IECTL_REG, IEDATA_REG, IEADDR_REG, IEUADDR_REG, IRTA_REG, IVA_REG, IOTLB_REG, FRCD_REG } from "./regs";
import { slpteInit } from "./slpte";
import { setRootTable, setTranslationEnabled } from "./translate";

// ---- GCMD / GSTS (digest §1.3) ----------------------------------------------
// @ts-ignore: decorator
@inline export const GCMD_TE: u32 = 1 << 31;
// @ts-ignore: decorator
@inline export const GCMD_SRTP: u32 = 1 << 30;
// @ts-ignore: decorator
@inline export const GCMD_SFL: u32 = 1 << 29;
// @ts-ignore: decorator
@inline export const GCMD_EAFL: u32 = 1 << 28;
// @ts-ignore: decorator
@inline export const GCMD_WBF: u32 = 1 << 27;
// @ts-ignore: decorator
@inline export const GCMD_QIE: u32 = 1 << 26;
// @ts-ignore: decorator
@inline export const GCMD_IRE: u32 = 1 << 25;
// @ts-ignore: decorator
@inline export const GCMD_SIRTP: u32 = 1 << 24;
// @ts-ignore: decorator
@inline export const GCMD_CFI: u32 = 1 << 23;
/** GSTS bits share GCMD's positions: TES, RTPS, FLS, AFLS, WBFS, QIES, IRES, IRTPS, CFIS. */
// @ts-ignore: decorator
@inline const GCMD_BITS: u32 = 0xff800000;

// ---- CCMD (digest §7.2) and IOTLB (§7.3) fields ---------------------------
// @ts-ignore: decorator
@inline const CCMD_ICC_BIT: u32 = 63;
// @ts-ignore: decorator
@inline const CCMD_CIRG_SHIFT: u32 = 61;
// @ts-ignore: decorator
@inline const CCMD_CAIG_SHIFT: u32 = 59;
// @ts-ignore: decorator
@inline const CCMD_FM_SHIFT: u32 = 32;
// @ts-ignore: decorator
@inline const CCMD_SID_SHIFT: u32 = 16;
// @ts-ignore: decorator
@inline const IOTLB_IVT_BIT: u32 = 63;
// @ts-ignore: decorator
@inline const IOTLB_IIRG_SHIFT: u32 = 60;
// @ts-ignore: decorator
@inline const IOTLB_IAIG_SHIFT: u32 = 57;
// @ts-ignore: decorator
@inline const IOTLB_DID_SHIFT: u32 = 32;
// @ts-ignore: decorator
@inline const IVA_AM_LEN: u32 = 6;
// @ts-ignore: decorator
@inline const IVA_IH_BIT: u32 = 6;

/** Error codes of configure (host maps them to messages in src/errors.ts). */
// @ts-ignore: decorator
@inline export const CFG_OK: i32 = 0;
// @ts-ignore: decorator
@inline export const CFG_BAD_AW: i32 = 1;
// @ts-ignore: decorator
@inline export const CFG_BAD_NFR: i32 = 2;
// @ts-ignore: decorator
@inline export const CFG_NO_MEMORY: i32 = 3;
// @ts-ignore: decorator
@inline export const CFG_TWICE: i32 = 4;

let configured = false;

export function configureUnit(aw: u32, flags: u32, nfr: u32, iotlbEntries: u32, contextCache: bool): i32 {
  if (configured) return CFG_TWICE;
  if (aw != 39 && aw != 48 && aw != 57) return CFG_BAD_AW;
  if (nfr < 1 || nfr > NFR_MAX) return CFG_BAD_NFR;
  setConfig(aw, flags, nfr);
  if (!regsInit() || !countersInit() || !eventsInit() || !memInit() || !slpteInit()
    || !iotlbInit(iotlbEntries) || !ctxCacheInit(contextCache) || !irInit(contextCache)) return CFG_NO_MEMORY;
  // The front cache sits on both architected caches: only when both are on.
  if (contextCache && !frontCacheInit(iotlbCapacity() < 1 << 18 ? iotlbCapacity() : 1 << 18)) return CFG_NO_MEMORY;
  defineRegisters();
  configured = true;
  return CFG_OK;
}

export function isConfigured(): bool {
  return configured;
}

/** Reset values and masks of every register (value, writable, write-1-to-clear, write-only). */
function defineRegisters(): void {
  const ptr = pointerMask(); // address bits [12, aw)
  defineReg32(VER_REG, 0x10, 0, 0, 0);
  defineReg64(CAP_REG, capValue, 0, 0, 0);
  defineReg64(ECAP_REG, ecapValue, 0, 0, 0);
  defineReg32(GCMD_REG, 0, GCMD_BITS, 0, 0); // acted on, then cleared: reads 0
  defineReg32(GSTS_REG, 0, 0, 0, 0);
  defineReg64(RTADDR_REG, 0, ptr, 0, 0); // TTM needs scalable mode: not writable
  defineReg64(CCMD_REG, 0,
    bitMask64(CCMD_ICC_BIT) | rangeMask64(CCMD_CIRG_SHIFT, 63) | rangeMask64(0, 34), 0,
    rangeMask64(CCMD_SID_SHIFT, 34)); // FM and SID are write-only
  // FSTS: PFO, AFO, APF, IQE, ICE, ITE are RW1C; PPF and FRI read-only.
  // W1C bits are not in the writable mask: writing 0 to them changes nothing.
  defineReg32(FSTS_REG, 0, 0, 0b1111101, 0);
  defineReg32(FECTL_REG, 0x80000000, 0x80000000, 0, 0);
  defineReg32(FEDATA_REG, 0, 0xffff, 0, 0);
  defineReg32(FEADDR_REG, 0, 0xfffffffc, 0, 0);
  // The upper address matters only for x2APIC destinations (EIM).
  defineReg32(FEUADDR_REG, 0, hasFlag(FLAG_EIM) ? 0xffffffff : 0, 0, 0);
  if (hasFlag(FLAG_PMR)) {
    defineReg32(PMEN_REG, 0, 0x80000000, 0, 0);
    defineReg32(PLMBASE_REG, 0, 0xffe00000, 0, 0);
    defineReg32(PLMLIMIT_REG, 0, 0xffe00000, 0, 0);
    defineReg64(PHMBASE_REG, 0, rangeMask64(21, cfgAw), 0, 0);
    defineReg64(PHMLIMIT_REG, 0, rangeMask64(21, cfgAw), 0, 0);
  }
  defineReg64(IQH_REG, 0, 0, 0, 0);
  defineReg64(IQT_REG, 0, rangeMask64(4, 19), 0, 0);
  defineReg64(IQA_REG, 0, ptr | 0x7, 0, 0); // DW (bit 11) needs scalable mode
  defineReg32(ICS_REG, 0, 0, 1, 0);
  defineReg32(IECTL_REG, 0x80000000, 0x80000000, 0, 0);
  defineReg32(IEDATA_REG, 0, 0xffff, 0, 0);
  defineReg32(IEADDR_REG, 0, 0xfffffffc, 0, 0);
  defineReg32(IEUADDR_REG, 0, hasFlag(FLAG_EIM) ? 0xffffffff : 0, 0, 0);
  if (hasFlag(FLAG_IR)) {
    defineReg64(IRTA_REG, 0, ptr | (hasFlag(FLAG_EIM) ? bitMask64(11) : 0) | 0xf, 0, 0);
  }
  defineReg64(IVA_REG, 0, rangeMask64(12, 64) | rangeMask64(0, 7), 0, <u64>-1); // write-only
  defineReg64(IOTLB_REG, 0,
    bitMask64(IOTLB_IVT_BIT) | rangeMask64(IOTLB_IIRG_SHIFT, 62) | rangeMask64(48, 50) | rangeMask64(32, 48), 0, 0);
  for (let i: u32 = 0; i < cfgNfr; i++) {
    defineReg64(frcdOffset(i), 0, 0, 0, 0);
    defineReg64(frcdOffset(i) + 8, 0, 0, bitMask64(63), 0);
  }
}

// ---- MMIO ---------------------------------------------------------------------

/** A guest register read. The host checked size in {1,2,4,8} and off + size <= 4096. */
export function mmioRead(off: u32, size: u32): u64 {
  count(C_REG_READS);
  return guestRead(off, size);
}

/** A guest register write: the generic rule on the bytes, then each touched register's effect. */
export function mmioWrite(off: u32, size: u32, val: u64): void {
  count(C_REG_WRITES);
  guestWriteBytes(off, size, val);
  const first = off & ~3;
  const last = (off + size - 1) & ~3;
  for (let d = first; d <= last; d += 4) afterWrite(d);
}

/** Side effects of a write that touched the 32-bit register at `dw`. */
function afterWrite(dw: u32): void {
  if (dw == GCMD_REG) {
    gcmdWritten(reg32(GCMD_REG));
    setReg32(GCMD_REG, 0);
  } else if (dw == CCMD_REG + 4) {
    ccmdWritten();
  } else if (dw == IOTLB_REG + 4) {
    iotlbWritten();
  } else if (dw == FSTS_REG) {
    statusServiced();
    qiProcess(); // clearing IQE lets the queue run again
  } else if (dw == FECTL_REG) {
    fectlWritten();
  } else if (dw == IQT_REG) {
    qiProcess();
  } else if (dw == ICS_REG) {
    icsWritten();
  } else if (dw == IECTL_REG) {
    iectlWritten();
  } else if (dw == PMEN_REG) {
    pmenWritten();
  } else if (dw >= FRCD_REG && dw < FRCD_REG + (cfgNfr << 4) && (dw & 0xf) == 0xc) {
    recomputePpf(); // F (bit 127) lives in this dword
    statusServiced();
  }
}

function setStatus(bit: u32, on: bool): void {
  const v = reg32(GSTS_REG);
  setReg32(GSTS_REG, on ? v | bit : v & ~bit);
}

/**
 * GCMD (digest §1.3): persistent bits act when they differ from GSTS, one-shot
 * bits act when written as 1. A write that leaves out a persistent bit turns
 * that function off, as on hardware.
 */
function gcmdWritten(v: u32): void {
  const sts = reg32(GSTS_REG);
  if ((v & GCMD_SRTP) != 0) {
    setRootTable(reg64(RTADDR_REG) & pointerMask());
    setStatus(GCMD_SRTP, true); // RTPS: the latch completes at once
  }
  if (((v ^ sts) & GCMD_TE) != 0) {
    const on = (v & GCMD_TE) != 0;
    setTranslationEnabled(on);
    setStatus(GCMD_TE, on);
  }
  if (((v ^ sts) & GCMD_QIE) != 0) {
    if ((v & GCMD_QIE) != 0) qiEnable();
    else qiDisable();
  }
  if (hasFlag(FLAG_IR)) {
    if ((v & GCMD_SIRTP) != 0) {
      latchIrta(reg64(IRTA_REG));
      setStatus(GCMD_SIRTP, true);
    }
    if (((v ^ sts) & GCMD_IRE) != 0) setStatus(GCMD_IRE, (v & GCMD_IRE) != 0);
    if (((v ^ sts) & GCMD_CFI) != 0) setStatus(GCMD_CFI, (v & GCMD_CFI) != 0);
  }
  // SFL/EAFL (CAP.AFL = 0) and WBF (CAP.RWBF = 0) have nothing to do: their
  // status bits stay 0, which is also what software polling WBFS waits for.
}

/** CCMD with ICC = 1 (digest §7.2): performs the context-cache invalidation. */
function ccmdWritten(): void {
  let v = reg64(CCMD_REG);
  if ((v >> CCMD_ICC_BIT) == 0) return;
  // Register-based invalidation is not available while QI is enabled; the
  // command stays pending (ICC reads 1), as on QEMU 7.2.
  if (qiEnabled()) return;
  const g = <u32>extract64(v, CCMD_CIRG_SHIFT, 2);
  const done = invalidateContext(g, <u32>extract64(v, 0, 16), <u32>extract64(v, CCMD_SID_SHIFT, 16),
    <u32>extract64(v, CCMD_FM_SHIFT, 2));
  v &= ~(bitMask64(CCMD_ICC_BIT) | rangeMask64(CCMD_CAIG_SHIFT, CCMD_CAIG_SHIFT + 2));
  setReg64(CCMD_REG, v | (<u64>done << CCMD_CAIG_SHIFT));
}

/** IOTLB with IVT = 1 (digest §7.3), IVA holding the address, AM and IH. */
function iotlbWritten(): void {
  let v = reg64(IOTLB_REG);
  if ((v >> IOTLB_IVT_BIT) == 0) return;
  if (qiEnabled()) return;
  const g = <u32>extract64(v, IOTLB_IIRG_SHIFT, 2);
  const iva = reg64(IVA_REG);
  const am = <u32>extract64(iva, 0, IVA_AM_LEN);
  let done: u32 = 0;
  if (!(g == 3 && am > MAMV_VALUE)) {
    done = invalidateIotlb(g, <u32>extract64(v, IOTLB_DID_SHIFT, 16), iva & ~(<u64>0xfff), am,
      <u32>extract64(iva, IVA_IH_BIT, 1));
  }
  v &= ~(bitMask64(IOTLB_IVT_BIT) | rangeMask64(IOTLB_IAIG_SHIFT, IOTLB_IAIG_SHIFT + 2));
  setReg64(IOTLB_REG, v | (<u64>done << IOTLB_IAIG_SHIFT));
}
