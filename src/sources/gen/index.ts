/**
 * Seeded synthetic workloads (docs/workloads/gen.md): what a guest driver of
 * a NIC, a disk or an accelerator does to its IOMMU domain, as trace lines
 * (`attach`, `map`, `unmap`, `dma`; docs/trace-format.md).
 *
 * Each generator models the Linux 6.1 DMA path it imitates: the driver's
 * buffer lifetimes (e1000 RX recycling and copybreak, TX cleanup in batches;
 * blk-mq requests completing out of order; long-lived accelerator buffers),
 * dma-iommu's IOVA allocator (`IovaDomain`: top-down below 4 GiB first,
 * size-aligned, per-size caches that reuse freed IOVAs last-in first-out),
 * and a page allocator over guest RAM. A seed gives the same bytes on every
 * run; the output streams (`generate` yields one line at a time).
 *
 * Browser-safe: no Node imports.
 */
import { VtdError } from '../../errors.js';

/** Version of the generators' output: bumped whenever a seed would give different bytes. */
export const GEN_VERSION = 1;

export type GenKind = 'network' | 'storage' | 'accelerator';
export const GEN_KINDS: readonly GenKind[] = ['network', 'storage', 'accelerator'];

/** Options every kind takes. */
export interface CommonGenOptions {
  /** PRNG seed, 0 to 2^32-1. */
  seed: number;
  /** Device operations: packets (network), requests (storage), DMAs (accelerator). */
  ops: number;
  /** Device operations per second the workload represents (recorded as `rate=N/s`). */
  rate: number;
  /** Requester id "bb:dd.f". */
  device: string;
  /** Domain id, 1 to 65535 (0 is reserved under caching mode). */
  domain: number;
  /** Header: caching mode. */
  cm: boolean;
  /** Header: address width. */
  aw: 39 | 48 | 57;
  /** Header: bytes of guest RAM. */
  ram: number;
  /** Freed IOVAs wait in a flush queue of this many entries before reuse (0: strict, reused at once). */
  flushQueue: number;
  /** Unmap everything still mapped at the end (the driver unloads). */
  teardown: boolean;
}

export interface NetworkGenOptions extends CommonGenOptions {
  rxRing: number;
  txRing: number;
  /** Fraction of packets received (the rest are transmitted). */
  rxFraction: number;
  /** Frame sizes (bytes, without FCS): a simple IMIX, uniform in [minPacket, maxPacket], or fixed. */
  packetSize: 'imix' | 'uniform' | number;
  minPacket: number;
  maxPacket: number;
  /** Most packets handled per interrupt (NAPI poll). */
  burst: number;
  /** A transmitted packet is reclaimed at the first poll at least this many packets after it. */
  txDelay: number;
  /** Received frames up to this length are copied and their buffer stays mapped (e1000 copybreak). */
  copybreak: number;
  /** Map descriptor rings and issue descriptor DMAs. */
  ringDma: boolean;
}

export interface StorageGenOptions extends CommonGenOptions {
  /** Requests in flight. */
  qd: number;
  /** Request size bounds in bytes (multiples of 4 KiB). */
  minSize: number;
  maxSize: number;
  /** Request sizes: powers of two between the bounds, or uniform in pages. */
  sizeDist: 'pow2' | 'uniform';
  /** Fraction of read requests (the device writes memory). */
  readFraction: number;
  /** Probability that a request's next page physically follows the previous one. */
  contig: number;
  /** Map the submission and completion queues and issue their DMAs. */
  ringDma: boolean;
}

export interface AcceleratorGenOptions extends CommonGenOptions {
  /** Long-lived buffers. */
  buffers: number;
  /** Buffer size bounds in bytes (multiples of 2 MiB). */
  minSize: number;
  maxSize: number;
  /** Fraction of DMAs that read memory (dir "r"). */
  dmaReadFraction: number;
  /** Bytes per DMA, 1 to 4096 (never crossing a 4 KiB page). */
  dmaLen: number;
  /** DMA offsets: random, or a sequential stream per buffer. */
  pattern: 'random' | 'stream';
  /** Replace one buffer (unmap, map a new one) after every N DMAs; 0: never. */
  remapEvery: number;
}

export interface GenOptionsByKind {
  network: NetworkGenOptions;
  storage: StorageGenOptions;
  accelerator: AcceleratorGenOptions;
}

type AnyOptions = Partial<NetworkGenOptions & StorageGenOptions & AcceleratorGenOptions>;
type Value = number | string | boolean;

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const PAGE = 4096;

// ---------------------------------------------------------------------------
// Options: one table gives defaults, parsing, validation ranges and the order
// in the leading comment. The comment key is the command-line flag without
// its dashes, so a comment line is also the command that reproduces the run.

type OptType = 'int' | 'fraction' | 'bytes' | 'bool' | 'rid' | 'rate' | 'choice' | 'packet-size';

interface OptSpec {
  key: keyof AnyOptions & string;
  flag: string;
  kinds: readonly GenKind[];
  type: OptType;
  min?: number;
  max?: number;
  choices?: readonly Value[];
  def: (kind: GenKind, o: AnyOptions) => Value;
}

const ALL = GEN_KINDS;
const NET: readonly GenKind[] = ['network'];
const STO: readonly GenKind[] = ['storage'];
const ACC: readonly GenKind[] = ['accelerator'];
const per = <T extends Value>(n: T, s: T, a: T) => (k: GenKind): T => (k === 'network' ? n : k === 'storage' ? s : a);

