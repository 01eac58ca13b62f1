// Units under test, programmed from a table image: the Wasm core (as shipped: dist/, built by `npm run build`),
// the reference model, and the request/result plumbing that the suites time and verify.

import { Iommu, TranslateResult } from '../../dist/index.js';
import { RefModel, defaultModelConfig } from '../../test/model/model.js';
import type { TranslationResult } from '../native/native.js';
import { RAM_BYTES, type BenchRequest, type TableImage } from './image.js';

export type Outcome = TranslationResult;

// Registers (digest §1.1) and commands used here.
const REG_GCMD = 0x18;
const REG_RTADDR = 0x20;
const REG_IOTLB = 0xf8; // ECAP.IRO = 0xf: IVA at 0xf0, IOTLB at 0xf8
const GCMD_SRTP = 0x40000000n;
const GCMD_TE = 0x80000000n;
/** IOTLB register: IVT | IIRG = 01 (global), 10 (domain, DID in 47:32). */
export const IOTLB_GLOBAL = 0x9000000000000000n;
export const iotlbDomain = (did: number): bigint => 0xa000000000000000n | (BigInt(did) << 32n);

/** Status bits of the core's results (src/core.ts Status). */
const ST_FAULT = 0x100;
const ST_REASON = 0xff;

export interface CacheOptions {
  iotlbEntries: number;
  contextCache: boolean;
  /** Scalable mode (sm-walk): the unit's sm and flts options. */
  sm?: boolean;
  flts?: boolean;
}

/** A Wasm unit with the image in guest memory, the root table latched and translation enabled. */
export function createWasmUnit(img: TableImage, caches: CacheOptions): Iommu {
  const u = Iommu.create({ aw: img.aw, ram: RAM_BYTES, ...caches });
  for (const [gfn, data] of img.frames) u.writeGuest(Number(gfn) * 4096, data);
  u.mmioWrite(REG_RTADDR, 8, img.rta);
  u.mmioWrite(REG_GCMD, 4, GCMD_SRTP);
  u.mmioWrite(REG_GCMD, 4, GCMD_TE);
  return u;
}

/** The reference model programmed the same way. */
export function createModel(img: TableImage): RefModel {
  const m = new RefModel({ ...defaultModelConfig, aw: img.aw, ram: BigInt(RAM_BYTES) });
  for (const [gfn, data] of img.frames) m.writeMem(gfn << 12n, data);
  m.mmioWrite(REG_RTADDR, 8, img.rta);
  m.mmioWrite(REG_GCMD, 4, GCMD_SRTP);
  m.mmioWrite(REG_GCMD, 4, GCMD_TE);
  return m;
}

/** A register-based IOTLB invalidation (digest §7.3); the core completes it synchronously. */
export function invalidateIotlb(u: Iommu, command: bigint): void {
  u.mmioWrite(REG_IOTLB, 8, command);
}

function decodeStatus(status: number, gpa: () => bigint, what: string): Outcome {
  if (status === 0) return { ok: true, gpa: gpa() };
  if ((status & ST_FAULT) !== 0) return { ok: false, fault: status & ST_REASON };
  throw new Error(`${what}: unexpected status 0x${status.toString(16)} (blocked or interrupt request)`);
}

/**
 * The batch path over a fixed request list: requests are packed once into the core's request format, and each
 * `runAll` copies them into the request block 4096 (the block's capacity) at a time and runs them. The copy is
 * part of what a caller of the batch path pays, so it stays inside the timed operation (a 64 KiB copy per 4096
 * translations).
 */
export class BatchRunner {
  readonly count: number;
  /** The requests in the core's request format (4 words each). */
  readonly packedRequests: Uint32Array;
  private readonly batch;
  sink = 0;
  /** Called before each chunk of `runAll` (e.g. an invalidation); part of the timed operation. */
  beforeChunk?: () => void;

  constructor(private readonly unit: Iommu, requests: readonly BenchRequest[]) {
    this.batch = unit.batch; // after all guest writes: the views stay valid (translation never grows memory)
    this.count = requests.length;
    this.packedRequests = new Uint32Array(requests.length * 4);
    requests.forEach((r, i) => {
      this.packedRequests[i * 4] = r.iova % 2 ** 32;
      this.packedRequests[i * 4 + 1] = Math.floor(r.iova / 2 ** 32);
      this.packedRequests[i * 4 + 2] = (r.sid & 0xffff) | (r.dir === 'w' ? 0x10000 : 0);
      this.packedRequests[i * 4 + 3] = r.len;
    });
  }

  /** Translates every request once; returns how many completed. */
  runAll(): number {
    const cap = this.batch.capacity;
    const reqs = this.batch.requests;
    let ok = 0;
    for (let off = 0; off < this.count; off += cap) {
      const n = Math.min(cap, this.count - off);
      this.beforeChunk?.();
      reqs.set(this.packedRequests.subarray(off * 4, (off + n) * 4));
      ok += this.batch.run(n);
    }
    this.sink ^= ok ^ this.batch.responses[0];
    return ok;
  }

