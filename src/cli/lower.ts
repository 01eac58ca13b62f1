/**
 * `vtd lower`: prints a trace with its workload operations (attach, map,
 * unmap) lowered by the guest-driver model (docs/workloads/driver.md) into
 * the raw guest-memory and register writes Linux 6.1's intel-iommu driver
 * makes. The output is a raw trace: it replays here and on QEMU 7.2 alike.
 *
 * The input is read and the output written a block at a time, so a trace of
 * millions of operations never sits in memory whole.
 */
import { fileLines, parseCommandArgs, stdinLines, writeStdout } from './util.js';
import { VtdError } from '../errors.js';
import { parseTraceLines } from '../trace/parse.js';
import { formatHeader, lowerOps, type DriverOptions } from '../guest/driver.js';

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
  const a = parseCommandArgs('lower', args, {
    policy: { type: 'string' }, 'flush-queue': { type: 'string' }, 'register-invalidation': { type: 'boolean' }, 'no-superpages': { type: 'boolean' },
  });
  const opts: DriverOptions = {};
  const policy = a.values.policy;
  if (policy !== undefined) {
    if (policy !== 'strict' && policy !== 'lazy') fail(`--policy takes strict or lazy, got ${JSON.stringify(policy)}`);
    opts.policy = policy;
  }
  const fq = a.values['flush-queue'];
  if (typeof fq === 'string') {
    if (!/^\d+$/.test(fq) || Number(fq) < 1 || !Number.isSafeInteger(Number(fq))) fail(`--flush-queue takes a positive integer, got ${JSON.stringify(fq)}`);
    opts.flushQueue = Number(fq);
  }
  if (a.values['register-invalidation']) opts.invalidation = 'register';
  if (a.values['no-superpages']) opts.superpages = false;
  if (a.positional.length !== 1) fail('takes one trace file (or - for standard input)');
  return { file: a.positional[0], opts };
}

export function run(args: string[]): number {
  const { file, opts } = parseLowerArgs(args);
  // Standard input is read whole first; a file is read twice, streamed: once to check every
  // line (nothing is printed for a malformed trace), once to lower it.
  const stdin = file === '-' ? [...stdinLines()] : undefined;
  const source = (): Iterable<string> => stdin ?? fileLines(file);
  for (const _ of parseTraceLines(source()).ops);
  const { header, ops } = parseTraceLines(source());
  let out: string[] = [];
  let size = 0;
  const flush = (): void => {
    if (out.length === 0) return;
    writeStdout(out.join('\n') + '\n');
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
