// The register block (digest §1): one 4 KiB window, little-endian.
//
// Register behaviour is data. For every byte of the window four parallel
// arrays hold, at the same offset:
//
//   regValue   the stored value
//   regWrite   bits a guest write may change           ("writable mask")
//   regW1c     bits a guest clears by writing 1         ("write-1-to-clear mask")
//   regWo      bits that read as 0 whatever is stored   ("write-only mask")
//
// A guest write of any width at any offset applies one rule per byte:
//   new = (old & ~write) | (val & write);  new &= ~(val & w1c)
// and then the side effects of every 32-bit register whose bytes it touched
// run in ascending order (unit.ts `afterWrite`). Offsets with all-zero masks
// read 0 and ignore writes: that is every undefined or unimplemented offset.
// Sub-dword writes to GCMD combine with zeros (GCMD reads 0), so they act like
// a read-modify-write by software would.

import { tryAlloc } from "./alloc";

// ---- Offsets (digest §1.1; IVA/IOTLB at ECAP.IRO*16, FRCD at CAP.FRO*16) ---
// @ts-ignore: decorator
@inline export const VER_REG: u32 = 0x000;
// @ts-ignore: decorator
@inline export const CAP_REG: u32 = 0x008;
// @ts-ignore: decorator
@inline export const ECAP_REG: u32 = 0x010;
// @ts-ignore: decorator
@inline export const GCMD_REG: u32 = 0x018;
// @ts-ignore: decorator
@inline export const GSTS_REG: u32 = 0x01c;
// @ts-ignore: decorator
@inline export const RTADDR_REG: u32 = 0x020;
// @ts-ignore: decorator
@inline export const CCMD_REG: u32 = 0x028;
// @ts-ignore: decorator
@inline export const FSTS_REG: u32 = 0x034;
// @ts-ignore: decorator
@inline export const FECTL_REG: u32 = 0x038;
// @ts-ignore: decorator
@inline export const FEDATA_REG: u32 = 0x03c;
// @ts-ignore: decorator
@inline export const FEADDR_REG: u32 = 0x040;
// @ts-ignore: decorator
@inline export const FEUADDR_REG: u32 = 0x044;
// @ts-ignore: decorator
@inline export const AFLOG_REG: u32 = 0x058;
// @ts-ignore: decorator
@inline export const PMEN_REG: u32 = 0x064;
// @ts-ignore: decorator
@inline export const PLMBASE_REG: u32 = 0x068;
// @ts-ignore: decorator
@inline export const PLMLIMIT_REG: u32 = 0x06c;
// @ts-ignore: decorator
@inline export const PHMBASE_REG: u32 = 0x070;
// @ts-ignore: decorator
@inline export const PHMLIMIT_REG: u32 = 0x078;
// @ts-ignore: decorator
@inline export const IQH_REG: u32 = 0x080;
// @ts-ignore: decorator
@inline export const IQT_REG: u32 = 0x088;
// @ts-ignore: decorator
@inline export const IQA_REG: u32 = 0x090;
// @ts-ignore: decorator
@inline export const ICS_REG: u32 = 0x09c;
// @ts-ignore: decorator
@inline export const IECTL_REG: u32 = 0x0a0;
// @ts-ignore: decorator
@inline export const IEDATA_REG: u32 = 0x0a4;
// @ts-ignore: decorator
@inline export const IEADDR_REG: u32 = 0x0a8;
// @ts-ignore: decorator
@inline export const IEUADDR_REG: u32 = 0x0ac;
// @ts-ignore: decorator
@inline export const IQER_REG: u32 = 0x0b0;
// @ts-ignore: decorator
@inline export const IRTA_REG: u32 = 0x0b8;
// @ts-ignore: decorator
@inline export const IVA_REG: u32 = 0x0f0;
// @ts-ignore: decorator
@inline export const IOTLB_REG: u32 = 0x0f8;
// @ts-ignore: decorator
@inline export const FRCD_REG: u32 = 0x220;
// @ts-ignore: decorator
@inline export const REG_WINDOW: u32 = 0x1000;

let regValue: usize = 0;
let regWrite: usize = 0;
let regW1c: usize = 0;
let regWo: usize = 0;

export function regsInit(): bool {
  regValue = tryAlloc(REG_WINDOW);
  regWrite = tryAlloc(REG_WINDOW);
  regW1c = tryAlloc(REG_WINDOW);
  regWo = tryAlloc(REG_WINDOW);
  return regValue != 0 && regWrite != 0 && regW1c != 0 && regWo != 0;
}

/** Declares a 64-bit register's reset value and masks (offset 8-aligned or 4-aligned with 32-bit masks). */
export function defineReg64(off: u32, reset: u64, write: u64, w1c: u64, wo: u64): void {
  store<u64>(regValue + off, reset);
  store<u64>(regWrite + off, write);
  store<u64>(regW1c + off, w1c);
  store<u64>(regWo + off, wo);
}

export function defineReg32(off: u32, reset: u32, write: u32, w1c: u32, wo: u32): void {
  store<u32>(regValue + off, reset);
  store<u32>(regWrite + off, write);
  store<u32>(regW1c + off, w1c);
  store<u32>(regWo + off, wo);
}

// Direct access for the unit itself (hardware updates status bits freely).
// @ts-ignore: decorator
@inline export function reg32(off: u32): u32 {
  return load<u32>(regValue + off);
}
// @ts-ignore: decorator
@inline export function setReg32(off: u32, v: u32): void {
  store<u32>(regValue + off, v);
}
// @ts-ignore: decorator
@inline export function reg64(off: u32): u64 {
  return load<u64>(regValue + off);
}
// @ts-ignore: decorator
@inline export function setReg64(off: u32, v: u64): void {
  store<u64>(regValue + off, v);
}

/** A guest read of `size` bytes (1, 2, 4 or 8) at `off`; the caller checked off + size <= 4096. */
export function guestRead(off: u32, size: u32): u64 {
  let v: u64 = 0;
  for (let i: u32 = 0; i < size; i++) {
    const b = load<u8>(regValue + off + i) & ~load<u8>(regWo + off + i);
    v |= (<u64>b) << (i << 3);
  }
  return v;
}

/** Applies the generic write rule to the bytes of a guest write; side effects are the caller's. */
export function guestWriteBytes(off: u32, size: u32, val: u64): void {
  for (let i: u32 = 0; i < size; i++) {
    const p = off + i;
    const b = <u8>(val >> (i << 3));
    const w = load<u8>(regWrite + p);
    let n = (load<u8>(regValue + p) & ~w) | (b & w);
    n &= ~(b & load<u8>(regW1c + p));
    store<u8>(regValue + p, n);
  }
}
