/**
 * Every known way QEMU's intel-iommu (7.2, 10) may answer a conformance trace
 * differently from this unit, with why, and how the comparison recognises
 * it. Everything not explained by an entry here must match exactly.
 *
 * Kinds:
 *  - deviation: QEMU departs from the VT-d architecture; we give the
 *    architected answer (`architected`).
 *  - impl-defined: the architecture leaves the answer to the implementation
 *    and the two implementations chose differently.
 *  - window: a cache window (trace-format.md "Open windows"): between a
 *    change and the invalidation that covers it either answer is allowed.
 *    Driver-like traces never observe one; hostile traces may.
 *  - undefined: the trace format leaves the outcome undefined.
 *  - abort: QEMU 7.2 aborts (an assertion) on a valid input; nothing to
 *    compare.
 *
 * After a classified difference the two units may hold different state.
 * `taint` says what may differ from then on: `all` (stop comparing the
 * trace: "diverged at op k"), or register bits (dword offset and mask) whose
 * later differences are attributed to this deviation; everything else is
 * still compared exactly.
 *
 * Detectors (`detect`) get the op, both answers and our unit's state, and
 * check the difference has the deviation's exact shape: a difference that
 * only resembles one (wrong fault reason, no all-ones entry on the path, ...)
 * stays unexplained.
 */
import type { TraceConfig, TraceOp } from '../trace/parse.js';
import type { Iommu } from '../iommu.js';
import type { QemuVersion } from '../qemu/harness.js';
import type { Result } from './results.js';
import { decodeMsi, levelSpan, readIrte, smStaleTranslate, walkDma, type DmaPath, type Irte } from './walk.js';
import {
  REG, DESC_DEVTLB, DESC_IEC, DESC_PC, DESC_PIOTLB, DESC_WAIT, ECTL_IP, FRCD_F, FRCD_PP, FRCD_PV_MASK, FSTS_IQE, FSTS_PFO, FSTS_PPF, GSTS_CFIS,
  WAIT_IF, WAIT_SW, descType, frcdLo, frcdSidDword, frcdTopDword,
} from '../guest/layout.js';

export type DeviationKind = 'deviation' | 'impl-defined' | 'window' | 'undefined' | 'abort';

/** Register bits (32-bit register offset, mask) that may differ after a deviation. */
export type Taint = 'all' | ReadonlyArray<readonly [number, number]>;

export interface Deviation {
  id: string;
  kind: DeviationKind;
  /** The QEMU versions that show it (a run against another version treats it as a new difference). */
  versions: readonly QemuVersion[];
  /** One line. */
  title: string;
  /** What QEMU 7.2 does. */
  qemu: string;
  /** The answer this unit gives instead (for `deviation`: the architected one). */
  architected: string;
  /** Why, with the source (digest section, DESIGN.md, QEMU source). */
  reason: string;
  /** Conformance fixture or scenario showing it, if any. */
  fixture?: string;
  taint: Taint;
}

/** Fault-recording state: FSTS PFO/PPF/FRI (15:8), FECTL.IP, the one FRCD (QEMU has exactly one). */
export const FAULT_REGS: ReadonlyArray<readonly [number, number]> = [
  [REG.FSTS, 0xff00 | FSTS_PPF | FSTS_PFO], [REG.FECTL, ECTL_IP],
  [frcdLo(0), 0xffffffff], [frcdLo(0) + 4, 0xffffffff], [frcdSidDword(0), 0xffffffff], [frcdTopDword(0), 0xffffffff],
];

// ---------------------------------------------------------------- context given to detectors

/** What the comparison knows when a detector runs. */
export interface DetectContext {
  config: TraceConfig;
  op: TraceOp;
  ours?: Result;
  qemu?: Result;
  /** The answer of a unit without caches (the "fresh" answer from memory now). */
  fresh?: Result;
  /** Our unit, state after the op. */
  iommu: Iommu;
  /**
   * Root-table address latched by the last SRTP; interrupt-table register
   * latched by the last SIRTP (as our unit holds it, and as the trace wrote
   * it); IQA latched by the last QIE enable.
   */
  latched: { rta?: bigint; irta?: bigint; irtaWritten?: bigint; iqa?: bigint };
  /** Last value the trace wrote to each 32-bit register. */
  written: ReadonlyMap<number, number>;
  /** The DMA path as our unit reads it now (dma ops; lazily computed). */
  path(): DmaPath | undefined;
  /** The IRTE a remappable msi op names (msi ops; lazily computed). */
  irte(): Irte | undefined;
  /** FRCD 0 before the op: top dword (F, FR, PV), SID dword, FI high dword. */
  frcdBefore: { top: number; sid: number; fi: number };
  /** Scalable mode: devices whose RID_PASID entry has been pass-through (PGTT 100) at some point of the trace. */
  smPassThrough: ReadonlySet<number>;
  /** Which open window covers this request, if any (hostile traces). */
  window(): WindowCause | undefined;
  /** Bits of the 32-bit register at `off` an earlier deviation may have made differ (0: none). */
  tainted(off: number): number;
}

/** Why a cache window is open for a request (set by the window tracker). */
export type WindowCause = 'srtp-te' | 'ctx-dsi' | 'irte' | 'unflushed';

/** A queue descriptor our unit processed (or stopped on), for queue detectors. */
export interface QueueContext {
  config: TraceConfig;
  op: TraceOp;
  lo: bigint;
  hi: bigint;
  /** Our unit accepted it (false: it raised IQE on it). */
  accepted: boolean;
  ram: bigint;
}

/** A 32-bit slice of a register read that differs. */
export interface DwordDiff {
  off: number;
  ours: number;
  qemu: number;
}

export interface Detector {
  /** A dma/msi result line that differs. */
  line?(ctx: DetectContext): boolean;
  /** A dma/msi result line that agrees under the format's rules, but one side names a fault the other does not. */
  silent?(ctx: DetectContext): boolean;
  /** One differing 32-bit slice of a register read. */
  dword?(ctx: DetectContext, d: DwordDiff): boolean;
  /** A descriptor our unit processed (or stopped on). */
  queue?(q: QueueContext): boolean;
}

export interface DeviationDef extends Deviation {
  detect: Detector;
}

// ---------------------------------------------------------------- helpers

const IR_LO = 0xfee00000n, IR_HI = 0xfeefffffn;
const isRights = (f: number | undefined): boolean => f === 0x05 || f === 0x06 || f === 0x85 || f === 0x86;
/** A write-rights fault (legacy 5h, scalable-mode 85h). */
const isWriteFault = (f: number | undefined): boolean => f === 0x05 || f === 0x85;
/** Our reason is `legacy`, or in scalable mode its scalable-mode counterpart `sm` (second-stage entry reserved 7Ah, unreadable 78h). */
const ourReason = (c: DetectContext, legacy: number, sm: number): boolean => c.ours?.fault === legacy || (!!c.config.sm && c.ours?.fault === sm);
const blockedNoFault = (r: Result | undefined): boolean => !!r && r.ok === false && r.fault === undefined;
const u32 = (n: number): number => n >>> 0;

function dmaOp(op: TraceOp): Extract<TraceOp, { op: 'dma' }> | undefined {
  return op.op === 'dma' ? op : undefined;
}

/**
 * Does QEMU's source-id verification refuse `sid` for this IRTE? SVT 01:
 * SID compared under the SQ mask; SVT 10: the bus within QEMU's (reversed,
 * see svt-bus-range-reversed) range.
 */
