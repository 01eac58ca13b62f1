/**
 * Shadow sync reads legacy tables only. On a scalable-mode unit it would find
 * no context (the guest's tables sit behind PASID entries) and shadow nothing,
 * a silently wrong answer; it is refused with a VtdError naming why, and
 * `vtd replay --shadow` of a scalable-mode trace prints nothing and exits 1.
 *
 *   node --import tsx --test test/shadow/scalable-refused.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Iommu } from '../../src/iommu.js';
import { VtdError } from '../../src/errors.js';
import { ShadowSync } from '../../src/shadow/sync.js';
import { backendFactory } from '../../src/shadow/factory.js';
import { MemlockAccount } from '../../src/shadow/backend.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('ShadowSync refuses a scalable-mode unit with UNSUPPORTED; a legacy unit is accepted', () => {
  const f = backendFactory({ backend: 'type1' });
  assert.throws(() => new ShadowSync(Iommu.create({ aw: 48, sm: true }), () => f.create(1, new MemlockAccount())),
    (e: unknown) => e instanceof VtdError && e.code === 'UNSUPPORTED' && /scalable-mode/.test(e.message));
  new ShadowSync(Iommu.create({ aw: 48 }), () => f.create(1, new MemlockAccount())).close();
});

test('vtd replay --shadow of a scalable-mode trace prints no result and exits 1 naming the reason', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtd-sm-shadow-'));
  try {
    const text = readFileSync(join(root, 'examples', 'network-small.jsonl'), 'utf8')
      .replace('"iommu":{"aw":48,"cm":true', '"iommu":{"aw":48,"cm":true,"sm":true,"flts":true');
    assert.match(text, /"sm":true/);
    const file = join(dir, 'sm.jsonl');
    writeFileSync(file, text);
    const r = spawnSync(process.execPath, [join(root, 'bin', 'vtd.js'), 'replay', file, '--shadow', 'merged'], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /shadow sync of a scalable-mode unit \(sm\) is not implemented yet/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
