/**
 * `vtd compare`: ratios and flags per metric, run pairing, the plain-text
 * table, reading reports (bad JSON, wrong version, malformed fields), and the
 * command end to end on temporary files, including its error exits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VtdError } from '../../src/errors.js';
import { combineReports, compareReports, formatComparison, parseReport, type ComparisonRow } from '../../src/report/compare.js';
import { run, usage } from '../../src/cli/compare.js';
import type { ReplayReport } from '../../src/report/types.js';
import { ROOT } from '../helpers.js';
import { makeReport, makeRun } from './fixtures.js';

function row(rows: ComparisonRow[], group: string, metric: string): ComparisonRow {
  const r = rows.find((x) => x.group === group && x.metric === metric);
  assert.ok(r, `${group}: ${metric}`);
  return r;
}

// ------------------------------------------------------------------ comparing

test('ratios and flags: merged against qemu', () => {
  const a = makeReport([makeRun({ shadow: 'merged' })]);
  const b = makeReport([makeRun({ shadow: 'qemu' })]);
  const c = compareReports(a, b);
  assert.equal(c.runs.length, 1);
  const rows = c.runs[0].rows;
  const maps = row(rows, 'backend', 'maps');
  assert.equal(maps.a, 1000);
  assert.equal(maps.b, 128000);
  assert.equal(maps.ratio, 128);
  assert.equal(maps.flagged, true);
  const guestMaps = row(rows, 'guest', 'maps');
  assert.equal(guestMaps.ratio, 1);
  assert.equal(guestMaps.flagged, false);
  assert.equal(row(rows, 'cost', 'modelled time').flagged, true);
  // 128,000 pages of 4 KiB against 1,000 runs of 2 MiB.
  assert.equal(row(rows, 'backend', 'bytes mapped').ratio, (128000 * 4096) / (1000 * 2 << 20));
});

test('the threshold: 4% is not flagged at 5%, 6% is; --threshold changes it', () => {
  const a = makeReport([makeRun({ guestMaps: 1000 })]);
  const b4 = makeReport([makeRun({ guestMaps: 1040 })]);
  const b6 = makeReport([makeRun({ guestMaps: 1060 })]);
  assert.equal(row(compareReports(a, b4).runs[0].rows, 'guest', 'maps').flagged, false);
  assert.equal(row(compareReports(a, b6).runs[0].rows, 'guest', 'maps').flagged, true);
  assert.equal(row(compareReports(a, b6, { threshold: 0.1 }).runs[0].rows, 'guest', 'maps').flagged, false);
  assert.equal(row(compareReports(a, b4, { threshold: 0 }).runs[0].rows, 'guest', 'maps').flagged, true);
  // A decrease counts the same way, relative to A.
  assert.equal(row(compareReports(a, makeReport([makeRun({ guestMaps: 940 })])).runs[0].rows, 'guest', 'maps').flagged, true);
  assert.throws(() => compareReports(a, b4, { threshold: -1 }), VtdError);
});

test('zeros, missing backends, rates without lookups, measured rows', () => {
  const a = makeReport([makeRun({ shadow: 'none', iotlbHits: 0, iotlbMisses: 0, errors: {} })]);
  const b = makeReport([makeRun({ shadow: 'merged', iotlbHits: 0, iotlbMisses: 0, errors: { ENOSPC: 4 } })]);
  b.runs[0].wallMs = 99;
  const rows = compareReports(a, b).runs[0].rows;
  const bm = row(rows, 'backend', 'maps');
  assert.equal(bm.a, 'no backend');
  assert.equal(bm.ratio, null);
  assert.equal(bm.flagged, true);
  const hit = row(rows, 'unit', 'IOTLB hit rate');
  assert.equal(hit.a, 'n/a');
  assert.equal(hit.b, 'n/a');
  assert.equal(hit.flagged, false);
  assert.equal(row(rows, 'backend', 'errors: ENOSPC').b, 4);
  const faults = row(rows, 'unit', 'faults');
  assert.equal(faults.ratio, 1, '0 vs 0 is equal');
  assert.equal(faults.flagged, false);
  const wall = row(rows, 'replay', 'wall time');
  assert.equal(wall.measured, true);
  assert.equal(wall.flagged, false, 'measured rows are never flagged');

  // 0 against a number: no ratio, flagged.
  const z = compareReports(makeReport([makeRun({ guestMaps: 0 })]), makeReport([makeRun({ guestMaps: 5 })]));
  const zm = row(z.runs[0].rows, 'guest', 'maps');
  assert.equal(zm.ratio, null);
  assert.equal(zm.flagged, true);
  assert.match(formatComparison(z), /guest: maps\s+0\s+5\s+A=0\s+\*/);
});

