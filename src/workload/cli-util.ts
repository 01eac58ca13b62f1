/**
 * What the workload commands' CLIs share (Node only: imported by *-cli.ts,
 * never by the library): option parsing and reading a file by lines.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { VtdError } from '../errors.js';

/** A command line split into positional arguments, flags and option values. */
export interface CommandArgs {
  positional: string[];
  flags: Set<string>;
  values: Map<string, string[]>;
}

/**
 * Splits `args` of command `cmd`: known flags, options taking a value (the
 * next argument), positional arguments. Unknown options, a missing value and
 * an option given twice (unless `repeatable`) are VtdError('ARGUMENT').
 */
export function parseCommandArgs(cmd: string, args: readonly string[], flags: ReadonlySet<string>, valued: ReadonlySet<string>,
  repeatable: ReadonlySet<string> = new Set()): CommandArgs {
  const out: CommandArgs = { positional: [], flags: new Set(), values: new Map() };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (flags.has(a)) out.flags.add(a);
    else if (valued.has(a)) {
      const v = args[++i];
      if (v === undefined || (v.startsWith('--') && v.length > 2)) throw new VtdError('ARGUMENT', `${cmd}: ${a} needs a value`);
      out.values.set(a, [...(out.values.get(a) ?? []), v]);
    } else if (a.startsWith('--')) throw new VtdError('ARGUMENT', `${cmd}: unknown option ${a}`);
    else out.positional.push(a);
  }
  for (const [k, v] of out.values) if (!repeatable.has(k) && v.length > 1) throw new VtdError('ARGUMENT', `${cmd}: ${k} given twice`);
  return out;
}

/** Lines of a file read in 1 MiB blocks (never the whole file at once); invalid UTF-8 is an error. */
export function* fileLines(path: string): Generator<string> {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    const dec = new TextDecoder('utf-8', { fatal: true });
    let rest = '';
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const parts = (rest + dec.decode(buf.subarray(0, n), { stream: true })).split('\n');
      rest = parts.pop()!;
      yield* parts;
    }
    rest += dec.decode();
    if (rest) yield rest;
  } finally {
    closeSync(fd);
  }
}
