/**
 * The `vtd` command line. The only module of src/ that imports Node modules.
 *
 *   vtd replay TRACE.jsonl|-  [--summary] [--counters]
 *
 * Exit status: 0 success; 2 a malformed trace or bad usage (the message names
 * the line); 1 anything else (an unsupported feature, a core trap).
 */
import { readFileSync } from 'node:fs';
import { VtdError } from './errors.js';
import { Replayer } from './replay.js';
import { parseTrace, formatRid } from './trace.js';

const USAGE = `usage: vtd <command> [options]

commands:
  replay TRACE.jsonl|-   replay a trace (trace-format.md) and print its result lines
      --summary          after the results, a short human summary on standard error
      --counters         with --summary, the core's non-zero counters too
  help                   this text
`;

function readInput(path: string): string {
  return path === '-' ? readFileSync(0, 'utf8') : readFileSync(path, 'utf8');
}

function replay(args: string[]): number {
  const files = args.filter((a) => !a.startsWith('--'));
  const flags = new Set(args.filter((a) => a.startsWith('--')));
  for (const f of flags) {
    if (f !== '--summary' && f !== '--counters') throw new VtdError('ARGUMENT', `replay: unknown option ${f}`);
  }
  if (files.length !== 1) throw new VtdError('ARGUMENT', 'replay takes one trace file (or - for standard input)');
  const trace = parseTrace(readInput(files[0]));
  // Refuse what this version cannot replay before printing anything.
  for (const op of trace.ops) {
    if (op.op === 'attach' || op.op === 'map' || op.op === 'unmap') {
      throw new VtdError('UNSUPPORTED', `${op.op}: high-level workload ops are not implemented yet`, {}, op.line);
    }
  }
  const r = new Replayer(trace);
  const out: string[] = [];
  const t0 = performance.now();
  for (const op of trace.ops) {
    const line = r.step(op);
    if (line !== undefined) out.push(line);
  }
  const ms = performance.now() - t0;
  process.stdout.write(out.length ? out.join('\n') + '\n' : '');
  if (flags.has('--summary')) {
    const c = trace.header.config;
    const t = r.tally;
    const s = r.iommu.stats();
    const lines = [
      `-- summary: ${files[0]}`,
      `unit: aw ${c.aw}${c.cm ? ', caching mode' : ''}${c.ir ? ', interrupt remapping' : ''}, ${c.nfr} fault record(s), RAM 0x${c.ram.toString(16)}; devices ${trace.header.devices.map(formatRid).join(' ')}`,
      `${t.ops} operations, ${t.results} result lines in ${ms.toFixed(1)} ms`,
      `DMA: ${t.dmaOk} translated, ${t.dmaFault} faulted (reason reported), ${t.dmaSuppressed} suppressed by FPD, ${t.dmaBlocked} blocked without fault`,
      `MSI: ${t.msiOk} delivered, ${t.msiBlocked} blocked`,
      `interrupts sent: ${t.faultEvents} fault event(s), ${t.completionEvents} invalidation completion(s)`,
      `core: ${s.guestFrames} guest frames held, IOTLB ${s.iotlbLive}/${s.iotlbCapacity}, context cache ${s.contextCacheLive}, ${(s.memoryBytes / 1048576).toFixed(1)} MiB linear memory`,
    ];
    if (flags.has('--counters')) {
      for (const [k, v] of Object.entries(r.iommu.counters())) if (v) lines.push(`  ${k} ${v}`);
    }
    process.stderr.write(lines.join('\n') + '\n');
  }
  return 0;
}

export function main(argv: string[]): number {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === 'replay') return replay(rest);
    if (cmd === 'help' || cmd === '--help' || cmd === '-h' || cmd === undefined) {
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    }
    throw new VtdError('ARGUMENT', `unknown command ${JSON.stringify(cmd)}`);
  } catch (e) {
    if (e instanceof VtdError) {
      process.stderr.write(`vtd: ${e.message}\n`);
      if (e.code === 'ARGUMENT') process.stderr.write(USAGE);
      return e.code === 'TRACE' || e.code === 'ARGUMENT' ? 2 : 1;
    }
    const err = e as NodeJS.ErrnoException;
    if (err && err.code === 'ENOENT') {
      process.stderr.write(`vtd: ${err.message}\n`);
      return 2;
    }
    throw e;
  }
}