const SPECS: readonly OptSpec[] = [
  { key: 'seed', flag: 'seed', kinds: ALL, type: 'int', min: 0, max: 0xffffffff, def: () => 1 },
  { key: 'ops', flag: 'ops', kinds: ALL, type: 'int', min: 1, max: 1e12, def: per(10000, 10000, 100000) },
  { key: 'rate', flag: 'rate', kinds: ALL, type: 'rate', min: 1e-6, max: 1e12, def: per(100000, 50000, 1000000) },
  { key: 'device', flag: 'device', kinds: ALL, type: 'rid', def: per('00:03.0', '01:00.0', '02:00.0') },
  { key: 'domain', flag: 'domain', kinds: ALL, type: 'int', min: 1, max: 0xffff, def: per(3, 7, 9) },
  { key: 'cm', flag: 'cm', kinds: ALL, type: 'bool', def: () => true },
  { key: 'aw', flag: 'aw', kinds: ALL, type: 'choice', choices: [39, 48, 57], def: () => 48 },
  { key: 'ram', flag: 'ram', kinds: ALL, type: 'bytes', min: 64 * MiB, max: 2 ** 52, def: () => GiB },
  // Linux's default under caching mode is strict (immediate reuse); without it, lazy with a flush queue.
  { key: 'flushQueue', flag: 'flush-queue', kinds: ALL, type: 'int', min: 0, max: 1 << 20, def: (_k, o) => (o.cm === false ? 256 : 0) },
  { key: 'teardown', flag: 'teardown', kinds: ALL, type: 'bool', def: () => false },
  { key: 'rxRing', flag: 'rx-ring', kinds: NET, type: 'int', min: 48, max: 4096, def: () => 256 },
  { key: 'txRing', flag: 'tx-ring', kinds: NET, type: 'int', min: 48, max: 4096, def: () => 256 },
  { key: 'rxFraction', flag: 'rx-fraction', kinds: NET, type: 'fraction', def: () => 0.5 },
  { key: 'packetSize', flag: 'packet-size', kinds: NET, type: 'packet-size', min: 60, max: 1514, def: () => 'imix' },
  { key: 'minPacket', flag: 'min-packet', kinds: NET, type: 'int', min: 60, max: 1514, def: () => 60 },
  { key: 'maxPacket', flag: 'max-packet', kinds: NET, type: 'int', min: 60, max: 1514, def: () => 1514 },
  { key: 'burst', flag: 'burst', kinds: NET, type: 'int', min: 1, max: 64, def: () => 8 },
  { key: 'txDelay', flag: 'tx-delay', kinds: NET, type: 'int', min: 0, max: 4096, def: () => 16 },
  { key: 'copybreak', flag: 'copybreak', kinds: NET, type: 'int', min: 0, max: 1514, def: () => 256 },
  { key: 'qd', flag: 'qd', kinds: STO, type: 'int', min: 1, max: 1024, def: () => 32 },
  { key: 'minSize', flag: 'min-size', kinds: [...STO, ...ACC], type: 'bytes', min: PAGE, max: 2 ** 44, def: per(0, 4 * KiB, 64 * MiB) },
  { key: 'maxSize', flag: 'max-size', kinds: [...STO, ...ACC], type: 'bytes', min: PAGE, max: 2 ** 44, def: per(0, 128 * KiB, 128 * MiB) },
  { key: 'sizeDist', flag: 'size-dist', kinds: STO, type: 'choice', choices: ['pow2', 'uniform'], def: () => 'pow2' },
  { key: 'readFraction', flag: 'read-fraction', kinds: STO, type: 'fraction', def: () => 0.7 },
  { key: 'contig', flag: 'contig', kinds: STO, type: 'fraction', def: () => 0.25 },
  { key: 'ringDma', flag: 'ring-dma', kinds: [...NET, ...STO], type: 'bool', def: () => true },
  { key: 'buffers', flag: 'buffers', kinds: ACC, type: 'int', min: 1, max: 256, def: () => 4 },
  { key: 'dmaReadFraction', flag: 'dma-read-fraction', kinds: ACC, type: 'fraction', def: () => 0.5 },
  { key: 'dmaLen', flag: 'dma-len', kinds: ACC, type: 'int', min: 1, max: 4096, def: () => 4096 },
  { key: 'pattern', flag: 'pattern', kinds: ACC, type: 'choice', choices: ['random', 'stream'], def: () => 'random' },
  { key: 'remapEvery', flag: 'remap-every', kinds: ACC, type: 'int', min: 0, max: 1e12, def: () => 10000 },
];

/** The flags (without `--`) a kind takes, in the order of its leading comment. */
export function genFlags(kind: GenKind): { flag: string; bool: boolean }[] {
  return SPECS.filter((s) => s.kinds.includes(kind)).map((s) => ({ flag: s.flag, bool: s.type === 'bool' }));
}

function argError(kind: GenKind, msg: string): never {
  throw new VtdError('ARGUMENT', `gen ${kind}: ${msg}`);
}

/** "64M", "4KiB", "0x1000", "4096" to bytes (K, M, G, T are binary). */
function parseBytes(text: string): number | undefined {
  const hex = /^0x([0-9a-f]+)$/i.exec(text);
  if (hex) return parseInt(hex[1], 16);
  const m = /^([0-9]+)(?:([KMGT])(?:i?B)?)?$/i.exec(text);
  if (!m) return undefined;
  const mult = { K: KiB, M: MiB, G: GiB, T: 1024 * GiB }[(m[2] ?? '').toUpperCase() as 'K'] ?? 1;
  return Number(m[1]) * mult;
}

function formatBytes(n: number): string {
  for (const [suffix, mult] of [['T', 1024 * GiB], ['G', GiB], ['M', MiB], ['K', KiB]] as const) {
    if (n >= mult && n % mult === 0) return `${n / mult}${suffix}`;
  }
  return String(n);
}

function parseText(kind: GenKind, s: OptSpec, text: string): Value {
  const bad = (what: string): never => argError(kind, `--${s.flag} takes ${what}, got ${JSON.stringify(text)}`);
  switch (s.type) {
    case 'int':
      if (!/^[0-9]+$/.test(text)) bad('a non-negative integer');
      return Number(text);
    case 'fraction':
      if (!/^(?:[01]|[01]?\.[0-9]+)$/.test(text)) bad('a fraction between 0 and 1 (like 0.5)');
      return Number(text);
    case 'bytes':
      return parseBytes(text) ?? bad('a byte count (4096, 0x1000, 64K, 2M, 1G)');
    case 'bool':
      if (text !== 'true' && text !== 'false') bad('true or false');
      return text === 'true';
    case 'rid':
      return text;
    case 'rate': {
      const m = /^([0-9]+(?:\.[0-9]+)?)(?:\/s)?$/.exec(text);
      if (!m) bad('operations per second (a positive number like 100000)');
      return Number(m![1]);
    }
    case 'choice': {
      const c = s.choices!.find((x) => String(x) === text);
      if (c === undefined) bad(s.choices!.join(' or '));
      return c!;
    }
    case 'packet-size':
      if (text === 'imix' || text === 'uniform') return text;
      if (!/^[0-9]+$/.test(text)) bad('imix, uniform or a frame size in bytes');
      return Number(text);
  }
}

/**
 * Command-line values (flag without `--` to its text; `true`/`false` for the
 * boolean flags) to typed options. Unknown flags and flags of another kind
 * are errors; ranges are checked by `resolveGenOptions`.
 */
export function genOptionsFromArgs<K extends GenKind>(kind: K, values: ReadonlyMap<string, string | boolean>): Partial<GenOptionsByKind[K]> {
  const out: Record<string, Value> = {};
  for (const [flag, v] of values) {
    const s = SPECS.find((x) => x.flag === flag);
    if (!s) argError(kind, `unknown option --${flag}`);
    if (!s.kinds.includes(kind)) argError(kind, `--${flag} is an option of ${s.kinds.join(' and ')}, not ${kind}`);
    if (s.type === 'bool') out[s.key] = typeof v === 'boolean' ? v : parseText(kind, s, v);
    else if (typeof v === 'boolean') argError(kind, `--${flag} needs a value`);
    else out[s.key] = parseText(kind, s, v);
  }
  return out as Partial<GenOptionsByKind[K]>;
}

