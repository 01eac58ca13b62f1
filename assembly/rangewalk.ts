// Range walk: the present leaf mappings of a second-level table over an IOVA
// range, for shadow sync (a VMM re-reading exactly what an invalidation
// covers). Pure: reads guest memory, touches no unit state but counters, and
// only its own (`rangeWalk.*`): the `walk.*` counters count request walks.
//
// Depth-first over the tables from `table` (`levels` levels), visiting only
// the entries whose span overlaps [start, end), descending only into present,
// well-formed non-leaf entries (a not-present entry prunes its whole subtree,
// so a sparse 1 TiB space costs what is mapped). Each present, well-formed
// leaf is written to the output block as one record:
//
//   0: u64 iova of the leaf's page (aligned to its size)   8: u64 frame address
//  16: u32 level (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB)         20: u32 W << 1 | R (AND over the path)
//  24: u64 reserved (0)
//
// Each entry is classified by `classifyEntry` (slpte.ts), the rule the request
// walk uses too. Entries that would fault a request (reserved bits, unreadable
// tables) map nothing and are counted in `rwBad`; a path whose rights AND to
// nothing (e.g. write-only under read-only) maps nothing either.
//
// The work of one call is bounded, whatever the tables hold: it stops when the
// block fills (`cap` records) or when it has read `budget` entries, and
// `rwResume` holds the IOVA to continue from; otherwise `rwResume` = end. A
// hostile table (one page whose entries all point at itself: 512^levels
// leaves; or 512-way fan-out onto an empty table: 512^levels entries read and
// no leaf) therefore costs a caller only what it asks for. The budget is
// checked only at an entry past `start`, so every stop makes progress: a call
// resumed from `rwResume` never repeats the previous one. It reads at most
// `budget + levels - 1` entries (the descent back to `start` comes first).

import { count, countN, C_RANGE_WALKS, C_RANGE_WALK_ENTRIES } from "./counters";
import { unitRead64, memError } from "./guestmem";
import { SL_RW_MASK, SL_INDEX_MASK, SLE_LEAF, SLE_NOT_PRESENT, SLE_RESERVED, classifyEntry, levelShift, slEntryAddr } from "./slpte";
import { RANGE_RECORD, RREC_FRAME, RREC_IOVA, RREC_LEVEL, RREC_RIGHTS } from "./abi";

/** IOVA to resume from (== end when the range was walked completely). */
export let rwResume: u64 = 0;
/** Entries read during the last walk (at most its budget + levels - 1). */
export let rwEntries: u32 = 0;
/** Present entries that map nothing because a request through them would fault. */
export let rwBad: u32 = 0;

/**
 * Walks [start, end) (end exclusive; 0 means 2^64), reading about `budget`
 * entries at most, and writes at most `cap` records at `out`. Returns the
 * number written.
 */
export function rangeWalk(table: u64, levels: u32, start: u64, end: u64, out: usize, cap: u32, budget: u32): u32 {
  rwEntries = 0;
  rwBad = 0;
  rwResume = end;
  if (levels < 1 || levels > 5) return 0;
  count(C_RANGE_WALKS);
  // The explicit stack of the depth-first walk: per level, the table and the
  // next index to visit; the rights accumulated above it.
  const tables = memory.data(8 * 6);
  const nexts = memory.data(4 * 6);
  const rights = memory.data(8 * 6);
  const topShift: u64 = <u64>levelShift(levels + 1);
  // Nothing at or above 2^levelShift(levels + 1) is reachable through the top table.
  const reach: u64 = topShift >= 64 ? 0 : <u64>1 << topShift;
  if (reach != 0 && start >= reach) return 0;
  store<u64>(tables + (<usize>levels << 3), table);
  store<u32>(nexts + (<usize>levels << 2), <u32>((start >> levelShift(levels)) & SL_INDEX_MASK));
  store<u64>(rights + (<usize>levels << 3), SL_RW_MASK);
  let level = levels;
  let base: u64 = reach == 0 ? 0 : start & ~(reach - 1); // IOVA of the current table's first entry
  let n: u32 = 0;
  while (level <= levels) {
    const shift: u32 = levelShift(level);
    const idx = load<u32>(nexts + (<usize>level << 2));
    const at: u64 = base + (<u64>idx << shift);
    if (idx >= 512 || (end != 0 && at >= end) || (reach != 0 && level == levels && at >= reach)) {
      // This table is done: back to its parent, past the entry that led here.
      level++;
      if (level > levels) break;
      base &= ~((<u64>1 << levelShift(level + 1)) - 1);
      store<u32>(nexts + (<usize>level << 2), load<u32>(nexts + (<usize>level << 2)) + 1);
      continue;
    }
    if (n >= cap || (rwEntries >= budget && at > start)) {
      rwResume = at < start ? start : at;
      countN(C_RANGE_WALK_ENTRIES, rwEntries);
      return n;
    }
    const entry = unitRead64(load<u64>(tables + (<usize>level << 3)) + (<u64>idx << 3));
    rwEntries++;
    store<u32>(nexts + (<usize>level << 2), idx + 1);
    if (memError) {
      rwBad++;
      continue;
    }
    const kind = classifyEntry(entry, level);
    if (kind == SLE_NOT_PRESENT) continue; // the whole span maps nothing
    if (kind == SLE_RESERVED) {
      rwBad++;
      continue;
    }
    const rw = load<u64>(rights + (<usize>level << 3)) & entry & SL_RW_MASK;
    if (rw == 0) continue; // no right survives the path: nothing below is reachable
    if (kind == SLE_LEAF) {
      const r = out + <usize>n * RANGE_RECORD;
      store<u64>(r, at, RREC_IOVA);
      store<u64>(r, slEntryAddr(entry), RREC_FRAME);
      store<u32>(r, level, RREC_LEVEL);
      store<u32>(r, <u32>rw, RREC_RIGHTS); // R and W are bits 0 and 1 of the entry, as RREC_READ, RREC_WRITE
      store<u64>(r, 0, RREC_RIGHTS + 4);
      n++;
      continue;
    }
    // Descend: the child table covers [at, at + 2^shift).
    store<u32>(nexts + (<usize>level << 2), idx); // resumed +1 when the child is done
    level--;
    store<u64>(tables + (<usize>level << 3), slEntryAddr(entry));
    store<u64>(rights + (<usize>level << 3), rw);
    store<u32>(nexts + (<usize>level << 2), at >= start ? 0 : <u32>((start >> levelShift(level)) & SL_INDEX_MASK));
    base = at;
  }
  countN(C_RANGE_WALK_ENTRIES, rwEntries);
  return n;
}
