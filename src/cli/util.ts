/**
 * What the commands' CLIs share (Node only: imported by src/cli/main.ts and the
 * command modules beside it, never by the library): option parsing (Node's own
 * `parseArgs`), reading a trace by lines, writing to standard output when the
 * reader may go away, and writing output files whole or not at all.
 */
import { closeSync, fstatSync, fsyncSync, mkdtempSync, openSync, readSync, renameSync, rmdirSync, statSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { VtdError } from '../errors.js';

/**
 * A failure the command reports in one line (`vtd: MESSAGE`), without a usage
 * text, and ends with `status`: 2 for input or a path the user gave that
 * cannot be used, 1 for a failure of the system (disk full).
 */
export class CliError extends Error {
  constructor(message: string, readonly status: 1 | 2) {
    super(message);
  }
}

// ---------------------------------------------------------------- options

/** `-h` or `--help` was given: the caller prints the command's usage on standard output, exit 0. */
export class HelpRequested extends Error {
  constructor() {
    super('help requested');
  }
}

/** The options of one command, as `parseArgs` takes them (long names, without the dashes). */
export type OptionSpec = Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;

/** A parsed command line: positional arguments and option values by name (without dashes). */
export interface CommandArgs {
  positional: string[];
  values: Record<string, string | boolean | string[] | undefined>;
}

/**
 * Parses `args` of command `cmd` with `node:util` `parseArgs` (strict: every
 * option must be known; `--name value` and `--name=value` alike; `--` ends
 * the options). `-h`/`--help` anywhere throws `HelpRequested`. Unknown
 * options, a missing value, a value given to a flag, and an option given
 * twice (unless `multiple`) are VtdError('ARGUMENT') naming the option.
 */
export function parseCommandArgs(cmd: string, args: readonly string[], options: OptionSpec): CommandArgs {
  let parsed: ReturnType<typeof parseArgs<{ options: OptionSpec; tokens: true; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({
      args: [...args], options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true, tokens: true,
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // Help wins over a mistake elsewhere on the line.
    if (args.includes('-h') || args.includes('--help')) throw new HelpRequested();
    const opt = /'(-[^' ]*)/.exec(err.message)?.[1] ?? '';
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new VtdError('ARGUMENT', `${cmd}: unknown option ${opt}`);
    if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      if (/does not take an argument/.test(err.message)) throw new VtdError('ARGUMENT', `${cmd}: ${opt} takes no value`);
      throw new VtdError('ARGUMENT', `${cmd}: ${opt} needs a value${/ambiguous/.test(err.message) ? ` (to give one that starts with -, write ${opt}=VALUE)` : ''}`);
    }
    throw new VtdError('ARGUMENT', `${cmd}: ${err.message}`);
  }
  if (parsed.values.help) throw new HelpRequested();
  const seen = new Set<string>();
  for (const t of parsed.tokens) {
    if (t.kind !== 'option' || options[t.name]?.multiple) continue;
    if (seen.has(t.name)) throw new VtdError('ARGUMENT', `${cmd}: --${t.name} given twice`);
    seen.add(t.name);
  }
  const { help: _help, ...values } = parsed.values;
  return { positional: parsed.positionals, values: values as CommandArgs['values'] };
}

/** The parsed options keyed by their `--name`: flags given, and the values of options taking one. */
export function flagsAndValues(a: CommandArgs): { flags: Set<string>; values: Map<string, string[]> } {
  const flags = new Set<string>();
  const values = new Map<string, string[]>();
  for (const [k, v] of Object.entries(a.values)) {
    if (v === true) flags.add(`--${k}`);
    else if (typeof v === 'string') values.set(`--${k}`, [v]);
    else if (Array.isArray(v)) values.set(`--${k}`, v);
  }
  return { flags, values };
}

/** The value of a string option, if given. */
export function stringOption(a: CommandArgs, name: string): string | undefined {
  const v = a.values[name];
  return typeof v === 'string' ? v : undefined;
}

// ---------------------------------------------------------------- reading

/**
 * The first byte of `b` (from `from`) that does not start or continue a
 * well-formed UTF-8 sequence; -1 when every byte does. Used only to name
 * where decoding failed.
 */
function firstInvalidUtf8(b: Uint8Array, from = 0): number {
  for (let i = from; i < b.length;) {
    const c = b[i];
    const n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n === 0 || i + n > b.length) return i;
    for (let k = 1; k < n; k++) if ((b[i + k] & 0xc0) !== 0x80) return i;
    // Overlong 3- and 4-byte forms, surrogates, and code points above U+10FFFF.
    if ((c === 0xe0 && b[i + 1] < 0xa0) || (c === 0xed && b[i + 1] >= 0xa0) || (c === 0xf0 && b[i + 1] < 0x90) || (c === 0xf4 && b[i + 1] >= 0x90)) return i;
    i += n;
  }
  return -1;
}

