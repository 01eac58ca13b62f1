/**
 * Shadow sync: keeps a host IOMMU (a VFIO backend) in step with the guest's
 * second-level mappings, driven by the invalidations a caching-mode unit
 * reports (digest §8.1: with CM = 1 the guest must invalidate after every
 * change, so each invalidation names exactly what may have changed).
 *
 * For each attached domain the sync keeps `shadow`: the mappings it believes
 * the backend holds. On an invalidation it walks the guest tables over exactly
 * the invalidated range (page-selective: 2^AM pages; domain-selective and
 * global: the whole space, absent subtrees pruned by the range walk), computes
 * what the backend should hold there, and issues the difference:
 *
 * - `merged` mode: the guest's effective present mappings as maximal runs
 *   (IOVA and GPA contiguous, same rights). Unchanged runs cost nothing; a run
 *   that changed is unmapped whole (a type1 backend refuses to bisect a
 *   mapping) and the new runs over its span are mapped.
 * - `qemu` mode: QEMU 7.2's behaviour (`vtd_page_walk_one`): one notification
 *   per leaf, kept in an IOVA tree. A leaf already mapped identically is
 *   skipped; a leaf overlapping a different mapping is unmapped over the NEW
 *   leaf's range and then mapped (under type1 this bisects a larger old
 *   mapping: EINVAL, and the map then fails with EEXIST, the failure real VMMs
 *   log as "vfio_dma_map(...) = -17 (File exists)"); a tree entry no leaf
 *   covers any more is unmapped.
 *
 * A mapping whose guest-physical range is not guest RAM is reported
 * (`notRam`), never mapped.
 *
 * The work and memory of a sync are bounded whatever the guest's tables hold
 * (docs/SHADOW.md, Limits): the walk reads at most `maxWalkEntries` entries,
 * keeps at most one mapping more than the backend can hold (its
 * `limits()`), and the first map refused at a backend limit (ENOSPC, ENOMEM)
 * ends the sync's maps. A sync stopped so is counted by limit, and the domain's
 * shadow is marked incomplete until a whole-space sync completes.
 */
import { VtdError } from '../errors.js';
import { DEFAULT_MAX_MAPPINGS, type Backend, type BackendResult } from './backend.js';
import { DEFAULT_WALK_ENTRIES, type Iommu, type IommuEvent } from '../iommu.js';

export type SyncMode = 'merged' | 'qemu';

/** One mapping as the shadow and the backend see it. */
export interface Run { iova: bigint; size: bigint; gpa: bigint; read: boolean; write: boolean }

export interface ShadowOptions {
  mode?: SyncMode;
  /** Guest RAM as [start, end) ranges; a guest mapping outside them is reported, not mapped. Default: everything is RAM. */
  ram?: ReadonlyArray<readonly [bigint, bigint]>;
  /** The address the backend is given for a guest-physical address (a VMM's host virtual address). Default: identity. */
  gpaToVaddr?: (gpa: bigint) => bigint;
  /**
   * Most guest table entries one sync's walk reads (default 2^24,
   * DEFAULT_WALK_ENTRIES); a walk cut there leaves the rest of the range
   * unmapped and counts the limit 'walk-entries'.
   */
  maxWalkEntries?: number;
}

/** The name under which a walk cut by `maxWalkEntries` is counted in `ShadowMetrics.limits`. */
export const WALK_LIMIT = 'walk-entries';

export interface ShadowMetrics {
  invalidations: number;
  syncs: number;
  walks: number;
  entriesRead: number;
  maps: number;
  unmaps: number;
  mapBytes: bigint;
  unmapBytes: bigint;
  /** Leaves (qemu mode) or runs (merged mode) found identical to what the backend holds: no operation needed. */
  redundantAvoided: number;
  /** Ranges unmapped and mapped again in one sync: a DMA in between would have faulted on the host. */
  unmappedWindows: number;
  /** Guest mappings of non-RAM guest-physical ranges (reported, not mapped). */
  notRam: number;
  /** Backend errors by errno. */
  errors: Record<string, number>;
  /** Syncs that stopped at a limit (the guest's mappings there are not all shadowed). */
  incompleteSyncs: number;
  /**
   * Syncs stopped, by the limit that stopped them (each counted once per sync):
   * 'walk-entries' (maxWalkEntries), the backend's mapping limit
   * ('dma_entry_limit' for type1, 'max-mappings' for iommufd; ENOSPC) and
   * 'RLIMIT_MEMLOCK' (ENOMEM).
   */
  limits: Record<string, number>;
}

