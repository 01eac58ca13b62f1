/**
 * Reading the guest's remapping structures as they are in memory now, from
 * our core's copy of guest RAM: the entries a DMA request walks (root,
 * context, every paging level) and the IRTE an interrupt request names.
 * Deviation detectors use these to check that a difference really has the
 * shape a known QEMU deviation has (an all-ones entry on the path, a large
 * page over the interrupt range, ...); the window tracker uses them to know
 * which entries a cache may hold.
 *
 * Pure reads: no caches, no fault recording, no counters of the unit.
 */
import type { Iommu } from '../iommu.js';
import { contextEntryAddr, decodeContext, decodeIrte, levelSpan, rootCtp, rootEntryAddr, rootPresent, slAddr, slEntryAddr, slIsLeaf, slPresent, irtaEntries, type DecodedIrte } from '../guest/layout.js';

const MASK64 = (1n << 64n) - 1n;

/** Reads one little-endian quadword of guest RAM, or undefined outside RAM. */
export function readQ(iommu: Iommu, ram: bigint, gpa: bigint): bigint | undefined {
  if (gpa < 0n || gpa + 8n > ram) return undefined;
  const b = iommu.readGuest(gpa, 8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
}

export interface PathEntry {
  /** 'root', 'context' (lo quadword; hi kept in `hi`), or the paging level 5..1. */
  kind: 'root' | 'context' | 'paging';
  level: number;
  addr: bigint;
  value: bigint;
  hi?: bigint;
}

export interface DmaPath {
  entries: PathEntry[];
  /** Context fields, when a present context entry was read. */
  context?: { did: number; aw: number; tt: number; fpd: boolean; table: bigint };
  /** The leaf reached (paging level of the leaf), when the walk got there. */
  leafLevel?: number;
  /** Where the walk stopped early, if it did: a read outside RAM, or a not-present entry. */
  stop?: 'memory' | 'not-present' | 'reserved-tt' | 'pass-through';
}

/**
 * The entries a request from `sid` for `iova` reads, from the root table at
 * `rta` (the latched root-table address). Stops at a read outside RAM, a
 * not-present entry (R = W = 0 for paging entries) or a leaf.
 */
export function walkDma(iommu: Iommu, ram: bigint, rta: bigint, sid: number, iova: bigint): DmaPath {
  const path: DmaPath = { entries: [] };
  const rootAddr = rootEntryAddr(rta, sid >> 8);
  const rlo = readQ(iommu, ram, rootAddr), rhi = readQ(iommu, ram, rootAddr + 8n);
  if (rlo === undefined || rhi === undefined) return { ...path, stop: 'memory' };
  path.entries.push({ kind: 'root', level: 0, addr: rootAddr, value: rlo, hi: rhi });
  if (!rootPresent(rlo)) return { ...path, stop: 'not-present' };
  const ctxAddr = contextEntryAddr(rootCtp(rlo), sid & 0xff);
  const clo = readQ(iommu, ram, ctxAddr), chi = readQ(iommu, ram, ctxAddr + 8n);
  if (clo === undefined || chi === undefined) return { ...path, stop: 'memory' };
  path.entries.push({ kind: 'context', level: 0, addr: ctxAddr, value: clo, hi: chi });
  const ctx = decodeContext(clo, chi);
  if (!ctx.present) return { ...path, stop: 'not-present' };
  const { aw, tt, table } = ctx;
  path.context = { did: ctx.did, aw, tt, fpd: ctx.fpd, table };
  if (tt === 2) return { ...path, stop: 'pass-through' };
  if (tt === 3) return { ...path, stop: 'reserved-tt' };
  const levels = aw + 2;
  let base = table;
  for (let level = levels; level >= 1; level--) {
    const addr = slEntryAddr(base, iova, level);
    const e = readQ(iommu, ram, addr);
    if (e === undefined) return { ...path, stop: 'memory' };
    path.entries.push({ kind: 'paging', level, addr, value: e });
    if (!slPresent(e)) return { ...path, stop: 'not-present' };
    if (slIsLeaf(e, level)) return { ...path, leafLevel: level };
    base = slAddr(e);
  }
  return path;
}

/** The span in bytes an entry at paging level `level` maps. */
export { levelSpan };

// ---------------------------------------------------------------- interrupts

export interface MsiDecode {
  remappable: boolean;
  /** Interrupt index (handle + sub-handle when SHV), for remappable requests. */
  index?: number;
  shv?: boolean;
}

/** Decodes an MSI address/data pair (digest §9.4). */
export function decodeMsi(addr: bigint, data: bigint): MsiDecode {
  if (((addr >> 4n) & 1n) === 0n) return { remappable: false };
  const handle = Number(((addr >> 5n) & 0x7fffn) | (((addr >> 2n) & 1n) << 15n));
  const shv = ((addr >> 3n) & 1n) === 1n;
  return { remappable: true, shv, index: shv ? (handle + Number(data & 0xffffn)) & 0xffff : handle };
}

/** An IRTE as read: both quadwords and their decoded fields. */
export interface Irte extends DecodedIrte {
  lo: bigint;
  hi: bigint;
}

/** The IRTE at `index` of the table latched from IRTA (`irta`: the register value at SIRTP), or undefined outside the table or RAM. */
export function readIrte(iommu: Iommu, ram: bigint, irta: bigint, index: number): Irte | undefined {
  const entries = irtaEntries(irta);
  if (index >= entries) return undefined;
  const at = (irta & ~0xfffn & MASK64) + 16n * BigInt(index);
  const lo = readQ(iommu, ram, at), hi = readQ(iommu, ram, at + 8n);
  if (lo === undefined || hi === undefined) return undefined;
  return { lo, hi, ...decodeIrte(lo, hi) };
}