/** Newlines in `b` before `end`. */
function newlines(b: Uint8Array, end: number): number {
  let n = 0;
  for (let i = b.indexOf(10); i !== -1 && i < end; i = b.indexOf(10, i + 1)) n++;
  return n;
}

/**
 * Lines of a file descriptor read in 1 MiB blocks (never the whole input at
 * once). The input must be UTF-8 text: invalid UTF-8 or a NUL byte is a
 * VtdError('TRACE') naming the line and the byte offset.
 */
function* fdLines(fd: number): Generator<string> {
  const block = Buffer.allocUnsafe(1 << 20);
  const dec = new TextDecoder('utf-8', { fatal: true });
  let carry: Buffer = Buffer.alloc(0); // bytes of an unfinished line
  let offset = 0; // byte offset of carry[0] in the input
  let line = 1; // the line carry starts
  const check = (b: Buffer): void => {
    const nul = b.indexOf(0);
    if (nul !== -1) {
      throw new VtdError('TRACE', `a NUL byte at byte offset ${offset + nul}: this is binary data, not a trace (UTF-8 text)`, { offset: offset + nul }, line + newlines(b, nul));
    }
  };
  const decode = (b: Buffer): string => {
    try {
      return dec.decode(b);
    } catch {
      const bad = firstInvalidUtf8(b);
      const at = bad === -1 ? b.length : bad;
      throw new VtdError('TRACE', `invalid UTF-8 at byte offset ${offset + at}: a trace is UTF-8 text`, { offset: offset + at }, line + newlines(b, at));
    }
  };
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, block, 0, block.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); // a non-blocking standard input not ready yet
        continue;
      }
      throw e;
    }
    if (n === 0) break;
    const bytes = carry.length ? Buffer.concat([carry, block.subarray(0, n)]) : block.subarray(0, n);
    const end = bytes.lastIndexOf(10) + 1; // whole lines only: a newline never splits a UTF-8 sequence
    if (end === 0) {
      carry = Buffer.from(bytes);
      continue;
    }
    const whole = bytes.subarray(0, end);
    check(whole);
    const parts = decode(whole).split('\n');
    parts.pop(); // the empty string after the last newline
    carry = Buffer.from(bytes.subarray(end));
    offset += end;
    line += parts.length;
    yield* parts;
  }
  if (carry.length) {
    check(carry);
    yield decode(carry);
  }
}

/**
 * Lines of the trace file `path` (see `fdLines`), streamed. A missing or
 * unreadable file and a directory are a CliError (exit 2) naming the path.
 */
export function* fileLines(path: string): Generator<string> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new CliError(`cannot read ${path}: ${reason(e)}`, 2);
  }
  try {
    if (fstatSync(fd).isDirectory()) throw new CliError(`${path} is a directory, not a trace file`, 2);
    yield* fdLines(fd);
  } finally {
    closeSync(fd);
  }
}

/** Lines of standard input (see `fdLines`), streamed. */
export function stdinLines(): Generator<string> {
  return fdLines(0);
}

// ---------------------------------------------------------------- writing

