// Configuration of one remapping unit and the capability registers derived
// from it (digest §2). CAP and ECAP equal what QEMU 7.2 reports for the same
// options (digest §2.3), extended for aw = 57 (SAGAW bit 11, MGAW 56) and for
// more than one fault-recording register (CAP.NFR = nfr - 1), as the trace
// format fixes it. Scalable mode (sm, flts, pasid) gives QEMU 10's values
// (trace format "Scalable mode"): sm sets SMTS, SLTS and SRS; flts replaces
// SLTS and SRS by FLTS and sets CAP.FS1GP; pasid sets PASID (PSS 0). Beyond
// QEMU: nest sets NEST with FLTS, SLTS and SRS (both stages), and a first-stage
// unit of aw 57 sets CAP.FS5LP (5-level first-stage tables).

import { bitMask64, rangeMask64 } from "./bits";
import { FLAG_CM, FLAG_DT, FLAG_EIM, FLAG_FLTS, FLAG_IR, FLAG_NEST, FLAG_PASID, FLAG_PI, FLAG_PMR, FLAG_PT, FLAG_SC, FLAG_SM } from "./abi";

// ---- CAP fields (digest §2.1) --------------------------------------------
// @ts-ignore: decorator
@inline export const CAP_ND_SHIFT: u32 = 0;
// @ts-ignore: decorator
@inline export const CAP_PLMR_BIT: u32 = 5;
// @ts-ignore: decorator
@inline export const CAP_PHMR_BIT: u32 = 6;
// @ts-ignore: decorator
@inline export const CAP_CM_BIT: u32 = 7;
// @ts-ignore: decorator
@inline export const CAP_SAGAW_SHIFT: u32 = 8;
// @ts-ignore: decorator
@inline export const CAP_MGAW_SHIFT: u32 = 16;
// @ts-ignore: decorator
@inline export const CAP_FRO_SHIFT: u32 = 24;
// @ts-ignore: decorator
@inline export const CAP_SLLPS_SHIFT: u32 = 34;
// @ts-ignore: decorator
@inline export const CAP_PSI_BIT: u32 = 39;
// @ts-ignore: decorator
@inline export const CAP_NFR_SHIFT: u32 = 40;
// @ts-ignore: decorator
@inline export const CAP_MAMV_SHIFT: u32 = 48;
// @ts-ignore: decorator
@inline export const CAP_DWD_BIT: u32 = 54;
// @ts-ignore: decorator
@inline export const CAP_DRD_BIT: u32 = 55;
// @ts-ignore: decorator
@inline export const CAP_FS1GP_BIT: u32 = 56;
// @ts-ignore: decorator
@inline export const CAP_PI_BIT: u32 = 59;
// @ts-ignore: decorator
@inline export const CAP_FS5LP_BIT: u32 = 60;

// ---- ECAP fields (digest §2.2) -------------------------------------------
// @ts-ignore: decorator
@inline export const ECAP_QI_BIT: u32 = 1;
// @ts-ignore: decorator
@inline export const ECAP_DT_BIT: u32 = 2;
// @ts-ignore: decorator
@inline export const ECAP_IR_BIT: u32 = 3;
// @ts-ignore: decorator
@inline export const ECAP_EIM_BIT: u32 = 4;
// @ts-ignore: decorator
@inline export const ECAP_PT_BIT: u32 = 6;
// @ts-ignore: decorator
@inline export const ECAP_SC_BIT: u32 = 7;
// @ts-ignore: decorator
@inline export const ECAP_IRO_SHIFT: u32 = 8;
// @ts-ignore: decorator
@inline export const ECAP_MHMV_SHIFT: u32 = 20;
// @ts-ignore: decorator
@inline export const ECAP_NEST_BIT: u32 = 26;
// @ts-ignore: decorator
@inline export const ECAP_SRS_BIT: u32 = 31;
// @ts-ignore: decorator
@inline export const ECAP_PASID_BIT: u32 = 40;
// @ts-ignore: decorator
@inline export const ECAP_SMTS_BIT: u32 = 43;
// @ts-ignore: decorator
@inline export const ECAP_SLTS_BIT: u32 = 46;
// @ts-ignore: decorator
@inline export const ECAP_FLTS_BIT: u32 = 47;

