/**
 * The generators' options (docs/workloads/gen.md): one table gives each
 * option's kinds, default, parsing, validation range and its place in the
 * leading comment, which is also the command that reproduces the run.
 *
 * Browser-safe: no Node imports.
 */
import { VtdError } from '../../errors.js';
import { KiB, MiB, GiB, PAGE } from './units.js';

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

export type AnyOptions = Partial<NetworkGenOptions & StorageGenOptions & AcceleratorGenOptions>;
type Value = number | string | boolean;

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
export function dataArea(ram: number): { first: number; end: number } {
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
export function leadingComment(kind: GenKind, o: AnyOptions): string[] {
  const specs = SPECS.filter((s) => s.kinds.includes(kind));
  const kv = specs.map((s) => `${s.flag}=${formatValue(s, o[s.key] as Value)}`);
  const args = specs.map((s) => {
    const v = o[s.key] as Value;
    if (s.type === 'bool') return v ? `--${s.flag}` : `--no-${s.flag}`;
    return `--${s.flag} ${s.type === 'rate' ? String(v) : formatValue(s, v)}`;
  });
  return [`# vtd-gen ${kind} version=${GEN_VERSION} ${kv.join(' ')}`, `# reproduce: vtd gen ${kind} ${args.join(' ')}`];
}
