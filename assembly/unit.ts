// One remapping unit: its configuration, register definitions (digest §1),
// the MMIO entry points and every register side effect.

import { bitMask64, extract64, fieldMask64, rangeMask64 } from "./bits";
import { setConfig, smFlagsValid, smMode, capValue, ecapValue, cfgAw, cfgNfr, hasFlag, NFR_MAX, MAMV_VALUE, pointerMask } from "./config";
import { count, countersInit, C_REG_READS, C_REG_WRITES } from "./counters";
import { ctxCacheInit } from "./ctxcache";
import { eventsInit } from "./events";
import { recomputePpf, statusServiced, fectlWritten, frcdOffset, FSTS_PFO, FSTS_AFO, FSTS_APF, FSTS_IQE, FSTS_ICE, FSTS_ITE, ECTL_IM, FRCD_F_BIT } from "./faults";
import { memInit } from "./guestmem";
import { invalidateContext, invalidateIotlb } from "./invalidate";
import { frontCacheInit } from "./frontcache";
import { iotlbInit, iotlbCapacity } from "./iotlb";
import { irInit, latchIrta } from "./irstate";
import { pmenWritten, PMEN_EPM, PMR_GRAIN_BITS } from "./pmr";
import { qiEnable, qiDisable, qiProcess, qiEnabled, icsWritten, iectlWritten } from "./qi";
import { regsInit, defineReg32, defineReg64, reg32, setReg32, reg64, setReg64, guestRead, guestWriteBytes, VER_REG, CAP_REG, ECAP_REG, GCMD_REG, GSTS_REG, RTADDR_REG, CCMD_REG, FSTS_REG, FECTL_REG, FEDATA_REG, FEADDR_REG, FEUADDR_REG, PMEN_REG, PLMBASE_REG, PLMLIMIT_REG, PHMBASE_REG, PHMLIMIT_REG, IQH_REG, IQT_REG, IQA_REG, ICS_REG, IECTL_REG, IEDATA_REG, IEADDR_REG, IEUADDR_REG, IRTA_REG, IVA_REG, IOTLB_REG, FRCD_REG } from "./regs";
import { GCMD_TE, GCMD_SRTP, GCMD_QIE, GCMD_IRE, GCMD_SIRTP, GCMD_CFI, GCMD_ALL, GSTS_TES, GSTS_RTPS, GSTS_IRES, GSTS_IRTPS, GSTS_CFIS, VER_MAX_SHIFT, CCMD_ICC_BIT, CCMD_CIRG_SHIFT, CCMD_CAIG_SHIFT, CCMD_G_LEN, CCMD_FM_SHIFT, CCMD_FM_LEN, CCMD_SID_SHIFT, CCMD_SID_LEN, CCMD_DID_SHIFT, CCMD_DID_LEN, IOTLB_IVT_BIT, IOTLB_IIRG_SHIFT, IOTLB_IAIG_SHIFT, IOTLB_G_LEN, IOTLB_DID_SHIFT, IOTLB_DID_LEN, IVA_ADDR_SHIFT, IVA_ADDR_LEN, IVA_IH_BIT, IVA_AM_SHIFT, IVA_AM_LEN, EDATA_IMD_LEN, EADDR_MA_SHIFT, EADDR_MA_LEN, EUADDR_MUA_LEN, IQ_OFFSET_SHIFT, IQ_OFFSET_LEN, IQA_QS_SHIFT, IQA_QS_LEN, IQA_DW_BIT, RTADDR_TTM_SHIFT, RTADDR_TTM_LEN, ICS_IWC, IRTA_EIME_BIT, IRTA_S_SHIFT, IRTA_S_LEN, ccmdWritable, ccmdWriteOnly, iotlbWritable, ivaWritable } from "./regfields";
import { slpteInit } from "./slpte";
import { fsInit } from "./fspte";
import { smWalkInit } from "./smwalk";
import { pasidTlbInit } from "./pasidtlb";
import { smRootInit } from "./smroot";
import { smContextInit } from "./smcontext";
import { pasidDirInit } from "./pasiddir";
import { pasidEntryInit } from "./pasidentry";
import { setRootTable, setTranslationEnabled } from "./translate";
import { CFG_BAD_SM, CFG_BAD_AW, CFG_BAD_NFR, CFG_NO_MEMORY, CFG_OK, CFG_TWICE, FLAG_EIM, FLAG_IR, FLAG_PMR } from "./abi";


