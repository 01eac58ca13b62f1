/** The vtd command line: exact result lines on stdout, clear errors and exit statuses. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, CONFORMANCE } from '../helpers.js';

const VTD = join(ROOT, 'bin', 'vtd.js');

function vtd(args: string[], input?: string) {
  return spawnSync(process.execPath, [VTD, ...args], { input, encoding: 'utf8' });
}

test('replay prints exactly the result lines', () => {
  const r = vtd(['replay', join(CONFORMANCE, 'basic-4level.jsonl')]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, readFileSync(join(CONFORMANCE, 'basic-4level.expected.jsonl'), 'utf8'));
  assert.equal(r.stderr, '');
});

test('replay reads standard input with -', () => {
  const r = vtd(['replay', '-'], readFileSync(join(CONFORMANCE, 'two-buses.jsonl'), 'utf8'));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, readFileSync(join(CONFORMANCE, 'two-buses.expected.jsonl'), 'utf8'));
});

test('--summary goes to standard error and leaves standard output exact', () => {
  const r = vtd(['replay', join(CONFORMANCE, 'faults-every-level.jsonl'), '--summary', '--counters']);
  assert.equal(r.status, 0);
  assert.equal(r.stdout, readFileSync(join(CONFORMANCE, 'faults-every-level.expected.jsonl'), 'utf8'));
  assert.match(r.stderr, /DMA: 2 translated, 7 faulted \(reason reported\), 1 suppressed by FPD/);
  assert.match(r.stderr, /fault\.reason\.0x02 2/);
});

test('a malformed trace exits 2 naming the line, with nothing on standard output', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtd-cli-'));
  const f = join(dir, 'bad.jsonl');
  writeFileSync(f, '{"vtd-trace": 1, "devices": ["00:03.0"]}\n{"op":"rd","reg":"0x0","size":4}\n{"op":"dma","sid":"00:03.0"}\n');
  const r = vtd(['replay', f]);
  assert.equal(r.status, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /line 3: dma: missing field "iova"/);
});

test('msi ops replay through interrupt remapping', () => {
  const r = vtd(['replay', join(CONFORMANCE, 'ram-errors.jsonl')]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, readFileSync(join(CONFORMANCE, 'ram-errors.expected.jsonl'), 'utf8'));
});

const WORKLOAD = [
  '{"vtd-trace": 1, "iommu": {"aw": 48, "cm": true, "ram": "0x40000000"}, "devices": ["00:03.0"]}',
  '{"op":"attach","sid":"00:03.0","domain":3}',
  '{"op":"map","domain":3,"iova":"0xfff00000","gpa":"0x1000000","len":65536,"perm":"rw"}',
  '{"op":"dma","sid":"00:03.0","iova":"0xfff00010","len":4,"dir":"w"}',
  '{"op":"unmap","domain":3,"iova":"0xfff00000","len":65536}',
  '{"op":"dma","sid":"00:03.0","iova":"0xfff00010","len":4,"dir":"w"}',
].join('\n') + '\n';

test('workload ops are lowered by the guest-driver model and replayed', () => {
  const r = vtd(['replay', '-'], WORKLOAD);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '{"i":2,"op":"dma","ok":true,"gpa":"0x1000010"}\n{"i":4,"op":"dma","ok":false,"fault":"0x05"}\n');
});

test('replay with shadow sync writes the JSON and HTML reports, one run per strategy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtd-cli-'));
  const f = join(dir, 'w.jsonl');
  writeFileSync(f, WORKLOAD);
  const r = vtd(['replay', f, '--shadow', 'merged,qemu', '--report', join(dir, 'r.json'), '--html', join(dir, 'r.html'), '--summary']);
  assert.equal(r.status, 0, r.stderr);
  const rep = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
  assert.equal(rep.vtdReport, 1);
  assert.deepEqual(rep.runs.map((x: { strategy: { label: string } }) => x.strategy.label), ['strict(forced)+merged/type1', 'strict(forced)+qemu/type1']);
  const [merged, qemu] = rep.runs;
  assert.equal(merged.guest.maps, 1);
  assert.equal(merged.backend.maps, 1, 'one 64 KiB run');
  assert.equal(qemu.backend.maps, 16, 'one per leaf');
  assert.deepEqual(merged.backend.errors, {});
  assert.ok(merged.timeline.samples.length >= 2);
  assert.match(readFileSync(join(dir, 'r.html'), 'utf8'), /<svg/);
  assert.match(r.stderr, /run strict\(forced\)\+qemu\/type1:[\s\S]*backend: 16 maps/);
  const nocm = vtd(['replay', '-', '--shadow', 'merged', '--no-results'], WORKLOAD.replace('"cm": true', '"cm": false'));
  assert.equal(nocm.status, 0);
  assert.match(nocm.stderr, /without caching mode/);
});

test('--progress draws a progress bar on standard error (off by default when it is not a terminal)', () => {
  const on = vtd(['replay', '-', '--progress', '--no-results'], WORKLOAD);
  assert.equal(on.status, 0);
  assert.match(on.stderr, /\rreplay \[#+\] 100% 5\/5 ops\n/);
  const off = vtd(['replay', '-', '--no-results'], WORKLOAD);
  assert.doesNotMatch(off.stderr, /\[#/);
});

test('a malformed workload op stops the replay with its line', () => {
  const r = vtd(['replay', '-'], WORKLOAD + '{"op":"unmap","domain":3,"iova":"0x5000","len":4096}\n');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /line 7/);
});

test('usage errors', () => {
  assert.equal(vtd([]).status, 2);
  assert.equal(vtd(['frob']).status, 2);
  assert.equal(vtd(['replay']).status, 2);
  assert.equal(vtd(['replay', '/nonexistent.jsonl']).status, 2);
  assert.equal(vtd(['replay', 'x', '--bogus']).status, 2);
  const good = join(CONFORMANCE, 'basic-4level.jsonl');
  for (const bad of [['--policy', 'eager'], ['--backend', 'type1'], ['--shadow', 'merged', '--backend', 'vfio'], ['--cost', 'nope=1'], ['--flush-queue', '0'], ['--memlock', 'lots']]) {
    const r = vtd(['replay', good, ...bad]);
    assert.equal(r.status, 2, bad.join(' '));
    assert.match(r.stderr, /replay|cost/, bad.join(' '));
    assert.equal(r.stdout, '', 'nothing replayed');
  }
  assert.equal(vtd(['help']).status, 0);
});

// ------------------------------------------------ the command line as people use one (issue 11)

const NO_STACK = /^\s+at /m;
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
const FTRACE = join(ROOT, 'test', 'fixtures', 'ftrace', 'trace-cmd.txt');

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'vtd-cli-'));
}

/** Files in `dir` (temporary files left behind would show here). */
function listing(dir: string): string[] {
  return readdirSync(dir).sort();
}

