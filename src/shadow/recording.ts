/**
 * A backend that records every call and its result as JSON lines, for golden
 * tests: it wraps another backend (whose answers it records) or, with none,
 * accepts everything. It produces strings; writing them anywhere is the
 * caller's business (browser-safe, no Node imports).
 *
 *   {"op":"map","iova":"0x200000","size":"0x200000","vaddr":"0x7f0000200000","perm":"rw","result":"ok"}
 *   {"op":"map","iova":"0x201000","size":"0x1000","vaddr":"0x7f0000201000","perm":"rw","result":"EEXIST"}
 *   {"op":"unmap","iova":"0x200000","size":"0x200000","result":"ok","unmapped":"0x200000"}
 *   {"op":"unmapAll","result":"ok","unmapped":"0x0"}
 */
import { VtdError } from '../errors.js';
import {
  type Backend, type BackendLimits, type BackendResult, type BackendStats, type Errno, type Mapping, type Perm,
  ERRNOS, StatsAccumulator, assertPerm, assertU64, hex, okResult, permString,
} from './backend.js';

/** One recorded call, parsed back from its line. */
export type LogEntry =
  | { op: 'map'; iova: bigint; size: bigint; vaddr: bigint; perm: Perm; result: 'ok' | Errno }
  | { op: 'unmap'; iova: bigint; size: bigint; result: 'ok' | Errno; unmapped?: bigint }
  | { op: 'unmapAll'; result: 'ok' | Errno; unmapped?: bigint };

export interface RecordingOptions {
  /** Backend name; default `recording(<inner name>)`, or 'recording' with no inner backend. */
  name?: string;
}

export class RecordingBackend implements Backend {
  readonly name: string;
  readonly inner: Backend | undefined;
  private readonly lines: string[] = [];
  // Used only without an inner backend: an accept-everything store.
  private readonly loose: Mapping[] = [];
  private readonly acc = new StatsAccumulator();

  constructor(inner?: Backend, options: RecordingOptions = {}) {
    this.inner = inner;
    this.name = options.name ?? (inner ? `recording(${inner.name})` : 'recording');
  }

  map(iova: bigint, size: bigint, vaddr: bigint, perm: Perm): BackendResult {
    assertU64('iova', iova);
    assertU64('size', size);
    assertU64('vaddr', vaddr);
    assertPerm(perm);
    const r = this.inner ? this.inner.map(iova, size, vaddr, perm) : this.looseMap(iova, size, vaddr, perm);
    this.lines.push(JSON.stringify({
      op: 'map', iova: hex(iova), size: hex(size), vaddr: hex(vaddr), perm: permString(perm), result: r.ok ? 'ok' : r.errno,
    }));
    return r;
  }

  unmap(iova: bigint, size: bigint): BackendResult {
    assertU64('iova', iova);
    assertU64('size', size);
    const r = this.inner ? this.inner.unmap(iova, size) : this.looseUnmap(iova, size);
    this.lines.push(JSON.stringify(r.ok
      ? { op: 'unmap', iova: hex(iova), size: hex(size), result: 'ok', unmapped: hex(r.size) }
      : { op: 'unmap', iova: hex(iova), size: hex(size), result: r.errno }));
    return r;
  }

  unmapAll(): BackendResult {
    const r = this.inner ? this.inner.unmapAll() : this.looseUnmapAll();
    this.lines.push(JSON.stringify(r.ok ? { op: 'unmapAll', result: 'ok', unmapped: hex(r.size) } : { op: 'unmapAll', result: r.errno }));
    return r;
  }

  /** The inner backend's limits; with none, the recorder accepts everything. */
  limits(): BackendLimits {
    return this.inner ? this.inner.limits() : { mappings: null, memlockBytes: null };
  }

  mappings(): Mapping[] {
    if (this.inner) return this.inner.mappings();
    return this.loose.map((m) => ({ ...m, perm: { ...m.perm } }));
  }

  stats(): BackendStats {
    return this.inner ? this.inner.stats() : this.acc.snapshot();
  }

  /** The recorded lines, one JSON object each, in call order. */
  log(): string[] {
    return [...this.lines];
  }

  /** The log as JSON lines: one line per call, each ending in '\n' ('' when empty). */
  toJsonLines(): string {
    return this.lines.map((l) => l + '\n').join('');
  }

  /** Forget the recorded lines (the backend state stays). */
  clearLog(): void {
    this.lines.length = 0;
  }

  // ---- accept-everything mode (no inner backend): maps always succeed, even
  // overlapping ones; an unmap removes the mappings entirely inside its range
  // and succeeds with their total (0 when none).

