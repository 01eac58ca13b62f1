/**
 * `vtd lower`: prints a trace with its workload operations (attach, map,
 * unmap) lowered by the guest-driver model (docs/workloads/driver.md) into
 * the raw guest-memory and register writes Linux 6.1's intel-iommu driver
 * makes. The output is a raw trace: it replays here and on QEMU 7.2 alike.
 *
 * The input is read and the output written a block at a time, so a trace of
 * millions of operations never sits in memory whole.
 */
import { readFileSync, writeSync } from 'node:fs';
import { fileLines } from './cli-util.js';
import { VtdError } from '../errors.js';
import { parseTraceLines } from '../trace.js';
import { formatHeader, lowerOps, type DriverOptions } from './driver.js';

export const usage = `  lower TRACE.jsonl|-    print the trace with its workload ops (attach/map/unmap) lowered into the
                         register and memory writes of Linux 6.1's intel-iommu driver (a raw trace)
      --policy P         unmap invalidation: strict or lazy [lazy; caching mode forces strict]
      --flush-queue N    lazy: unmaps per domain before a flush [256]
      --register-invalidation   invalidate through the CCMD/IOTLB registers instead of the queue
      --no-superpages    map 4 KiB pages only
`;

function fail(msg: string): never {
  throw new VtdError('ARGUMENT', `lower: ${msg}`);
}

/** Parses the arguments: the trace file and the driver options. */
export function parseLowerArgs(args: string[]): { file: string; opts: DriverOptions } {
  const files: string[] = [];
  const opts: DriverOptions = {};
  const seen = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a.startsWith('--')) {
      if (seen.has(a)) fail(`${a} given twice`);
      seen.add(a);
    }
    switch (a) {
      case '--policy': {
        const v = args[++i];
        if (v !== 'strict' && v !== 'lazy') fail(`--policy takes strict or lazy, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
        opts.policy = v;
        break;
      }
      case '--flush-queue': {
        const v = args[++i];
        if (v === undefined || !/^\d+$/.test(v) || Number(v) < 1 || !Number.isSafeInteger(Number(v))) fail(`--flush-queue takes a positive integer, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
        opts.flushQueue = Number(v);
        break;
      }
      case '--register-invalidation': opts.invalidation = 'register'; break;
      case '--no-superpages': opts.superpages = false; break;
      default:
        if (a.startsWith('--')) fail(`unknown option ${a}`);
        files.push(a);
    }
  }
  if (files.length !== 1) fail('takes one trace file (or - for standard input)');
  return { file: files[0], opts };
}

export function run(args: string[]): number {
  const { file, opts } = parseLowerArgs(args);
  const lines = file === '-' ? readFileSync(0, 'utf8').split('\n') : fileLines(file);
  const { header, ops } = parseTraceLines(lines);
  let out: string[] = [];
  let size = 0;
  const flush = (): void => {
    if (out.length === 0) return;
    const s = out.join('\n') + '\n';
    let b = Buffer.from(s, 'utf8');
    // writeSync may write less than asked on a pipe.
    while (b.length > 0) b = b.subarray(writeSync(1, b));
    out = [];
    size = 0;
  };
  const write = (line: string): void => {
    out.push(line);
    size += line.length;
    if (size >= 1 << 16) flush();
  };
  write(formatHeader(header));
  lowerOps(header, ops, write, opts);
  flush();
  return 0;
}