const RID = /^([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/;

function checkSpec(kind: GenKind, s: OptSpec, v: unknown): void {
  const bad = (what: string): never => argError(kind, `--${s.flag} must be ${what}, got ${JSON.stringify(v)}`);
  const inRange = (n: number) => s.min === undefined || (n >= s.min && n <= s.max!);
  switch (s.type) {
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v) || !inRange(v)) bad(`an integer from ${s.min} to ${s.max}`);
      break;
    case 'fraction':
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) bad('a fraction between 0 and 1');
      break;
    case 'bytes':
      if (typeof v !== 'number' || !Number.isInteger(v) || !inRange(v)) bad(`a byte count from ${formatBytes(s.min!)} to ${formatBytes(s.max!)}`);
      break;
    case 'bool':
      if (typeof v !== 'boolean') bad('true or false');
      break;
    case 'rid': {
      const m = typeof v === 'string' ? RID.exec(v) : null;
      if (!m || parseInt(m[2], 16) > 0x1f) bad('a requester id "bb:dd.f" (hex; device at most 1f, function at most 7)');
      break;
    }
    case 'rate':
      if (typeof v !== 'number' || !Number.isFinite(v) || !inRange(v)) bad(`a rate above 0 and at most ${s.max} per second`);
      break;
    case 'choice':
      if (!s.choices!.includes(v as Value)) bad(s.choices!.join(' or '));
      break;
    case 'packet-size':
      if (v !== 'imix' && v !== 'uniform' && !(typeof v === 'number' && Number.isInteger(v) && inRange(v))) {
        bad(`imix, uniform or a frame size from ${s.min} to ${s.max} bytes`);
      }
      break;
  }
}

/** Fills in the defaults and validates every option; errors are VtdError('ARGUMENT') naming the flag. */
export function resolveGenOptions<K extends GenKind>(kind: K, given: Partial<GenOptionsByKind[K]> = {}): GenOptionsByKind[K] {
  if (!GEN_KINDS.includes(kind)) throw new VtdError('ARGUMENT', `gen: the kind must be ${GEN_KINDS.join(', ')}; got ${JSON.stringify(kind)}`);
  const g = given as AnyOptions & Record<string, unknown>;
  for (const k of Object.keys(g)) {
    const s = SPECS.find((x) => x.key === k);
    if (!s) argError(kind, `unknown option ${k}`);
    if (!s.kinds.includes(kind) && g[k] !== undefined) argError(kind, `--${s.flag} is an option of ${s.kinds.join(' and ')}, not ${kind}`);
  }
  const o: Record<string, Value> = {};
  for (const s of SPECS) {
    if (!s.kinds.includes(kind)) continue;
    const v = g[s.key] ?? s.def(kind, { ...g, ...o } as AnyOptions);
    checkSpec(kind, s, v);
    o[s.key] = s.type === 'rid' ? (v as string).toLowerCase() : v;
  }
  const r = o as unknown as AnyOptions & CommonGenOptions;
  if (r.ram % PAGE !== 0) argError(kind, `--ram must be a multiple of 4 KiB, got ${r.ram}`);
  if (r.ram > 2 ** r.aw) argError(kind, `--ram ${formatBytes(r.ram)} is above what --aw ${r.aw} can address`);
  checkKind(kind, r);
  return o as unknown as GenOptionsByKind[K];
}

/** Pages of guest RAM a workload may use: [1 MiB, ram - ram/8); the top eighth is the guest-driver model's. */
function dataArea(ram: number): { first: number; end: number } {
  return { first: 0x100, end: Math.floor(ram / PAGE) - Math.ceil(ram / 8 / PAGE) };
}

function checkKind(kind: GenKind, r: AnyOptions & CommonGenOptions): void {
  const area = dataArea(r.ram);
  const pages = area.end - area.first;
  const need = (n: number, what: string) => {
    if (n > pages) argError(kind, `${what} need up to ${formatBytes(n * PAGE)} of guest RAM, more than the ${formatBytes(pages * PAGE)} the workload may use (--ram ${formatBytes(r.ram)}, less its top eighth and first MiB)`);
  };
  if (kind === 'network') {
    if (r.minPacket! > r.maxPacket!) argError(kind, `--min-packet ${r.minPacket} is above --max-packet ${r.maxPacket}`);
    if (r.burst! >= r.rxRing!) argError(kind, `--burst ${r.burst} must be below --rx-ring ${r.rxRing} (the ring keeps one slot empty)`);
    // A transmitted packet uses up to 3 descriptors and waits up to tx-delay + burst packets for cleanup.
    if (3 * (r.txDelay! + r.burst!) > r.txRing! - 1) {
      argError(kind, `--tx-ring ${r.txRing} is too small for --tx-delay ${r.txDelay} and --burst ${r.burst}: up to 3 x (tx-delay + burst) descriptors wait for cleanup, and the ring holds tx-ring - 1`);
    }
    need(8 * (r.rxRing! + r.txDelay! + r.burst! + 4) + 64, `--rx-ring ${r.rxRing} and --tx-delay ${r.txDelay}`);
  } else if (kind === 'storage') {
    for (const k of ['minSize', 'maxSize'] as const) {
      const v = r[k]!;
      const flag = k === 'minSize' ? 'min-size' : 'max-size';
      if (v % PAGE !== 0) argError(kind, `--${flag} must be a multiple of 4 KiB, got ${v}`);
      if (v > 4 * MiB) argError(kind, `--${flag} must be at most 4M, got ${formatBytes(v)}`);
      if (r.sizeDist === 'pow2' && (v & (v - 1)) !== 0) argError(kind, `--${flag} must be a power of two with --size-dist pow2, got ${formatBytes(v)}`);
    }
    if (r.minSize! > r.maxSize!) argError(kind, `--min-size ${formatBytes(r.minSize!)} is above --max-size ${formatBytes(r.maxSize!)}`);
    need(r.qd! * (r.maxSize! / PAGE) + 16, `--qd ${r.qd} requests of --max-size ${formatBytes(r.maxSize!)}`);
  } else {
    for (const k of ['minSize', 'maxSize'] as const) {
      const v = r[k]!;
      if (v % (2 * MiB) !== 0) argError(kind, `--${k === 'minSize' ? 'min-size' : 'max-size'} must be a multiple of 2M (so superpages are possible), got ${formatBytes(v)}`);
    }
    if (r.minSize! > r.maxSize!) argError(kind, `--min-size ${formatBytes(r.minSize!)} is above --max-size ${formatBytes(r.maxSize!)}`);
    // Each buffer has its own 2 MiB-aligned slot of --max-size (class Accelerator).
    const first2m = Math.ceil(area.first / 512) * 512;
    const slots = r.buffers! * (r.maxSize! / PAGE);
    if (slots > area.end - first2m) need(slots + first2m - area.first, `--buffers ${r.buffers} of --max-size ${formatBytes(r.maxSize!)}`);
  }
}

function formatValue(s: OptSpec, v: Value): string {
  if (s.type === 'bytes') return formatBytes(v as number);
  if (s.type === 'rate') return `${v}/s`;
  return String(v);
}

/** The leading comment: `# vtd-gen <kind> version=1 key=value ...` (rate=N/s), then the command that reproduces it. */
function leadingComment(kind: GenKind, o: AnyOptions): string[] {
  const specs = SPECS.filter((s) => s.kinds.includes(kind));
  const kv = specs.map((s) => `${s.flag}=${formatValue(s, o[s.key] as Value)}`);
  const args = specs.map((s) => {
    const v = o[s.key] as Value;
    if (s.type === 'bool') return v ? `--${s.flag}` : `--no-${s.flag}`;
    return `--${s.flag} ${s.type === 'rate' ? String(v) : formatValue(s, v)}`;
  });
  return [`# vtd-gen ${kind} version=${GEN_VERSION} ${kv.join(' ')}`, `# reproduce: vtd gen ${kind} ${args.join(' ')}`];
}

