// Reference model of one legacy-mode Intel VT-d remapping unit.
//
// Clarity first, speed irrelevant: every number is a BigInt, and nothing is
// cached. Each DMA reads the root, context and paging entries fresh from guest
// memory; each interrupt request reads its interrupt-remapping table entry
// (IRTE) fresh. A unit that caches nothing is architecturally valid (digest §7.1,
// §8.3): it gives the "fresh" answer, so invalidations change only the
// register read-back here (and notify a listener, if one is set).
//
// The set of answers a CACHING unit may give (old or new entries between a
// table change and its invalidation) is windows.ts's business. It builds on a
// small internal API here: lookupContext, translateBeforeContext,
// translateInContext (the steps of §5.1 split at the points where a context
// cache and an IOTLB enter), recordFault, and setInvalidationListener. dma()
// is composed of exactly these pieces, so both models share one set of rules.
// Interrupt remapping (§9) is split the same way where an interrupt entry
// cache enters: interruptIndex, remapFresh, remapWithIrte, recordInterruptFault;
// msi() is composed of them.
//
// Section numbers (§) are those of the VT-d digest (docs/DESIGN.md, "Sources"). Where the
// architecture leaves a choice open, the model follows the project's
// behaviour decisions (the core implements the same ones); those places say
// "Decision".

// ---------------------------------------------------------------------------
// Public interface
// ---------------------------------------------------------------------------

export interface ModelConfig {
  aw: 39 | 48 | 57;
  cm: boolean;
  ir: boolean;
  eim: boolean;
  pt: boolean;
  sc: boolean;
  dt: boolean;
  nfr: number /* 1..64 */;
  ram: bigint /* bytes from 0 */;
  /** Posted interrupts, CAP.PI (bit 59): IRTEs with IM = 1 are in posted format (§9.3). Requires `ir`. Not a trace-header option. */
  pi: boolean;
  /** Scalable mode (ECAP.SMTS, SLTS, SRS): RTADDR.TTM = 01 selects the scalable-mode structures (§3.4 - §3.6). */
  sm: boolean;
  /** First-stage translation (ECAP.FLTS, CAP.FS1GP; replaces SLTS and SRS, as QEMU 10). Needs `sm` and aw 48 or 57. */
  flts: boolean;
  /** Requests with PASID (ECAP.PASID, PSS 0). Needs `sm`; excludes `dt`. */
  pasid: boolean;
  /** Nested translation (ECAP.NEST with FLTS, SLTS and SRS): PGTT 011 is valid. Needs `sm` and aw 48 or 57. */
  nest: boolean;
  /**
   * Execute requests (ECAP.ERS): the PASID entry's ERE and SLEE are fields rather than reserved bits. Not a
   * trace-header option (the contract's CAP/ECAP never set ERS); it lets model-only tests reach XD and 82h.
   */
  ers?: boolean;
}

export const defaultModelConfig: ModelConfig = {
  aw: 39,
  cm: false,
  ir: false,
  eim: false,
  pt: true,
  sc: false,
  dt: false,
  nfr: 1,
  ram: 0x10000000n,
  pi: false,
  sm: false,
  flts: false,
  pasid: false,
  nest: false,
};

/**
 * A DMA request's PASID prefix (issue 13 contract, `DmaRequest` of src/iommu.ts): `pasid` absent = a request
 * without PASID (translated through the context entry's RID_PASID in scalable mode). `priv` (a supervisor
 * request) and `exe` (an execute request) go with a `pasid`.
 */
export interface ModelDmaRequest {
  pasid?: number;
  priv?: boolean;
  exe?: boolean;
}

/** Outcome of one DMA request. `fault` is omitted when FPD suppresses it or when the request is blocked without a remapping fault. */
export type ModelDma = { ok: true; gpa: bigint } | { ok: false; fault?: number };

/**
 * A context entry that passed every check of §5.1 steps 3.1 - 3.8: what a context cache may hold (§7.1).
 * Used by the cached-window model (windows.ts); RefModel itself keeps none.
 */
export interface ContextWord {
  /** Domain id (§3.3 bits 87:72): the tag of the IOTLB entries filled through this context. */
  did: number;
  /** The AW field (§3.3 bits 66:64): levels = aw + 2, AGAW = 30 + 9 * aw. */
  aw: number;
  /** Second-level page-table pointer (address of the top table). */
  slptptr: bigint;
  /** Translation type (§3.3): 0, 1 (untranslated, walked) or 2 (pass-through). */
  tt: number;
  /** Fault processing disable (§3.3, §6.3). */
  fpd: boolean;
}

/** Result of reading the root and context entries for a source id (§5.1 steps 3.1 - 3.8). */
export type ContextLookup = { kind: 'ctx'; ctx: ContextWord } | { kind: 'fault'; reason: number; fpd: boolean };

/**
 * A leaf translation as an IOTLB holds it (§7.1): the IOVA page and the frame it maps to (both aligned to
 * the leaf's size), the leaf level (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB) and the cumulative R/W of the walk.
 */
export interface LeafEntry {
  /** The first IOVA of the page (the IOTLB tag, with the DID). */
  iovaBase: bigint;
  frame: bigint;
  level: number;
  r: boolean;
  w: boolean;
}

/** Result of translating one request, before fault recording. */
export type Translation =
  /** `flagWrites`: the Accessed/Dirty updates of first-stage entries the unit makes when the request completes (scalable mode). */
  | { kind: 'ok'; gpa: bigint; flagWrites?: FlagWrite[] }
  | { kind: 'blocked' } // blocked without a remapping fault
  | { kind: 'fault'; reason: number; fpd: boolean };

/** A second stage as a PASID entry names it: the top table (SLPTPTR) and AW (levels = AW + 2). */
interface SecondStage {
  top: bigint;
  aw: number;
}

/**
 * A valid PASID entry (scalable mode) as a unit may cache it: a context cache holds the RID_PASID one of a
 * request without PASID (docs/DESIGN.md "Scalable-mode caches"). Everything its translation needs.
 */
export interface PasidEntryWord {
  pasid: number;
  did: number;
  /** The FPD that applies: context entry's, directory entry's and PASID entry's, ORed. */
  fpd: boolean;
  pgtt: number;
  /** The second stage (PGTT 010, 011): SLPTPTR and AW. */
  ss: { top: bigint; aw: number };
  /** QW2: FLPTR, FLPM, WPE, SRE, ERE (PGTT 001, 011). */
  qw2: bigint;
}

/**
 * A first-stage or nested translation as a PASID-tagged IOTLB holds it: the page (iovaBase, level) of a
 * (DID, PASID), its output frame, and the rights a hit needs: first-stage R/W and U/S ANDed over the walk,
 * whether the leaf's Dirty flag is set, and the second stage's rights on the output (both true without one).
 */
export interface FsLeaf {
  did: number;
  pasid: number;
  iovaBase: bigint;
  level: number;
  frame: bigint;
  fsW: boolean;
  fsU: boolean;
  dirty: boolean;
  ssR: boolean;
  ssW: boolean;
}

/** One first-stage entry whose Accessed (and for the leaf of a write, Dirty) flag the unit sets: where it lies, and the bits to set. */
export interface FlagWrite {
  addr: bigint;
  set: bigint;
}

/**
 * Outcome of one interrupt request (§9.6). Delivered: the interrupt as the unit sends it, in compatibility
 * format (trace-format "Delivered interrupts"; with remapping off, or a compatibility-format message let
 * through by CFIS, the message unchanged). Posted (CAP.PI and an IRTE with IM = 1): the posted-interrupt
 * descriptor address, the virtual vector and URG. Blocked: `fault` is the reason recorded, omitted when the
 * IRTE's FPD suppressed it (22h, 24h, 26h).
 */
export type ModelMsi =
  | { ok: true; addr: bigint; data: number }
  | { ok: true; posted: true; descriptor: bigint; vector: number; urgent: boolean }
  | { ok: false; fault?: number };

/** An interrupt-remapping table entry as read from memory (or as an interrupt entry cache holds it, §9.6): two quadwords. */
export interface Irte {
  lo: bigint;
  hi: bigint;
}

/** Result of processing one interrupt request, before fault recording (see ModelMsi). */
export type InterruptTranslation =
  | { kind: 'delivered'; addr: bigint; data: number }
  | { kind: 'posted'; descriptor: bigint; vector: number; urgent: boolean }
  /** `index` is the interrupt index for the record's FI (0 for 20h and 25h, where it is undefined); `fpd` the IRTE's FPD (false before an IRTE is read). */
  | { kind: 'fault'; reason: number; fpd: boolean; index: number };

/** The steps of §9.6 before the IRTE: the outcome when they decide it, else the interrupt index whose IRTE decides. */
export type InterruptIndexLookup = InterruptTranslation | { kind: 'index'; index: number };

/** A cache invalidation the unit performed (register or queued, §7.2, §7.3, §7.5), as reported to a listener. */
export type Invalidation =
  | { cache: 'context'; granularity: 'global' }
  | { cache: 'context'; granularity: 'domain'; did: number }
  | { cache: 'context'; granularity: 'device'; did: number; sid: number; fm: number }
  | { cache: 'iotlb'; granularity: 'global' }
  | { cache: 'iotlb'; granularity: 'domain'; did: number }
  /** Page-selective: the 2^am 4 KiB pages containing `addr` (addr's bits 11:0 are 0). */
  | { cache: 'iotlb'; granularity: 'page'; did: number; addr: bigint; am: number; ih: boolean }
  /** Interrupt entry cache (descriptor 0x4, §7.5): every cached IRTE. */
  | { cache: 'iec'; granularity: 'global' }
  /** Index-selective: the 2^im IRTEs from `index` (IIDX aligned down to 2^im). */
  | { cache: 'iec'; granularity: 'index'; index: number; im: number }
  /** PASID cache (descriptor 0x7, §7.5, scalable mode only): every entry, those of a DID, or one PASID of a DID. */
  | { cache: 'pasid'; granularity: 'global' }
  | { cache: 'pasid'; granularity: 'domain'; did: number }
  | { cache: 'pasid'; granularity: 'pasid'; did: number; pasid: number }
  /** PASID-based IOTLB (descriptor 0x6, §7.5): every mapping of one PASID in a DID, or 2^am pages of it from `addr`. */
  | { cache: 'piotlb'; granularity: 'pasid'; did: number; pasid: number }
  | { cache: 'piotlb'; granularity: 'page'; did: number; pasid: number; addr: bigint; am: number; ih: boolean };

/** An MSI the unit itself sends (fault event §6.4, invalidation completion event §6.4 last paragraph). */
export interface ModelEvent {
  kind: 'fault' | 'completion';
  addr: bigint;
  data: number;
}

// ---------------------------------------------------------------------------
// Bit helpers
// ---------------------------------------------------------------------------

const MASK64 = (1n << 64n) - 1n;
const MASK32 = (1n << 32n) - 1n;

/** The single bit n. */
function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/** Bits hi..lo inclusive (hi >= lo), as in the digest's tables ("63:12"). */
function bits(hi: number, lo: number): bigint {
  return ((1n << BigInt(hi - lo + 1)) - 1n) << BigInt(lo);
}

/** Bits [lo, hiExclusive): e.g. bitRange(12, aw) = address bits below the host address width. Empty when hiExclusive <= lo. */
function bitRange(lo: number, hiExclusive: number): bigint {
  return hiExclusive <= lo ? 0n : bits(hiExclusive - 1, lo);
}

/** The value of bits hi..lo of v, shifted down. */
function field(v: bigint, hi: number, lo: number): bigint {
  return (v >> BigInt(lo)) & ((1n << BigInt(hi - lo + 1)) - 1n);
}

function isSet(v: bigint, mask: bigint): boolean {
  return (v & mask) !== 0n;
}

// ---------------------------------------------------------------------------
// Constants from the digest
// ---------------------------------------------------------------------------

/** §1.1: the fixed layout of a v1 unit (trace-format.md "Fixed layout"). */
const REG_VER = 0x000;
const REG_CAP = 0x008;
const REG_ECAP = 0x010;
const REG_GCMD = 0x018;
const REG_GSTS = 0x01c;
const REG_RTADDR = 0x020;
const REG_CCMD = 0x028;
const REG_FSTS = 0x034;
const REG_FECTL = 0x038;
const REG_FEDATA = 0x03c;
const REG_FEADDR = 0x040;
const REG_FEUADDR = 0x044;
const REG_PMEN = 0x064;
const REG_PLMBASE = 0x068;
const REG_PLMLIMIT = 0x06c;
const REG_PHMBASE = 0x070;
const REG_PHMLIMIT = 0x078;
const REG_IQH = 0x080;
const REG_IQT = 0x088;
const REG_IQA = 0x090;
const REG_ICS = 0x09c;
const REG_IECTL = 0x0a0;
const REG_IEDATA = 0x0a4;
const REG_IEADDR = 0x0a8;
const REG_IEUADDR = 0x0ac;
const REG_IQER = 0x0b0;
const REG_IRTA = 0x0b8;
/** ECAP.IRO (§2.2): IVA at IRO*16, IOTLB at IRO*16 + 8. */
const ECAP_IRO_VALUE = 0xf;
const REG_IVA = ECAP_IRO_VALUE * 16; // 0x0f0
const REG_IOTLB = ECAP_IRO_VALUE * 16 + 8; // 0x0f8
/** CAP.FRO (§2.1): FRCD[i] at FRO*16 + 16*i, 128 bits each. */
const CAP_FRO_VALUE = 0x22;
const REG_FRCD_BASE = CAP_FRO_VALUE * 16; // 0x220
const FRCD_SIZE = 16;
/** The register block is one 4 KiB page (§1). */
const REG_BLOCK_SIZE = 0x1000;

/** VER (§1.1): version 1.0. */
const VER_VALUE = 0x10n;

/** CAP fields (§2.1), values as QEMU 7.2 reports them (§2.3). */
const CAP_ND_SHIFT = 0; // 2:0
const CAP_ND_64K_DOMAINS = 6n;
const CAP_CM = bit(7);
const CAP_SAGAW_SHIFT = 8; // 12:8, one bit per context AW value
const CAP_MGAW_SHIFT = 16; // 21:16, MGAW - 1
const CAP_FRO_SHIFT = 24; // 33:24
const CAP_SLLPS_SHIFT = 34; // 37:34
const CAP_SLLPS_2M_1G = 0b0011n;
const CAP_PSI = bit(39);
const CAP_NFR_SHIFT = 40; // 47:40, number of records - 1
const CAP_MAMV_SHIFT = 48; // 53:48
const CAP_MAMV_VALUE = 18n;
const CAP_DWD = bit(54);
const CAP_DRD = bit(55);
/** CAP.PI (posted interrupts): the project's `pi` option; QEMU 7.2 has none (§9.3). */
const CAP_PI = bit(59);
/** CAP.FS1GP (56): first-stage 1 GiB pages; CAP.FS5LP (60): 5-level first-stage paging (§2.1, contract). */
const CAP_FS1GP = bit(56);
const CAP_FS5LP = bit(60);

/** ECAP fields (§2.2). */
const ECAP_QI = bit(1);
const ECAP_DT = bit(2);
const ECAP_IR = bit(3);
const ECAP_EIM = bit(4);
const ECAP_PT = bit(6);
const ECAP_SC = bit(7);
const ECAP_IRO_SHIFT = 8; // 17:8
const ECAP_MHMV_SHIFT = 20; // 23:20
const ECAP_MHMV_VALUE = 0xfn;
/** Scalable-mode ECAP bits (§2.2; values per trace-format "Scalable mode"). */
const ECAP_NEST = bit(26);
const ECAP_ERS = bit(30);
const ECAP_SRS = bit(31);
const ECAP_PASID = bit(40);
const ECAP_SMTS = bit(43);
const ECAP_SLTS = bit(46);
const ECAP_FLTS = bit(47);

/** GCMD command bits and the GSTS status bits at the same positions (§1.3). */
const GCMD_TE = bit(31); // persistent -> GSTS.TES
const GCMD_SRTP = bit(30); // one-shot  -> GSTS.RTPS
const GCMD_SFL = bit(29); // one-shot  -> GSTS.FLS (ignored: no advanced fault logging)
const GCMD_EAFL = bit(28); // persistent -> GSTS.AFLS (ignored)
const GCMD_WBF = bit(27); // one-shot  -> GSTS.WBFS (ignored: CAP.RWBF = 0, §8.4)
const GCMD_QIE = bit(26); // persistent -> GSTS.QIES
const GCMD_IRE = bit(25); // persistent -> GSTS.IRES
const GCMD_SIRTP = bit(24); // one-shot  -> GSTS.IRTPS
const GCMD_CFI = bit(23); // persistent -> GSTS.CFIS
const GCMD_WRITABLE = bits(31, 23);
/** Commands this unit ignores: no advanced fault logging, CAP.RWBF = 0 (§8.4); FLS, AFLS, WBFS are never set. */
const GCMD_IGNORED = GCMD_SFL | GCMD_EAFL | GCMD_WBF;
const GSTS_TES = bit(31);
const GSTS_RTPS = bit(30);
const GSTS_QIES = bit(26);
const GSTS_IRES = bit(25);
const GSTS_IRTPS = bit(24);
const GSTS_CFIS = bit(23);

