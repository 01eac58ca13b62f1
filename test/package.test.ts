/**
 * What `npm pack` ships (package.json "files"): the built library and CLI,
 * README and LICENSE; no source maps, no .wat text of the core, no sources,
 * and not `vtd conform`, which needs what only a clone has (fast-check,
 * firmware/, QEMU) and says so. The tarball is packed from the current build
 * (--ignore-scripts: `npm test` has built it), unpacked, and run as is: the
 * package has no runtime dependencies.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONFORMANCE, ROOT } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'vtd-pack-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir],
  { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
const packed = pack.status === 0 ? (JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[])[0] : undefined;
const files = packed?.files.map((f) => f.path) ?? [];

test('npm pack succeeds', () => {
  assert.equal(pack.status, 0, pack.stderr);
  assert.ok(files.length > 0);
});

test('the package holds the library, the CLI, README and LICENSE', () => {
  for (const f of ['LICENSE', 'README.md', 'package.json', 'bin/vtd.js', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/generated/wasm.js']) {
    assert.ok(files.includes(f), `${f} is missing from the package`);
  }
  assert.match(readFileSync(join(ROOT, 'LICENSE'), 'utf8'), /^MIT License\n\nCopyright \(c\) 2026 the vtd-wasm authors\n/);
});

test('the build runs on prepack, not on prepare (npm ci && npm start builds once: npm start builds)', () => {
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  assert.equal(scripts.prepare, undefined);
  assert.equal(scripts.prepack, 'npm run build');
  assert.match(scripts.start, /^npm run build --silent && /);
});

test('the package holds no source maps, no .wat, no sources, no conform or QEMU harness', () => {
  const unwanted = files.filter((f) => /\.map$|\.wat$|^src\/|^assembly\/|^build\/|^dist\/conform\/|^dist\/qemu\/|^test\/|^firmware\//.test(f));
  assert.deepEqual(unwanted, []);
});

test('the unpacked package replays a trace and explains that conform runs from a clone', () => {
  const tar = spawnSync('tar', ['-xzf', join(dir, packed!.filename), '-C', dir], { encoding: 'utf8' });
  assert.equal(tar.status, 0, tar.stderr);
  const vtd = (args: string[]) => spawnSync(process.execPath, [join(dir, 'package', 'bin', 'vtd.js'), ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  const replay = vtd(['replay', join(CONFORMANCE, 'basic-4level.jsonl')]);
  assert.equal(replay.status, 0, replay.stderr);
  assert.equal(replay.stdout, readFileSync(join(CONFORMANCE, 'basic-4level.expected.jsonl'), 'utf8'));
  assert.match(vtd(['help']).stdout, /runs from a\s+clone of the repository/);
  const conform = vtd(['conform', '--qemu', '--seeds', '1']);
  assert.equal(conform.status, 1);
  assert.equal(conform.stdout, '');
  assert.match(conform.stderr, /^vtd: conform runs from a clone of the vtd-wasm repository, not from the installed package: .*fast-check.*firmware\/.*QEMU 7\.2 or 10\. In a clone: npm ci && npx vtd conform --qemu\n$/);
});