function qemuSidFails(e: Irte, sid: number): boolean {
  if (e.svt === 1) {
    const ignore = [0, 0x4, 0x6, 0x7][e.sq];
    return ((e.sid ^ sid) & ~ignore & 0xffff) !== 0;
  }
  if (e.svt === 2) {
    const bus = sid >> 8;
    return !((e.sid & 0xff) <= bus && bus <= e.sid >> 8);
  }
  return false;
}

/** Does `entry` lack the right a request in direction `dir` needs? */
const lacksRight = (entry: bigint, dir: 'r' | 'w'): boolean => (entry & (dir === 'w' ? 2n : 1n)) === 0n;

// ---------------------------------------------------------------- the list

const BOTH: readonly QemuVersion[] = ['7.2', '10'];
const ONLY_72: readonly QemuVersion[] = ['7.2'];
const ONLY_10: readonly QemuVersion[] = ['10'];

/**
 * Scalable-mode fault reasons QEMU 10 reports with the legacy code of the
 * same condition (each pair seen on QEMU 10.0.13; a pair not listed stays NEW).
 */
export const SM_LEGACY_REASON: ReadonlyMap<number, number> = new Map([
  [0x39, 0x01], // root entry P clear
  [0x40, 0x09], // a context entry cannot be read (its table beyond RAM)
  [0x41, 0x02], // context entry P clear
  [0x78, 0x07], // a second-stage entry cannot be read
  [0x83, 0x04], // input address beyond the address width
  [0x85, 0x05], // no write permission
  [0x86, 0x06], // no read permission
]);
/** FRCD's FR (fault reason), top dword bits 7:0. */
const FRCD_FR: ReadonlyArray<readonly [number, number]> = [[frcdTopDword(0), 0xff]];