/** RTADDR (§1.1, §3): 63:12 RTA, 11:10 TTM (writable only with scalable mode). */
const RTADDR_ADDR_LO = 12;
const RTADDR_TTM = bits(11, 10);
const RTADDR_TTM_LO = 10;
/** Translation-table modes (§3): 00 legacy, 01 scalable; 10 and 11 are not supported by this unit. */
const TTM_LEGACY = 0;
const TTM_SCALABLE = 1;

/** CCMD (§7.2). */
const CCMD_ICC = bit(63);
const CCMD_CIRG_HI = 62;
const CCMD_CIRG_LO = 61;
const CCMD_CAIG_LO = 59; // 60:59
const CCMD_CAIG = bits(60, 59);
const CCMD_FM = bits(33, 32);
const CCMD_FM_HI = 33;
const CCMD_FM_LO = 32;
const CCMD_SID = bits(31, 16);
const CCMD_SID_HI = 31;
const CCMD_SID_LO = 16;
const CCMD_DID = bits(15, 0);
const CCMD_DID_HI = 15;
const CCMD_DID_LO = 0;
const CCMD_WRITABLE = CCMD_ICC | bits(CCMD_CIRG_HI, CCMD_CIRG_LO) | CCMD_FM | CCMD_SID | CCMD_DID;
const CCMD_WRITE_ONLY = CCMD_FM | CCMD_SID;
/** CCMD/IOTLB granularities (§7.2, §7.3). */
const GRAN_NONE = 0n; // reserved request / not performed
const GRAN_GLOBAL = 1n;
const GRAN_DOMAIN = 2n;
const GRAN_DEVICE_OR_PAGE = 3n;

/** FSTS (§6.2). */
const FSTS_PFO = bit(0);
const FSTS_PPF = bit(1);
const FSTS_AFO = bit(2);
const FSTS_APF = bit(3);
const FSTS_IQE = bit(4);
const FSTS_ICE = bit(5);
const FSTS_ITE = bit(6);
const FSTS_FRI_LO = 8; // 15:8
const FSTS_FRI = bits(15, 8);
const FSTS_W1C = FSTS_PFO | FSTS_AFO | FSTS_APF | FSTS_IQE | FSTS_ICE | FSTS_ITE;
/** The status bits that are "interrupt conditions" for the fault event (§6.4). */
const FSTS_EVENT_CONDITIONS = FSTS_PFO | FSTS_PPF | FSTS_AFO | FSTS_APF | FSTS_IQE | FSTS_ICE | FSTS_ITE;

/** FECTL / IECTL (§1.1, §6.4). */
const ECTL_IM = bit(31);
const ECTL_IP = bit(30);
const ECTL_RESET = ECTL_IM;
/** FEDATA / IEDATA: 15:0 (no 32-bit MSI data). FEADDR / IEADDR: 31:2. FEUADDR / IEUADDR: 31:0 (only with EIM). */
const EDATA_WRITABLE = bits(15, 0);
const EADDR_WRITABLE = bits(31, 2);
const EUADDR_WRITABLE = bits(31, 0);

/** IQH / IQT (§7.4): byte offset of a 128-bit descriptor, bits 18:4. */
const IQ_OFFSET_MASK = bits(18, 4);
/** IQA (§7.4): 63:12 base, 11 DW (writable only with scalable mode, ECAP.SMTS), 2:0 QS. */
const IQA_QS = bits(2, 0);
const IQA_DW = bit(11);
const IQA_BASE_LO = 12;
/** 128-bit descriptors (DW = 0) and 256-bit ones (DW = 1). */
const DESCRIPTOR_SIZE = 16n;
const DESCRIPTOR_SIZE_256 = 32n;
/** IQT bit 4: with DW = 1 it would name half a 256-bit descriptor. */
const IQT_HALF_DESCRIPTOR = bit(4);

/** ICS (§1.1): IWC bit 0, RW1C. */
const ICS_IWC = bit(0);

/** IRTA (§9.1): 63:12 table, 11 EIME, 3:0 S. */
const IRTA_EIME = bit(11);
const IRTA_S = bits(3, 0);
const IRTA_ADDR_LO = 12;

/** IVA (§7.3): 63:12 ADDR, 6 IH, 5:0 AM; write-only. */
const IVA_WRITABLE = bits(63, 12) | bits(6, 0);
const IVA_AM_HI = 5;
const IVA_AM_LO = 0;
const IVA_IH = bit(6);
const IVA_ADDR = bits(63, 12);

/** IOTLB register (§7.3). */
const IOTLB_IVT = bit(63);
const IOTLB_IIRG_HI = 61;
const IOTLB_IIRG_LO = 60;
const IOTLB_IAIG_LO = 57; // 58:57
const IOTLB_IAIG = bits(58, 57);
const IOTLB_DR = bit(49);
const IOTLB_DW = bit(48);
const IOTLB_DID = bits(47, 32);
const IOTLB_DID_HI = 47;
const IOTLB_DID_LO = 32;
const IOTLB_WRITABLE = IOTLB_IVT | bits(IOTLB_IIRG_HI, IOTLB_IIRG_LO) | IOTLB_DR | IOTLB_DW | IOTLB_DID;

/** FRCD high quadword (§6.1). */
const FRCD_HI_F = bit(63);
const FRCD_HI_T_READ = bit(62);
const FRCD_HI_FR_SHIFT = 32n; // 39:32
const FRCD_HI_SID = bits(15, 0);
/** PRIV (bit 93), EXE (94), PP (95), PV (123:104) of the record: the request's PASID prefix (§6.1). */
const FRCD_HI_PRIV = bit(29);
const FRCD_HI_EXE = bit(30);
const FRCD_HI_PP = bit(31);
const FRCD_HI_PV_SHIFT = 40n; // 59:40
/** FRCD low quadword: FI = page address (63:12). */
const FRCD_LO_FI = bits(63, 12);

/** Root entry (§3.2). */
const ROOT_ENTRY_SIZE = 16n;
const ROOT_LO_P = bit(0);
const ROOT_LO_RSVD_LOW = bits(11, 1);
const ROOT_LO_CTP_LO = 12;

/** Context entry (§3.3). */
const CONTEXT_ENTRY_SIZE = 16n;
const CTX_LO_P = bit(0);
const CTX_LO_FPD = bit(1);
const CTX_LO_TT_HI = 3;
const CTX_LO_TT_LO = 2;
const CTX_LO_RSVD_LOW = bits(11, 4);
const CTX_LO_SLPTPTR_LO = 12;
const CTX_HI_AW_HI = 2;
const CTX_HI_AW_LO = 0;
const CTX_HI_DID_HI = 23;
const CTX_HI_DID_LO = 8;
const CTX_HI_RSVD = bit(7) | bits(63, 24);
/** Translation types (§3.3). */
const TT_UNTRANSLATED = 0;
const TT_UNTRANSLATED_DEVTLB = 1;
const TT_PASS_THROUGH = 2;

/** Second-level paging entries (§4.1, §4.2, §4.3). */
const SL_ENTRY_SIZE = 8n;
const SL_INDEX_BITS = 9;
const SL_INDEX_MASK = 0x1ffn;
const PAGE_SHIFT = 12;
const SL_R = bit(0);
const SL_W = bit(1);
const SL_PS = bit(7);
const SL_SNP = bit(11);
const SL_TM = bit(62);
/** Address bits of a second-level entry: 51:12 (bits at or above the host address width are reserved). */
const SL_ADDR_TOP = 52;
const SL_ADDR_MASK = bitRange(PAGE_SHIFT, SL_ADDR_TOP);
/** Address bits inside a large-page frame that must be 0 (§4.2). */
const SL_1G_FRAME_RSVD = bits(29, 12);
const SL_2M_FRAME_RSVD = bits(20, 12);

/** The interrupt address range (§5.1 step 0 and step 11). */
const INTERRUPT_RANGE_LO = 0xfee00000n;
const INTERRUPT_RANGE_HI = 0xfeefffffn;

/** DMA-remapping fault reasons (§5.2). */
const FR_ROOT_NOT_PRESENT = 0x1;
const FR_CONTEXT_NOT_PRESENT = 0x2;
const FR_CONTEXT_INVALID = 0x3;
const FR_ADDRESS_BEYOND_WIDTH = 0x4;
const FR_WRITE = 0x5;
const FR_READ = 0x6;
const FR_PAGING_ENTRY_ACCESS = 0x7;
const FR_ROOT_ACCESS = 0x8;
const FR_CONTEXT_ACCESS = 0x9;
const FR_ROOT_RESERVED = 0xa;
const FR_CONTEXT_RESERVED = 0xb;
const FR_PAGING_ENTRY_RESERVED = 0xc;
const FR_TRANSLATION_REQUEST_BLOCKED = 0xd;
const FR_INTERRUPT_ADDRESS = 0xe;

/** Interrupt-remapping fault reasons (§5.3). */
const FR_IR_REQUEST_RESERVED = 0x20;
const FR_IR_INDEX = 0x21;
const FR_IR_NOT_PRESENT = 0x22;
const FR_IR_TABLE_ACCESS = 0x23;
const FR_IR_IRTE_RESERVED = 0x24;
const FR_IR_COMPAT_BLOCKED = 0x25;
const FR_IR_SOURCE = 0x26;

/**
 * Qualified fault reasons: suppressed when the FPD that applies is 1 (§5.2, §5.3, §6.3): the context entry's
 * for DMA faults (1h, 8h, 9h, Ah, Bh are never suppressed), the IRTE's for interrupt faults (only 22h, 24h, 26h).
 */
const QUALIFIED_FAULTS: ReadonlySet<number> = new Set([
  FR_CONTEXT_NOT_PRESENT,
  FR_CONTEXT_INVALID,
  FR_ADDRESS_BEYOND_WIDTH,
  FR_WRITE,
  FR_READ,
  FR_PAGING_ENTRY_ACCESS,
  FR_PAGING_ENTRY_RESERVED,
  FR_TRANSLATION_REQUEST_BLOCKED,
  FR_INTERRUPT_ADDRESS,
  FR_IR_NOT_PRESENT,
  FR_IR_IRTE_RESERVED,
  FR_IR_SOURCE,
]);

/**
 * Scalable-mode fault reasons (§5.4, Linux's dma_remap_sm_fault_reasons), used when the latched TTM is 01
 * (and 31h for a request with PASID under TTM 00). Reasons this unit never reports, and why:
 *   32h, 47h (page requests), 44h (translation requests: there are no ATS requests), 7Ch and 90h (A/D updates
 *   in no-snoop set-ups: the unit snoops every walk), 43h (DTE without ECAP.DT and PRE are reserved bits: 42h;
 *   no other context-entry value is invalid), 79h (a second-stage entry refusing an access is reported as what the access was: 85h /
 *   86h for the final address, 75h / 76h / 77h for a first-stage table in nested translation), 84h (address
 *   bits of a paging entry at or above HAW are reserved bits: 72h / 7Ah).
 */
const FR_SM_ROOT_TABLE_INVALID = 0x30; // Decision: latched TTM 10 or 11 (modes this unit lacks)
const FR_SM_PASID_IN_LEGACY = 0x31;
const FR_SM_ROOT_ACCESS = 0x38;
const FR_SM_ROOT_NOT_PRESENT = 0x39;
const FR_SM_ROOT_RESERVED = 0x3a;
const FR_SM_CONTEXT_ACCESS = 0x40;
const FR_SM_CONTEXT_NOT_PRESENT = 0x41;
const FR_SM_CONTEXT_RESERVED = 0x42;
const FR_SM_PASIDE_CLEAR = 0x45;
const FR_SM_PASID_BEYOND_DIRECTORY = 0x46;
const FR_SM_RID_PASID_ERROR = 0x48; // RID_PASID beyond the directory size (46h: a request's PASID beyond it)
const FR_SM_DIR_ACCESS = 0x50;
const FR_SM_DIR_NOT_PRESENT = 0x51;
const FR_SM_DIR_RESERVED = 0x52;
const FR_SM_PASID_ENTRY_ACCESS = 0x58;
const FR_SM_PASID_ENTRY_NOT_PRESENT = 0x59;
const FR_SM_PASID_ENTRY_RESERVED = 0x5a;
const FR_SM_PASID_ENTRY_INVALID = 0x5b;
const FR_SM_ERE_CLEAR = 0x5c;
const FR_SM_SRE_CLEAR = 0x5d;
const FR_SM_FS_ENTRY_ACCESS = 0x70;
const FR_SM_FS_NOT_PRESENT = 0x71;
const FR_SM_FS_RESERVED = 0x72;
const FR_SM_FS_TOP_ACCESS = 0x73; // the table FLPTR names
const FR_SM_NESTED_FS_ADDRESS_BEYOND = 0x74;
const FR_SM_NESTED_FS_TOP_READ = 0x75;
const FR_SM_NESTED_FS_ENTRY_READ = 0x76;
const FR_SM_NESTED_FS_ENTRY_WRITE = 0x77;
const FR_SM_SS_ENTRY_ACCESS = 0x78;
const FR_SM_SS_RESERVED = 0x7a;
const FR_SM_SS_TOP_INVALID = 0x7b; // the table SLPTPTR names is unreadable
const FR_SM_NOT_CANONICAL = 0x80;
const FR_SM_USER_TO_SUPERVISOR = 0x81;
const FR_SM_NO_EXECUTE = 0x82;
const FR_SM_ADDRESS_BEYOND = 0x83;
const FR_SM_WRITE = 0x85;
const FR_SM_READ = 0x86;
const FR_SM_INTERRUPT_ADDRESS = 0x87;
const FR_SM_A_D_NO_SNOOP_FS = 0x90; // the last scalable-mode reason (never reported here)

/**
 * Decision (as for legacy Ah/Bh): the scalable-mode reasons found before a context entry's FPD is known, and
 * the context entry's reserved bits, are never suppressed; every later one is qualified, suppressed when the
 * context entry's, the PASID-directory entry's or the PASID entry's FPD is 1 (§6.3; a not-present entry's
 * FPD counts, the FPD of an entry whose reserved bits are set does not).
 */
const SM_UNQUALIFIED_FAULTS: ReadonlySet<number> = new Set([
  FR_SM_ROOT_TABLE_INVALID,
  FR_SM_PASID_IN_LEGACY,
  FR_SM_ROOT_ACCESS,
  FR_SM_ROOT_NOT_PRESENT,
  FR_SM_ROOT_RESERVED,
  FR_SM_CONTEXT_ACCESS,
  FR_SM_CONTEXT_RESERVED,
]);

/** Scalable-mode root entry (§3.4): LP/LCTP in the low quadword (devfn 0-127), UP/UCTP in the high one. */
const SM_ROOT_P = bit(0);
const SM_ROOT_RSVD_LOW = bits(11, 1);
/** Scalable-mode context entry (§3.5), 256 bits: QW0..QW3. */
const SM_CONTEXT_ENTRY_SIZE = 32n;
const SM_CONTEXT_TABLE_ENTRIES = 128;
const SM_CTX_QW0_P = bit(0);
const SM_CTX_QW0_FPD = bit(1);
const SM_CTX_QW0_DTE = bit(2);
const SM_CTX_QW0_PASIDE = bit(3);
const SM_CTX_QW0_PRE = bit(4);
const SM_CTX_QW0_RSVD = bits(8, 5);
const SM_CTX_QW0_PDTS_HI = 11;
const SM_CTX_QW0_PDTS_LO = 9;
const SM_CTX_QW1_RID_PASID_HI = 19;
const SM_CTX_QW1_RID_PASID_LO = 0;
/** Bit 20 (RID_PRIV) is accepted and not acted on: requests without PASID are user requests. */
const SM_CTX_QW1_RSVD = bits(63, 21);
/** PASID directory entry (§3.6), 64 bits: PASID[19:6] indexes the directory. */
const PASID_DIR_ENTRY_SIZE = 8n;
const PASID_DIR_SHIFT = 6;
const PASID_DIR_P = bit(0);
const PASID_DIR_FPD = bit(1);
const PASID_DIR_RSVD = bits(11, 2);
/** PASID table entry (§3.6), 512 bits: QW0..QW7, PASID[5:0] indexes the 64-entry table. */
const PASID_ENTRY_SIZE = 64n;
const PASID_TABLE_INDEX_MASK = 0x3f;
const PE_QW0_P = bit(0);
const PE_QW0_FPD = bit(1);
const PE_QW0_AW_HI = 4;
const PE_QW0_AW_LO = 2;
const PE_QW0_SLEE = bit(5); // second-stage execute enable (needs ECAP.ERS)
const PE_QW0_PGTT_HI = 8;
const PE_QW0_PGTT_LO = 6;
const PE_QW0_SLADE = bit(9); // second-stage A/D (needs ECAP.SLADS, never set)
const PE_QW0_RSVD = bits(11, 10);
const PE_QW1_DID_HI = 15;
const PE_QW1_DID_LO = 0;
/** QW1 bits 23 PWSNP and 24 PGSNP are accepted and have no effect; 22:16 and the memory-type fields 63:25 (no ECAP.MTS) are reserved. */
const PE_QW1_RSVD = bits(22, 16) | bits(63, 25);
const PE_QW2_SRE = bit(0);
const PE_QW2_ERE = bit(1);
const PE_QW2_FLPM_HI = 3;
const PE_QW2_FLPM_LO = 2;
const PE_QW2_WPE = bit(4);
const PE_QW2_EAFE = bit(7); // extended accessed flag (needs ECAP.EAFS, never set)
const PE_QW2_RSVD = bits(6, 5) | bits(11, 8);
/** PGTT values (§3.6). */
const PGTT_FIRST_STAGE = 1;
const PGTT_SECOND_STAGE = 2;
const PGTT_NESTED = 3;
const PGTT_PASS_THROUGH = 4;
/** FLPM (§3.6): 00 4-level, 01 5-level first-stage paging. */
const FLPM_4_LEVEL = 0;
const FLPM_5_LEVEL = 1;