/** The reader of standard output has gone (EPIPE): the command ends quietly, exit 0. */
export class StdoutClosed extends Error {
  constructor() {
    super('standard output closed');
  }
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of `b` to `fd`, waiting out a full non-blocking pipe (EAGAIN). */
function writeAll(fd: number, b: Uint8Array): void {
  while (b.length > 0) {
    try {
      b = b.subarray(writeSync(fd, b)); // may write less than asked on a pipe
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

/**
 * Writes `text` to standard output synchronously (so a command that produces
 * millions of lines learns at once that nobody reads them). EPIPE becomes
 * `StdoutClosed`, which src/cli/main.ts turns into a quiet exit 0.
 */
export function writeStdout(text: string): void {
  try {
    writeAll(1, Buffer.from(text, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') throw new StdoutClosed();
    throw e;
  }
}

/**
 * Standard output held back until a command has succeeded ("nothing half-done"): `write` appends to
 * an anonymous temporary file (unlinked at once, so memory stays constant and nothing is left behind
 * even if the process is killed), `release` copies it to standard output, `discard` drops it. A
 * command streams its input once and still prints nothing when the input turns out malformed.
 */
export class Spool {
  private fd: number | undefined;
  private size = 0;
  constructor() {
    const dir = mkdtempSync(join(tmpdir(), 'vtd-spool-'));
    const path = join(dir, 'out');
    this.fd = openSync(path, 'w+', 0o600);
    unlinkSync(path);
    rmdirSync(dir);
  }

  write(text: string): void {
    if (this.fd === undefined) throw new Error('spool used after release or discard');
    const b = Buffer.from(text, 'utf8');
    writeAll(this.fd, b);
    this.size += b.length;
  }

  /** Copies what was written to standard output (a reader gone away ends quietly: StdoutClosed). */
  release(): void {
    const fd = this.fd;
    if (fd === undefined) return;
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (let pos = 0; pos < this.size;) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, this.size - pos), pos);
        if (n <= 0) throw new Error('the spooled output could not be read back');
        try {
          writeAll(1, buf.subarray(0, n));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EPIPE') throw new StdoutClosed();
          throw e;
        }
        pos += n;
      }
    } finally {
      this.discard();
    }
  }

  discard(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}

function statIfAny(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** The reason of a failed file-system call, in words. */
function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const words: Record<string, string> = {
    ENOENT: 'no such file or directory', ENOTDIR: 'a part of the path is not a directory', EISDIR: 'it is a directory',
    EACCES: 'permission denied', EPERM: 'permission denied', EROFS: 'read-only file system', ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded', EIO: 'input/output error',
  };
  return err.code === undefined ? err.message : `${words[err.code] ?? 'failed'} (${err.code})`;
}

/**
 * An output file written whole or not at all: the bytes go to a temporary
 * file `.NAME.tmp-PID` in the same directory, which `commit` renames over
 * `path` (atomic on one file system) and `abort` removes. Opening fails at
 * once when the path cannot be used, before any work is done: a CliError
 * with exit 2 (a missing directory is not created). A failure while
 * writing (disk full) is a CliError with exit 1. Both read `cannot write
 * PATH: REASON`.
 */
export class AtomicFile {
  /** Files opened and not yet committed or aborted (`abortOpenFiles`). */
  private static readonly open = new Set<AtomicFile>();
  private fd: number | undefined;
  private readonly tmp: string;

  constructor(readonly path: string) {
    this.tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}`);
    try {
      // A directory named by the path would only fail at the rename: refuse it now.
      if (statIfAny(path)?.isDirectory()) throw Object.assign(new Error('EISDIR'), { code: 'EISDIR' });
      this.fd = openSync(this.tmp, 'w', 0o644);
    } catch (e) {
      throw new CliError(`cannot write ${path}: ${reason(e)}`, 2);
    }
    AtomicFile.open.add(this);
  }

  write(text: string): void {
    if (this.fd === undefined) throw new Error(`AtomicFile ${this.path}: write after commit or abort`);
    try {
      writeAll(this.fd, Buffer.from(text, 'utf8'));
    } catch (e) {
      this.abort();
      throw new CliError(`cannot write ${this.path}: ${reason(e)}`, 1);
    }
  }

  /** Makes the file appear at `path`, whole. */
  commit(): void {
    if (this.fd === undefined) throw new Error(`AtomicFile ${this.path}: commit after abort`);
    try {
      fsyncSync(this.fd);
      closeSync(this.fd);
      this.fd = undefined;
      renameSync(this.tmp, this.path);
      AtomicFile.open.delete(this);
    } catch (e) {
      this.abort();
      throw new CliError(`cannot write ${this.path}: ${reason(e)}`, 1);
    }
  }

  static abortAll(): void {
    for (const f of [...AtomicFile.open]) f.abort();
  }

  /** Removes the temporary file; `path` is left as it was. */
  abort(): void {
    AtomicFile.open.delete(this);
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        // already unusable
      }
      this.fd = undefined;
    }
    try {
      unlinkSync(this.tmp);
    } catch {
      // never created, or already renamed
    }
  }
}

/** Aborts every file still open: a command that failed leaves none of its outputs behind. */
export function abortOpenFiles(): void {
  AtomicFile.abortAll();
}

/** Writes `text` to `path` whole or not at all (see `AtomicFile`). */
export function writeFileWhole(path: string, text: string): void {
  const f = new AtomicFile(path);
  f.write(text);
  f.commit();
}

/**
 * Where a command's output goes: standard output, or a file written whole
 * (opened now, so a bad path fails before any work).
 */
export interface Output { write(text: string): void; commit(): void; abort(): void }

export function openOutput(path: string | undefined): Output {
  if (path !== undefined) return new AtomicFile(path);
  return { write: writeStdout, commit: () => undefined, abort: () => undefined };
}
