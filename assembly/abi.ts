// The Wasm ABI's numbers: every constant the host needs to call the core and
// to read its answers. The exports themselves are in index.ts.
//
// This file (with the counter indices in counters.ts) is the single source of
// these numbers: scripts/gen-abi.mjs emits src/generated/abi.ts from it at
// every build, and src/core.ts is the only host module that reads it. Only
// `@inline export const NAME: T = EXPR;` declarations belong here (EXPR over
// literals and earlier names), each with its doc comment, which the generator
// carries over.
//
// Shared blocks (their addresses come from the layout* exports, read once):
//
//   result          16 B   u64 value            | u32 word 2        | u32 word 3
//   batch request   16 B   u64 iova             | u32 sid | write   | u32 len
//   batch response  16 B   u64 output address   | u32 status        | u32 split
//   range record    32 B   u64 iova | u64 frame | u32 level | u32 rights | u64 0
//   event ring      header 16 B: u32 count | u32 capacity | u64 dropped (0),
//                   then EVENT_CAP records of 32 B:
//                   u32 kind | u32 a | u32 b | u32 c | u64 addr | u64 x

// ---- configure ---------------------------------------------------------------------

/** Caching mode (CAP.CM). */
// @ts-ignore: decorator
@inline export const FLAG_CM: u32 = 1 << 0;
/** Interrupt remapping (ECAP.IR). */
// @ts-ignore: decorator
@inline export const FLAG_IR: u32 = 1 << 1;
/** Extended interrupt mode, x2APIC (ECAP.EIM). */
// @ts-ignore: decorator
@inline export const FLAG_EIM: u32 = 1 << 2;
/** Pass-through (ECAP.PT). */
// @ts-ignore: decorator
@inline export const FLAG_PT: u32 = 1 << 3;
/** Snoop control (ECAP.SC). */
// @ts-ignore: decorator
@inline export const FLAG_SC: u32 = 1 << 4;
/** Device-TLBs (ECAP.DT). */
// @ts-ignore: decorator
@inline export const FLAG_DT: u32 = 1 << 5;
/** Guest memory is the embedder's, reached through the guestRead/guestWrite imports. */
// @ts-ignore: decorator
@inline export const FLAG_EXTERNAL_MEMORY: u32 = 1 << 6;
/** Protected memory regions (CAP.PLMR, CAP.PHMR). */
// @ts-ignore: decorator
@inline export const FLAG_PMR: u32 = 1 << 7;
/** Posted interrupts (CAP.PI). */
// @ts-ignore: decorator
@inline export const FLAG_PI: u32 = 1 << 8;
/** Scalable mode (ECAP.SMTS; second-stage translation ECAP.SLTS unless only first-stage is offered). */
// @ts-ignore: decorator
@inline export const FLAG_SM: u32 = 1 << 9;
/** First-stage translation (ECAP.FLTS) in place of second-stage, as QEMU's x-flts. Needs FLAG_SM. */
// @ts-ignore: decorator
@inline export const FLAG_FLTS: u32 = 1 << 10;
/** Requests with PASID (ECAP.PASID, PSS 0). Needs FLAG_SM. */
// @ts-ignore: decorator
@inline export const FLAG_PASID: u32 = 1 << 11;
/** Nested translation (ECAP.NEST, with FLTS and SLTS both). Needs FLAG_SM. */
// @ts-ignore: decorator
@inline export const FLAG_NEST: u32 = 1 << 12;

/** configure succeeded. */
// @ts-ignore: decorator
@inline export const CFG_OK: i32 = 0;
/** configure: aw is not 39, 48 or 57. */
// @ts-ignore: decorator
@inline export const CFG_BAD_AW: i32 = 1;
/** configure: nfr is not 1 to 64. */
// @ts-ignore: decorator
@inline export const CFG_BAD_NFR: i32 = 2;
/** configure: the tables do not fit in the memory budget. */
// @ts-ignore: decorator
@inline export const CFG_NO_MEMORY: i32 = 3;
/** configure: the instance was configured already. */
// @ts-ignore: decorator
@inline export const CFG_TWICE: i32 = 4;
/** configure: a scalable-mode flag breaks a rule (flts/pasid/nest without sm, pasid with dt, flts/nest with aw 39). */
// @ts-ignore: decorator
@inline export const CFG_BAD_SM: i32 = 5;

// ---- guest memory (writeGuest, readGuest) ------------------------------------------------