/** First-stage paging entries: the x86-64 4- and 5-level format (issue 13 item 3). */
const FS_P = bit(0);
const FS_RW = bit(1);
const FS_US = bit(2);
const FS_A = bit(5);
const FS_D = bit(6);
const FS_PS = bit(7);
const FS_XD = bit(63);
/** Frame bits of a large page below its alignment (bit 12 is PAT there, §x86 paging). */
const FS_1G_FRAME_RSVD = bits(29, 13);
const FS_2M_FRAME_RSVD = bits(20, 13);
const FS_ADDR_TOP = 52;

/** FRCD low quadword of an interrupt fault: FI bits 63:48 = the interrupt index (§6.1, §5.3). */
const FRCD_LO_IR_INDEX_SHIFT = 48n;

/** Interrupt request address (§9.4): bits 63:32 must be 0 and 31:20 = FEEh. */
const MSI_ADDR_HIGH = bits(63, 32);
const MSI_ADDR_BASE_HI = 31;
const MSI_ADDR_BASE_LO = 20;
const MSI_ADDR_BASE = 0xfeen;
const MSI_ADDR_REMAPPABLE = bit(4); // 0 = compatibility format
const MSI_ADDR_SHV = bit(3); // remappable: sub-handle valid
const MSI_ADDR_HANDLE_15 = bit(2); // remappable: HANDLE[15]
const MSI_ADDR_HANDLE_HI = 19; // remappable: HANDLE[14:0] in 19:5
const MSI_ADDR_HANDLE_LO = 5;
/** Remappable MSI data with SHV = 1: 15:0 SUBHANDLE, 31:16 reserved. */
const MSI_DATA_SUBHANDLE = 0xffffn;
const MSI_DATA_RESERVED = bits(31, 16);
/** The delivered (compatibility-format) message (trace-format "Delivered interrupts"). */
const MSI_OUT_BASE = 0xfee00000n;
const MSI_OUT_DEST_SHIFT = 12n; // destination 7:0 in address 19:12
const MSI_OUT_RH_SHIFT = 3n;
const MSI_OUT_DM_SHIFT = 2n;
const MSI_OUT_DEST_HIGH_SHIFT = 40n; // x2APIC destination 31:8 in address 63:40
const MSI_OUT_DLM_SHIFT = 8n;
const MSI_OUT_ASSERT = 1n << 14n;
const MSI_OUT_TM_SHIFT = 15n;

/** IRTE (§9.2 remapped format, §9.3 posted format), 16 bytes: low and high quadwords. */
const IRTE_SIZE = 16n;
const IRTE_LO_P = bit(0);
const IRTE_LO_FPD = bit(1);
const IRTE_LO_DM_BIT = 2;
const IRTE_LO_RH_BIT = 3;
const IRTE_LO_TM_BIT = 4;
const IRTE_LO_DLM_HI = 7;
const IRTE_LO_DLM_LO = 5;
const IRTE_LO_URG_BIT = 14; // posted
const IRTE_LO_IM = bit(15);
const IRTE_LO_VECTOR_HI = 23;
const IRTE_LO_VECTOR_LO = 16;
const IRTE_LO_DST_HI = 63; // x2APIC: 32-bit destination
const IRTE_LO_DST_LO = 32;
const IRTE_LO_XAPIC_DST_HI = 47; // xAPIC: 8-bit destination = DST[15:8]
const IRTE_LO_XAPIC_DST_LO = 40;
const IRTE_LO_PDA_HI = 63; // posted: descriptor address bits 31:6
const IRTE_LO_PDA_LO = 38;
const IRTE_PDA_LOW_SHIFT = 6n;
const IRTE_HI_PDA = bits(63, 32); // posted: descriptor address bits 63:32, in place
const IRTE_HI_SID_HI = 15;
const IRTE_HI_SID_LO = 0;
const IRTE_HI_SQ_HI = 17;
const IRTE_HI_SQ_LO = 16;
const IRTE_HI_SVT_HI = 19;
const IRTE_HI_SVT_LO = 18;
/** Reserved bits (Decision: every reserved field is checked, 24h). IM is reserved without CAP.PI. */
const IRTE_LO_RSVD = bits(14, 12) | bits(31, 24);
const IRTE_LO_RSVD_XAPIC = bits(39, 32) | bits(63, 48); // DST outside 47:40 when EIME = 0
const IRTE_HI_RSVD = bits(63, 20);
const IRTE_POSTED_LO_RSVD = bits(7, 2) | bits(13, 12) | bits(37, 24);
const IRTE_POSTED_HI_RSVD = bits(31, 20);
/** Source validation (§9.5): SVT values, and the SID bits SQ 0..3 compare under SVT = 01. */
const SVT_NONE = 0;
const SVT_SID = 1;
const SVT_BUS_RANGE = 2;
const SQ_MASKS = [0xffff, 0xfffb, 0xfff9, 0xfff8] as const;

/** IOAPIC redirection-table entry (§9.4). */
const RTE_REMAPPABLE = bit(48);
const RTE_HANDLE_HI = 63; // remappable: HANDLE[14:0]
const RTE_HANDLE_LO = 49;
const RTE_HANDLE_15_BIT = 11; // remappable: HANDLE[15]; compatibility: DM
const RTE_VECTOR = 0xffn;
const RTE_COMPAT_DATA = bits(10, 0); // vector, delivery mode
const RTE_TM_BIT = 15;
const RTE_COMPAT_DEST_HI = 63;
const RTE_COMPAT_DEST_LO = 56;

/** Invalidation descriptors (§7.5, §7.6). */
const DESC_TYPE_HI = 3;
const DESC_TYPE_LO = 0;
const DESC_QW0_TYPE_EXT = bits(11, 9); // reserved for every type modelled
const DESC_G_HI = 5;
const DESC_G_LO = 4;
/** Context-cache (0x1) and IOTLB (0x2) descriptor fields (§7.5). */
const DESC_DID_HI = 31;
const DESC_DID_LO = 16;
const DESC_CC_SID_HI = 47;
const DESC_CC_SID_LO = 32;
const DESC_CC_FM_HI = 49;
const DESC_CC_FM_LO = 48;
const DESC_IOTLB_QW1_IH = bit(6);
const DESC_IOTLB_QW1_ADDR = bits(63, 12);
const DESC_CONTEXT_CACHE = 0x1;
const DESC_IOTLB = 0x2;
const DESC_DEVICE_TLB = 0x3;
const DESC_IEC = 0x4;
const DESC_WAIT = 0x5;
const DESC_CC_QW0_RSVD = bits(15, 6) | bits(63, 50);
const DESC_IOTLB_QW0_RSVD = bits(15, 8) | bits(63, 32);
const DESC_IOTLB_QW1_RSVD = bits(11, 7);
const DESC_IOTLB_QW1_AM_HI = 5;
const DESC_IOTLB_QW1_AM_LO = 0;
const DESC_DEVTLB_QW0_RSVD = bits(11, 4) | bits(31, 21) | bits(51, 48);
const DESC_DEVTLB_QW1_RSVD = bits(11, 1);
const DESC_IEC_QW0_RSVD = bits(26, 5) | bits(63, 48);
const DESC_IEC_G_INDEX = bit(4); // 0 global, 1 index-selective
const DESC_IEC_IM_HI = 31;
const DESC_IEC_IM_LO = 27;
const DESC_IEC_IIDX_HI = 47;
const DESC_IEC_IIDX_LO = 32;
const DESC_WAIT_IF = bit(4);
const DESC_WAIT_SW = bit(5);
const DESC_WAIT_QW0_RSVD = bits(31, 7); // includes PD (bit 7), unsupported
const DESC_WAIT_STATUS_DATA_HI = 63;
const DESC_WAIT_STATUS_DATA_LO = 32;
const DESC_WAIT_QW1_RSVD = bits(1, 0);
const DESC_WAIT_QW1_ADDR = ~bits(1, 0) & MASK64;
/** PASID-based descriptors (§7.5), valid only in scalable mode (latched TTM = 01). */
const DESC_PASID_IOTLB = 0x6;
const DESC_PASID_CACHE = 0x7;
const DESC_PASID_DEVICE_TLB = 0x8;
const DESC_PASID_HI = 51;
const DESC_PASID_LO = 32;
/** Type 6: G 10 = every mapping of the PASID in the DID, 11 = page-selective within the PASID; 00 and 01 reserved. */
const DESC_PIOTLB_QW0_RSVD = bits(15, 6) | bits(63, 52);
const DESC_PIOTLB_G_PASID = 2n;
const DESC_PIOTLB_G_PAGE = 3n;
/** Type 7: G 00 = every PASID of the DID, 01 = one PASID of the DID, 11 = global; 10 reserved. */
const DESC_PC_QW0_RSVD = bits(15, 6) | bits(63, 52);
const DESC_PC_G_DOMAIN = 0n;
const DESC_PC_G_PASID = 1n;
const DESC_PC_G_GLOBAL = 3n;
/** Type 8 (needs ECAP.DT): QW0 8:4 MIP, 15:12 and 63:52 PFSID, 31:16 SID, 51:32 PASID; QW1 0 G, 11 S, 63:12 ADDR. */
const DESC_PDEVTLB_QW1_RSVD = bits(10, 1);

// ---------------------------------------------------------------------------
// Guest memory
// ---------------------------------------------------------------------------

const FRAME_SHIFT = 12n;
const FRAME_SIZE = 4096;
const FRAME_OFFSET_MASK = 0xfffn;

/** Sparse guest-physical memory: 4 KiB frames created on first write; never-written bytes read 0. */
class SparseMemory {
  private readonly frames = new Map<bigint, Uint8Array>();

  read(addr: bigint, len: number): Uint8Array {
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i++) {
      const a = addr + BigInt(i);
      const frame = this.frames.get(a >> FRAME_SHIFT);
      out[i] = frame === undefined ? 0 : frame[Number(a & FRAME_OFFSET_MASK)]!;
    }
    return out;
  }

  write(addr: bigint, bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) {
      const a = addr + BigInt(i);
      const fn = a >> FRAME_SHIFT;
      let frame = this.frames.get(fn);
      if (frame === undefined) {
        frame = new Uint8Array(FRAME_SIZE);
        this.frames.set(fn, frame);
      }
      frame[Number(a & FRAME_OFFSET_MASK)] = bytes[i]!;
    }
  }
}

function littleEndianToBigInt(bytes: Uint8Array): bigint {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  return v;
}

function bigIntToLittleEndian(v: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = Number((v >> BigInt(8 * i)) & 0xffn);
  return out;
}

// ---------------------------------------------------------------------------
// Register descriptions
// ---------------------------------------------------------------------------

/** One guest write, as seen by one register it touches. */
interface RegisterWrite {
  /** The register's offset. */
  off: number;
  /** The written value, positioned within this register (bits outside `covered` are 0). */
  value: bigint;
  /** The bits of this register the access covered (whole bytes). */
  covered: bigint;
  /** The register value before the write. */
  before: bigint;
}

interface RegisterDef {
  name: string;
  off: number;
  width: 4 | 8;
  reset: bigint;
  /** Bits a guest write stores (RW). */
  writable: bigint;
  /** Bits a guest write of 1 clears (RW1C). */
  w1c: bigint;
  /** Bits that read as 0 whatever is stored (WO). */
  writeOnly: bigint;
  /** Side effects, run after every register touched by the access has stored its bytes. */
  onWrite?: (w: RegisterWrite) => void;
}

/** What reading one 128-bit structure (root or context entry, invalidation descriptor) gave. */
type EntryRead = { ok: true; lo: bigint; hi: bigint } | { ok: false };

// ---------------------------------------------------------------------------
// The remapping unit
// ---------------------------------------------------------------------------

export class RefModel {
  readonly events: ModelEvent[] = [];

  private readonly cfg: ModelConfig;
  private readonly mem = new SparseMemory();
  /** Register definitions by offset, and the stored value of each. */
  private readonly defs = new Map<number, RegisterDef>();
  private readonly values = new Map<number, bigint>();

  /** Root-table address latched by GCMD.SRTP (§1.3). */
  private latchedRootTable = 0n;
  /** RTADDR.TTM latched by GCMD.SRTP (§3): 0 legacy, 1 scalable; always 0 without `sm`. */
  private latchedTtm = TTM_LEGACY;

  /** Internal API (also used by windows.ts): RTADDR.TTM as SRTP latched it (0 legacy, 1 scalable, 2-3 unsupported). */
  get latchedTranslationTableMode(): number {
    return this.latchedTtm;
  }
  /**
   * The interrupt-remapping table latched by GCMD.SIRTP from IRTA (§9.1): its address (bits [12, aw)), its
   * size 2^(S+1) entries, and EIME (x2APIC mode; only with ECAP.EIM). Before the first SIRTP: address 0,
   * 2 entries, xAPIC mode (the reset value of IRTA, as if latched).
   */
  private irtBase = 0n;
  private irtEntries = 2;
  private irtEime = false;
  /** Invalidation queue base and size in bytes, latched when QI is enabled (§7.4). */
  private queueBase = 0n;
  private queueSizeBytes = 0n;
  /** Descriptor width latched with the queue (IQA.DW, §7.4): 16 or 32 bytes. */
  private descriptorBytes = DESCRIPTOR_SIZE;
  /** Index of the fault-recording register the next fault goes to (§6.3 step 5). */
  private nextFaultRecord = 0;
  /** Told of every invalidation the unit performs (see setInvalidationListener). */
  private invalidationListener: ((inv: Invalidation) => void) | undefined;

  constructor(cfg: ModelConfig) {
    if (![39, 48, 57].includes(cfg.aw)) throw new Error(`aw must be 39, 48 or 57, not ${cfg.aw}`);
    if (!Number.isInteger(cfg.nfr) || cfg.nfr < 1 || cfg.nfr > 64) throw new Error(`nfr must be 1..64, not ${cfg.nfr}`);
    if (cfg.ram < 0n) throw new Error('ram must not be negative');
    if (cfg.pi && !cfg.ir) throw new Error('pi (posted interrupts) requires ir');
    // The scalable-mode option rules of the contract (trace-format "Scalable mode", issue 13).
    for (const key of ['flts', 'pasid', 'nest'] as const) if (cfg[key] && !cfg.sm) throw new Error(`${key} requires sm`);
    if (cfg.pasid && cfg.dt) throw new Error('pasid and dt exclude each other');
    if (cfg.flts && cfg.aw === 39) throw new Error('flts requires aw 48 or 57');
    if (cfg.nest && cfg.aw === 39) throw new Error('nest requires aw 48 or 57 (it includes first-stage translation)');
    this.cfg = { ...cfg };
    for (const def of this.registerDefinitions()) {
      this.defs.set(def.off, def);
      this.values.set(def.off, def.reset);
    }
  }

  // ----- guest CPU memory access -------------------------------------------

  writeMem(gpa: bigint, bytes: Uint8Array): void {
    this.checkGuestRange(gpa, bytes.length);
    this.mem.write(gpa, bytes);
  }

  readMem(gpa: bigint, len: number): Uint8Array {
    this.checkGuestRange(gpa, len);
    return this.mem.read(gpa, len);
  }

  private checkGuestRange(gpa: bigint, len: number): void {
    if (gpa < 0n || gpa + BigInt(len) > this.cfg.ram) {
      throw new Error(`guest memory access 0x${gpa.toString(16)}+${len} outside RAM [0, 0x${this.cfg.ram.toString(16)})`);
    }
  }

  // ----- the unit's own memory accesses (root/context/paging entries, descriptors, status writes) -----

  /** A read by the unit; null when any byte lies at or above the end of RAM (a memory error). */
  private unitRead(addr: bigint, len: number): Uint8Array | null {
    if (addr < 0n || addr + BigInt(len) > this.cfg.ram) return null;
    return this.mem.read(addr, len);
  }

  private unitReadQword(addr: bigint): bigint | null {
    const b = this.unitRead(addr, 8);
    return b === null ? null : littleEndianToBigInt(b);
  }

  /** Reads `n` consecutive little-endian quadwords (a 256-bit context entry, a 512-bit PASID entry, a wide descriptor); null on a memory error. */
  private unitReadQwords(addr: bigint, n: number): bigint[] | null {
    const b = this.unitRead(addr, 8 * n);
    if (b === null) return null;
    return Array.from({ length: n }, (_, i) => littleEndianToBigInt(b.subarray(8 * i, 8 * i + 8)));
  }

  /** Reads a 128-bit structure as two little-endian quadwords (§0). */
  private unitRead128(addr: bigint): EntryRead {
    const b = this.unitRead(addr, 16);
    if (b === null) return { ok: false };
    return { ok: true, lo: littleEndianToBigInt(b.subarray(0, 8)), hi: littleEndianToBigInt(b.subarray(8, 16)) };
  }

  /** A write by the unit; false when it would touch memory at or above the end of RAM (nothing is written then). */
  private unitWrite(addr: bigint, bytes: Uint8Array): boolean {
    if (addr < 0n || addr + BigInt(bytes.length) > this.cfg.ram) return false;
    this.mem.write(addr, bytes);
    return true;
  }

