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
import { PASID_DIR, PASID_ENTRY, RTADDR_TTM_SM, SM_CONTEXT, SM_ROOT, get, pasidDirEntryAddr, pasidEntryAddr, smContextEntryAddr } from '../guest/layout.js';
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
  if (rta & RTADDR_TTM_SM) return walkSmDma(iommu, ram, rta, sid, iova);
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

/**
 * The same in scalable mode (TTM = 01), for a request without PASID: root
 * (the lower or upper half), context, PASID directory and PASID entries
 * (kind 'context', the PASID entry's first quadword in `value`), then the
 * second-stage (PGTT 010) or first-stage (PGTT 001, 4 levels) entries as
 * 'paging' entries. `context` carries the PASID entry's DID and AW, FPD if
 * any of the three set it, `tt` 2 for PGTT 100 (pass-through), and the
 * paging table. Other PGTTs stop the walk ('reserved-tt').
 */
function walkSmDma(iommu: Iommu, ram: bigint, rta: bigint, sid: number, iova: bigint): DmaPath {
  const path: DmaPath = { entries: [] };
  const devfn = sid & 0xff;
  const rootAddr = rootEntryAddr(rta, sid >> 8);
  const rlo = readQ(iommu, ram, rootAddr), rhi = readQ(iommu, ram, rootAddr + 8n);
  if (rlo === undefined || rhi === undefined) return { ...path, stop: 'memory' };
  path.entries.push({ kind: 'root', level: 0, addr: rootAddr, value: rlo, hi: rhi });
  const rq = [rlo, rhi];
  if (!get(rq, devfn < 128 ? SM_ROOT.LP : SM_ROOT.UP)) return { ...path, stop: 'not-present' };
  const ctxAddr = smContextEntryAddr(get(rq, devfn < 128 ? SM_ROOT.LCTP : SM_ROOT.UCTP) << 12n, devfn);
  const clo = readQ(iommu, ram, ctxAddr), chi = readQ(iommu, ram, ctxAddr + 8n);
  if (clo === undefined || chi === undefined) return { ...path, stop: 'memory' };
  path.entries.push({ kind: 'context', level: 0, addr: ctxAddr, value: clo, hi: chi });
  const cq = [clo, chi];
  if (!get(cq, SM_CONTEXT.P)) return { ...path, stop: 'not-present' };
  const pasid = Number(get(cq, SM_CONTEXT.RID_PASID));
  const deAddr = pasidDirEntryAddr(get(cq, SM_CONTEXT.PASIDDIRPTR) << 12n, pasid);
  const de = readQ(iommu, ram, deAddr);
  if (de === undefined) return { ...path, stop: 'memory' };
  path.entries.push({ kind: 'context', level: 0, addr: deAddr, value: de });
  if (!get([de], PASID_DIR.P)) return { ...path, stop: 'not-present' };
  const peAddr = pasidEntryAddr(get([de], PASID_DIR.SMPTBLPTR) << 12n, pasid);
  const pe: bigint[] = [];
  for (let i = 0n; i < 8n; i++) {
    const q = readQ(iommu, ram, peAddr + 8n * i);
    if (q === undefined) return { ...path, stop: 'memory' };
    pe.push(q);
  }
  path.entries.push({ kind: 'context', level: 0, addr: peAddr, value: pe[0], hi: pe[1] });
  if (!get(pe, PASID_ENTRY.P)) return { ...path, stop: 'not-present' };
  const pgtt = Number(get(pe, PASID_ENTRY.PGTT));
  const first = pgtt === 1;
  const table = (first ? get(pe, PASID_ENTRY.FSPTPTR) : get(pe, PASID_ENTRY.SSPTPTR)) << 12n;
  const aw = Number(get(pe, PASID_ENTRY.AW));
  const fpd = !!(get(cq, SM_CONTEXT.FPD) || get([de], PASID_DIR.FPD) || get(pe, PASID_ENTRY.FPD));
  path.context = { did: Number(get(pe, PASID_ENTRY.DID)), aw, tt: pgtt === 4 ? 2 : 0, fpd, table };
  if (pgtt === 4) return { ...path, stop: 'pass-through' };
  if (pgtt !== 1 && pgtt !== 2) return { ...path, stop: 'reserved-tt' };
  const levels = first ? 4 : aw + 2;
  let base = table;
  for (let level = levels; level >= 1; level--) {
    const addr = slEntryAddr(base, iova, level);
    const e = readQ(iommu, ram, addr);
    if (e === undefined) return { ...path, stop: 'memory' };
    path.entries.push({ kind: 'paging', level, addr, value: e });
    if (first ? (e & 1n) === 0n : !slPresent(e)) return { ...path, stop: 'not-present' };
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

/**
 * Scalable mode (RTADDR.TTM = 01): the PGTT of the PASID entry a request
 * without PASID from `sid` uses now (the context entry's RID_PASID), or
 * undefined when a root, context or directory entry on the way is not
 * present or outside RAM.
 */
export function smRidPasidPgtt(iommu: Iommu, ram: bigint, rta: bigint, sid: number): number | undefined {
  const devfn = sid & 0xff;
  const root = rootEntryAddr(rta, sid >> 8);
  const r = [readQ(iommu, ram, root), readQ(iommu, ram, root + 8n)];
  if (r[0] === undefined || r[1] === undefined) return undefined;
  const rq = r as bigint[];
  if (!get(rq, devfn < 128 ? SM_ROOT.LP : SM_ROOT.UP)) return undefined;
  const table = get(rq, devfn < 128 ? SM_ROOT.LCTP : SM_ROOT.UCTP) << 12n;
  const at = smContextEntryAddr(table, devfn);
  const c = [readQ(iommu, ram, at), readQ(iommu, ram, at + 8n)];
  if (c[0] === undefined || c[1] === undefined || !get(c as bigint[], SM_CONTEXT.P)) return undefined;
  const pasid = Number(get(c as bigint[], SM_CONTEXT.RID_PASID));
  const dir = get(c as bigint[], SM_CONTEXT.PASIDDIRPTR) << 12n;
  const de = readQ(iommu, ram, pasidDirEntryAddr(dir, pasid));
  if (de === undefined || !get([de], PASID_DIR.P)) return undefined;
  const pe = readQ(iommu, ram, pasidEntryAddr(get([de], PASID_DIR.SMPTBLPTR) << 12n, pasid));
  if (pe === undefined || !get([pe], PASID_ENTRY.P)) return undefined;
  return Number(get([pe], PASID_ENTRY.PGTT));
}

/**
 * Scalable mode: where `iova` translates through the table pointer of the
 * RID_PASID entry the request's path ends at, taking that entry as it is in
 * memory whatever its P, PGTT and AW (QEMU's use of a PASID entry it does not
 * look at again: deviations.ts). `firstStage`: FSPTPTR with 4 levels, else
 * SSPTPTR with AW + 2 levels. Undefined when the path does not reach a PASID
 * entry or that walk does not reach a leaf.
 */
export function smStaleTranslate(iommu: Iommu, ram: bigint, rta: bigint, sid: number, iova: bigint, firstStage: boolean): bigint | undefined {
  const p = walkSmDma(iommu, ram, rta, sid, iova);
  const pe = p.entries[3];
  if (!pe || pe.kind !== 'context') return undefined;
  const qw2 = readQ(iommu, ram, pe.addr + 16n);
  if (qw2 === undefined) return undefined;
  let base = (firstStage ? qw2 : pe.value) & 0x000ffffffffff000n;
  const levels = firstStage ? 4 : Number(get([pe.value], PASID_ENTRY.AW)) + 2;
  for (let level = levels; level >= 1; level--) {
    const e = readQ(iommu, ram, slEntryAddr(base, iova, level));
    if (e === undefined || (firstStage ? (e & 1n) === 0n : !slPresent(e))) return undefined;
    if (slIsLeaf(e, level)) {
      const span = levelSpan(level);
      return (slAddr(e) & ~(span - 1n)) | (iova & (span - 1n));
    }
    base = slAddr(e);
  }
  return undefined;
}
