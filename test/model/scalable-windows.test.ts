/**
 * Scalable mode with caches: the core (context cache, IOTLB, PASID-tagged IOTLB on) against the cached-window
 * model (windows.ts, "Scalable mode"). Random requests with and without PASID, random changes to PASID entries,
 * context entries and first- and second-stage entries, and random invalidations (context cache, IOTLB, PASID-
 * based IOTLB, PASID cache) in any order: every answer of the core must lie in the window's set of allowed
 * outcomes, and the Accessed/Dirty flags it writes must be those of a path giving that answer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Iommu, TranslateResult } from '../../src/index.js';
import { defaultModelConfig, type FlagWrite, type ModelConfig, type ModelDmaRequest } from './model.js';
import { CachedWindowModel, REASON_BLOCKED, describeOutcome, sameOutcome, type Outcome } from './windows.js';

const RAM = 0x1000000n;
const ROOT = 0x100000n;
const CT = 0x101000n;
const DIR = (i: number) => 0x102000n + BigInt(i) * 0x1000n;
const PTAB = (i: number) => 0x104000n + BigInt(i) * 0x1000n;
const FS = [0x110000n, 0x111000n, 0x112000n, 0x113000n]; // first-stage tables, top first
const SS = [0x120000n, 0x121000n, 0x122000n, 0x123000n]; // second-stage tables, top first
const QUEUE = 0x180000n;
const SIDS = [0x18, 0x20];
const PAGES = [1n, 2n, 3n]; // iova pages 0x1000-0x3000
const FS_OUT = (p: bigint) => 0x40000n + p * 0x1000n; // first-stage output (a gpa when nested)
const SS_OUT = (p: bigint) => 0x80000n + p * 0x1000n; // second-stage output of an iova page
const NEST_OUT = (p: bigint) => 0xc0000n + p * 0x1000n; // second-stage output of FS_OUT(p)

interface World { core: Iommu; w: CachedWindowModel; tail: bigint }

function q(world: World, gpa: bigint, qs: bigint[]): void {
  world.core.writeGuestQwords(gpa, qs);
  const b = new Uint8Array(qs.length * 8);
  const dv = new DataView(b.buffer);
  qs.forEach((v, i) => dv.setBigUint64(i * 8, v, true));
  world.w.writeMem(gpa, b);
}

function mmio(world: World, off: number, size: 4 | 8, v: bigint): void {
  world.core.mmioWrite(off, size, v);
  world.w.mmioWrite(off, size, v);
}

type PeSpec = { p: boolean; pgtt: 1 | 2 | 3 | 4; did: number; sre: boolean };
const peQwords = (s: PeSpec): bigint[] => [
  SS[0]! | (BigInt(s.pgtt) << 6n) | (2n << 2n) | (s.p ? 1n : 0n), BigInt(s.did), FS[0]! | (s.sre ? 1n : 0n), 0n, 0n, 0n, 0n, 0n,
];

function makeWorld(): World {
  const core = Iommu.create({ aw: 48, sm: true, nest: true, pasid: true, ram: RAM, iotlbEntries: 64, contextCache: true });
  const cfg: ModelConfig = { ...defaultModelConfig, aw: 48, sm: true, nest: true, pasid: true, ram: RAM };
  const world: World = { core, w: new CachedWindowModel(cfg), tail: 0n };
  q(world, ROOT, [CT | 1n, 0n]);
  SIDS.forEach((sid, i) => {
    q(world, CT + BigInt(sid) * 32n, [DIR(i) | 8n | 1n, 0n, 0n, 0n]); // PASIDE, PDTS 0, RID_PASID 0
    q(world, DIR(i), [PTAB(i) | 1n]);
    q(world, PTAB(i), peQwords({ p: true, pgtt: 2, did: 1, sre: false }));
    q(world, PTAB(i) + 64n, peQwords({ p: true, pgtt: 1, did: 2, sre: true }));
  });
  for (let l = 0; l < 3; l++) {
    q(world, FS[l]!, [FS[l + 1]! | 7n]);
    q(world, SS[l]!, [SS[l + 1]! | 3n]);
  }
  for (const p of PAGES) {
    q(world, FS[3]! + 8n * p, [FS_OUT(p) | 7n]);
    q(world, SS[3]! + 8n * p, [SS_OUT(p) | 3n]);
    q(world, SS[3]! + 8n * (FS_OUT(p) >> 12n), [NEST_OUT(p) | 3n]);
  }
  for (const t of FS) q(world, SS[3]! + 8n * (t >> 12n), [t | 3n]); // the first-stage tables, identity, for nesting
  mmio(world, 0x20, 8, ROOT | 0x400n); // TTM 01
  mmio(world, 0x18, 4, 0x40000000n); // SRTP
  mmio(world, 0x90, 8, QUEUE | 0x800n); // DW = 1, QS 0: 128 slots
  mmio(world, 0x18, 4, 0x84000000n); // TE, QIE
  return world;
}

function submit(world: World, desc: bigint[]): void {
  q(world, QUEUE + world.tail, [...desc, 0n, 0n].slice(0, 4));
  world.tail = (world.tail + 32n) % 0x1000n;
  mmio(world, 0x88, 8, world.tail);
  assert.equal(world.core.mmioRead(0x34, 4) & 0x10n, 0n, 'no queue error');
}

function coreOutcome(r: TranslateResult): Outcome {
  if (r.ok) return { ok: true, gpa: r.gpaBig };
  if (r.fault !== undefined) return { ok: false, fault: r.fault, reason: r.fault, recorded: true };
  if (r.faultReason !== undefined) return { ok: false, reason: r.faultReason, recorded: false };
  return { ok: false, reason: REASON_BLOCKED, recorded: false };
}

function qword(world: World, addr: bigint): bigint {
  return new DataView(world.core.readGuest(addr, 8).buffer).getBigUint64(0, true);
}

const actionArb = fc.oneof(
  { weight: 8, arbitrary: fc.record({ k: fc.constant('dma' as const), sid: fc.constantFrom(...SIDS), page: fc.constantFrom(...PAGES), off: fc.integer({ min: 0, max: 0xff0 }), w: fc.boolean(), pasid: fc.constantFrom<number | undefined>(undefined, undefined, 0, 1), priv: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('pe' as const), sid: fc.integer({ min: 0, max: 1 }), pasid: fc.integer({ min: 0, max: 1 }), p: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }), pgtt: fc.constantFrom<1 | 2 | 3 | 4>(1, 2, 3, 4), did: fc.integer({ min: 1, max: 2 }), sre: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('ridPasid' as const), sid: fc.integer({ min: 0, max: 1 }), pasid: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('fsLeaf' as const), page: fc.constantFrom(...PAGES), to: fc.constantFrom(...PAGES), flags: fc.constantFrom(0n, 1n, 3n, 5n, 7n, 0x27n, 0x67n) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('ssLeaf' as const), page: fc.constantFrom(...PAGES), to: fc.constantFrom(...PAGES), rights: fc.constantFrom(0n, 1n, 2n, 3n), nested: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('inv' as const), kind: fc.constantFrom('cc-global', 'cc-device', 'iotlb-global', 'iotlb-domain', 'iotlb-page', 'piotlb-pasid', 'piotlb-page', 'pc-global', 'pc-domain', 'pc-pasid'), did: fc.integer({ min: 1, max: 2 }), pasid: fc.integer({ min: 0, max: 1 }), sid: fc.constantFrom(...SIDS), page: fc.constantFrom(...PAGES) }) },
);

type Action = typeof actionArb extends fc.Arbitrary<infer T> ? T : never;

function perform(world: World, a: Action, specs: PeSpec[][]): void {
  switch (a.k) {
    case 'dma': {
      const iova = (a.page << 12n) | BigInt(a.off);
      const req: ModelDmaRequest | undefined = a.pasid === undefined ? undefined : { pasid: a.pasid, priv: a.priv };
      const dir = a.w ? 'w' : 'r';
      const r = new TranslateResult();
      world.core.translateInto(a.sid, iova, dir, 4, r, req);
      const got = coreOutcome(r);
      const allowed = world.w.allowedDma(a.sid, iova, 4, dir, req);
      assert.ok(allowed.some((o) => sameOutcome(o, got)), `sid 0x${a.sid.toString(16)} iova 0x${iova.toString(16)} ${dir} ${JSON.stringify(req)}: core ${describeOutcome(got)}, allowed ${allowed.map(describeOutcome).join(' | ')}`);
      // The A/D writes the core made: those of a path giving this outcome (a walk sets them, a hit does not).
      const choose = (candidates: FlagWrite[][]): FlagWrite[] => {
        const fits = candidates.filter((c) => c.every((f) => (qword(world, f.addr) & f.set) === f.set));
        return fits.sort((x, y) => y.length - x.length)[0] ?? candidates[0]!;
      };
      world.w.commitDma(a.sid, iova, 4, dir, got, req, choose);
      for (const t of FS) assert.deepEqual(world.core.readGuest(t, 0x20), world.w.readMem(t, 0x20), `first-stage entries at 0x${t.toString(16)}`);
      // Keep fault records free, as a driver would.
      mmio(world, 0x22c, 4, 0x80000000n);
      return;
    }
    case 'pe': {
      const s: PeSpec = { p: a.p, pgtt: a.pgtt, did: a.did, sre: a.sre };
      specs[a.sid]![a.pasid] = s;
      q(world, PTAB(a.sid) + 64n * BigInt(a.pasid), peQwords(s));
      return;
    }
    case 'ridPasid':
      q(world, CT + BigInt(SIDS[a.sid]!) * 32n + 8n, [BigInt(a.pasid)]);
      return;
    case 'fsLeaf':
      q(world, FS[3]! + 8n * a.page, [FS_OUT(a.to) | a.flags]);
      return;
    case 'ssLeaf':
      if (a.nested) q(world, SS[3]! + 8n * (FS_OUT(a.page) >> 12n), [NEST_OUT(a.to) | a.rights]);
      else q(world, SS[3]! + 8n * a.page, [SS_OUT(a.to) | a.rights]);
      return;
    case 'inv': {
      const did = BigInt(a.did), pasid = BigInt(a.pasid), addr = a.page << 12n;
      switch (a.kind) {
        case 'cc-global': return submit(world, [0x1n | (1n << 4n), 0n]);
        case 'cc-device': return submit(world, [0x1n | (3n << 4n) | (BigInt(a.sid) << 32n), 0n]);
        case 'iotlb-global': return submit(world, [0x2n | (1n << 4n), 0n]);
        case 'iotlb-domain': return submit(world, [0x2n | (2n << 4n) | (did << 16n), 0n]);
        case 'iotlb-page': return submit(world, [0x2n | (3n << 4n) | (did << 16n), addr]);
        case 'piotlb-pasid': return submit(world, [0x6n | (2n << 4n) | (did << 16n) | (pasid << 32n), 0n]);
        case 'piotlb-page': return submit(world, [0x6n | (3n << 4n) | (did << 16n) | (pasid << 32n), addr]);
        case 'pc-global': return submit(world, [0x7n | (3n << 4n), 0n]);
        case 'pc-domain': return submit(world, [0x7n | (did << 16n), 0n]);
        case 'pc-pasid': return submit(world, [0x7n | (1n << 4n) | (did << 16n) | (pasid << 32n), 0n]);
      }
    }
  }
}

test('scalable mode with caches: every answer of the core lies in the window of the cached-window model', () => {
  fc.assert(fc.property(fc.array(actionArb, { minLength: 1, maxLength: 60 }), (actions) => {
    const world = makeWorld();
    const specs: PeSpec[][] = SIDS.map(() => [{ p: true, pgtt: 2, did: 1, sre: false }, { p: true, pgtt: 1, did: 2, sre: true }]);
    for (const a of actions) perform(world, a, specs);
  }), { numRuns: Number(process.env.VTD_PROPERTY_RUNS ?? 200) });
});

test('scalable-mode windows: a changed PASID entry may answer until a PASID-cache invalidation; a first-stage hit until a PASID-based IOTLB one', () => {
  const world = makeWorld();
  const sid = SIDS[0]!;
  // RID_PASID 0: second stage, DID 1. The request fills the context cache and the IOTLB.
  perform(world, { k: 'dma', sid, page: 1n, off: 0, w: false, pasid: undefined, priv: false }, []);
  assert.deepEqual(world.w.possiblePasidEntries(sid).map((e) => e.pgtt), [2]);
  // The PASID entry becomes pass-through: the old second-stage answer or the new identity one.
  q(world, PTAB(0), peQwords({ p: true, pgtt: 4, did: 1, sre: false }));
  const both = world.w.allowedDma(sid, 0x1000n, 4, 'r').map(describeOutcome);
  assert.deepEqual(both.sort(), ['ok 0x1000', `ok 0x${SS_OUT(1n).toString(16)}`].sort());
  submit(world, [0x7n | (1n << 16n), 0n]); // PASID cache, DID 1
  assert.deepEqual(world.w.allowedDma(sid, 0x1000n, 4, 'r').map(describeOutcome), ['ok 0x1000']);
  // PASID 1 (first stage, DID 2): a walk fills the PASID-tagged IOTLB; a changed leaf may still hit.
  perform(world, { k: 'dma', sid, page: 2n, off: 0, w: false, pasid: 1, priv: false }, []);
  assert.equal(world.w.possibleFsLeaves().length, 1);
  q(world, FS[3]! + 16n, [FS_OUT(3n) | 7n]);
  const two = world.w.allowedDma(sid, 0x2000n, 4, 'r', { pasid: 1 }).map(describeOutcome);
  assert.deepEqual(two.sort(), [`ok 0x${FS_OUT(2n).toString(16)}`, `ok 0x${FS_OUT(3n).toString(16)}`].sort());
  submit(world, [0x6n | (3n << 4n) | (2n << 16n) | (1n << 32n), 0x2000n]); // PASID-based IOTLB, page 0x2000 of PASID 1 in DID 2
  assert.deepEqual(world.w.allowedDma(sid, 0x2000n, 4, 'r', { pasid: 1 }).map(describeOutcome), [`ok 0x${FS_OUT(3n).toString(16)}`]);
});
