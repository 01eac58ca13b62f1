/**
 * The VFIO backend interface for shadow sync, and what the backends share.
 *
 * A VMM with an assigned device behind a caching-mode vIOMMU keeps the host
 * IOMMU in step with the guest's mappings through map/unmap calls. A Backend
 * is a model of the kernel side of those calls (VFIO type1, iommufd IOAS, or
 * a recorder): it keeps the set of live mappings, answers each call as the
 * kernel contract does (success with a size, or an errno), and keeps
 * counters. Addresses and sizes are u64 values carried as bigint; this is not
 * a hot path.
 *
 * Browser-safe: nothing here (or anywhere in src/shadow) imports a Node module.
 * See docs/BACKENDS.md for every rule and the kernel function it follows.
 */
import { VtdError } from '../errors.js';

export type Perm = { read: boolean; write: boolean };
export type Errno = 'EINVAL' | 'EEXIST' | 'ENOSPC' | 'EOVERFLOW' | 'ENOMEM' | 'ENOENT' | 'EFAULT';
export type BackendResult =
  | { ok: true; size: bigint /* bytes unmapped, for unmap; 0n for map */ }
  | { ok: false; errno: Errno; reason: string };
export interface Mapping {
  iova: bigint;
  size: bigint;
  hva: bigint /* or gpa: what the VMM passes as vaddr */;
  perm: Perm;
}
export interface BackendStats {
  /** map calls issued (every call, failed ones included: each is an ioctl). */
  maps: number;
  /** unmap calls issued (every call, failed ones included; unmapAll counts as one). */
  unmaps: number;
  /** bytes mapped by successful maps. */
  mappedBytes: bigint;
  /** bytes removed by unmaps (including areas an iommufd unmap removed before it failed). */
  unmappedBytes: bigint;
  liveMappings: number;
  liveHighWater: number;
  pinnedBytes: bigint;
  pinnedHighWater: bigint;
  /** failed calls by errno (every errno present, zero when none). */
  errors: Record<Errno, number>;
  /** successful maps by size, power-of-two buckets: '4K','8K',...,'1G','>1G'. */
  mapSizeHistogram: Record<string, number>;
  /** successful unmaps by requested size (unmapAll: by the size it removed, when > 0). */
  unmapSizeHistogram: Record<string, number>;
}
/**
 * The limits a backend enforces on what it will hold. Shadow sync reads them
 * to bound its own work per sync (docs/SHADOW.md, Limits): content past them
 * could not be mapped anyway.
 */
export interface BackendLimits {
  /** The most live mappings, and the limit's name; a map past it fails with ENOSPC. Null: no limit. */
  mappings: { name: string; max: number } | null;
  /** The process's RLIMIT_MEMLOCK in bytes; a map past it fails with ENOMEM. Null: unlimited. */
  memlockBytes: bigint | null;
}

export interface Backend {
  readonly name: string;
  /** What the backend will hold at most (constant for a backend). */
  limits(): BackendLimits;
  map(iova: bigint, size: bigint, vaddr: bigint, perm: Perm): BackendResult;
  unmap(iova: bigint, size: bigint): BackendResult;
  unmapAll(): BackendResult;
  mappings(): Mapping[]; // sorted by iova
  stats(): BackendStats;
}

// ------------------------------------------------------------------ constants

/** The host CPU page size the kernel pins and accounts in (x86: 4 KiB). */
export const PAGE_SIZE = 0x1000n;
/** The largest u64 (ULONG_MAX / SIZE_MAX / U64_MAX on a 64-bit host). */
export const U64_MAX = (1n << 64n) - 1n;
/** 4K | 2M | 1G: the Intel VT-d second-stage page sizes. */
export const DEFAULT_PAGE_SIZES = 0x40201000n;
/** The x86 interrupt (MSI) window, reserved in every IOMMU domain. */
export const X86_MSI_WINDOW: [bigint, bigint] = [0xfee00000n, 0xfeefffffn];
/**
 * Default most live mappings of a backend whose kernel has no such limit
 * (iommufd), and of what a shadow sync accumulates for a backend that states
 * none: 2^18, 1 GiB mapped as 4 KiB pages, four times type1's default
 * dma_entry_limit (65535).
 */
export const DEFAULT_MAX_MAPPINGS = 1 << 18;
/** Default aperture: a 48-bit IOVA space. */
export const DEFAULT_APERTURE: [bigint, bigint] = [0n, (1n << 48n) - 1n];

export const ERRNOS: readonly Errno[] = ['EINVAL', 'EEXIST', 'ENOSPC', 'EOVERFLOW', 'ENOMEM', 'ENOENT', 'EFAULT'];

// ------------------------------------------------------------------ helpers

export function hex(v: bigint): string {
  return '0x' + v.toString(16);
}

/** 'rw', 'r', 'w', or '-' for neither. */
export function permString(p: Perm): string {
  const s = (p.read ? 'r' : '') + (p.write ? 'w' : '');
  return s === '' ? '-' : s;
}

