// Runs every test/**/*.test.ts with node:test (Node 20's runner does not
// expand glob patterns itself). Extra arguments pass through to node --test.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..');
function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'fixtures' ? [] : find(p);
    return name.endsWith('.test.ts') ? [relative(root, p)] : [];
  });
}
const files = find(join(root, 'test')).sort();
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...process.argv.slice(2), ...files],
  { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
