/**
 * Sets of 4 KiB page ranges: the importer's record of each domain's live
 * and quarantined (lazily freed) mappings.
 *
 * Browser-safe.
 */

/** The page size of every range, in bytes. */
export const PAGE = 4096n;

/**
 * Disjoint [start, end) ranges of 4 KiB pages, sorted, each kept as it was
 * added (adjacent ranges are not merged, so map boundaries stay known).
 * Invariant: starts ascending and ends[i] <= starts[i + 1].
 */
export class PageRanges {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  get count(): number {
    return this.starts.length;
  }

  /** Index of the first range whose end is above `page`. */
  private firstEndingAfter(page: number): number {
    let lo = 0, hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid] <= page) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  overlaps(start: number, end: number): boolean {
    const i = this.firstEndingAfter(start);
    return i < this.starts.length && this.starts[i] < end;
  }

  /** The parts of [start, end) inside ranges, merged where contiguous. */
  pieces(start: number, end: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = this.firstEndingAfter(start); i < this.starts.length && this.starts[i] < end; i++) {
      const s = Math.max(start, this.starts[i]), e = Math.min(end, this.ends[i]);
      const last = out[out.length - 1];
      if (last !== undefined && last[1] === s) last[1] = e;
      else out.push([s, e]);
    }
    return out;
  }

  /** Pages of [start, end) inside ranges. */
  covered(start: number, end: number): number {
    let n = 0;
    for (const [s, e] of this.pieces(start, end)) n += e - s;
    return n;
  }

  /** True when a range starts at `start` and one (maybe the same) ends at `end`. */
  bounds(start: number, end: number): boolean {
    const i = this.firstEndingAfter(start);
    const j = this.firstEndingAfter(end - 1);
    return i < this.starts.length && this.starts[i] === start && j < this.ends.length && this.ends[j] === end;
  }

  /** Adds [start, end); the caller guarantees it overlaps nothing. */
  add(start: number, end: number): void {
    const i = this.firstEndingAfter(start);
    this.starts.splice(i, 0, start);
    this.ends.splice(i, 0, end);
  }

  /** Removes [start, end), splitting ranges it cuts. */
  remove(start: number, end: number): void {
    let i = this.firstEndingAfter(start);
    while (i < this.starts.length && this.starts[i] < end) {
      const s = this.starts[i], e = this.ends[i];
      // What survives of the cut range: its part below `start`, its part above `end`.
      const below = s < start, above = e > end;
      const keptStarts = [...(below ? [s] : []), ...(above ? [end] : [])];
      const keptEnds = [...(below ? [start] : []), ...(above ? [e] : [])];
      this.starts.splice(i, 1, ...keptStarts);
      this.ends.splice(i, 1, ...keptEnds);
      i += keptStarts.length;
    }
  }

  clear(): void {
    this.starts.length = this.ends.length = 0;
  }
}