export function okResult(size: bigint): BackendResult {
  return { ok: true, size };
}

export function errResult(errno: Errno, reason: string): BackendResult {
  return { ok: false, errno, reason };
}

/** Throws unless v is a bigint in [0, 2^64): the ioctl fields are u64. */
export function assertU64(name: string, v: bigint): void {
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) {
    throw new VtdError('ARGUMENT', `${name} must be a bigint in [0, 2^64), got ${String(v)}`, { [name]: v });
  }
}

export function assertPerm(p: Perm): void {
  if (p === null || typeof p !== 'object' || typeof p.read !== 'boolean' || typeof p.write !== 'boolean') {
    throw new VtdError('ARGUMENT', 'perm must be { read: boolean, write: boolean }', { perm: p });
  }
}

/** The argument checks every backend's map starts with (host misuse, not an errno). */
export function checkMapArgs(iova: bigint, size: bigint, vaddr: bigint, perm: Perm): void {
  assertU64('iova', iova);
  assertU64('size', size);
  assertU64('vaddr', vaddr);
  assertPerm(perm);
}

/** The argument checks every backend's unmap starts with. */
export function checkUnmapArgs(iova: bigint, size: bigint): void {
  assertU64('iova', iova);
  assertU64('size', size);
}

/** Lowest set bit of a non-zero bitmap (the kernel's 1 << __ffs(bitmap)). */
export function lowestBit(bitmap: bigint): bigint {
  return bitmap & -bitmap;
}

/** Memlock limit in bytes, rounded down to whole pages as `rlimit >> PAGE_SHIFT` does; null = unlimited. */
export function memlockLimitBytes(kib: bigint | 'unlimited' | undefined): bigint | null {
  if (kib === undefined || kib === 'unlimited') return null;
  if (typeof kib !== 'bigint' || kib < 0n) {
    throw new VtdError('CONFIG', `memlockLimitKiB must be a non-negative bigint or 'unlimited'`, { memlockLimitKiB: kib });
  }
  return ((kib * 1024n) / PAGE_SIZE) * PAGE_SIZE;
}

export function checkRange(name: string, r: [bigint, bigint]): void {
  if (!Array.isArray(r) || r.length !== 2 || typeof r[0] !== 'bigint' || typeof r[1] !== 'bigint'
      || r[0] < 0n || r[1] > U64_MAX || r[0] > r[1]) {
    throw new VtdError('CONFIG', `${name} must be an inclusive [first, last] bigint range inside u64`, { [name]: r });
  }
}

// ------------------------------------------------------------------ histograms

const KiB = 1024n;
const BUCKETS: { label: string; size: bigint }[] = (() => {
  const out: { label: string; size: bigint }[] = [];
  for (let s = 4n * KiB; s <= 1n << 30n; s <<= 1n) {
    const label = s >= 1n << 30n ? `${s >> 30n}G` : s >= 1n << 20n ? `${s >> 20n}M` : `${s >> 10n}K`;
    out.push({ label, size: s });
  }
  return out;
})();

/** The bucket labels, in order: '4K','8K',...,'512M','1G','>1G'. */
export const HISTOGRAM_BUCKETS: readonly string[] = [...BUCKETS.map((b) => b.label), '>1G'];

/** The power-of-two bucket of a size: the smallest bucket >= size ('4K' for anything up to 4 KiB). */
export function sizeBucket(size: bigint): string {
  for (const b of BUCKETS) if (size <= b.size) return b.label;
  return '>1G';
}

export function emptyHistogram(): Record<string, number> {
  const h: Record<string, number> = {};
  for (const l of HISTOGRAM_BUCKETS) h[l] = 0;
  return h;
}

export function emptyErrors(): Record<Errno, number> {
  return { EINVAL: 0, EEXIST: 0, ENOSPC: 0, EOVERFLOW: 0, ENOMEM: 0, ENOENT: 0, EFAULT: 0 };
}

// ------------------------------------------------------------------ accounting

/** The counters every backend keeps; backends call it, stats() snapshots it. */
export class StatsAccumulator {
  private maps = 0;
  private unmaps = 0;
  private mappedBytes = 0n;
  private unmappedBytes = 0n;
  private live = 0;
  private liveHighWater = 0;
  private pinned = 0n;
  private pinnedHighWater = 0n;
  private readonly errors = emptyErrors();
  private readonly mapHist = emptyHistogram();
  private readonly unmapHist = emptyHistogram();

