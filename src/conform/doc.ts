/**
 * The deviation table of docs/CONFORMANCE.md, generated from deviations.ts
 * (test/conform/docs.test.ts keeps the two in sync).
 *
 *   node --import tsx src/conform/doc.ts          rewrite the table in docs/CONFORMANCE.md
 *   node --import tsx src/conform/doc.ts --check  exit 1 if it is out of date
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEVIATIONS } from './deviations.js';

export const BEGIN = '<!-- deviations:begin (generated from src/conform/deviations.ts: node --import tsx src/conform/doc.ts) -->';
export const END = '<!-- deviations:end -->';

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The markdown table: one row per deviation. */
export function deviationTable(): string {
  const rows = [
    '| id | kind | versions | QEMU | our answer | why | after it | shown in |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const d of DEVIATIONS) {
    const after = d.taint === 'all' ? 'comparison stops' : d.taint.length === 0 ? 'nothing else differs' : `may differ: ${[...new Set(d.taint.map(([o]) => '0x' + o.toString(16)))].join(', ')}`;
    rows.push(`| \`${d.id}\` | ${d.kind} | ${d.versions.join(', ')} | ${cell(d.qemu)} | ${cell(d.architected)} | ${cell(d.reason)} | ${after} | ${cell(d.fixture ?? '')} |`);
  }
  return rows.join('\n');
}

/** `doc` with the text between the markers replaced by the current table. */
export function withTable(doc: string): string {
  const b = doc.indexOf(BEGIN), e = doc.indexOf(END);
  if (b < 0 || e < b) throw new Error('docs/CONFORMANCE.md: deviation table markers not found');
  return doc.slice(0, b + BEGIN.length) + '\n' + deviationTable() + '\n' + doc.slice(e);
}

const DOC = fileURLToPath(new URL('../../docs/CONFORMANCE.md', import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const doc = readFileSync(DOC, 'utf8');
  const next = withTable(doc);
  if (process.argv.includes('--check')) process.exit(next === doc ? 0 : 1);
  writeFileSync(DOC, next);
}
