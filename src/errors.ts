/**
 * Errors the host library raises. Faults a guest causes are never errors:
 * they are values (fault reasons) recorded as hardware records them. These
 * errors mean the host, an embedder or a trace asked for something that is
 * not defined.
 */

/** What went wrong, as a stable machine-readable code. */
export type VtdErrorCode =
  | 'CONFIG'          // an option out of range
  | 'MMIO_ACCESS'     // a register access outside the window or of a width the bus cannot issue
  | 'GUEST_MEMORY'    // a guest-memory access outside declared RAM, or memory exhausted
  | 'GUEST_MEMORY_HOOK' // an embedder's guestMemory hook threw; `cause` holds what it threw
  | 'ARGUMENT'        // a malformed argument (requester id, length, direction)
  | 'TRACE'           // a malformed trace; `line` names it
  | 'UNSUPPORTED'     // a feature this version does not implement yet
  | 'CORE_TRAP';      // the Wasm core trapped: a bug in the core; the instance is discarded

/** A typed error with a code and the fields that explain it. */
export class VtdError extends Error {
  readonly code: VtdErrorCode;
  /** 1-based line of the trace, for TRACE errors. */
  readonly line?: number;
  /** Further fields that explain the error (offset, size, gpa, ...). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: VtdErrorCode, message: string, details: Record<string, unknown> = {}, line?: number) {
    super(line !== undefined ? `line ${line}: ${message}` : message);
    this.name = 'VtdError';
    this.code = code;
    this.line = line;
    this.details = details;
    // The error this one reports (an embedder's exception, a trap's message), as ES2022 `cause`.
    if ('cause' in details) Object.defineProperty(this, 'cause', { value: details.cause, writable: true, configurable: true });
  }
}