interface Domain {
  did: number; table: bigint; levels: number; sids: Set<number>; shadow: Run[]; backend: Backend;
  /** False from a sync that stopped at a limit until a whole-space sync completes. */
  complete: boolean;
}

const SPACE_END = 1n << 64n;

function sameRun(a: Run, b: Run): boolean {
  return a.iova === b.iova && a.size === b.size && a.gpa === b.gpa && a.read === b.read && a.write === b.write;
}

function overlaps(r: Run, lo: bigint, hi: bigint): boolean {
  return r.iova < hi && r.iova + r.size > lo;
}

function byIova(a: Run, b: Run): number {
  return a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0;
}

/** Maximal runs: adjacent pieces with contiguous IOVA and GPA and the same rights become one. */
export function mergeRuns(pieces: Run[]): Run[] {
  const out: Run[] = [];
  for (const p of [...pieces].sort(byIova)) {
    const last = out[out.length - 1];
    if (last && last.iova + last.size === p.iova && last.gpa + last.size === p.gpa && last.read === p.read && last.write === p.write) {
      out[out.length - 1] = { ...last, size: last.size + p.size };
    } else {
      out.push({ ...p });
    }
  }
  return out;
}

/** Replaces list[from, to) by items (no argument spread: a list may hold 2^18 items). */
function replaceSlice(list: Run[], from: number, to: number, items: Run[]): void {
  if (items.length <= 4096) {
    list.splice(from, to - from, ...items);
    return;
  }
  const tail = list.slice(to);
  list.length = from;
  for (const r of items) list.push(r);
  for (const r of tail) list.push(r);
}

/** Clips a run to [lo, hi). */
function clip(r: Run, lo: bigint, hi: bigint): Run | undefined {
  const a = r.iova > lo ? r.iova : lo;
  const b = r.iova + r.size < hi ? r.iova + r.size : hi;
  if (a >= b) return undefined;
  return { iova: a, size: b - a, gpa: r.gpa + (a - r.iova), read: r.read, write: r.write };
}

/**
 * The slice [from, to) of a sorted, disjoint run list that overlaps [lo, hi),
 * found by binary search: a sync over a small range costs O(log n) plus what
 * it touches, however many mappings the domain holds.
 */
function window(list: readonly Run[], lo: bigint, hi: bigint): [number, number] {
  let a = 0, b = list.length;
  while (a < b) {
    const m = (a + b) >> 1;
    if (list[m].iova + list[m].size <= lo) a = m + 1;
    else b = m;
  }
  let to = a;
  while (to < list.length && list[to].iova < hi) to++;
  return [a, to];
}

export class ShadowSync {
  readonly mode: SyncMode;
  readonly metrics: ShadowMetrics = {
    invalidations: 0, syncs: 0, walks: 0, entriesRead: 0, maps: 0, unmaps: 0, mapBytes: 0n, unmapBytes: 0n,
    redundantAvoided: 0, unmappedWindows: 0, notRam: 0, errors: {}, incompleteSyncs: 0, limits: {},
  };
  readonly maxWalkEntries: number;
  private readonly domains = new Map<number, Domain>();
  /** Devices assigned to the guest (their domains are shadowed once their context is present). */
  private readonly assigned = new Set<number>();
  private readonly bySid = new Map<number, number>();
  private readonly ram: ReadonlyArray<readonly [bigint, bigint]> | undefined;
  private readonly toVaddr: (gpa: bigint) => bigint;
  private readonly unsubscribe: () => void;

  private readonly backendFor: (did: number) => Backend;
  private readonly byDid = new Map<number, Backend>();