  /** The batch block's capacity (requests per run). */
  get capacity(): number {
    return this.batch.capacity;
  }

  /** Translates every request once and returns the outcomes. */
  outcomes(): Outcome[] {
    const cap = this.batch.capacity;
    const out: Outcome[] = [];
    for (let off = 0; off < this.count; off += cap) {
      const n = Math.min(cap, this.count - off);
      this.beforeChunk?.();
      this.batch.requests.set(this.packedRequests.subarray(off * 4, (off + n) * 4));
      this.batch.run(n);
      for (let i = 0; i < n; i++) {
        const resp = this.batch.responses;
        out.push(decodeStatus(this.batch.status(i), () => (BigInt(resp[i * 4 + 1]) << 32n) | BigInt(resp[i * 4]),
          `batch request ${off + i}`));
      }
    }
    return out;
  }
}

/** The single-call path: one `translateInto` per request, number iovas, one reused result object. */
export class SingleRunner {
  private readonly out = new TranslateResult();
  private readonly sid: Int32Array;
  private readonly iova: Float64Array;
  private readonly dir: ('r' | 'w')[];
  private readonly len: Int32Array;
  sink = 0;

  constructor(private readonly unit: Iommu, requests: readonly BenchRequest[]) {
    this.sid = Int32Array.from(requests, (r) => r.sid);
    this.iova = Float64Array.from(requests, (r) => r.iova);
    this.dir = requests.map((r) => r.dir);
    this.len = Int32Array.from(requests, (r) => r.len);
  }

  runAll(): number {
    const u = this.unit, out = this.out, n = this.iova.length;
    let x = 0;
    for (let i = 0; i < n; i++) x ^= u.translateInto(this.sid[i], this.iova[i], this.dir[i], this.len[i], out).addrLo;
    this.sink ^= x;
    return n;
  }

  outcomes(): Outcome[] {
    const out: Outcome[] = [];
    for (let i = 0; i < this.iova.length; i++) {
      const r = this.unit.translateInto(this.sid[i], this.iova[i], this.dir[i], this.len[i], this.out);
      out.push(decodeStatus(r.status, () => r.gpaBig, `single request ${i}`));
    }
    return out;
  }
}

/** The reference model, one `dma` per request (bigint iovas prepared beforehand). */
export class ModelRunner {
  sink = 0n;
  constructor(private readonly model: RefModel, private readonly requests: readonly BenchRequest[]) {}

  runAll(): number {
    let x = 0n;
    for (const r of this.requests) {
      const d = this.model.dma(r.sid, r.iovaBig, r.len, r.dir);
      if (d.ok) x ^= d.gpa;
    }
    this.sink ^= x;
    return this.requests.length;
  }

  outcomes(): Outcome[] {
    return this.requests.map((r, i) => {
      const d = this.model.dma(r.sid, r.iovaBig, r.len, r.dir);
      if (d.ok) return { ok: true, gpa: d.gpa };
      if (d.fault === undefined) throw new Error(`model request ${i}: blocked without a fault`);
      return { ok: false, fault: d.fault };
    });
  }
}

const showOutcome = (o: Outcome): string => (o.ok ? `ok 0x${o.gpa.toString(16)}` : `fault ${o.fault.toString(16)}h`);

/** Throws, naming the first differing requests, unless `a` and `b` agree request by request. */
export function assertSameOutcomes(what: string, requests: readonly BenchRequest[], a: Outcome[], b: Outcome[],
  nameA: string, nameB: string): void {
  if (a.length !== b.length) throw new Error(`${what}: ${nameA} gave ${a.length} results, ${nameB} ${b.length}`);
  const bad: string[] = [];
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i], y = b[i];
    const same = x.ok ? y.ok && x.gpa === y.gpa : !y.ok && x.fault === y.fault;
    if (same) continue;
    count++;
    if (bad.length < 5) {
      const r = requests[i];
      bad.push(`  #${i} sid 0x${r.sid.toString(16)} iova 0x${r.iova.toString(16)} ${r.dir}: ` +
        `${nameA} ${showOutcome(x)}, ${nameB} ${showOutcome(y)}`);
    }
  }
  if (count) throw new Error(`${what}: ${nameA} and ${nameB} disagree on ${count} of ${a.length} requests\n${bad.join('\n')}`);
}

/** Fault reasons and counts, e.g. "5h x61, 6h x70". */
export function faultSummary(outcomes: Outcome[]): string {
  const kinds = new Map<number, number>();
  for (const o of outcomes) if (!o.ok) kinds.set(o.fault, (kinds.get(o.fault) ?? 0) + 1);
  return [...kinds].sort((x, y) => x[0] - y[0]).map(([f, n]) => `${f.toString(16)}h x${n}`).join(', ') || 'none';
}

/** How much the core's counter `name` (64-bit, read as a number) grew between two `counters()` snapshots. */
export function counterDelta(before: Record<string, number>, after: Record<string, number>, name: string): number {
  return (after[name] ?? 0) - (before[name] ?? 0);
}
