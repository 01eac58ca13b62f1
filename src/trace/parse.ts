/**
 * The trace format, version 1 (docs/trace-format.md): JSON Lines,
 * header first, `#` comments and blank lines skipped. Parsing is strict: an
 * unknown op or field, a missing or ill-typed field, or a value out of range
 * is a VtdError('TRACE') naming the 1-based line. A trace is never
 * half-replayed silently: `parseTrace` validates everything before any replay.
 */
import { VtdError } from '../errors.js';
import type { IommuOptions } from '../iommu.js';

/**
 * Header `iommu` options, with the format's defaults applied. `sm`, `flts`,
 * `pasid` and `nest` select scalable mode (trace-format.md, "Scalable mode").
 */
export interface TraceConfig {
  aw: 39 | 48 | 57; cm: boolean; ir: boolean; eim: boolean; pt: boolean; sc: boolean; dt: boolean;
  sm: boolean; flts: boolean; pasid: boolean; nest: boolean;
  nfr: number; ram: bigint;
}

export interface TraceHeader { config: TraceConfig; devices: number[]; line: number }

/** An operation, with `line` (1-based, for messages) and `index` (i in results). */
export type TraceOp =
  | { op: 'mem'; line: number; index: number; gpa: bigint; data: Uint8Array }
  | { op: 'mrd'; line: number; index: number; gpa: bigint; len: number }
  | { op: 'wr'; line: number; index: number; reg: number; size: 4 | 8; val: bigint }
  | { op: 'rd'; line: number; index: number; reg: number; size: 4 | 8; mask?: bigint }
  | {
      op: 'dma'; line: number; index: number; sid: number; iova: bigint; len: number; dir: 'r' | 'w';
      /** A request with this PASID (scalable mode only); absent: a request without PASID. */
      pasid?: number;
      /** Supervisor (privileged) request; only with `pasid`. Kept as written, so a trace round-trips. */
      priv?: boolean;
      /** Execute request; only with `pasid`. */
      exe?: boolean;
    }
  | { op: 'msi'; line: number; index: number; sid: number; addr: bigint; data: bigint }
  | { op: 'attach'; line: number; index: number; sid: number; domain: number }
  | { op: 'map'; line: number; index: number; domain: number; iova: bigint; gpa: bigint; len: number; perm: 'r' | 'w' | 'rw' }
  | { op: 'unmap'; line: number; index: number; domain: number; iova: bigint; len: number };

export interface Trace { header: TraceHeader; ops: TraceOp[] }

const U64_MAX = (1n << 64n) - 1n;

function fail(line: number, msg: string, details: Record<string, unknown> = {}): never {
  throw new VtdError('TRACE', msg, details, line);
}

type Obj = Record<string, unknown>;

class Fields {
  private readonly seen = new Set<string>();
  constructor(private readonly o: Obj, private readonly line: number, private readonly what: string) {}

  private get(key: string, required: boolean): unknown {
    this.seen.add(key);
    const v = this.o[key];
    if (v === undefined && required) fail(this.line, `${this.what}: missing field "${key}"`);
    return v;
  }