test('pairing: the only run of each whatever the labels; otherwise run i with run i, the rest listed', () => {
  const one = compareReports(makeReport([makeRun({ policy: 'strict' })]), makeReport([makeRun({ policy: 'lazy' })]));
  assert.equal(one.runs.length, 1);
  assert.equal(one.runs[0].labelA, 'strict+merged/type1');
  assert.equal(one.runs[0].labelB, 'lazy+merged/type1');
  const a = makeReport([makeRun({ shadow: 'merged' }), makeRun({ shadow: 'qemu' }), makeRun({ policy: 'lazy' })]);
  const b = makeReport([makeRun({ shadow: 'merged' }), makeRun({ shadow: 'qemu' })]);
  const c = compareReports(a, b);
  assert.deepEqual(c.runs.map((r) => [r.indexA, r.indexB, r.labelA, r.labelB]), [
    [0, 0, 'strict+merged/type1', 'strict+merged/type1'],
    [1, 1, 'strict+qemu/type1', 'strict+qemu/type1'],
  ]);
  assert.deepEqual(c.unmatchedA, ['lazy+merged/type1']);
  assert.deepEqual(c.unmatchedB, []);
  const text = formatComparison(c);
  assert.match(text, /runs only in A \(not compared\): lazy\+merged\/type1/);
  assert.match(text, /in all: \d+ of \d+ metrics differ by more than 5%/);
});

test('the table: header, aligned columns, readable values, B/A and marks', () => {
  const c = compareReports(makeReport([makeRun({ shadow: 'merged' })]), makeReport([makeRun({ shadow: 'qemu' })]), { nameA: 'a.json', nameB: 'b.json' });
  const text = formatComparison(c);
  const lines = text.split('\n');
  assert.equal(lines[0], 'A: a.json (trace net-rx.jsonl)');
  assert.equal(lines[1], 'B: b.json (trace net-rx.jsonl)');
  assert.match(text, /\* marks a difference of more than 5%/);
  assert.match(text, /run 1: A strict\+merged\/type1 {2}vs {2}B strict\+qemu\/type1/);
  assert.match(text, /^backend: maps +1,000 +128,000 +128\.0x +\*$/m);
  assert.match(text, /^guest: maps +1,000 +1,000 +1\.00x$/m);
  assert.match(text, /^backend: bytes mapped +1\.95 GiB +500 MiB +0\.25x +\*$/m);
  assert.match(text, /^backend: pinned limit +no limit +no limit +- *$/m);
  assert.match(text, /^unit: IOTLB hit rate +90\.0% +90\.0% +1\.00x$/m);
  assert.match(text, /^cost: modelled time +[\d.]+ s +[\d.]+ s +3\.\d\dx +\*$/m);
  // Columns line up: every table row has its A column ending at the same place.
  const header = lines.find((l) => l.startsWith('metric'))!;
  const aEnd = header.indexOf(' A') + 2;
  for (const l of lines.filter((x) => /^(guest|unit|backend|cost|replay): /.test(x))) {
    assert.notEqual(l[aEnd - 1], ' ', l);
    assert.equal(l[aEnd], ' ', l);
  }
  assert.doesNotMatch(text, /NaN|Infinity|undefined/);
});

test('combined report: labels prefixed A: and B:, both traces named when they differ', () => {
  const a = makeReport([makeRun()], 'a.jsonl');
  const b = makeReport([makeRun({ shadow: 'qemu' })], 'b.jsonl');
  const c = combineReports(a, b);
  assert.deepEqual(c.runs.map((r) => r.strategy.label), ['A: strict+merged/type1', 'B: strict+qemu/type1']);
  assert.equal(c.trace.name, 'A: a.jsonl / B: b.jsonl');
  assert.equal(a.runs[0].strategy.label, 'strict+merged/type1', 'inputs untouched');
  assert.equal(combineReports(a, makeReport([makeRun()], 'a.jsonl')).trace.name, 'a.jsonl');
});

// ------------------------------------------------------------------ reading reports

