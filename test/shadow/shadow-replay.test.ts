/**
 * Shadow sync driven by the guest-driver model, checked against the reference
 * model: after every register write the guest makes (each invalidation it
 * submits), the backend of every shadowed domain maps exactly what the
 * reference model translates for that domain's device — page by page, GPA and
 * rights — and a well-behaved guest causes no backend error. Random workloads
 * over two devices in two domains, 4 KiB pages and 2 MiB superpages, in both
 * sync modes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Iommu } from '../../src/iommu.js';
import { optionsFromHeader, parseTrace, type TraceOp } from '../../src/trace/parse.js';
import { GuestDriver, type LoweredOp } from '../../src/guest/driver.js';
import { ShadowSync, type SyncMode } from '../../src/shadow/sync.js';
import { Type1Backend } from '../../src/shadow/type1.js';
import { IommufdBackend } from '../../src/shadow/iommufd.js';
import type { Backend } from '../../src/shadow/backend.js';
import { RefModel, defaultModelConfig } from '../model/model.js';

const RUNS = Number(process.env.VTD_PROPERTY_RUNS ?? 100);
const RAM = 0x40000000n;
const HEADER = `{"vtd-trace":1,"iommu":{"aw":48,"cm":true,"ram":"0x40000000"},"devices":["00:03.0","01:00.0"]}`;
const DEVICES = [{ sid: 0x18, domain: 3 }, { sid: 0x100, domain: 7 }];
const SMALL = 0xfff00000n; // 32 pages of 4 KiB mappings below 4 GiB
const LARGE = 0x40000000n; // four 2 MiB slots
/** The IOVA pages compared: every small page, and 8 pages of each 2 MiB slot. */
const PROBES: bigint[] = [
  ...Array.from({ length: 32 }, (_, i) => SMALL + BigInt(i) * 0x1000n),
  ...Array.from({ length: 4 * 8 }, (_, i) => LARGE + BigInt(i >> 3) * 0x200000n + BigInt(i & 7) * 0x41000n),
];

type Spec = { map: boolean; dev: number; large: boolean; slot: number; pages: number; gpage: number; perm: 'r' | 'w' | 'rw'; pick: number };

/** Turns random specs into a consistent workload: maps never overlap a live mapping, unmaps remove live ones exactly. */
function workload(specs: Spec[]): string[] {
  const lines = [HEADER];
  for (const d of DEVICES) lines.push(JSON.stringify({ op: 'attach', sid: d.sid === 0x18 ? '00:03.0' : '01:00.0', domain: d.domain }));
  const live: { iova: bigint; len: bigint }[][] = [[], []];
  for (const s of specs) {
    const dom = DEVICES[s.dev].domain;
    if (s.map) {
      const iova = s.large ? LARGE + BigInt(s.slot & 3) * 0x200000n : SMALL + BigInt(s.slot & 31) * 0x1000n;
      const len = s.large ? 0x200000n : BigInt(Math.min(s.pages, 32 - (s.slot & 31))) * 0x1000n;
      const gpa = s.large ? 0x10000000n + BigInt(s.gpage & 15) * 0x200000n : 0x1000000n + BigInt(s.gpage) * 0x1000n;
      if (live[s.dev].some((m) => m.iova < iova + len && iova < m.iova + m.len)) continue;
      live[s.dev].push({ iova, len });
      lines.push(`{"op":"map","domain":${dom},"iova":"0x${iova.toString(16)}","gpa":"0x${gpa.toString(16)}","len":${len},"perm":"${s.perm}"}`);
    } else if (live[s.dev].length) {
      const [m] = live[s.dev].splice(s.pick % live[s.dev].length, 1);
      lines.push(`{"op":"unmap","domain":${dom},"iova":"0x${m.iova.toString(16)}","len":${m.len}}`);
    }
  }
  return lines;
}

/** What a backend maps at a page: gpa and rights, or undefined. */
function backendAt(b: Backend, page: bigint): { gpa: bigint; r: boolean; w: boolean } | undefined {
  for (const m of b.mappings()) if (page >= m.iova && page < m.iova + m.size) return { gpa: m.hva + (page - m.iova), r: m.perm.read, w: m.perm.write };
  return undefined;
}

function check(mode: SyncMode, fd: boolean, lines: string[]): void {
  const trace = parseTrace(lines.join('\n'));
  const iommu = Iommu.create(optionsFromHeader(trace.header.config));
  const backends = new Map<number, Backend>();
  const sync = new ShadowSync(iommu, (did) => {
    const b = fd ? new IommufdBackend() : new Type1Backend();
    backends.set(did, b);
    return b;
  }, { mode, ram: [[0n, RAM]] });
  for (const d of DEVICES) sync.attach(d.sid);
  const model = new RefModel({ ...defaultModelConfig, aw: 48, cm: true, ram: RAM });
  const compare = (where: string): void => {
    for (const d of DEVICES) {
      const b = backends.get(d.domain);
      for (const page of PROBES) {
        const r = model.dma(d.sid, page, 1, 'r'), w = model.dma(d.sid, page, 1, 'w');
        const want = r.ok || w.ok ? { gpa: (r.ok ? r.gpa : w.ok ? w.gpa : 0n), r: r.ok, w: w.ok } : undefined;
        const got = b ? backendAt(b, page) : undefined;
        assert.deepEqual(got, want, `${where}: domain ${d.domain} page 0x${page.toString(16)}`);
      }
    }
  };
  const driver = new GuestDriver(trace.header, { policy: 'strict' });
  let n = 0;
  const emit = (op: LoweredOp): void => {
    if (op.op === 'mem') {
      iommu.writeGuest(op.gpa, op.data);
      model.writeMem(op.gpa, op.data);
    } else {
      iommu.mmioWrite(op.reg, op.size, op.val);
      model.mmioWrite(op.reg, op.size, op.val);
      n++;
    }
  };
  driver.init(emit);
  for (const op of trace.ops) {
    driver.lower(op as Extract<TraceOp, { op: 'attach' | 'map' | 'unmap' }>, emit);
    compare(`after line ${op.line} (${n} register writes)`);
  }
  driver.finish(emit);
  compare('at the end');
  assert.deepEqual(sync.metrics.errors, {});
}

const spec: fc.Arbitrary<Spec> = fc.record({
  map: fc.boolean(), dev: fc.integer({ min: 0, max: 1 }), large: fc.boolean(), slot: fc.integer({ min: 0, max: 31 }),
  pages: fc.integer({ min: 1, max: 8 }), gpage: fc.integer({ min: 0, max: 255 }), perm: fc.constantFrom('r' as const, 'w' as const, 'rw' as const),
  pick: fc.nat(),
});

for (const mode of ['merged', 'qemu'] as const) {
  test(`property (${mode}): after every guest operation each domain's backend maps exactly what the reference model translates`, () => {
    fc.assert(fc.property(fc.boolean(), fc.array(spec, { minLength: 1, maxLength: 30 }), (fd, specs) => {
      check(mode, fd, workload(specs));
    }), { numRuns: Math.max(10, Math.floor(RUNS / 4)) });
  });
}

test('two domains with the same IOVAs each get their own container', () => {
  const lines = [HEADER, '{"op":"attach","sid":"00:03.0","domain":3}', '{"op":"attach","sid":"01:00.0","domain":7}',
    '{"op":"map","domain":3,"iova":"0xfff00000","gpa":"0x1000000","len":4096,"perm":"rw"}',
    '{"op":"map","domain":7,"iova":"0xfff00000","gpa":"0x2000000","len":4096,"perm":"r"}'];
  check('merged', false, lines);
});
