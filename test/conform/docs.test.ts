// docs/CONFORMANCE.md lists exactly the deviations src/conform/deviations.ts
// knows (regenerate the table with: node --import tsx src/conform/doc.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEVIATIONS } from '../../src/conform/deviations.js';
import { withTable } from '../../src/conform/doc.js';
import { ROOT } from '../helpers.js';

test('the deviation table of docs/CONFORMANCE.md is the one deviations.ts generates', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'CONFORMANCE.md'), 'utf8');
  assert.equal(withTable(doc), doc, 'out of date: run node --import tsx src/conform/doc.ts');
  for (const d of DEVIATIONS) assert.ok(doc.includes(`| \`${d.id}\` |`), d.id);
});