  mapCall(): void { this.maps++; }
  unmapCall(): void { this.unmaps++; }
  error(errno: Errno): void { this.errors[errno]++; }
  /** Counts a refused call and returns its result. */
  fail(errno: Errno, reason: string): BackendResult {
    this.errors[errno]++;
    return errResult(errno, reason);
  }
  mapped(size: bigint): void {
    this.mappedBytes += size;
    this.mapHist[sizeBucket(size)]++;
  }
  /** Bytes actually removed (may happen on a failed iommufd unmap too). */
  removed(size: bigint): void { this.unmappedBytes += size; }
  /** A successful unmap; histogram by `bucketSize` (null: not bucketed). */
  unmapOk(bucketSize: bigint | null): void {
    if (bucketSize !== null) this.unmapHist[sizeBucket(bucketSize)]++;
  }
  /** The live state after a change. */
  setLive(live: number, pinned: bigint): void {
    this.live = live;
    this.pinned = pinned;
    if (live > this.liveHighWater) this.liveHighWater = live;
    if (pinned > this.pinnedHighWater) this.pinnedHighWater = pinned;
  }

  snapshot(): BackendStats {
    return {
      maps: this.maps,
      unmaps: this.unmaps,
      mappedBytes: this.mappedBytes,
      unmappedBytes: this.unmappedBytes,
      liveMappings: this.live,
      liveHighWater: this.liveHighWater,
      pinnedBytes: this.pinned,
      pinnedHighWater: this.pinnedHighWater,
      errors: { ...this.errors },
      mapSizeHistogram: { ...this.mapHist },
      unmapSizeHistogram: { ...this.unmapHist },
    };
  }
}

/**
 * Removes every mapping of `set` as one call that cannot fail (type1's
 * VFIO_DMA_UNMAP_FLAG_ALL, iommufd's unmap of the whole space): success with
 * the bytes removed, also when nothing was mapped.
 */
export function unmapEverything(set: MappingSet, acc: StatsAccumulator): BackendResult {
  acc.unmapCall();
  let unmapped = 0n;
  for (const e of set.clear()) unmapped += e.size;
  acc.removed(unmapped);
  acc.unmapOk(unmapped > 0n ? unmapped : null);
  acc.setLive(0, 0n);
  return okResult(unmapped);
}

// ------------------------------------------------------------------ mapping set

/**
 * A process's locked memory (the kernel's mm->locked_vm), checked against
 * RLIMIT_MEMLOCK. One VMM process owns every container or IOAS it opens, so
 * backends created for several guest domains share one account: the limit
 * applies to their sum (a page pinned by two containers counts twice, as in
 * the kernel).
 */
export class MemlockAccount {
  locked = 0n;
  highWater = 0n;
  add(bytes: bigint): void {
    this.locked += bytes;
    if (this.locked > this.highWater) this.highWater = this.locked;
  }
  sub(bytes: bigint): void {
    this.locked -= bytes;
  }
}

/** A live mapping plus the bytes it pins. */
export interface Entry extends Mapping {
  pinned: bigint;
}

/**
 * Non-overlapping mappings sorted by iova (the kernel's rb-tree / interval
 * tree). Because they never overlap, their ends are sorted too, so binary
 * search finds the first one that reaches an address.
 */
export class MappingSet {
  private readonly list: Entry[] = [];
  private pinnedTotal = 0n;

  /** `account`: the process-wide locked-memory count this set's pins add to. */
  constructor(readonly account: MemlockAccount = new MemlockAccount()) {}

  get size(): number { return this.list.length; }
  get pinned(): bigint { return this.pinnedTotal; }

  /** Index of the first entry whose last byte is >= addr. */
  private firstReaching(addr: bigint): number {
    let lo = 0, hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const e = this.list[mid];
      if (e.iova + e.size - 1n < addr) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  /** Entries intersecting [first, last], ascending. */
  overlapping(first: bigint, last: bigint): Entry[] {
    const out: Entry[] = [];
    for (let i = this.firstReaching(first); i < this.list.length && this.list[i].iova <= last; i++) out.push(this.list[i]);
    return out;
  }

  /** The entry containing addr, if any. */
  containing(addr: bigint): Entry | undefined {
    const e = this.list[this.firstReaching(addr)];
    return e !== undefined && e.iova <= addr ? e : undefined;
  }

  insert(e: Entry): void {
    const i = this.firstReaching(e.iova);
    this.list.splice(i, 0, e);
    this.pinnedTotal += e.pinned;
    this.account.add(e.pinned);
  }

  remove(e: Entry): void {
    const i = this.firstReaching(e.iova);
    if (this.list[i] !== e) throw new Error('MappingSet.remove: not a member');
    this.list.splice(i, 1);
    this.pinnedTotal -= e.pinned;
    this.account.sub(e.pinned);
  }

  clear(): Entry[] {
    const all = this.list.splice(0, this.list.length);
    this.account.sub(this.pinnedTotal);
    this.pinnedTotal = 0n;
    return all;
  }

  /** Public copies, sorted by iova. */
  mappings(): Mapping[] {
    return this.list.map((e) => ({ iova: e.iova, size: e.size, hva: e.hva, perm: { read: e.perm.read, write: e.perm.write } }));
  }
}
