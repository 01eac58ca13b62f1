/**
 * Result lines (trace-format.md, "What is compared") as values, and the
 * comparison the format defines: `ok`, `gpa`, `addr`, `data`, `hex` and
 * `val` exactly and numerically; `fault` only where both sides give one; a
 * line present on one side only is a difference.
 */

export interface Result {
  i: number;
  op: string;
  ok?: boolean;
  gpa?: bigint;
  fault?: number;
  addr?: bigint;
  data?: bigint;
  val?: bigint;
  hex?: string;
  /** The line as received. */
  line: string;
}

const BIG_FIELDS = ['gpa', 'addr', 'data', 'val'] as const;

export function parseResult(line: string): Result {
  const o = JSON.parse(line) as Record<string, unknown>;
  if (typeof o.i !== 'number' || typeof o.op !== 'string') throw new Error(`not a result line: ${line}`);
  const r: Result = { i: o.i, op: o.op, line };
  if (typeof o.ok === 'boolean') r.ok = o.ok;
  for (const k of BIG_FIELDS) if (typeof o[k] === 'string') r[k] = BigInt(o[k] as string);
  if (typeof o.fault === 'string') r.fault = Number(BigInt(o.fault));
  if (typeof o.hex === 'string') r.hex = o.hex.toLowerCase();
  return r;
}

/** Result lines by op index. */
export function byIndex(lines: readonly string[]): Map<number, Result> {
  const m = new Map<number, Result>();
  for (const l of lines) {
    if (l.trim() === '' || l.trim().startsWith('#')) continue;
    const r = parseResult(l);
    m.set(r.i, r);
  }
  return m;
}

export interface FieldDiff {
  field: string;
  ours: string | undefined;
  qemu: string | undefined;
}

const hx = (v: bigint | number | undefined): string | undefined => (v === undefined ? undefined : '0x' + v.toString(16));

/**
 * The fields in which two result lines for the same op differ under the
 * format's rules (empty: they agree). `line` is reported when one side has
 * no line at all.
 */
export function diffResults(ours: Result | undefined, qemu: Result | undefined): FieldDiff[] {
  if (!ours && !qemu) return [];
  if (!ours || !qemu) return [{ field: 'line', ours: ours?.line, qemu: qemu?.line }];
  const d: FieldDiff[] = [];
  if (ours.op !== qemu.op) d.push({ field: 'op', ours: ours.op, qemu: qemu.op });
  if (ours.ok !== qemu.ok) d.push({ field: 'ok', ours: String(ours.ok), qemu: String(qemu.ok) });
  for (const k of BIG_FIELDS) if (ours[k] !== qemu[k]) d.push({ field: k, ours: hx(ours[k]), qemu: hx(qemu[k]) });
  if (ours.hex !== qemu.hex) d.push({ field: 'hex', ours: ours.hex, qemu: qemu.hex });
  if (ours.fault !== undefined && qemu.fault !== undefined && ours.fault !== qemu.fault) {
    d.push({ field: 'fault', ours: faultHex(ours.fault), qemu: faultHex(qemu.fault) });
  }
  return d;
}

export const faultHex = (f: number): string => '0x' + f.toString(16).padStart(2, '0');

/**
 * One side names a fault reason and the other does not, for lines that
 * otherwise agree: nothing the format compares differs, but the side with the
 * reason recorded a fault the other did not, so the fault-recording
 * registers may differ from here on.
 */
export function faultPresenceDiffers(ours: Result | undefined, qemu: Result | undefined): boolean {
  if (!ours || !qemu) return false;
  return (ours.fault === undefined) !== (qemu.fault === undefined);
}

/** A short human form of a result line's answer: `ok gpa=0x...`, `fault 0x05`, `val=0x...`. */
export function describe(r: Result | undefined): string {
  if (!r) return '(no result line)';
  const parts: string[] = [];
  if (r.ok !== undefined) parts.push(r.ok ? 'ok' : 'blocked');
  if (r.gpa !== undefined) parts.push(`gpa ${hx(r.gpa)}`);
  if (r.addr !== undefined) parts.push(`addr ${hx(r.addr)}`);
  if (r.data !== undefined) parts.push(`data ${hx(r.data)}`);
  if (r.fault !== undefined) parts.push(`fault ${faultHex(r.fault)}`);
  if (r.val !== undefined) parts.push(`val ${hx(r.val)}`);
  if (r.hex !== undefined) parts.push(`hex ${r.hex.length > 40 ? r.hex.slice(0, 40) + '...' : r.hex}`);
  return parts.join(', ');
}