  // ----- capability values (§2.3, trace-format "Fixed layout") -------------

  /** CAP.SAGAW: bit 1 (39-bit, AW=1) always, bit 2 (48-bit) from aw 48, bit 3 (57-bit) from aw 57. */
  private sagaw(): bigint {
    switch (this.cfg.aw) {
      case 39:
        return 0b00010n;
      case 48:
        return 0b00110n;
      case 57:
        return 0b01110n;
    }
  }

  private capValue(): bigint {
    return (
      (CAP_ND_64K_DOMAINS << BigInt(CAP_ND_SHIFT)) |
      (this.cfg.cm ? CAP_CM : 0n) |
      (this.sagaw() << BigInt(CAP_SAGAW_SHIFT)) |
      (BigInt(this.cfg.aw - 1) << BigInt(CAP_MGAW_SHIFT)) |
      (BigInt(CAP_FRO_VALUE) << BigInt(CAP_FRO_SHIFT)) |
      (CAP_SLLPS_2M_1G << BigInt(CAP_SLLPS_SHIFT)) |
      CAP_PSI |
      (BigInt(this.cfg.nfr - 1) << BigInt(CAP_NFR_SHIFT)) |
      (CAP_MAMV_VALUE << BigInt(CAP_MAMV_SHIFT)) |
      CAP_DWD |
      CAP_DRD |
      (this.cfg.pi ? CAP_PI : 0n) |
      (this.firstStageSupported() ? CAP_FS1GP : 0n) |
      (this.firstStageSupported() && this.cfg.aw === 57 ? CAP_FS5LP : 0n)
    );
  }

  /** ECAP.FLTS: first-stage translation (`flts`, or `nest`). */
  private firstStageSupported(): boolean {
    return this.cfg.sm && (this.cfg.flts || this.cfg.nest);
  }

  /** ECAP.SLTS (and SRS with it): scalable mode without `flts`, or with `nest` (QEMU 10's `x-flts` drops both). */
  private secondStageSupported(): boolean {
    return this.cfg.sm && (!this.cfg.flts || this.cfg.nest);
  }

  private supervisorRequestsSupported(): boolean {
    return this.secondStageSupported();
  }

  private executeRequestsSupported(): boolean {
    return this.cfg.sm && this.cfg.ers === true;
  }

  private ecapValue(): bigint {
    return (
      ECAP_QI |
      (this.cfg.dt ? ECAP_DT : 0n) |
      (this.cfg.ir ? ECAP_IR : 0n) |
      (this.cfg.eim ? ECAP_EIM : 0n) |
      (this.cfg.pt ? ECAP_PT : 0n) |
      (this.cfg.sc ? ECAP_SC : 0n) |
      (BigInt(ECAP_IRO_VALUE) << BigInt(ECAP_IRO_SHIFT)) |
      (this.cfg.ir ? ECAP_MHMV_VALUE << BigInt(ECAP_MHMV_SHIFT) : 0n) |
      (this.cfg.sm ? ECAP_SMTS : 0n) |
      (this.secondStageSupported() ? ECAP_SLTS : 0n) |
      (this.supervisorRequestsSupported() ? ECAP_SRS : 0n) |
      (this.executeRequestsSupported() ? ECAP_ERS : 0n) |
      (this.firstStageSupported() ? ECAP_FLTS : 0n) |
      (this.cfg.sm && this.cfg.nest ? ECAP_NEST : 0n) |
      (this.cfg.sm && this.cfg.pasid ? ECAP_PASID : 0n) // PSS = 0, as QEMU 10
    );
  }

  /** Address bits a register or table entry may hold: [12, HAW), HAW = aw (trace-format "Fixed layout"). */
  private addressBits(): bigint {
    return bitRange(12, this.cfg.aw);
  }

  // ----- register table (§1.1, §1.2 and the project's decisions) -----------

  private registerDefinitions(): RegisterDef[] {
    const ro = (name: string, off: number, width: 4 | 8, reset: bigint): RegisterDef => ({
      name,
      off,
      width,
      reset,
      writable: 0n,
      w1c: 0n,
      writeOnly: 0n,
    });
    const rw = (name: string, off: number, width: 4 | 8, writable: bigint, onWrite?: (w: RegisterWrite) => void): RegisterDef => ({
      name,
      off,
      width,
      reset: 0n,
      writable,
      w1c: 0n,
      writeOnly: 0n,
      onWrite,
    });
    const { eim, ir } = this.cfg;

    const defs: RegisterDef[] = [
      ro('VER', REG_VER, 4, VER_VALUE),
      ro('CAP', REG_CAP, 8, this.capValue()),
      ro('ECAP', REG_ECAP, 8, this.ecapValue()),
      // GCMD is write-only: nothing stored reads back; the command acts on the written value (§1.3).
      { ...rw('GCMD', REG_GCMD, 4, GCMD_WRITABLE, (w) => this.onGcmdWrite(w.value)), writeOnly: GCMD_WRITABLE },
      ro('GSTS', REG_GSTS, 4, 0n),
      rw('RTADDR', REG_RTADDR, 8, this.addressBits() | (this.cfg.sm ? RTADDR_TTM : 0n)),
      {
        ...rw('CCMD', REG_CCMD, 8, CCMD_WRITABLE, (w) => this.onCcmdWrite(w)),
        writeOnly: CCMD_WRITE_ONLY,
      },
      { ...ro('FSTS', REG_FSTS, 4, 0n), w1c: FSTS_W1C, onWrite: (w) => this.onFstsWrite(w) },
      { ...rw('FECTL', REG_FECTL, 4, ECTL_IM, () => this.onFectlWrite()), reset: ECTL_RESET },
      rw('FEDATA', REG_FEDATA, 4, EDATA_WRITABLE),
      rw('FEADDR', REG_FEADDR, 4, EADDR_WRITABLE),
      rw('FEUADDR', REG_FEUADDR, 4, eim ? EUADDR_WRITABLE : 0n),
      // No protected memory regions (CAP.PLMR = PHMR = 0): read-only zero.
      ro('PMEN', REG_PMEN, 4, 0n),
      ro('PLMBASE', REG_PLMBASE, 4, 0n),
      ro('PLMLIMIT', REG_PLMLIMIT, 4, 0n),
      ro('PHMBASE', REG_PHMBASE, 8, 0n),
      ro('PHMLIMIT', REG_PHMLIMIT, 8, 0n),
      ro('IQH', REG_IQH, 8, 0n),
      rw('IQT', REG_IQT, 8, IQ_OFFSET_MASK, () => this.onIqtWrite()),
      rw('IQA', REG_IQA, 8, this.addressBits() | (this.cfg.sm ? IQA_DW : 0n) | IQA_QS),
      { ...ro('ICS', REG_ICS, 4, 0n), w1c: ICS_IWC, onWrite: () => this.onIcsWrite() },
      { ...rw('IECTL', REG_IECTL, 4, ECTL_IM, () => this.onIectlWrite()), reset: ECTL_RESET },
      rw('IEDATA', REG_IEDATA, 4, EDATA_WRITABLE),
      rw('IEADDR', REG_IEADDR, 4, EADDR_WRITABLE),
      rw('IEUADDR', REG_IEUADDR, 4, eim ? EUADDR_WRITABLE : 0n),
      ro('IQER', REG_IQER, 8, 0n),
      rw('IRTA', REG_IRTA, 8, ir ? this.addressBits() | (eim ? IRTA_EIME : 0n) | IRTA_S : 0n),
      { ...rw('IVA', REG_IVA, 8, IVA_WRITABLE), writeOnly: IVA_WRITABLE },
      rw('IOTLB', REG_IOTLB, 8, IOTLB_WRITABLE, (w) => this.onIotlbWrite(w)),
    ];
    for (let i = 0; i < this.cfg.nfr; i++) {
      const off = REG_FRCD_BASE + FRCD_SIZE * i;
      defs.push(ro(`FRCD${i}.lo`, off, 8, 0n));
      defs.push({ ...ro(`FRCD${i}.hi`, off + 8, 8, 0n), w1c: FRCD_HI_F, onWrite: (w) => this.onFrcdHighWrite(w) });
    }
    return defs;
  }

  private get(off: number): bigint {
    const v = this.values.get(off);
    if (v === undefined) throw new Error(`internal: no register at 0x${off.toString(16)}`);
    return v;
  }

  /** A hardware update of a register (not subject to the guest write masks). */
  private set(off: number, v: bigint): void {
    if (!this.values.has(off)) throw new Error(`internal: no register at 0x${off.toString(16)}`);
    this.values.set(off, v);
  }

  private setBits(off: number, mask: bigint, on: boolean): void {
    const v = this.get(off);
    this.set(off, on ? v | mask : v & ~mask);
  }

  private has(off: number, mask: bigint): boolean {
    return isSet(this.get(off), mask);
  }

  /** The registers overlapping [off, off + size). */
  private registersIn(off: number, size: number): RegisterDef[] {
    const found: RegisterDef[] = [];
    for (const def of this.defs.values()) {
      if (def.off < off + size && off < def.off + def.width) found.push(def);
    }
    return found.sort((a, b) => a.off - b.off);
  }

  private checkAccess(off: number, size: number): void {
    if (size !== 4 && size !== 8) throw new Error(`register access size must be 4 or 8, not ${size}`);
    if (!Number.isInteger(off) || off < 0 || off + size > REG_BLOCK_SIZE) throw new Error(`register offset 0x${off.toString(16)} outside the register block`);
    if (off % size !== 0) throw new Error(`register access at 0x${off.toString(16)} not aligned to its size ${size}`);
  }

  /** Positions an access's value/bytes within one register: shift > 0 when the register starts after the access. */
  private slice(def: RegisterDef, off: number, size: number): { shift: number; covered: bigint } {
    const start = Math.max(off, def.off);
    const end = Math.min(off + size, def.off + def.width);
    const covered = bits(8 * (end - def.off) - 1, 8 * (start - def.off));
    return { shift: 8 * (def.off - off), covered };
  }

  // ----- MMIO ----------------------------------------------------------------

  /**
   * A guest register write. Undefined offsets ignore it. All bytes of the access are stored first (in every
   * register it touches), then the side effects of each touched register run in ascending offset order.
   */
  mmioWrite(off: number, size: 4 | 8, val: bigint): void {
    this.checkAccess(off, size);
    const accessMask = size === 8 ? MASK64 : MASK32;
    const value = val & accessMask;
    const pending: Array<{ def: RegisterDef; write: RegisterWrite }> = [];
    for (const def of this.registersIn(off, size)) {
      const { shift, covered } = this.slice(def, off, size);
      const presented = (shift >= 0 ? value >> BigInt(shift) : value << BigInt(-shift)) & covered;
      const before = this.get(def.off);
      let after = (before & ~(def.writable & covered)) | (presented & def.writable);
      after &= ~(presented & def.w1c);
      this.set(def.off, after);
      pending.push({ def, write: { off: def.off, value: presented, covered, before } });
    }
    for (const { def, write } of pending) def.onWrite?.(write);
  }

  /** A guest register read. Undefined offsets and write-only bits read 0. */
  mmioRead(off: number, size: 4 | 8): bigint {
    this.checkAccess(off, size);
    let result = 0n;
    for (const def of this.registersIn(off, size)) {
      const { shift, covered } = this.slice(def, off, size);
      const visible = this.get(def.off) & ~def.writeOnly & covered;
      result |= shift >= 0 ? visible << BigInt(shift) : visible >> BigInt(-shift);
    }
    return result & (size === 8 ? MASK64 : MASK32);
  }

  // ----- GCMD (§1.3) ------------------------------------------------------

  /**
   * Persistent bits act when they differ from the GSTS bit; one-shot bits act when 1. Decision on the order
   * within one write: the one-shot latches (SRTP, SIRTP) first, so that an enable in the same write uses the
   * new pointer, then TE, QIE, IRE, CFI. SFL, WBF and EAFL are ignored (their status bits are never set).
   */
  private onGcmdWrite(written: bigint): void {
    const { ir } = this.cfg;
    const cmd = written & ~GCMD_IGNORED;
    const persistentChanged = (cmdBit: bigint, stsBit: bigint): boolean => isSet(cmd, cmdBit) !== this.has(REG_GSTS, stsBit);

    if (isSet(cmd, GCMD_SRTP)) {
      this.latchedRootTable = this.get(REG_RTADDR) & bitRange(RTADDR_ADDR_LO, 64);
      // TTM is writable only with sm, so without it the latched mode stays legacy (trace-format "Scalable mode").
      this.latchedTtm = Number(field(this.get(REG_RTADDR), 11, RTADDR_TTM_LO));
      this.setBits(REG_GSTS, GSTS_RTPS, true); // stays 1 from now on
    }
    if (ir && isSet(cmd, GCMD_SIRTP)) {
      // Decision: SIRTP latches the table; it flushes no interrupt entry cache (software invalidates, §9.1).
      const irta = this.get(REG_IRTA);
      this.irtBase = irta & bitRange(IRTA_ADDR_LO, this.cfg.aw);
      this.irtEntries = 2 ** (Number(irta & IRTA_S) + 1);
      this.irtEime = this.cfg.eim && isSet(irta, IRTA_EIME);
      this.setBits(REG_GSTS, GSTS_IRTPS, true);
    }

    if (persistentChanged(GCMD_TE, GSTS_TES)) {
      this.setBits(REG_GSTS, GSTS_TES, isSet(cmd, GCMD_TE));
    }
    if (persistentChanged(GCMD_QIE, GSTS_QIES)) {
      if (isSet(cmd, GCMD_QIE)) this.enableQueuedInvalidation();
      else this.disableQueuedInvalidation();
    }
    if (ir && persistentChanged(GCMD_IRE, GSTS_IRES)) {
      this.setBits(REG_GSTS, GSTS_IRES, isSet(cmd, GCMD_IRE));
    }
    if (ir && persistentChanged(GCMD_CFI, GSTS_CFIS)) {
      this.setBits(REG_GSTS, GSTS_CFIS, isSet(cmd, GCMD_CFI));
    }
  }

  // ----- CCMD (§7.2) and IOTLB (§7.3) register invalidation ----------------

  /** True when the access wrote the upper dword of a 64-bit register (where ICC / IVT live). */
  private static wroteUpperDword(w: RegisterWrite): boolean {
    return isSet(w.covered, bits(63, 32));
  }

  private onCcmdWrite(w: RegisterWrite): void {
    if (!RefModel.wroteUpperDword(w) || !isSet(w.value, CCMD_ICC)) return;
    if (this.has(REG_GSTS, GSTS_QIES)) return; // ignored while QI is enabled: ICC stays 1
    const v = this.get(REG_CCMD);
    const requested = field(v, CCMD_CIRG_HI, CCMD_CIRG_LO);
    // Global, domain-selective (DID) and device-selective (SID with FM) are all performed as requested;
    // the model caches nothing, so only the read-back changes. CIRG 00 is reserved: CAIG 00, nothing done.
    const actual = requested === GRAN_GLOBAL || requested === GRAN_DOMAIN || requested === GRAN_DEVICE_OR_PAGE ? requested : GRAN_NONE;
    // Completed before ICC reads 0 (§7.2): the listener hears of it within this write.
    this.notifyContextInvalidation(
      actual,
      Number(field(v, CCMD_DID_HI, CCMD_DID_LO)),
      Number(field(v, CCMD_SID_HI, CCMD_SID_LO)),
      Number(field(v, CCMD_FM_HI, CCMD_FM_LO)),
    );
    this.set(REG_CCMD, (v & ~CCMD_CAIG & ~CCMD_ICC) | (actual << BigInt(CCMD_CAIG_LO)));
  }

  private onIotlbWrite(w: RegisterWrite): void {
    if (!RefModel.wroteUpperDword(w) || !isSet(w.value, IOTLB_IVT)) return;
    if (this.has(REG_GSTS, GSTS_QIES)) return; // ignored while QI is enabled: IVT stays 1
    const v = this.get(REG_IOTLB);
    const requested = field(v, IOTLB_IIRG_HI, IOTLB_IIRG_LO);
    let actual = GRAN_NONE;
    if (requested === GRAN_GLOBAL || requested === GRAN_DOMAIN) actual = requested;
    const iva = this.get(REG_IVA);
    if (requested === GRAN_DEVICE_OR_PAGE) {
      const am = field(iva, IVA_AM_HI, IVA_AM_LO);
      actual = am > CAP_MAMV_VALUE ? GRAN_NONE : GRAN_DEVICE_OR_PAGE; // AM > MAMV: not performed
    }
    this.notifyIotlbInvalidation(
      actual,
      Number(field(v, IOTLB_DID_HI, IOTLB_DID_LO)),
      iva & IVA_ADDR,
      Number(field(iva, IVA_AM_HI, IVA_AM_LO)),
      isSet(iva, IVA_IH),
    );
    this.set(REG_IOTLB, (v & ~IOTLB_IAIG & ~IOTLB_IVT) | (actual << BigInt(IOTLB_IAIG_LO)));
  }

  // ----- invalidation listener (for the cached-window model, windows.ts) ----

