/**
 * The HTML report: every section, readable numbers, escaped text, no outside
 * reference, well-formed SVG, and the edge cases (no runs, no backend, no
 * samples, no lookups) without NaN or Infinity.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderHtml } from '../../src/report/html.js';
import {
  barChart, escapeXml, formatBytes, formatCompact, formatCount, formatCpus, formatNs, formatPercent, formatRatio, gauges, lineChart, nsAxisFormat, stackedBars, ticks,
} from '../../src/report/svg.js';
import { makeReport, makeRun } from './fixtures.js';

// ------------------------------------------------------------------ a tiny well-formedness check

const VOID_HTML = new Set(['area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link', 'meta', 'source', 'track', 'wbr']);
const ENTITY = /^&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/;

/**
 * Checks that `src` is well formed: tags balanced and properly nested, every
 * attribute quoted and unique, `&` only in entity references, no stray `<`.
 * `html` allows the HTML void elements (unclosed) and a doctype; otherwise
 * XML rules, with a single root element. Returns the problem, or null.
 */
function wellFormed(src: string, html = false): string | null {
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const checkText = (t: string, at: number): string | null => {
    for (let k = t.indexOf('&'); k >= 0; k = t.indexOf('&', k + 1)) {
      if (!ENTITY.test(t.slice(k))) return `bad entity at ${at + k}: ${t.slice(k, k + 12)}`;
    }
    return null;
  };
  while (i < src.length) {
    const lt = src.indexOf('<', i);
    const textEnd = lt < 0 ? src.length : lt;
    const text = src.slice(i, textEnd);
    const e = checkText(text, i);
    if (e) return e;
    if (text.includes('>')) return `stray > at ${i + text.indexOf('>')}`;
    if (!html && !stack.length && text.trim()) return `text outside the root at ${i}`;
    if (lt < 0) break;
    if (src.startsWith('<!--', lt)) {
      const end = src.indexOf('-->', lt);
      if (end < 0) return 'unterminated comment';
      i = end + 3;
      continue;
    }
    if (html && /^<!DOCTYPE html>/i.test(src.slice(lt))) {
      i = lt + '<!DOCTYPE html>'.length;
      continue;
    }
    const gt = src.indexOf('>', lt);
    if (gt < 0) return `unterminated tag at ${lt}`;
    const tag = src.slice(lt + 1, gt);
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      const open = stack.pop();
      if (open !== name) return `</${name}> at ${lt} closes <${open ?? 'nothing'}>`;
    } else {
      const m = /^([A-Za-z][\w:-]*)((?:\s+[A-Za-z_:][\w:.-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)$/.exec(tag);
      if (!m) return `malformed tag at ${lt}: <${tag.slice(0, 60)}>`;
      const names = [...m[2].matchAll(/([A-Za-z_:][\w:.-]*)\s*=\s*("[^"]*"|'[^']*')/g)];
      const seen = new Set<string>();
      for (const [, n, v] of names) {
        if (seen.has(n)) return `duplicate attribute ${n} at ${lt}`;
        seen.add(n);
        const ev = checkText(v, lt);
        if (ev) return ev;
      }
      const selfClosing = m[3] === '/' || (html && VOID_HTML.has(m[1].toLowerCase()));
      if (!stack.length) roots++;
      if (!html && roots > 1) return `second root element <${m[1]}> at ${lt}`;
      if (!selfClosing) stack.push(m[1]);
    }
    i = gt + 1;
  }
  return stack.length ? `unclosed <${stack[stack.length - 1]}>` : roots ? null : 'no element';
}

function svgs(html: string): string[] {
  return [...html.matchAll(/<svg[\s>][\s\S]*?<\/svg>/g)].map((m) => m[0]);
}

/** Nothing that is not a number where a number should be. */
function assertFinite(html: string): void {
  for (const bad of ['NaN', 'Infinity', 'undefined', 'null', '[object']) assert.ok(!html.includes(bad), `output contains ${bad}`);
}

/** No reference to anything outside the file. */
function assertSelfContained(html: string): void {
  assert.doesNotMatch(html, /https?:\/\//i, 'no URL');
  assert.doesNotMatch(html, /\bsrc\s*=/i, 'no src=');
  assert.doesNotMatch(html, /url\(/i, 'no CSS url()');
  assert.doesNotMatch(html, /@import|<link\b|<script\b|<iframe\b|<object\b|<embed\b|<img\b/i, 'no external loads, no scripts');
  for (const m of html.matchAll(/\bhref\s*=\s*"([^"]*)"/g)) assert.ok(m[1].startsWith('#'), `href ${m[1]} is in-page`);
}

const SECTIONS = ['strategies', 'summary', 'time', 'sizes', 'hits', 'limits', 'cost'];

function fourRuns() {
  return makeReport([
    makeRun({ policy: 'strict', shadow: 'merged' }),
    makeRun({ policy: 'strict', shadow: 'qemu' }),
    makeRun({ policy: 'lazy', shadow: 'merged' }),
    makeRun({ policy: 'lazy', shadow: 'qemu' }),
  ]);
}

// ------------------------------------------------------------------ the report

test('every section is present, with a heading and a table-of-contents entry', () => {
  const html = renderHtml(fourRuns());
  assert.ok(html.startsWith('<!DOCTYPE html>'));
  assert.match(html, /<title>vtd replay report: net-rx\.jsonl<\/title>/);
  for (const id of SECTIONS) {
    assert.match(html, new RegExp(`<section id="${id}">\\s*<h2>`), id);
    assert.ok(html.includes(`href="#${id}"`), `toc ${id}`);
  }
  for (const h of ['Strategies side by side', 'Summary', 'Operations over time', 'Mapping sizes', 'Hit rates', 'Live mappings and pinned memory', 'Modelled time', 'Cost parameters']) {
    assert.ok(html.includes(h), h);
  }
  // Unit options and devices in the header.
  assert.match(html, /address width 48 bits, caching mode on/);
  assert.match(html, /00:03\.0 00:04\.0/);
});

test('the summary table has every run side by side and ratios against the first', () => {
  const html = renderHtml(fourRuns());
  const summary = html.slice(html.indexOf('<section id="summary">'), html.indexOf('<section id="time">'));
  for (const label of ['strict+merged/type1', 'strict+qemu/type1', 'lazy+merged/type1', 'lazy+qemu/type1']) assert.ok(summary.includes(label), label);
  for (const row of ['maps', 'unmaps', 'invalidations: IOTLB page', 'invalidations: IOTLB domain', 'flush-queue flushes', 'translations', 'IOTLB hit rate',
    'context-cache hit rate', 'walks', 'entries read', 'faults', 'bytes mapped', 'redundant operations avoided', 'unmapped windows', 'modelled time',
    'modelled time per guest map/unmap', 'live mapping limit', 'pinned limit']) {
    assert.ok(summary.includes(`<th scope="row">${row}`), row);
  }
  // qemu: 128,000 backend maps of 4 KiB; merged: 1,000 of 2 MiB.
  assert.match(summary, /<td>128,000<span class="ratio">128\.0x<\/span><\/td>/);
  assert.match(summary, /<td>1,000<\/td>/);
  assert.ok(summary.includes('1.95 GiB'), 'merged maps 1,000 x 2 MiB');
  assert.ok(summary.includes('500 MiB'), 'qemu maps 128,000 x 4 KiB');
  assert.ok(summary.includes('90.0%'), 'IOTLB hit rate 450/500');
  assert.ok(summary.includes('no limit'), 'pinned limit null');
  assert.ok(summary.includes('65,535'));
  // Modelled time in a readable unit.
  assert.match(summary, /\d+(\.\d+)? (ms|s|µs)</);
});

test('the strategies are compared in words: qemu vs merged, strict vs lazy', () => {
  const html = renderHtml(fourRuns());
  const block = html.slice(html.indexOf('<section id="strategies">'), html.indexOf('<section id="summary">'));
  assert.match(block, /qemu mode issues 128\.0x the backend operations of merged mode \(256,000 vs 2,000\)/);
  assert.match(block, /It takes [\d.,]+x the modelled time of merged mode/);
  assert.match(block, /The strict policy issues [\d.,]+x the invalidations of the lazy policy/);
  // Two shadow pairs (strict, lazy) and two policy pairs (merged, qemu).
  assert.equal((block.match(/<li>/g) ?? []).length, 4);
  assert.match(block, /qemu vs merged shadow sync \(strict policy, type1\)/);
  assert.match(block, /qemu vs merged shadow sync \(lazy policy, type1\)/);
});

test('charts: lines over time per run, the size histogram, hit rates, limits and gauges, stacked cost bars', () => {
  const html = renderHtml(fourRuns());
  const sec = (id: string) => html.slice(html.indexOf(`<section id="${id}">`), html.indexOf('</section>', html.indexOf(`<section id="${id}">`)));
  const time = sec('time');
  assert.equal((time.match(/<svg/g) ?? []).length, 4);
  assert.equal((time.match(/<polyline/g) ?? []).length, 16, 'four charts, four runs');
  for (const t of ['Guest maps + unmaps', 'Invalidations processed', 'Backend operations', 'Modelled time (cumulative)']) assert.ok(time.includes(t), t);
  const sizes = sec('sizes');
  assert.ok(sizes.includes('>4 KiB<') && sizes.includes('>2 MiB<'), 'buckets from 4 KiB to 2 MiB');
  for (const old of ['>4K<', '>8K<', '>2M<', '4K:', '2M:']) assert.ok(!sizes.includes(old), `bucket labels in KiB/MiB, as every other size in the report (${old})`);
  assert.ok(!sizes.includes('>1 GiB<'), 'empty buckets beyond the used range are left out');
  const hits = sec('hits');
  assert.ok(hits.includes('IOTLB') && hits.includes('context cache'));
  assert.ok(hits.includes('99.8%'), 'context hit rate 499/500');
  const limits = sec('limits');
  assert.ok(limits.includes('no limit'), 'pinned gauge without a limit');
  assert.ok(limits.includes('300 of 65,535'), 'live gauge');
  assert.ok(limits.includes('limit 65,535'), 'live limit line or note');
  const cost = sec('cost');
  assert.ok(cost.includes('class="chart stacked"'));
  assert.ok(cost.includes('vfioUnmapNs') && cost.includes('qemu-devel, 2023'), 'parameters with their sources');
  // Legends name the runs.
  assert.ok(time.includes('class="legend"'));
});

test('hostile text from the report is escaped everywhere', () => {
  const evil = '<script>alert("x")</script>&<img src=x onerror=y>';
  const run = makeRun({ label: evil, errors: { [evil]: 3 } });
  run.cost.params[evil] = { value: 1, unit: evil, source: evil };
  run.cost.items.push({ event: evil, what: evil, count: 1, unitNs: 1, totalNs: 1 });
  const report = makeReport([run, makeRun({ shadow: 'qemu' })], evil);
  report.trace.devices = [evil];
  const html = renderHtml(report, { note: evil });
  assert.ok(!html.includes('<script'), 'no script element');
  assert.ok(!html.includes('<img'), 'no img element');
  assert.ok(html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&lt;img src=x onerror=y&gt;'));
  assertSelfContained(html.replaceAll('src=x', ''));
  for (const s of svgs(html)) assert.equal(wellFormed(s), null, s.slice(0, 200));
  assert.equal(wellFormed(html, true), null);
});

test('the file is self-contained: no URL, no src=, no external font or script', () => {
  const html = renderHtml(fourRuns());
  assertSelfContained(html);
  assert.ok(!html.includes('xmlns'), 'inline SVG needs no namespace URL');
});

test('every SVG fragment is well-formed XML, and the whole page balances', () => {
  const html = renderHtml(fourRuns());
  const all = svgs(html);
  assert.ok(all.length >= 10, `${all.length} charts`);
  for (const s of all) assert.equal(wellFormed(s), null, s.slice(0, 200));
  assert.equal(wellFormed(html, true), null);
  // The checker itself catches what it should.
  assert.notEqual(wellFormed('<svg><g></svg>'), null);
  assert.notEqual(wellFormed('<svg><text>a & b</text></svg>'), null);
  assert.notEqual(wellFormed('<svg x=1></svg>'), null);
  assert.notEqual(wellFormed('<svg><text>a < b</text></svg>'), null);
  assert.notEqual(wellFormed('<svg a="1" a="2"></svg>'), null);
  assert.equal(wellFormed('<svg a="1"><text>&lt;&amp;&#39;</text><g/></svg>'), null);
});

test('numbers are readable: thousands separators, binary bytes, time units', () => {
  const html = renderHtml(makeReport([makeRun({ guestMaps: 1234567, guestUnmaps: 7654321, shadow: 'qemu' })]));
  assert.ok(html.includes('1,234,567'));
  assert.ok(html.includes('7,654,321'));
  assert.match(html, /\d+(\.\d+)? (KiB|MiB|GiB|TiB)/);
  assert.match(html, /\d+(\.\d+)? (µs|ms|s)\b/);
  assertFinite(html);
});

// ------------------------------------------------------------------ edge cases

test('a report with no runs is refused with a clear error', () => {
  assert.throws(() => renderHtml(makeReport([])), /no runs/);
});

test('one run: nothing to compare, said so; no NaN anywhere', () => {
  const html = renderHtml(makeReport([makeRun()]));
  assert.match(html, /One run: nothing to compare/);
  assertFinite(html);
  for (const s of svgs(html)) assert.equal(wellFormed(s), null);
});

test('a run without a backend, an empty timeline and zero counts render without NaN or Infinity', () => {
  const bare = makeRun({
    shadow: 'none', samples: 0, guestMaps: 0, guestUnmaps: 0, invalidations: 0, registerWrites: 0,
    iotlbHits: 0, iotlbMisses: 0, contextHits: 0, contextMisses: 0,
  });
  bare.unit.translations = 0;
  bare.wallMs = 0;
  bare.opsPerSecond = 0;
  const html = renderHtml(makeReport([bare]));
  assertFinite(html);
  assert.match(html, /The report holds no timeline samples/);
  assert.match(html, /No run shadows a backend/);
  assert.ok(html.includes('n/a'), 'hit rate with no lookups');
  assert.ok(html.includes('no backend'), 'backend rows say why they are empty');
  for (const s of svgs(html)) assert.equal(wellFormed(s), null);

  // Mixed: a run without a backend first, then one with; the ratio against a zero first value is not a number.
  const mixed = renderHtml(makeReport([bare, makeRun({ shadow: 'merged', samples: 1 })]));
  assertFinite(mixed);
  assert.match(mixed, /first: 0/);
  assert.match(mixed, /Shadowing adds/, 'a run without a shadow against one with: what shadowing costs');
  for (const s of svgs(mixed)) assert.equal(wellFormed(s), null);
});

test('a backend with zero maps and a zero limit still renders finite gauges', () => {
  const r = makeRun({ backendMaps: 0, backendUnmaps: 0, liveHighWater: 0, liveLimit: 0, pinnedHighWater: 0, pinnedLimit: 0, samples: 2 });
  const html = renderHtml(makeReport([r]));
  assertFinite(html);
  assert.match(html, /Backend maps by size: none/);
  assert.ok(html.includes('0 of 0 (0.0%)'));
});

test('limits far above the data are named as off scale; a limit near it is drawn', () => {
  const far = renderHtml(makeReport([makeRun({ liveHighWater: 300, liveLimit: 65535 })]));
  assert.match(far, /limit 65,535 \(off scale, above\)/);
  const near = renderHtml(makeReport([makeRun({ liveHighWater: 300, liveLimit: 400, pinnedLimit: 1 << 30 })]));
  assert.match(near, /class="limit"/);
  assert.ok(near.includes('300 of 400 (75.0%)'));
  assert.ok(near.includes('limit 1 GiB') || near.includes('limit 1.00 GiB'));
});

test('errors by errno appear in the summary and under the limits', () => {
  const html = renderHtml(makeReport([makeRun({ errors: { ENOSPC: 7 } }), makeRun({ shadow: 'qemu', errors: { ENOMEM: 2 } })]));
  assert.ok(html.includes('<th scope="row">errors: ENOSPC'));
  assert.ok(html.includes('<th scope="row">errors: ENOMEM'));
  assert.match(html, /Failed backend calls: .*ENOSPC 7/);
});

test('explicit pairs replace the automatic ones; duplicate labels are told apart', () => {
  const html = renderHtml(makeReport([makeRun(), makeRun()]), { pairs: [[0, 1]], note: 'A: a.json; B: b.json' });
  assert.ok(html.includes('strict+merged/type1 (#2)'));
  assert.match(html, /“strict\+merged\/type1 \(#2\)” takes 1\.00x the modelled time of “strict\+merged\/type1”/);
  assert.ok(html.includes('A: a.json; B: b.json'));
});

// ------------------------------------------------------------------ chart helpers

test('formatters', () => {
  assert.equal(formatCount(1234567), '1,234,567');
  assert.equal(formatCount(0), '0');
  assert.equal(formatCount(-1234), '-1,234');
  assert.equal(formatCount(NaN), 'n/a');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(4096), '4 KiB');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(3 * 2 ** 30), '3 GiB');
  assert.equal(formatBytes(500 * 2 ** 20), '500 MiB');
  assert.equal(formatNs(850), '850 ns');
  assert.equal(formatNs(12345), '12.3 µs');
  assert.equal(formatNs(2.5e6), '2.5 ms');
  assert.equal(formatNs(1.25e9), '1.25 s');
  assert.equal(formatNs(3600e9), '3,600 s');
  assert.equal(formatPercent(90), '90.0%');
  assert.equal(formatRatio(128), '128.0x');
  assert.equal(formatRatio(0.5), '0.50x');
  assert.equal(formatRatio(1 / 256), '0.00391x');
  assert.equal(formatRatio(12345.6), '12,345.6x');
  assert.equal(formatCompact(12800), '12.8k');
  assert.equal(formatCompact(1.5e6), '1.5M');
  assert.equal(escapeXml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
});

test('ticks: nice steps from zero, never empty or NaN', () => {
  assert.deepEqual(ticks(100, 5), [0, 20, 40, 60, 80, 100]);
  assert.deepEqual(ticks(7, 5, { integer: true }), [0, 2, 4, 6, 8]);
  assert.deepEqual(ticks(2, 5, { integer: true }), [0, 1, 2]);
  assert.deepEqual(ticks(3 * 2 ** 30, 5, { binary: true }), [0, 2 ** 30, 2 * 2 ** 30, 3 * 2 ** 30]);
  for (const m of [0, -5, NaN, Infinity, 1e-9, 1e15]) {
    const t = ticks(m, 5);
    assert.ok(t.length >= 2 && t.every(Number.isFinite), `${m}: ${t}`);
  }
});

test('the modelled time over wall time is shown as CPUs kept busy, named, not as a "share of one CPU" over 100%', () => {
  const run = makeRun({});
  run.cost.cpuShare = 7.114;
  const html = renderHtml(makeReport([run]));
  assert.match(html, /<th scope="row">CPUs busy at the recorded rate \(modelled time \/ workload wall time\)<\/th><td>7\.11 CPUs<\/td>/);
  assert.ok(!html.includes('share of one CPU') && !html.includes('711'));
  assert.equal(formatCpus(1), '1.00 CPU');
  assert.equal(formatCpus(0.25), '0.25 CPUs');
});

test('a comparison report says so in its title and heading; a replay report does not', () => {
  const r = makeReport([makeRun({ shadow: 'merged' }), makeRun({ shadow: 'qemu' })]);
  const cmp = renderHtml(r, { comparison: ['a.json', 'b<1>.json'] });
  assert.match(cmp, /<title>vtd comparison report: a\.json vs b&lt;1&gt;\.json<\/title>/);
  assert.match(cmp, /<h1>vtd comparison report: <span class="trace">a\.json<\/span> vs <span class="trace">b&lt;1&gt;\.json<\/span><\/h1>/);
  const plain = renderHtml(r);
  assert.match(plain, /<title>vtd replay report: /);
  assert.ok(!plain.includes('comparison report'));
});

test('empty charts get no invented axes: all-zero lines, bars and stacks say so instead', () => {
  const zeroLine = lineChart({ title: 'zeros', xLabel: 'x', yFormat: formatNs, series: [{ label: 'a', color: '#000', points: [[0, 0], [10, 0]] }] });
  const zeroBars = barChart({ title: 'zeros', categories: ['a'], series: [{ label: 's', color: '#000', values: [0] }] });
  const nullBars = barChart({ title: 'nothing', categories: ['a'], series: [{ label: 's', color: '#000', values: [null] }] });
  const zeroStack = stackedBars({ title: 'zeros', parts: [{ label: 'p', color: '#000' }], rows: [{ label: 'r', values: [0] }], format: formatNs });
  for (const [c, msg] of [[zeroLine, 'zero throughout'], [zeroBars, 'zero everywhere'], [nullBars, 'nothing to show'], [zeroStack, 'zero for every run']] as const) {
    assert.match(c, /^<svg class="chart empty"/);
    assert.ok(c.includes(msg), msg);
    assert.ok(!c.includes('<line') && !/>0 ns</.test(c), 'no axis, no tick');
  }
  // A fixed scale (a percentage) is not invented: zeros on it are drawn.
  assert.ok(!barChart({ title: 'rates', categories: ['a'], yMax: 100, series: [{ label: 's', color: '#000', values: [0] }] }).includes('chart empty'));
});

test('time axes use one unit: "0 ms" beside "5 ms", never "0 ns"', () => {
  const f = nsAxisFormat(25e6);
  assert.deepEqual([0, 5e6, 12.5e6, 25e6].map(f), ['0 ms', '5 ms', '12.5 ms', '25 ms']);
  assert.deepEqual([0, 500].map(nsAxisFormat(1000)), ['0 µs', '0.5 µs']);
  assert.equal(nsAxisFormat(3e9)(0), '0 s');
  assert.equal(nsAxisFormat(800)(0), '0 ns');
  const line = lineChart({ title: 't', xLabel: 'x', yFormat: formatNs, yAxisFormat: nsAxisFormat, series: [{ label: 'a', color: '#000', points: [[0, 0], [10, 21.3e6]] }] });
  assert.ok(line.includes('>0 ms<') && line.includes('>25 ms<') && !line.includes('>0 ns<'), line);
  const html = renderHtml(fourRuns());
  assert.ok(!html.includes('>0 ns<'), 'no time axis of the report starts at 0 ns');
});

test('chart helpers stay well-formed and finite on empty and degenerate input', () => {
  const charts = [
    lineChart({ title: 'empty', xLabel: 'x', series: [] }),
    lineChart({ title: 'one point', xLabel: 'x', series: [{ label: 'a', color: '#000', points: [[0, 0]] }] }),
    lineChart({ title: 'nan', xLabel: 'x', series: [{ label: 'a', color: '#000', points: [[NaN, 1], [1, Infinity], [2, 3]] }], limits: [{ value: NaN, label: 'bad' }] }),
    barChart({ title: 'no categories', categories: [], series: [] }),
    barChart({ title: 'missing values', categories: ['a', 'b'], series: [{ label: 's', color: '#000', values: [null, 3] }] }),
    stackedBars({ title: 'none', parts: [], rows: [], format: formatNs }),
    stackedBars({ title: 'zeros', parts: [{ label: 'p', color: '#000' }], rows: [{ label: 'r', values: [0] }], format: formatNs }),
    gauges('none', []),
    gauges('over', [{ label: 'r', value: 10, limit: 5, format: formatCount }, { label: 'z', value: 3, limit: 0, format: formatCount }]),
  ];
  for (const c of charts) {
    assert.equal(wellFormed(c), null, c);
    assertFinite(c);
  }
  assert.match(charts[0], /no samples/);
  assert.match(charts[4], /n\/a/);
  for (const i of [1, 3, 5, 6]) assert.match(charts[i], /^<svg class="chart empty"/, `chart ${i} is shown empty`);
  assert.match(charts[8], /10 of 5 \(200\.0%\)/);
  assert.match(charts[8], /3 of 0 \(over\)/);
});