  /**
   * `backend`: one backend for every domain (one guest domain), or a factory
   * giving each guest domain its own (a VMM opens one container or IOAS per
   * vIOMMU address space: the domains' IOVA spaces overlap). A factory is
   * called once per domain id.
   */
  constructor(readonly iommu: Iommu, backend: Backend | ((did: number) => Backend), opts: ShadowOptions = {}) {
    // The sync reads legacy root/context/second-level tables (contextOf, walkRange); a scalable-mode unit's
    // guest keeps its tables behind PASID entries, which it would misread as empty. Refused, not guessed.
    if (iommu.options.sm) {
      throw new VtdError('UNSUPPORTED', 'shadow sync of a scalable-mode unit (sm) is not implemented yet: it reads legacy tables only (issue 15); replay without a shadow, or with a legacy unit', { sm: true });
    }
    this.backendFor = typeof backend === 'function' ? backend : () => backend;
    this.mode = opts.mode ?? 'merged';
    this.ram = opts.ram;
    this.toVaddr = opts.gpaToVaddr ?? ((g) => g);
    const budget = opts.maxWalkEntries ?? DEFAULT_WALK_ENTRIES;
    if (!Number.isSafeInteger(budget) || budget < 1) throw new VtdError('CONFIG', 'maxWalkEntries must be a positive integer', { maxWalkEntries: budget });
    this.maxWalkEntries = budget;
    this.unsubscribe = iommu.on((e) => this.onEvent(e));
  }

  /** Stops following the unit's invalidations. */
  close(): void {
    this.unsubscribe();
  }

  /** The mappings the sync believes the backend holds for a domain. */
  shadowOf(did: number): readonly Run[] {
    return this.domains.get(did)?.shadow ?? [];
  }

  /**
   * Whether the domain's shadow is complete: false once a sync of it stopped
   * at a limit, true again after a whole-space sync that did not (undefined
   * for a domain not shadowed).
   */
  shadowComplete(did: number): boolean | undefined {
    return this.domains.get(did)?.complete;
  }

  /** The backends in use, by domain id (created on a domain's first attach). */
  backends(): ReadonlyMap<number, Backend> {
    return this.byDid;
  }

  /** Domains currently shadowed (an assigned device's context is present and translates). */
  shadowedDomains(): number[] {
    return [...this.domains.keys()].sort((a, b) => a - b);
  }

  /**
   * A device is assigned: its domain is shadowed from now on. Its context is
   * read now (a present one replays the whole domain) and again on every
   * context-cache invalidation that covers it, so a device may be assigned
   * before the guest has built its context entry.
   */
  attach(sid: number): void {
    this.assigned.add(sid);
    this.refreshContext(sid);
  }

  /** Re-reads `sid`'s context; a new domain or table replays the whole domain. */
  private refreshContext(sid: number): void {
    const ctx = this.iommu.contextOf(sid);
    const oldDid = this.bySid.get(sid);
    if (!ctx.ok || ctx.passThrough) {
      // No translated domain any more (or pass-through: nothing to shadow per page).
      if (oldDid !== undefined) this.detachSid(sid, oldDid);
      return;
    }
    if (oldDid !== undefined && oldDid !== ctx.did) this.detachSid(sid, oldDid);
    let d = this.domains.get(ctx.did);
    const fresh = d === undefined || d.table !== ctx.table || d.levels !== ctx.levels;
    if (!d) {
      let backend = this.byDid.get(ctx.did);
      if (!backend) {
        backend = this.backendFor(ctx.did);
        this.byDid.set(ctx.did, backend);
      }
      d = { did: ctx.did, table: ctx.table, levels: ctx.levels, sids: new Set(), shadow: [], backend, complete: true };
      this.domains.set(ctx.did, d);
    }
    d.table = ctx.table;
    d.levels = ctx.levels;
    d.sids.add(sid);
    this.bySid.set(sid, ctx.did);
    if (fresh || oldDid !== ctx.did) this.sync(d, 0n, SPACE_END);
  }

  private detachSid(sid: number, did: number): void {
    this.bySid.delete(sid);
    const d = this.domains.get(did);
    if (!d) return;
    d.sids.delete(sid);
    if (d.sids.size === 0) {
      // The last device left the domain: nothing needs its mappings any more.
      for (const r of d.shadow) this.unmap(d, r.iova, r.size);
      this.domains.delete(did);
    }
  }

