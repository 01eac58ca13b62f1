/**
 * iommufd IOAS as in Linux drivers/iommu/iommufd: IOMMU_IOAS_MAP with
 * IOMMU_IOAS_MAP_FIXED_IOVA (ioas.c iommufd_ioas_map -> io_pagetable.c
 * iopt_map_user_pages), IOMMU_IOAS_UNMAP (iommufd_ioas_unmap -> iopt_unmap_iova
 * -> iopt_unmap_iova_range) and the unmap-all form (iova 0, length U64_MAX ->
 * iopt_unmap_all). Checks run in the kernel's order. docs/BACKENDS.md lists
 * every rule with its source.
 */
import { VtdError } from '../errors.js';
import {
  type Backend, type BackendLimits, type BackendResult, type BackendStats, type Mapping, type Perm,
  DEFAULT_APERTURE, DEFAULT_MAX_MAPPINGS, DEFAULT_PAGE_SIZES, MappingSet, PAGE_SIZE, StatsAccumulator, U64_MAX, X86_MSI_WINDOW,
  MemlockAccount, unmapEverything, checkMapArgs, checkUnmapArgs, checkRange, hex, lowestBit, memlockLimitBytes, okResult,
} from './backend.js';

export interface IommufdOptions {
  /** The attached domain's pgsize_bitmap; iova_alignment = its lowest bit (must be <= PAGE_SIZE). Default 4K|2M|1G. */
  pageSizes?: bigint;
  /** RLIMIT_MEMLOCK in KiB (`ulimit -l` units); default 'unlimited' (or CAP_IPC_LOCK). */
  memlockLimitKiB?: bigint | 'unlimited';
  /** The process's locked-memory account, shared by every backend of one VMM (default: this backend's own). */
  memlockAccount?: MemlockAccount;
  /** Domain aperture, inclusive; everything outside it is reserved. Default [0, 2^48 - 1]. */
  aperture?: [bigint, bigint];
  /** Reserved IOVA regions (inclusive), e.g. the device's IOMMU_RESV_MSI; default the x86 MSI window. */
  reserved?: [bigint, bigint][];
  /**
   * Most live areas (mappings) of the IOAS. The kernel has no such limit (an
   * IOAS grows until memory runs out); this is the VMM's own cap, so that a
   * guest cannot make it allocate without bound (docs/BACKENDS.md). A map past
   * it fails with ENOSPC, as type1's dma_entry_limit does. Default 262144 (2^18).
   */
  maxMappings?: number;
  /** Backend name; default 'iommufd'. */
  name?: string;
}

export class IommufdBackend implements Backend {
  readonly name: string;
  /** iopt->iova_alignment: alignment of iova and length (and of the user VA's offset within its page). */
  readonly iovaAlignment: bigint;
  /** Memlock limit in bytes (whole pages), null when unlimited. */
  readonly memlockLimit: bigint | null;
  /** iopt->reserved_itree: the reserved regions plus everything outside the aperture. */
  readonly reservedRanges: readonly [bigint, bigint][];
  /** The VMM's cap on live areas (not a kernel rule). */
  readonly maxMappings: number;
  private readonly set: MappingSet;
  private readonly acc = new StatsAccumulator();