/** Bytes of the staging buffer for one writeGuest or readGuest call. */
// @ts-ignore: decorator
@inline export const IO_SIZE: u32 = 65536;
/** The copy was done. */
// @ts-ignore: decorator
@inline export const MEM_OK: i32 = 0;
/** Some byte is outside the declared guest RAM. */
// @ts-ignore: decorator
@inline export const MEM_OUTSIDE_RAM: i32 = 1;
/** The sparse frame store could not grow within the memory budget. */
// @ts-ignore: decorator
@inline export const MEM_EXHAUSTED: i32 = 2;
/** The length is above IO_SIZE. */
// @ts-ignore: decorator
@inline export const MEM_BAD_LENGTH: i32 = 3;

// ---- request status (translate, translateBatch, probe, remapMsi, remapIoapic) -------------

/** The request completes; the output address is in the result block. */
// @ts-ignore: decorator
@inline export const ST_OK: u32 = 0;
/** Bits 7:0 of a faulting status: the fault reason. */
// @ts-ignore: decorator
@inline export const ST_REASON_MASK: u32 = 0xff;
/** Blocked by a remapping fault; bits 7:0 hold the reason. */
// @ts-ignore: decorator
@inline export const ST_FAULT: u32 = 0x100;
/** With ST_FAULT: fault processing disabled (FPD), nothing recorded or reported. */
// @ts-ignore: decorator
@inline export const ST_FPD: u32 = 0x200;
/** Blocked without a remapping fault (a read of the interrupt range, a protected range). */
// @ts-ignore: decorator
@inline export const ST_BLOCKED: u32 = 0x400;
/** A write to 0xFEEx_xxxx: an interrupt request, not a memory access (ok, output = input). */
// @ts-ignore: decorator
@inline export const ST_INTERRUPT: u32 = 0x800;
/** An interrupt remapped through a posted-format IRTE: descriptor address and vector | urgent in the result. */
// @ts-ignore: decorator
@inline export const ST_POSTED: u32 = 0x1000;
/** Not a request at all (host misuse: a length outside 1..MAX_REQUEST_LEN). */
// @ts-ignore: decorator
@inline export const ST_INVALID: u32 = 0x2000;
/** Most bytes of one DMA request (one crossing of a 4 KiB boundary at most). */
// @ts-ignore: decorator
@inline export const MAX_REQUEST_LEN: u32 = 4096;

// ---- translatePasid: the request's attributes ---------------------------------------------

/** translatePasid flags: a write request. */
// @ts-ignore: decorator
@inline export const TREQ_WRITE: u32 = 1;
/** translatePasid flags: a supervisor (privileged) request. */
// @ts-ignore: decorator
@inline export const TREQ_PRIV: u32 = 2;
/** translatePasid flags: an execute request. */
// @ts-ignore: decorator
@inline export const TREQ_EXE: u32 = 4;
/** probe flags: the request has a PASID (the pasid argument). */
// @ts-ignore: decorator
@inline export const TREQ_PASID: u32 = 8;
/** Largest PASID (20 bits). */
// @ts-ignore: decorator
@inline export const PASID_MAX: u32 = 0xfffff;

// ---- the result block (byte offsets) ---------------------------------------------------------

/** u64: the output address, register value, leaf, context word or resume address. */
// @ts-ignore: decorator
@inline export const RESULT_VALUE: u32 = 0;
/** u32: the second answer of a call (leaf level, DID, MSI data, entries read). */
// @ts-ignore: decorator
@inline export const RESULT_WORD2: u32 = 8;
/** u32: the third answer of a call (DID, interrupt index, malformed entries, split). */
// @ts-ignore: decorator
@inline export const RESULT_WORD3: u32 = 12;

// ---- translateBatch ----------------------------------------------------------------------------

