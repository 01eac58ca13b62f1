/**
 * `vtd import`: Linux ftrace text of a guest's IOMMU events to a workload
 * trace (docs/workloads/import.md). Inputs are read line by line (files
 * ending in .xz through `xz -dc`), never held whole; the output ops are held
 * once, because the header (devices, caching mode, RAM) depends on the whole
 * input.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, statSync } from 'node:fs';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { VtdError } from '../errors.js';
import { CliError, flagsAndValues, openOutput, parseCommandArgs, type Output } from './util.js';
import { parseRid } from '../trace/parse.js';
import { FtraceImporter, IOMMU_EVENTS, QemuDmaPlacer, formatImport, formatSummary, type ImportOptions } from '../sources/ftrace/index.js';

/** The command's lines of `vtd help`. */
export const usage = `  import FTRACE|-        turn Linux ftrace text (iommu:* and intel_iommu:qi_submit events, from
                         /sys/kernel/tracing/trace or trace-cmd report; .xz is decompressed) into a
                         workload trace of attach/map/unmap ops (docs/workloads/import.md)
      --qemu-log LOG     add dma ops from QEMU's -trace 'vtd_*' log of the same run (.xz too)
      --out FILE         write the trace to FILE, whole or not at all [standard output]
      --aw N             header address width 39, 48 or 57 [48]
      --cm / --no-cm     header caching mode [inferred: maps followed by page-selective invalidations]
      --ram BYTES        header RAM, e.g. 1G or 0x40000000 [a power of two >= 2 x the highest mapped
                         gpa, at least 256 MiB]
      --max-events N     stop after N events
      --first-did N      first domain id handed out when inferring attach domains [2]
      --attach SID=DID   a device attached before tracing began, e.g. 00:03.0=3 (repeatable)
      --ignore-invalidations   attribute without the invalidation descriptors (measures the heuristic)
      --quiet            no summary on standard error
`;

const flag = { type: 'boolean' } as const, value = { type: 'string' } as const;
const OPTIONS = {
  cm: flag, 'no-cm': flag, 'ignore-invalidations': flag, quiet: flag,
  'qemu-log': value, out: value, aw: value, ram: value, 'max-events': value, 'first-did': value, attach: { type: 'string', multiple: true },
} as const;

interface Args {
  input: string;
  flags: Set<string>;
  values: Map<string, string[]>;
}

function parseArgs(args: string[]): Args {
  const parsed = parseCommandArgs('import', args, OPTIONS);
  const { flags, values } = flagsAndValues(parsed);
  const inputs = parsed.positional;
  if (inputs.length !== 1) throw new VtdError('ARGUMENT', 'import takes one ftrace file (or - for standard input)');
  if (flags.has('--cm') && flags.has('--no-cm')) throw new VtdError('ARGUMENT', 'import: give --cm or --no-cm, not both');
  return { input: inputs[0], flags, values };
}

function uint(a: Args, key: string, min: number, max: number): number | undefined {
  const v = a.values.get(key)?.[0];
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new VtdError('ARGUMENT', `import: ${key} must be an integer ${min}..${max}, got ${JSON.stringify(v)}`);
  return Number(v);
}

/** "268435456", "0x10000000", "256M", "1G" (binary units) to bytes. */
function bytes(v: string): bigint {
  const m = /^(0x[0-9a-fA-F]+|\d+)([KMGT]i?B?)?$/i.exec(v);
  if (!m) throw new VtdError('ARGUMENT', `import: --ram takes a byte count like 1G, 512M or 0x40000000, got ${JSON.stringify(v)}`);
  const unit = m[2] ? 1n << BigInt(10 * ('KMGT'.indexOf(m[2][0].toUpperCase()) + 1)) : 1n;
  const n = BigInt(m[1]) * unit;
  if (n === 0n || n % 4096n !== 0n || n > 1n << 52n) throw new VtdError('ARGUMENT', `import: --ram must be a non-zero multiple of 4 KiB up to 2^52, got ${v}`);
  return n;
}

function options(a: Args): ImportOptions {
  const o: ImportOptions = { source: a.input === '-' ? 'standard input' : basename(a.input) };
  const aw = uint(a, '--aw', 0, 64);
  if (aw !== undefined) {
    if (aw !== 39 && aw !== 48 && aw !== 57) throw new VtdError('ARGUMENT', `import: --aw must be 39, 48 or 57, got ${aw}`);
    o.aw = aw;
  }
  if (a.flags.has('--cm')) o.cm = true;
  if (a.flags.has('--no-cm')) o.cm = false;
  const ram = a.values.get('--ram')?.[0];
  if (ram !== undefined) o.ram = bytes(ram);
  o.maxEvents = uint(a, '--max-events', 1, Number.MAX_SAFE_INTEGER);
  o.firstDid = uint(a, '--first-did', 1, 0xffff);
  if (a.flags.has('--ignore-invalidations')) o.ignoreInvalidations = true;
  const attach = a.values.get('--attach') ?? [];
  o.attach = attach.map((s) => {
    const m = /^([^=]+)=(\d+)$/.exec(s);
    if (!m || Number(m[2]) > 0xffff) throw new VtdError('ARGUMENT', `import: --attach takes BB:DD.F=DID (domain id 0..65535), got ${JSON.stringify(s)}`);
    return { sid: parseRid(m[1], 0, '--attach'), domain: Number(m[2]) };
  });
  return o;
}