  constructor(options: IommufdOptions = {}) {
    this.set = new MappingSet(options.memlockAccount);
    this.name = options.name ?? 'iommufd';
    const bitmap = options.pageSizes ?? DEFAULT_PAGE_SIZES;
    if (typeof bitmap !== 'bigint' || bitmap <= 0n || bitmap > U64_MAX) {
      throw new VtdError('CONFIG', 'pageSizes must be a non-zero u64 bitmap', { pageSizes: bitmap });
    }
    const align = lowestBit(bitmap);
    // iopt_table_add_domain(): a domain whose smallest page exceeds PAGE_SIZE cannot be attached.
    if (align > PAGE_SIZE) {
      throw new VtdError('CONFIG', `iopt_table_add_domain: smallest page size ${hex(align)} exceeds PAGE_SIZE (the attach fails with EINVAL)`, { pageSizes: bitmap });
    }
    this.iovaAlignment = align;
    this.memlockLimit = memlockLimitBytes(options.memlockLimitKiB);
    const max = options.maxMappings ?? DEFAULT_MAX_MAPPINGS;
    if (!Number.isSafeInteger(max) || max < 0) throw new VtdError('CONFIG', 'maxMappings must be a non-negative integer', { maxMappings: max });
    this.maxMappings = max;

    const aperture = options.aperture ?? DEFAULT_APERTURE;
    checkRange('aperture', aperture);
    const reserved = options.reserved ?? [X86_MSI_WINDOW];
    reserved.forEach((r) => checkRange('reserved', r));
    const all: [bigint, bigint][] = reserved.map(([a, b]) => [a, b]);
    // iopt_table_add_domain() reserves [0, aperture_start - 1] and [aperture_end + 1, ULONG_MAX].
    if (aperture[0] !== 0n) all.push([0n, aperture[0] - 1n]);
    if (aperture[1] !== U64_MAX) all.push([aperture[1] + 1n, U64_MAX]);
    all.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    this.reservedRanges = all;
  }

  limits(): BackendLimits {
    return { mappings: { name: 'max-mappings', max: this.maxMappings }, memlockBytes: this.memlockLimit };
  }

  /** IOMMU_IOAS_MAP with IOMMU_IOAS_MAP_FIXED_IOVA. */
  map(iova: bigint, size: bigint, vaddr: bigint, perm: Perm): BackendResult {
    checkMapArgs(iova, size, vaddr, perm);
    this.acc.mapCall();
    const mask = this.iovaAlignment - 1n;

    // iommufd_ioas_map()
    if (iova >= U64_MAX || size >= U64_MAX) return this.acc.fail('EOVERFLOW', `iommufd_ioas_map: iova ${hex(iova)} or length ${hex(size)} >= ULONG_MAX`);
    if (!perm.read && !perm.write) return this.acc.fail('EINVAL', 'iommufd_ioas_map: neither IOMMU_IOAS_MAP_READABLE nor _WRITEABLE');
    // iopt_alloc_user_pages(): check_add_overflow(uptr, length), then iopt_alloc_pages()
    if (vaddr + size > U64_MAX) return this.acc.fail('EOVERFLOW', `iopt_alloc_user_pages: user_va ${hex(vaddr)} + length ${hex(size)} overflows`);
    if (size === 0n || size > U64_MAX - PAGE_SIZE) return this.acc.fail('EINVAL', `iopt_alloc_pages: length ${hex(size)} is 0 or > SIZE_MAX - PAGE_SIZE`);
    // iopt_alloc_area_pages()
    if (size & mask) return this.acc.fail('EINVAL', `iopt_alloc_area_pages: length ${hex(size)} not aligned to iova_alignment ${hex(this.iovaAlignment)}`);
    // iopt_check_iova()
    if (iova & mask) return this.acc.fail('EINVAL', `iopt_check_iova: iova ${hex(iova)} not aligned to iova_alignment ${hex(this.iovaAlignment)}`);
    const last = iova + size - 1n;
    if (last > U64_MAX) return this.acc.fail('EOVERFLOW', `iopt_check_iova: iova ${hex(iova)} + length ${hex(size)} - 1 overflows`);
    const resv = this.reservedRanges.find(([a, b]) => a <= last && b >= iova);
    if (resv !== undefined) {
      return this.acc.fail('EINVAL', `iopt_check_iova: [${hex(iova)}, ${hex(last)}] intersects reserved [${hex(resv[0])}, ${hex(resv[1])}]`);
    }
    const clash = this.set.overlapping(iova, last)[0];
    if (clash !== undefined) {
      return this.acc.fail('EEXIST', `iopt_check_iova: [${hex(iova)}, ${hex(last)}] overlaps the area at ${hex(clash.iova)} length ${hex(clash.size)}`);
    }
    // Not the kernel: the VMM's cap on live areas, checked where type1 checks dma_avail.
    if (this.set.size >= this.maxMappings) {
      return this.acc.fail('ENOSPC', `max-mappings: ${this.maxMappings} areas live (the VMM's cap; iommufd itself has no limit)`);
    }
    // iopt_insert_area(): the user VA's offset in its page must meet the alignment.
    const pageOffset = vaddr % PAGE_SIZE;
    if (pageOffset & mask) return this.acc.fail('EINVAL', `iopt_insert_area: user_va ${hex(vaddr)} page offset not aligned to ${hex(this.iovaAlignment)}`);
    // iopt_alloc_pages(): npages = DIV_ROUND_UP(length + page offset, PAGE_SIZE); pinned when the domain is filled.
    const pinned = ((pageOffset + size + PAGE_SIZE - 1n) / PAGE_SIZE) * PAGE_SIZE;
    // incr_user_locked_vm() / update_mm_locked_vm(): new_pages > lock_limit -> ENOMEM.
    if (this.memlockLimit !== null && this.set.account.locked + pinned > this.memlockLimit) {
      return this.acc.fail('ENOMEM', `incr_user_locked_vm: RLIMIT_MEMLOCK (${hex(this.memlockLimit)}) exceeded: ${hex(this.set.account.locked)} locked + ${hex(pinned)}`);
    }
    this.set.insert({ iova, size, hva: vaddr, perm: { read: perm.read, write: perm.write }, pinned });
    this.acc.mapped(size);
    this.acc.setLive(this.set.size, this.set.pinned);
    return okResult(0n);
  }

