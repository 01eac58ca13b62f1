/**
 * What the importer learns from one `qi_submit` invalidation descriptor
 * (VT-d digest §7.5): which domain, device or pages it names. The fields are
 * decoded by guest/layout.ts, the one declaration of the descriptor layouts.
 *
 * Browser-safe.
 */
import { decodeDesc, DESC_IOTLB, DESC_PIOTLB, DESC_PC, G_DEVICE, G_DOMAIN, G_GLOBAL, G_PAGE, PC_G_GLOBAL } from '../../guest/layout.js';

/** What one qi_submit descriptor tells the importer. */
export type Descriptor =
  | { kind: 'iotlb-page'; did: number; firstPage: number; pages: number }
  | { kind: 'iotlb-domain'; did: number }
  | { kind: 'iotlb-global' }
  | { kind: 'cc-device'; did: number; sid: number }
  /** PASID-cache invalidation (scalable mode): of one domain's PASID(s), or global. */
  | { kind: 'pasid-cache'; did: number; global: boolean }
  | { kind: 'other' };

/** Whether a descriptor exists only in scalable mode: PASID-based IOTLB (0x6), PASID cache (0x7), PASID-based device-TLB (0x8). */
export const isScalableModeDescriptor = (qw0: bigint): boolean => {
  const t = Number(qw0 & 0xfn);
  return t === DESC_PIOTLB || t === DESC_PC || t === 0x8;
};

/**
 * What the importer makes of a descriptor (fields decoded by guest/layout.ts).
 * IOTLB (0x2) and PASID-based IOTLB (0x6): G 11 page-selective (the 2^AM
 * pages holding ADDR), 10 domain-selective (or all of a PASID), 01 global
 * (0x2 only). Context cache (0x1): G 11 device-selective, with DID and SID.
 * PASID cache (0x7): its DID, or global.
 */
export function decodeDescriptor(qw0: bigint, qw1: bigint): Descriptor {
  const d = decodeDesc(qw0, qw1);
  if ('am' in d) {
    if (d.g === G_PAGE) {
      const pages = 2 ** d.am;
      return { kind: 'iotlb-page', did: d.did, firstPage: Math.floor(Number(d.addr >> 12n) / pages) * pages, pages };
    }
    if (d.g === G_DOMAIN) return { kind: 'iotlb-domain', did: d.did };
    if (d.type === DESC_IOTLB && d.g === G_GLOBAL) return { kind: 'iotlb-global' };
    return { kind: 'other' };
  }
  if ('fm' in d && d.g === G_DEVICE) return { kind: 'cc-device', did: d.did, sid: d.sid };
  if (d.type === DESC_PC && 'pcG' in d) return { kind: 'pasid-cache', did: d.did, global: d.pcG === PC_G_GLOBAL };
  return { kind: 'other' };
}
