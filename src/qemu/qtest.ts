/**
 * A qtest session with one QEMU process: one command line out, one answer
 * line back, with every other line QEMU printed in between (trace events,
 * guest-error and warning messages) attached to the answer that follows it.
 *
 * Why one stream: QEMU prints trace events and guest errors on stderr and
 * qtest answers on stdout. Both are written synchronously by the thread that
 * holds QEMU's big lock, so when stderr is the same pipe as stdout, the
 * events a command caused always arrive before that command's answer. The
 * process is therefore started through `sh -c 'exec qemu ... 2>&1'`.
 *
 * Why a lifeline: QEMU does not exit when its standard input closes, and a
 * test runner that kills Node with a signal skips every cleanup handler. The
 * same shell starts a watcher that holds fd 3, a pipe whose other end only
 * this Node process holds; when Node closes it or dies, the watcher kills
 * QEMU (which has the shell's PID, thanks to `exec`). No QEMU outlives its
 * harness.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import { QemuError, type QemuErrorCode } from './errors.js';

/** A qtest answer and the lines QEMU printed while executing the command. */
export interface QtestReply {
  /** "OK", "OK 0x..." (FAIL and ERR answers are thrown as errors). */
  answer: string;
  /** Trace events and messages printed before the answer, in order. */
  events: string[];
}

/** How many of QEMU's last stderr lines (and FAIL/ERR answers) an error carries. */
const TAIL_LINES = 40;

const LIFELINE_SCRIPT =
  // Watcher: waits for EOF on fd 3, then kills the shell's PID, which by then
  // is QEMU. Its own stdio goes nowhere, so QEMU alone holds the output pipe
  // (its end of file then means that QEMU is gone).
  '( cat <&3 >/dev/null 2>&1; kill -9 $$ 2>/dev/null ) </dev/null >/dev/null 2>&1 & ' +
  'exec "$0" "$@" 2>&1 3<&-';

export class QtestSession {
  private readonly child: ChildProcess;
  private readonly stdin: Writable;
  private readonly lifeline: Writable;
  private readonly tail: string[] = [];
  private pending: string[] = [];
  private waiter: { resolve: (r: QtestReply) => void; reject: (e: Error) => void; command: string } | undefined;
  private exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private failure: QemuError | undefined;
  private readonly exitPromise: Promise<void>;
  /** Number of commands sent (for statistics). */
  commands = 0;

  /**
   * @param binary the qemu-system-x86_64 to run
   * @param args its arguments (must include `-qtest stdio`)
   * @param log if given, receives every command, answer and event line
   */
  constructor(readonly binary: string, readonly args: string[], private readonly log?: (line: string) => void) {
    this.child = spawn('/bin/sh', ['-c', LIFELINE_SCRIPT, binary, ...args], {
      stdio: ['pipe', 'pipe', 'ignore', 'pipe'],
    });
    this.stdin = this.child.stdin!;
    this.lifeline = this.child.stdio[3] as Writable;
    // A write to a QEMU that just died raises EPIPE; the exit handler reports it.
    this.stdin.on('error', () => {});
    this.lifeline.on('error', () => {});
    const rl = createInterface({ input: this.child.stdout! });
    rl.on('line', (line) => this.onLine(line));
    this.exitPromise = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exited = { code, signal };
        this.lifeline.destroy();
        resolve();
      });
    });
    // The output pipe closes only when QEMU is gone: fail whatever waits.
    this.child.stdout!.on('close', () => {
      void this.exitPromise.then(() => this.fail(this.diedError()));
    });
    this.child.on('error', (e: NodeJS.ErrnoException) => {
      this.fail(new QemuError('QEMU_MISSING', `cannot start ${binary}: ${e.message}`, { binary }));
    });
  }

  private onLine(line: string): void {
    this.log?.(`  ${line}`);
    // qtest answers start with OK, FAIL or ERR; no trace event or message does.
    const answer = line === 'OK' || line.startsWith('OK ') || line.startsWith('FAIL') || line.startsWith('ERR');
    // The tail keeps what QEMU printed on stderr (messages, events), which is
    // what explains a death; plain OK answers would only crowd it out.
    if (!line.startsWith('OK')) {
      this.tail.push(line);
      if (this.tail.length > TAIL_LINES) this.tail.shift();
    }
    if (answer) {
      const w = this.waiter;
      const events = this.pending;
      this.pending = [];
      if (!w) {
        this.fail(new QemuError('PROTOCOL', `unexpected qtest answer "${line}" with no command outstanding`, { tail: this.tailText() }));
        return;
      }
      this.waiter = undefined;
      if (line.startsWith('OK')) w.resolve({ answer: line, events });
      else w.reject(new QemuError('PROTOCOL', `qtest refused "${w.command}": ${line}`, { command: w.command, tail: this.tailText() }));
      return;
    }
    this.pending.push(line);
  }

  private diedError(): QemuError {
    // 127 is the shell's "command not found" for `exec`.
    if (this.exited?.code === 127) {
      return new QemuError('QEMU_MISSING', `${this.binary} not found (the shell could not run it): ${this.tailText()}`, { binary: this.binary });
    }
    const how = this.exited?.signal ? `was killed by ${this.exited.signal}` : `exited with code ${this.exited?.code}`;
    return new QemuError('QEMU_DIED', `QEMU ${how}${this.waiter ? ` while executing "${this.waiter.command}"` : ''}`, {
      exitCode: this.exited?.code ?? null,
      signal: this.exited?.signal ?? null,
      command: this.waiter?.command,
      tail: this.tailText(),
    });
  }

  private fail(e: QemuError): void {
    if (!this.failure) this.failure = e;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.failure);
  }

  /** The last lines QEMU printed, for error messages. */
  tailText(): string {
    return this.tail.join('\n');
  }

  /** Sends one qtest command and waits for its answer. */
  cmd(command: string): Promise<QtestReply> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiter) return Promise.reject(new QemuError('PROTOCOL', `"${command}" sent while "${this.waiter.command}" is outstanding`, {}));
    this.commands++;
    this.log?.(`> ${command}`);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject, command };
      this.stdin.write(command + '\n');
    });
  }

  /** Fails the outstanding command (and every later one) with a new error, and kills QEMU. */
  abort(code: QemuErrorCode, message: string, details: Record<string, unknown> = {}): void {
    this.fail(new QemuError(code, message, { ...details, command: this.waiter?.command, tail: this.tailText() }));
    void this.close();
  }

  /** Kills QEMU (it would not exit on its own) and waits until it is gone. */
  async close(): Promise<void> {
    if (!this.exited) {
      this.child.kill('SIGKILL');
      this.lifeline.destroy();
    }
    await this.exitPromise;
  }
}