/** Requests per translateBatch call. */
// @ts-ignore: decorator
@inline export const BATCH_CAP: u32 = 4096;
/** Bytes of one batch request and of one batch response. */
// @ts-ignore: decorator
@inline export const BATCH_RECORD: u32 = 16;
/** Request: u64 iova. */
// @ts-ignore: decorator
@inline export const BREQ_IOVA: u32 = 0;
/** Request: u32 sid in bits 15:0, BREQ_WRITE for a write. */
// @ts-ignore: decorator
@inline export const BREQ_SID: u32 = 8;
/** Request: the bit of the sid word that makes it a write. */
// @ts-ignore: decorator
@inline export const BREQ_WRITE: u32 = 1 << 16;
/** Request: u32 length in bytes (bits 12:0; with BREQ_PASID, bits 31:24 hold PASID bits 19:12, 23:13 are 0). */
// @ts-ignore: decorator
@inline export const BREQ_LEN: u32 = 12;
/**
 * Request: the bit of the sid word that makes it a request with PASID (scalable mode). The PASID is
 * then split: bits 11:0 in the sid word from BREQ_PASID_LO_SHIFT, bits 19:12 in the length word from
 * BREQ_PASID_HI_SHIFT. A request without it is read exactly as before (one test of this bit).
 */
// @ts-ignore: decorator
@inline export const BREQ_PASID: u32 = 1 << 17;
/** Request with PASID: a supervisor request. */
// @ts-ignore: decorator
@inline export const BREQ_PRIV: u32 = 1 << 18;
/** Request with PASID: an execute request. */
// @ts-ignore: decorator
@inline export const BREQ_EXE: u32 = 1 << 19;
/** Request with PASID: PASID bits 11:0 sit in the sid word from this bit. */
// @ts-ignore: decorator
@inline export const BREQ_PASID_LO_SHIFT: u32 = 20;
/** Request with PASID: PASID bits 19:12 sit in the length word from this bit. */
// @ts-ignore: decorator
@inline export const BREQ_PASID_HI_SHIFT: u32 = 24;
/** Request with PASID: the length bits of the length word. */
// @ts-ignore: decorator
@inline export const BREQ_LEN_MASK: u32 = 0xffffff;
/** Response: u64 output address. */
// @ts-ignore: decorator
@inline export const BRESP_OUT: u32 = 0;
/** Response: u32 status. */
// @ts-ignore: decorator
@inline export const BRESP_STATUS: u32 = 8;
/** Response: u32 split, the bytes at the output address when the two pages' frames are not contiguous, else 0. */
// @ts-ignore: decorator
@inline export const BRESP_SPLIT: u32 = 12;
/** translateBatch's answer when request i is not a request: this bit | i. */
// @ts-ignore: decorator
@inline export const BATCH_BAD_REQUEST: u32 = 0x80000000;

// ---- contextOf: the context word in the result block -----------------------------------------

/** Context word: fault processing disabled. */
// @ts-ignore: decorator
@inline export const CTXW_FPD_BIT: u32 = 1;
/** Context word: translation type (TT) at this shift, 2 bits. */
// @ts-ignore: decorator
@inline export const CTXW_TT_SHIFT: u32 = 2;
/** Context word: the TT field's length. */
// @ts-ignore: decorator
@inline export const CTXW_TT_LEN: u32 = 2;
/** Context word: address width (AW) at this shift, 3 bits; levels = AW + 2. */
// @ts-ignore: decorator
@inline export const CTXW_AW_SHIFT: u32 = 4;
/** Context word: the AW field's length. */
// @ts-ignore: decorator
@inline export const CTXW_AW_LEN: u32 = 3;
/** Context word: bits 63:12 are the second-level table's address. */
// @ts-ignore: decorator
@inline export const CTXW_TABLE_SHIFT: u32 = 12;
/** TT value of a pass-through context. */
// @ts-ignore: decorator
@inline export const CTX_TT_PASSTHROUGH: u32 = 2;

// ---- walkRange records ----------------------------------------------------------------------

/** Records per walkRange call, in the batch response block. */
// @ts-ignore: decorator
@inline export const RANGE_CAP: u32 = BATCH_CAP / 2;
/** Bytes of one range record. */
// @ts-ignore: decorator
@inline export const RANGE_RECORD: u32 = 32;
/** Range record: u64 iova of the leaf. */
// @ts-ignore: decorator
@inline export const RREC_IOVA: u32 = 0;
/** Range record: u64 the frame the leaf maps (its span aligned). */
// @ts-ignore: decorator
@inline export const RREC_FRAME: u32 = 8;
/** Range record: u32 the leaf's level (1: 4 KiB, 2: 2 MiB, 3: 1 GiB, ...). */
// @ts-ignore: decorator
@inline export const RREC_LEVEL: u32 = 16;
/** Range record: u32 rights accumulated on the path, RREC_READ | RREC_WRITE. */
// @ts-ignore: decorator
@inline export const RREC_RIGHTS: u32 = 20;
/** Rights bit: readable. */
// @ts-ignore: decorator
@inline export const RREC_READ: u32 = 1;
/** Rights bit: writable. */
// @ts-ignore: decorator
@inline export const RREC_WRITE: u32 = 2;