  /**
   * Internal API for windows.ts: `fn` is called for every context-cache, IOTLB or interrupt-entry-cache
   * invalidation this unit performs (CCMD §7.2, IOTLB register §7.3, descriptors 0x1 / 0x2 / 0x4 §7.5), when
   * it completes. Invalidations
   * not performed (CAIG/IAIG 00, an invalid descriptor, a register command while QI is on) are not reported.
   * RefModel caches nothing, so the notification is its only effect.
   */
  setInvalidationListener(fn: ((inv: Invalidation) => void) | undefined): void {
    this.invalidationListener = fn;
  }

  private notifyContextInvalidation(granularity: bigint, did: number, sid: number, fm: number): void {
    const fn = this.invalidationListener;
    if (fn === undefined) return;
    if (granularity === GRAN_GLOBAL) fn({ cache: 'context', granularity: 'global' });
    else if (granularity === GRAN_DOMAIN) fn({ cache: 'context', granularity: 'domain', did });
    else if (granularity === GRAN_DEVICE_OR_PAGE) fn({ cache: 'context', granularity: 'device', did, sid, fm });
  }

  /** `index` = IIDX; reported aligned down to the 2^im-entry block it names (§7.5). */
  private notifyIecInvalidation(indexSelective: boolean, index: number, im: number): void {
    const fn = this.invalidationListener;
    if (fn === undefined) return;
    if (!indexSelective) fn({ cache: 'iec', granularity: 'global' });
    else fn({ cache: 'iec', granularity: 'index', index: index - (index % 2 ** im), im });
  }

  /** `addr` = the ADDR field (bits 63:12); reported aligned down to the 2^am-page block it names (§7.3). */
  private notifyIotlbInvalidation(granularity: bigint, did: number, addr: bigint, am: number, ih: boolean): void {
    const fn = this.invalidationListener;
    if (fn === undefined) return;
    if (granularity === GRAN_GLOBAL) fn({ cache: 'iotlb', granularity: 'global' });
    else if (granularity === GRAN_DOMAIN) fn({ cache: 'iotlb', granularity: 'domain', did });
    else if (granularity === GRAN_DEVICE_OR_PAGE) {
      const aligned = addr & ~bitRange(0, PAGE_SHIFT + am);
      fn({ cache: 'iotlb', granularity: 'page', did, addr: aligned, am, ih });
    }
  }

  // ----- fault status and fault event (§6.2, §6.4) ------------------------

  private faultConditionsPending(): boolean {
    return this.has(REG_FSTS, FSTS_EVENT_CONDITIONS);
  }

  /**
   * Sets an FSTS interrupt condition (PPF, PFO or IQE). When no condition was pending before, this is a new
   * fault event: FECTL.IP := 1, and if unmasked the MSI is sent and IP cleared (§6.4).
   */
  private raiseFaultCondition(fstsBit: bigint): void {
    const wasPending = this.faultConditionsPending();
    this.setBits(REG_FSTS, fstsBit, true);
    if (wasPending) return;
    this.setBits(REG_FECTL, ECTL_IP, true);
    if (!this.has(REG_FECTL, ECTL_IM)) this.sendFaultEvent();
  }

  private sendFaultEvent(): void {
    const addr = (this.get(REG_FEUADDR) << 32n) | this.get(REG_FEADDR);
    this.events.push({ kind: 'fault', addr, data: Number(this.get(REG_FEDATA)) });
    this.setBits(REG_FECTL, ECTL_IP, false);
  }

  /** Software has serviced every condition: the pending message is withdrawn (§6.4). */
  private clearFaultIpIfServiced(): void {
    if (!this.faultConditionsPending()) this.setBits(REG_FECTL, ECTL_IP, false);
  }

  private onFectlWrite(): void {
    if (!this.has(REG_FECTL, ECTL_IM) && this.has(REG_FECTL, ECTL_IP)) this.sendFaultEvent();
  }

  private onFstsWrite(w: RegisterWrite): void {
    this.clearFaultIpIfServiced();
    // Clearing IQE lets the stopped queue resume at the descriptor IQH names (§7.6).
    const iqeCleared = isSet(w.before, FSTS_IQE) && !this.has(REG_FSTS, FSTS_IQE);
    if (iqeCleared) this.processQueue();
  }

  /** Clearing a record's F re-evaluates PPF and then FECTL.IP (§6.2, §6.4). */
  private onFrcdHighWrite(w: RegisterWrite): void {
    const fCleared = isSet(w.before, FRCD_HI_F) && !this.has(w.off, FRCD_HI_F);
    if (!fCleared) return;
    this.recomputePpf();
    this.clearFaultIpIfServiced();
  }

  private frcdLow(i: number): number {
    return REG_FRCD_BASE + FRCD_SIZE * i;
  }

  private frcdHigh(i: number): number {
    return REG_FRCD_BASE + FRCD_SIZE * i + 8;
  }

  /** PPF is the OR of the F bits of all fault-recording registers (§6.2). */
  private recomputePpf(): void {
    let any = false;
    for (let i = 0; i < this.cfg.nfr; i++) any ||= this.has(this.frcdHigh(i), FRCD_HI_F);
    this.setBits(REG_FSTS, FSTS_PPF, any);
  }

  // ----- invalidation completion event (§6.4 last paragraph) --------------

  private onIcsWrite(): void {
    if (!this.has(REG_ICS, ICS_IWC)) this.setBits(REG_IECTL, ECTL_IP, false);
  }

  private onIectlWrite(): void {
    if (!this.has(REG_IECTL, ECTL_IM) && this.has(REG_IECTL, ECTL_IP)) this.sendCompletionEvent();
  }

  private sendCompletionEvent(): void {
    const addr = (this.get(REG_IEUADDR) << 32n) | this.get(REG_IEADDR);
    this.events.push({ kind: 'completion', addr, data: Number(this.get(REG_IEDATA)) });
    this.setBits(REG_IECTL, ECTL_IP, false);
  }

  /** A wait descriptor with IF (§7.5): only when IWC was clear does it set IWC and raise the event. */
  private signalInvalidationComplete(): void {
    if (this.has(REG_ICS, ICS_IWC)) return;
    this.setBits(REG_ICS, ICS_IWC, true);
    this.setBits(REG_IECTL, ECTL_IP, true);
    if (!this.has(REG_IECTL, ECTL_IM)) this.sendCompletionEvent();
  }

  // ----- queued invalidation (§7.4 - §7.6) ---------------------------------

  private enableQueuedInvalidation(): void {
    const iqa = this.get(REG_IQA);
    this.queueBase = iqa & bitRange(IQA_BASE_LO, 64);
    this.queueSizeBytes = (1n << ((iqa & IQA_QS) + 8n)) * DESCRIPTOR_SIZE; // 2^QS pages: 2^(QS+8) or 2^(QS+7) descriptors
    this.descriptorBytes = isSet(iqa, IQA_DW) ? DESCRIPTOR_SIZE_256 : DESCRIPTOR_SIZE;
    this.set(REG_IQH, 0n);
    this.setBits(REG_GSTS, GSTS_QIES, true);
    if (this.get(REG_IQT) !== this.get(REG_IQH)) this.processQueue();
  }

  private disableQueuedInvalidation(): void {
    this.setBits(REG_GSTS, GSTS_QIES, false);
    this.set(REG_IQH, 0n);
  }

  private onIqtWrite(): void {
    this.processQueue();
  }

  /**
   * Runs the queue from IQH to IQT. Nothing happens unless QI is enabled and no queue error is pending
   * (Decision: this also applies when QI is enabled while FSTS.IQE is still set).
   */
  private processQueue(): void {
    if (!this.has(REG_GSTS, GSTS_QIES) || this.has(REG_FSTS, FSTS_IQE)) return;
    const tail = this.get(REG_IQT);
    const wide = this.descriptorBytes === DESCRIPTOR_SIZE_256;
    // Decision (§7.4, open in the digest): with DW = 1 a tail with bit 4 set names half a descriptor: IQE.
    if (tail >= this.queueSizeBytes || (wide && isSet(tail, IQT_HALF_DESCRIPTOR))) {
      this.raiseFaultCondition(FSTS_IQE); // tail beyond the queue; head unchanged
      return;
    }
    while (this.get(REG_IQH) !== tail) {
      const head = this.get(REG_IQH);
      const desc = this.unitReadQwords(this.queueBase + head, wide ? 4 : 2);
      // Decision: QW2 and QW3 of a 256-bit slot are reserved for every descriptor type this unit knows (§7.5).
      const valid = desc !== null && (!wide || (desc[2] === 0n && desc[3] === 0n)) && this.executeDescriptor(desc[0]!, desc[1]!);
      if (!valid) {
        this.raiseFaultCondition(FSTS_IQE); // IQH stays on the bad descriptor
        return;
      }
      const next = head + this.descriptorBytes;
      this.set(REG_IQH, next === this.queueSizeBytes ? 0n : next);
    }
  }

  /** Validates and executes one 128-bit descriptor; false = invalid (IQE). */
  private executeDescriptor(qw0: bigint, qw1: bigint): boolean {
    if (isSet(qw0, DESC_QW0_TYPE_EXT)) return false;
    const type = Number(field(qw0, DESC_TYPE_HI, DESC_TYPE_LO));
    const granularity = field(qw0, DESC_G_HI, DESC_G_LO);
    switch (type) {
      case DESC_CONTEXT_CACHE: {
        // Nothing cached: a valid context-cache invalidation has no effect but the listener's.
        if (isSet(qw0, DESC_CC_QW0_RSVD) || qw1 !== 0n || granularity === GRAN_NONE) return false;
        this.notifyContextInvalidation(
          granularity,
          Number(field(qw0, DESC_DID_HI, DESC_DID_LO)),
          Number(field(qw0, DESC_CC_SID_HI, DESC_CC_SID_LO)),
          Number(field(qw0, DESC_CC_FM_HI, DESC_CC_FM_LO)),
        );
        return true;
      }
      case DESC_IOTLB: {
        if (isSet(qw0, DESC_IOTLB_QW0_RSVD) || isSet(qw1, DESC_IOTLB_QW1_RSVD) || granularity === GRAN_NONE) return false;
        const am = field(qw1, DESC_IOTLB_QW1_AM_HI, DESC_IOTLB_QW1_AM_LO);
        if (granularity === GRAN_DEVICE_OR_PAGE && am > CAP_MAMV_VALUE) return false;
        this.notifyIotlbInvalidation(
          granularity,
          Number(field(qw0, DESC_DID_HI, DESC_DID_LO)),
          qw1 & DESC_IOTLB_QW1_ADDR,
          Number(am),
          isSet(qw1, DESC_IOTLB_QW1_IH),
        );
        return true;
      }
      case DESC_DEVICE_TLB:
        return !isSet(qw0, DESC_DEVTLB_QW0_RSVD) && !isSet(qw1, DESC_DEVTLB_QW1_RSVD);
      case DESC_IEC: {
        if (isSet(qw0, DESC_IEC_QW0_RSVD) || qw1 !== 0n) return false;
        const indexSelective = isSet(qw0, DESC_IEC_G_INDEX);
        const im = Number(field(qw0, DESC_IEC_IM_HI, DESC_IEC_IM_LO));
        if (indexSelective && im > Number(ECAP_MHMV_VALUE)) return false; // IM beyond ECAP.MHMV
        // Nothing cached: a valid IEC invalidation has no effect but the listener's.
        this.notifyIecInvalidation(indexSelective, Number(field(qw0, DESC_IEC_IIDX_HI, DESC_IEC_IIDX_LO)), im);
        return true;
      }
      case DESC_WAIT:
        return this.executeWait(qw0, qw1);
      case DESC_PASID_IOTLB:
      case DESC_PASID_CACHE:
      case DESC_PASID_DEVICE_TLB:
        // PASID-based descriptors exist only in scalable mode: in legacy mode (latched TTM 00) they are IQE.
        // They are 256-bit descriptors: in a queue of 128-bit descriptors (IQA.DW = 0) they are IQE too
        // (the specification's text for each of them; docs/DESIGN.md "Scalable mode").
        return this.latchedTtm === TTM_SCALABLE && this.descriptorBytes === DESCRIPTOR_SIZE_256 && this.executePasidDescriptor(type, qw0, qw1);
      default:
        return false; // type 0 and 9..15: not supported by this unit
    }
  }

  /** Types 0x6, 0x7 and 0x8 in scalable mode (§7.5); false = invalid (IQE). */
  private executePasidDescriptor(type: number, qw0: bigint, qw1: bigint): boolean {
    const granularity = field(qw0, DESC_G_HI, DESC_G_LO);
    const did = Number(field(qw0, DESC_DID_HI, DESC_DID_LO));
    const pasid = Number(field(qw0, DESC_PASID_HI, DESC_PASID_LO));
    const fn = this.invalidationListener;
    if (type === DESC_PASID_IOTLB) {
      if (isSet(qw0, DESC_PIOTLB_QW0_RSVD) || isSet(qw1, DESC_IOTLB_QW1_RSVD)) return false;
      if (granularity === DESC_PIOTLB_G_PASID) {
        fn?.({ cache: 'piotlb', granularity: 'pasid', did, pasid });
        return true;
      }
      if (granularity !== DESC_PIOTLB_G_PAGE) return false; // 00 and 01 are reserved
      const am = Number(field(qw1, DESC_IOTLB_QW1_AM_HI, DESC_IOTLB_QW1_AM_LO));
      if (BigInt(am) > CAP_MAMV_VALUE) return false;
      const addr = qw1 & DESC_IOTLB_QW1_ADDR & ~bitRange(0, PAGE_SHIFT + am);
      fn?.({ cache: 'piotlb', granularity: 'page', did, pasid, addr, am, ih: isSet(qw1, DESC_IOTLB_QW1_IH) });
      return true;
    }
    if (type === DESC_PASID_CACHE) {
      if (isSet(qw0, DESC_PC_QW0_RSVD) || qw1 !== 0n) return false;
      if (granularity === DESC_PC_G_GLOBAL) fn?.({ cache: 'pasid', granularity: 'global' });
      else if (granularity === DESC_PC_G_DOMAIN) fn?.({ cache: 'pasid', granularity: 'domain', did });
      else if (granularity === DESC_PC_G_PASID) fn?.({ cache: 'pasid', granularity: 'pasid', did, pasid });
      else return false; // 10 is reserved
      return true;
    }
    // PASID-based device-TLB invalidation: valid only with device-TLB support; there is no device-TLB to flush.
    return this.cfg.dt && !isSet(qw1, DESC_PDEVTLB_QW1_RSVD);
  }

  /** Invalidation wait (§7.5): SW writes the status data, then IF signals completion; neither is a plain fence. */
  private executeWait(qw0: bigint, qw1: bigint): boolean {
    if (isSet(qw0, DESC_WAIT_QW0_RSVD) || isSet(qw1, DESC_WAIT_QW1_RSVD)) return false;
    if (isSet(qw0, DESC_WAIT_SW)) {
      const data = field(qw0, DESC_WAIT_STATUS_DATA_HI, DESC_WAIT_STATUS_DATA_LO);
      if (!this.unitWrite(qw1 & DESC_WAIT_QW1_ADDR, bigIntToLittleEndian(data, 4))) return false;
    }
    if (isSet(qw0, DESC_WAIT_IF)) this.signalInvalidationComplete();
    return true;
  }

  // ----- DMA translation (§5.1) ---------------------------------------------

  /**
   * A DMA request. PCIe requests never cross a 4 KiB boundary, so one that does is what a DMA engine
   * issues as one request per page, in address order: each is translated (and its fault recorded)
   * on its own, the first that does not complete is the answer, and a success reports the first
   * byte's gpa. `req` carries a PASID prefix (scalable mode only); absent, the request has none.
   */
  dma(sid: number, iova: bigint, len: number, dir: 'r' | 'w', req?: ModelDmaRequest): ModelDma {
    this.checkRequest(sid, iova, len, req);
    const inFirstPage = 0x1000 - Number(iova & 0xfffn);
    if (len <= inFirstPage) return this.pageDma(sid, iova, len, dir, req).dma;
    const first = this.pageDma(sid, iova, inFirstPage, dir, req);
    if (!first.dma.ok || first.interrupt) return first.dma;
    const second = this.pageDma(sid, (iova + BigInt(inFirstPage)) & MASK64, len - inFirstPage, dir, req);
    if (!second.dma.ok || second.interrupt) return second.dma;
    return first.dma;
  }

  /**
   * One page's request: [iova, iova + len) inside one 4 KiB page. `interrupt`: a write without PASID to
   * the interrupt range, an interrupt request rather than a memory access (it ends a split request). A
   * request with PASID to that range is a memory request like any other (§9.6).
   */
  private pageDma(sid: number, iova: bigint, len: number, dir: 'r' | 'w', req?: ModelDmaRequest): { dma: ModelDma; interrupt: boolean } {
    const dma = this.pageOutcome(sid, iova, len, dir, req);
    const withPasid = req?.pasid !== undefined;
    return { dma, interrupt: dma.ok && !withPasid && dir === 'w' && overlapsInterruptRange(iova, len) };
  }

  private pageOutcome(sid: number, iova: bigint, len: number, dir: 'r' | 'w', req?: ModelDmaRequest): ModelDma {
    const t = this.translate(sid, iova, len, dir, req);
    switch (t.kind) {
      case 'ok':
        this.applyFlagWrites(t.flagWrites ?? []);
        return { ok: true, gpa: t.gpa };
      case 'blocked':
        return { ok: false };
      case 'fault':
        if (isFaultSuppressed(t.reason, t.fpd)) return { ok: false }; // suppressed: nothing recorded (§6.3 step 1)
        this.recordFault(sid, iova, dir, t.reason, req);
        return { ok: false, fault: t.reason };
    }
  }

