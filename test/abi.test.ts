/**
 * The Wasm ABI has one source: assembly/abi.ts (and the counter indices in
 * assembly/counters.ts). scripts/gen-abi.mjs emits src/generated/abi.ts from
 * it, and src/core.ts is the only host module that reads it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from './helpers.js';
import * as abi from '../src/generated/abi.js';
import { Iommu } from '../src/index.js';
// @ts-expect-error: a plain ESM script without type declarations
import { generate, parseAbi } from '../scripts/gen-abi.mjs';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return n === 'generated' ? [] : sources(p);
    return n.endsWith('.ts') ? [p] : [];
  });
}

test('the generated module is what the core declares now (the build regenerates it)', () => {
  assert.equal(readFileSync(join(ROOT, 'src', 'generated', 'abi.ts'), 'utf8'), generate());
});

test('only src/core.ts reads the generated ABI module', () => {
  const readers = sources(join(ROOT, 'src')).filter((f) => /generated\/abi(\.js)?['"]/.test(readFileSync(f, 'utf8')));
  assert.deepEqual(readers.map((f) => relative(ROOT, f)), ['src/core.ts']);
});

test('the core answers with the sizes the generated module names', () => {
  const iommu = Iommu.create({});
  const c = (iommu as unknown as { core: { batchCapacity: number; ioSize: number; rangeCapacity: number; counterCount: number } }).core;
  assert.equal(c.batchCapacity, abi.BATCH_CAP);
  assert.equal(c.ioSize, abi.IO_SIZE);
  assert.equal(c.rangeCapacity, abi.RANGE_CAP);
  assert.ok(c.counterCount <= abi.COUNTER_COUNT && abi.C_FAULT_REASON + 256 <= abi.COUNTER_COUNT);
});

test('the generator evaluates expressions over earlier names and refuses what it cannot read', () => {
  const text = [
    '/** A. */', '// @ts-ignore: decorator', '@inline export const A: u32 = 1 << 4;',
    '// @ts-ignore: decorator', '@inline export const B: u32 = A / 2 + <u32>0x3; // trailing doc',
    '@inline export const C: u64 = 0xffff_ffff_ffff_ffff;',
  ].join('\n');
  const d = parseAbi(text, 't.ts');
  assert.deepEqual(d.map((x: { name: string; value: bigint; doc: string }) => [x.name, x.value, x.doc]),
    [['A', 16n, 'A.'], ['B', 11n, 'trailing doc'], ['C', 0xffffffffffffffffn, '']]);
  assert.throws(() => parseAbi('@inline export const X: u32 = Y + 1;', 'u.ts'), /u\.ts:1: Y is not an ABI constant/);
  assert.throws(() => parseAbi('@inline export const X: u32 = f(1);', 'v.ts'), /v\.ts:1: f is not an ABI constant/);
  assert.throws(() => parseAbi('@inline export const X: u32 = 1;\n@inline export const X: u32 = 2;', 'w.ts'), /declared twice/);
  assert.throws(() => parseAbi('@inline export const X: u32 = 1 ? 2 : 3;', 'z.ts'), /unsupported token/);
});