  private looseMap(iova: bigint, size: bigint, vaddr: bigint, perm: Perm): BackendResult {
    this.acc.mapCall();
    let i = 0;
    while (i < this.loose.length && this.loose[i].iova <= iova) i++;
    this.loose.splice(i, 0, { iova, size, hva: vaddr, perm: { read: perm.read, write: perm.write } });
    this.acc.mapped(size);
    this.acc.setLive(this.loose.length, this.loosePinned());
    return okResult(0n);
  }

  private looseUnmap(iova: bigint, size: bigint): BackendResult {
    this.acc.unmapCall();
    const end = iova + size;
    let unmapped = 0n;
    for (let i = this.loose.length - 1; i >= 0; i--) {
      const m = this.loose[i];
      if (size > 0n && m.iova >= iova && m.iova + m.size <= end) {
        unmapped += m.size;
        this.loose.splice(i, 1);
      }
    }
    this.acc.removed(unmapped);
    this.acc.unmapOk(size);
    this.acc.setLive(this.loose.length, this.loosePinned());
    return okResult(unmapped);
  }

  private looseUnmapAll(): BackendResult {
    this.acc.unmapCall();
    const unmapped = this.loosePinned();
    this.loose.length = 0;
    this.acc.removed(unmapped);
    this.acc.unmapOk(unmapped > 0n ? unmapped : null);
    this.acc.setLive(0, 0n);
    return okResult(unmapped);
  }

  private loosePinned(): bigint {
    return this.loose.reduce((s, m) => s + m.size, 0n);
  }
}

// ------------------------------------------------------------------ reading logs back

function big(v: unknown, what: string, line: number): bigint {
  if (typeof v !== 'string' || !/^0x[0-9a-f]+$/i.test(v)) throw new VtdError('TRACE', `${what} must be a hex string`, { value: v }, line);
  return BigInt(v);
}

function result(v: unknown, line: number): 'ok' | Errno {
  if (v === 'ok' || (typeof v === 'string' && (ERRNOS as readonly string[]).includes(v))) return v as 'ok' | Errno;
  throw new VtdError('TRACE', `result must be 'ok' or an errno`, { value: v }, line);
}

function perm(v: unknown, line: number): Perm {
  if (v === 'rw' || v === 'r' || v === 'w' || v === '-') return { read: v.includes('r'), write: v.includes('w') };
  throw new VtdError('TRACE', `perm must be 'rw', 'r', 'w' or '-'`, { value: v }, line);
}

/** Parses one recorded line (1-based `line` for error messages). */
export function parseLogLine(text: string, line = 1): LogEntry {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new VtdError('TRACE', 'not JSON', {}, line);
  }
  if (o === null || typeof o !== 'object') throw new VtdError('TRACE', 'not a JSON object', {}, line);
  const unmapped = o.unmapped === undefined ? undefined : big(o.unmapped, 'unmapped', line);
  switch (o.op) {
    case 'map':
      return { op: 'map', iova: big(o.iova, 'iova', line), size: big(o.size, 'size', line), vaddr: big(o.vaddr, 'vaddr', line), perm: perm(o.perm, line), result: result(o.result, line) };
    case 'unmap':
      return { op: 'unmap', iova: big(o.iova, 'iova', line), size: big(o.size, 'size', line), result: result(o.result, line), ...(unmapped !== undefined ? { unmapped } : {}) };
    case 'unmapAll':
      return { op: 'unmapAll', result: result(o.result, line), ...(unmapped !== undefined ? { unmapped } : {}) };
    default:
      throw new VtdError('TRACE', `unknown op ${String(o.op)}`, {}, line);
  }
}

/** Parses a JSON-lines log (a string or its lines; blank lines skipped). */
export function parseLog(log: string | readonly string[]): LogEntry[] {
  const lines = typeof log === 'string' ? log.split('\n') : log;
  const out: LogEntry[] = [];
  lines.forEach((l, i) => { if (l.trim() !== '') out.push(parseLogLine(l, i + 1)); });
  return out;
}

/**
 * Replays a recorded log's calls against a backend and returns its answers,
 * e.g. to see what a call stream recorded against one backend does under
 * another (the recorded results are not compared; do that with the returned list).
 */
export function replayLog(log: string | readonly string[], backend: Backend): BackendResult[] {
  return parseLog(log).map((e) => {
    switch (e.op) {
      case 'map': return backend.map(e.iova, e.size, e.vaddr, e.perm);
      case 'unmap': return backend.unmap(e.iova, e.size);
      case 'unmapAll': return backend.unmapAll();
    }
  });
}
