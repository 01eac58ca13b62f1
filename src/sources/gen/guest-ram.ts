/**
 * Guest RAM for the generators' buffers: a page allocator over the data
 * area, random placement.
 *
 * Browser-safe: no Node imports.
 */
import { VtdError } from '../../errors.js';
import type { Rng } from './rng.js';

export class PageAllocator {
  private readonly used = new Set<number>();
  constructor(private readonly rng: Rng, readonly first: number, readonly end: number) {}

  private fail(pages: number): never {
    throw new VtdError('GUEST_MEMORY', `guest RAM exhausted allocating ${pages} pages (use a larger --ram)`, { pages });
  }

  /** One free page at a random place. */
  page(): number {
    const n = this.end - this.first;
    if (this.used.size >= n) this.fail(1);
    let p = this.first + this.rng.below(n);
    while (this.used.has(p)) p = p + 1 === this.end ? this.first : p + 1;
    this.used.add(p);
    return p;
  }

  /** The page after `pfn` if it is free, else a random one. */
  pageAfter(pfn: number): number {
    const p = pfn + 1;
    if (p < this.end && !this.used.has(p)) {
      this.used.add(p);
      return p;
    }
    return this.page();
  }

  /** `pages` contiguous free pages aligned to `pages` (a buddy block), or undefined. */
  block(pages: number): number | undefined {
    const slots = Math.floor(this.end / pages) - Math.ceil(this.first / pages);
    if (slots <= 0) return undefined;
    const base = Math.ceil(this.first / pages);
    const start = this.rng.below(slots);
    for (let k = 0; k < Math.min(slots, 64); k++) {
      const p = (base + ((start + k) % slots)) * pages;
      let free = true;
      for (let j = 0; j < pages && free; j++) free = !this.used.has(p + j);
      if (free) {
        for (let j = 0; j < pages; j++) this.used.add(p + j);
        return p;
      }
    }
    return undefined;
  }

  free(pfn: number, pages = 1): void {
    for (let j = 0; j < pages; j++) this.used.delete(pfn + j);
  }
}
