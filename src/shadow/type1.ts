/**
 * VFIO type1 v2 (VFIO_TYPE1v2_IOMMU) as in Linux drivers/vfio/vfio_iommu_type1.c:
 * VFIO_IOMMU_MAP_DMA (vfio_dma_do_map), VFIO_IOMMU_UNMAP_DMA (vfio_dma_do_unmap,
 * v2 rules), VFIO_DMA_UNMAP_FLAG_ALL. Checks run in the kernel's order, so the
 * errno of a call that breaks several rules is the kernel's. docs/BACKENDS.md
 * lists every rule with its source.
 */
import { VtdError } from '../errors.js';
import {
  type Backend, type BackendLimits, type BackendResult, type BackendStats, type Errno, type Mapping, type Perm,
  DEFAULT_APERTURE, DEFAULT_PAGE_SIZES, MappingSet, PAGE_SIZE, StatsAccumulator, U64_MAX, X86_MSI_WINDOW,
  MemlockAccount, unmapEverything, checkMapArgs, checkUnmapArgs, checkRange, hex, lowestBit, memlockLimitBytes, okResult,
} from './backend.js';

export interface Type1Options {
  /** IOMMU page-size bitmap (VFIO_IOMMU_GET_INFO iova_pgsizes); default 4K|2M|1G. Only its lowest bit (the alignment) matters. */
  pageSizes?: bigint;
  /** vfio_iommu_type1 module parameter dma_entry_limit: most vfio_dma per container; default 65535 (U16_MAX). */
  dmaEntryLimit?: number;
  /** RLIMIT_MEMLOCK in KiB (`ulimit -l` units); default 'unlimited' (or CAP_IPC_LOCK). */
  memlockLimitKiB?: bigint | 'unlimited';
  /** The process's locked-memory account, shared by every backend of one VMM (default: this backend's own). */
  memlockAccount?: MemlockAccount;
  /** IOMMU domain aperture, inclusive; default [0, 2^48 - 1]. */
  aperture?: [bigint, bigint];
  /** Reserved IOVA regions (inclusive), excluded from the valid list; default the x86 MSI window. */
  reserved?: [bigint, bigint][];
  /**
   * The errno for an IOVA/vaddr range that wraps past 2^64: 'EOVERFLOW' (the
   * check_add_overflow() rework of 2025, "vfio/type1: sanitize for overflow
   * using check_*_overflow()") or 'EINVAL' (every kernel before it). Default 'EOVERFLOW'.
   */
  overflowErrno?: 'EOVERFLOW' | 'EINVAL';
  /** Backend name; default 'vfio-type1'. */
  name?: string;
}

export class Type1Backend implements Backend {
  readonly name: string;
  /** Smallest supported page size: the alignment of iova, size and vaddr. */
  readonly pageSize: bigint;
  readonly dmaEntryLimit: number;
  /** Memlock limit in bytes (whole pages), null when unlimited. */
  readonly memlockLimit: bigint | null;
  /** The valid IOVA ranges (iommu->iova_list): the aperture minus reserved regions. */
  readonly validRanges: readonly [bigint, bigint][];
  private readonly overflowErrno: Errno;
  private readonly set: MappingSet;
  private readonly acc = new StatsAccumulator();

  constructor(options: Type1Options = {}) {
    this.set = new MappingSet(options.memlockAccount);
    this.name = options.name ?? 'vfio-type1';
    let bitmap = options.pageSizes ?? DEFAULT_PAGE_SIZES;
    if (typeof bitmap !== 'bigint' || bitmap <= 0n || bitmap > U64_MAX) {
      throw new VtdError('CONFIG', 'pageSizes must be a non-zero u64 bitmap', { pageSizes: bitmap });
    }
    // vfio_update_pgsize_bitmap(): sizes below PAGE_SIZE are hidden and
    // PAGE_SIZE is advertised instead; pinning works in PAGE_SIZE units.
    if (bitmap & (PAGE_SIZE - 1n)) bitmap = (bitmap & ~(PAGE_SIZE - 1n)) | PAGE_SIZE;
    this.pageSize = lowestBit(bitmap);

    const limit = options.dmaEntryLimit ?? 65535;
    if (!Number.isInteger(limit) || limit < 0) {
      throw new VtdError('CONFIG', 'dmaEntryLimit must be a non-negative integer', { dmaEntryLimit: limit });
    }
    this.dmaEntryLimit = limit;
    this.memlockLimit = memlockLimitBytes(options.memlockLimitKiB);

    const aperture = options.aperture ?? DEFAULT_APERTURE;
    checkRange('aperture', aperture);
    const reserved = options.reserved ?? [X86_MSI_WINDOW];
    reserved.forEach((r) => checkRange('reserved', r));
    this.validRanges = excludeRanges(aperture, reserved);

    const oe = options.overflowErrno ?? 'EOVERFLOW';
    if (oe !== 'EOVERFLOW' && oe !== 'EINVAL') throw new VtdError('CONFIG', `overflowErrno must be 'EOVERFLOW' or 'EINVAL'`, { overflowErrno: oe });
    this.overflowErrno = oe;
  }

  limits(): BackendLimits {
    return { mappings: { name: 'dma_entry_limit', max: this.dmaEntryLimit }, memlockBytes: this.memlockLimit };
  }