  private onEvent(e: IommuEvent): void {
    if (e.type !== 'invalidation') return;
    if (e.cache === 'context') {
      this.metrics.invalidations++;
      // A context invalidation may have moved (or given a context to) an assigned device.
      for (const sid of this.assigned) {
        const keep = ~[0, 4, 6, 7][e.fm];
        const covered = e.granularity !== 3 || (sid & keep) === (e.sid & keep);
        if (covered) this.refreshContext(sid);
      }
      return;
    }
    if (e.cache !== 'iotlb') return;
    this.metrics.invalidations++;
    if (e.granularity === 1) {
      for (const d of this.domains.values()) this.sync(d, 0n, SPACE_END);
    } else if (e.granularity === 2 || e.granularity === 3) {
      const d = this.domains.get(e.did);
      if (!d) return;
      if (e.granularity === 2) this.sync(d, 0n, SPACE_END);
      else this.sync(d, e.addr, e.addr + (1n << BigInt(12 + e.am)));
    }
  }

  private inRam(r: Run): boolean {
    if (!this.ram) return true;
    return this.ram.some(([s, e]) => r.gpa >= s && r.gpa + r.size <= e);
  }

  /**
   * Walks [lo, hi) of the domain's tables and brings the backend in step over
   * it, within the limits: the walk stops at `maxWalkEntries` entries read, or
   * at the first mapping past what the backend can hold (its mapping limit +
   * 1, or past RLIMIT_MEMLOCK bytes). Content past the stop is treated as
   * absent: the backend then holds nothing there the sync could not check
   * (a stale host mapping would let the device reach memory the guest may
   * have reused).
   */
  private sync(d: Domain, lo: bigint, hi: bigint): void {
    this.metrics.syncs++;
    this.metrics.walks++;
    const limits = d.backend.limits();
    const maxItems = limits.mappings?.max ?? DEFAULT_MAX_MAPPINGS;
    const mappingLimit = limits.mappings?.name ?? 'max-mappings';
    const memlock = limits.memlockBytes;
    const hit = new Set<string>();
    const leaves: Run[] = [];
    let bytes = 0n;
    // QEMU notifies whole leaves (a 2 MiB page even for a 4 KiB invalidation);
    // the merged mode compares content and works on the range only, so its
    // leaves are merged into runs as they come (the walk yields them in IOVA order).
    const merged = this.mode === 'merged';
    const scan = this.iommu.scanRange(d.table, d.levels, lo, hi, this.maxWalkEntries, (iova, gpa, level, read, write) => {
      const whole: Run = { iova, size: 1n << BigInt(12 + 9 * (level - 1)), gpa, read, write };
      const r = merged ? clip(whole, lo, hi) : whole;
      if (!r) return true;
      if (!this.inRam(r)) {
        this.metrics.notRam++;
        return true;
      }
      const last = leaves[leaves.length - 1];
      if (merged && last && last.iova + last.size === r.iova && last.gpa + last.size === r.gpa && last.read === r.read && last.write === r.write) {
        last.size += r.size;
        bytes += r.size;
        return true;
      }
      // One mapping more than the backend can hold is enough to know it cannot hold them all.
      if (leaves.length > maxItems) {
        hit.add(mappingLimit);
        return false;
      }
      if (memlock !== null && bytes > memlock) {
        hit.add('RLIMIT_MEMLOCK');
        return false;
      }
      leaves.push(r);
      bytes += r.size;
      return true;
    });
    this.metrics.entriesRead += scan.entriesRead;
    if (!scan.complete && hit.size === 0) hit.add(WALK_LIMIT);
    const cut = scan.complete ? hi : scan.resume;
    const refused = merged ? this.syncMerged(d, lo, hi, leaves) : this.syncQemu(d, lo, hi, leaves, cut);
    if (refused) hit.add(refused);
    if (hit.size) {
      this.metrics.incompleteSyncs++;
      for (const name of hit) this.metrics.limits[name] = (this.metrics.limits[name] ?? 0) + 1;
      d.complete = false;
    } else if (lo === 0n && hi === SPACE_END) {
      d.complete = true;
    }
  }

  /** The limit a failed map hit (ENOSPC: the backend's mapping limit; ENOMEM: RLIMIT_MEMLOCK), if any. */
  private limitHit(d: Domain, r: BackendResult): string | undefined {
    if (r.ok) return undefined;
    if (r.errno === 'ENOSPC') return d.backend.limits().mappings?.name ?? 'max-mappings';
    if (r.errno === 'ENOMEM') return 'RLIMIT_MEMLOCK';
    return undefined;
  }

