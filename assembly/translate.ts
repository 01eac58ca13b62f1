// The DMA request path (digest §5.1) for untranslated requests without PASID.
//
// `walkTables` and `readContext` are pure: they read guest memory and return
// a fault reason or 0, touching no unit state but counters. `translate` adds
// the caches, the fault recording (FPD) and the result encoding.
//
// Check order (architectural where the specification orders them, this unit's
// choice otherwise, each noted in docs/DESIGN.md):
//   interrupt range -> TE -> root (8h, 1h, Ah) -> context (9h, 2h, Bh, 3h)
//   -> pass-through -> input width (4h) -> IOTLB -> walk, per level:
//   read (3h at the top, 7h below) -> present (5h/6h) -> reserved (Ch)
//   -> after the leaf: rights (5h/6h) -> output in interrupt range (Eh)
//   -> protected memory ranges (blocked, not a remapping fault).
// Rights are checked after the whole walk is known to be well formed, so a
// malformed entry reports Ch whatever the access (QEMU 7.2 reports 5h/6h).

import { bit64, bitMask64, extract64, rangeMask64 } from "./bits";
import { cfgAw, sagaw, hasFlag, pointerMask, srsSupported } from "./config";
import { ROOT_P_BIT, CTX_P_BIT, CTX_FPD_BIT, CTX_TT_SHIFT, CTX_TT_LEN, CTX_AW_SHIFT, CTX_AW_LEN, CTX_DID_SHIFT, CTX_DID_LEN, TT_DEVTLB, TT_PASSTHROUGH, TT_UNTRANSLATED, rootLoReserved, ctxLoReserved, ctxHiReserved } from "./context";
import { count, C_TRANSLATE, C_TRANSLATE_OK, C_UNTRANSLATED, C_PASSTHROUGH, C_INTERRUPT_RANGE, C_CTX_HIT, C_CTX_MISS, C_IOTLB_HIT, C_IOTLB_MISS, C_WALKS, C_WALK_L1, C_ROOT_READS, C_CTX_READS, C_FAULTS_FPD, C_FS_WALKS, C_AD_WRITES } from "./counters";
import { ccWord, ccDid, ccWidth, ccFill, ccEnabled, ccFillSide, ccSideQw0, ccSideQw2, ccHasSide, CC_FPD_BIT, CC_TT_SHIFT, CC_AW_SHIFT, CC_TT_FIRST_STAGE, CC_RID_PASID_SHIFT } from "./ctxcache";
import { FR_ROOT_NOT_PRESENT, FR_CTX_NOT_PRESENT, FR_CTX_INVALID, FR_ADDR_BEYOND_AW, FR_WRITE, FR_READ, FR_PAGING_ENTRY_ACCESS, FR_ROOT_ACCESS, FR_CTX_ACCESS, FR_ROOT_RESERVED, FR_CTX_RESERVED, FR_PAGING_RESERVED, FR_INTERRUPT_ADDR, FR_SM_BAD_RTA, FR_SM_PASID_IN_LEGACY, FR_SM_PASIDE_CLEAR, FR_SM_ERE_CLEAR, FR_SM_SRE_CLEAR, FR_SM_NON_CANONICAL, FR_SM_USER_SUPERVISOR, FR_SM_WRITE, FR_SM_NEST_FS_WRITE, isQualified, recordFault, smReason, frcdPasidBits } from "./faults";
import { unitRead64, unitWrite64, memError } from "./guestmem";
import { smReadContext, smReadPasidEntry, smCtx0, smCtx1, smFpd, peQw0, peQw1, peQw2, pePgtt, fsWalk, fsFrame, fsLevel, fsWritable, fsUser, fsUsed, fsUsedAddr, fsUsedValue, fsUsedSsWritable } from "./smwalk";
import { SMCE_PASIDE_BIT, SMCE_RID_PASID_SHIFT, SMCE_RID_PASID_LEN, SMCE_PDTS_SHIFT, SMCE_PDTS_LEN } from "./smcontext";
import { PE_AW_SHIFT, PE_AW_LEN, PE_DID_SHIFT, PE_DID_LEN, PE_SRE_BIT, PE_WPE_BIT, PE_FSPM_SHIFT, PE_FSPM_LEN, PE_PGTT_SHIFT, PE_PGTT_LEN, PGTT_PT, PGTT_SS, PGTT_NESTED, FSPM_5LEVEL } from "./pasidentry";
import { FS_A_BIT, FS_D_BIT } from "./fspte";
import { TTM_SCALABLE } from "./regfields";
import { pasidTlbLookup, pasidTlbFill, ptHitLevel, ptHitFrame, ptHitRights, PT_FS_W, PT_FS_U, PT_DIRTY, PT_SS_R, PT_SS_W } from "./pasidtlb";
import { iotlbLookup, iotlbLookup4k, iotlbEnabled, iotlbFill, hitLevel, V_FLAGS, V_NEAR_INTR } from "./iotlb";
import { SL_RW_MASK, SL_INDEX_MASK, SLE_LEAF, SLE_NOT_PRESENT, SLE_RESERVED, classifyEntry, levelShift, slEntryAddr } from "./slpte";
import { pmrBlocks, pmrActive } from "./pmr";
import { frontLookup, frontFill } from "./frontcache";
import { FLAG_DT, FLAG_PT, FLAG_PASID, MAX_REQUEST_LEN, ST_BLOCKED, ST_FAULT, ST_FPD, ST_INTERRUPT, ST_INVALID, ST_OK } from "./abi";

