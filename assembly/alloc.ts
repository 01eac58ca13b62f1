// Checked allocation on top of the stub runtime.
//
// The stub runtime traps when memory.grow fails. A guest (or a trace) must never
// make the core trap, so every allocation the guest can cause goes through
// `tryAlloc`, which grows linear memory itself first and reports failure as 0.
// The stub never frees: tables are allocated once at configuration time, and
// the only allocations that follow are guest frames and the rehash of the frame
// index (which leaves the old index behind; the sum of abandoned indexes stays
// below the size of the final one).

/** Upper bound on linear memory the core may use, in 64 KiB pages (set by configure). */
let pageBudget: i32 = 65536;

export function setPageBudget(pages: i32): void {
  pageBudget = pages < 1 ? 1 : (pages > 65536 ? 65536 : pages);
}

export function pagesUsed(): i32 {
  return memory.size();
}

/**
 * Allocates `size` bytes aligned to 16, zero-filled, or returns 0 when the
 * budget or the host refuses. Never traps.
 */
export function tryAlloc(size: usize): usize {
  // Room for the stub's block header, alignment and one extra block of slack.
  const probe = heap.alloc(0); // a zero-size block tells where the heap ends
  const needEnd: u64 = <u64>probe + <u64>size + 64;
  const haveEnd: u64 = <u64>memory.size() << 16;
  if (needEnd > haveEnd) {
    const pagesNeeded = <i32>((needEnd - haveEnd + 0xffff) >> 16);
    if (memory.size() + pagesNeeded > pageBudget) return 0;
    if (memory.grow(pagesNeeded) < 0) return 0;
  }
  const p = heap.alloc(size);
  memory.fill(p, 0, size);
  return p;
}