  /** Returns the limit a map was refused at (the maps after it are not issued), if any. */
  private syncMerged(d: Domain, lo: bigint, hi: bigint, leaves: Run[]): string | undefined {
    // Compare by content, not by run boundaries: a backend mapping stays when
    // the guest still maps every page of it (inside the range) identically,
    // whatever runs the fresh walk would form. Mappings made by earlier syncs
    // are therefore never redone just because a later, wider invalidation
    // would have merged them differently.
    const fresh = mergeRuns(leaves);
    const [from, to] = window(d.shadow, lo, hi);
    const old = d.shadow.slice(from, to);
    // Both lists are sorted and disjoint, so one forward sweep decides every
    // old mapping (linear, whatever the number of runs).
    const stay: Run[] = [];
    const removed: Run[] = [];
    let j = 0;
    for (const r of old) {
      const part = clip(r, lo, hi)!;
      const end = part.iova + part.size;
      while (j < fresh.length && fresh[j].iova + fresh[j].size <= part.iova) j++;
      let at = part.iova;
      let k = j;
      let ok = true;
      while (at < end) {
        const f = fresh[k];
        if (!f || f.iova > at || f.read !== r.read || f.write !== r.write || f.gpa + (at - f.iova) !== r.gpa + (at - r.iova)) {
          ok = false;
          break;
        }
        at = f.iova + f.size;
        k++;
      }
      (ok ? stay : removed).push(r);
    }
    this.metrics.redundantAvoided += stay.length;
    // To map: the fresh content not covered by a staying mapping (a sorted
    // sweep subtracting the stays), plus what the removed mappings held outside
    // the range (they are unmapped whole).
    const pieces: Run[] = [];
    let si = 0;
    for (const f of fresh) {
      let cur: Run | undefined = f;
      while (cur) {
        while (si < stay.length && stay[si].iova + stay[si].size <= cur.iova) si++;
        const st = stay[si];
        if (!st || st.iova >= cur.iova + cur.size) {
          pieces.push(cur);
          break;
        }
        const left = clip(cur, 0n, st.iova);
        if (left) pieces.push(left);
        cur = clip(cur, st.iova + st.size, SPACE_END);
      }
    }
    for (const r of removed) {
      const left = clip(r, 0n, lo), right = clip(r, hi, SPACE_END);
      if (left) pieces.push(left);
      if (right) pieces.push(right);
    }
    const added = mergeRuns(pieces);
    for (const r of removed) this.unmap(d, r.iova, r.size);
    let ri = 0;
    // After a map refused at a backend limit, the rest would be refused alike:
    // they are not issued, and the shadow holds only what the backend accepted
    // (a later sync maps them once there is room).
    let refused: string | undefined;
    const mapped: Run[] = [];
    for (const r of added) {
      if (refused) break;
      while (ri < removed.length && removed[ri].iova + removed[ri].size <= r.iova) ri++;
      if (ri < removed.length && overlaps(removed[ri], r.iova, r.iova + r.size)) this.metrics.unmappedWindows++;
      refused = this.limitHit(d, this.map(d, r));
      if (!refused) mapped.push(r);
    }
    replaceSlice(d.shadow, from, to, [...stay, ...mapped].sort(byIova));
    return refused;
  }