// ---- Result status (ABI: the host decodes it in src/core.ts) --------------

/**
 * Most bytes of one request: a PCIe request carries at most 4 KiB (Max_Payload_Size and
 * Max_Read_Request_Size top out there). It may start anywhere, so it crosses at most one 4 KiB
 * boundary; see `translate` for how such a request is split.
 */

/** reqPasid of a request without PASID. */
// @ts-ignore: decorator
@inline export const NO_PASID: u32 = 0xffffffff;
// @ts-ignore: decorator
@inline const INTR_LO: u64 = 0xfee00000;
// @ts-ignore: decorator
@inline const INTR_HI: u64 = 0xfeefffff;

/** Root-table address latched by GCMD.SRTP. */
export let rootTableAddr: u64 = 0;
/** RTADDR.TTM latched by GCMD.SRTP (always 0 on a unit without scalable mode). */
export let rootTtm: u32 = 0;
/** Mirrors GSTS.TES. */
export let translationEnabled: bool = false;

export function setRootTable(addr: u64, ttm: u32): void {
  rootTableAddr = addr;
  rootTtm = ttm;
}

// ---- The request's attributes (set by the entry points, read by the request path) ----

/** PASID of the request being translated, or NO_PASID for a request without PASID. */
export let reqPasid: u32 = NO_PASID;
/** A supervisor request / an execute request (only with a PASID). */
export let reqPriv: bool = false;
export let reqExe: bool = false;

/** Sets the attributes of the requests that follow (pasid NO_PASID: without PASID). */
export function setRequest(pasid: u32, priv: bool, exe: bool): void {
  reqPasid = pasid;
  reqPriv = priv;
  reqExe = exe;
}
export function setTranslationEnabled(on: bool): void {
  translationEnabled = on;
}

/** Output of the last translate(): the address the request goes to. */
export let outAddr: u64 = 0;
/**
 * Set by a translate() that succeeded across a 4 KiB boundary: where the bytes after the boundary go,
 * and, when they do not follow the first piece (discontiguous frames), the bytes before the boundary.
 * splitLen is 0 for every other request (outAddr2 is then stale).
 */
export let outAddr2: u64 = 0;
export let splitLen: u32 = 0;

/**
 * Probing (the `probe` export): the request runs through the same steps without looking at or filling
 * the caches and without recording a fault. Set only for the duration of one probe.
 */
let probing: bool = false;
/** The DID of the context a probe used (0 when it read none). */
export let probeDid: u32 = 0;

/** Starts (clearing what a probe reports) or ends probing. */
export function setProbing(on: bool): void {
  probing = on;
  if (on) {
    probeDid = 0;
    walkValue = 0;
    walkLevel = 0;
  }
}