// ---------------------------------------------------------------------------
// PRNG: mulberry32 (32-bit state; period 2^32, ample for a workload).

class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform in [0, 1), 53 bits. */
  float(): number {
    return ((this.u32() >>> 5) * 67108864 + (this.u32() >>> 6)) / 9007199254740992;
  }
  /** Uniform integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.float() * n);
  }
  /** Uniform integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }
}

// ---------------------------------------------------------------------------
// IOVA allocation, as Linux 6.1 dma-iommu and iova.c do it.

/** First pfn above the 32-bit space (iovad->dma_32bit_pfn). */
const DMA_32BIT_PFN = 0x100000;
/** iovad->start_pfn: IOVA 0 is never handed out. */
const START_PFN = 1;
/** The anchor node's pfn (IOVA_ANCHOR): above every real pfn. */
const ANCHOR_PFN = 2 ** 53;
/** Sizes up to 2^(6-1) pages are cached per order (IOVA_RANGE_CACHE_MAX_SIZE). */
const IOVA_RANGE_CACHE_MAX_SIZE = 6;
const IOVA_MAG_SIZE = 128;
const MAX_GLOBAL_MAGS = 32;

/** order_base_2: the smallest k with 2^k >= n. */
function orderBase2(n: number): number {
  let k = 0;
  while (2 ** k < n) k++;
  return k;
}

/** One CPU's rcache of one order: two magazines and the shared depot. */
interface Rcache { loaded: number[]; prev: number[]; depot: number[][] }

/** Options of an IOVA domain. */
export interface IovaDomainOptions {
  /** Guest address width: the device's DMA limit is the domain aperture, 2^aw - 1. */
  aw: number;
  /** Inclusive pfn ranges never handed out (reserve_iova). */
  reserved?: readonly (readonly [number, number])[];
  /** Entries of the flush queue (0: strict, freed IOVAs are reusable at once). */
  flushQueue?: number;
}

/**
 * One DMA domain's IOVA allocator, following Linux 6.1: `alloc` is
 * iommu_dma_alloc_iova (a 32-bit address first for a 64-bit PCI device, then
 * the whole aperture), `free` is iommu_dma_free_iova (through the flush queue
 * when lazy). Underneath, alloc_iova_fast: sizes below 32 pages rounded up to
 * a power of two; a per-order cache (one CPU's two magazines of 128 and a
 * depot of 32) handing freed IOVAs back last-in first-out; otherwise the
 * tree's top-down next-fit search from the cached node, size-aligned.
 *
 * The tree is a sorted array of [lo, hi] pfn nodes ending with the anchor;
 * cached rcache entries stay allocated in it, as in Linux. Pfns are numbers
 * (exact below 2^53).
 */
export class IovaDomain {
  private readonly lo: number[] = [ANCHOR_PFN];
  private readonly hi: number[] = [ANCHOR_PFN];
  /** pfn_lo of cached32_node / cached_node: where the next search below / above 4 GiB starts. */
  private cached32 = ANCHOR_PFN;
  private cached = ANCHOR_PFN;
  /** A 32-bit request this large or larger failed since the last 32-bit free: fail it at once. */
  private max32AllocSize = DMA_32BIT_PFN;
  private readonly rcaches: Rcache[] = [];
  private readonly fq: [number, number][] = [];
  private readonly fqSize: number;
  /** Last pfn the device may use. */
  readonly limitPfn: number;

  constructor(o: IovaDomainOptions) {
    this.limitPfn = 2 ** (o.aw - 12) - 1;
    this.fqSize = o.flushQueue ?? 0;
    for (let i = 0; i < IOVA_RANGE_CACHE_MAX_SIZE; i++) this.rcaches.push({ loaded: [], prev: [], depot: [] });
    for (const [lo, hi] of o.reserved ?? []) this.insert(lo, hi);
  }

  /** Allocates `pages` pages of IOVA; returns the first pfn. */
  alloc(pages: number): number {
    let pfn = 0;
    if (this.limitPfn > DMA_32BIT_PFN - 1) pfn = this.allocFast(pages, DMA_32BIT_PFN - 1, false);
    if (!pfn) pfn = this.allocFast(pages, this.limitPfn, true);
    if (!pfn) throw new VtdError('GUEST_MEMORY', `IOVA space exhausted allocating ${pages} pages`, { pages });
    return pfn;
  }

  /** Frees what `alloc(pages)` returned, through the flush queue when there is one. */
  free(pfn: number, pages: number): void {
    if (this.fqSize === 0) {
      this.freeFast(pfn, pages);
      return;
    }
    // fq_ring_add: a full queue is flushed (the IOTLB invalidated) and its IOVAs freed first.
    if (this.fq.length >= this.fqSize) {
      for (const [p, n] of this.fq) this.freeFast(p, n);
      this.fq.length = 0;
    }
    this.fq.push([pfn, pages]);
  }

  /** Allocated nodes (reserved ranges, live and cached IOVAs), for tests. */
  nodes(): [number, number][] {
    return this.lo.slice(0, -1).map((lo, i) => [lo, this.hi[i]]);
  }

  private allocFast(pages: number, limitPfn: number, flushRcache: boolean): number {
    const size = pages < 1 << (IOVA_RANGE_CACHE_MAX_SIZE - 1) ? 2 ** orderBase2(pages) : pages;
    const cached = this.rcacheGet(size, limitPfn + 1);
    if (cached) return cached;
    for (;;) {
      const pfn = this.allocRange(size, limitPfn + 1);
      if (pfn >= 0) return pfn;
      if (!flushRcache) return 0;
      flushRcache = false;
      for (const rc of this.rcaches) {
        for (const mag of [rc.loaded, rc.prev, ...rc.depot]) this.freeMagazine(mag);
        rc.depot.length = 0;
      }
    }
  }

  private freeFast(pfn: number, pages: number): void {
    if (!this.rcacheInsert(pfn, pages)) this.remove(pfn);
  }

  private rcacheInsert(pfn: number, pages: number): boolean {
    const order = orderBase2(pages);
    if (order >= IOVA_RANGE_CACHE_MAX_SIZE) return false;
    const rc = this.rcaches[order];
    if (rc.loaded.length >= IOVA_MAG_SIZE) {
      if (rc.prev.length < IOVA_MAG_SIZE) {
        [rc.loaded, rc.prev] = [rc.prev, rc.loaded];
      } else {
        if (rc.depot.length < MAX_GLOBAL_MAGS) rc.depot.push(rc.loaded);
        else this.freeMagazine(rc.loaded);
        rc.loaded = [];
      }
    }
    rc.loaded.push(pfn);
    return true;
  }

  private rcacheGet(size: number, limitPfn: number): number {
    const order = orderBase2(size);
    if (order >= IOVA_RANGE_CACHE_MAX_SIZE) return 0;
    const rc = this.rcaches[order];
    if (rc.loaded.length === 0) {
      if (rc.prev.length > 0) [rc.loaded, rc.prev] = [rc.prev, rc.loaded];
      else if (rc.depot.length > 0) rc.loaded = rc.depot.pop()!;
      else return 0;
    }
    // iova_magazine_pop: the most recent entry that fits below the limit; swap-remove it.
    const mag = rc.loaded;
    const max = limitPfn - size;
    let i = mag.length - 1;
    while (mag[i] > max) {
      if (i === 0) return 0;
      i--;
    }
    const pfn = mag[i];
    mag[i] = mag[mag.length - 1];
    mag.pop();
    return pfn;
  }

