// Events the unit raises for the host, queued in a ring in linear memory.
//
// Ring header at `eventBase` (16 bytes), then EVENT_CAP records of 32 bytes:
//
//   header   0: u32 count of records waiting   4: u32 capacity   8: u64 dropped (always 0)
//   record   0: u32 kind   4: u32 a   8: u32 b   12: u32 c   16: u64 addr   24: u64 x
//
// The host drains the ring after every call into the core (reads `count`
// records, then stores 0 to `count`). When the ring fills within one call the
// core calls the imported `drainEvents`, which copies the records out to a
// host-side queue (it calls no listener: nothing of the embedder's runs inside
// a core call), so no event is ever lost.
//
// Kinds:
//   EV_FAULT_MSI        fault event interrupt: addr = FEUADDR:FEADDR, a = FEDATA
//   EV_COMPLETION_MSI   invalidation completion interrupt: addr = IEUADDR:IEADDR, a = IEDATA
//   EV_INVALIDATION     an invalidation the unit performed (caching-mode
//                       consumers, shadow sync): a = INV_* kind, b = DID,
//                       c = SID | FM << 16, addr = address, x = AM | IH << 8 | granularity << 16

import { tryAlloc } from "./alloc";
import { EVENT_CAP, EVENT_HEADER, EVENT_RECORD, EVR_A, EVR_ADDR, EVR_B, EVR_C, EVR_KIND, EVR_X, EV_COMPLETION_MSI, EV_FAULT_MSI, EV_INVALIDATION } from "./abi";

// @ts-ignore: decorator
@external("env", "drainEvents")
declare function hostDrainEvents(): void;




export let eventBase: usize = 0;

export function eventsInit(): bool {
  eventBase = tryAlloc(EVENT_HEADER + EVENT_CAP * EVENT_RECORD);
  if (eventBase == 0) return false;
  store<u32>(eventBase, 0);
  store<u32>(eventBase, EVENT_CAP, 4);
  return true;
}

export function pushEvent(kind: u32, a: u32, b: u32, c: u32, addr: u64, x: u64): void {
  let n = load<u32>(eventBase);
  if (n >= EVENT_CAP) {
    hostDrainEvents();
    n = load<u32>(eventBase);
    if (n >= EVENT_CAP) n = 0; // a host that did not drain loses the backlog, never memory safety
  }
  const r = eventBase + EVENT_HEADER + <usize>n * EVENT_RECORD;
  store<u32>(r, kind, EVR_KIND);
  store<u32>(r, a, EVR_A);
  store<u32>(r, b, EVR_B);
  store<u32>(r, c, EVR_C);
  store<u64>(r, addr, EVR_ADDR);
  store<u64>(r, x, EVR_X);
  store<u32>(eventBase, n + 1);
}