/** A raw trace of `n` register reads (one result line each), then `tail`. */
function reads(n: number, tail = ''): string {
  return '{"vtd-trace": 1}\n' + '{"op":"rd","reg":"0x0","size":4}\n'.repeat(n) + tail;
}

/** Runs the CLI, closes its standard output after the first line (or at once), and resolves its exit and stderr. */
function closedEarly(args: string[], afterFirstLine: boolean, input?: string): Promise<{ status: number | null; stderr: string; got: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [VTD, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '', got = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (afterFirstLine) {
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        got += d;
        if (got.includes('\n')) child.stdout.destroy();
      });
    } else child.stdout.destroy();
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
    child.on('close', (status) => resolve({ status, stderr, got }));
  });
}

test('output files: a path that cannot be written is exit 2 naming it, before any work, and nothing is left behind', () => {
  const dir = tmp();
  const trace = join(dir, 'w.jsonl');
  writeFileSync(trace, WORKLOAD);
  const cases: [string[], string][] = [
    [['gen', 'network', '--ops', '10', '--out', '/nonexistent/dir/x.jsonl'], '/nonexistent/dir/x.jsonl'],
    [['import', FTRACE, '--out', '/nonexistent/dir/w.jsonl'], '/nonexistent/dir/w.jsonl'],
    [['replay', trace, '--report', join(dir, 'missing', 'r.json')], join(dir, 'missing', 'r.json')],
    [['replay', trace, '--html', dir], dir],
    [['gen', 'storage', '--ops', '10', '--out', join(trace, 'x')], join(trace, 'x')],
  ];
  for (const [args, path] of cases) {
    const r = vtd(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(r.stderr.includes(`vtd: cannot write ${path}: `), r.stderr);
    assert.doesNotMatch(r.stderr, NO_STACK);
    assert.equal(r.stdout, '', 'failed before any result');
  }
  assert.deepEqual(listing(dir), ['w.jsonl']);
  // compare --html too, once two reports exist.
  const a = join(dir, 'a.json');
  assert.equal(vtd(['replay', trace, '--no-results', '--report', a]).status, 0);
  const c = vtd(['compare', a, a, '--html', join(dir, 'no', 'c.html')]);
  assert.equal(c.status, 2);
  assert.match(c.stderr, /cannot write .*no\/c\.html: no such file or directory/);
  assert.equal(c.stdout, '');
});

test('output files are written whole or not at all: a failed run keeps the old file and leaves no temporary file', () => {
  const dir = tmp();
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, WORKLOAD + '{"op":"unmap","domain":3,"iova":"0x5000","len":4096}\n');
  const report = join(dir, 'r.json');
  writeFileSync(report, 'old');
  const r = vtd(['replay', bad, '--report', report, '--html', join(dir, 'r.html')]);
  assert.equal(r.status, 2);
  assert.equal(readFileSync(report, 'utf8'), 'old');
  assert.deepEqual(listing(dir), ['bad.jsonl', 'r.json']);
  // A good run replaces it whole.
  writeFileSync(join(dir, 'w.jsonl'), WORKLOAD);
  assert.equal(vtd(['replay', join(dir, 'w.jsonl'), '--no-results', '--report', report]).status, 0);
  assert.equal(JSON.parse(readFileSync(report, 'utf8')).vtdReport, 1);
  const out = join(dir, 'g.jsonl');
  assert.equal(vtd(['gen', 'network', '--ops', '50', '--out', out]).status, 0);
  assert.equal(readFileSync(out, 'utf8'), vtd(['gen', 'network', '--ops', '50']).stdout);
  assert.deepEqual(listing(dir), ['bad.jsonl', 'g.jsonl', 'r.json', 'w.jsonl']);
});