// @ts-ignore: decorator
@inline function overlapsInterruptRange(a: u64, len: u32): bool {
  const end = a + <u64>(len - 1);
  // A range that wraps past 2^64 continues at [0, len - 2], far below the
  // interrupt range, and its start is far above it: no overlap.
  if (end < a) return false;
  return a <= INTR_HI && end >= INTR_LO;
}

// ---- Context lookup ---------------------------------------------------------

/** Results of readContext (valid when it returned 0; ctxFpd also for 2h and 3h). */
export let ctxWordOut: u64 = 0;
export let ctxDidOut: u32 = 0;
export let ctxFpdOut: bool = false;

/**
 * Reads and checks the root and context entries of `sid` (digest §5.1 steps
 * 3.1-3.8). Returns 0 and sets ctxWordOut (the context-cache word) and
 * ctxDidOut, or a fault reason. `isRequest`: the lookup of a request, counted
 * in walk.rootReads / walk.ctxReads; other lookups (shadow sync's `contextOf`)
 * are not, so those counters say what requests cost.
 */
export function readContext(sid: u32, isRequest: bool = false): u32 {
  ctxFpdOut = false;
  if (isRequest) count(C_ROOT_READS);
  const rootAt = rootTableAddr + (<u64>(sid >> 8) << 4);
  const rootLo = unitRead64(rootAt);
  if (memError) return FR_ROOT_ACCESS;
  const rootHi = unitRead64(rootAt + 8);
  if (memError) return FR_ROOT_ACCESS;
  if (!bit64(rootLo, ROOT_P_BIT)) return FR_ROOT_NOT_PRESENT;
  if ((rootLo & rootLoReserved()) != 0 || rootHi != 0) return FR_ROOT_RESERVED;

  if (isRequest) count(C_CTX_READS);
  const ctxAt = (rootLo & pointerMask()) + (<u64>(sid & 0xff) << 4);
  const lo = unitRead64(ctxAt);
  if (memError) return FR_CTX_ACCESS;
  const hi = unitRead64(ctxAt + 8);
  if (memError) return FR_CTX_ACCESS;
  // FPD is honoured even in a not-present entry (digest §3.3).
  ctxFpdOut = bit64(lo, CTX_FPD_BIT);
  if (!bit64(lo, CTX_P_BIT)) return FR_CTX_NOT_PRESENT;
  if ((lo & ctxLoReserved()) != 0 || (hi & ctxHiReserved()) != 0) {
    ctxFpdOut = false; // Bh is not a qualified fault: the entry is not trusted
    return FR_CTX_RESERVED;
  }
  const aw = <u32>extract64(hi, CTX_AW_SHIFT, CTX_AW_LEN);
  if (((sagaw >> aw) & 1) == 0) return FR_CTX_INVALID;
  const tt = <u32>extract64(lo, CTX_TT_SHIFT, CTX_TT_LEN);
  if (tt == TT_DEVTLB && !hasFlag(FLAG_DT)) return FR_CTX_INVALID;
  if (tt == TT_PASSTHROUGH && !hasFlag(FLAG_PT)) return FR_CTX_INVALID;
  if (tt > TT_PASSTHROUGH) return FR_CTX_INVALID;
  ctxWordOut = (lo & pointerMask()) | (<u64>aw << CC_AW_SHIFT) | (<u64>tt << CC_TT_SHIFT)
    | (ctxFpdOut ? <u64>1 << CC_FPD_BIT : 0);
  ctxDidOut = <u32>extract64(hi, CTX_DID_SHIFT, CTX_DID_LEN);
  return 0;
}

// ---- Second-level walk ------------------------------------------------------

/** Results of walkTables when it returned 0: the leaf entry's frame | cumulative W | R, and its level. */
export let walkValue: u64 = 0;
export let walkLevel: u32 = 0;

/**
 * Walks `levels` levels of second-level tables from `table` for `iova`
 * (digest §4, §5.1 steps 7-10). Returns 0 with walkValue/walkLevel, or a
 * fault reason. Does not check rights: the caller compares walkValue's R/W.
 * At most 5 reads, so no table layout (cycles included) can make it loop.
 */