  /** A 64-bit value as a "0x..." hex string. */
  hex(key: string, max?: bigint): bigint;
  hex(key: string, max: bigint, optional: true): bigint | undefined;
  hex(key: string, max: bigint = U64_MAX, optional = false): bigint | undefined {
    const v = this.get(key, !optional);
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || !/^0x[0-9a-fA-F]{1,16}$/.test(v)) {
      fail(this.line, `${this.what}: "${key}" must be a hex string like "0x1f" (at most 64 bits), got ${JSON.stringify(v)}`);
    }
    const n = BigInt(v);
    if (n > max) fail(this.line, `${this.what}: "${key}" = ${v} is above the largest allowed value 0x${max.toString(16)}`);
    return n;
  }

  int(key: string, min: number, max: number): number {
    const v = this.get(key, true);
    if (typeof v !== 'number' || !Number.isInteger(v)) fail(this.line, `${this.what}: "${key}" must be an integer, got ${JSON.stringify(v)}`);
    if (v < min || v > max) fail(this.line, `${this.what}: "${key}" = ${v} is outside ${min}..${max}`);
    return v;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const v = this.get(key, true);
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      fail(this.line, `${this.what}: "${key}" must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${JSON.stringify(v)}`);
    }
    return v as T;
  }

  /** An optional boolean field. */
  optBool(key: string): boolean | undefined {
    const v = this.get(key, false);
    if (v !== undefined && typeof v !== 'boolean') fail(this.line, `${this.what}: "${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  raw(key: string, required = true): unknown {
    return this.get(key, required);
  }

  /** Rejects fields the op does not have (a misspelt field must not pass silently). */
  done(): void {
    for (const k of Object.keys(this.o)) {
      if (!this.seen.has(k)) fail(this.line, `${this.what}: unknown field "${k}"`);
    }
  }
}

/** "bb:dd.f" (hex) to a requester id. */
export function parseRid(s: unknown, line: number, what: string): number {
  if (typeof s !== 'string') fail(line, `${what} must be a requester id "bb:dd.f", got ${JSON.stringify(s)}`);
  const m = /^([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(s);
  if (!m) fail(line, `${what} must be a requester id "bb:dd.f" (hex bus, device < 0x20, function < 8), got ${JSON.stringify(s)}`);
  const bus = parseInt(m[1], 16), dev = parseInt(m[2], 16), fn = parseInt(m[3], 16);
  if (dev > 0x1f) fail(line, `${what}: device number 0x${m[2]} is above 0x1f`);
  return (bus << 8) | (dev << 3) | fn;
}

/** Requester id to "bb:dd.f". */
export function formatRid(sid: number): string {
  const h = (n: number) => n.toString(16).padStart(2, '0');
  return `${h(sid >> 8)}:${h((sid >> 3) & 0x1f)}.${sid & 7}`;
}

const IOMMU_KEYS = ['aw', 'cm', 'ir', 'eim', 'pt', 'sc', 'dt', 'sm', 'flts', 'pasid', 'nest', 'nfr', 'ram'] as const;

/** The largest PASID: PASIDs are 20 bits wide. */
export const PASID_MAX = 0xfffff;

function parseHeader(o: Obj, line: number): TraceHeader {
  if (o['vtd-trace'] !== 1) fail(line, `the first object must be the header {"vtd-trace": 1, ...}; got ${JSON.stringify(o).slice(0, 80)}`);
  for (const k of Object.keys(o)) {
    if (k !== 'vtd-trace' && k !== 'iommu' && k !== 'devices') fail(line, `header: unknown field "${k}"`);
  }
  const io = o.iommu ?? {};
  if (typeof io !== 'object' || io === null || Array.isArray(io)) fail(line, 'header: "iommu" must be an object');
  const iom = io as Obj;
  for (const k of Object.keys(iom)) {
    if (!(IOMMU_KEYS as readonly string[]).includes(k)) fail(line, `header: unknown iommu option "${k}" (known: ${IOMMU_KEYS.join(', ')})`);
  }
  const bool = (k: string, d: boolean): boolean => {
    const v = iom[k];
    if (v === undefined) return d;
    if (typeof v !== 'boolean') fail(line, `header: iommu.${k} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const aw = iom.aw ?? 39;
  if (aw !== 39 && aw !== 48 && aw !== 57) fail(line, `header: iommu.aw must be 39, 48 or 57, got ${JSON.stringify(aw)}`);
  const nfr = iom.nfr ?? 1;
  if (typeof nfr !== 'number' || !Number.isInteger(nfr) || nfr < 1 || nfr > 64) fail(line, `header: iommu.nfr must be an integer 1..64, got ${JSON.stringify(nfr)}`);
  let ram = 0x10000000n;
  if (iom.ram !== undefined) {
    const f = new Fields(iom, line, 'header iommu');
    ram = f.hex('ram', 1n << 52n);
    if (ram === 0n || (ram & 0xfffn) !== 0n) fail(line, `header: iommu.ram must be a non-zero multiple of 4 KiB, got 0x${ram.toString(16)}`);
  }
  const config: TraceConfig = {
    aw, cm: bool('cm', false), ir: bool('ir', false), eim: bool('eim', false), pt: bool('pt', true),
    sc: bool('sc', false), dt: bool('dt', false),
    sm: bool('sm', false), flts: bool('flts', false), pasid: bool('pasid', false), nest: bool('nest', false), nfr, ram,
  };
  if (config.eim && !config.ir) fail(line, 'header: iommu.eim requires iommu.ir');
  // Scalable mode (trace-format.md, "Scalable mode"): the rules QEMU 10 applies to
  // x-flts / x-pasid-mode, and this project's extensions (nest, 5-level first stage).
  for (const k of ['flts', 'pasid', 'nest'] as const) {
    if (config[k] && !config.sm) fail(line, `header: iommu.${k} requires iommu.sm (scalable mode)`);
  }
  if (config.pasid && config.dt) fail(line, 'header: iommu.pasid and iommu.dt exclude each other (QEMU refuses x-pasid-mode with device-iotlb)');
  for (const k of ['flts', 'nest'] as const) {
    if (config[k] && config.aw === 39) {
      fail(line, `header: iommu.${k} requires iommu.aw 48 or 57 (first-stage tables are 4-level, or 5-level with aw 57); got aw 39`);
    }
  }
  const devs = o.devices ?? [];
  if (!Array.isArray(devs)) fail(line, 'header: "devices" must be an array of requester ids');
  const devices = devs.map((d, i) => parseRid(d, line, `header: devices[${i}]`));
  return { config, devices, line };
}

function parseOp(o: Obj, line: number, index: number, h: TraceHeader): TraceOp {
  const op = o.op;
  if (typeof op !== 'string') fail(line, `an operation needs "op", got ${JSON.stringify(o).slice(0, 80)}`);
  const f = new Fields(o, line, op);
  f.raw('op');
  const ram = h.config.ram;
  const sidField = (): number => {
    const sid = parseRid(f.raw('sid'), line, `${op}: "sid"`);
    if (!h.devices.includes(sid)) fail(line, `${op}: requester ${formatRid(sid)} is not listed in the header's "devices"`);
    return sid;
  };
  const regField = (): { reg: number; size: 4 | 8 } => {
    const reg = Number(f.hex('reg', 0xfffn));
    const size = f.int('size', 4, 8);
    if (size !== 4 && size !== 8) fail(line, `${op}: "size" must be 4 or 8, got ${size}`);
    if (reg % size !== 0) fail(line, `${op}: register offset 0x${reg.toString(16)} is not aligned to its size ${size}`);
    return { reg, size };
  };
  let r: TraceOp;
  switch (op) {
    case 'mem': {
      const gpa = f.hex('gpa');
      const hex = f.raw('hex', false);
      const q = f.raw('q', false);
      let data: Uint8Array;
      if ((hex === undefined) === (q === undefined)) fail(line, 'mem: give exactly one of "hex" and "q"');
      if (hex !== undefined) {
        if (typeof hex !== 'string' || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex) || hex.length === 0) {
          fail(line, 'mem: "hex" must be a non-empty string of byte pairs (no 0x)');
        }
        data = new Uint8Array(hex.length / 2);
        for (let i = 0; i < data.length; i++) data[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
      } else {
        if (!Array.isArray(q) || q.length === 0) fail(line, 'mem: "q" must be a non-empty array of hex quadwords');
        data = new Uint8Array(q.length * 8);
        const dv = new DataView(data.buffer);
        q.forEach((s, i) => {
          const v = new Fields({ v: s }, line, `mem q[${i}]`).hex('v');
          dv.setBigUint64(i * 8, v, true);
        });
      }
      if (gpa + BigInt(data.length) > ram) fail(line, `mem: [0x${gpa.toString(16)}, +${data.length}) is outside guest RAM [0, 0x${ram.toString(16)})`);
      r = { op, line, index, gpa, data };
      break;
    }
    case 'mrd': {
      const gpa = f.hex('gpa');
      const len = f.int('len', 1, 4096);
      if (gpa + BigInt(len) > ram) fail(line, `mrd: [0x${gpa.toString(16)}, +${len}) is outside guest RAM [0, 0x${ram.toString(16)})`);
      r = { op, line, index, gpa, len };
      break;
    }
    case 'wr': {
      const { reg, size } = regField();
      const val = f.hex('val', size === 4 ? 0xffffffffn : U64_MAX);
      r = { op, line, index, reg, size, val };
      break;
    }
    case 'rd': {
      const { reg, size } = regField();
      const mask = f.hex('mask', size === 4 ? 0xffffffffn : U64_MAX, true);
      r = mask === undefined ? { op, line, index, reg, size } : { op, line, index, reg, size, mask };
      break;
    }
    case 'dma': {
      const sid = sidField();
      const dma: Extract<TraceOp, { op: 'dma' }> = { op, line, index, sid, iova: f.hex('iova'), len: f.int('len', 1, 4096), dir: f.oneOf('dir', ['r', 'w'] as const) };
      const pasid = f.raw('pasid', false) === undefined ? undefined : f.int('pasid', 0, PASID_MAX);
      const priv = f.optBool('priv'), exe = f.optBool('exe');
      if (pasid !== undefined) {
        if (!h.config.sm) fail(line, 'dma: "pasid" needs a scalable-mode unit (header iommu.sm)');
        dma.pasid = pasid;
      }
      for (const [k, v] of [['priv', priv], ['exe', exe]] as const) {
        if (v === undefined) continue;
        if (pasid === undefined) fail(line, `dma: "${k}" goes with a "pasid" (a request without PASID is neither supervisor nor execute)`);
        dma[k] = v;
      }
      r = dma;
      break;
    }
    case 'msi':
      r = { op, line, index, sid: sidField(), addr: f.hex('addr'), data: f.hex('data', 0xffffffffn) };
      break;
    case 'attach':
      r = { op, line, index, sid: sidField(), domain: f.int('domain', 0, 0xffff) };
      break;
    case 'map':
      r = {
        op, line, index, domain: f.int('domain', 0, 0xffff), iova: f.hex('iova'), gpa: f.hex('gpa'),
        len: f.int('len', 1, Number.MAX_SAFE_INTEGER), perm: f.oneOf('perm', ['r', 'w', 'rw'] as const),
      };
      break;
    case 'unmap':
      r = { op, line, index, domain: f.int('domain', 0, 0xffff), iova: f.hex('iova'), len: f.int('len', 1, Number.MAX_SAFE_INTEGER) };
      break;
    default:
      fail(line, `unknown op ${JSON.stringify(op)} (known: mem, mrd, wr, rd, dma, msi, attach, map, unmap)`);
  }
  f.done();
  return r;
}

/**
 * Parses a trace from its lines one at a time: the header at once, the
 * operations as they are pulled, so a trace of millions of operations replays
 * without being held in memory. Each operation is validated when reached; an
 * error therefore surfaces at its line, after earlier operations were yielded.
 * `parseTrace` validates everything first.
 */
export function parseTraceLines(lines: Iterable<string>): { header: TraceHeader; ops: Iterable<TraceOp> } {
  const it = lines[Symbol.iterator]();
  let n = 0;
  const nextObject = (): { o: Obj; line: number } | undefined => {
    for (;;) {
      const r = it.next();
      if (r.done) return undefined;
      const line = ++n;
      const s = r.value.trim();
      if (s === '' || s.startsWith('#')) continue;
      let o: unknown;
      try {
        o = JSON.parse(s);
      } catch (e) {
        fail(line, `not valid JSON: ${(e as Error).message}`);
      }
      if (typeof o !== 'object' || o === null || Array.isArray(o)) fail(line, 'each line must be a JSON object');
      return { o: o as Obj, line };
    }
  };
  const first = nextObject();
  if (!first) throw new VtdError('TRACE', 'empty trace: no header line {"vtd-trace": 1, ...}', {}, 1);
  const header = parseHeader(first.o, first.line);
  function* ops(): Generator<TraceOp> {
    let index = 0;
    for (let x = nextObject(); x; x = nextObject()) yield parseOp(x.o, x.line, index++, header);
  }
  return { header, ops: ops() };
}

/** Parses and validates a whole trace. */
export function parseTrace(text: string): Trace {
  const { header, ops } = parseTraceLines(text.split(/\r?\n/));
  return { header, ops: [...ops] };
}

/** The Iommu options a trace header selects. */
export function optionsFromHeader(c: TraceConfig): IommuOptions {
  return {
    aw: c.aw, cm: c.cm, ir: c.ir, eim: c.eim, pt: c.pt, sc: c.sc, dt: c.dt,
    sm: c.sm, flts: c.flts, pasid: c.pasid, nest: c.nest, nfr: c.nfr, ram: c.ram,
  };
}