test('a run killed part way leaves the --out file as it was, not half written', async () => {
  const dir = tmp();
  const out = join(dir, 'big.jsonl');
  writeFileSync(out, 'old\n');
  const child = spawn(process.execPath, [VTD, 'gen', 'network', '--ops', '100000000', '--out', out], { stdio: 'ignore' });
  const closed = new Promise((resolve) => child.on('close', resolve));
  // Wait until some of the output has been written somewhere in the directory, then kill.
  const written = () => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0) > 1 << 20;
  for (let i = 0; i < 600 && !written(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(written(), 'gen wrote something');
  child.kill('SIGKILL');
  await closed;
  assert.equal(readFileSync(out, 'utf8'), 'old\n');
});

test('a reader that goes away (EPIPE) ends every command quietly with exit 0', async () => {
  const dir = tmp();
  const big = join(dir, 'big.jsonl');
  assert.equal(vtd(['gen', 'network', '--ops', '20000', '--out', big]).status, 0);
  const a = join(dir, 'a.json');
  assert.equal(vtd(['replay', join(CONFORMANCE, 'basic-4level.jsonl'), '--no-results', '--report', a]).status, 0);
  const runs: [string[], boolean, string?][] = [
    [['replay', big], true],
    [['replay', '-'], true, readFileSync(big, 'utf8')],
    [['lower', big], true],
    [['gen', 'network', '--ops', '20000'], true],
    [['import', FTRACE, '--quiet'], false],
    [['compare', a, a], false],
    [['help'], false],
    [['replay', '--help'], false],
  ];
  for (const [args, afterFirstLine, input] of runs) {
    const r = await closedEarly(args, afterFirstLine, input);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /EPIPE|Error/, args.join(' '));
    assert.doesNotMatch(r.stderr, NO_STACK, args.join(' '));
    if (afterFirstLine) assert.ok(r.got.length > 0, args.join(' '));
  }
});

