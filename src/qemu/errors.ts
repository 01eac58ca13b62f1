/**
 * Errors of the QEMU conformance harness. Each names what went wrong as a
 * stable code, so a test or CI log says at once whether QEMU is missing, died
 * (with the last lines it printed), hung, or was asked for something the
 * harness cannot express with QEMU 7.2.
 */

export type QemuErrorCode =
  | 'QEMU_MISSING'   // no usable qemu-system-x86_64
  | 'QEMU_DIED'      // QEMU exited or crashed during the run; `details.tail` holds its last output
  | 'TIMEOUT'        // the run exceeded its time limit; QEMU was killed
  | 'FIRMWARE'       // the firmware image is missing and could not be built
  | 'UNSUPPORTED'    // the trace asks for something QEMU 7.2 (or this harness) cannot do
  | 'PROTOCOL';      // QEMU answered a qtest command with FAIL/ERR, or something unexpected

export class QemuError extends Error {
  readonly code: QemuErrorCode;
  /** Fields that explain the error: command, op index, trace line, exit code, QEMU's output tail... */
  readonly details: Record<string, unknown>;
  /** The message without QEMU's output tail. */
  readonly summary: string;

  constructor(code: QemuErrorCode, message: string, details: Record<string, unknown> = {}) {
    const tail = typeof details.tail === 'string' && details.tail !== '' ? `\n--- last QEMU output ---\n${details.tail}` : '';
    super(`[${code}] ${message}${tail}`);
    this.name = 'QemuError';
    this.code = code;
    this.summary = message;
    this.details = details;
  }

  /** The same error, saying which trace op was running. */
  atOp(index: number, line: number): QemuError {
    if (this.details.op !== undefined) return this;
    return new QemuError(this.code, `${this.summary} (op ${index}, trace line ${line})`, { ...this.details, op: index, line });
  }
}
