/** Shared helpers for the test suites. */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Iommu } from '../src/index.js';

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
      if (!f.endsWith('.jsonl') || f.endsWith('.expected.jsonl') || f.endsWith('.qemu.jsonl') || f.endsWith('.qemu10.jsonl')) continue;
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

/**
 * A unit (aw 48) whose guest memory is the embedder's (a Map of bytes), with 4-level tables mapping
 * iova 0 of SID 00:03.0 to 0x7000000 and translation enabled. `onRead` sees each read the unit makes
 * and answers whether it succeeds (it may also throw, as a hook may).
 */
export function externalMemoryUnit(onRead: (gpa: number) => boolean): { unit: Iommu; mem: Map<number, number> } {
  const mem = new Map<number, number>();
  const unit = Iommu.create({
    aw: 48,
    guestMemory: {
      read(gpa, dst) { const ok = onRead(gpa); for (let i = 0; i < dst.length; i++) dst[i] = mem.get(gpa + i) ?? 0; return ok; },
      write(gpa, src) { src.forEach((b, i) => mem.set(gpa + i, b)); return true; },
    },
  });
  const put = (gpa: number, q: bigint) => { for (let i = 0; i < 8; i++) mem.set(gpa + i, Number((q >> BigInt(8 * i)) & 0xffn)); };
  put(0x100000, 0x101001n);
  put(0x101180, 0x110001n); put(0x101188, 0x502n);
  put(0x110000, 0x111003n); put(0x111000, 0x112003n); put(0x112000, 0x113003n); put(0x113000, 0x7000003n);
  unit.mmioWrite(0x20, 8, 0x100000n); // RTADDR
  unit.mmioWrite(0x18, 4, 0x40000000); // GCMD.SRTP
  unit.mmioWrite(0x18, 4, 0x80000000); // GCMD.TE
  return { unit, mem };
}
