// Cache invalidation (digest §7): the operations shared by the register
// interface (CCMD, IVA/IOTLB) and the invalidation queue, plus the
// notification the host receives for each one (caching-mode consumers such
// as shadow sync hang on exactly these events).

import { ccInvalidateAll, ccInvalidateDomain, ccInvalidateDevice } from "./ctxcache";
import { count, C_CCMD_GLOBAL, C_IOTLB_GLOBAL } from "./counters";
import { pushEvent } from "./events";
import { frontFlush } from "./frontcache";
import { iotlbInvalidateAll, iotlbInvalidateDomain, iotlbInvalidatePages } from "./iotlb";
import { EV_INVALIDATION, INV_CONTEXT, INV_IOTLB } from "./abi";

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
  if (g == G_GLOBAL) ccInvalidateAll();
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
  if (g == G_GLOBAL) iotlbInvalidateAll();
  else if (g == G_DOMAIN) iotlbInvalidateDomain(did);
  else if (g == G_DEVICE_OR_PAGE) iotlbInvalidatePages(did, addr, am);
  else return 0;
  count(C_IOTLB_GLOBAL + g - 1);
  const page = g == G_DEVICE_OR_PAGE ? addr & ~((<u64>1 << (am + 12)) - 1) : 0;
  pushEvent(EV_INVALIDATION, INV_IOTLB, did, 0, page, <u64>am | (<u64>ih << 8) | (<u64>g << 16));
  return g;
}