// ---- interrupts (remapMsi, remapIoapic) -----------------------------------------------------

/** The interrupt index when the request was not remapped (passed through unchanged). */
// @ts-ignore: decorator
@inline export const NO_INDEX: u32 = 0xffffffff;
/** ST_POSTED: the urgent bit next to the vector in word 2. */
// @ts-ignore: decorator
@inline export const POSTED_URGENT: u32 = 0x100;

// ---- the event ring ---------------------------------------------------------------------------

/** Records in the ring; a full ring is copied out through the drainEvents import. */
// @ts-ignore: decorator
@inline export const EVENT_CAP: u32 = 1024;
/** Bytes of the ring's header (u32 count at 0, u32 capacity at 4, u64 dropped at 8). */
// @ts-ignore: decorator
@inline export const EVENT_HEADER: u32 = 16;
/** Bytes of one record. */
// @ts-ignore: decorator
@inline export const EVENT_RECORD: u32 = 32;
/** Record: u32 kind (EV_*). */
// @ts-ignore: decorator
@inline export const EVR_KIND: u32 = 0;
/** Record: u32 a. */
// @ts-ignore: decorator
@inline export const EVR_A: u32 = 4;
/** Record: u32 b. */
// @ts-ignore: decorator
@inline export const EVR_B: u32 = 8;
/** Record: u32 c. */
// @ts-ignore: decorator
@inline export const EVR_C: u32 = 12;
/** Record: u64 addr. */
// @ts-ignore: decorator
@inline export const EVR_ADDR: u32 = 16;
/** Record: u64 x. */
// @ts-ignore: decorator
@inline export const EVR_X: u32 = 24;
/** Fault event interrupt: addr = FEUADDR:FEADDR, a = FEDATA. */
// @ts-ignore: decorator
@inline export const EV_FAULT_MSI: u32 = 1;
/** Invalidation completion interrupt: addr = IEUADDR:IEADDR, a = IEDATA. */
// @ts-ignore: decorator
@inline export const EV_COMPLETION_MSI: u32 = 2;
/** An invalidation the unit performed: a = INV_*, b = DID, c = SID | FM << EVC_FM_SHIFT, addr, x = AM | IH | granularity. */
// @ts-ignore: decorator
@inline export const EV_INVALIDATION: u32 = 3;
/** EV_INVALIDATION a: the context cache. */
// @ts-ignore: decorator
@inline export const INV_CONTEXT: u32 = 1;
/** EV_INVALIDATION a: the IOTLB. */
// @ts-ignore: decorator
@inline export const INV_IOTLB: u32 = 2;
/** EV_INVALIDATION a: a device-TLB. */
// @ts-ignore: decorator
@inline export const INV_DEVTLB: u32 = 3;
/** EV_INVALIDATION a: the interrupt entry cache. */
// @ts-ignore: decorator
@inline export const INV_IEC: u32 = 4;
/** EV_INVALIDATION a: a PASID-based IOTLB invalidation (descriptor 0x6); c = PASID, granularity 2 or 3. */
// @ts-ignore: decorator
@inline export const INV_PASID_IOTLB: u32 = 5;
/** EV_INVALIDATION a: a PASID-cache invalidation (descriptor 0x7); c = PASID, granularity 0, 1 or 3 (the G field). */
// @ts-ignore: decorator
@inline export const INV_PASID_CACHE: u32 = 6;
/** EV_INVALIDATION c: the function mask's shift (the SID is bits 15:0). */
// @ts-ignore: decorator
@inline export const EVC_FM_SHIFT: u32 = 16;
/** EV_INVALIDATION x: address mask (AM), bits 7:0. */
// @ts-ignore: decorator
@inline export const EVX_AM_MASK: u32 = 0xff;
/** EV_INVALIDATION x: invalidation hint (IH) at this shift. */
// @ts-ignore: decorator
@inline export const EVX_IH_SHIFT: u32 = 8;
/** EV_INVALIDATION x: the granularity at this shift, 2 bits (1 global, 2 domain, 3 page or device). */
// @ts-ignore: decorator
@inline export const EVX_G_SHIFT: u32 = 16;
