/** Shared helpers for the test suites. */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CONFORMANCE = join(ROOT, 'test', 'fixtures', 'conformance');

export interface Case { name: string; trace: string; expected: string[]; qemu: string[] | undefined; dev: boolean }

function lines(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '');
}

/** The conformance cases of test/fixtures/conformance (top level and qemu-aborts/). */
export function conformanceCases(): Case[] {
  const out: Case[] = [];
  for (const sub of ['', 'qemu-aborts']) {
    const dir = join(CONFORMANCE, sub);
    for (const f of readdirSync(dir).sort()) {
      if (!f.endsWith('.jsonl') || f.endsWith('.expected.jsonl') || f.endsWith('.qemu.jsonl')) continue;
      const base = f.slice(0, -'.jsonl'.length);
      const exp = join(dir, `${base}.expected.jsonl`);
      const qemu = join(dir, `${base}.qemu.jsonl`);
      let expected: string[] = [];
      try { expected = lines(exp); } catch { expected = []; }
      let q: string[] | undefined;
      try { q = lines(qemu); } catch { q = undefined; }
      out.push({ name: sub ? `${sub}/${base}` : base, trace: readFileSync(join(dir, f), 'utf8'), expected, qemu: q, dev: base.startsWith('dev-') || sub !== '' });
    }
  }
  return out;
}

/** Result lines compared numerically, as the format says (hex strings by value). */
export function normalize(line: string): Record<string, unknown> {
  const o = JSON.parse(line) as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    const v = o[k];
    if (typeof v === 'string' && /^0x[0-9a-f]+$/i.test(v) && k !== 'hex') o[k] = BigInt(v).toString(16);
  }
  return o;
}

export function hexQ(...q: (number | bigint)[]): bigint[] {
  return q.map((x) => BigInt(x));
}