let configured = false;

export function configureUnit(aw: u32, flags: u32, nfr: u32, iotlbEntries: u32, contextCache: bool): i32 {
  if (configured) return CFG_TWICE;
  if (aw != 39 && aw != 48 && aw != 57) return CFG_BAD_AW;
  if (nfr < 1 || nfr > NFR_MAX) return CFG_BAD_NFR;
  if (!smFlagsValid(aw, flags)) return CFG_BAD_SM;
  setConfig(aw, flags, nfr);
  if (!regsInit() || !countersInit() || !eventsInit() || !memInit() || !slpteInit()
    || !iotlbInit(iotlbEntries) || !ctxCacheInit(contextCache, smMode) || !irInit(contextCache)
    || !fsInit() || !smWalkInit() || !pasidTlbInit(smMode ? iotlbCapacity() : 0)) return CFG_NO_MEMORY;
  smRootInit();
  smContextInit();
  pasidDirInit();
  pasidEntryInit();
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
  const imd = <u32>fieldMask64(0, EDATA_IMD_LEN);
  const ma = <u32>fieldMask64(EADDR_MA_SHIFT, EADDR_MA_LEN);
  // The upper address matters only for x2APIC destinations (EIM).
  const mua = hasFlag(FLAG_EIM) ? <u32>fieldMask64(0, EUADDR_MUA_LEN) : 0;
  defineReg32(VER_REG, 1 << VER_MAX_SHIFT, 0, 0, 0); // version 1.0
  defineReg64(CAP_REG, capValue, 0, 0, 0);
  defineReg64(ECAP_REG, ecapValue, 0, 0, 0);
  defineReg32(GCMD_REG, 0, GCMD_ALL, 0, 0); // acted on, then cleared: reads 0
  defineReg32(GSTS_REG, 0, 0, 0, 0);
  // TTM (11:10) is writable only with scalable mode; a legacy unit ignores it (reads 0), as QEMU's.
  defineReg64(RTADDR_REG, 0, ptr | (smMode ? fieldMask64(RTADDR_TTM_SHIFT, RTADDR_TTM_LEN) : 0), 0, 0);
  defineReg64(CCMD_REG, 0, ccmdWritable(), 0, ccmdWriteOnly());
  // FSTS: PFO, AFO, APF, IQE, ICE, ITE are RW1C; PPF and FRI read-only.
  // W1C bits are not in the writable mask: writing 0 to them changes nothing.
  defineReg32(FSTS_REG, 0, 0, FSTS_PFO | FSTS_AFO | FSTS_APF | FSTS_IQE | FSTS_ICE | FSTS_ITE, 0);
  defineReg32(FECTL_REG, ECTL_IM, ECTL_IM, 0, 0);
  defineReg32(FEDATA_REG, 0, imd, 0, 0);
  defineReg32(FEADDR_REG, 0, ma, 0, 0);
  defineReg32(FEUADDR_REG, 0, mua, 0, 0);
  if (hasFlag(FLAG_PMR)) {
    // Base and limit registers: bits [21, width) (2 MiB granular).
    defineReg32(PMEN_REG, 0, PMEN_EPM, 0, 0);
    defineReg32(PLMBASE_REG, 0, <u32>rangeMask64(PMR_GRAIN_BITS, 32), 0, 0);
    defineReg32(PLMLIMIT_REG, 0, <u32>rangeMask64(PMR_GRAIN_BITS, 32), 0, 0);
    defineReg64(PHMBASE_REG, 0, rangeMask64(PMR_GRAIN_BITS, cfgAw), 0, 0);
    defineReg64(PHMLIMIT_REG, 0, rangeMask64(PMR_GRAIN_BITS, cfgAw), 0, 0);
  }
  defineReg64(IQH_REG, 0, 0, 0, 0);
  defineReg64(IQT_REG, 0, fieldMask64(IQ_OFFSET_SHIFT, IQ_OFFSET_LEN), 0, 0);
  // DW (256-bit descriptors) exists only with scalable mode.
  defineReg64(IQA_REG, 0, ptr | fieldMask64(IQA_QS_SHIFT, IQA_QS_LEN) | (smMode ? bitMask64(IQA_DW_BIT) : 0), 0, 0);
  defineReg32(ICS_REG, 0, 0, ICS_IWC, 0);
  defineReg32(IECTL_REG, ECTL_IM, ECTL_IM, 0, 0);
  defineReg32(IEDATA_REG, 0, imd, 0, 0);
  defineReg32(IEADDR_REG, 0, ma, 0, 0);
  defineReg32(IEUADDR_REG, 0, mua, 0, 0);
  if (hasFlag(FLAG_IR)) {
    const eime = hasFlag(FLAG_EIM) ? bitMask64(IRTA_EIME_BIT) : 0;
    defineReg64(IRTA_REG, 0, ptr | eime | fieldMask64(IRTA_S_SHIFT, IRTA_S_LEN), 0, 0);
  }
  defineReg64(IVA_REG, 0, ivaWritable(), 0, <u64>-1); // write-only
  defineReg64(IOTLB_REG, 0, iotlbWritable(), 0, 0);
  for (let i: u32 = 0; i < cfgNfr; i++) {
    defineReg64(frcdOffset(i), 0, 0, 0, 0);
    defineReg64(frcdOffset(i) + 8, 0, 0, bitMask64(FRCD_F_BIT), 0);
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
    const rtaddr = reg64(RTADDR_REG);
    setRootTable(rtaddr & pointerMask(), <u32>extract64(rtaddr, RTADDR_TTM_SHIFT, RTADDR_TTM_LEN));
    setStatus(GSTS_RTPS, true); // the latch completes at once
  }
  if (((v ^ sts) & GCMD_TE) != 0) {
    const on = (v & GCMD_TE) != 0;
    setTranslationEnabled(on);
    setStatus(GSTS_TES, on);
  }
  if (((v ^ sts) & GCMD_QIE) != 0) {
    if ((v & GCMD_QIE) != 0) qiEnable();
    else qiDisable();
  }
  if (hasFlag(FLAG_IR)) {
    if ((v & GCMD_SIRTP) != 0) {
      latchIrta(reg64(IRTA_REG));
      setStatus(GSTS_IRTPS, true);
    }
    if (((v ^ sts) & GCMD_IRE) != 0) setStatus(GSTS_IRES, (v & GCMD_IRE) != 0);
    if (((v ^ sts) & GCMD_CFI) != 0) setStatus(GSTS_CFIS, (v & GCMD_CFI) != 0);
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
  const g = <u32>extract64(v, CCMD_CIRG_SHIFT, CCMD_G_LEN);
  const done = invalidateContext(g, <u32>extract64(v, CCMD_DID_SHIFT, CCMD_DID_LEN),
    <u32>extract64(v, CCMD_SID_SHIFT, CCMD_SID_LEN), <u32>extract64(v, CCMD_FM_SHIFT, CCMD_FM_LEN));
  v &= ~(bitMask64(CCMD_ICC_BIT) | fieldMask64(CCMD_CAIG_SHIFT, CCMD_G_LEN));
  setReg64(CCMD_REG, v | (<u64>done << CCMD_CAIG_SHIFT));
}

/** IOTLB with IVT = 1 (digest §7.3), IVA holding the address, AM and IH. */
function iotlbWritten(): void {
  let v = reg64(IOTLB_REG);
  if ((v >> IOTLB_IVT_BIT) == 0) return;
  if (qiEnabled()) return;
  const g = <u32>extract64(v, IOTLB_IIRG_SHIFT, IOTLB_G_LEN);
  const iva = reg64(IVA_REG);
  const am = <u32>extract64(iva, IVA_AM_SHIFT, IVA_AM_LEN);
  let done: u32 = 0;
  if (!(g == 3 && am > MAMV_VALUE)) {
    done = invalidateIotlb(g, <u32>extract64(v, IOTLB_DID_SHIFT, IOTLB_DID_LEN),
      iva & fieldMask64(IVA_ADDR_SHIFT, IVA_ADDR_LEN), am, <u32>extract64(iva, IVA_IH_BIT, 1));
  }
  v &= ~(bitMask64(IOTLB_IVT_BIT) | fieldMask64(IOTLB_IAIG_SHIFT, IOTLB_G_LEN));
  setReg64(IOTLB_REG, v | (<u64>done << IOTLB_IAIG_SHIFT));
}