  private freeMagazine(mag: number[]): void {
    for (const pfn of mag) this.remove(pfn);
    mag.length = 0;
  }

  /** Index of the first node with lo >= pfn. */
  private lowerBound(pfn: number): number {
    let a = 0, b = this.lo.length;
    while (a < b) {
      const m = (a + b) >> 1;
      if (this.lo[m] < pfn) a = m + 1;
      else b = m;
    }
    return a;
  }

  private insert(lo: number, hi: number): void {
    const i = this.lowerBound(lo);
    this.lo.splice(i, 0, lo);
    this.hi.splice(i, 0, hi);
  }

  /** __alloc_and_insert_iova_range with size_aligned; limitPfn is exclusive. Returns -1 when full. */
  private allocRange(size: number, limitPfn: number): number {
    const align = 2 ** orderBase2(size);
    if (limitPfn <= DMA_32BIT_PFN && size >= this.max32AllocSize) return -1;
    let ci = this.lowerBound(limitPfn <= DMA_32BIT_PFN ? this.cached32 : this.cached);
    const retryPfn = this.hi[ci];
    let high = limitPfn, low = START_PFN;
    for (;;) {
      let newPfn: number;
      // Walk down from the start node; stop at the first gap the aligned block fits in.
      do {
        high = Math.min(high, this.lo[ci]);
        newPfn = high >= size ? Math.floor((high - size) / align) * align : -1;
        ci--;
      } while (ci >= 0 && newPfn <= this.hi[ci] && newPfn >= low);
      if (high < size || newPfn < low) {
        if (low === START_PFN && retryPfn < limitPfn) {
          // Retry the part above the cached node that the first walk skipped.
          high = limitPfn;
          low = retryPfn + 1;
          ci = this.findLimit(limitPfn);
          continue;
        }
        this.max32AllocSize = size;
        return -1;
      }
      this.insert(newPfn, newPfn + size - 1);
      if (newPfn + size - 1 < DMA_32BIT_PFN) this.cached32 = newPfn;
      else this.cached = newPfn;
      return newPfn;
    }
  }

  /** iova_find_limit: the node a retry walk starts from. */
  private findLimit(limitPfn: number): number {
    if (limitPfn > DMA_32BIT_PFN) return this.lo.length - 1;
    let i = 0;
    while (this.hi[i] < limitPfn) i++;
    return i;
  }

  /** remove_iova, with __cached_rbnode_delete_update. */
  private remove(pfn: number): void {
    const i = this.lowerBound(pfn);
    if (this.lo[i] !== pfn) throw new VtdError('ARGUMENT', `IOVA pfn 0x${pfn.toString(16)} is not allocated`, { pfn });
    const next = this.lo[i + 1];
    const hi = this.hi[i];
    if (pfn === this.cached32 || (hi < DMA_32BIT_PFN && pfn >= this.cached32)) this.cached32 = next;
    if (pfn < DMA_32BIT_PFN) this.max32AllocSize = DMA_32BIT_PFN;
    if (pfn >= this.cached) this.cached = next;
    this.lo.splice(i, 1);
    this.hi.splice(i, 1);
  }
}

/**
 * IOVA ranges a Linux guest on QEMU's q35 machine reserves in every DMA
 * domain (inclusive pfn ranges): the interrupt window 0xfee00000-0xfeefffff
 * (IOMMU_RESV_MSI) and the PCI host bridge's memory windows
 * (iova_reserve_pci_windows), as the recorded guest's dmesg lists them for
 * 1 GiB: [0xa0000, 0xbffff], [low RAM end, 0xafffffff], [0xc0000000,
 * 0xfebfffff] and 32 GiB above 4 GiB and high RAM.
 */
export function q35ReservedIova(ram: number): [number, number][] {
  const lowmem = ram < 0xb0000000 ? ram : 0x80000000;
  const high = Math.max(0, ram - lowmem);
  const hole64 = Math.ceil((4 * GiB + high) / GiB) * GiB;
  const r: [number, number][] = [[0xa0, 0xbf]];
  if (lowmem < 0xb0000000) r.push([Math.ceil(lowmem / PAGE), 0xaffff]);
  r.push([0xc0000, 0xfebff], [0xfee00, 0xfeeff], [hole64 / PAGE, (hole64 + 32 * GiB) / PAGE - 1]);
  return r;
}

// ---------------------------------------------------------------------------
// Guest RAM: a page allocator over the data area, random placement.

class PageAllocator {
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

// ---------------------------------------------------------------------------
// Emitting trace lines.

/** pfn * 4096 + off as "0x..." without going through a double above 2^53. */
function hexAddr(pfn: number, off: number): string {
  pfn += Math.floor(off / PAGE);
  off %= PAGE;
  if (pfn === 0) return '0x' + off.toString(16);
  return '0x' + pfn.toString(16) + off.toString(16).padStart(3, '0');
}

type Perm = 'r' | 'w' | 'rw';

/** A mapped buffer: its IOVA allocation and where the buffer starts in it. */
interface DmaBuf {
  iovaPfn: number;
  /** Pages of IOVA mapped (and allocated, before rounding). */
  pages: number;
  /** Byte offset of the buffer from iovaPfn's page (the DMA address is iovaPfn * 4096 + off). */
  off: number;
}

/** The state shared by the generators: trace line output, IOVA and guest page allocation. */
class Emitter {
  readonly out: string[] = [];
  readonly rng: Rng;
  readonly iova: IovaDomain;
  readonly ram: PageAllocator;
  private readonly dmaHead: string;
  private readonly mapHead: string;
  private readonly unmapHead: string;

  constructor(readonly o: CommonGenOptions) {
    this.rng = new Rng(o.seed);
    this.iova = new IovaDomain({ aw: o.aw, reserved: q35ReservedIova(o.ram), flushQueue: o.flushQueue });
    const area = dataArea(o.ram);
    this.ram = new PageAllocator(this.rng, area.first, area.end);
    this.dmaHead = `{"op":"dma","sid":"${o.device}","iova":"`;
    this.mapHead = `{"op":"map","domain":${o.domain},"iova":"`;
    this.unmapHead = `{"op":"unmap","domain":${o.domain},"iova":"`;
  }

  /** The header and the device's attach. */
  head(): void {
    const o = this.o;
    this.out.push(
      `{"vtd-trace":1,"iommu":{"aw":${o.aw},"cm":${o.cm},"ram":"${hexAddr(o.ram / PAGE, 0)}"},"devices":["${o.device}"]}`,
      `{"op":"attach","sid":"${o.device}","domain":${o.domain}}`,
    );
  }

  /** dma_map_single / dma_map_page of [gpa, gpa + len): one map of the pages it spans. */
  mapSingle(gpa: number, len: number, perm: Perm): DmaBuf {
    const off = gpa % PAGE;
    const pages = Math.ceil((off + len) / PAGE);
    const iovaPfn = this.iova.alloc(pages);
    this.mapLine(iovaPfn, Math.floor(gpa / PAGE), pages, perm);
    return { iovaPfn, pages, off };
  }