test('a trace of invalid UTF-8, binary bytes, a directory or a missing file: exit 2 naming the problem', () => {
  const dir = tmp();
  const utf = join(dir, 'utf.jsonl');
  writeFileSync(utf, Buffer.concat([Buffer.from('{"vtd-trace": 1}\n# ok\n{"op":"rd","reg":"0x0","size":4}\n# caf'), Buffer.from([0xc3, 0x28]), Buffer.from('\n')]));
  const bin = join(dir, 'bin.jsonl');
  writeFileSync(bin, Buffer.from([0x7b, 0x0a, 0x00, 0x01, 0x02, 0x0a]));
  const cases: [string[], RegExp, string?][] = [
    [['replay', utf], /^vtd: line 4: invalid UTF-8 at byte offset 60: a trace is UTF-8 text\n$/],
    [['lower', utf], /^vtd: line 4: invalid UTF-8 at byte offset 60/],
    [['replay', bin], /^vtd: line 2: a NUL byte at byte offset 2: this is binary data, not a trace/],
    [['replay', dir], /^vtd: .* is a directory, not a trace file\n$/],
    [['lower', dir], /is a directory, not a trace file/],
    [['replay', join(dir, 'none.jsonl')], /^vtd: cannot read .*none\.jsonl: no such file or directory/],
    [['import', dir], /is a directory, not an ftrace file/],
  ];
  for (const [args, re] of cases) {
    const r = vtd(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, NO_STACK);
    assert.equal(r.stdout, '');
  }
  const viaStdin = spawnSync(process.execPath, [VTD, 'replay', '-'], { input: readFileSync(utf) });
  assert.equal(viaStdin.status, 2);
  assert.match(String(viaStdin.stderr), /line 4: invalid UTF-8 at byte offset 60/);
});

test('nothing half-done: a malformed line at the end of a file prints no result (replay, lower); standard input too', () => {
  const dir = tmp();
  const f = join(dir, 'late.jsonl');
  writeFileSync(f, reads(5000, '{"op":"rd","reg":"0x0"}\n'));
  for (const args of [['replay', f], ['lower', f], ['replay', f, '--policy', 'strict,lazy']]) {
    const r = vtd(args);
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr, /^vtd: line 5002: rd: missing field "size"\n$/);
    assert.equal(r.stdout, '', args.join(' '));
  }
  const s = vtd(['replay', '-'], reads(5000, '{"op":"rd","reg":"0x0"}\n'));
  assert.equal(s.status, 2);
  assert.match(s.stderr, /line 5002/);
  assert.equal(s.stdout, '');
  // The check changes nothing for a good trace: every result line is still printed.
  const ok = vtd(['replay', '-'], reads(5000));
  assert.equal(ok.status, 0);
  assert.equal(ok.stdout.split('\n').length - 1, 5000);
});