export function walkTables(table: u64, levels: u32, iova: u64, isWrite: bool): u32 {
  count(C_WALKS);
  let rw: u64 = SL_RW_MASK;
  for (let level = levels; level >= 1; level--) {
    const entry = unitRead64(table + (((iova >> levelShift(level)) & SL_INDEX_MASK) << 3));
    count(C_WALK_L1 + level - 1);
    if (memError) return level == levels ? FR_CTX_INVALID : FR_PAGING_ENTRY_ACCESS;
    const kind = classifyEntry(entry, level);
    if (kind == SLE_NOT_PRESENT) return isWrite ? FR_WRITE : FR_READ;
    if (kind == SLE_RESERVED) return FR_PAGING_RESERVED;
    rw &= entry;
    if (kind == SLE_LEAF) {
      walkValue = slEntryAddr(entry) | rw; // rw holds only R and W: it started as SL_RW_MASK
      walkLevel = level;
      return 0;
    }
    table = slEntryAddr(entry);
  }
  return FR_CTX_INVALID; // unreachable: level 1 is always a leaf
}

// ---- The request ------------------------------------------------------------

function fault(sid: u32, reason: u32, iova: u64, isWrite: bool, fpd: bool): u32 {
  // The second-stage walk and the request tail speak legacy codes; a scalable-mode table gets SM ones.
  if (rootTtm == TTM_SCALABLE) reason = smReason(reason);
  if (fpd && isQualified(reason)) {
    if (probing) return ST_FAULT | ST_FPD | reason;
    count(C_FAULTS_FPD);
    return ST_FAULT | ST_FPD | reason;
  }
  if (!probing) recordFault(sid, reason, iova, !isWrite, reqPasid == NO_PASID ? 0 : frcdPasidBits(reqPasid, reqPriv, reqExe));
  return ST_FAULT | reason;
}

/**
 * The common case, with no side effect but outAddr: translation enabled, the
 * context cached and walked (not pass-through), the input within its width,
 * an IOTLB hit granting the access on a page away from the interrupt range,
 * no protected ranges. Returns false when any of that does not hold; the
 * caller then runs `translate`, which decides everything from scratch. The
 * caller counts the hits (translate, ctx.hit, iotlb.hit, translate.ok).
 */
// @ts-ignore: decorator
@inline export function translateFast(sid: u32, iova: u64, len: u32, isWrite: bool): bool {
  if (!translationEnabled || pmrActive) return false;
  if ((<u32>iova & 0xfff) + len > 0x1000) return false; // crosses a 4 KiB boundary: two requests
  const end = iova + <u64>(len - 1);
  if (end >= INTR_LO && iova <= INTR_HI) return false; // (a wrapping range takes the full path)
  const need: u64 = isWrite ? 2 : 1;
  if ((iova >> 57) == 0) {
    const f = frontLookup(sid, iova);
    if ((f & need) != 0) {
      outAddr = (f & ~(<u64>0xfff)) | (iova & 0xfff);
      return true;
    }
  }
  const word = ccWord(sid);
  // TT 2 (pass-through) and 3 (a first-stage or nested PASID entry) take the full path.
  if (word == 0 || (word & (<u64>TT_PASSTHROUGH << CC_TT_SHIFT)) != 0) return false;
  if ((iova >> ccWidth(sid)) != 0 || !iotlbEnabled()) return false;
  const did = ccDid(sid);
  // 4 KiB pages first, with a constant page mask; then the large-page sizes.
  let v = iotlbLookup4k(did, iova);
  if ((v & need) != 0 && (v & V_NEAR_INTR) == 0) {
    outAddr = (v & ~(<u64>0xfff)) | (iova & 0xfff);
    return true;
  }
  v = iotlbLookup(did, iova);
  if ((v & need) == 0 || (v & V_NEAR_INTR) != 0) return false;
  const pageMask = (<u64>1 << levelShift(hitLevel)) - 1;
  outAddr = (v & ~pageMask & ~V_FLAGS) | (iova & pageMask);
  return true;
}

