/**
 * The one writer of trace text (trace-format.md): the header line, one line
 * per operation, `#` comment lines. Everything in the project that writes a
 * trace (the guest-driver model's lowering, the conformance generator, the
 * ftrace importer) renders through here, so the text a trace is written in
 * is decided once: keys in the format's order, no spaces, addresses and
 * values as lower-case "0x..." hex, requester ids as "bb:dd.f".
 *
 * `src/trace/parse.ts` is the matching parser. Browser-safe: no Node imports.
 */
import { formatRid, type TraceConfig } from './parse.js';

/** "0x" and lower-case hex. */
export const hex = (v: number | bigint): string => '0x' + v.toString(16);

/**
 * An operation to write. `mem` takes its payload as bytes (`data`, written as
 * quadwords when it can be) or as quadwords (`q`, for a writer that builds
 * 64-bit entries). Parsed `TraceOp`s are accepted as they are.
 */
export type WritableOp =
  | { op: 'mem'; gpa: bigint; data: Uint8Array; q?: undefined }
  | { op: 'mem'; gpa: bigint; q: readonly bigint[]; data?: undefined }
  | { op: 'mrd'; gpa: bigint; len: number }
  | { op: 'wr'; reg: number; size: 4 | 8; val: bigint }
  | { op: 'rd'; reg: number; size: 4 | 8; mask?: bigint }
  | { op: 'dma'; sid: number; iova: bigint; len: number; dir: 'r' | 'w'; pasid?: number; priv?: boolean; exe?: boolean }
  | { op: 'msi'; sid: number; addr: bigint; data: bigint }
  | { op: 'attach'; sid: number; domain: number }
  | { op: 'map'; domain: number; iova: bigint; gpa: bigint; len: number; perm: 'r' | 'w' | 'rw' }
  | { op: 'unmap'; domain: number; iova: bigint; len: number };

/** Header `iommu` options to write: the ones present, in the format's order; absent ones take the format's defaults. */
export type HeaderOptions = Partial<TraceConfig>;

const HEADER_KEYS = ['aw', 'cm', 'ir', 'eim', 'pt', 'sc', 'dt', 'sm', 'flts', 'pasid', 'nest', 'nfr', 'ram'] as const;

/** The header line: `{"vtd-trace":1,"iommu":{...},"devices":[...]}`. */
export function formatHeader(iommu: HeaderOptions, devices: readonly number[]): string {
  const fields: string[] = [];
  for (const k of HEADER_KEYS) {
    const v = iommu[k];
    if (v === undefined) continue;
    fields.push(`"${k}":${typeof v === 'bigint' ? `"${hex(v)}"` : String(v)}`);
  }
  return `{"vtd-trace":1,"iommu":{${fields.join(',')}},"devices":[${devices.map((d) => `"${formatRid(d)}"`).join(',')}]}`;
}

/** A comment line: `# text` (a bare `#` for an empty one); line breaks in `text` become spaces, so a comment stays one line. */
export function formatComment(text: string): string {
  return text === '' ? '#' : `# ${text.replace(/[\r\n]+/g, ' ')}`;
}

/** Bytes as hex digits in memory order, no 0x. */
function bytesHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += (x < 16 ? '0' : '') + x.toString(16);
  return s;
}

/** A `mem` op's payload: `"q"` quadwords when gpa and length are multiples of 8, else `"hex"`. */
function memFields(gpa: bigint, data: Uint8Array): string {
  if ((gpa & 7n) === 0n && data.length % 8 === 0) {
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const q: string[] = [];
    for (let k = 0; k < data.length; k += 8) {
      const lo = dv.getUint32(k, true), hi = dv.getUint32(k + 4, true);
      q.push(hi === 0 ? `"0x${lo.toString(16)}"` : `"0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}"`);
    }
    return `"gpa":"${hex(gpa)}","q":[${q.join(',')}]`;
  }
  return `"gpa":"${hex(gpa)}","hex":"${bytesHex(data)}"`;
}

/**
 * One operation as a trace line. With `index`, the line starts with
 * `"i": index` like a result line: a numbered listing of operations, not a
 * trace line (the format has no `i` in operations).
 */
export function formatOp(op: WritableOp, index?: number): string {
  const head = index === undefined ? '{' : `{"i":${index},`;
  switch (op.op) {
    case 'mem':
      if (op.q !== undefined) return `${head}"op":"mem","gpa":"${hex(op.gpa)}","q":[${op.q.map((v) => `"${hex(v)}"`).join(',')}]}`;
      return `${head}"op":"mem",${memFields(op.gpa, op.data)}}`;
    case 'mrd': return `${head}"op":"mrd","gpa":"${hex(op.gpa)}","len":${op.len}}`;
    case 'wr': return `${head}"op":"wr","reg":"${hex(op.reg)}","size":${op.size},"val":"${hex(op.val)}"}`;
    case 'rd': return `${head}"op":"rd","reg":"${hex(op.reg)}","size":${op.size}${op.mask !== undefined ? `,"mask":"${hex(op.mask)}"` : ''}}`;
    case 'dma': {
      // Request-with-PASID fields only when present, so a request without PASID keeps its legacy line.
      const req = (op.pasid !== undefined ? `,"pasid":${op.pasid}` : '') + (op.priv !== undefined ? `,"priv":${op.priv}` : '') + (op.exe !== undefined ? `,"exe":${op.exe}` : '');
      return `${head}"op":"dma","sid":"${formatRid(op.sid)}","iova":"${hex(op.iova)}","len":${op.len},"dir":"${op.dir}"${req}}`;
    }
    case 'msi': return `${head}"op":"msi","sid":"${formatRid(op.sid)}","addr":"${hex(op.addr)}","data":"${hex(op.data)}"}`;
    case 'attach': return `${head}"op":"attach","sid":"${formatRid(op.sid)}","domain":${op.domain}}`;
    case 'map': return `${head}"op":"map","domain":${op.domain},"iova":"${hex(op.iova)}","gpa":"${hex(op.gpa)}","len":${op.len},"perm":"${op.perm}"}`;
    case 'unmap': return `${head}"op":"unmap","domain":${op.domain},"iova":"${hex(op.iova)}","len":${op.len}}`;
  }
}

/** An operation with the comments written above it. */
export interface CommentedOp {
  comments: readonly string[];
  op: WritableOp;
}

/** A whole trace as text, newline-terminated: leading comments, the header, then each op after its comments. */
export function formatTrace(t: { leading?: readonly string[]; iommu: HeaderOptions; devices: readonly number[]; ops: Iterable<CommentedOp> }): string {
  const out: string[] = (t.leading ?? []).map(formatComment);
  out.push(formatHeader(t.iommu, t.devices));
  for (const u of t.ops) {
    for (const c of u.comments) out.push(formatComment(c));
    out.push(formatOp(u.op));
  }
  return out.join('\n') + '\n';
}