  /** VFIO_IOMMU_MAP_DMA, vfio_dma_do_map(). */
  map(iova: bigint, size: bigint, vaddr: bigint, perm: Perm): BackendResult {
    checkMapArgs(iova, size, vaddr, perm);
    this.acc.mapCall();
    const mask = this.pageSize - 1n;

    if (size === 0n) return this.acc.fail('EINVAL', 'vfio_dma_do_map: size is 0');
    // Don't allow IOVA or virtual address wrap.
    if (iova + size - 1n > U64_MAX || vaddr + size - 1n > U64_MAX) {
      return this.acc.fail(this.overflowErrno, `vfio_dma_do_map: iova ${hex(iova)} or vaddr ${hex(vaddr)} + size ${hex(size)} wraps past 2^64`);
    }
    if (!perm.read && !perm.write) return this.acc.fail('EINVAL', 'vfio_dma_do_map: neither VFIO_DMA_MAP_FLAG_READ nor _WRITE');
    if ((size | iova | vaddr) & mask) {
      return this.acc.fail('EINVAL', `vfio_dma_do_map: iova ${hex(iova)}, size ${hex(size)} or vaddr ${hex(vaddr)} not aligned to the smallest page size ${hex(this.pageSize)}`);
    }
    const last = iova + size - 1n;
    // vfio_find_dma(iommu, iova, size): any overlap, no replace.
    const clash = this.set.overlapping(iova, last)[0];
    if (clash !== undefined) {
      return this.acc.fail('EEXIST', `vfio_dma_do_map: [${hex(iova)}, ${hex(last)}] overlaps the mapping at ${hex(clash.iova)} size ${hex(clash.size)}`);
    }
    if (this.set.size >= this.dmaEntryLimit) {
      return this.acc.fail('ENOSPC', `vfio_dma_do_map: dma_avail is 0 (dma_entry_limit ${this.dmaEntryLimit} mappings live)`);
    }
    // vfio_iommu_iova_dma_valid(): inside one range of the valid iova list.
    if (!this.validRanges.some(([a, b]) => iova >= a && last <= b)) {
      return this.acc.fail('EINVAL', `vfio_iommu_iova_dma_valid: [${hex(iova)}, ${hex(last)}] is outside the aperture or touches a reserved region`);
    }
    // vfio_pin_pages_remote(): locked_vm + npage > RLIMIT_MEMLOCK >> PAGE_SHIFT.
    if (this.memlockLimit !== null && this.set.account.locked + size > this.memlockLimit) {
      return this.acc.fail('ENOMEM', `vfio_pin_pages_remote: RLIMIT_MEMLOCK (${hex(this.memlockLimit)}) exceeded: ${hex(this.set.account.locked)} locked + ${hex(size)}`);
    }
    // One vfio_dma per successful call (vfio_link_dma); no merging.
    this.set.insert({ iova, size, hva: vaddr, perm: { read: perm.read, write: perm.write }, pinned: size });
    this.acc.mapped(size);
    this.acc.setLive(this.set.size, this.set.pinned);
    return okResult(0n);
  }

  /** VFIO_IOMMU_UNMAP_DMA, vfio_dma_do_unmap() with iommu->v2. */
  unmap(iova: bigint, size: bigint): BackendResult {
    checkUnmapArgs(iova, size);
    this.acc.unmapCall();
    const mask = this.pageSize - 1n;

    if (iova & mask) return this.acc.fail('EINVAL', `vfio_dma_do_unmap: iova ${hex(iova)} not aligned to ${hex(this.pageSize)}`);
    if (size === 0n || size & mask) return this.acc.fail('EINVAL', `vfio_dma_do_unmap: size ${hex(size)} is 0 or not aligned to ${hex(this.pageSize)}`);
    if (iova + size - 1n > U64_MAX) {
      return this.acc.fail(this.overflowErrno, `vfio_dma_do_unmap: iova ${hex(iova)} + size ${hex(size)} wraps past 2^64`);
    }
    const last = iova + size - 1n;
    // v2: the range may not bisect a mapping at either end.
    const head = this.set.containing(iova);
    if (head !== undefined && head.iova !== iova) {
      return this.acc.fail('EINVAL', `vfio_dma_do_unmap: start ${hex(iova)} bisects the mapping at ${hex(head.iova)} size ${hex(head.size)}`);
    }
    const tail = this.set.containing(last);
    if (tail !== undefined && tail.iova + tail.size - 1n !== last) {
      return this.acc.fail('EINVAL', `vfio_dma_do_unmap: end ${hex(last)} bisects the mapping at ${hex(tail.iova)} size ${hex(tail.size)}`);
    }
    let unmapped = 0n;
    for (const e of this.set.overlapping(iova, last)) {
      unmapped += e.size;
      this.set.remove(e); // vfio_remove_dma
    }
    this.acc.removed(unmapped);
    this.acc.unmapOk(size);
    this.acc.setLive(this.set.size, this.set.pinned);
    return okResult(unmapped); // success with 0 when nothing was mapped there
  }

  /** VFIO_IOMMU_UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_ALL (iova 0, size 0). */
  unmapAll(): BackendResult {
    return unmapEverything(this.set, this.acc);
  }

  mappings(): Mapping[] {
    return this.set.mappings();
  }

  stats(): BackendStats {
    return this.acc.snapshot();
  }
}

/**
 * The aperture minus the reserved regions, as vfio_iommu_aper_resize() and
 * vfio_iommu_resv_exclude() build iommu->iova_list.
 */
export function excludeRanges(aperture: [bigint, bigint], reserved: [bigint, bigint][]): [bigint, bigint][] {
  let ranges: [bigint, bigint][] = [[aperture[0], aperture[1]]];
  for (const [rs, re] of reserved) {
    const next: [bigint, bigint][] = [];
    for (const [a, b] of ranges) {
      if (re < a || rs > b) { next.push([a, b]); continue; }
      if (rs > a) next.push([a, rs - 1n]);
      if (re < b) next.push([re + 1n, b]);
    }
    ranges = next;
  }
  return ranges;
}
