// The scalable-mode lookups of a request (VT-d spec §3.4-3.6, §9; digest
// §3.4-3.6, §5.4), pure as translate.ts's legacy ones: they read guest memory
// and return a fault reason or 0, touching no unit state but counters. The
// request path (translate.ts translatePageSm) adds caches, fault recording
// and the Accessed/Dirty writes.
//
//   root entry (38h; the half's present bit 39h; both halves' reserved bits 3Ah)
//   -> context entry (40h, 41h, 42h: DTE without ECAP.DT and PRE are reserved)
//   -> [PASIDE for a request with PASID: 45h] -> directory size (46h; RID_PASID: 48h)
//   -> directory entry (50h, 51h, 52h) -> PASID entry (58h, 59h, 5Ah, 5Bh)
//
// FPD: the context entry's, the directory entry's and the PASID entry's are
// ORed as each is read (each honoured even in a not-present entry, never from
// an entry whose reserved bits are set), into smFpd.
//
// The first-stage walk (fsWalk) follows the x86-64 tables from FSPTPTR,
// 4 or 5 levels; nested (PGTT 011) it first translates every table address
// through the second stage (translate.ts walkTables), with the nested reasons
// 74h-7Ah. At most 5 first-stage reads (and 5 second-stage walks of at most 5
// reads each), so no table layout can make it loop.

import { bit64, extract64, rangeMask64 } from "./bits";
import { sagaw, hasFlag, pointerMask, fsSupported, ssSupported, nestSupported, fs5lp } from "./config";
import { count, C_ROOT_READS, C_CTX_READS } from "./counters";
import { FR_SM_ROOT_ACCESS, FR_SM_ROOT_NOT_PRESENT, FR_SM_ROOT_RESERVED, FR_SM_CTX_ACCESS, FR_SM_CTX_NOT_PRESENT, FR_SM_CTX_RESERVED, FR_SM_PASID_BEYOND_DIR, FR_SM_RID_PASID_ERROR, FR_SM_DIR_ACCESS, FR_SM_DIR_NOT_PRESENT, FR_SM_DIR_RESERVED, FR_SM_PE_ACCESS, FR_SM_PE_NOT_PRESENT, FR_SM_PE_RESERVED, FR_SM_PE_INVALID, FR_SM_FS_ACCESS, FR_SM_FS_TOP_ACCESS, FR_SM_FS_NOT_PRESENT, FR_SM_FS_RESERVED, FR_SM_NEST_FS_BEYOND, FR_SM_NEST_TOP_READ, FR_SM_NEST_FS_READ, FR_SM_SS_ACCESS, FR_SM_SS_RESERVED, FR_SM_SS_BAD_PTR, FR_CTX_INVALID, FR_WRITE, FR_READ, FR_PAGING_RESERVED } from "./faults";
import { unitRead64, memError } from "./guestmem";
import { SMRE_P_BIT, SMRE_UPPER_DEVFN, smRootReserved } from "./smroot";
import { SMCE_P_BIT, SMCE_FPD_BIT, SMCE_DTE_BIT, SMCE_PRE_BIT, SMCE_SIZE, smCtxReserved0, smCtxReserved1 } from "./smcontext";
import { PDE_P_BIT, PDE_FPD_BIT, PASID_TABLE_BITS, pdeReserved } from "./pasiddir";
import { PE_P_BIT, PE_FPD_BIT, PE_AW_SHIFT, PE_AW_LEN, PE_PGTT_SHIFT, PE_PGTT_LEN, PE_FSPM_SHIFT, PE_FSPM_LEN, PE_SIZE, PE_QWORDS, PGTT_FS, PGTT_SS, PGTT_NESTED, PGTT_PT, FSPM_4LEVEL, FSPM_5LEVEL, peReserved0, peReserved1, peReserved2, pePtrReserved } from "./pasidentry";
import { FS_RW_BIT, FS_US_BIT, FSE_LEAF, FSE_NOT_PRESENT, FSE_RESERVED, classifyFs, fsEntryAddr } from "./fspte";
import { SL_INDEX_MASK, levelShift } from "./slpte";
import { walkTables, walkValue, walkLevel } from "./translate";
import { tryAlloc } from "./alloc";
import { FLAG_DT, FLAG_PT } from "./abi";
import { SMCE_PDTS_BASE } from "./smcontext";

/** The context entry's QW0 and QW1 after smReadContext returned 0. */
export let smCtx0: u64 = 0;
export let smCtx1: u64 = 0;
/** FPD of the entries read so far (context, directory, PASID entry). */
export let smFpd: bool = false;