/** Number of domain ids, encoded: 6 = 64 Ki (QEMU 7.2). */
// @ts-ignore: decorator
@inline export const ND_VALUE: u64 = 6;
/** Fault-recording registers start at FRO * 16 = 0x220 (trace format, fixed layout). */
// @ts-ignore: decorator
@inline export const FRO_VALUE: u32 = 0x22;
/** IVA at IRO * 16 = 0xf0, IOTLB at 0xf8. */
// @ts-ignore: decorator
@inline export const IRO_VALUE: u32 = 0xf;
/** Largest address mask for page-selective invalidation. */
// @ts-ignore: decorator
@inline export const MAMV_VALUE: u32 = 18;
/** Maximum handle mask for index-selective interrupt-entry-cache invalidation. */
// @ts-ignore: decorator
@inline export const MHMV_VALUE: u32 = 0xf;
/** Second-level large pages: bit 0 = 2 MiB, bit 1 = 1 GiB. */
// @ts-ignore: decorator
@inline export const SLLPS_VALUE: u64 = 0b0011;
/** Most fault-recording registers that fit in the 4 KiB block after 0x220. */
// @ts-ignore: decorator
@inline export const NFR_MAX: u32 = 64;

// ---- The configuration, set once by configure() --------------------------
export let cfgAw: u32 = 39;
export let cfgFlags: u32 = 0;
export let cfgNfr: u32 = 1;
/** Bits at or above this in an address field of a table entry are reserved (≤ 52). */
export let entryAddrBits: u32 = 39;
/** Bits at or above this in a pointer of a root/context entry or register are reserved. */
export let pointerBits: u32 = 39;
/** SAGAW: which context AW values are supported (bit n = AW n). */
export let sagaw: u32 = 0b00010;
/** Scalable mode offered (ECAP.SMTS): RTADDR.TTM and IQA.DW are writable. */
export let smMode: bool = false;
/** PGTT 001 (first-stage) is valid: ECAP.FLTS. */
export let fsSupported: bool = false;
/** PGTT 010 (second-stage) is valid: ECAP.SLTS. */
export let ssSupported: bool = false;
/** PGTT 011 (nested) is valid: ECAP.NEST. */
export let nestSupported: bool = false;
/** Supervisor requests (ECAP.SRS): the PASID entry's SRE is honoured. */
export let srsSupported: bool = false;
/** First-stage 1 GiB pages (CAP.FS1GP). */
export let fs1gp: bool = false;
/** First-stage 5-level paging (CAP.FS5LP): FSPM 01 is valid. */
export let fs5lp: bool = false;
export let capValue: u64 = 0;
export let ecapValue: u64 = 0;

// @ts-ignore: decorator
@inline export function hasFlag(f: u32): bool {
  return (cfgFlags & f) != 0;
}

/**
 * The scalable-mode rules of the trace format: flts, pasid and nest need sm; pasid excludes dt;
 * first-stage translation (flts or nest) needs aw 48 or 57. False when `flags` breaks one.
 */
export function smFlagsValid(aw: u32, flags: u32): bool {
  const sm = (flags & FLAG_SM) != 0;
  if (!sm && (flags & (FLAG_FLTS | FLAG_PASID | FLAG_NEST)) != 0) return false;
  if ((flags & FLAG_PASID) != 0 && (flags & FLAG_DT) != 0) return false;
  if ((flags & (FLAG_FLTS | FLAG_NEST)) != 0 && aw == 39) return false;
  return true;
}