export const DEVIATIONS: readonly DeviationDef[] = [
  {
    id: 'iotlb-hit-rights',
    kind: 'deviation',
    versions: BOTH,
    title: 'rights not checked on an IOTLB hit; the access fails without a recorded fault',
    qemu: 'a request hitting a cached translation whose cached rights forbid it fails with no fault recorded ({"ok":false}, FSTS/FRCD unchanged)',
    architected: 'the rights apply whether or not the translation is cached: fault 5h (write) / 6h (read), recorded',
    reason: 'digest §5.1 step 2 and §11.2 (QEMU-RUN); DESIGN.md deviation 1',
    fixture: 'dev-iotlb-rights',
    taint: FAULT_REGS,
    detect: {
      silent(c) {
        const op = dmaOp(c.op);
        if (!op || !isRights(c.ours?.fault) || !blockedNoFault(c.qemu)) return false;
        // A translation exists (a present leaf) whose rights refuse the access: one QEMU may hold in its IOTLB.
        const p = c.path();
        return p?.leafLevel !== undefined && p.entries.some((e) => e.kind === 'paging' && lacksRight(e.value, op.dir));
      },
    },
  },
  {
    id: 'fault-ip-fsts-only',
    kind: 'deviation',
    versions: BOTH,
    title: 'FECTL.IP re-evaluated only on an FSTS write',
    qemu: 'IP stays set after software clears every F bit (PPF goes 0) until the next write to FSTS',
    architected: 'IP clears as soon as no interrupt condition (PFO, PPF, IQE, ...) remains pending',
    reason: 'digest §6.4 (QEMU-RUN: FECTL stayed 0xc0000000 after F was cleared); DESIGN.md deviation 2',
    fixture: 'dev-fault-event',
    taint: [[REG.FECTL, ECTL_IP]],
    detect: {
      dword(c, d) {
        if (d.off !== REG.FECTL || u32(d.ours ^ d.qemu) !== ECTL_IP || (d.qemu & ECTL_IP) === 0) return false;
        return (c.iommu.mmioRead32(REG.FSTS) & (FSTS_PFO | FSTS_PPF | FSTS_IQE)) === 0;
      },
    },
  },
  {
    id: 'frcd-pv-ffff',
    kind: 'deviation',
    versions: BOTH,
    title: 'FRCD.PV reads 0xffff for page-walk faults of requests without PASID',
    qemu: 'PV (FRCD bits 123:104) = 0xffff with PP = 0 (QEMU records its "no PASID" value, -1, truncated to 16 bits); QEMU 10 still does for rights faults (5h, 6h) and writes PV = 0 for others (3h, 7h)',
    architected: 'PV = 0: the request has no PASID (PV is meaningful only with PP = 1; traces mask it)',
    reason: 'digest §11.3 (QEMU-RUN 0x80ffff0500000018); DESIGN.md deviation 3',
    fixture: 'dev-fault-event',
    taint: [],
    detect: {
      dword(c, d) {
        // PV: hi quadword bits 59:40 = top dword (+12) bits 27:8; PP: dword +8 bit 31.
        if (d.off !== frcdTopDword(0) || u32(d.ours ^ d.qemu) & ~FRCD_PV_MASK) return false;
        return ((d.qemu >>> 8) & 0xfffff) === 0xffff && ((d.ours >>> 8) & 0xfffff) === 0 && (c.iommu.mmioRead32(frcdSidDword(0)) & FRCD_PP) === 0;
      },
    },
  },
  {
    id: 'allones-entry-memory-error',
    kind: 'deviation',
    versions: BOTH,
    title: 'an all-ones paging entry is reported as a memory error',
    qemu: 'a paging entry whose 64 bits are all ones gives 7h (3h at the top level): its read helper returns all ones for a failed read and cannot tell them apart',
    architected: 'the entry is present (R = W = 1) with reserved bits set: Ch',
    reason: 'digest §5.1 steps 7-9, §4.3; DESIGN.md deviation 4',
    fixture: 'dev-memory',
    taint: FAULT_REGS,
    detect: {
      line(c) {
        if (c.op.op !== 'dma' || !ourReason(c, 0x0c, 0x7a) || (c.qemu?.fault !== 0x07 && c.qemu?.fault !== 0x03)) return false;
        return !!c.path()?.entries.some((e) => e.kind === 'paging' && e.value === (1n << 64n) - 1n);
      },
    },
  },
  {
    id: 'large-page-irange',
    kind: 'deviation',
    versions: BOTH,
    title: 'every address of a large page overlapping the interrupt range is blocked',
    qemu: 'a 2 MiB / 1 GiB leaf whose range overlaps 0xfee00000-0xfeefffff blocks every access through it with Eh (QEMU 10 in scalable mode: 87h; seed 171 of the QEMU 10 run)',
    architected: 'only an access whose translated range overlaps the interrupt range is blocked (Eh); the others translate',
    reason: 'digest §5.1 step 11; DESIGN.md deviation 5',
    fixture: 'dev-translation',
    taint: FAULT_REGS,
    detect: {
      line(c) {
        const op = dmaOp(c.op);
        if (!op || !c.ours?.ok || c.ours.gpa === undefined || c.qemu?.ok !== false) return false;
        // Eh, or nothing when the context entry's FPD suppresses it.
        // (In scalable mode QEMU 10 gives the scalable-mode code, 87h.)
        if (!(c.qemu.fault === 0x0e || (c.config.sm && c.qemu.fault === 0x87) || (c.qemu.fault === undefined && c.path()?.context?.fpd))) return false;
        const end = c.ours.gpa + BigInt(op.len) - 1n;
        if (!(end < IR_LO || c.ours.gpa > IR_HI)) return false;
        const p = c.path();
        const leaf = p?.leafLevel !== undefined ? p.entries[p.entries.length - 1] : undefined;
        if (!leaf || p!.leafLevel! < 2) return false;
        const span = levelSpan(p!.leafLevel!);
        const base = leaf.value & 0x000ffffffffff000n & ~(span - 1n);
        return base <= IR_HI && base + span - 1n >= IR_LO;
      },
    },
  },
  {
    id: 'rights-before-reserved',
    kind: 'deviation',
    versions: BOTH,
    title: 'access rights checked before reserved bits',
    qemu: 'walking down, each entry is checked for the needed right before its reserved bits: a present entry that lacks the right gives 5h/6h even when an entry on the walk has reserved bits set',
    architected: 'a malformed entry (reserved bits set) is Ch whatever the access; rights are evaluated only for a well-formed walk',
    reason: 'digest §5.1 steps 8-9 (QEMU order marked (Q)); DESIGN.md deviation 6',
    fixture: 'dev-translation',
    taint: FAULT_REGS,
    detect: {
      line(c) {
        const op = dmaOp(c.op);
        if (!op || !ourReason(c, 0x0c, 0x7a) || !isRights(c.qemu?.fault)) return false;
        if (isWriteFault(c.qemu!.fault) !== (op.dir === 'w')) return false;
        return !!c.path()?.entries.some((e) => e.kind === 'paging' && lacksRight(e.value, op.dir));
      },
    },
  },
  {
    id: 'rights-before-memory-error',
    kind: 'deviation',
    versions: BOTH,
    title: 'access rights checked before the next level is read',
    qemu: 'an entry lacking the needed right ends the walk with 5h/6h before the next level is read, so a lower table that cannot be read (outside RAM) is never reported',
    architected: 'the walk is completed first: an entry that cannot be read gives 7h whatever the access; rights are evaluated for a complete, well-formed walk (the same order as for reserved bits)',
    reason: 'digest §5.1 steps 7-8 (QEMU order marked (Q)) and §12 point 4 (precedence not documented beyond QEMU); DESIGN.md "Reserved bits before rights" and deviation 6',
    taint: FAULT_REGS,
    detect: {
      line(c) {
        const op = dmaOp(c.op);
        if (!op || !ourReason(c, 0x07, 0x78) || !isRights(c.qemu?.fault)) return false;
        if (isWriteFault(c.qemu!.fault) !== (op.dir === 'w')) return false;
        const p = c.path();
        return p?.stop === 'memory' && p.entries.some((e) => e.kind === 'paging' && lacksRight(e.value, op.dir));
      },
    },
  },
  {
    id: 'iqa-latched',
    kind: 'deviation',
    versions: BOTH,
    title: 'IQA reads back the queue base latched at the last QIE enable',
    qemu: 'IQA returns the base latched when QI was last enabled, with the current QS; a base written since is not returned; DW: 7.2 never returns it, 10 returns it as last written (also in legacy mode, where it is reserved)',
    architected: 'IQA is a read/write register: it reads back as written',
    reason: 'digest §11.1 (QEMU-RUN: after writing 0x456807, reads 0x7 before QIE and 0x456007 after); DESIGN.md deviation 7; QEMU 10.0.13, hostile seed 68: IQA written 0xa308a0c reads 0x180804',
    fixture: 'dev-queue-regs',
    taint: [],
    detect: {
      dword(c, d) {
        const latched = c.latched.iqa ?? 0n;
        // QEMU 10 also returns DW (bit 11) as last written, even in legacy mode where it is reserved.
        const dw = (c.written.get(REG.IQA) ?? 0) & 0x800;
        if (d.off === REG.IQA) return (d.qemu & 0x7) === (d.ours & 0x7) && u32(d.qemu & ~0xfff) === u32(Number(latched & 0xfffff000n)) && (d.qemu & 0x7f8) === 0 && (d.qemu & 0x800) <= dw;
        if (d.off === REG.IQA + 4) return d.qemu === Number(latched >> 32n);
        return false;
      },
    },
  },
  {
    id: 'uaddr-read-only',
    kind: 'deviation',
    versions: BOTH,
    title: 'FEUADDR and IEUADDR are read-only 0 even with EIM',
    qemu: 'writes to FEUADDR (0x44) and IEUADDR (0xac) are ignored; both read 0',
    architected: 'with ECAP.EIM they hold the upper 32 bits of the event message address (x2APIC destinations) and read back as written',
    reason: 'digest §1.1 and §11.1; DESIGN.md deviation 8',
    fixture: 'dev-queue-regs',
    taint: [],
    detect: {
      dword(c, d) {
        return (d.off === REG.FEUADDR || d.off === REG.IEUADDR) && c.config.eim && d.qemu === 0 && d.ours === (c.written.get(d.off) ?? 0);
      },
    },
  },
  {
    id: 'wait-no-sw-no-if',
    kind: 'deviation',
    versions: BOTH,
    title: 'a wait descriptor with neither SW nor IF is rejected (IQE)',
    qemu: 'an invalidation-wait descriptor with SW = IF = 0 is an invalid descriptor: IQE, IQH stays on it',
    architected: 'a valid wait (a fence with no completion signal): processed, the queue goes on',
    reason: 'digest §7.5 (wait semantics) and §11.4; DESIGN.md deviation 9',
    fixture: 'dev-queue-regs',
    taint: 'all',
    detect: {
      queue(q) {
        return q.accepted && descType(q.lo) === DESC_WAIT && (q.lo & (WAIT_IF | WAIT_SW)) === 0n;
      },
    },
  },
  {
    id: 'wait-sw-and-if-abort',
    kind: 'abort',
    versions: ONLY_72,
    title: 'a wait descriptor with both SW and IF aborts QEMU',
    qemu: 'assertion failure in vtd_process_wait_desc: QEMU dies',
    architected: 'the status is written, then the completion event is raised',
    reason: 'digest §11.4 (QEMU-RUN); DESIGN.md deviation 10',
    fixture: 'qemu-aborts/wait-sw-and-if',
    taint: 'all',
    detect: {
      queue(q) {
        return q.accepted && descType(q.lo) === DESC_WAIT && (q.lo & (WAIT_IF | WAIT_SW)) === (WAIT_IF | WAIT_SW);
      },
    },
  },
  {
    id: 'eight-byte-write-abort',
    kind: 'abort',
    versions: BOTH,
    title: '8-byte writes to 0x38, 0xa0 or 0xa8 abort QEMU',
    qemu: 'assert(size == 4) in the register write handler: QEMU dies',
    architected: 'two 4-byte writes, low dword first',
    reason: 'digest §11.1 (QEMU-RUN for 0x38); DESIGN.md deviation 11',
    fixture: 'test/core/iommu.test.ts',
    taint: 'all',
    detect: {},
  },
  {
    id: 'ccmd-domain-as-global',
    kind: 'deviation',
    versions: BOTH,
    title: 'domain-selective context-cache invalidation performed and reported as global',
    qemu: 'CIRG = 10 invalidates every context entry and reads back CAIG = 01 (global)',
    architected: 'performed as domain-selective: CAIG = 10 (invalidating more is allowed, so only the reported granularity differs)',
    reason: 'digest §7.2 and §11.4; DESIGN.md deviation 12',
    fixture: 'invalidate-registers (masked)',
    taint: [],
    detect: {
      dword(_c, d) {
        // CCMD bits 60:59 (CAIG) = upper dword bits 28:27.
        return d.off === REG.CCMD + 4 && u32(d.ours ^ d.qemu) === 0x18000000 && ((d.ours >>> 27) & 3) === 2 && ((d.qemu >>> 27) & 3) === 1;
      },
    },
  },
  {
    id: 'ir-fault-not-recorded',
    kind: 'deviation',
    versions: ONLY_72,
    title: 'interrupt-remapping faults are never recorded',
    qemu: 'a blocked interrupt request is dropped and nothing is recorded (codes 20h-26h never reach FRCD; "TODO: report error")',
    architected: 'recorded like a DMA fault (FI = interrupt index << 48, FR 20h-26h, SID), IRTE FPD honoured for 22h, 24h, 26h',
    reason: 'digest §5.3 and §11.3; DESIGN.md deviation 13',
    fixture: 'dev-ir-faults',
    taint: FAULT_REGS,
    detect: {
      silent(c) {
        const f = c.ours?.fault;
        return c.op.op === 'msi' && f !== undefined && f >= 0x20 && f <= 0x26 && blockedNoFault(c.qemu);
      },
    },
  },
  {
    id: 'ir-fault-reason-unlogged',
    kind: 'impl-defined',
    versions: ['10'],
    title: 'the reason of an interrupt-remapping fault that is not recorded cannot be seen on QEMU 10',
    qemu: 'blocks the interrupt; when no fault record is written (FPD, or the one FRCD still holds a fault) it logs no event naming the reason: the harness reads {"ok":false}',
    architected: 'the same request blocked with its reason (20h-26h) and, as on QEMU, nothing recorded',
    reason: 'a limit of observation, not a departure: QEMU 10 names the reason only in the fault record (trace event vtd_frr_new); whenever our unit records the fault, QEMU must record the same one, and does',
    taint: [],
    detect: {
      silent(c) {
        const op = c.op;
        const f = c.ours?.fault;
        if (op.op !== 'msi' || f === undefined || f < 0x20 || f > 0x26 || !blockedNoFault(c.qemu)) return false;
        // Our unit did not record this fault either: FRCD 0 does not hold it, or it overflowed (PFO);
        // or an earlier deviation left the two fault-recording states different, so whether QEMU had
        // a free record for it is not known.
        // The record is this request's when F, FR, SID and FI (the interrupt index, bits 63:48) match; an
        // identical earlier record still pending cannot be told apart from a new one (then accepted).
        const top = c.iommu.mmioRead32(frcdTopDword(0)), sidDw = c.iommu.mmioRead32(frcdSidDword(0));
        const fi = c.iommu.mmioRead32(frcdLo(0) + 4) >>> 16;
        const index = decodeMsi(op.addr, op.data).index;
        const holds = (top & FRCD_F) !== 0 && (top & 0xff) === f && (sidDw & 0xffff) === op.sid && (index === undefined || fi === index);
        // An identical record already pending before this request: our unit collapsed the fault into it (no PFO).
        const b = c.frcdBefore;
        const earlier = holds && (b.top & FRCD_F) !== 0 && b.top === top && b.sid === sidDw && b.fi >>> 16 === fi;
        return !holds || earlier || (c.iommu.mmioRead32(REG.FSTS) & FSTS_PFO) !== 0 || c.tainted(frcdTopDword(0)) !== 0;
      },
    },
  },
  {
    id: 'irte-svt-11-sid-failure',
    kind: 'deviation',
    versions: ['10'],
    title: 'IRTE SVT = 11 (reserved) reported as a source-id verification failure',
    qemu: 'blocks with 26h ("detected invalid IRTE SVT"); QEMU 7.2 does the same but never records it (ir-fault-not-recorded)',
    architected: 'SVT = 11 is a reserved encoding in a present IRTE: blocked, 24h',
    reason: 'digest §9.5 (SVT 11 reserved; QEMU: 26h) and §11.5; seen on QEMU 10.0.13 (driver seed 143: IRTE high 0xc0000)',
    taint: FAULT_REGS,
    detect: {
      line(c) {
        if (c.op.op !== 'msi' || c.ours?.ok !== false || c.ours.fault !== 0x24 || c.qemu?.ok !== false || c.qemu.fault !== 0x26) return false;
        const e = c.irte();
        // Nothing else of what QEMU checks as reserved (bits 14:12, 31:24, 127:84) may be set.
        return !!e && e.present && e.svt === 3 && (e.lo & 0xff007000n) === 0n && (e.hi >> 20n) === 0n;
      },
    },
  },
  {
    id: 'cfi-ignored',
    kind: 'deviation',
    versions: BOTH,
    title: 'GCMD.CFI ignored: GSTS.CFIS never set',
    qemu: 'writing CFI = 1 leaves GSTS.CFIS = 0',
    architected: 'GSTS.CFIS follows GCMD.CFI',
    reason: 'digest §1.3 and §11.1; DESIGN.md deviation 14',
    fixture: 'dev-ir-faults',
    taint: [[REG.GSTS, GSTS_CFIS]],
    detect: {
      dword(_c, d) {
        return d.off === REG.GSTS && u32(d.ours ^ d.qemu) === GSTS_CFIS && (d.ours & GSTS_CFIS) !== 0;
      },
    },
  },
  {
    id: 'compat-never-blocked',
    kind: 'deviation',
    versions: BOTH,
    title: 'compatibility-format interrupts are never blocked',
    qemu: 'with remapping enabled a compatibility-format request always passes through unchanged (CFIS and EIME not consulted: no 25h ever)',
    architected: 'blocked with 25h unless GSTS.CFIS = 1 and IRTA.EIME = 0',
    reason: 'digest §9.6 and §11.5; DESIGN.md deviation 14',
    fixture: 'dev-ir-faults',
    taint: FAULT_REGS,
    detect: {
      line(c) {
        const op = c.op;
        if (op.op !== 'msi' || c.ours?.fault !== 0x25 || !c.qemu?.ok) return false;
        return c.qemu.addr === op.addr && c.qemu.data === op.data && !decodeMsi(op.addr, op.data).remappable;
      },
    },
  },
  {
    id: 'svt-bus-range-reversed',
    kind: 'deviation',
    versions: BOTH,
    title: 'SVT = 10 bus range read as end/start',
    qemu: 'takes IRTE.SID[15:8] as the highest and SID[7:0] as the lowest allowed bus',
    architected: 'start bus = SID[15:8], end bus = SID[7:0] (Linux set_irte_verify_bus, FreeBSD)',
    reason: 'digest §9.5 (DISAGREE) and §11.5; DESIGN.md deviation 15',
    fixture: 'dev-ir-faults',
    taint: FAULT_REGS,
    detect: {
      line(c) {
        const op = c.op;
        if (op.op !== 'msi') return false;
        const e = c.irte();
        if (!e || !e.present || e.svt !== 2) return false;
        const bus = op.sid >> 8, hiB = e.sid >> 8, loB = e.sid & 0xff;
        const arch = hiB <= bus && bus <= loB;
        const qemu = loB <= bus && bus <= hiB;
        if (arch === qemu) return false;
        // The side that verifies the source passes, the other blocks it (26h for us, or nothing with the IRTE's FPD).
        return arch ? !!c.ours?.ok && c.qemu?.ok === false : c.ours?.ok === false && (c.ours.fault === 0x26 || (c.ours.fault === undefined && e.fpd)) && !!c.qemu?.ok;
      },
    },
  },
  {
    id: 'irte-reserved-ignored',
    kind: 'deviation',
    versions: BOTH,
    title: 'IRTE IM (posted) and xAPIC-mode DST bits 39:32, 63:48 ignored',
    qemu: 'delivers the interrupt, using DST bits 47:40 and ignoring IM',
    architected: 'reserved bits of a present IRTE: blocked, 24h (IM = 1 needs CAP.PI; in xAPIC mode DST bits 39:32 and 63:48 are reserved)',
    reason: 'digest §9.2 and §11.5 (UNSURE for the DST bits; Linux writes dest << 8); DESIGN.md deviation 16',
    fixture: 'dev-ir-faults',
    taint: FAULT_REGS,
    detect: {
      line(c) {
        const op = c.op;
        if (op.op !== 'msi' || c.ours?.ok !== false || !c.qemu) return false;
        const e = c.irte();
        // 24h, or nothing when the IRTE's FPD suppresses it.
        if (!e || !(c.ours.fault === 0x24 || (c.ours.fault === undefined && e.fpd))) return false;
        // QEMU goes on with the checks the reserved bits would have stopped: it delivers, or (QEMU 10,
        // which records interrupt faults) blocks on source-id verification, 26h (nothing with FPD).
        if (!c.qemu.ok && !(qemuSidFails(e, op.sid) && (c.qemu.fault === 0x26 || (c.qemu.fault === undefined && e.fpd)))) return false;
        const eime = ((c.latched.irta ?? 0n) >> 11n & 1n) === 1n;
        const xapicRsvd = !eime && (e.dst & 0xffff00ffn) !== 0n;
        // Everything else QEMU checks (bits 14:12, 31:24, 127:84) must be clear, or QEMU would block too.
        const qemuRsvd = (e.lo & 0xff007000n) !== 0n || (e.hi & ~0xfffffn & ((1n << 64n) - 1n)) !== 0n;
        return (e.im || xapicRsvd) && !qemuRsvd;
      },
    },
  },
  {
    id: 'iec-desc-unchecked',
    kind: 'deviation',
    versions: BOTH,
    title: 'interrupt-entry-cache descriptors are never checked',
    qemu: 'a descriptor of type 0x4 is accepted whatever its reserved bits (QW0 26:5, 63:48, QW1) and its IM (even above ECAP.MHMV)',
    architected: 'reserved bits set, or IM > MHMV in an index-selective one: invalid descriptor, IQE with IQH on it',
    reason: 'digest §7.5-7.6 ("Descriptor 0x4 is never checked" [QEMU]); every other type QEMU checks for reserved bits',
    taint: 'all',
    detect: {
      queue: (q) => !q.accepted && descType(q.lo) === DESC_IEC,
    },
  },
  {
    id: 'devtlb-pfsid-reserved',
    kind: 'deviation',
    versions: BOTH,
    title: 'device-TLB invalidation descriptors with a PFSID are rejected',
    qemu: 'treats the PFSID fields of descriptor 0x3 (QW0 bits 15:12 and 63:52) as reserved: IQE, IQH stays on it',
    architected: 'PFSID (the physical function\'s source id, for SR-IOV virtual functions) is a field of the descriptor: valid, the descriptor completes',
    reason: 'digest §7.5 (0x3: 15:12 PFSID[3:0], 63:52 PFSID[15:4]) and §7.6 [QEMU] (QW0 mask 0xffff0000ffe0fff8 "treats the PFSID bits as reserved")',
    taint: 'all',
    detect: {
      queue: (q) => q.accepted && descType(q.lo) === DESC_DEVTLB && (q.lo & 0xfff000000000f000n) !== 0n, // PFSID 63:52, 15:12
    },
  },
  {
    id: 'qi-disable-needs-wait',
    kind: 'deviation',
    versions: BOTH,
    title: 'disabling queued invalidation is ignored unless the last descriptor was a wait',
    qemu: 'GCMD.QIE = 0 is ignored (GSTS.QIES stays 1) unless IQH == IQT and the last descriptor processed was an invalidation wait',
    architected: 'QI may be disabled whenever the queue is idle (IQH == IQT); QIES clears',
    reason: 'digest §7.4 ("Disable: only when IQH == IQT (and the last descriptor was a wait, in QEMU)") and §11.1',
    taint: 'all',
    detect: {},
  },
  {
    id: 'qi-disable-busy',
    kind: 'undefined',
    versions: BOTH,
    title: 'queued invalidation disabled while the queue is not idle',
    qemu: 'ignores the disable (QIES stays 1)',
    architected: 'QIES clears (disabling is legal only when IQH == IQT: software must not do this, the outcome is not defined)',
    reason: 'digest §1.3 (QIE: "Disabling is legal only when the queue is idle (IQH==IQT)") and §7.4',
    taint: 'all',
    detect: {},
  },
  {
    id: 'iqe-resume-on-clear',
    kind: 'deviation',
    versions: BOTH,
    title: 'after a queue error the queue restarts only at the next tail write',
    qemu: 'clearing FSTS.IQE does not restart processing; the queue runs again at the next write to IQT',
    architected: 'IQE only stops fetching while it is set: once software clears it the unit fetches again from IQH',
    reason: 'digest §7.6 (no further descriptors are fetched until software clears IQE; Linux qi_check_fault clears IQE and waits) and §11.4; DESIGN.md "Queued invalidation". Traces that write IQT right after clearing IQE see no difference',
    fixture: 'dev-queue-regs',
    taint: 'all',
    detect: {},
  },
  {
    id: 'eime-without-eim',
    kind: 'deviation',
    versions: BOTH,
    title: 'IRTA.EIME latched although the unit has no EIM',
    qemu: 'SIRTP latches IRTA bit 11 (EIME) even with eim=off: interrupts are then remapped in x2APIC mode (32-bit destination from IRTE bits 63:32)',
    architected: 'EIME is settable only with ECAP.EIM; without it the bit is reserved (reads 0) and remapping stays in xAPIC mode (destination from IRTE bits 47:40)',
    reason: 'digest §9.1 (EIME "settable only if ECAP.EIM") and §11.1 (SIRTP latches size, EIME, address)',
    taint: FAULT_REGS,
    detect: {
      line(c) {
        const op = c.op;
        if (op.op !== 'msi' || c.config.eim || !(((c.latched.irtaWritten ?? 0n) >> 11n) & 1n) || !c.qemu?.ok) return false;
        const e = c.irte();
        if (!e?.present) return false;
        // QEMU's answer is the x2APIC reading of the same IRTE.
        const dest = e.dst & 0xffffffffn;
        const addr = 0xfee00000n | ((dest & 0xffn) << 12n) | (((e.lo >> 3n) & 1n) << 3n) | (((e.lo >> 2n) & 1n) << 2n) | ((dest & 0xffffff00n) << 32n);
        return c.qemu.addr === addr;
      },
    },
  },
  {
    id: 'desc-pasid-types-accepted',
    kind: 'deviation',
    versions: ONLY_72,
    title: 'descriptor types 0x6 and 0x7 accepted and ignored in legacy mode',
    qemu: 'PASID-based IOTLB (0x6) and PASID-cache (0x7) descriptors complete with no effect (QEMU 10 raises IQE on them, as architected)',
    architected: 'they need scalable mode: invalid descriptor, IQE',
    reason: 'digest §7.5-7.6 and §11.4; DESIGN.md deviation 17',
    fixture: 'test/core/properties.test.ts',
    taint: 'all',
    detect: {
      queue(q) {
        const t = descType(q.lo);
        return !q.accepted && (t === DESC_PIOTLB || t === DESC_PC);
      },
    },
  },
  {
    id: 'irange-read-completes',
    kind: 'deviation',
    versions: BOTH,
    title: 'a DMA read of the interrupt address range completes',
    qemu: 'a read request to 0xfee00000-0xfeefffff is neither translated nor faulted: it completes (with no defined data)',
    architected: 'the range is not memory: a read of it is blocked (unsupported request), no remapping fault',
    reason: 'digest §5.1 step 0 (QEMU behaviour marked (Q)); DESIGN.md "The request path" (read: blocked, no fault)',
    taint: [],
    detect: {
      line(c) {
        const op = dmaOp(c.op);
        if (!op || op.dir !== 'r' || op.iova < IR_LO || op.iova + BigInt(op.len) - 1n > IR_HI) return false;
        return blockedNoFault(c.ours) && !!c.qemu?.ok && c.qemu.gpa === op.iova;
      },
    },
  },
  {
    id: 'iedata-32-bits',
    kind: 'deviation',
    versions: BOTH,
    title: 'IEDATA keeps all 32 bits',
    qemu: 'IEDATA bits 31:16 are writable and read back',
    architected: 'bits 31:16 (extended interrupt message data) are read-only 0 without 32-bit MSI data support, as in FEDATA',
    reason: 'digest §1.1 (FEDATA: EIMD RW only if 32-bit MSI data is supported; IEDATA has the same layout; QEMU column: "all 32 bits writable")',
    taint: [],
    detect: {
      dword(c, d) {
        const w = c.written.get(REG.IEDATA) ?? 0;
        return d.off === REG.IEDATA && (d.ours & 0xffff0000) === 0 && (d.qemu & 0xffff) === d.ours && u32(d.qemu & 0xffff0000) === u32(w & 0xffff0000);
      },
    },
  },
  {
    id: 'reg-unimplemented-bits',
    kind: 'impl-defined',
    versions: BOTH,
    title: 'RTADDR, IRTA and IQA bits the configuration does not define',
    qemu: 'stores and returns RTADDR bits 63:10, IRTA bits 63:12, 11, 3:0 and IQA bits 63:12, 11, 2:0 whatever the address width and features (masking addresses to the host address width only when latching them)',
    architected: 'only the bits the configuration defines are implemented (address bits below aw, IRTA.EIME with EIM, IQA.DW with scalable mode, RTADDR.TTM with scalable mode); the others read 0',
    reason: 'digest §1.1 and §11.1 ("RTADDR / IRTA read-back: exactly as written (incl. bits above HAW)"); DESIGN.md "Registers" (RTADDR, IQA, IRTA). Bits above the host address width are not implemented by hardware',
    taint: [],
    detect: {
      dword(c, d) {
        if (![REG.RTADDR, REG.RTADDR + 4, REG.IRTA, REG.IRTA + 4, REG.IQA, REG.IQA + 4].includes(d.off)) return false;
        const w = c.written.get(d.off) ?? 0;
        const x = u32(d.ours ^ d.qemu);
        // QEMU keeps what was written in the bits that differ; ours reads them 0.
        return (d.ours & x) === 0 && u32(d.qemu & x) === u32(w & x);
      },
    },
  },
  {
    id: 'sm-legacy-fault-reasons',
    kind: 'deviation',
    versions: ONLY_10,
    title: 'scalable mode: legacy fault reasons for root, context, address-width and rights faults',
    qemu: 'with RTADDR.TTM = 01 a root entry with P clear gives 1h, a context entry it cannot read 9h, a context entry with P clear 2h, a second-stage entry it cannot read 7h, an address beyond the width 4h, a missing right 5h/6h (in the result and in FRCD.FR)',
    architected: 'the scalable-mode reasons of the same conditions: 39h, 40h, 41h, 78h, 83h, 85h/86h',
    reason: 'digest §5.4 (the scalable-mode table; Linux dma_remap_sm_fault_reasons); trace-format.md "Scalable mode" (reasons not compared where QEMU 10 gives legacy codes); QEMU 10.0.13, vtd conform --qemu --qemu-version 10 driver-like seeds 59 (39h/1h), 879 (40h/9h), 127 (41h/2h), 130 (83h/4h, 86h/6h, 78h/7h), 182 (85h/5h); fixtures qemu10/sm/',
    fixture: 'qemu10/sm/sm-legacy-reasons',
    taint: FRCD_FR,
    detect: {
      line(c) {
        if (!c.config.sm || c.op.op !== 'dma' || c.ours?.ok !== false || c.qemu?.ok !== false) return false;
        return c.ours.fault !== undefined && SM_LEGACY_REASON.get(c.ours.fault) === c.qemu.fault;
      },
      dword(c, d) {
        // FR read back from the fault record before any taint was set (a fault recorded without a result line).
        if (!c.config.sm || d.off !== frcdTopDword(0) || u32(d.ours ^ d.qemu) & ~0xff) return false;
        return SM_LEGACY_REASON.get(d.ours & 0xff) === (d.qemu & 0xff);
      },
    },
  },
  {
    id: 'sm-pasid-entry-type-before-present',
    kind: 'deviation',
    versions: ONLY_10,
    title: 'scalable mode: a PASID entry\'s PGTT checked before its P bit',
    qemu: 'a PASID entry with P clear whose PGTT the unit does not offer (an all-zero entry: PGTT 000) gives 5Bh, "invalid PASID entry"',
    architected: 'P clear: 59h whatever the other fields hold (they are ignored when P = 0)',
    reason: 'digest §5.4 (59h: PASID entry P clear); QEMU 10.0.13 checks the type in vtd_get_pe_in_pasid_leaf_table before the present bit in vtd_get_pe_from_pasid_table; vtd conform --qemu --qemu-version 10 driver-like seed 127 (PASID entry cleared to zero, then a request)',
    fixture: 'qemu10/sm/sm-pasid-entry-zero',
    taint: FRCD_FR,
    detect: {
      line(c) {
        if (!c.config.sm || c.op.op !== 'dma' || c.ours?.fault !== 0x59 || c.qemu?.fault !== 0x5b) return false;
        const p = c.path();
        const pe = p?.stop === 'not-present' ? p.entries[p.entries.length - 1] : undefined;
        // The walk stopped at the PASID entry (a 'context' kind entry after the directory entry), whose P is clear.
        return !!pe && pe.kind === 'context' && p!.entries.length === 4 && (pe.value & 1n) === 0n;
      },
    },
  },
  {
    id: 'sm-pasid-entry-reserved-unchecked',
    kind: 'deviation',
    versions: ONLY_10,
    title: 'scalable mode: reserved bits of a PASID entry not checked',
    qemu: 'a present PASID entry with reserved bits set (seed 17: QW5 bit 13) is used as if they were clear: the request goes on to the PGTT checks and the walk, and faults (or not) as that walk does (seed 17: 71h, a first-stage entry not present)',
    architected: '5Ah (non-zero reserved field in the PASID table entry), before the PGTT is looked at',
    reason: 'digest §3.6 and §5.4 (5Ah); docs/DESIGN.md "Scalable mode" (reserved bits of the PASID entry, QW3-QW7 included); QEMU 10.0.13 vtd_get_pe_in_pasid_leaf_table checks the type, AW and first-stage paging mode only; vtd conform --qemu --qemu-version 10 driver-like seed 17',
    fixture: 'qemu10/sm/sm-pasid-entry-reserved',
    taint: FRCD_FR,
    detect: {
      line(c) {
        return !!c.config.sm && c.op.op === 'dma' && c.ours?.ok === false && c.ours.fault === 0x5a
          && c.qemu?.ok === false && c.qemu.fault !== undefined && c.qemu.fault !== 0x5a;
      },
    },
  },
  {
    id: 'sm-translation-fault-pp',
    kind: 'deviation',
    versions: ONLY_10,
    title: 'scalable mode: translation faults of requests without PASID recorded with PP = 1',
    qemu: 'a fault found after the PASID entry was read (a paging entry, the address width, rights, the interrupt range) of a request without PASID is recorded with FRCD.PP = 1 and the RID_PASID in PV (seeds 437: PV 0x1fff, 491: PV 5)',
    architected: 'PP = 0: the request had no PASID (the RID_PASID only names the PASID entry used for it)',
    reason: 'digest §6.1 (PP: PASID present in the request); trace-format.md "Requests with and without PASID" (PP = 0 for requests without PASID); QEMU 10.0.13, vtd conform --qemu --qemu-version 10 driver-like seeds 86 (71h, first stage: FRCD 0x8000007180000019 against our 0x8000007100000019), 182 (85h), 107 (86h), 71 (83h), 54 (87h)',
    fixture: 'qemu10/sm/sm-fault-pp',
    taint: [[frcdSidDword(0), FRCD_PP], [frcdTopDword(0), FRCD_PV_MASK]],
    detect: {
      dword(c, d) {
        if (!c.config.sm) return false;
        // Our record: a fault with a paging-entry or translation reason (70h-7Fh, 80h-87h, 90h), recorded without PASID (PP = 0, PV = 0).
        const top = c.iommu.mmioRead32(frcdTopDword(0)), fr = top & 0xff;
        const ours = (top & FRCD_F) !== 0 && (c.iommu.mmioRead32(frcdSidDword(0)) & FRCD_PP) === 0 && (top & FRCD_PV_MASK) === 0
          && ((fr >= 0x70 && fr <= 0x7f) || (fr >= 0x80 && fr <= 0x87) || fr === 0x90);
        if (!ours) return false;
        // QEMU: PP set, and (read unmasked) PV = the RID_PASID.
        if (d.off === frcdSidDword(0)) return u32(d.ours ^ d.qemu) === FRCD_PP && (d.qemu & FRCD_PP) !== 0;
        return d.off === frcdTopDword(0) && (u32(d.ours ^ d.qemu) & ~FRCD_PV_MASK) === 0;
      },
    },
  },
  {
    id: 'sm-pasid-entry-checked-on-context-load',
    kind: 'deviation',
    versions: ONLY_10,
    title: 'scalable mode: a PASID entry\'s P, PGTT and pass-through looked at only when the context entry is loaded',
    qemu: 'QEMU checks the RID_PASID entry (present, valid PGTT) and chooses pass-through only when it loads the context entry into its context cache (or on TE, SRTP); a PASID-cache invalidation does not make it look again. After a PASID entry is cleared or made invalid, requests keep being translated through its table pointer (or, after pass-through, untranslated) until a context-cache invalidation',
    architected: 'after the PASID-cache invalidation the PASID entry as it is now applies: 59h for P clear, 5Bh for a PGTT the unit does not offer, the new translation type otherwise',
    reason: 'digest §7.5 (PASID-cache invalidation), §2 (Linux pasid_flush_caches: PASID-cache then IOTLB invalidation, no context-cache invalidation); QEMU 10.0.13 (vtd_dev_to_context_entry checks the RID_PASID entry on a context-cache miss; vtd_switch_address_space runs on context-cache invalidation, TE and SRTP); vtd conform --qemu --qemu-version 10 driver-like seeds 7 (pass-through kept: QEMU ok at the request address, ours 59h) and 198 (first-stage walk through a PASID entry with P clear: QEMU 71h, ours 59h)',
    fixture: 'qemu10/sm/sm-pass-through-kept, qemu10/sm/sm-fs-pasid-entry-cleared',
    taint: 'all',
    detect: {
      line(c) {
        const op = dmaOp(c.op);
        if (!op || !c.config.sm) return false;
        const p = c.path();
        // Pass-through kept: QEMU untranslated, our unit not, for a device that was pass-through before.
        if (c.qemu?.ok && c.qemu.gpa === op.iova && c.smPassThrough.has(op.sid)) return !(c.ours?.ok && c.ours.gpa === op.iova) && p?.stop !== 'pass-through';
        // An invalid RID_PASID entry QEMU did not look at again: our 59h (P clear) or 5Bh (PGTT), stopped at the PASID entry.
        if (c.ours?.fault !== 0x59 && c.ours?.fault !== 0x5b) return false;
        // (59h against QEMU's 5Bh is sm-pasid-entry-type-before-present.)
        // QEMU translated through the entry's table pointer as it is in memory ...
        if (c.qemu?.ok) {
          return c.latched.rta !== undefined && smStaleTranslate(c.iommu, c.config.ram, c.latched.rta, op.sid, op.iova, !!c.config.flts) === c.qemu.gpa;
        }
        // ... or gave a fault of a walk past the PASID entry (translation stage: not a root, context or PASID-structure fault).
        if (c.qemu?.ok !== false) return false;
        const qf = c.qemu.fault;
        if (qf !== undefined && ((qf >= 0x30 && qf <= 0x5f) || (qf >= 0x01 && qf <= 0x03) || (qf >= 0x08 && qf <= 0x0b) || qf === 0x0d)) return false;
        const last = p?.entries[p.entries.length - 1];
        return p?.entries.length === 4 && last?.kind === 'context' && (p.stop === 'not-present' || p.stop === 'reserved-tt');
      },
    },
  },
  {
    id: 'sm-dirty-not-set-on-iotlb-hit',
    kind: 'deviation',
    versions: ONLY_10,
    title: 'first stage: a write through a cached translation leaves the Dirty flag clear',
    qemu: 'a write request that hits an IOTLB entry filled by an earlier read (A set, D clear in the leaf) completes without setting D in the first-stage leaf entry',
    architected: 'a write through a first-stage translation sets D in the leaf (atomically, before the write completes); a cached translation whose D is clear is not used for a write without setting it',
    reason: 'trace-format.md "What the unit implements" (the Dirty flag of the leaf for a write); DESIGN.md "PASID-tagged IOTLB" (a hit serves a write only if D is already set); QEMU 10.0.13 sets A/D only while walking (vtd_iova_to_fspte); vtd conform --qemu --qemu-version 10 driver-like seed 292 (a read, then a write to the same page: the leaf reads back 0x8a1e027 on QEMU, 0x8a1e067 here)',
    fixture: 'qemu10/sm/sm-fs-dirty',
    taint: [],
    detect: {
      line(c) {
        if (!c.config.sm || !c.config.flts || c.op.op !== 'mrd' || c.ours?.hex === undefined || c.qemu?.hex === undefined) return false;
        if (c.ours.hex.length !== c.qemu.hex.length || c.ours.hex.length % 16 !== 0 || (c.op.gpa & 7n) !== 0n) return false;
        // Each differing quadword (little-endian) differs in D (bit 6) only: ours a present, accessed, dirty entry.
        let any = false;
        for (let k = 0; k < c.ours.hex.length; k += 16) {
          const q = (h: string): bigint => BigInt('0x' + (h.slice(k, k + 16).match(/../g) ?? []).reverse().join(''));
          const o = q(c.ours.hex), x = q(c.qemu.hex);
          if (o === x) continue;
          if ((o ^ x) !== 0x40n || (o & 0x61n) !== 0x61n) return false;
          any = true;
        }
        return any;
      },
    },
  },
  {
    id: 'sm-fs-rights-before-present',
    kind: 'deviation',
    versions: ONLY_10,
    title: 'first stage: the write right checked at each level while walking down',
    qemu: 'a write whose first-stage walk meets an entry with R/W clear gives 85h there, even when a lower entry is not present (or cannot be read, or has reserved bits set)',
    architected: 'the walk is completed first: a not-present entry gives 71h (70h unreadable, 72h reserved) whatever the access; rights are evaluated for a complete walk (as in second-stage walks: rights-before-reserved)',
    reason: 'digest §5.4 (71h: first-stage entry not present); DESIGN.md "Reserved bits before rights"; QEMU 10.0.13 tests R/W per level in vtd_iova_to_fspte; vtd conform --qemu --qemu-version 10 driver-like seed 318 (a read-only level-3 entry above a not-present leaf: QEMU 85h, ours 71h)',
    fixture: 'qemu10/sm/sm-fs-rights-walk',
    taint: FAULT_REGS,
    detect: {
      line(c) {
        const op = dmaOp(c.op);
        if (!op || op.dir !== 'w' || !c.config.sm || !c.config.flts || c.qemu?.fault !== 0x85) return false;
        if (c.ours?.fault !== 0x70 && c.ours?.fault !== 0x71 && c.ours?.fault !== 0x72) return false;
        const p = c.path();
        const paging = p?.entries.filter((e) => e.kind === 'paging') ?? [];
        // A present first-stage entry without R/W above where our walk stopped.
        return p?.leafLevel === undefined && paging.slice(0, -1).some((e) => (e.value & 3n) === 1n);
      },
    },
  },
  {
    id: 'sm-fpd-of-invalid-pasid-entry',
    kind: 'impl-defined',
    versions: ONLY_10,
    title: 'scalable mode: the FPD of a PASID entry found invalid is not honoured',
    qemu: 'a PASID entry with FPD set whose PGTT or AW the unit does not support gives 5Bh, recorded (QEMU takes FPD from the PASID entry only after the entry passed its checks)',
    architected: 'the request is blocked with 5Bh and, the entry\'s FPD being set, nothing is recorded (FPD is taken from every entry read, present or not, unless it has reserved bits set: DESIGN.md "FPD" in scalable mode, as for legacy context entries)',
    reason: 'the specification does not say whether a PASID entry that is invalid as programmed still supplies FPD; DESIGN.md "Scalable mode" (FPD); QEMU 10.0.13 vtd_ce_get_pasid_fpd; vtd conform --qemu --qemu-version 10 driver-like seed 309 (PASID entry with FPD and AW 3 at aw 48)',
    fixture: 'qemu10/sm/sm-fpd-invalid-pasid-entry',
    taint: FAULT_REGS,
    detect: {
      silent(c) {
        const op = dmaOp(c.op);
        if (!op || !c.config.sm || c.ours?.ok !== false || c.ours.fault !== undefined || c.qemu?.fault !== 0x5b) return false;
        const pr = c.iommu.probe(op.sid, op.iova, op.dir);
        const p = c.path();
        const pe = p?.entries[3];
        return !pr.ok && pr.reason === 0x5b && pr.fault === undefined && pe?.kind === 'context' && (pe.value & 3n) === 3n;
      },
    },
  },
  {
    id: 'window-srtp-te-flush',
    kind: 'window',
    versions: BOTH,
    title: 'QEMU flushes its caches on SRTP and on TE changes',
    qemu: 'SRTP, and TE 0<->1, reset the IOTLB and the context cache',
    architected: 'caches are kept (CAP.ESRTPS = 0: software invalidates after SRTP, as Linux does); a stale answer before that invalidation is allowed',
    reason: 'digest §1.3 and §11.1; DESIGN.md "Caches" (SRTP and TE do not flush)',
    taint: FAULT_REGS,
    detect: { line: (c) => isDmaWindow(c, 'srtp-te') },
  },
  {
    id: 'window-ctx-dsi-global',
    kind: 'window',
    versions: BOTH,
    title: 'QEMU flushes every context entry on a domain-selective context invalidation',
    qemu: 'a domain-selective context-cache invalidation drops every cached context entry',
    architected: 'only the named domain\'s entries are dropped; other devices may keep a cached entry until their own invalidation',
    reason: 'digest §11.4; DESIGN.md "Registers" (CCMD)',
    taint: FAULT_REGS,
    detect: { line: (c) => isDmaWindow(c, 'ctx-dsi') },
  },
  {
    id: 'window-irte-uncached',
    kind: 'window',
    versions: BOTH,
    title: 'QEMU caches no IRTEs',
    qemu: 'every interrupt request reads the IRTE from memory: an edit takes effect without invalidation',
    architected: 'an interrupt entry cache holds checked IRTEs until an IEC invalidation covers them; an edit is guaranteed visible only after it',
    reason: 'digest §9.6 (IEC) and §11.4; DESIGN.md "Interrupt remapping"',
    taint: FAULT_REGS,
    detect: {
      line: (c) => c.op.op === 'msi' && c.window() === 'irte',
    },
  },
  {
    id: 'window-unflushed',
    kind: 'window',
    versions: BOTH,
    title: 'a translation used between a change and its invalidation',
    qemu: 'may answer from its cache or from memory; a pass-through device is even put on an untranslated address space when TE is enabled (or its context invalidated) and stays there until its next context invalidation, whether or not a request used the entry',
    architected: 'may answer from its cache or from memory (either is allowed until the invalidation completes)',
    reason: 'trace-format.md "Open windows"; digest §7.1, §7.7',
    taint: FAULT_REGS,
    detect: { line: (c) => isDmaWindow(c, 'unflushed') },
  },
];

/**
 * A request inside an open window: the window tracker found an entry on its
 * path that changed after a cache may have taken it, with no covering
 * invalidation since. Any answer a cache could give is then allowed; the
 * tracker cannot list them all, so every answer is accepted there.
 */
function isDmaWindow(c: DetectContext, cause: WindowCause): boolean {
  return c.op.op === 'dma' && c.window() === cause;
}

const BY_ID = new Map(DEVIATIONS.map((d) => [d.id, d]));
const BY_VERSION = new Map<QemuVersion, readonly DeviationDef[]>();

/** The deviations `version` shows: the list a comparison against that QEMU uses. */
export function deviationsFor(version: QemuVersion): readonly DeviationDef[] {
  let l = BY_VERSION.get(version);
  if (!l) BY_VERSION.set(version, (l = DEVIATIONS.filter((d) => d.versions.includes(version))));
  return l;
}

export function deviation(id: string): DeviationDef {
  const d = BY_ID.get(id);
  if (!d) throw new Error(`unknown deviation ${id}`);
  return d;
}
