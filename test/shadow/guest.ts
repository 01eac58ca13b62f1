/**
 * A minimal guest driver for shadow-sync tests and benchmarks: 4-level tables
 * allocated from a pool, 4 KiB or 2 MiB leaves, and the page-selective
 * invalidation Linux issues under caching mode after every change (digest
 * §8.2). One device (00:03.0) in one domain.
 */
import { Iommu } from '../../src/index.js';
import { mergeRuns, type Run } from '../../src/shadow/sync.js';
import {
  REG, GCMD_SRTP, GCMD_TE, G_DOMAIN, G_PAGE, contextEntry, contextEntryAddr, iotlbRegValue, ivaValue, rootEntry,
  slAddr, slEntry, slEntryAddr, slPresent, slPs, SL_RW,
} from '../../src/guest/layout.js';

export const SID = 0x18, DID = 3, PML4 = 0x100000n;

/** A minimal guest driver: 4-level tables from a pool, page-selective invalidation after each change (CM = 1). */
export class Guest {
  readonly iommu: Iommu;
  private next = 0x200000n;
  private readonly tables = new Map<bigint, bigint>(); // (level << 48 | index path) -> table address

  constructor(ram: number = 1 << 30) {
    this.iommu = Iommu.create({ aw: 48, cm: true, ram });
    this.iommu.writeGuestQwords(0x1000, rootEntry(0x2000n)); // root: bus 0 -> context table 0x2000
    this.iommu.writeGuestQwords(contextEntryAddr(0x2000n, SID & 0xff), contextEntry({ table: PML4, aw: 2, did: DID }));
    this.iommu.mmioWrite(REG.RTADDR, 8, 0x1000n);
    this.iommu.mmioWrite(REG.GCMD, 4, GCMD_SRTP);
    this.iommu.mmioWrite(REG.GCMD, 4, GCMD_TE);
  }

  private read(addr: bigint): bigint {
    return new DataView(this.iommu.readGuest(addr, 8).buffer).getBigUint64(0, true);
  }

  /** The PT (level-1 table) for `iova`, created when `create`. */
  private pt(iova: bigint, create: boolean): bigint | undefined {
    let table = PML4;
    for (let level = 4; level >= 2; level--) {
      const slot = slEntryAddr(table, iova, level);
      let e = this.read(slot);
      if (!slPresent(e) || (level === 2 && slPs(e))) {
        if (!create) return undefined;
        const t = this.next;
        this.next += 0x1000n;
        e = slEntry(t, SL_RW);
        this.iommu.writeGuestQwords(slot, [e]);
      }
      table = slAddr(e);
    }
    return table;
  }

  /** The address of the level-`level` table on the way to `iova` (4: the PML4), created when missing. */
  tableOf(iova: bigint, level: number): bigint {
    this.pt(iova, true);
    let table = PML4;
    for (let l = 4; l > level; l--) table = slAddr(this.read(slEntryAddr(table, iova, l)));
    return table;
  }

  /** Maps 4 KiB pages; `pde2m` writes a 2 MiB leaf instead (iova and gpa 2 MiB aligned, size 2 MiB). */
  map(iova: bigint, gpa: bigint, size: bigint, rw: bigint, pde2m = false): void {
    if (pde2m) {
      this.pt(iova, true); // make sure the PD exists; then overwrite the PDE with a leaf
      let table = PML4;
      for (let level = 4; level >= 3; level--) table = slAddr(this.read(slEntryAddr(table, iova, level)));
      this.iommu.writeGuestQwords(slEntryAddr(table, iova, 2), [slEntry(gpa, rw, true)]);
    } else {
      for (let o = 0n; o < size; o += 0x1000n) this.iommu.writeGuestQwords(slEntryAddr(this.pt(iova + o, true)!, iova + o, 1), [slEntry(gpa + o, rw)]);
    }
    this.invalidate(iova, size);
  }

  /** Writes one 4 KiB leaf without invalidating (for building large tables quickly). */
  mapNoInvalidate(iova: bigint, gpa: bigint, rw: bigint): void {
    this.iommu.writeGuestQwords(slEntryAddr(this.pt(iova, true)!, iova, 1), [slEntry(gpa, rw)]);
  }

  unmap(iova: bigint, size: bigint): void {
    for (let o = 0n; o < size; o += 0x1000n) {
      const pt = this.pt(iova + o, false);
      if (pt !== undefined) this.iommu.writeGuestQwords(slEntryAddr(pt, iova + o, 1), [0n]);
    }
    this.invalidate(iova, size);
  }

  /** Page-selective invalidation covering [iova, iova + size): the smallest aligned 2^AM block. */
  invalidate(iova: bigint, size: bigint): void {
    let am = 0;
    while (((iova >> BigInt(12 + am)) << BigInt(12 + am)) + (1n << BigInt(12 + am)) < iova + size) am++;
    if (am > 18) return this.invalidateDomain();
    this.iommu.mmioWrite(REG.IVA, 8, ivaValue((iova >> BigInt(12 + am)) << BigInt(12 + am), am));
    this.iommu.mmioWrite(REG.IOTLB, 8, iotlbRegValue(G_PAGE, DID));
  }

  invalidateDomain(): void {
    this.iommu.mmioWrite(REG.IOTLB, 8, iotlbRegValue(G_DOMAIN, DID));
  }

  /** The guest's effective present mappings, as maximal runs. */
  effective(): Run[] {
    return mergeRuns(this.iommu.walkRange(PML4, 4, 0n, 1n << 48n).mappings.map((m) => ({ iova: m.iova, size: m.size, gpa: m.gpa, read: m.read, write: m.write })));
  }
}