  /** Internal API (also used by windows.ts): the first-stage Accessed/Dirty updates of a completed request (atomic OR). */
  applyFlagWrites(writes: FlagWrite[]): void {
    for (const w of writes) {
      const v = this.unitReadQword(w.addr);
      if (v !== null) this.unitWrite(w.addr, bigIntToLittleEndian(v | w.set, 8));
    }
  }

  /** Internal API (also used by windows.ts): the fresh translation of one page request (no cache, nothing recorded or written). */
  translateFresh(sid: number, iova: bigint, len: number, dir: 'r' | 'w', req?: ModelDmaRequest): Translation {
    return this.translate(sid, iova, len, dir, req);
  }

  /** Internal API (also used by windows.ts): the argument checks of a DMA request; throws on a malformed one. */
  checkRequest(sid: number, iova: bigint, len: number, req?: ModelDmaRequest): void {
    if (!Number.isInteger(sid) || sid < 0 || sid > 0xffff) throw new Error(`bad source id ${sid}`);
    if (!Number.isInteger(len) || len < 1 || len > 4096) throw new Error(`bad DMA length ${len}`);
    if (iova < 0n || iova > MASK64) throw new Error(`bad iova ${iova}`);
    if (req === undefined) return;
    if (req.pasid === undefined) {
      if (req.priv === true || req.exe === true) throw new Error('priv and exe go with a pasid');
      return;
    }
    if (!Number.isInteger(req.pasid) || req.pasid < 0 || req.pasid > 0xfffff) throw new Error(`bad PASID ${req.pasid} (20 bits)`);
    if (!this.cfg.sm) throw new Error('a request with PASID needs a unit with scalable mode (sm)');
  }

  /**
   * The fresh translation: §5.1 steps 0-1, then the root and context entries from memory, then the rest
   * with the walk from memory. Scalable mode (latched TTM 01) goes its own way from the root entry on.
   * Reads memory only; changes nothing (A/D updates are returned, for pageOutcome to make).
   */
  private translate(sid: number, iova: bigint, len: number, dir: 'r' | 'w', req?: ModelDmaRequest): Translation {
    if (req?.pasid === undefined) {
      const early = this.translateBeforeContext(iova, len, dir);
      if (early !== null) return early;
    } else if (!this.has(REG_GSTS, GSTS_TES)) {
      return { kind: 'ok', gpa: iova }; // translation disabled; with PASID, the interrupt range is memory too
    }
    if (this.latchedTtm === TTM_SCALABLE) return this.translateScalable(sid, iova, len, dir, req);
    if (this.latchedTtm !== TTM_LEGACY) return { kind: 'fault', reason: FR_SM_ROOT_TABLE_INVALID, fpd: false };
    if (req?.pasid !== undefined) return { kind: 'fault', reason: FR_SM_PASID_IN_LEGACY, fpd: false };
    const c = this.lookupContext(sid);
    if (c.kind === 'fault') return { kind: 'fault', reason: c.reason, fpd: c.fpd };
    return this.translateInContext(c.ctx, iova, len, dir).t;
  }

  /**
   * Internal API (also used by windows.ts): §5.1 steps 0 and 1, which no cache affects. Returns the outcome
   * when they decide it (interrupt range, translation disabled), null when the request needs a context.
   */
  translateBeforeContext(iova: bigint, len: number, dir: 'r' | 'w'): Translation | null {
    // 0. The interrupt address range is never translated: a write is an interrupt request, a read is blocked.
    if (overlapsInterruptRange(iova, len)) return dir === 'w' ? { kind: 'ok', gpa: iova } : { kind: 'blocked' };
    // 1. Translation disabled.
    if (!this.has(REG_GSTS, GSTS_TES)) return { kind: 'ok', gpa: iova };
    return null;
  }

  /**
   * Internal API (also used by windows.ts): reads and checks the root and context entries of `sid` from
   * memory, through the latched root-table address (§5.1 steps 2-3, §3.2, §3.3). Reads memory only.
   */
  lookupContext(sid: number): ContextLookup {
    const fault = (reason: number, fpd = false): ContextLookup => ({ kind: 'fault', reason, fpd });
    const aboveHaw = bitRange(this.cfg.aw, 64);
    const bus = BigInt(sid >> 8);
    const devfn = BigInt(sid & 0xff);

    // 2. Root entry (§3.2).
    const root = this.unitRead128(this.latchedRootTable + ROOT_ENTRY_SIZE * bus);
    if (!root.ok) return fault(FR_ROOT_ACCESS);
    if (!isSet(root.lo, ROOT_LO_P)) return fault(FR_ROOT_NOT_PRESENT);
    if (isSet(root.lo, ROOT_LO_RSVD_LOW | aboveHaw) || root.hi !== 0n) return fault(FR_ROOT_RESERVED);

    // 3. Context entry (§3.3). FPD is honoured from here on, also for a not-present entry.
    const ctp = root.lo & bitRange(ROOT_LO_CTP_LO, 64);
    const ctx = this.unitRead128(ctp + CONTEXT_ENTRY_SIZE * devfn);
    if (!ctx.ok) return fault(FR_CONTEXT_ACCESS);
    const fpd = isSet(ctx.lo, CTX_LO_FPD);
    if (!isSet(ctx.lo, CTX_LO_P)) return fault(FR_CONTEXT_NOT_PRESENT, fpd);
    if (isSet(ctx.lo, CTX_LO_RSVD_LOW | aboveHaw) || isSet(ctx.hi, CTX_HI_RSVD)) return fault(FR_CONTEXT_RESERVED, fpd);
    const aw = Number(field(ctx.hi, CTX_HI_AW_HI, CTX_HI_AW_LO));
    if (!isSet(this.get(REG_CAP), bit(CAP_SAGAW_SHIFT + aw))) return fault(FR_CONTEXT_INVALID, fpd);
    const tt = Number(field(ctx.lo, CTX_LO_TT_HI, CTX_LO_TT_LO));
    const ttSupported =
      tt === TT_UNTRANSLATED || (tt === TT_UNTRANSLATED_DEVTLB && this.cfg.dt) || (tt === TT_PASS_THROUGH && this.cfg.pt);
    if (!ttSupported) return fault(FR_CONTEXT_INVALID, fpd);
    return {
      kind: 'ctx',
      ctx: {
        did: Number(field(ctx.hi, CTX_HI_DID_HI, CTX_HI_DID_LO)),
        aw,
        slptptr: ctx.lo & bitRange(CTX_LO_SLPTPTR_LO, 64),
        tt,
        fpd,
      },
    };
  }

  /**
   * Internal API (also used by windows.ts): §5.1 steps 4-9 for a request that has passed steps 0-1, under
   * the valid context `ctx` (read fresh or taken from a context cache). The leaf comes from a walk of the
   * current tables, or is `cached` (an IOTLB hit: no walk, §7.1; it must allow the access, since a unit
   * whose cached rights refuse an access walks again). Reads memory only.
   *
   * `filled` is the leaf a walk produced when a cache may keep it: the walk succeeded and its rights allow
   * the access, even if the output then falls in the interrupt range (Eh), because the leaf itself is a
   * present, valid entry. Absent after a fault of the walk or of the rights, and for an IOTLB hit.
   */
  translateInContext(
    ctx: ContextWord,
    iova: bigint,
    len: number,
    dir: 'r' | 'w',
    cached?: LeafEntry,
  ): { t: Translation; filled?: LeafEntry } {
    const write = dir === 'w';
    const fault = (reason: number): { t: Translation } => ({ t: { kind: 'fault', reason, fpd: ctx.fpd } });

    // 4. Pass-through: identity, no width check.
    if (ctx.tt === TT_PASS_THROUGH) return { t: { kind: 'ok', gpa: iova } };

    // 5. Input address width (§4.1): X = min(MGAW, AGAW of the context's AW).
    const inputWidth = Math.min(this.cfg.aw, 30 + 9 * ctx.aw);
    if (iova >= 1n << BigInt(inputWidth)) return fault(FR_ADDRESS_BEYOND_WIDTH);

    // 6. The leaf: an IOTLB hit, or a walk of the second-level tables from the top.
    let leaf: LeafEntry;
    if (cached !== undefined) {
      if (!leafContains(cached, iova)) throw new Error('internal: cached leaf does not map this iova');
      if (!(write ? cached.w : cached.r)) throw new Error('internal: cached leaf refuses the access (the unit re-walks)');
      leaf = cached;
    } else {
      const walk = this.walk(ctx.slptptr, ctx.aw + 2, iova, write);
      if (walk.kind === 'fault') return fault(walk.reason);
      leaf = walk.leaf;
    }

    // 7. Access rights, only for a complete, well-formed walk: the AND over all levels.
    if (write && !leaf.w) return fault(FR_WRITE);
    if (!write && !leaf.r) return fault(FR_READ);
    const filled = cached === undefined ? leaf : undefined;

    // 8. The output must not reach the interrupt address range.
    const gpa = leaf.frame | (iova & bitRange(0, leafShift(leaf.level)));
    if (overlapsInterruptRange(gpa, len)) return { t: { kind: 'fault', reason: FR_INTERRUPT_ADDRESS, fpd: ctx.fpd }, filled };

    // 9. Success.
    return { t: { kind: 'ok', gpa }, filled };
  }

  // ----- scalable-mode translation (§3.4 - §3.6, issue 13) ---------------------

  /**
   * A request under the latched TTM 01: scalable-mode root entry (LP/LCTP for devfn 0-127, UP/UCTP for
   * 128-255), 256-bit context entry, PASID (the request's, or RID_PASID without one), PASID-directory entry,
   * 512-bit PASID entry, then the walk its PGTT selects. Fault reasons are the scalable-mode codes (§5.4).
   * Where the specification leaves a choice, the model makes the one listed in docs/DESIGN.md "Scalable
   * mode", which the core follows too. Reads memory only.
   */
  private translateScalable(sid: number, iova: bigint, len: number, dir: 'r' | 'w', req?: ModelDmaRequest): Translation {
    const pe = this.lookupScalable(sid, req);
    if (pe.kind === 'fault') return pe.t;
    // Without a cached leaf the tail always answers (null only declines a cached first-stage leaf).
    return this.translateScalableTail(pe.pe, iova, len, dir, req)!.t;
  }

  /**
   * Internal API (also used by windows.ts): the scalable-mode structures of a request (latched TTM 01) from
   * memory, root entry to PASID entry with every check up to 5Bh: the PASID entry word, or the fault.
   */
  lookupScalable(sid: number, req?: ModelDmaRequest): { kind: 'pe'; pe: PasidEntryWord } | { kind: 'fault'; t: Translation } {
    let fpd = false;
    const fault = (reason: number): { kind: 'fault'; t: Translation } => ({ kind: 'fault', t: { kind: 'fault', reason, fpd } });
    const aboveHaw = bitRange(this.cfg.aw, 64);
    const devfn = sid & 0xff;

    // Root entry (§3.4). Decision (as QEMU): both halves' reserved bits are checked once the half used is present.
    const root = this.unitRead128(this.latchedRootTable + ROOT_ENTRY_SIZE * BigInt(sid >> 8));
    if (!root.ok) return fault(FR_SM_ROOT_ACCESS);
    const half = devfn < SM_CONTEXT_TABLE_ENTRIES ? root.lo : root.hi;
    if (!isSet(half, SM_ROOT_P)) return fault(FR_SM_ROOT_NOT_PRESENT);
    if (isSet(root.lo, SM_ROOT_RSVD_LOW | aboveHaw) || isSet(root.hi, SM_ROOT_RSVD_LOW | aboveHaw)) return fault(FR_SM_ROOT_RESERVED);

    // Context entry (§3.5). FPD counts from here on, also that of a not-present entry.
    const ctxAddr = (half & bitRange(12, 64)) + SM_CONTEXT_ENTRY_SIZE * BigInt(devfn % SM_CONTEXT_TABLE_ENTRIES);
    const ctx = this.unitReadQwords(ctxAddr, 4);
    if (ctx === null) return fault(FR_SM_CONTEXT_ACCESS);
    const [cq0, cq1, cq2, cq3] = ctx as [bigint, bigint, bigint, bigint];
    fpd = isSet(cq0, SM_CTX_QW0_FPD);
    if (!isSet(cq0, SM_CTX_QW0_P)) return fault(FR_SM_CONTEXT_NOT_PRESENT);
    // Decision: DTE without ECAP.DT and PRE (no ECAP.PRS) are reserved; PASIDE is a field whatever ECAP.PASID.
    const ctxRsvd0 = SM_CTX_QW0_RSVD | aboveHaw | (this.cfg.dt ? 0n : SM_CTX_QW0_DTE) | SM_CTX_QW0_PRE;
    if (isSet(cq0, ctxRsvd0) || isSet(cq1, SM_CTX_QW1_RSVD) || cq2 !== 0n || cq3 !== 0n) return fault(FR_SM_CONTEXT_RESERVED);

    // The PASID: the request's, or RID_PASID (QW1 19:0) for a request without one.
    const withPasid = req?.pasid !== undefined;
    // Decision: without ECAP.PASID a unit accepts no request with PASID, whatever PASIDE says (45h).
    if (withPasid && !(this.cfg.pasid && isSet(cq0, SM_CTX_QW0_PASIDE))) return fault(FR_SM_PASIDE_CLEAR);
    const pasid = withPasid ? req!.pasid! : Number(field(cq1, SM_CTX_QW1_RID_PASID_HI, SM_CTX_QW1_RID_PASID_LO));
    // Decision: ECAP.PSS (0, as QEMU) does not limit PASIDs; the directory size 2^(PDTS+7) does.
    const dirEntries = 2 ** (Number(field(cq0, SM_CTX_QW0_PDTS_HI, SM_CTX_QW0_PDTS_LO)) + 7);
    const dirIndex = pasid >> PASID_DIR_SHIFT;
    if (dirIndex >= dirEntries) return fault(withPasid ? FR_SM_PASID_BEYOND_DIRECTORY : FR_SM_RID_PASID_ERROR);

    // PASID-directory entry (§3.6).
    const de = this.unitReadQword((cq0 & bitRange(12, 64)) + PASID_DIR_ENTRY_SIZE * BigInt(dirIndex));
    if (de === null) return fault(FR_SM_DIR_ACCESS);
    // FPD counts in a not-present entry, never in one whose reserved bits are set (docs/DESIGN.md).
    if (!isSet(de, PASID_DIR_P)) return { kind: 'fault', t: { kind: 'fault', reason: FR_SM_DIR_NOT_PRESENT, fpd: fpd || isSet(de, PASID_DIR_FPD) } };
    if (isSet(de, PASID_DIR_RSVD | aboveHaw)) return fault(FR_SM_DIR_RESERVED);
    fpd ||= isSet(de, PASID_DIR_FPD);

    // PASID-table entry (§3.6).
    const pe = this.unitReadQwords((de & bitRange(12, 64)) + PASID_ENTRY_SIZE * BigInt(pasid & PASID_TABLE_INDEX_MASK), 8);
    if (pe === null) return fault(FR_SM_PASID_ENTRY_ACCESS);
    const [pq0, pq1, pq2] = pe as [bigint, bigint, bigint];
    if (!isSet(pq0, PE_QW0_P)) return { kind: 'fault', t: { kind: 'fault', reason: FR_SM_PASID_ENTRY_NOT_PRESENT, fpd: fpd || isSet(pq0, PE_QW0_FPD) } };
    // Every reserved bit is checked before PGTT, AW and FLPM (5Ah before 5Bh); fields whose capability is
    // absent are reserved; pointer bits at or above HAW only in the pointers the PGTT field names
    // (docs/DESIGN.md "Scalable mode").
    const pgtt = Number(field(pq0, PE_QW0_PGTT_HI, PE_QW0_PGTT_LO));
    const usesSecondStage = pgtt === PGTT_SECOND_STAGE || pgtt === PGTT_NESTED;
    const usesFirstStage = pgtt === PGTT_FIRST_STAGE || pgtt === PGTT_NESTED;
    const ers = this.executeRequestsSupported();
    const peRsvd0 = PE_QW0_RSVD | PE_QW0_SLADE | (ers ? 0n : PE_QW0_SLEE) | (usesSecondStage ? aboveHaw : 0n);
    const peRsvd2 =
      PE_QW2_RSVD | PE_QW2_EAFE | (this.supervisorRequestsSupported() ? 0n : PE_QW2_SRE) | (ers ? 0n : PE_QW2_ERE) | (usesFirstStage ? aboveHaw : 0n);
    const flpm = Number(field(pq2, PE_QW2_FLPM_HI, PE_QW2_FLPM_LO));
    if (isSet(pq0, peRsvd0) || isSet(pq1, PE_QW1_RSVD) || isSet(pq2, peRsvd2) || pe.slice(3).some((q) => q !== 0n)) {
      return fault(FR_SM_PASID_ENTRY_RESERVED);
    }
    fpd ||= isSet(pq0, PE_QW0_FPD);
    const aw = Number(field(pq0, PE_QW0_AW_HI, PE_QW0_AW_LO));
    const awSupported = isSet(this.get(REG_CAP), bit(CAP_SAGAW_SHIFT + aw));
    const flpmSupported = flpm === FLPM_4_LEVEL || (flpm === FLPM_5_LEVEL && isSet(this.get(REG_CAP), CAP_FS5LP));
    const valid =
      (pgtt === PGTT_FIRST_STAGE && this.firstStageSupported() && flpmSupported) ||
      (pgtt === PGTT_SECOND_STAGE && this.secondStageSupported() && awSupported) ||
      (pgtt === PGTT_NESTED && this.cfg.nest && awSupported && flpmSupported) ||
      (pgtt === PGTT_PASS_THROUGH && this.cfg.pt);
    if (!valid) return fault(FR_SM_PASID_ENTRY_INVALID);

    const did = Number(field(pq1, PE_QW1_DID_HI, PE_QW1_DID_LO));
    return { kind: 'pe', pe: { pasid, did, fpd, pgtt, ss: { top: pq0 & bitRange(12, 64), aw }, qw2: pq2 } };
  }