/** Reads and checks the scalable-mode root and context entries of `sid` under the root table at `rta`. */
export function smReadContext(rta: u64, sid: u32, isRequest: bool): u32 {
  smFpd = false;
  if (isRequest) count(C_ROOT_READS);
  const devfn = sid & 0xff;
  const lo = unitRead64(rta + (<u64>(sid >> 8) << 4));
  if (memError) return FR_SM_ROOT_ACCESS;
  const hi = unitRead64(rta + (<u64>(sid >> 8) << 4) + 8);
  if (memError) return FR_SM_ROOT_ACCESS;
  const re = devfn >= SMRE_UPPER_DEVFN ? hi : lo;
  if (!bit64(re, SMRE_P_BIT)) return FR_SM_ROOT_NOT_PRESENT;
  // The reserved bits of both halves, once the half used is present (as QEMU 10).
  if (((lo | hi) & smRootReserved) != 0) return FR_SM_ROOT_RESERVED;

  if (isRequest) count(C_CTX_READS);
  const at = (re & pointerMask()) + <u64>((devfn & 0x7f) * SMCE_SIZE);
  const q0 = unitRead64(at);
  if (memError) return FR_SM_CTX_ACCESS;
  const q1 = unitRead64(at + 8);
  if (memError) return FR_SM_CTX_ACCESS;
  const q2 = unitRead64(at + 16);
  if (memError) return FR_SM_CTX_ACCESS;
  const q3 = unitRead64(at + 24);
  if (memError) return FR_SM_CTX_ACCESS;
  const fpd = bit64(q0, SMCE_FPD_BIT);
  if (!bit64(q0, SMCE_P_BIT)) {
    smFpd = fpd; // honoured in a not-present entry
    return FR_SM_CTX_NOT_PRESENT;
  }
  // DTE without ECAP.DT and PRE (ECAP.PRS is never offered) are reserved bits: smCtxReserved0.
  if ((q0 & smCtxReserved0) != 0 || (q1 & smCtxReserved1) != 0 || q2 != 0 || q3 != 0) return FR_SM_CTX_RESERVED;
  smFpd = fpd;
  smCtx0 = q0;
  smCtx1 = q1;
  return 0;
}

/** The PASID entry's QW0-QW2 after smReadPasidEntry returned 0, and its PGTT. */
export let peQw0: u64 = 0;
export let peQw1: u64 = 0;
export let peQw2: u64 = 0;
export let pePgtt: u32 = 0;

/**
 * Reads and checks the directory entry and the PASID entry of `pasid` in the directory at `dir`
 * of 2^(pdts + 7) entries. Updates smFpd.
 */
export function smReadPasidEntry(dir: u64, pdts: u32, pasid: u32, hasPasid: bool): u32 {
  const dirIndex = pasid >> PASID_TABLE_BITS;
  // Beyond the directory: the request's PASID (46h), or the context entry's RID_PASID (48h).
  if ((dirIndex >> (pdts + SMCE_PDTS_BASE)) != 0) return hasPasid ? FR_SM_PASID_BEYOND_DIR : FR_SM_RID_PASID_ERROR;
  const de = unitRead64(dir + (<u64>dirIndex << 3));
  if (memError) return FR_SM_DIR_ACCESS;
  if (!bit64(de, PDE_P_BIT)) {
    smFpd = smFpd || bit64(de, PDE_FPD_BIT);
    return FR_SM_DIR_NOT_PRESENT;
  }
  if ((de & pdeReserved) != 0) return FR_SM_DIR_RESERVED;
  smFpd = smFpd || bit64(de, PDE_FPD_BIT);

  const at = (de & pointerMask()) + <u64>((pasid & ((1 << PASID_TABLE_BITS) - 1)) * PE_SIZE);
  const q0 = unitRead64(at);
  if (memError) return FR_SM_PE_ACCESS;
  const q1 = unitRead64(at + 8);
  if (memError) return FR_SM_PE_ACCESS;
  const q2 = unitRead64(at + 16);
  if (memError) return FR_SM_PE_ACCESS;
  let rest: u64 = 0; // QW3-QW7, reserved whole
  for (let i: u32 = 3; i < PE_QWORDS; i++) {
    rest |= unitRead64(at + (<u64>i << 3));
    if (memError) return FR_SM_PE_ACCESS;
  }
  if (!bit64(q0, PE_P_BIT)) {
    smFpd = smFpd || bit64(q0, PE_FPD_BIT);
    return FR_SM_PE_NOT_PRESENT;
  }
  // Reserved bits (5Ah) before the values of PGTT, AW and FSPM (5Bh); the pointer bits at or
  // above HAW only of the pointers the PGTT field names.
  const pgtt = <u32>extract64(q0, PE_PGTT_SHIFT, PE_PGTT_LEN);
  const usesSs = pgtt == PGTT_SS || pgtt == PGTT_NESTED;
  const usesFs = pgtt == PGTT_FS || pgtt == PGTT_NESTED;
  if ((q0 & peReserved0) != 0 || (q1 & peReserved1) != 0 || (q2 & peReserved2) != 0 || rest != 0
    || (usesSs && (q0 & pePtrReserved) != 0) || (usesFs && (q2 & pePtrReserved) != 0)) return FR_SM_PE_RESERVED;
  smFpd = smFpd || bit64(q0, PE_FPD_BIT);
  if (pgtt == PGTT_FS ? !fsSupported : pgtt == PGTT_SS ? !ssSupported : pgtt == PGTT_NESTED ? !nestSupported
    : pgtt == PGTT_PT ? !hasFlag(FLAG_PT) : true) return FR_SM_PE_INVALID;
  if (usesSs && ((sagaw >> <u32>extract64(q0, PE_AW_SHIFT, PE_AW_LEN)) & 1) == 0) return FR_SM_PE_INVALID;
  if (usesFs) {
    const fspm = <u32>extract64(q2, PE_FSPM_SHIFT, PE_FSPM_LEN);
    if (fspm != FSPM_4LEVEL && !(fspm == FSPM_5LEVEL && fs5lp)) return FR_SM_PE_INVALID;
  }
  peQw0 = q0;
  peQw1 = q1;
  peQw2 = q2;
  pePgtt = pgtt;
  return 0;
}

