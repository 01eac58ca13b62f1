// Protected memory regions (digest §1.1 PMEN..PHMLIMIT), only when the unit is
// configured with them (CAP.PLMR = CAP.PHMR = 1; QEMU has none).
//
// With PMEN.EPM = 1, DMA to [PLMBASE, PLMLIMIT | 2 MiB-1] or
// [PHMBASE, PHMLIMIT | 2 MiB-1] is blocked and not recorded as a remapping
// fault. Intel's datasheets say hardware blocks it with translation disabled
// and "may or may not" with translation enabled (newer parts: regardless of
// TE); this unit blocks it in both cases. The unit's own table reads are not
// subject to the check.

import { hasFlag } from "./config";
import { reg32, setReg32, reg64, PMEN_REG, PLMBASE_REG, PLMLIMIT_REG, PHMBASE_REG, PHMLIMIT_REG } from "./regs";
import { FLAG_PMR } from "./abi";

// @ts-ignore: decorator
@inline export const PMEN_EPM: u32 = 1 << 31;
// @ts-ignore: decorator
@inline export const PMEN_PRS: u32 = 1 << 0;
/** Base/limit registers hold bits 63:21: regions are 2 MiB granular. */
// @ts-ignore: decorator
@inline export const PMR_GRAIN_BITS: u32 = 21;

/** Mirrors PMEN.PRS so the hot path tests one global. */
export let pmrActive: bool = false;

export function pmenWritten(): void {
  if (!hasFlag(FLAG_PMR)) return;
  const epm = (reg32(PMEN_REG) & PMEN_EPM) != 0;
  pmrActive = epm;
  // The status follows at once: an emulator has no in-flight DMA to drain.
  setReg32(PMEN_REG, epm ? PMEN_EPM | PMEN_PRS : 0);
}

// @ts-ignore: decorator
@inline function inRange(a: u64, end: u64, base: u64, limit: u64): bool {
  if (limit < base) return false;
  const top = limit | ((<u64>1 << PMR_GRAIN_BITS) - 1);
  return a <= top && end >= base;
}

export function pmrBlocks(a: u64, len: u32): bool {
  if (!pmrActive) return false;
  let end = a + <u64>(len - 1);
  if (end < a) end = <u64>-1; // a range wrapping past 2^64 reaches the top of the space
  return inRange(a, end, <u64>reg32(PLMBASE_REG), <u64>reg32(PLMLIMIT_REG))
    || inRange(a, end, reg64(PHMBASE_REG), reg64(PHMLIMIT_REG));
}