  /** One map of `pages` physically contiguous pages from gpaPfn (a large contiguous buffer). */
  mapRun(gpaPfn: number, pages: number, perm: Perm): DmaBuf {
    const iovaPfn = this.iova.alloc(pages);
    this.mapLine(iovaPfn, gpaPfn, pages, perm);
    return { iovaPfn, pages, off: 0 };
  }

  /** dma_map_sg (and coherent allocations): one IOVA range, one map per physically contiguous run. */
  mapPages(pfns: readonly number[], perm: Perm): DmaBuf {
    const iovaPfn = this.iova.alloc(pfns.length);
    let start = 0;
    for (let i = 1; i <= pfns.length; i++) {
      if (i === pfns.length || pfns[i] !== pfns[i - 1] + 1) {
        this.mapLine(iovaPfn + start, pfns[start], i - start, perm);
        start = i;
      }
    }
    return { iovaPfn, pages: pfns.length, off: 0 };
  }

  /** Unmaps a whole buffer (one unmap) and frees its IOVA. */
  unmap(b: DmaBuf): void {
    this.out.push(`${this.unmapHead}${hexAddr(b.iovaPfn, 0)}","len":${b.pages * PAGE}}`);
    this.iova.free(b.iovaPfn, b.pages);
  }

  /** The device accesses [start, start + len) of a buffer: one dma op per 4 KiB page touched. */
  dma(b: DmaBuf, start: number, len: number, dir: 'r' | 'w'): void {
    let at = b.off + start;
    const end = at + len;
    while (at < end) {
      const n = Math.min(end, (Math.floor(at / PAGE) + 1) * PAGE) - at;
      this.out.push(`${this.dmaHead}${hexAddr(b.iovaPfn, at)}","len":${n},"dir":"${dir}"}`);
      at += n;
    }
  }

  /** dma_alloc_coherent of `bytes`: order-0 pages from the page allocator, mapped read-write. */
  coherent(bytes: number): { buf: DmaBuf; pfns: number[] } {
    const pfns: number[] = [];
    for (let i = 0; i < Math.ceil(bytes / PAGE); i++) pfns.push(this.ram.page());
    return { buf: this.mapPages(pfns, 'rw'), pfns };
  }

  freeCoherent(c: { buf: DmaBuf; pfns: number[] }): void {
    this.unmap(c.buf);
    for (const p of c.pfns) this.ram.free(p);
  }

  private mapLine(iovaPfn: number, gpaPfn: number, pages: number, perm: Perm): void {
    this.out.push(`${this.mapHead}${hexAddr(iovaPfn, 0)}","gpa":"${hexAddr(gpaPfn, 0)}","len":${pages * PAGE},"perm":"${perm}"}`);
  }

  *drain(): Generator<string> {
    const lines = this.out;
    for (let i = 0; i < lines.length; i++) yield lines[i];
    lines.length = 0;
  }
}

// ---------------------------------------------------------------------------
// network: an e1000 under Linux 6.1 (drivers/net/ethernet/intel/e1000/e1000_main.c).

/** A 32 KiB page_frag chunk (order-3 compound page) and the frags still using it. */
interface Chunk { pfn: number; pages: number; refs: number; held: boolean }
interface Frag { chunk: Chunk; gpa: number; len: number }

/** e1000 maps MAXIMUM_ETHERNET_VLAN_SIZE bytes per RX buffer... */
const RX_BUFFER_LEN = 1522;
/** ...at NET_SKB_PAD (64) into a frag of SKB_DATA_ALIGN(1522 + 64) + SKB_DATA_ALIGN(sizeof(skb_shared_info)) = 1600 + 320. */
const RX_HEADROOM = 64;
const RX_FRAG_LEN = 1920;
/** e1000_clean_rx_irq hands cleaned slots back in groups of E1000_RX_BUFFER_WRITE. */
const RX_BUFFER_WRITE = 16;
/** Ethernet + IPv4 + TCP with timestamps: the linear head of a TCP frame; the payload goes in page frags. */
const TX_HEADER_LEN = 66;
/** Frames up to this size are built linear (one buffer): ACKs, pings, small UDP. */
const TX_LINEAR_MAX = 256;
/** TX heads come from kmalloc-1k slab objects; the data starts after the skb headroom. */
const TX_HEAD_SLOT = 1024;
const TX_HEAD_OFFSET = 128;
const DESC_LEN = 16;

class Network {
  private readonly o: NetworkGenOptions;
  private txRingMem?: { buf: DmaBuf; pfns: number[] };
  private rxRingMem?: { buf: DmaBuf; pfns: number[] };
  private readonly rxSlots: ({ buf: DmaBuf; frag: Frag } | null)[];
  private rxNextToUse = 0;
  private rxNextToClean = 0;
  /** The device's next RX descriptor (RDH). */
  private rxHead = 0;
  /** Frame lengths received since the last poll, in slot order. */
  private readonly rxDone: number[] = [];
  private txTail = 0;
  private readonly txPending: { seq: number; bufs: DmaBuf[]; frags: Frag[]; head: number }[] = [];
  private rxCache: { chunk: Chunk | null; offset: number } = { chunk: null, offset: 0 };
  private txCache: { chunk: Chunk | null; offset: number } = { chunk: null, offset: 0 };
  private readonly headSlots: number[] = [];
  private seq = 0;

  constructor(private readonly e: Emitter) {
    this.o = e.o as NetworkGenOptions;
    this.rxSlots = new Array(this.o.rxRing).fill(null);
  }

  *run(): Generator<string> {
    const { o, e } = this;
    // e1000_open: TX ring, RX ring (dma_alloc_coherent, sizes aligned to 4 KiB), then the RX buffers.
    if (o.ringDma) {
      this.txRingMem = e.coherent(o.txRing * DESC_LEN);
      this.rxRingMem = e.coherent(o.rxRing * DESC_LEN);
    }
    this.allocRx(this.rxUnused());
    yield* e.drain();
    while (this.seq < o.ops) {
      const n = Math.min(1 + e.rng.below(o.burst), o.ops - this.seq);
      for (let k = 0; k < n; k++) {
        const len = this.frameLen();
        if (e.rng.float() < o.rxFraction) this.receive(len);
        else this.transmit(len);
        this.seq++;
      }
      this.poll(this.seq >= o.ops);
      yield* e.drain();
    }
    if (o.teardown) {
      // e1000_close: e1000_down cleans the rings (unmapping RX buffers), then the rings are freed.
      for (let i = 0; i < o.rxRing; i++) {
        const s = this.rxSlots[i];
        if (s) {
          e.unmap(s.buf);
          this.releaseFrag(s.frag);
          this.rxSlots[i] = null;
        }
      }
      if (this.txRingMem) e.freeCoherent(this.txRingMem);
      if (this.rxRingMem) e.freeCoherent(this.rxRingMem);
      yield* e.drain();
    }
  }

  private frameLen(): number {
    const { o, e } = this;
    if (typeof o.packetSize === 'number') return o.packetSize;
    if (o.packetSize === 'uniform') return e.rng.between(o.minPacket, o.maxPacket);
    // Simple IMIX 7:4:1 of 60, 590 and 1514-byte frames, clamped to the bounds.
    const r = e.rng.below(12);
    const len = r < 7 ? 60 : r < 11 ? 590 : 1514;
    return Math.min(o.maxPacket, Math.max(o.minPacket, len));
  }