  /**
   * QEMU 7.2 (`vtd_page_walk_one` over an IOVA tree): per present leaf, skip
   * it when the tree holds exactly it; when it overlaps something else, notify
   * an unmap of the leaf's range, drop every overlapping tree entry, then map.
   * Per non-present entry the walk passes, notify an unmap of the entry's whole
   * range (a cleared PDE: 2 MiB) when the tree holds anything there.
   *
   * Unlike QEMU, which notifies every leaf whatever VFIO answers, a map refused
   * at a backend limit ends the maps of the sync (changed leaves are still
   * unmapped), and tree entries at or past `cut` (where the walk stopped) are
   * unmapped whole. Returns the limit a map was refused at, if any.
   */
  private syncQemu(d: Domain, lo: bigint, hi: bigint, leaves: Run[], cut: bigint): string | undefined {
    const tree = d.shadow;
    // The part of the tree the walk can touch: leaves are whole (not clipped),
    // so the window is the range widened to the leaves' extent.
    let wlo = lo, whi = hi;
    if (leaves.length) {
      if (leaves[0].iova < wlo) wlo = leaves[0].iova;
      const last = leaves[leaves.length - 1];
      if (last.iova + last.size > whi) whi = last.iova + last.size;
    }
    const [from, to] = window(tree, wlo, whi);
    const old = tree.slice(from, to);
    const next: Run[] = [];
    const gone = new Uint8Array(old.length); // 1: dropped or replaced
    const seen = new Uint8Array(old.length); // 1: some present leaf overlaps it
    let k = 0;
    let refused: string | undefined;
    for (const leaf of leaves) {
      const end = leaf.iova + leaf.size;
      while (k < old.length && old[k].iova + old[k].size <= leaf.iova) k++;
      let n = 0;
      for (let m = k; m < old.length && old[m].iova < end; m++) {
        seen[m] = 1;
        n++;
      }
      if (n === 1 && !gone[k] && sameRun(old[k], leaf)) {
        this.metrics.redundantAvoided++;
        continue;
      }
      if (n > 0) {
        // Translation changed: QEMU unmaps the new leaf's range, then maps it.
        this.unmap(d, leaf.iova, leaf.size);
        this.metrics.unmappedWindows++;
        for (let m = k; m < old.length && old[m].iova < end; m++) gone[m] = 1;
      }
      if (refused) continue;
      refused = this.limitHit(d, this.map(d, leaf));
      if (!refused) next.push(leaf);
    }
    // Tree entries inside the range that no present leaf overlaps: the walk met
    // a non-present entry there. QEMU unmaps that entry's whole range and drops
    // every tree entry it overlaps.
    for (let m = 0; m < old.length; m++) {
      if (gone[m] || seen[m] || !overlaps(old[m], lo, hi)) continue;
      if (old[m].iova >= cut) {
        // Past the end of the walk: not checked, so not kept.
        this.unmap(d, old[m].iova, old[m].size);
        gone[m] = 1;
        continue;
      }
      const at = old[m].iova > lo ? old[m].iova : lo;
      const [hs, hsize] = this.holeAt(d, at);
      this.unmap(d, hs, hsize);
      // old is sorted and disjoint: the entries the hole overlaps are the run around m.
      for (let x = m; x >= 0 && overlaps(old[x], hs, hs + hsize); x--) if (!seen[x]) gone[x] = 1;
      for (let x = m + 1; x < old.length && overlaps(old[x], hs, hs + hsize); x++) if (!seen[x]) gone[x] = 1;
    }
    for (let m = 0; m < old.length; m++) if (!gone[m]) next.push(old[m]);
    replaceSlice(tree, from, to, next.sort(byIova));
    return refused;
  }

  /**
   * The non-present entry of the domain's tables that covers `iova`: its
   * aligned range at the level where the walk stops (QEMU reads entries the
   * same way: present means R or W set).
   */
  private holeAt(d: Domain, iova: bigint): [bigint, bigint] {
    let table = d.table;
    for (let level = d.levels; level >= 1; level--) {
      const shift = BigInt(12 + 9 * (level - 1));
      let e: bigint;
      try {
        const b = this.iommu.readGuest(table + ((iova >> shift) & 0x1ffn) * 8n, 8);
        e = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
      } catch {
        e = 0n; // a table outside guest memory: nothing is present below it
      }
      if ((e & 3n) === 0n || level === 1 || (e & 0x80n) !== 0n) {
        // Non-present here (or a leaf that is not RAM or was clipped away: its own range).
        return [(iova >> shift) << shift, 1n << shift];
      }
      table = e & 0x000ffffffffff000n;
    }
    return [iova & ~0xfffn, 0x1000n];
  }

  private note(r: BackendResult): void {
    if (!r.ok) this.metrics.errors[r.errno] = (this.metrics.errors[r.errno] ?? 0) + 1;
  }

  private map(d: Domain, r: Run): BackendResult {
    this.metrics.maps++;
    this.metrics.mapBytes += r.size;
    const res = d.backend.map(r.iova, r.size, this.toVaddr(r.gpa), { read: r.read, write: r.write });
    this.note(res);
    return res;
  }

  private unmap(d: Domain, iova: bigint, size: bigint): void {
    this.metrics.unmaps++;
    this.metrics.unmapBytes += size;
    this.note(d.backend.unmap(iova, size));
  }
}
