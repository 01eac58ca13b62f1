/**
 * The repository stands alone: no tracked file (code, test, script, document,
 * fixture) names a folder outside it: not by a relative path climbing out of
 * the repository to the project's shared folder, not by an absolute path of
 * the development machine, not by the shared folder's subfolders (spec,
 * conformance, realtraces...). What tests read lives in
 * test/fixtures/; the trace format is docs/trace-format.md.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from './helpers.js';

/** Tracked files (git ls-files); without git, every file but the ignored output folders. */
function projectFiles(): string[] {
  const git = spawnSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' });
  if (git.status === 0) return git.stdout.split('\0').filter((f) => f !== '' && existsSync(join(ROOT, f)));
  const skip = new Set(['node_modules', '.git', 'dist', 'build', 'out', 'generated']);
  const walk = (dir: string): string[] => readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return skip.has(n) ? [] : walk(p);
    return [relative(ROOT, p)];
  });
  return walk(ROOT);
}

// Built from parts so that this file does not match itself.
const SHARED = 'shared';
const OUTSIDE: [string, RegExp][] = [
  ['a relative path up to shared/', new RegExp(`\\.\\./(\\.\\./)*${SHARED}\\b`)],
  ['an absolute path of the development machine', new RegExp(`/${'work'}/`)],
  ['a path into the shared folder', new RegExp(`(^|[^\\w.-])${SHARED}/(spec|conformance|realtraces|STYLE\\.md|notes|perf|hooks)\\b`)],
];

/** One entry per line naming a place outside the repository, in the given texts. */
export function outsideReferences(files: { name: string; text: string }[]): string[] {
  const found: string[] = [];
  for (const { name, text } of files) {
    text.split('\n').forEach((line, i) => {
      const hit = OUTSIDE.find(([, re]) => re.test(line));
      if (hit) found.push(`${name}:${i + 1}: ${hit[0]}: ${line.trim().slice(0, 120)}`);
    });
  }
  return found;
}

test('the checker finds each kind of outside reference, and not ordinary words', () => {
  const probe = [
    `see ../${SHARED}/spec/trace-format.md`,
    `const DIR = '/${'work'}/${SHARED}/conformance';`,
    `what ${SHARED}/conformance/NAME.qemu.jsonl recorded`,
    `(see ../../${SHARED}/STYLE.md)`,
    'memory shared by the backends; skb_shared_info; shared/ alone; test/fixtures/conformance',
  ];
  const found = outsideReferences(probe.map((text, i) => ({ name: `p${i}`, text })));
  assert.deepEqual(found.map((f) => f.split(':')[0]), ['p0', 'p1', 'p2', 'p3']);
});

test('no tracked file names a folder outside the repository', () => {
  const files = projectFiles();
  assert.ok(files.includes('docs/trace-format.md') && files.includes('package.json'), 'the file list is the repository');
  const texts = files.flatMap((name) => {
    const buf = readFileSync(join(ROOT, name));
    return buf.includes(0) ? [] : [{ name, text: buf.toString('utf8') }]; // binary (.xz) files carry no paths
  });
  assert.deepEqual(outsideReferences(texts), []);
});