/**
 * A text input as a stream of lines: standard input, a file, or `xz -dc FILE`
 * for .xz. `stop` ends reading early (it kills xz); `done` waits for xz and
 * fails if it did not decompress the whole file.
 */
function open(path: string): { lines: AsyncIterable<string>; stop(): void; done(): Promise<void> } {
  let child: ChildProcess | undefined;
  let stream: Readable;
  let stderr = '';
  if (path === '-') stream = process.stdin;
  else {
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new CliError(`cannot read ${path}: ${err.code === 'ENOENT' ? 'no such file or directory (ENOENT)' : err.code ?? err.message}`, 2);
    }
    if (isDir) throw new CliError(`${path} is a directory, not an ftrace file`, 2);
    if (path.endsWith('.xz')) {
      child = spawn('xz', ['-dc', '--', path], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      stream = child.stdout!;
    } else stream = createReadStream(path);
  }
  const exited = child ? new Promise<number | null>((res, rej) => {
    child!.on('error', rej);
    child!.on('close', (code) => res(code));
  }) : Promise.resolve(0);
  exited.catch(() => undefined); // reported by done()
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  let stopped = false;
  return {
    lines: rl,
    stop() {
      stopped = true;
      rl.close();
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      else if (!child && path !== '-') stream.destroy();
    },
    async done() {
      let code: number | null;
      try {
        code = await exited;
      } catch (e) {
        throw new VtdError('UNSUPPORTED', `import: could not run xz to decompress ${path}: ${(e as Error).message}`);
      }
      if (code !== 0 && !stopped) throw new VtdError('TRACE', `import: xz -dc ${path} failed (exit ${code}): ${stderr.trim()}`);
    },
  };
}

/** Feeds every line of `path` to `push` until it returns false; waits for the decompressor. */
async function readLines(path: string, push: (line: string) => boolean): Promise<void> {
  const input = open(path);
  let complete = false;
  try {
    let more = true;
    for await (const line of input.lines) {
      if (!(more = push(line))) break;
    }
    complete = more;
  } finally {
    if (!complete) input.stop(); // stopped early, or an error: do not leave xz writing to a closed pipe
  }
  await input.done();
}

/** Writes the lines in blocks. */
function write(out: Output, lines: Iterable<string>): void {
  let chunk: string[] = [];
  for (const line of lines) {
    chunk.push(line);
    if (chunk.length === 4096) {
      out.write(chunk.join('\n') + '\n');
      chunk = [];
    }
  }
  if (chunk.length) out.write(chunk.join('\n') + '\n');
  out.commit();
}

/** Runs `vtd import ARGS`: the trace to standard output or --out, the summary to standard error. */
export async function run(args: string[]): Promise<number> {
  const a = parseArgs(args);
  const opts = options(a);
  // The output is opened first: a path that cannot be written fails before the input is read.
  const out = openOutput(a.values.get('--out')?.[0]);
  try {
    return await importTo(out, a, opts);
  } catch (e) {
    out.abort();
    throw e;
  }
}

async function importTo(out: Output, a: Args, opts: ImportOptions): Promise<number> {
  const started = performance.now();
  const importer = new FtraceImporter(opts);
  await readLines(a.input, (line) => importer.pushLine(line));
  const result = importer.finish();
  if (Object.entries(result.stats.read).every(([k, n]) => k === 'mark' || n === 0)) {
    throw new CliError(`import: ${a.input === '-' ? 'standard input' : a.input}: no ftrace event of the known kinds was found (${IOMMU_EVENTS.join(', ')}); `
      + `is this the text of /sys/kernel/tracing/trace or of trace-cmd report, with those events enabled?`, 2);
  }
  const qemu = a.values.get('--qemu-log')?.[0];
  if (qemu !== undefined) {
    const placer = new QemuDmaPlacer(result);
    await readLines(qemu, (line) => {
      placer.pushLine(line);
      return true;
    });
    placer.finish();
  }
  write(out, formatImport(result));
  if (!a.flags.has('--quiet')) process.stderr.write(formatSummary(result, (performance.now() - started) / 1000));
  return 0;
}