/** Stores the configuration (validated by the caller) and derives CAP and ECAP. */
export function setConfig(aw: u32, flags: u32, nfr: u32): void {
  cfgAw = aw;
  cfgFlags = flags;
  cfgNfr = nfr;
  pointerBits = aw;
  // A table entry's address field ends at bit 51 (bits 61:52 are ignored), so a
  // 57-bit unit has no reserved address bits in entries (digest §4.4).
  entryAddrBits = aw < 52 ? aw : 52;
  // 39-bit units walk 3 levels; 48-bit units also 4; 57-bit units also 5.
  sagaw = aw == 39 ? 0b00010 : (aw == 48 ? 0b00110 : 0b01110);

  let cap: u64 = ND_VALUE << CAP_ND_SHIFT;
  if (hasFlag(FLAG_PMR)) cap |= bitMask64(CAP_PLMR_BIT) | bitMask64(CAP_PHMR_BIT);
  if (hasFlag(FLAG_CM)) cap |= bitMask64(CAP_CM_BIT);
  cap |= (<u64>sagaw) << CAP_SAGAW_SHIFT;
  cap |= (<u64>(aw - 1)) << CAP_MGAW_SHIFT;
  cap |= (<u64>FRO_VALUE) << CAP_FRO_SHIFT;
  cap |= SLLPS_VALUE << CAP_SLLPS_SHIFT;
  cap |= bitMask64(CAP_PSI_BIT);
  cap |= (<u64>(nfr - 1)) << CAP_NFR_SHIFT;
  cap |= (<u64>MAMV_VALUE) << CAP_MAMV_SHIFT;
  cap |= bitMask64(CAP_DWD_BIT) | bitMask64(CAP_DRD_BIT);
  if (hasFlag(FLAG_PI)) cap |= bitMask64(CAP_PI_BIT);
  smMode = hasFlag(FLAG_SM);
  nestSupported = smMode && hasFlag(FLAG_NEST);
  fsSupported = smMode && (hasFlag(FLAG_FLTS) || nestSupported);
  ssSupported = smMode && (!hasFlag(FLAG_FLTS) || nestSupported);
  srsSupported = ssSupported; // QEMU 10 reports SRS with SLTS only
  fs1gp = fsSupported;
  fs5lp = fsSupported && aw == 57;
  if (fs1gp) cap |= bitMask64(CAP_FS1GP_BIT);
  if (fs5lp) cap |= bitMask64(CAP_FS5LP_BIT);
  capValue = cap;

  let ecap: u64 = bitMask64(ECAP_QI_BIT);
  if (hasFlag(FLAG_DT)) ecap |= bitMask64(ECAP_DT_BIT);
  if (hasFlag(FLAG_IR)) ecap |= bitMask64(ECAP_IR_BIT) | ((<u64>MHMV_VALUE) << ECAP_MHMV_SHIFT);
  if (hasFlag(FLAG_EIM)) ecap |= bitMask64(ECAP_EIM_BIT);
  if (hasFlag(FLAG_PT)) ecap |= bitMask64(ECAP_PT_BIT);
  if (hasFlag(FLAG_SC)) ecap |= bitMask64(ECAP_SC_BIT);
  ecap |= (<u64>IRO_VALUE) << ECAP_IRO_SHIFT;
  if (smMode) ecap |= bitMask64(ECAP_SMTS_BIT);
  if (ssSupported) ecap |= bitMask64(ECAP_SLTS_BIT);
  if (srsSupported) ecap |= bitMask64(ECAP_SRS_BIT);
  if (fsSupported) ecap |= bitMask64(ECAP_FLTS_BIT);
  if (nestSupported) ecap |= bitMask64(ECAP_NEST_BIT);
  if (smMode && hasFlag(FLAG_PASID)) ecap |= bitMask64(ECAP_PASID_BIT); // PSS 0 (bits 39:35)
  ecapValue = ecap;
}

/** Mask of the address bits [12, pointerBits) of a 4 KiB-aligned pointer field. */
// @ts-ignore: decorator
@inline export function pointerMask(): u64 {
  return rangeMask64(12, pointerBits);
}
