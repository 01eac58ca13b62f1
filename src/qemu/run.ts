/**
 * Runs one trace through QEMU's intel-iommu (7.2, or 10 under chroot) and prints QEMU's result lines.
 *
 *   node --import tsx src/qemu/run.ts TRACE.jsonl [--qemu-version 7.2|10] [--stats] [--trace] [--cmdline] [--timeout MS]
 *
 *   --qemu-version  which QEMU [7.2]
 *   --stats    timings on stderr (start-up, per op kind)
 *   --trace    the whole qtest conversation and every vtd_* event on stderr
 *   --cmdline  print the QEMU command line (to drive it by hand with qtest commands) and exit
 */
import { readFileSync } from 'node:fs';
import { QEMU_VERSIONS, QemuError, qemuCommandLine, runTraceOnQemuWithStats, type QemuVersion } from './harness.js';

async function main(argv: string[]): Promise<number> {
  const flags = new Set(argv.filter((a) => a.startsWith('--')));
  const ti = argv.indexOf('--timeout');
  const timeoutMs = ti >= 0 ? Number(argv[ti + 1]) : undefined;
  const vi = argv.indexOf('--qemu-version');
  const version = vi >= 0 ? argv[vi + 1] : '7.2';
  const files = argv.filter((a, i) => !a.startsWith('--') && !(ti >= 0 && i === ti + 1) && !(vi >= 0 && i === vi + 1));
  if (files.length !== 1 || !QEMU_VERSIONS.includes(version as QemuVersion)) {
    process.stderr.write('usage: node --import tsx src/qemu/run.ts TRACE.jsonl [--qemu-version 7.2|10] [--stats] [--trace] [--cmdline] [--timeout MS]\n');
    return 2;
  }
  const qv = version as QemuVersion;
  const text = readFileSync(files[0], 'utf8');
  if (flags.has('--cmdline')) {
    const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
    process.stdout.write((await qemuCommandLine(text, { version: qv, trace: flags.has('--trace') })).map(quote).join(' ') + '\n');
    return 0;
  }
  const { results, stats } = await runTraceOnQemuWithStats(text, { version: qv, trace: flags.has('--trace'), timeoutMs });
  process.stdout.write(results.map((l) => l + '\n').join(''));
  if (flags.has('--stats')) process.stderr.write(JSON.stringify(stats, null, 1) + '\n');
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`${e instanceof QemuError ? e.message : e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
