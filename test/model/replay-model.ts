// Replays a vtd trace (docs/trace-format.md) against the reference model and returns the
// result lines exactly as the format prints them.

import { RefModel, defaultModelConfig, type ModelConfig, type ModelDmaRequest } from './model.js';

export interface ReplayOptions {
  /**
   * What to do with an `msi` op. By default (`'model'`) the model processes it (RefModel.msi) and prints its
   * result line. `'skip'` drops it (no result line, no effect on the unit); only a test should use it, and
   * only where no later result depends on the skipped interrupts. `'throw'` makes an `msi` op an error.
   */
  msi?: 'model' | 'skip' | 'throw';
}

type Json = Record<string, unknown>;

const HEX_RE = /^0x[0-9a-fA-F]+$/;
const SID_RE = /^([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/;
const MAX_U64 = (1n << 64n) - 1n;

/** Canonical number: lowercase hex, `0x` prefix, no leading zeros. */
function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}

/** A fault reason: always two hex digits. */
function hexFault(reason: number): string {
  return `0x${reason.toString(16).padStart(2, '0')}`;
}

function bytesToHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

class TraceError extends Error {}

function fail(message: string): never {
  throw new TraceError(message);
}

function parseU64(value: unknown, what: string): bigint {
  if (typeof value !== 'string' || !HEX_RE.test(value)) fail(`${what} must be a hex string like "0x1f", got ${JSON.stringify(value)}`);
  const v = BigInt(value);
  if (v > MAX_U64) fail(`${what} ${value} does not fit in 64 bits`);
  return v;
}

function field(obj: Json, key: string): unknown {
  if (!(key in obj)) fail(`missing field "${key}"`);
  return obj[key];
}

function u64Field(obj: Json, key: string): bigint {
  return parseU64(field(obj, key), `"${key}"`);
}

function intField(obj: Json, key: string, min: number, max: number): number {
  const v = field(obj, key);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(`"${key}" must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function parseSid(value: unknown): number {
  const m = typeof value === 'string' ? SID_RE.exec(value) : null;
  if (m === null) fail(`requester id must look like "bb:dd.f", got ${JSON.stringify(value)}`);
  const bus = parseInt(m[1]!, 16);
  const dev = parseInt(m[2]!, 16);
  const fn = parseInt(m[3]!, 16);
  if (dev > 0x1f) fail(`device number in ${value} is above 0x1f`);
  return (bus << 8) | (dev << 3) | fn;
}

function parseHeader(obj: Json): { cfg: ModelConfig; devices: Set<number> } {
  if (obj['vtd-trace'] !== 1) fail('the first object must be the header {"vtd-trace": 1, ...}');
  const cfg: ModelConfig = { ...defaultModelConfig };
  const iommu = obj['iommu'] ?? {};
  if (typeof iommu !== 'object' || iommu === null || Array.isArray(iommu)) fail('"iommu" must be an object');
  for (const [key, value] of Object.entries(iommu as Json)) {
    switch (key) {
      case 'aw':
        if (value !== 39 && value !== 48 && value !== 57) fail(`iommu.aw must be 39, 48 or 57, got ${JSON.stringify(value)}`);
        cfg.aw = value;
        break;
      case 'cm':
      case 'ir':
      case 'eim':
      case 'pt':
      case 'sc':
      case 'dt':
        if (typeof value !== 'boolean') fail(`iommu.${key} must be true or false`);
        cfg[key] = value;
        break;
      case 'sm':
      case 'flts':
      case 'pasid':
      case 'nest':
        if (typeof value !== 'boolean') fail(`iommu.${key} must be true or false`);
        cfg[key] = value;
        break;
      case 'nfr':
        if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 64) fail('iommu.nfr must be 1 to 64');
        cfg.nfr = value;
        break;
      case 'ram': {
        const ram = typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : parseU64(value, 'iommu.ram');
        if (ram <= 0n) fail('iommu.ram must be positive');
        cfg.ram = ram;
        break;
      }
      default:
        fail(`unknown iommu option "${key}"`);
    }
  }
  const devices = obj['devices'] ?? [];
  if (!Array.isArray(devices)) fail('"devices" must be an array of requester ids');
  return { cfg, devices: new Set(devices.map(parseSid)) };
}

/** The optional PASID prefix of a `dma` op (trace-format "Scalable mode"): `pasid`, and `priv` / `exe` with it. */
function dmaRequest(o: Json): ModelDmaRequest | undefined {
  const has = (k: string): boolean => k in o;
  if (!has('pasid')) {
    if (has('priv') || has('exe')) fail('"priv" and "exe" go with a "pasid"');
    return undefined;
  }
  const pasid = intField(o, 'pasid', 0, 0xfffff);
  const flag = (k: string): boolean => {
    if (!has(k)) return false;
    if (typeof o[k] !== 'boolean') fail(`"${k}" must be true or false`);
    return o[k] as boolean;
  };
  return { pasid, priv: flag('priv'), exe: flag('exe') };
}

/** Replays `traceText` on a fresh model; returns one JSON string per result line. */
export function replayWithModel(traceText: string, options: ReplayOptions = {}): string[] {
  const msiMode = options.msi ?? 'model';
  const results: string[] = [];
  let model: RefModel | null = null;
  let devices = new Set<number>();
  let opIndex = 0;

  const lines = traceText.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const text = lines[n]!.trim();
    if (text === '' || text.startsWith('#')) continue;
    try {
      let obj: unknown;
      try {
        obj = JSON.parse(text);
      } catch (e) {
        fail(`not valid JSON: ${(e as Error).message}`);
      }
      if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) fail('each line must be a JSON object');
      const o = obj as Json;

      if (model === null) {
        const header = parseHeader(o);
        model = new RefModel(header.cfg);
        devices = header.devices;
        continue;
      }

      const i = opIndex++;
      const line = runOp(model, devices, o, i, msiMode);
      if (line !== null) results.push(line);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      throw new Error(`trace line ${n + 1}: ${message}`);
    }
  }
  if (model === null) throw new Error('trace has no header');
  return results;
}

function runOp(model: RefModel, devices: Set<number>, o: Json, i: number, msiMode: 'model' | 'skip' | 'throw'): string | null {
  const op = field(o, 'op');
  switch (op) {
    case 'mem': {
      const gpa = u64Field(o, 'gpa');
      const hasHex = 'hex' in o;
      const hasQ = 'q' in o;
      if (hasHex === hasQ) fail('"mem" needs exactly one of "hex" and "q"');
      let bytes: Uint8Array;
      if (hasHex) {
        const h = o['hex'];
        if (typeof h !== 'string' || !/^([0-9a-fA-F]{2})+$/.test(h)) fail('"hex" must be an even number of hex digits, no 0x');
        bytes = Uint8Array.from(h.match(/../g)!, (b) => parseInt(b, 16));
      } else {
        const q = o['q'];
        if (!Array.isArray(q) || q.length === 0) fail('"q" must be a non-empty array of quadwords');
        bytes = new Uint8Array(8 * q.length);
        q.forEach((word, k) => {
          let v = parseU64(word, `q[${k}]`);
          for (let b = 0; b < 8; b++, v >>= 8n) bytes[8 * k + b] = Number(v & 0xffn);
        });
      }
      model.writeMem(gpa, bytes);
      return null;
    }
    case 'mrd': {
      const gpa = u64Field(o, 'gpa');
      const len = intField(o, 'len', 1, 4096);
      return JSON.stringify({ i, op, hex: bytesToHex(model.readMem(gpa, len)) });
    }
    case 'wr': {
      const { reg, size } = regAccess(o);
      model.mmioWrite(reg, size, u64Field(o, 'val'));
      return null;
    }
    case 'rd': {
      const { reg, size } = regAccess(o);
      const mask = 'mask' in o ? u64Field(o, 'mask') : MAX_U64;
      return JSON.stringify({ i, op, val: hex(model.mmioRead(reg, size) & mask) });
    }
    case 'dma': {
      const sid = requester(o, devices);
      const iova = u64Field(o, 'iova');
      const len = intField(o, 'len', 1, 4096);
      const dir = field(o, 'dir');
      if (dir !== 'r' && dir !== 'w') fail(`"dir" must be "r" or "w", got ${JSON.stringify(dir)}`);
      const req = dmaRequest(o);
      const r = model.dma(sid, iova, len, dir, req);
      if (r.ok) return JSON.stringify({ i, op, ok: true, gpa: hex(r.gpa) });
      return JSON.stringify(r.fault === undefined ? { i, op, ok: false } : { i, op, ok: false, fault: hexFault(r.fault) });
    }
    case 'msi': {
      const sid = requester(o, devices);
      const addr = u64Field(o, 'addr');
      const data = u64Field(o, 'data');
      if (data > 0xffffffffn) fail(`"data" ${hex(data)} does not fit in 32 bits`);
      if (msiMode === 'skip') return null;
      if (msiMode === 'throw') fail('op "msi": refused by the replay option msi: "throw"');
      const r = model.msi(sid, addr, Number(data));
      if (r.ok && 'posted' in r) fail('a posted interrupt has no result line in the trace format (a trace cannot enable CAP.PI)');
      if (r.ok) return JSON.stringify({ i, op, ok: true, addr: hex(r.addr), data: hex(BigInt(r.data)) });
      return JSON.stringify(r.fault === undefined ? { i, op, ok: false } : { i, op, ok: false, fault: hexFault(r.fault) });
    }
    case 'attach':
    case 'map':
    case 'unmap':
      fail(`workload op "${op}" must be lowered to raw operations before replay on the model`);
    default:
      fail(`unknown op ${JSON.stringify(op)}`);
  }
}

function regAccess(o: Json): { reg: number; size: 4 | 8 } {
  const reg = u64Field(o, 'reg');
  const size = intField(o, 'size', 4, 8);
  if (size !== 4 && size !== 8) fail('"size" must be 4 or 8');
  if (reg + BigInt(size) > 0x1000n) fail(`register ${hex(reg)} is outside the 4 KiB register block`);
  if (reg % BigInt(size) !== 0n) fail(`register access at ${hex(reg)} is not aligned to its size`);
  return { reg: Number(reg), size };
}

function requester(o: Json, devices: Set<number>): number {
  const raw = field(o, 'sid');
  const sid = parseSid(raw);
  if (!devices.has(sid)) fail(`requester ${String(raw)} is not listed in the header's "devices"`);
  return sid;
}