  /**
   * Internal API (also used by windows.ts): a request through the valid PASID entry `pe` (read now, or taken
   * from a context cache): 5Ch / 5Dh, then the walk its PGTT selects, or a cached translation: `cached.ss`
   * a second-stage IOTLB leaf (it must map the address with rights allowing the access), `cached.fs` a
   * PASID-tagged one (null when it does not cover the request: the unit walks instead). Reads memory only.
   * `ssFill` / `fsFill`: what a walk produced that the unit's IOTLBs may keep (the second-stage leaf whose
   * rights allowed the access; a first-stage or nested translation that completed).
   */
  translateScalableTail(
    pe: PasidEntryWord,
    iova: bigint,
    len: number,
    dir: 'r' | 'w',
    req?: ModelDmaRequest,
    cached: { ss?: LeafEntry; fs?: FsLeaf } = {},
  ): { t: Translation; ssFill?: LeafEntry; fsFill?: FsLeaf } | null {
    const fault = (reason: number): { t: Translation } => ({ t: { kind: 'fault', reason, fpd: pe.fpd } });
    const withPasid = req?.pasid !== undefined;
    const pq2 = pe.qw2;
    // The request's privilege and execute attributes. A request without PASID is a user, non-execute
    // request: RID_PRIV (context bit 84) is accepted and not acted on (docs/DESIGN.md "Scalable mode").
    const priv = withPasid && req!.priv === true;
    const exe = withPasid && req!.exe === true;
    if (exe && !isSet(pq2, PE_QW2_ERE)) return fault(FR_SM_ERE_CLEAR);
    if (priv && !isSet(pq2, PE_QW2_SRE)) return fault(FR_SM_SRE_CLEAR);

    const write = dir === 'w';
    const ss: SecondStage = pe.ss;
    const done = (gpa: bigint, extra: { flagWrites?: FlagWrite[]; ssFill?: LeafEntry; fsFill?: FsLeaf } = {}): { t: Translation; ssFill?: LeafEntry; fsFill?: FsLeaf } => {
      // The output must not reach the interrupt address range (§5.1 step 8; 87h in scalable mode). A second-
      // stage leaf is kept even then (as in legacy mode); a first-stage translation only when it completed.
      if (overlapsInterruptRange(gpa, len)) return { ...fault(FR_SM_INTERRUPT_ADDRESS), ssFill: extra.ssFill };
      const t: Translation = extra.flagWrites === undefined ? { kind: 'ok', gpa } : { kind: 'ok', gpa, flagWrites: extra.flagWrites };
      return { t, ssFill: extra.ssFill, fsFill: extra.fsFill };
    };
    switch (pe.pgtt) {
      case PGTT_PASS_THROUGH:
        return done(iova); // identity, no width check (as legacy pass-through)
      case PGTT_SECOND_STAGE: {
        const reasons = { beyond: FR_SM_ADDRESS_BEYOND, write: FR_SM_WRITE, read: FR_SM_READ };
        if (cached.ss !== undefined) {
          const leaf = cached.ss;
          if (!leafContains(leaf, iova) || !(write ? leaf.w : leaf.r)) throw new Error('internal: cached leaf does not serve this request');
          if (iova >= 1n << BigInt(Math.min(this.cfg.aw, 30 + 9 * ss.aw))) return fault(reasons.beyond);
          return done(leaf.frame | (iova & bitRange(0, leafShift(leaf.level))));
        }
        const out = this.secondStageLeaf(ss, iova, write, reasons);
        if (out.kind === 'fault') return fault(out.reason);
        return done(out.gpa, { ssFill: out.leaf });
      }
      default: {
        const access = { write, priv, exe, wpe: isSet(pq2, PE_QW2_WPE) };
        const flpm = Number(field(pq2, PE_QW2_FLPM_HI, PE_QW2_FLPM_LO));
        if (!this.canonical(iova, flpm)) return fault(FR_SM_NOT_CANONICAL);
        if (cached.fs !== undefined) {
          // A hit serves the request only when the entry covers it (user/supervisor, write rights, Dirty
          // already set, the second stage's rights); otherwise the unit walks (that is another path).
          const l = cached.fs;
          if (l.did !== pe.did || l.pasid !== pe.pasid || !leafContains({ iovaBase: l.iovaBase, frame: l.frame, level: l.level, r: true, w: true }, iova)) {
            throw new Error('internal: cached first-stage leaf does not map this request');
          }
          const userOk = priv || l.fsU;
          const ok = write ? l.ssW && l.dirty && (l.fsW || (priv && !access.wpe)) : l.ssR;
          if (!userOk || !ok) return null;
          return done(l.frame | (iova & bitRange(0, leafShift(l.level))));
        }
        const fs = this.firstStage(pq2, flpm, pe.pgtt === PGTT_NESTED ? ss : null, iova, access);
        if (fs.kind === 'fault') return fault(fs.reason);
        const t = done(fs.gpa, { flagWrites: fs.flagWrites });
        if (t.t.kind !== 'ok') return t;
        return { t: t.t, fsFill: { did: pe.did, pasid: pe.pasid, iovaBase: iova & ~bitRange(0, leafShift(fs.level)), frame: fs.gpa & ~bitRange(0, leafShift(fs.level)), level: fs.level, ...fs.rights } };
      }
    }
  }

  /**
   * Translates `addr` through the second stage (§4: the legacy second-level format, levels and width from
   * the PASID entry's AW): the width check, the walk, the access rights. `reasons` names the faults of the
   * width check and of missing rights, which depend on what is being translated (the request's address,
   * or a first-stage table in nested translation).
   */
  private secondStage(
    ss: SecondStage,
    addr: bigint,
    write: boolean,
    reasons: { beyond: number; write: number; read: number },
  ): { kind: 'ok'; gpa: bigint } | { kind: 'fault'; reason: number } {
    const r = this.secondStageLeaf(ss, addr, write, reasons);
    return r.kind === 'ok' ? { kind: 'ok', gpa: r.gpa } : r;
  }

  /** secondStage, also giving the leaf the walk ended on (its rights ANDed over the walk). */
  private secondStageLeaf(
    ss: SecondStage,
    addr: bigint,
    write: boolean,
    reasons: { beyond: number; write: number; read: number },
  ): { kind: 'ok'; gpa: bigint; leaf: LeafEntry } | { kind: 'fault'; reason: number } {
    const inputWidth = Math.min(this.cfg.aw, 30 + 9 * ss.aw);
    if (addr >= 1n << BigInt(inputWidth)) return { kind: 'fault', reason: reasons.beyond };
    const walk = this.walk(ss.top, ss.aw + 2, addr, write);
    if (walk.kind === 'fault') {
      // The legacy walk's reasons in their scalable-mode form: 3h (the top table unreadable) is 7Bh, 7h is 78h,
      // Ch is 7Ah; a not-present entry (5h / 6h) is missing rights.
      switch (walk.reason) {
        case FR_CONTEXT_INVALID:
          return { kind: 'fault', reason: FR_SM_SS_TOP_INVALID };
        case FR_PAGING_ENTRY_ACCESS:
          return { kind: 'fault', reason: FR_SM_SS_ENTRY_ACCESS };
        case FR_PAGING_ENTRY_RESERVED:
          return { kind: 'fault', reason: FR_SM_SS_RESERVED };
        default:
          return { kind: 'fault', reason: write ? reasons.write : reasons.read };
      }
    }
    const leaf = walk.leaf;
    if (write ? !leaf.w : !leaf.r) return { kind: 'fault', reason: write ? reasons.write : reasons.read };
    return { kind: 'ok', gpa: leaf.frame | (addr & bitRange(0, leafShift(leaf.level))), leaf };
  }

  /** Canonical for first-stage paging of FLPM's levels: bits 63 .. (width - 1) all equal, width 48 or 57. */
  private canonical(iova: bigint, flpm: number): boolean {
    const width = leafShift(flpm === FLPM_5_LEVEL ? 5 : 4) + SL_INDEX_BITS;
    const upper = iova >> BigInt(width - 1);
    return upper === 0n || upper === (1n << BigInt(64 - width + 1)) - 1n;
  }

  /**
   * First-stage translation (x86-64 4- or 5-level paging, FLPM), alone or nested over `ss`. Checks, in
   * this order: canonical input (80h); per level from FLPTR down, the table read (73h for the table FLPTR
   * names, 70h below; in nested translation the table's address first goes through the second stage: 74h
   * beyond its width, 75h / 76h when it cannot be read), P (71h), reserved bits (72h); then on the leaf:
   * U/S for a user request (81h), XD for an execute request (82h), R/W for a write (85h) unless a
   * supervisor request with WPE = 0; nested: each entry needing an Accessed/Dirty flag must be writable
   * through the second stage (77h), then the output goes through the second stage (83h beyond its width,
   * 85h / 86h). Rights are the AND (XD the OR) over every level. Accessed in every entry used and Dirty in
   * the leaf of a write are returned as flag writes, made only when the whole request completes.
   */
  private firstStage(
    pq2: bigint,
    flpm: number,
    nested: SecondStage | null,
    iova: bigint,
    access: { write: boolean; priv: boolean; exe: boolean; wpe: boolean },
  ):
    | { kind: 'ok'; gpa: bigint; flagWrites: FlagWrite[]; level: number; rights: { fsW: boolean; fsU: boolean; dirty: boolean; ssR: boolean; ssW: boolean } }
    | { kind: 'fault'; reason: number } {
    const fault = (reason: number): { kind: 'fault'; reason: number } => ({ kind: 'fault', reason });
    const levels = flpm === FLPM_5_LEVEL ? 5 : 4;
    // Canonical: bits 63 .. (width - 1) all equal, width 48 or 57.
    const width = leafShift(levels) + SL_INDEX_BITS;
    const upper = iova >> BigInt(width - 1);
    if (upper !== 0n && upper !== (1n << BigInt(64 - width + 1)) - 1n) return fault(FR_SM_NOT_CANONICAL);

    const tableGpaToAddress = (gpa: bigint, top: boolean): { kind: 'ok'; gpa: bigint } | { kind: 'fault'; reason: number } => {
      if (nested === null) return { kind: 'ok', gpa };
      const r = top ? FR_SM_NESTED_FS_TOP_READ : FR_SM_NESTED_FS_ENTRY_READ;
      return this.secondStage(nested, gpa, false, { beyond: FR_SM_NESTED_FS_ADDRESS_BEYOND, write: r, read: r });
    };

    const rsvdAddress = bitRange(Math.min(this.cfg.aw, FS_ADDR_TOP), FS_ADDR_TOP);
    const fs1gp = isSet(this.get(REG_CAP), CAP_FS1GP);
    let tableGpa = pq2 & bitRange(12, 64);
    let rw = true;
    let us = true;
    let xd = false;
    const used: Array<{ tableGpa: bigint; addr: bigint; entry: bigint; leaf: boolean }> = [];
    for (let level = levels; level >= 1; level--) {
      const top = level === levels;
      const table = tableGpaToAddress(tableGpa, top);
      if (table.kind === 'fault') return table;
      const shift = leafShift(level);
      const addr = table.gpa + SL_ENTRY_SIZE * ((iova >> BigInt(shift)) & SL_INDEX_MASK);
      const entry = this.unitReadQword(addr);
      if (entry === null) return fault(top ? FR_SM_FS_TOP_ACCESS : FR_SM_FS_ENTRY_ACCESS);
      if (!isSet(entry, FS_P)) return fault(FR_SM_FS_NOT_PRESENT);
      const ps = isSet(entry, FS_PS);
      const leaf = level === 1 || (level === 2 && ps) || (level === 3 && ps && fs1gp);
      let rsvd = rsvdAddress;
      if (level >= 4 || (level === 3 && !fs1gp)) rsvd |= FS_PS;
      if (leaf && level === 3) rsvd |= FS_1G_FRAME_RSVD;
      if (leaf && level === 2) rsvd |= FS_2M_FRAME_RSVD;
      if (isSet(entry, rsvd)) return fault(FR_SM_FS_RESERVED);
      rw &&= isSet(entry, FS_RW);
      us &&= isSet(entry, FS_US);
      xd ||= isSet(entry, FS_XD);
      used.push({ tableGpa, addr, entry, leaf });
      const frameMask = bitRange(shift, FS_ADDR_TOP);
      if (leaf) {
        let gpa = (entry & frameMask) | (iova & bitRange(0, shift));
        if (!access.priv && !us) return fault(FR_SM_USER_TO_SUPERVISOR);
        if (access.exe && xd) return fault(FR_SM_NO_EXECUTE);
        if (access.write && !rw && (!access.priv || access.wpe)) return fault(FR_SM_WRITE);
        // Accessed/Dirty: nested, each entry that needs a flag must be writable through the second stage
        // (77h), checked before the output goes through the second stage (as a walk sets flags on its way).
        const flagWrites: FlagWrite[] = [];
        for (const u of used) {
          const set = (isSet(u.entry, FS_A) ? 0n : FS_A) | (u.leaf && access.write && !isSet(u.entry, FS_D) ? FS_D : 0n);
          if (set === 0n) continue;
          if (nested !== null) {
            const w = this.secondStage(nested, u.tableGpa, true, {
              beyond: FR_SM_NESTED_FS_ADDRESS_BEYOND,
              write: FR_SM_NESTED_FS_ENTRY_WRITE,
              read: FR_SM_NESTED_FS_ENTRY_WRITE,
            });
            if (w.kind === 'fault') return w;
          }
          flagWrites.push({ addr: u.addr, set });
        }
        // Nested: the output address through the second stage; beyond its width is 83h (the address
        // beyond what the unit translates), as for a second-stage-only request.
        // The translation as a PASID-tagged IOTLB may keep it: the smaller of the two stages' pages, the
        // rights ANDed over the walk, the leaf's Dirty flag as read, the second stage's rights on the output.
        let pageLevel = level;
        let ss = { r: true, w: true };
        if (nested !== null) {
          const out = this.secondStageLeaf(nested, gpa, access.write, { beyond: FR_SM_ADDRESS_BEYOND, write: FR_SM_WRITE, read: FR_SM_READ });
          if (out.kind === 'fault') return out;
          gpa = out.gpa;
          pageLevel = Math.min(level, out.leaf.level);
          ss = { r: out.leaf.r, w: out.leaf.w };
        }
        const rights = { fsW: rw, fsU: us, dirty: access.write || isSet(entry, FS_D), ssR: ss.r, ssW: ss.w };
        return { kind: 'ok', gpa, flagWrites, level: pageLevel, rights };
      }
      tableGpa = entry & bitRange(PAGE_SHIFT, FS_ADDR_TOP);
    }
    throw new Error('internal: first-stage walk ended without a leaf');
  }

  /** The second-level walk (§4.1 - §4.3). */
  private walk(topTable: bigint, levels: number, iova: bigint, write: boolean): { kind: 'leaf'; leaf: LeafEntry } | { kind: 'fault'; reason: number } {
    let table = topTable;
    let r = true;
    let w = true;
    for (let level = levels; level >= 1; level--) {
      const shift = leafShift(level);
      const index = (iova >> BigInt(shift)) & SL_INDEX_MASK;
      const entry = this.unitReadQword(table + SL_ENTRY_SIZE * index);
      if (entry === null) {
        // Decision (§5.1 step 7): the table the context names is "invalid programming of the context entry".
        return { kind: 'fault', reason: level === levels ? FR_CONTEXT_INVALID : FR_PAGING_ENTRY_ACCESS };
      }
      if (!isSet(entry, SL_R | SL_W)) return { kind: 'fault', reason: write ? FR_WRITE : FR_READ }; // not present
      const leaf = level === 1 || ((level === 2 || level === 3) && isSet(entry, SL_PS));
      if (isSet(entry, this.reservedBits(level, leaf))) return { kind: 'fault', reason: FR_PAGING_ENTRY_RESERVED };
      r &&= isSet(entry, SL_R);
      w &&= isSet(entry, SL_W);
      if (leaf) {
        const pageMask = ~bitRange(0, shift);
        return { kind: 'leaf', leaf: { iovaBase: iova & pageMask, frame: entry & SL_ADDR_MASK & pageMask, level, r, w } };
      }
      table = entry & SL_ADDR_MASK;
    }
    throw new Error('internal: walk ended without a leaf');
  }