function problem(text: string): string {
  try {
    parseReport(text, 'x.json');
  } catch (e) {
    assert.ok(e instanceof VtdError);
    assert.equal(e.code, 'ARGUMENT');
    return e.message;
  }
  assert.fail('accepted');
}

test('reading a report: every problem names the file and what is wrong', () => {
  const good = makeReport([makeRun()]);
  assert.deepEqual(parseReport(JSON.stringify(good), 'x.json'), good);
  assert.match(problem('{"vtdReport": 1,'), /^x\.json: not JSON \(/);
  assert.match(problem('[1,2]'), /^x\.json: not a vtd replay report \(expected a JSON object, got an array\)/);
  assert.match(problem('{"runs": []}'), /^x\.json: not a vtd replay report \(no "vtdReport" version field/);
  assert.match(problem(JSON.stringify({ ...good, vtdReport: 2 })), /^x\.json: report version number 2 is not supported \(this vtd reads version 1\)/);
  assert.match(problem(JSON.stringify({ ...good, runs: [] })), /^x\.json: the report holds no runs/);
  const { runs: _r, ...noRuns } = good;
  assert.match(problem(JSON.stringify(noRuns)), /^x\.json: malformed report: runs: expected an array, got nothing \(missing\)/);
  const bad = structuredClone(good) as unknown as { runs: Array<Record<string, any>> };
  bad.runs[0].guest.maps = 'many';
  assert.match(problem(JSON.stringify(bad)), /^x\.json: malformed report: runs\[0\]\.guest\.maps: expected a number, got string "many"/);
  const bad2 = structuredClone(good) as unknown as { runs: Array<Record<string, any>> };
  bad2.runs[0].strategy.shadow = 'fast';
  assert.match(problem(JSON.stringify(bad2)), /runs\[0\]\.strategy\.shadow: expected one of merged, qemu, none, got string "fast"/);
  const bad3 = structuredClone(good) as unknown as { runs: Array<Record<string, any>> };
  bad3.runs[0].timeline.samples[3].op = null;
  assert.match(problem(JSON.stringify(bad3)), /runs\[0\]\.timeline\.samples\[3\]\.op: expected a number, got null/);
  const bad4 = structuredClone(good) as unknown as { runs: Array<Record<string, any>> };
  bad4.runs[0].backend.errors = { ENOSPC: '3' };
  assert.match(problem(JSON.stringify(bad4)), /runs\[0\]\.backend\.errors\.ENOSPC: expected a number/);
  // A run without a backend and a backend without limits are fine; so are extra fields.
  const ok = makeReport([makeRun({ shadow: 'none' }), makeRun({ liveLimit: null, pinnedLimit: null })]);
  (ok as unknown as Record<string, unknown>).future = { x: 1 };
  parseReport(JSON.stringify(ok), 'ok.json');
});

// ------------------------------------------------------------------ the command

/** Calls run() with standard output and error captured. */
function capture(args: string[]): { status: number; stdout: string; stderr: string } {
  const out: string[] = [], err: string[] = [];
  const ow = process.stdout.write, ew = process.stderr.write;
  process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    const status = run(args);
    assert.equal(typeof status, 'number');
    return { status: status as number, stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

function files(reports: Record<string, ReplayReport | string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'vtd-compare-'));
  for (const [name, r] of Object.entries(reports)) writeFileSync(join(dir, name), typeof r === 'string' ? r : JSON.stringify(r, null, 1));
  return dir;
}

test('vtd compare A B prints the table and exits 0; --threshold; --html writes the combined report', () => {
  const dir = files({
    'a.json': makeReport([makeRun({ shadow: 'merged' }), makeRun({ shadow: 'qemu' })]),
    'b.json': makeReport([makeRun({ shadow: 'merged', guestMaps: 1030 }), makeRun({ shadow: 'qemu' })], '<b>hostile</b>.jsonl'),
  });
  const a = join(dir, 'a.json'), b = join(dir, 'b.json'), html = join(dir, 'out.html');
  const r = capture([a, b]);
  assert.equal(r.status, 0);
  assert.equal(r.stderr, '');
  assert.ok(r.stdout.startsWith(`A: ${a} (trace net-rx.jsonl)\nB: ${b} (trace <b>hostile</b>.jsonl)\n`));
  assert.match(r.stdout, /^guest: maps +1,000 +1,030 +1\.03x$/m);
  const r2 = capture([a, b, '--threshold', '2', '--html', html]);
  assert.equal(r2.status, 0);
  assert.match(r2.stdout, /^guest: maps +1,000 +1,030 +1\.03x +\*$/m);
  assert.match(r2.stdout, /more than 2%/);
  const page = readFileSync(html, 'utf8');
  assert.ok(page.includes(`<title>vtd comparison report: ${a} vs ${b}</title>`), 'the title says it is a comparison');
  for (const l of ['A: strict+merged/type1', 'B: strict+merged/type1', 'A: strict+qemu/type1', 'B: strict+qemu/type1']) assert.ok(page.includes(l), l);
  assert.ok(page.includes('&lt;b&gt;hostile&lt;/b&gt;.jsonl'));
  assert.ok(!page.includes('<b>hostile'));
  // The pairs compared in words are A's run i against B's run i.
  assert.match(page, /“B: strict\+merged\/type1” takes [\d.]+x the modelled time of “A: strict\+merged\/type1”/);
  assert.match(page, /“B: strict\+qemu\/type1” takes 1\.00x the modelled time of “A: strict\+qemu\/type1”/);
});

test('vtd compare: unreadable, malformed or wrong-version reports exit 2 naming the file; bad usage is an ARGUMENT error', () => {
  const good = makeReport([makeRun()]);
  const dir = files({ 'good.json': good, 'bad.json': '{"vtdReport":1, "trace": ', 'v2.json': { ...good, vtdReport: 2 } as unknown as ReplayReport, 'empty.json': { ...good, runs: [] } });
  const g = join(dir, 'good.json');
  const cases: Array<[string, RegExp]> = [
    ['bad.json', /bad\.json: not JSON/],
    ['v2.json', /v2\.json: report version number 2 is not supported/],
    ['empty.json', /empty\.json: the report holds no runs/],
    ['missing.json', /missing\.json: cannot read \(ENOENT\)/],
  ];
  for (const [name, msg] of cases) {
    const html = join(dir, `${name}.html`);
    const r = capture([g, join(dir, name), '--html', html]);
    assert.equal(r.status, 2, name);
    assert.equal(r.stdout, '', name);
    assert.match(r.stderr, /^vtd: compare: /);
    assert.match(r.stderr, msg);
    assert.ok(!existsSync(html), 'no HTML written');
  }
  for (const args of [[g], [g, g, g], [g, g, '--bogus'], [g, g, '--threshold'], [g, g, '--threshold', 'five'], [g, g, '--html', 'x', '--html', 'y'], ['-', '-']]) {
    assert.throws(() => capture(args), (e: unknown) => e instanceof VtdError && e.code === 'ARGUMENT', args.join(' '));
  }
});

test('usage lines are formatted like the rest of vtd usage', () => {
  const lines = usage.trimEnd().split('\n');
  assert.ok(lines[0].startsWith('  compare A.json B.json  '));
  for (const l of lines) {
    assert.ok(l.startsWith('  '), l);
    assert.ok(l.length <= 110, l);
    // Descriptions start in column 25, as in src/cli/main.ts.
    assert.equal(l[24], ' ', l);
    assert.notEqual(l[25], ' ', l);
  }
  assert.ok(usage.endsWith('\n'));
});

test('end to end through the vtd command line: exit 0, and exit 2 with the file named', () => {
  const dir = files({ 'a.json': makeReport([makeRun()]), 'b.json': makeReport([makeRun({ policy: 'lazy' })]), 'v9.json': '{"vtdReport": 9}' });
  const vtd = (args: string[]) => spawnSync(process.execPath, [
    '--import', 'tsx', '--input-type=module', '-e',
    `import { main } from './src/cli/main.ts'; process.exitCode = await main(${JSON.stringify(args)});`,
  ], { cwd: ROOT, encoding: 'utf8' });
  const ok = vtd(['compare', join(dir, 'a.json'), join(dir, 'b.json')]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /run 1: A strict\+merged\/type1 {2}vs {2}B lazy\+merged\/type1/);
  const bad = vtd(['compare', join(dir, 'a.json'), join(dir, 'v9.json')]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /v9\.json: report version number 9 is not supported \(this vtd reads version 1\)/);
  const usageErr = vtd(['compare', join(dir, 'a.json')]);
  assert.equal(usageErr.status, 2);
  assert.match(usageErr.stderr, /compare takes two report files/);
});
