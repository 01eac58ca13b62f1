/**
 * The `vtd` command line: dispatches to one module per command
 * (commands.ts: replay.ts, lower.ts, import.ts, gen.ts, compare.ts,
 * conform.ts; help.ts for `vtd help`), and turns a failure into a message
 * and an exit status.
 *
 *   vtd replay TRACE.jsonl|-  [--summary] [--counters] [--policy ...] [--shadow ...] [--report F] [--html F]
 *   vtd lower | import | gen | compare | conform | help
 *
 * src/cli/ is Node-only, as are src/qemu/ and src/conform/ (the QEMU
 * tooling); the library (src/index.ts) reaches none of them
 * (test/browser.test.ts).
 *
 * Exit status: 0 success, also when the reader of standard output goes away
 * (EPIPE: `vtd replay BIG | head`); 2 bad usage, malformed input (the message
 * names the line) or an output path that cannot be used; 1 anything else (an
 * unsupported feature, a core trap, a failed write). Output files are
 * written whole or not at all (util.ts `AtomicFile`). `conform` has its own
 * (conform.ts).
 */
import { readFileSync } from 'node:fs';
import { VtdError } from '../errors.js';
import { COMMANDS } from './commands.js';
import { commandUsage, SHORT_USAGE, usageText } from './help.js';
import { abortOpenFiles, CliError, HelpRequested, StdoutClosed, writeStdout } from './util.js';

/** The version in package.json (two directories above dist/cli/ and src/cli/ alike). */
function version(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

async function runCommand(cmd: string, args: string[]): Promise<number> {
  try {
    return await (await COMMANDS[cmd]()).run(args);
  } catch (e) {
    abortOpenFiles();
    if (e instanceof HelpRequested) {
      writeStdout(await commandUsage(cmd));
      return 0;
    }
    // Bad usage of a command: its own options, not the whole list.
    if (e instanceof VtdError && e.code === 'ARGUMENT') {
      process.stderr.write(`vtd: ${e.message}\n${await commandUsage(cmd)}`);
      return 2;
    }
    throw e;
  }
}

/** The exit status of a failed command, after saying why on standard error (never a stack trace for bad input). */
function report(e: unknown): number {
  abortOpenFiles();
  if (e instanceof StdoutClosed) return 0; // the reader has what it wanted (`vtd replay BIG | head`)
  if (e instanceof CliError) {
    process.stderr.write(`vtd: ${e.message}\n`);
    return e.status;
  }
  if (e instanceof VtdError) {
    process.stderr.write(`vtd: ${e.message}\n`);
    if (e.code === 'ARGUMENT') process.stderr.write(SHORT_USAGE);
    return e.code === 'TRACE' || e.code === 'ARGUMENT' ? 2 : 1;
  }
  throw e;
}

/** Writes to standard output that fail because the reader went away end the command quietly. */
let quietInstalled = false;
function quietOnClosedStdout(): void {
  if (quietInstalled) return;
  quietInstalled = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    abortOpenFiles();
    process.exit(0);
  });
}

/** Runs `vtd ARGV`; resolves to the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  quietOnClosedStdout();
  try {
    if (cmd !== undefined && Object.hasOwn(COMMANDS, cmd)) return await runCommand(cmd, rest);
    if (cmd === '--version' || cmd === '-V') {
      if (rest.length) throw new VtdError('ARGUMENT', `--version takes no arguments`);
      writeStdout(`vtd ${version()}\n`);
      return 0;
    }
    if (cmd === 'help' || cmd === '--help' || cmd === '-h') {
      if (rest.length > 1) throw new VtdError('ARGUMENT', 'help takes at most one command');
      const one = rest[0];
      if (one !== undefined && !Object.hasOwn(COMMANDS, one)) throw new VtdError('ARGUMENT', `help: unknown command ${JSON.stringify(one)}`);
      writeStdout(one === undefined ? await usageText() : await commandUsage(one));
      return 0;
    }
    process.stderr.write(`${cmd === undefined ? '' : `vtd: unknown command ${JSON.stringify(cmd)}\n`}${SHORT_USAGE}`);
    return 2;
  } catch (e) {
    return report(e);
  }
}