test('nothing half-done: a workload op the guest-driver model refuses, after many results, prints no result either', () => {
  const dir = tmp();
  const f = join(dir, 'refused.jsonl');
  // A good workload with more result lines than one output block (4096), then an unmap of what was
  // never mapped: the driver model refuses it only when it gets there.
  const good = readFileSync(join(ROOT, 'examples', 'network-small.jsonl'), 'utf8') + '{"op":"rd","reg":"0x0","size":4}\n'.repeat(5000);
  writeFileSync(f, good + '{"op":"unmap","domain":3,"iova":"0x7fff0000000","len":4096}\n');
  const r = vtd(['replay', f]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^vtd: line \d+: unmap: domain 3 has nothing mapped at iova 0x7fff0000000/);
  assert.doesNotMatch(r.stderr, NO_STACK);
  assert.equal(r.stdout, '');
  // Without the bad op, the same trace prints its result lines.
  writeFileSync(f, good);
  const ok = vtd(['replay', f]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(ok.stdout.split('\n').length > 1000);
});

test('import of input with no known ftrace event is exit 2 naming the kinds, and writes nothing', () => {
  const dir = tmp();
  const g = join(dir, 'garbage.txt');
  writeFileSync(g, 'hello\nthis is not ftrace\n  <idle>-0  [001] d.h1.  12.5: irq_handler_entry: irq=5\n');
  const out = join(dir, 'w.jsonl');
  const r = vtd(['import', g, '--out', out]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /garbage\.txt: no ftrace event of the known kinds was found \(iommu:map, iommu:unmap, .*intel_iommu:qi_submit\)/);
  assert.doesNotMatch(r.stderr, NO_STACK);
  assert.deepEqual(listing(dir), ['garbage.txt']);
  assert.equal(vtd(['import', '-'], 'garbage\n').status, 2);
  assert.equal(vtd(['import', FTRACE, '--quiet']).status, 0, 'a real trace still imports');
});

test('conventions: -h/--help on every command, vtd help CMD, --version, short usage on stderr for bare vtd and unknown commands', () => {
  for (const cmd of ['replay', 'lower', 'import', 'gen', 'compare', 'conform']) {
    for (const h of ['-h', '--help']) {
      const r = vtd([cmd, h]);
      assert.equal(r.status, 0, `${cmd} ${h}: ${r.stderr}`);
      assert.ok(r.stdout.startsWith(`usage: vtd ${cmd} ...\n  ${cmd} `), `${cmd} ${h}: ${r.stdout.slice(0, 80)}`);
      assert.equal(r.stderr, '');
    }
    const one = vtd(['help', cmd]);
    assert.equal(one.status, 0);
    assert.equal(one.stdout, vtd([cmd, '--help']).stdout);
    // An unknown option: that command's usage on stderr, exit 2.
    const bad = vtd([cmd, '--frobnicate']);
    assert.equal(bad.status, 2, cmd);
    assert.ok(bad.stderr.startsWith(`vtd: ${cmd}: unknown option --frobnicate\nusage: vtd ${cmd} ...\n`), bad.stderr);
    assert.equal(bad.stdout, '');
  }
  // `vtd replay -h` is help, not a file named -h.
  assert.doesNotMatch(vtd(['replay', '-h']).stderr, /cannot read/);
  const v = vtd(['--version']);
  assert.equal(v.status, 0);
  assert.equal(v.stdout, `vtd ${PKG.version}\n`);
  for (const args of [[], ['frob']]) {
    const r = vtd(args);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /usage: vtd <command> \[options\]\ncommands: replay, lower, import, gen, compare, conform, help\n/);
    assert.ok(r.stderr.split('\n').length <= 5, 'short');
  }
  assert.match(vtd(['frob']).stderr, /^vtd: unknown command "frob"\n/);
  const all = vtd(['help']).stdout;
  for (const cmd of ['replay', 'lower', 'import', 'gen', 'compare', 'conform', 'help']) assert.match(all, new RegExp(`^  ${cmd} `, 'm'));
  assert.equal(vtd(['help', 'frob']).status, 2);
  // parseArgs forms: --name=value, and an option given twice.
  const dir = tmp();
  assert.equal(vtd(['gen', 'network', '--ops=5', `--out=${join(dir, 'x.jsonl')}`]).status, 0);
  assert.match(readFileSync(join(dir, 'x.jsonl'), 'utf8'), /ops=5/);
  assert.match(vtd(['replay', '-', '--report', 'a', '--report', 'b']).stderr, /replay: --report given twice/);
});

test('vtd lower of a scalable-mode workload: TTM = 01, 256-bit slots, PASID-based invalidations; header rules exit 2 naming them', () => {
  const sm = [
    '{"vtd-trace":1,"iommu":{"aw":48,"sm":true,"flts":true,"ram":"0x4000000"},"devices":["00:03.0"]}',
    '{"op":"attach","sid":"00:03.0","domain":1}',
    '{"op":"map","domain":1,"iova":"0x1000","gpa":"0x2000","len":4096,"perm":"rw"}',
    '{"op":"unmap","domain":1,"iova":"0x1000","len":4096}',
  ].join('\n') + '\n';
  const r = vtd(['lower', '-', '--policy', 'strict'], sm);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /"sm":true,"flts":true/);
  assert.ok(lines.some((l) => /"reg":"0x20","size":8,"val":"0x[0-9a-f]+400"/.test(l)), 'RTADDR with TTM = 01');
  // The unmap's PASID-based IOTLB invalidation (type 6, G = 11, DID 1, PASID 0) and its wait, in one 64-byte write.
  assert.ok(lines.some((l) => l.includes('"q":["0x10036","0x1040","0x0","0x0","0x200000025"')), 'a 256-bit type-6 descriptor');
  const bad = vtd(['replay', '-'], '{"vtd-trace":1,"iommu":{"sm":true,"pasid":true,"dt":true}}\n');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /line 1: .*pasid and iommu\.dt exclude each other/);
});