/**
 * Translates one untranslated DMA request of `len` bytes (1..MAX_REQUEST_LEN) at `iova` from `sid`.
 * Returns a status (ST_*); on success the output address is in outAddr. Records faults as hardware does.
 *
 * A PCIe request never crosses a 4 KiB boundary, so a longer transfer is what a DMA engine splits
 * into one request per page, in address order (QEMU's DMA path also translates page by page). A
 * request here that crosses one is run as those two requests, each with its own cache lookups and
 * fills, counters and fault recording; the first page whose request does not complete as a memory
 * access (a fault, a block, an interrupt request) ends it, and its status and outAddr are that page
 * request's (a recorded fault names that page's address). When both complete, outAddr is the first
 * byte's output; outAddr2 the first byte after the boundary's, and splitLen the bytes before the
 * boundary when the two pieces are not contiguous (0 when they are).
 */
export function translate(sid: u32, iova: u64, len: u32, isWrite: bool): u32 {
  splitLen = 0;
  if (len - 1 >= MAX_REQUEST_LEN) return ST_INVALID; // len 0 wraps to 0xffffffff
  const first: u32 = 0x1000 - (<u32>iova & 0xfff);
  if (len <= first) return translatePage(sid, iova, len, isWrite);
  const st = translatePage(sid, iova, first, isWrite);
  if (st != ST_OK) return st;
  const out1 = outAddr;
  const st2 = translatePage(sid, iova + <u64>first, len - first, isWrite); // (wraps modulo 2^64)
  if (st2 != ST_OK) return st2;
  outAddr2 = outAddr;
  outAddr = out1;
  if (out1 + <u64>first != outAddr2) splitLen = first;
  return ST_OK;
}

/** One page's request: `len` bytes at `iova` that do not cross a 4 KiB boundary. */
function translatePage(sid: u32, iova: u64, len: u32, isWrite: bool): u32 {
  count(C_TRANSLATE);
  // Only a request without PASID to 0xFEEx_xxxx is an interrupt request; a request with PASID
  // there is a memory request, translated like any other (VT-d spec §3.14; digest §9.6).
  if (reqPasid == NO_PASID && overlapsInterruptRange(iova, len)) {
    count(C_INTERRUPT_RANGE);
    outAddr = iova;
    return isWrite ? ST_INTERRUPT : ST_BLOCKED;
  }
  if (!translationEnabled) {
    count(C_UNTRANSLATED);
    return finish(iova, len);
  }

  if (rootTtm != 0) {
    if (rootTtm != TTM_SCALABLE) return fault(sid, FR_SM_BAD_RTA, iova, isWrite, false);
    // Requests without PASID hit the context cache, which holds their RID_PASID translation
    // when it is second-stage or pass-through; everything else resolves the PASID entry.
    const cached = probing || reqPasid != NO_PASID ? 0 : ccWord(sid);
    if (cached == 0) return translatePageSm(sid, iova, len, isWrite);
    count(C_CTX_HIT);
    if (((cached >> CC_TT_SHIFT) & 3) == CC_TT_FIRST_STAGE) {
      return translateFirstStage(sid, iova, len, isWrite, ccDid(sid), <u32>extract64(cached, CC_RID_PASID_SHIFT, SMCE_RID_PASID_LEN),
        bit64(cached, CC_FPD_BIT), ccSideQw0(sid), ccSideQw2(sid));
    }
    return translateTail(sid, iova, len, isWrite, cached, ccDid(sid));
  }
  if (reqPasid != NO_PASID) return fault(sid, FR_SM_PASID_IN_LEGACY, iova, isWrite, false);

  let word = probing ? 0 : ccWord(sid);
  let did: u32;
  if (word != 0) {
    count(C_CTX_HIT);
    did = ccDid(sid);
  } else {
    count(C_CTX_MISS);
    const r = readContext(sid, true);
    if (r != 0) return fault(sid, r, iova, isWrite, ctxFpdOut);
    word = ctxWordOut;
    did = ctxDidOut;
    probeDid = did;
    if (ccEnabled && !probing) {
      const agaw: u32 = 30 + 9 * <u32>extract64(word, CC_AW_SHIFT, 3);
      ccFill(sid, word, did, agaw < cfgAw ? agaw : cfgAw);
    }
  }
  return translateTail(sid, iova, len, isWrite, word, did);
}

/**
 * The rest of a request once its context is known as a context-cache word (second-stage table |
 * AW | TT | FPD) and DID: a legacy context, or the second-stage or pass-through PASID entry of a
 * scalable-mode request.
 */
