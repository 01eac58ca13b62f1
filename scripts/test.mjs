// `npm test`: first scripts/install-test-deps.sh, which installs QEMU,
// binutils and xz when one is missing (or stops, naming the command to run,
// when it cannot), then every test/**/*.test.ts with node:test (Node 20's
// runner does not expand glob patterns itself). Arguments ending in .test.ts
// run those files instead of all; other arguments pass through to node --test.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..');

const setup = spawnSync('/bin/sh', [join(root, 'scripts', 'install-test-deps.sh')], { cwd: root, stdio: 'inherit' });
if (setup.status !== 0) {
  console.error(`npm test: stopped before running any test: scripts/install-test-deps.sh ${
    setup.error ? `could not run (${setup.error.message})` : `exited with ${setup.status ?? setup.signal}`}.`);
  process.exit(1);
}

function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'fixtures' ? [] : find(p);
    return name.endsWith('.test.ts') ? [relative(root, p)] : [];
  });
}
const args = process.argv.slice(2);
const chosen = args.filter((a) => a.endsWith('.test.ts'));
const options = args.filter((a) => !a.endsWith('.test.ts'));
const files = chosen.length > 0 ? chosen : find(join(root, 'test')).sort();
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...options, ...files],
  { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
