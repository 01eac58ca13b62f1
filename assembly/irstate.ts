// Interrupt-remapping state kept by the DMA-remapping side: the interrupt
// remapping table latched by GCMD.SIRTP (digest §9.1). Remapping itself (the
// IRTE formats, MSI and IOAPIC requests, the interrupt entry cache) is a later
// block; until then the unit latches the table and accepts the interrupt
// entry cache invalidation, which has nothing cached to drop.

import { extract64 } from "./bits";
import { hasFlag, FLAG_EIM, pointerMask } from "./config";

export let irtAddr: u64 = 0;
export let irtSizeLog2: u32 = 1; // entries = 2^(S+1)
export let irtExtended: bool = false; // EIME

export function latchIrta(irta: u64): void {
  irtAddr = irta & pointerMask();
  irtSizeLog2 = <u32>extract64(irta, 0, 4) + 1;
  irtExtended = hasFlag(FLAG_EIM) && extract64(irta, 11, 1) != 0;
}

/** Interrupt entry cache invalidation (descriptor 0x4): global, or 2^im entries from `index`. */
export function iecInvalidate(indexSelective: bool, index: u32, im: u32): void {
  // No interrupt entries are cached yet.
}

export function irReset(): void {
  irtAddr = 0;
  irtSizeLog2 = 1;
  irtExtended = false;
}