function translateTail(sid: u32, iova: u64, len: u32, isWrite: bool, word: u64, did: u32): u32 {
  const fpd = bit64(word, CC_FPD_BIT);
  const tt = <u32>extract64(word, CC_TT_SHIFT, 2);
  if (tt == TT_PASSTHROUGH) {
    count(C_PASSTHROUGH);
    // Only a request with PASID (scalable mode) can get here with an address in the interrupt
    // range: its identity output lands there (87h under TTM 01), as the model has it.
    if (overlapsInterruptRange(iova, len)) return fault(sid, FR_INTERRUPT_ADDR, iova, isWrite, fpd);
    return finish(iova, len);
  }
  const aw = <u32>extract64(word, CC_AW_SHIFT, 3);
  const agaw: u32 = 30 + 9 * aw;
  const width: u32 = agaw < cfgAw ? agaw : cfgAw;
  if ((iova >> width) != 0) return fault(sid, FR_ADDR_BEYOND_AW, iova, isWrite, fpd);

  const need: u64 = isWrite ? 2 : 1;
  let v = probing ? 0 : iotlbLookup(did, iova);
  let level: u32;
  if (v != 0 && (v & need) != 0) {
    count(C_IOTLB_HIT);
    level = hitLevel;
  } else {
    // A miss, or cached rights that do not allow this access: walk again (the
    // tables may have granted more since; if not, the walk faults as it must).
    count(C_IOTLB_MISS);
    const r = walkTables(word & pointerMask(), aw + 2, iova, isWrite);
    if (r != 0) return fault(sid, r, iova, isWrite, fpd);
    v = walkValue;
    level = walkLevel;
    if ((v & need) == 0) return fault(sid, isWrite ? FR_WRITE : FR_READ, iova, isWrite, fpd);
    if (!probing) iotlbFill(did, iova, level, v);
  }
  const pageMask = rangeMask64(0, levelShift(level));
  const out = (v & ~pageMask & ~V_FLAGS) | (iova & pageMask);
  if (overlapsInterruptRange(out, len)) return fault(sid, FR_INTERRUPT_ADDR, iova, isWrite, fpd);
  // Both architected caches hold this translation: remember its 4 KiB page in
  // the front cache unless that page touches the interrupt range.
  const page = out & ~(<u64>0xfff);
  // (Only for requests without PASID: the front cache is keyed by SID and page alone.)
  if (ccEnabled && !probing && reqPasid == NO_PASID && (page > INTR_HI || page + 0xfff < INTR_LO)) frontFill(sid, iova, page | (v & SL_RW_MASK));
  return finish(out, len);
}

// ---- Scalable mode ----------------------------------------------------------------

/**
 * A page request under a scalable-mode root table whose context is not cached (or that has a
 * PASID): root, context, PASID directory and PASID entry (smwalk.ts), then per PGTT: pass-through,
 * second-stage (the legacy tail), first-stage or nested (translateFirstStage).
 */
