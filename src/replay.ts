/**
 * Replays a parsed trace against a fresh unit and yields the result lines the
 * format defines, as JSON text in canonical form: keys `i`, `op`, then the
 * op's fields; lowercase hex with `0x`, no leading zeros; `fault` two digits.
 */
import { VtdError } from './errors.js';
import { Iommu, TranslateResult } from './iommu.js';
import { optionsFromHeader, type Trace, type TraceOp } from './trace.js';

export function hex(v: bigint | number): string {
  return '0x' + v.toString(16);
}

export function faultHex(r: number): string {
  return '0x' + r.toString(16).padStart(2, '0');
}

function toHexBytes(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

/** A replay in progress: the unit, and what happened so far. */
export class Replayer {
  readonly iommu: Iommu;
  readonly tally = { ops: 0, results: 0, dmaOk: 0, dmaFault: 0, dmaSuppressed: 0, dmaBlocked: 0, msiOk: 0, msiBlocked: 0, faultEvents: 0, completionEvents: 0 };
  private readonly tr = new TranslateResult();

  constructor(readonly trace: Trace) {
    this.iommu = Iommu.create(optionsFromHeader(trace.header.config));
    this.iommu.on((e) => {
      if (e.type === 'fault-interrupt') this.tally.faultEvents++;
      else if (e.type === 'completion-interrupt') this.tally.completionEvents++;
    });
  }

  /** Executes one op; returns its result line, or undefined for ops that have none. */
  step(op: TraceOp): string | undefined {
    this.tally.ops++;
    const line = this.run(op);
    if (line !== undefined) this.tally.results++;
    return line;
  }

  private run(op: TraceOp): string | undefined {
    const head = `{"i":${op.index},"op":"${op.op}"`;
    switch (op.op) {
      case 'mem':
        this.iommu.writeGuest(op.gpa, op.data);
        return undefined;
      case 'mrd':
        return `${head},"hex":"${toHexBytes(this.iommu.readGuest(op.gpa, op.len))}"}`;
      case 'wr':
        this.iommu.mmioWrite(op.reg, op.size, op.val);
        return undefined;
      case 'rd': {
        let v = this.iommu.mmioRead(op.reg, op.size);
        if (op.mask !== undefined) v &= op.mask;
        return `${head},"val":"${hex(v)}"}`;
      }
      case 'dma': {
        const r = this.iommu.translateInto(op.sid, op.iova, op.dir, op.len, this.tr);
        if (r.ok) {
          this.tally.dmaOk++;
          return `${head},"ok":true,"gpa":"${hex(r.gpaBig)}"}`;
        }
        const f = r.fault;
        if (f !== undefined) {
          this.tally.dmaFault++;
          return `${head},"ok":false,"fault":"${faultHex(f)}"}`;
        }
        if (r.suppressed) this.tally.dmaSuppressed++;
        else this.tally.dmaBlocked++;
        return `${head},"ok":false}`;
      }
      case 'msi': {
        const m = this.iommu.remapMsi(op.sid, op.addr, Number(op.data));
        if (m.ok && !m.posted) {
          this.tally.msiOk++;
          return `${head},"ok":true,"addr":"${hex(m.addr)}","data":"${hex(m.data)}"}`;
        }
        this.tally.msiBlocked++;
        if (!m.ok && m.fault !== undefined) return `${head},"ok":false,"fault":"${faultHex(m.fault)}"}`;
        return `${head},"ok":false}`;
      }
      case 'attach':
      case 'map':
      case 'unmap':
        throw new VtdError('UNSUPPORTED', `${op.op}: high-level workload ops need the guest-driver model, not implemented yet`, {}, op.line);
    }
  }
}

/** Replays a whole trace; returns its result lines. */
export function replayTrace(trace: Trace): string[] {
  const r = new Replayer(trace);
  const out: string[] = [];
  for (const op of trace.ops) {
    const line = r.step(op);
    if (line !== undefined) out.push(line);
  }
  return out;
}