  /**
   * Reserved bits of a present second-level entry (§4.2, §4.3, with HAW = aw): address bits [min(aw,52), 52);
   * TM (bit 62) always in a non-leaf entry and in a leaf unless device-TLBs are supported (TM is a leaf
   * field, §4.2; QEMU's non-leaf masks keep it whatever DT, §4.3); SNP (bit 11) always in a non-leaf entry and in a leaf unless
   * snoop control is supported; PS in levels 5 and 4; the frame bits below a large page's alignment.
   * Ignored: bits 10:8, 6:2, 63, 61:52, and bit 7 of a level-1 entry.
   */
  private reservedBits(level: number, leaf: boolean): bigint {
    let rsvd = bitRange(Math.min(this.cfg.aw, SL_ADDR_TOP), SL_ADDR_TOP);
    if (!leaf || !this.cfg.dt) rsvd |= SL_TM;
    if (!leaf || !this.cfg.sc) rsvd |= SL_SNP;
    if (level >= 4) rsvd |= SL_PS;
    if (leaf && level === 3) rsvd |= SL_1G_FRAME_RSVD;
    if (leaf && level === 2) rsvd |= SL_2M_FRAME_RSVD;
    return rsvd;
  }

  // ----- interrupt remapping (§9) --------------------------------------------

  /**
   * An interrupt request: a DWORD write of `data` to `addr` (§9.4) from requester `sid`, or from a source
   * without a requester id (`sid` null: no source validation). §9.6 with the project's decisions: the steps
   * before the IRTE (interruptIndex), the IRTE read fresh from the latched table (remapFresh), the checks of
   * the entry and the delivery (remapWithIrte), then fault recording (§6.3).
   */
  msi(sid: number | null, addr: bigint, data: number): ModelMsi {
    this.checkInterruptRequest(sid, addr, data);
    const step = this.interruptIndex(addr, data);
    const t = step.kind === 'index' ? this.remapFresh(sid, step.index).t : step;
    const result = toModelMsi(t);
    if (t.kind === 'fault' && !result.ok && result.fault !== undefined) this.recordInterruptFault(sid, t.reason, t.index);
    return result;
  }

  /** An IOAPIC redirection-table entry as the IOAPIC sends it (ioapicMessage, §9.4), from `sid` (null: none). */
  ioapic(sid: number | null, rte: bigint): ModelMsi {
    if (rte < 0n || rte > MASK64) throw new Error(`bad redirection-table entry ${rte}`);
    const m = ioapicMessage(rte);
    return this.msi(sid, m.addr, m.data);
  }

  /** Internal API (also used by windows.ts): the argument checks of an interrupt request; throws on a malformed one. */
  checkInterruptRequest(sid: number | null, addr: bigint, data: number): void {
    if (sid !== null && (!Number.isInteger(sid) || sid < 0 || sid > 0xffff)) throw new Error(`bad source id ${sid}`);
    if (addr < 0n || addr > MASK64) throw new Error(`bad MSI address ${addr}`);
    if (!Number.isInteger(data) || data < 0 || data > 0xffffffff) throw new Error(`bad MSI data ${data}`);
  }

  /**
   * Internal API (also used by windows.ts): the steps of §9.6 that come before any IRTE, which no cache
   * affects. Returns their outcome when they decide it (remapping off, a malformed request, a compatibility-
   * format message, an index beyond the table), else the interrupt index. Reads registers only.
   */
  interruptIndex(addr: bigint, data: number): InterruptIndexLookup {
    const fault = (reason: number, index = 0): InterruptTranslation => ({ kind: 'fault', reason, fpd: false, index });
    // Remapping off: every message passes unchanged, remappable-format ones too (§9.6, §11.5).
    if (!this.has(REG_GSTS, GSTS_IRES)) return { kind: 'delivered', addr, data };
    // Decision: an address outside 0xFEEx_xxxx (upper half included) is a malformed request (§11.5).
    if (isSet(addr, MSI_ADDR_HIGH) || field(addr, MSI_ADDR_BASE_HI, MSI_ADDR_BASE_LO) !== MSI_ADDR_BASE) {
      return fault(FR_IR_REQUEST_RESERVED);
    }
    // Compatibility format: passes through only in xAPIC mode with CFIS set; otherwise blocked (§9.6).
    if (!isSet(addr, MSI_ADDR_REMAPPABLE)) {
      if (this.has(REG_GSTS, GSTS_CFIS) && !this.irtEime) return { kind: 'delivered', addr, data };
      return fault(FR_IR_COMPAT_BLOCKED);
    }
    // Remappable format (§9.4): index = HANDLE + (SHV ? SUBHANDLE : 0).
    const handle = field(addr, MSI_ADDR_HANDLE_HI, MSI_ADDR_HANDLE_LO) | (isSet(addr, MSI_ADDR_HANDLE_15) ? 1n << 15n : 0n);
    const shv = isSet(addr, MSI_ADDR_SHV);
    if (shv && isSet(BigInt(data), MSI_DATA_RESERVED)) return fault(FR_IR_REQUEST_RESERVED);
    const index = Number(handle + (shv ? BigInt(data) & MSI_DATA_SUBHANDLE : 0n));
    if (index >= this.irtEntries) return fault(FR_IR_INDEX, index);
    return { kind: 'index', index };
  }

  /**
   * Internal API (also used by windows.ts): an interrupt entry cache miss. Reads IRTE `index` of the latched
   * table from memory (23h on a memory error), then remapWithIrte. `irte` is the entry read, when the read
   * succeeded. Reads memory only.
   */
  remapFresh(sid: number | null, index: number): { t: InterruptTranslation; irte?: Irte } {
    const e = this.unitRead128(this.irtBase + IRTE_SIZE * BigInt(index));
    if (!e.ok) return { t: { kind: 'fault', reason: FR_IR_TABLE_ACCESS, fpd: false, index } };
    const irte = { lo: e.lo, hi: e.hi };
    return { t: this.remapWithIrte(sid, index, irte), irte };
  }

  /**
   * Internal API (also used by windows.ts): the steps of §9.6 that use the IRTE of `index` (read fresh, or
   * held by an interrupt entry cache): present, reserved bits, source validation, then delivery. An outcome
   * other than a fault means the entry passed every check. Reads nothing.
   */
  remapWithIrte(sid: number | null, index: number, irte: Irte): InterruptTranslation {
    const { lo, hi } = irte;
    const fpd = isSet(lo, IRTE_LO_FPD);
    const fault = (reason: number): InterruptTranslation => ({ kind: 'fault', reason, fpd, index });
    if (!isSet(lo, IRTE_LO_P)) return fault(FR_IR_NOT_PRESENT);

    // Reserved bits (Decision: all of them, also xAPIC-mode DST 39:32 and 63:48, and IM without CAP.PI).
    const posted = this.cfg.pi && isSet(lo, IRTE_LO_IM);
    let loRsvd: bigint;
    let hiRsvd: bigint;
    if (posted) {
      loRsvd = IRTE_POSTED_LO_RSVD;
      hiRsvd = IRTE_POSTED_HI_RSVD;
    } else {
      loRsvd = IRTE_LO_RSVD | (this.cfg.pi ? 0n : IRTE_LO_IM) | (this.irtEime ? 0n : IRTE_LO_RSVD_XAPIC);
      hiRsvd = IRTE_HI_RSVD;
    }
    if (isSet(lo, loRsvd) || isSet(hi, hiRsvd)) return fault(FR_IR_IRTE_RESERVED);

    // Source validation (§9.5), only for a request that carries a requester id.
    if (sid !== null) {
      const bad = sourceValidationFault(sid, hi);
      if (bad !== null) return fault(bad);
    }

    const vector = Number(field(lo, IRTE_LO_VECTOR_HI, IRTE_LO_VECTOR_LO));
    if (posted) {
      const descriptor = (hi & IRTE_HI_PDA) | (field(lo, IRTE_LO_PDA_HI, IRTE_LO_PDA_LO) << IRTE_PDA_LOW_SHIFT);
      return { kind: 'posted', descriptor, vector, urgent: isSet(lo, bit(IRTE_LO_URG_BIT)) };
    }
    // The delivered interrupt in compatibility format (trace-format "Delivered interrupts").
    const dest = this.irtEime ? field(lo, IRTE_LO_DST_HI, IRTE_LO_DST_LO) : field(lo, IRTE_LO_XAPIC_DST_HI, IRTE_LO_XAPIC_DST_LO);
    const addr =
      MSI_OUT_BASE |
      ((dest & 0xffn) << MSI_OUT_DEST_SHIFT) |
      (field(lo, IRTE_LO_RH_BIT, IRTE_LO_RH_BIT) << MSI_OUT_RH_SHIFT) |
      (field(lo, IRTE_LO_DM_BIT, IRTE_LO_DM_BIT) << MSI_OUT_DM_SHIFT) |
      ((dest >> 8n) << MSI_OUT_DEST_HIGH_SHIFT);
    const data =
      BigInt(vector) |
      (field(lo, IRTE_LO_DLM_HI, IRTE_LO_DLM_LO) << MSI_OUT_DLM_SHIFT) |
      MSI_OUT_ASSERT |
      (field(lo, IRTE_LO_TM_BIT, IRTE_LO_TM_BIT) << MSI_OUT_TM_SHIFT);
    return { kind: 'delivered', addr, data: Number(data) };
  }

  // ----- fault recording (§6.3) ------------------------------------------------

  /**
   * Records the (unsuppressed) fault `reason` of the request (sid, iova, dir), steps 2-5 of §6.3, exactly as
   * dma() does after its own translation faulted. Internal API, also used by windows.ts when the outcome the
   * core chose is a fault of a cached translation.
   */
  recordFault(sid: number, iova: bigint, dir: 'r' | 'w', reason: number, req?: ModelDmaRequest): void {
    // A request with PASID is recorded with PP = 1, PV = its PASID, and its PRIV and EXE (§6.1); without, all 0.
    let prefix = 0n;
    if (req?.pasid !== undefined) {
      prefix = FRCD_HI_PP | (BigInt(req.pasid) << FRCD_HI_PV_SHIFT) | (req.priv === true ? FRCD_HI_PRIV : 0n) | (req.exe === true ? FRCD_HI_EXE : 0n);
    }
    this.writeFaultRecord(sid, iova & FRCD_LO_FI, dir === 'r', reason, prefix);
  }

  /**
   * Records the (unsuppressed) interrupt-remapping fault `reason` of a request from `sid` (null: no requester
   * id, recorded as SID 0) for interrupt index `index`, by the same steps 2-5 of §6.3 as a DMA fault.
   * Decision: FI = index << 48 for 21h - 24h and 26h, 0 for 20h and 25h (where the index is undefined);
   * T = 0. Internal API, also used by windows.ts.
   */
  recordInterruptFault(sid: number | null, reason: number, index: number): void {
    const indexUndefined = reason === FR_IR_REQUEST_RESERVED || reason === FR_IR_COMPAT_BLOCKED;
    const fi = indexUndefined ? 0n : (BigInt(index) << FRCD_LO_IR_INDEX_SHIFT) & MASK64;
    this.writeFaultRecord(sid ?? 0, fi, false, reason);
  }

  /** §6.3 steps 2-5 for a fault with fault info `fi` (FRCD bits 63:12), type T = `read`. */
  private writeFaultRecord(sid: number, fi: bigint, read: boolean, reason: number, prefix = 0n): void {
    if (this.has(REG_FSTS, FSTS_PFO)) return; // step 2: overflow pending, drop
    for (let i = 0; i < this.cfg.nfr; i++) {
      const hi = this.get(this.frcdHigh(i));
      if (isSet(hi, FRCD_HI_F) && (hi & FRCD_HI_SID) === BigInt(sid)) return; // step 3: collapse
    }
    const index = this.nextFaultRecord;
    if (this.has(this.frcdHigh(index), FRCD_HI_F)) {
      this.raiseFaultCondition(FSTS_PFO); // step 4: next record busy
      return;
    }
    // Step 5: write the record (PP, PV, PRIV, EXE from the request's PASID prefix; AT = 0), then F.
    this.set(this.frcdLow(index), fi);
    this.set(this.frcdHigh(index), FRCD_HI_F | (read ? FRCD_HI_T_READ : 0n) | (BigInt(reason) << FRCD_HI_FR_SHIFT) | prefix | BigInt(sid));
    if (!this.has(REG_FSTS, FSTS_PPF)) {
      this.set(REG_FSTS, (this.get(REG_FSTS) & ~FSTS_FRI) | (BigInt(index) << BigInt(FSTS_FRI_LO)));
      this.raiseFaultCondition(FSTS_PPF); // PPF 0 -> 1
    }
    this.nextFaultRecord = (index + 1) % this.cfg.nfr;
  }
}

/**
 * Source-id validation (§9.5) of a request from `sid` against the IRTE high quadword `hi`: null when it
 * passes, else the fault reason. SVT 01: SID compared under the SQ mask; 10: bus range with start bus =
 * IRTE.SID[15:8], end bus = IRTE.SID[7:0] (Linux, FreeBSD; QEMU 7.2 reverses them); 11: reserved, 24h.
 */
function sourceValidationFault(sid: number, hi: bigint): number | null {
  const svt = Number(field(hi, IRTE_HI_SVT_HI, IRTE_HI_SVT_LO));
  const irteSid = Number(field(hi, IRTE_HI_SID_HI, IRTE_HI_SID_LO));
  switch (svt) {
    case SVT_NONE:
      return null;
    case SVT_SID: {
      const mask = SQ_MASKS[Number(field(hi, IRTE_HI_SQ_HI, IRTE_HI_SQ_LO))]!;
      return (sid & mask) === (irteSid & mask) ? null : FR_IR_SOURCE;
    }
    case SVT_BUS_RANGE: {
      const bus = sid >> 8;
      return irteSid >> 8 <= bus && bus <= (irteSid & 0xff) ? null : FR_IR_SOURCE;
    }
    default:
      return FR_IR_IRTE_RESERVED; // Decision: SVT = 11 is a reserved encoding of the IRTE
  }
}

/** An interrupt outcome as RefModel.msi reports it: a fault the IRTE's FPD suppresses carries no reason (§5.3, §6.3). */
export function toModelMsi(t: InterruptTranslation): ModelMsi {
  switch (t.kind) {
    case 'delivered':
      return { ok: true, addr: t.addr, data: t.data };
    case 'posted':
      return { ok: true, posted: true, descriptor: t.descriptor, vector: t.vector, urgent: t.urgent };
    case 'fault':
      return isFaultSuppressed(t.reason, t.fpd) ? { ok: false } : { ok: false, fault: t.reason };
  }
}

/**
 * The message an IOAPIC sends for a redirection-table entry (§9.4). Remappable (bit 48 = 1): a remappable
 * MSI with SHV = 0, HANDLE[14:0] = RTE 63:49, HANDLE[15] = RTE 11, data = the vector (RTE 7:0).
 * Compatibility (bit 48 = 0): destination RTE 63:56 in address 19:12, DM (RTE 11) in address bit 2, data =
 * vector and delivery mode (RTE 10:0) | TM (RTE 15) << 15 | assert (bit 14).
 */
export function ioapicMessage(rte: bigint): { addr: bigint; data: number } {
  if (isSet(rte, RTE_REMAPPABLE)) {
    const handle = field(rte, RTE_HANDLE_HI, RTE_HANDLE_LO) | (field(rte, RTE_HANDLE_15_BIT, RTE_HANDLE_15_BIT) << 15n);
    const addr =
      MSI_OUT_BASE |
      ((handle & 0x7fffn) << BigInt(MSI_ADDR_HANDLE_LO)) |
      MSI_ADDR_REMAPPABLE |
      (handle >> 15n !== 0n ? MSI_ADDR_HANDLE_15 : 0n);
    return { addr, data: Number(rte & RTE_VECTOR) };
  }
  const addr =
    MSI_OUT_BASE |
    (field(rte, RTE_COMPAT_DEST_HI, RTE_COMPAT_DEST_LO) << MSI_OUT_DEST_SHIFT) |
    (field(rte, RTE_HANDLE_15_BIT, RTE_HANDLE_15_BIT) << MSI_OUT_DM_SHIFT);
  const data = (rte & RTE_COMPAT_DATA) | (field(rte, RTE_TM_BIT, RTE_TM_BIT) << MSI_OUT_TM_SHIFT) | MSI_OUT_ASSERT;
  return { addr, data: Number(data) };
}

/** Whether a fault with this reason under this FPD is suppressed: not recorded nor reported (§5.2, §5.3, §6.3 step 1). */
export function isFaultSuppressed(reason: number, fpd: boolean): boolean {
  if (reason >= FR_SM_ROOT_TABLE_INVALID && reason <= FR_SM_A_D_NO_SNOOP_FS) return fpd && !SM_UNQUALIFIED_FAULTS.has(reason);
  return fpd && QUALIFIED_FAULTS.has(reason);
}

/** The number of IOVA bits below a leaf of this level: 12 (4 KiB), 21 (2 MiB), 30 (1 GiB) (§4.1). */
export function leafShift(level: number): number {
  return PAGE_SHIFT + SL_INDEX_BITS * (level - 1);
}

/** Whether the page a leaf maps contains `iova` (the IOTLB's tag match, §7.1). */
export function leafContains(leaf: LeafEntry, iova: bigint): boolean {
  return (iova & ~bitRange(0, leafShift(leaf.level))) === leaf.iovaBase;
}

/** [start, start + len) overlaps 0xFEE00000 - 0xFEEFFFFF. */
export function overlapsInterruptRange(start: bigint, len: number): boolean {
  const last = start + BigInt(len) - 1n;
  return start <= INTERRUPT_RANGE_HI && last >= INTERRUPT_RANGE_LO;
}