function translatePageSm(sid: u32, iova: u64, len: u32, isWrite: bool): u32 {
  count(C_CTX_MISS);
  let r = smReadContext(rootTableAddr, sid, true);
  if (r != 0) return fault(sid, r, iova, isWrite, smFpd);
  const hasPasid = reqPasid != NO_PASID;
  // A unit without ECAP.PASID accepts no request with PASID, whatever PASIDE says.
  if (hasPasid && !(hasFlag(FLAG_PASID) && bit64(smCtx0, SMCE_PASIDE_BIT))) return fault(sid, FR_SM_PASIDE_CLEAR, iova, isWrite, smFpd);
  const pasid = hasPasid ? reqPasid : <u32>extract64(smCtx1, SMCE_RID_PASID_SHIFT, SMCE_RID_PASID_LEN);
  r = smReadPasidEntry(smCtx0 & pointerMask(), <u32>extract64(smCtx0, SMCE_PDTS_SHIFT, SMCE_PDTS_LEN), pasid, hasPasid);
  if (r != 0) return fault(sid, r, iova, isWrite, smFpd);
  const fpd = smFpd;
  const did = <u32>extract64(peQw1, PE_DID_SHIFT, PE_DID_LEN);
  probeDid = did;
  // ECAP.ERS = 0: no execute requests. Supervisor requests need ECAP.SRS and the entry's SRE.
  if (reqExe) return fault(sid, FR_SM_ERE_CLEAR, iova, isWrite, fpd);
  if (reqPriv && !(srsSupported && bit64(peQw2, PE_SRE_BIT))) return fault(sid, FR_SM_SRE_CLEAR, iova, isWrite, fpd);
  const fpdBit: u64 = fpd ? <u64>1 << CC_FPD_BIT : 0;
  if (pePgtt == PGTT_PT || pePgtt == PGTT_SS) {
    const aw = <u32>extract64(peQw0, PE_AW_SHIFT, PE_AW_LEN);
    const tt: u64 = pePgtt == PGTT_PT ? TT_PASSTHROUGH : TT_UNTRANSLATED;
    const word = (pePgtt == PGTT_PT ? 0 : peQw0 & pointerMask()) | (<u64>aw << CC_AW_SHIFT) | (tt << CC_TT_SHIFT) | fpdBit;
    if (!hasPasid && ccEnabled && !probing) {
      const agaw: u32 = 30 + 9 * aw;
      ccFill(sid, word, did, agaw < cfgAw ? agaw : cfgAw);
    }
    return translateTail(sid, iova, len, isWrite, word, did);
  }
  if (!hasPasid && ccEnabled && ccHasSide() && !probing) {
    ccFillSide(sid, peQw0, peQw2);
    ccFill(sid, (<u64>pasid << CC_RID_PASID_SHIFT) | (CC_TT_FIRST_STAGE << CC_TT_SHIFT) | fpdBit, did, 0);
  }
  return translateFirstStage(sid, iova, len, isWrite, did, pasid, fpd, peQw0, peQw2);
}