  /** IOMMU_IOAS_UNMAP. iova 0 with length U64_MAX is the unmap-all form. */
  unmap(iova: bigint, size: bigint): BackendResult {
    checkUnmapArgs(iova, size);
    if (iova === 0n && size === U64_MAX) return this.unmapAll();
    this.acc.unmapCall();

    // iommufd_ioas_unmap(); note: no alignment check on unmap.
    if (iova >= U64_MAX || size >= U64_MAX) return this.acc.fail('EOVERFLOW', `iommufd_ioas_unmap: iova ${hex(iova)} or length ${hex(size)} >= ULONG_MAX`);
    // iopt_unmap_iova()
    if (size === 0n) return this.acc.fail('EINVAL', 'iopt_unmap_iova: length is 0');
    const last = iova + size - 1n;
    if (last > U64_MAX) return this.acc.fail('EOVERFLOW', `iopt_unmap_iova: iova ${hex(iova)} + length ${hex(size)} - 1 overflows`);

    // iopt_unmap_iova_range(): areas are taken lowest first and removed one by
    // one; an area the range would cut stops the walk with ENOENT, and the
    // areas already removed stay removed.
    let unmapped = 0n;
    for (const e of this.set.overlapping(iova, last)) {
      if (e.iova < iova || e.iova + e.size - 1n > last) {
        this.acc.removed(unmapped);
        this.acc.setLive(this.set.size, this.set.pinned);
        const partial = unmapped > 0n ? ` (${hex(unmapped)} bytes below it were already unmapped)` : '';
        return this.acc.fail('ENOENT', `iopt_unmap_iova_range: [${hex(iova)}, ${hex(last)}] would split the area at ${hex(e.iova)} length ${hex(e.size)}${partial}`);
      }
      unmapped += e.size;
      this.set.remove(e);
    }
    if (unmapped === 0n) {
      // iopt_unmap_iova_range() (older kernels) or iommufd_ioas_unmap() (after
      // commit afb47765f923): nothing unmapped is ENOENT for IOMMU_IOAS_UNMAP.
      return this.acc.fail('ENOENT', `iommufd_ioas_unmap: nothing mapped in [${hex(iova)}, ${hex(last)}]`);
    }
    this.acc.removed(unmapped);
    this.acc.unmapOk(size);
    this.acc.setLive(this.set.size, this.set.pinned);
    return okResult(unmapped);
  }

  /** IOMMU_IOAS_UNMAP with iova 0 and length U64_MAX: iopt_unmap_all(), success even when empty. */
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