// ---- First-stage walk -------------------------------------------------------------

/** After fsWalk returned 0: the leaf's frame (a guest-physical address when nested), its level, the rights ANDed along the path. */
export let fsFrame: u64 = 0;
export let fsLevel: u32 = 0;
export let fsWritable: bool = false;
export let fsUser: bool = false;
/** Entries the walk used, top first: where each is (host side, after the second stage when nested), its value, whether the second stage lets the unit write it. */
export let fsUsed: u32 = 0;
let fsAddrs: usize = 0;
let fsVals: usize = 0;
let fsSsWritable: usize = 0;

export function smWalkInit(): bool {
  fsAddrs = tryAlloc(8 * 5);
  fsVals = tryAlloc(8 * 5);
  fsSsWritable = tryAlloc(5);
  return fsAddrs != 0 && fsVals != 0 && fsSsWritable != 0;
}

// @ts-ignore: decorator
@inline export function fsUsedAddr(i: u32): u64 { return load<u64>(fsAddrs + (<usize>i << 3)); }
// @ts-ignore: decorator
@inline export function fsUsedValue(i: u32): u64 { return load<u64>(fsVals + (<usize>i << 3)); }
// @ts-ignore: decorator
@inline export function fsUsedSsWritable(i: u32): bool { return load<u8>(fsSsWritable + <usize>i) != 0; }

/**
 * Walks `levels` (4 or 5) levels of first-stage tables from `table` for `iova` (canonical: the
 * caller checked). Nested (`ssLevels` > 0): every table address is a guest-physical address,
 * translated through the second-stage tables at `ssTable` (`ssLevels` levels, input width
 * `ssWidth`) before it is read. Returns 0 (fsFrame, fsLevel, fsWritable, fsUser, the used entries)
 * or a fault reason. Checks no rights: the caller does.
 */
export function fsWalk(table: u64, levels: u32, iova: u64, ssTable: u64, ssLevels: u32, ssWidth: u32): u32 {
  let rw = true, us = true;
  fsUsed = 0;
  for (let level = levels; level >= 1; level--) {
    const index = ((iova >> levelShift(level)) & SL_INDEX_MASK) << 3;
    let at = table + index;
    let ssWritable = true;
    if (ssLevels != 0) {
      if ((table >> ssWidth) != 0) return FR_SM_NEST_FS_BEYOND;
      const r = walkTables(ssTable, ssLevels, table, false);
      const denied = level == levels ? FR_SM_NEST_TOP_READ : FR_SM_NEST_FS_READ;
      if (r == FR_READ || r == FR_WRITE) return denied;
      if (r == FR_PAGING_RESERVED) return FR_SM_SS_RESERVED;
      if (r == FR_CTX_INVALID) return FR_SM_SS_BAD_PTR; // the top second-stage table could not be read
      if (r != 0) return FR_SM_SS_ACCESS;
      if ((walkValue & 1) == 0) return denied;
      ssWritable = (walkValue & 2) != 0;
      const pageMask = rangeMask64(0, levelShift(walkLevel));
      at = ((walkValue & ~pageMask & ~(<u64>3)) | (table & pageMask)) + index;
    }
    const entry = unitRead64(at);
    if (memError) return level == levels ? FR_SM_FS_TOP_ACCESS : FR_SM_FS_ACCESS;
    const kind = classifyFs(entry, level);
    if (kind == FSE_NOT_PRESENT) return FR_SM_FS_NOT_PRESENT;
    if (kind == FSE_RESERVED) return FR_SM_FS_RESERVED;
    store<u64>(fsAddrs + (<usize>fsUsed << 3), at);
    store<u64>(fsVals + (<usize>fsUsed << 3), entry);
    store<u8>(fsSsWritable + <usize>fsUsed, ssWritable ? 1 : 0);
    fsUsed++;
    rw = rw && bit64(entry, FS_RW_BIT);
    us = us && bit64(entry, FS_US_BIT);
    if (kind == FSE_LEAF) {
      fsFrame = fsEntryAddr(entry, level);
      fsLevel = level;
      fsWritable = rw;
      fsUser = us;
      return 0;
    }
    table = fsEntryAddr(entry, level);
  }
  return FR_SM_FS_RESERVED; // unreachable: level 1 is always a leaf
}