/** PGTT 001 and 011: the first-stage walk (nested: through the second stage), rights, Accessed/Dirty. */
function translateFirstStage(sid: u32, iova: u64, len: u32, isWrite: bool, did: u32, pasid: u32, fpd: bool, qw0: u64, qw2: u64): u32 {
  const pgtt = <u32>extract64(qw0, PE_PGTT_SHIFT, PE_PGTT_LEN);
  const levels: u32 = <u32>extract64(qw2, PE_FSPM_SHIFT, PE_FSPM_LEN) == FSPM_5LEVEL ? 5 : 4;
  // Canonical: the bits above the top level's index copy its highest bit (bit 47 or 56).
  const top = levelShift(levels) + 8;
  const high = <i64>iova >> top;
  if (high != 0 && high != -1) return fault(sid, FR_SM_NON_CANONICAL, iova, isWrite, fpd);
  const nested = pgtt == PGTT_NESTED;
  let ssTable: u64 = 0, ssLevels: u32 = 0, ssWidth: u32 = 0;
  if (nested) {
    const aw = <u32>extract64(qw0, PE_AW_SHIFT, PE_AW_LEN);
    ssTable = qw0 & pointerMask();
    ssLevels = aw + 2;
    const agaw: u32 = 30 + 9 * aw;
    ssWidth = agaw < cfgAw ? agaw : cfgAw;
  }
  const wpe = bit64(qw2, PE_WPE_BIT);
  if (!probing && pasidTlbLookup(did, pasid, iova)) {
    // A hit serves the request only when the entry covers it (pasidtlb.ts); otherwise walk.
    const rt = ptHitRights;
    const userOk = reqPriv || (rt & PT_FS_U) != 0;
    const ok = isWrite ? (rt & PT_SS_W) != 0 && (rt & PT_DIRTY) != 0 && ((rt & PT_FS_W) != 0 || (reqPriv && !wpe))
      : (rt & PT_SS_R) != 0;
    if (userOk && ok) {
      count(C_IOTLB_HIT);
      const hitMask = rangeMask64(0, levelShift(ptHitLevel));
      const hitOut = ptHitFrame | (iova & hitMask);
      if (overlapsInterruptRange(hitOut, len)) return fault(sid, FR_INTERRUPT_ADDR, iova, isWrite, fpd);
      return finish(hitOut, len);
    }
  }
  count(C_IOTLB_MISS);
  count(C_FS_WALKS);
  let r = fsWalk(qw2 & pointerMask(), levels, iova, ssTable, ssLevels, ssWidth);
  if (r != 0) return fault(sid, r, iova, isWrite, fpd);
  if (!reqPriv && !fsUser) return fault(sid, FR_SM_USER_SUPERVISOR, iova, isWrite, fpd);
  // Supervisor writes to read-only pages are allowed unless WPE (x86 CR0.WP).
  if (isWrite && !fsWritable && (!reqPriv || wpe)) return fault(sid, FR_SM_WRITE, iova, isWrite, fpd);
  // The Accessed flag of every entry used and Dirty of a written leaf: nested, the second stage
  // must let the unit write each entry that needs an update (else 77h, and nothing is written).
  let updates: u32 = 0;
  for (let i: u32 = 0; i < fsUsed; i++) {
    const want = fsUsedValue(i) | adBits(i, isWrite);
    if (want == fsUsedValue(i)) continue;
    if (!fsUsedSsWritable(i)) return fault(sid, FR_SM_NEST_FS_WRITE, iova, isWrite, fpd);
    updates++;
  }
  const pageMask = rangeMask64(0, levelShift(fsLevel));
  let out = fsFrame | (iova & pageMask);
  let leafValue: u64 = fsFrame | (fsWritable ? 2 : 0) | 1;
  let leafLevel = fsLevel;
  let ssGranted: u32 = 3; // the second stage's rights on the output page (nested)
  if (nested) {
    if ((out >> ssWidth) != 0) return fault(sid, FR_ADDR_BEYOND_AW, iova, isWrite, fpd);
    r = walkTables(ssTable, ssLevels, out, isWrite);
    if (r != 0) return fault(sid, r, iova, isWrite, fpd);
    if ((walkValue & (isWrite ? 2 : 1)) == 0) return fault(sid, isWrite ? FR_WRITE : FR_READ, iova, isWrite, fpd);
    ssGranted = <u32>(walkValue & SL_RW_MASK);
    const ssMask = rangeMask64(0, levelShift(walkLevel));
    out = (walkValue & ~ssMask & ~SL_RW_MASK) | (out & ssMask);
    if (walkLevel < leafLevel) leafLevel = walkLevel;
    leafValue = (out & ~(<u64>0xfff)) | (leafValue & walkValue & SL_RW_MASK);
  }
  walkValue = leafValue;
  walkLevel = leafLevel;
  if (overlapsInterruptRange(out, len)) return fault(sid, FR_INTERRUPT_ADDR, iova, isWrite, fpd);
  // The translation succeeded: now (never before) the flags are written, each entry from the value
  // the walk read, so an update can only set A or D (docs/DESIGN.md, "Accessed and Dirty").
  if (probing) return finish(out, len);
  if (updates != 0) {
    for (let i: u32 = 0; i < fsUsed; i++) {
      const want = fsUsedValue(i) | adBits(i, isWrite);
      if (want != fsUsedValue(i) && unitWrite64(fsUsedAddr(i), want)) count(C_AD_WRITES);
    }
  }
  const dirty = isWrite || bit64(fsUsedValue(fsUsed - 1), FS_D_BIT);
  const ssRights = nested ? ssGranted : 3;
  pasidTlbFill(did, pasid, iova, leafLevel, out & ~rangeMask64(0, levelShift(leafLevel)),
    (fsWritable ? PT_FS_W : 0) | (fsUser ? PT_FS_U : 0) | (dirty ? PT_DIRTY : 0) | (ssRights << 3));
  return finish(out, len);
}

/** The flags entry `i` of the last first-stage walk must hold after a request: A, and D on the leaf of a write. */
// @ts-ignore: decorator
@inline function adBits(i: u32, isWrite: bool): u64 {
  return bitMask64(FS_A_BIT) | (isWrite && i == fsUsed - 1 ? bitMask64(FS_D_BIT) : 0);
}

// @ts-ignore: decorator
@inline function finish(out: u64, len: u32): u32 {
  outAddr = out;
  if (pmrBlocks(out, len)) return ST_BLOCKED;
  count(C_TRANSLATE_OK);
  return ST_OK;
}
