// Cache invalidation (digest §7): the operations shared by the register
// interface (CCMD, IVA/IOTLB) and the invalidation queue, plus the
// notification the host receives for each one (caching-mode consumers such
// as shadow sync hang on exactly these events).

import { ccInvalidateAll, ccInvalidateDomain, ccInvalidateDevice } from "./ctxcache";
import { count, C_CCMD_GLOBAL, C_IOTLB_GLOBAL } from "./counters";
import { pushEvent } from "./events";
import { frontFlush } from "./frontcache";
import { rootTtm } from "./translate";
import { TTM_SCALABLE } from "./regfields";
import { iotlbInvalidateAll, iotlbInvalidateDomain, iotlbInvalidatePages } from "./iotlb";
import { pasidTlbInvalidate, ANY_PASID } from "./pasidtlb";
import { EV_INVALIDATION, INV_CONTEXT, INV_IOTLB, INV_PASID_IOTLB, INV_PASID_CACHE } from "./abi";

/** Granularities, as CIRG/CAIG, IIRG/IAIG and the descriptors' G fields encode them. */
// @ts-ignore: decorator
@inline export const G_GLOBAL: u32 = 1;
// @ts-ignore: decorator
@inline export const G_DOMAIN: u32 = 2;
// @ts-ignore: decorator
@inline export const G_DEVICE_OR_PAGE: u32 = 3;

/** Context-cache invalidation; returns the granularity performed (0 = none). */
export function invalidateContext(g: u32, did: u32, sid: u32, fm: u32): u32 {
  frontFlush();
  // Under scalable-mode tables the cached DIDs are the PASID entries', not the context entries'
  // (which have none): a domain-selective invalidation drops every entry (over-invalidation).
  if (g == G_GLOBAL || (g == G_DOMAIN && rootTtm == TTM_SCALABLE)) ccInvalidateAll();
  else if (g == G_DOMAIN) ccInvalidateDomain(did);
  else if (g == G_DEVICE_OR_PAGE) ccInvalidateDevice(sid, fm);
  else return 0;
  count(C_CCMD_GLOBAL + g - 1);
  pushEvent(EV_INVALIDATION, INV_CONTEXT, did, sid | (fm << 16), 0, <u64>g << 16);
  return g;
}

/** IOTLB invalidation; `am` and `ih` apply to page-selective. Returns the granularity performed. */
export function invalidateIotlb(g: u32, did: u32, addr: u64, am: u32, ih: u32): u32 {
  frontFlush();
  // The PASID-tagged entries (first-stage, nested) go too, whatever their PASID: nested ones
  // depend on the second-stage tables this names, and over-invalidation is always allowed.
  if (g == G_GLOBAL) { iotlbInvalidateAll(); pasidTlbInvalidate(true, 0, 0, 0, 0); }
  else if (g == G_DOMAIN) { iotlbInvalidateDomain(did); pasidTlbInvalidate(false, did, ANY_PASID, 0, 0); }
  else if (g == G_DEVICE_OR_PAGE) {
    iotlbInvalidatePages(did, addr, am);
    pasidTlbInvalidate(false, did, ANY_PASID, (addr >> 12) & ~((<u64>1 << am) - 1), <u64>1 << am);
  } else return 0;
  count(C_IOTLB_GLOBAL + g - 1);
  const page = g == G_DEVICE_OR_PAGE ? addr & ~((<u64>1 << (am + 12)) - 1) : 0;
  pushEvent(EV_INVALIDATION, INV_IOTLB, did, 0, page, <u64>am | (<u64>ih << 8) | (<u64>g << 16));
  return g;
}

// ---- Scalable mode (descriptors 0x6 and 0x7) ----------------------------------------
//
// What this unit caches in scalable mode (docs/DESIGN.md, "Scalable-mode caches"):
//   - the context cache, per SID, holds for a request without PASID its RID_PASID
//     PASID entry when that is second-stage or pass-through (DID of the PASID
//     entry): it is also this unit's PASID cache;
//   - the IOTLB holds second-stage translations tagged by DID only;
//   - the PASID-tagged IOTLB (pasidtlb.ts) holds first-stage and nested
//     translations tagged by DID and PASID;
//   - requests with PASID and first-stage or nested requests without PASID
//     read the context and PASID structures on every request (no PASID cache
//     for them).
// Each invalidation below therefore drops a superset of what it names, which
// the architecture allows; nothing it names can survive.

/**
 * PASID-based IOTLB invalidation: g 2 (every mapping of `pasid` in `did`) or 3 (the 2^am pages
 * at `addr` of `pasid` in `did`). Drops the DID's (or those pages') IOTLB entries whatever their PASID.
 */
export function invalidatePasidIotlb(g: u32, did: u32, pasid: u32, addr: u64, am: u32, ih: u32): void {
  frontFlush();
  if (g == G_DEVICE_OR_PAGE) {
    iotlbInvalidatePages(did, addr, am);
    pasidTlbInvalidate(false, did, pasid, (addr >> 12) & ~((<u64>1 << am) - 1), <u64>1 << am);
  } else {
    iotlbInvalidateDomain(did);
    pasidTlbInvalidate(false, did, pasid, 0, 0);
  }
  const page = g == G_DEVICE_OR_PAGE ? addr & ~((<u64>1 << (am + 12)) - 1) : 0;
  pushEvent(EV_INVALIDATION, INV_PASID_IOTLB, did, pasid, page, <u64>am | (<u64>ih << 8) | (<u64>g << 16));
}

/**
 * PASID-cache invalidation: g 0 (every PASID of `did`), 1 (`pasid` in `did`) or 3 (global). The
 * cached PASID entries are the context-cache entries (domain-selective drops those of DID; a
 * PASID-selective one drops every entry of the DID).
 */
export function invalidatePasidCache(g: u32, did: u32, pasid: u32): void {
  frontFlush();
  // A changed PASID entry may change every translation through it: its PASID-tagged IOTLB
  // entries go too (software follows with a PASID-based IOTLB invalidation anyway).
  if (g == G_DEVICE_OR_PAGE) { ccInvalidateAll(); pasidTlbInvalidate(true, 0, 0, 0, 0); }
  else { ccInvalidateDomain(did); pasidTlbInvalidate(false, did, ANY_PASID, 0, 0); }
  pushEvent(EV_INVALIDATION, INV_PASID_CACHE, did, pasid, 0, <u64>g << 16);
}