  /** E1000_DESC_UNUSED. */
  private rxUnused(): number {
    const r = this.o.rxRing;
    return (this.rxNextToClean > this.rxNextToUse ? 0 : r) + this.rxNextToClean - this.rxNextToUse - 1;
  }

  /** e1000_alloc_rx_buffers: slots that kept their buffer (copybreak) are skipped. */
  private allocRx(count: number): void {
    for (; count > 0; count--) {
      const i = this.rxNextToUse;
      if (!this.rxSlots[i]) {
        const frag = this.allocFrag(RX_FRAG_LEN);
        const gpa = frag.gpa + RX_HEADROOM;
        this.rxSlots[i] = { buf: this.e.mapSingle(gpa, RX_BUFFER_LEN, 'w'), frag };
      }
      this.rxNextToUse = (i + 1) % this.o.rxRing;
    }
  }

  /** page_frag_alloc (6.1): carves a 32 KiB chunk from its end downwards; a chunk every frag has left is reused in place. */
  private allocFrag(len: number): Frag {
    const c = this.rxCache;
    if (!c.chunk || c.offset - len < 0) {
      if (c.chunk && c.chunk.refs === 0) c.offset = c.chunk.pages * PAGE;
      else {
        if (c.chunk) c.chunk.held = false;
        c.chunk = this.newChunk();
        c.offset = c.chunk.pages * PAGE;
      }
    }
    c.offset -= len;
    c.chunk!.refs++;
    return { chunk: c.chunk!, gpa: c.chunk!.pfn * PAGE + c.offset, len };
  }

  /** skb_page_frag_refill + tcp_sendmsg (6.1): a socket's chunk filled upwards; one frame's payload may span two chunks. */
  private txFrags(len: number): Frag[] {
    const c = this.txCache;
    const frags: Frag[] = [];
    while (len > 0) {
      if (c.chunk && c.chunk.refs === 0) c.offset = 0;
      else if (!c.chunk || c.offset + 32 > c.chunk.pages * PAGE) {
        if (c.chunk) c.chunk.held = false;
        c.chunk = this.newChunk();
        c.offset = 0;
      }
      const n = Math.min(len, c.chunk.pages * PAGE - c.offset);
      frags.push({ chunk: c.chunk, gpa: c.chunk.pfn * PAGE + c.offset, len: n });
      c.chunk.refs++;
      c.offset += n;
      len -= n;
    }
    return frags;
  }

  private newChunk(): Chunk {
    // An order-3 page when the buddy allocator has one, else a single page (as page_frag falls back).
    const pfn = this.e.ram.block(8);
    return pfn !== undefined ? { pfn, pages: 8, refs: 0, held: true } : { pfn: this.e.ram.page(), pages: 1, refs: 0, held: true };
  }

  private releaseFrag(f: Frag): void {
    f.chunk.refs--;
    if (f.chunk.refs === 0 && !f.chunk.held) this.e.ram.free(f.chunk.pfn, f.chunk.pages);
  }

  /** The device receives a frame into the next slot (QEMU e1000: descriptor read, data and FCS written, descriptor written back). */
  private receive(len: number): void {
    const { e } = this;
    const slot = this.rxHead;
    const s = this.rxSlots[slot]!;
    if (this.rxRingMem) e.dma(this.rxRingMem.buf, slot * DESC_LEN, DESC_LEN, 'r');
    e.dma(s.buf, 0, len + 4, 'w');
    if (this.rxRingMem) e.dma(this.rxRingMem.buf, slot * DESC_LEN, DESC_LEN, 'w');
    this.rxDone.push(len);
    this.rxHead = (slot + 1) % this.o.rxRing;
  }

  /** The stack hands a frame to e1000_xmit_frame: head and payload frags mapped, then the device reads them. */
  private transmit(len: number): void {
    const { e, o } = this;
    const head = this.headSlot();
    const headLen = len <= TX_LINEAR_MAX ? len : TX_HEADER_LEN;
    const frags = len > headLen ? this.txFrags(len - headLen) : [];
    const bufs = [e.mapSingle(head + TX_HEAD_OFFSET, headLen, 'r')];
    for (const f of frags) bufs.push(e.mapSingle(f.gpa, f.len, 'r'));
    const lens = [headLen, ...frags.map((f) => f.len)];
    for (let i = 0; i < bufs.length; i++) {
      const desc = this.txTail;
      if (this.txRingMem) e.dma(this.txRingMem.buf, desc * DESC_LEN, DESC_LEN, 'r');
      e.dma(bufs[i], 0, lens[i], 'r');
      // Only the last descriptor carries RS: the device writes back its status dword.
      if (this.txRingMem && i === bufs.length - 1) e.dma(this.txRingMem.buf, desc * DESC_LEN + 12, 4, 'w');
      this.txTail = (desc + 1) % o.txRing;
    }
    this.txPending.push({ seq: this.seq, bufs, frags, head });
  }

  /** A kmalloc-1k object for a TX head: the slab's freelist is last-in first-out. */
  private headSlot(): number {
    if (this.headSlots.length === 0) {
      const pfn = this.e.ram.page();
      for (let k = PAGE / TX_HEAD_SLOT - 1; k >= 0; k--) this.headSlots.push(pfn * PAGE + k * TX_HEAD_SLOT);
    }
    return this.headSlots.pop()!;
  }

  /** e1000_clean (NAPI): TX cleanup first, then RX. At the end every transmitted frame is reclaimed. */
  private poll(final: boolean): void {
    const { e, o } = this;
    while (this.txPending.length > 0 && (final || this.seq - 1 - this.txPending[0].seq >= o.txDelay)) {
      const p = this.txPending.shift()!;
      for (const b of p.bufs) e.unmap(b);
      for (const f of p.frags) this.releaseFrag(f);
      this.headSlots.push(p.head);
    }
    let cleaned = 0;
    for (const len of this.rxDone) {
      const i = this.rxNextToClean;
      const s = this.rxSlots[i]!;
      // e1000_copybreak: a short frame is copied out and its buffer stays mapped for the next one.
      if (len > o.copybreak) {
        e.unmap(s.buf);
        this.releaseFrag(s.frag);
        this.rxSlots[i] = null;
      }
      this.rxNextToClean = (i + 1) % o.rxRing;
      if (++cleaned >= RX_BUFFER_WRITE) {
        this.allocRx(cleaned);
        cleaned = 0;
      }
    }
    this.rxDone.length = 0;
    const unused = this.rxUnused();
    if (unused) this.allocRx(unused);
  }
}

// ---------------------------------------------------------------------------
// storage: a blk-mq disk with an NVMe-like queue pair.

const SQE_LEN = 64;
const CQE_LEN = 16;

interface Request { buf: DmaBuf; pfns: number[]; dir: 'r' | 'w' }

class Storage {
  private readonly o: StorageGenOptions;
  private sq?: { buf: DmaBuf; pfns: number[] };
  private cq?: { buf: DmaBuf; pfns: number[] };
  private sqTail = 0;
  private cqHead = 0;

