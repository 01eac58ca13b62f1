/**
 * The library must run in browsers: nothing reachable from src/index.ts may
 * import a Node module. Only the CLI (src/cli/) and the QEMU tooling
 * (src/qemu/, src/conform/) may, and index.ts reaches neither.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ROOT } from './helpers.js';

function importsOf(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]/g)) out.push(m[1]);
  for (const m of src.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]);
  return out;
}

test('nothing reachable from src/index.ts imports a Node module', () => {
  const seen = new Set<string>();
  const stack = [join(ROOT, 'src', 'index.ts')];
  const offenders: string[] = [];
  while (stack.length) {
    const f = stack.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    for (const spec of importsOf(f)) {
      if (spec.startsWith('.')) stack.push(resolve(dirname(f), spec.replace(/\.js$/, '.ts')));
      else offenders.push(`${f.slice(ROOT.length + 1)} imports ${spec}`);
    }
  }
  assert.deepEqual(offenders, []);
  assert.ok(seen.size >= 6, `walked ${seen.size} modules`);
  assert.ok(![...seen].some((f) => f.includes('/cli/') || f.includes('/qemu/')), 'index.ts must not reach the CLI or QEMU tooling');
});