  constructor(private readonly e: Emitter) {
    this.o = e.o as StorageGenOptions;
  }

  *run(): Generator<string> {
    const { o, e } = this;
    if (o.ringDma) {
      this.sq = e.coherent(o.qd * SQE_LEN);
      this.cq = e.coherent(o.qd * CQE_LEN);
    }
    yield* e.drain();
    const inflight: Request[] = [];
    let submitted = 0;
    while (submitted < o.ops || inflight.length > 0) {
      if (submitted < o.ops && inflight.length < o.qd) {
        inflight.push(this.submit());
        submitted++;
      } else {
        // Completions arrive in any order among the requests in flight.
        const k = e.rng.below(inflight.length);
        const r = inflight[k];
        inflight[k] = inflight[inflight.length - 1];
        inflight.pop();
        this.complete(r);
      }
      yield* e.drain();
    }
    if (o.teardown) {
      if (this.sq) e.freeCoherent(this.sq);
      if (this.cq) e.freeCoherent(this.cq);
      yield* e.drain();
    }
  }

  private pages(): number {
    const { o, e } = this;
    const lo = o.minSize / PAGE, hi = o.maxSize / PAGE;
    if (o.sizeDist === 'uniform') return e.rng.between(lo, hi);
    return 2 ** e.rng.between(Math.log2(lo), Math.log2(hi));
  }

  /** blk_mq_start_request + nvme_map_data: the bio's pages (page cache), dma_map_sg, the device fetches the command. */
  private submit(): Request {
    const { o, e } = this;
    const n = this.pages();
    const pfns = [e.ram.page()];
    for (let i = 1; i < n; i++) pfns.push(e.rng.float() < o.contig ? e.ram.pageAfter(pfns[i - 1]) : e.ram.page());
    // A read request: the device writes memory (DMA_FROM_DEVICE); a write: the device reads it.
    const dir = e.rng.float() < o.readFraction ? 'w' : 'r';
    const buf = e.mapPages(pfns, dir);
    if (this.sq) e.dma(this.sq.buf, this.sqTail * SQE_LEN, SQE_LEN, 'r');
    this.sqTail = (this.sqTail + 1) % o.qd;
    return { buf, pfns, dir };
  }

  /** The device moves the data and posts a completion; the driver's dma_unmap_sg unmaps the whole list at once. */
  private complete(r: Request): void {
    const { e, o } = this;
    for (let i = 0; i < r.pfns.length; i++) e.dma(r.buf, i * PAGE, PAGE, r.dir);
    if (this.cq) e.dma(this.cq.buf, this.cqHead * CQE_LEN, CQE_LEN, 'w');
    this.cqHead = (this.cqHead + 1) % o.qd;
    e.unmap(r.buf);
    for (const p of r.pfns) e.ram.free(p);
  }
}

// ---------------------------------------------------------------------------
// accelerator: few large long-lived buffers, many DMAs, occasional remaps.

const SUPERPAGE_PAGES = 512;

interface AccBuffer { buf: DmaBuf; gpaPfn: number; cursor: number }

class Accelerator {
  private readonly o: AcceleratorGenOptions;
  private readonly bufs: AccBuffer[] = [];
  private readonly slotPages: number;
  private readonly firstSlot: number;

  constructor(private readonly e: Emitter) {
    this.o = e.o as AcceleratorGenOptions;
    // Each buffer lives in its own 2 MiB-aligned slot of guest RAM, as large as the largest buffer.
    this.slotPages = this.o.maxSize / PAGE;
    const area = e.ram;
    const first = Math.ceil(area.first / SUPERPAGE_PAGES) * SUPERPAGE_PAGES;
    const spare = Math.floor((area.end - first - this.o.buffers * this.slotPages) / SUPERPAGE_PAGES);
    this.firstSlot = first + e.rng.between(0, spare) * SUPERPAGE_PAGES;
  }

  *run(): Generator<string> {
    const { o, e } = this;
    for (let i = 0; i < o.buffers; i++) this.bufs.push(this.mapBuffer(i));
    yield* e.drain();
    for (let d = 0; d < o.ops; d++) {
      const b = this.bufs[e.rng.below(o.buffers)];
      const dir = e.rng.float() < o.dmaReadFraction ? 'r' : 'w';
      e.dma(b.buf, this.offset(b), o.dmaLen, dir);
      if (o.remapEvery > 0 && (d + 1) % o.remapEvery === 0 && d + 1 < o.ops) {
        const i = e.rng.below(o.buffers);
        e.unmap(this.bufs[i].buf);
        this.bufs[i] = this.mapBuffer(i);
      }
      if (e.out.length >= 256) yield* e.drain();
    }
    if (o.teardown) for (const b of this.bufs) e.unmap(b.buf);
    yield* e.drain();
  }

  /** A buffer of random size (2 MiB multiple) at a random 2 MiB-aligned place in slot i: one physically contiguous map. */
  private mapBuffer(i: number): AccBuffer {
    const { o, e } = this;
    const units = e.rng.between(o.minSize / (2 * MiB), o.maxSize / (2 * MiB));
    const pages = units * SUPERPAGE_PAGES;
    const gpaPfn = this.firstSlot + i * this.slotPages + e.rng.between(0, (this.slotPages - pages) / SUPERPAGE_PAGES) * SUPERPAGE_PAGES;
    return { buf: e.mapRun(gpaPfn, pages, 'rw'), gpaPfn, cursor: 0 };
  }

  /** Byte offset of the next DMA: random (64-byte aligned inside a page), or the buffer's stream cursor. */
  private offset(b: AccBuffer): number {
    const { o, e } = this;
    const len = o.dmaLen;
    if (o.pattern === 'random') {
      return e.rng.below(b.buf.pages) * PAGE + 64 * e.rng.below(Math.floor((PAGE - len) / 64) + 1);
    }
    let at = b.cursor;
    if (at % PAGE + len > PAGE) at = (Math.floor(at / PAGE) + 1) * PAGE;
    if (at + len > b.buf.pages * PAGE) at = 0;
    b.cursor = at + len;
    return at;
  }
}

// ---------------------------------------------------------------------------

/**
 * A workload as trace lines (no newlines), streamed: the leading comment,
 * the header, `attach`, then the workload. Options are validated before this
 * returns (VtdError('ARGUMENT')); lines are produced as they are pulled.
 */
export function generate<K extends GenKind>(kind: K, options: Partial<GenOptionsByKind[K]> = {}): Generator<string, void, undefined> {
  const o = resolveGenOptions(kind, options);
  return lines(kind, o);
}

function* lines(kind: GenKind, o: CommonGenOptions): Generator<string, void, undefined> {
  yield* leadingComment(kind, o as AnyOptions);
  const e = new Emitter(o);
  e.head();
  yield* e.drain();
  const g = kind === 'network' ? new Network(e) : kind === 'storage' ? new Storage(e) : new Accelerator(e);
  yield* g.run();
}

/** The whole workload as text, one line each, ending with a newline. */
export function generateText<K extends GenKind>(kind: K, options: Partial<GenOptionsByKind[K]> = {}): string {
  let s = '';
  for (const line of generate(kind, options)) s += line + '\n';
  return s;
}
