// msi (interrupt remapping): MSI remaps per second through the embedder API, with the interrupt entry cache
// hitting (IEC on, warm) and missing (caches off: every request reads its IRTE from guest memory), against the
// reference model's msi() on the same requests in the same run.

import { Iommu, type MsiResult } from '../../src/index.js';
import { RefModel, defaultModelConfig, type ModelMsi } from '../../test/model/model.js';
import type { BenchContext, Suite } from '../lib/context.js';
import { rng } from '../lib/image.js';
import { measure } from '../lib/measure.js';

const IRT = 0x200000n;
const QUEUE = 0x180000n;
const S = 9; // 1024 entries
const ENTRIES = 1 << (S + 1);
const REQUESTS = 4096;
const SIDS = [0x18, 0x20, 0x100, 0x208];

interface Request { sid: number; addr: number; data: number }

/** IRTEs: remapped format, random vector / xAPIC destination / modes, SVT=1 naming one of the SIDs; a few not present. */
function buildTable(): { irtes: [bigint, bigint][]; requests: Request[] } {
  const rand = rng(0x5eed1e55);
  const irtes: [bigint, bigint][] = [];
  for (let i = 0; i < ENTRIES; i++) {
    const present = rand() > 0.02;
    const lo = (BigInt(Math.floor(rand() * 256)) << 40n) | (BigInt(0x20 + Math.floor(rand() * 0xd0)) << 16n)
      | (BigInt(Math.floor(rand() * 2)) << 4n) | (BigInt(Math.floor(rand() * 2)) << 2n) | (present ? 1n : 0n);
    const hi = (1n << 18n) | BigInt(SIDS[i % SIDS.length]);
    irtes.push([lo, hi]);
  }
  const requests: Request[] = [];
  for (let k = 0; k < REQUESTS; k++) {
    const index = Math.floor(rand() * ENTRIES);
    // Mostly the entry's own device (delivered), sometimes another (26h).
    const sid = rand() < 0.97 ? SIDS[index % SIDS.length] : SIDS[(index + 1) % SIDS.length];
    requests.push({ sid, addr: (0xfee00000 | (index << 5) | 0x10) >>> 0, data: 0 });
  }
  return { irtes, requests };
}

function program(write: (gpa: bigint, q: bigint[]) => void, mmio: (off: number, size: 4 | 8, v: bigint) => void, irtes: [bigint, bigint][]): void {
  irtes.forEach(([lo, hi], i) => write(IRT + BigInt(i) * 16n, [lo, hi]));
  mmio(0x90, 8, QUEUE);
  mmio(0x18, 4, 0x04000000n);
  mmio(0xb8, 8, IRT | BigInt(S));
  mmio(0x18, 4, 0x05000000n);
  mmio(0x18, 4, 0x06000000n);
}

function key(r: MsiResult | ModelMsi): string {
  if (!r.ok) return `fault ${'fault' in r ? r.fault : undefined}`;
  if ('posted' in r && r.posted) return 'posted';
  return `${(r as { addr: bigint }).addr.toString(16)}/${(r as { data: number }).data.toString(16)}`;
}

export const msi: Suite = {
  name: 'msi',
  about: 'interrupt remapping: MSI remaps per second, interrupt entry cache hit and miss, vs the model',
  run(ctx: BenchContext): void {
    const { report: rep, timing } = ctx;
    const { irtes, requests } = buildTable();
    const unit = (caches: boolean): Iommu => {
      const u = Iommu.create({ aw: 48, ir: true, contextCache: caches, iotlbEntries: caches ? 4096 : 0 });
      program((g, q) => u.writeGuestQwords(g, q), (o, s, v) => u.mmioWrite(o, s, v), irtes);
      return u;
    };
    const hitUnit = unit(true);
    const missUnit = unit(false);
    const model = new RefModel({ ...defaultModelConfig, aw: 48, ir: true });
    program((g, q) => {
      const b = new Uint8Array(q.length * 8);
      q.forEach((v, i) => new DataView(b.buffer).setBigUint64(i * 8, v, true));
      model.writeMem(g, b);
    }, (o, s, v) => model.mmioWrite(o, s, v), irtes);

    // The same answers everywhere before anything is timed. Clear the fault registers between passes so
    // recording does not differ (faults are recorded the same way in all three, but not timed here).
    const run = (f: (r: Request) => MsiResult | ModelMsi): string[] => requests.map((r) => key(f(r)));
    const a = run((r) => hitUnit.remapMsi(r.sid, r.addr, r.data));
    const b = run((r) => missUnit.remapMsi(r.sid, r.addr, r.data));
    const c = run((r) => model.msi(r.sid, BigInt(r.addr), r.data));
    for (let i = 0; i < requests.length; i++) {
      if (a[i] !== c[i] || b[i] !== c[i]) throw new Error(`msi: request ${i} differs: iec ${a[i]}, no cache ${b[i]}, model ${c[i]}`);
    }
    const delivered = c.filter((k) => !k.startsWith('fault')).length;

    const before = hitUnit.counters();
    const tHit = measure('msi wasm iec-hit', () => { for (const r of requests) hitUnit.remapMsi(r.sid, r.addr, r.data); }, requests.length, timing);
    const after = hitUnit.counters();
    const hits = after['iec.hit'] - before['iec.hit'], lookups = hits + after['iec.miss'] - before['iec.miss'];
    const tMiss = measure('msi wasm iec-miss', () => { for (const r of requests) missUnit.remapMsi(r.sid, r.addr, r.data); }, requests.length, timing);
    const tModel = measure('msi model', () => { for (const r of requests) model.msi(r.sid, BigInt(r.addr), r.data); }, requests.length, timing);

    rep.add('msi.model', tModel.perSecond, 'remaps/s', null, { rme: tModel.rme, note: 'RefModel.msi (BigInt, no caches)' });
    rep.add('msi.wasm-iec-hit', tHit.perSecond, 'remaps/s', 'msi.model', { rme: tHit.rme, note: `Iommu.remapMsi, IEC warm (${(100 * hits / lookups).toFixed(1)}% hits while timed)` });
    rep.add('msi.wasm-iec-miss', tMiss.perSecond, 'remaps/s', 'msi.model', { rme: tMiss.rme, note: 'Iommu.remapMsi, caches off: every request reads its IRTE' });
    rep.addRatio('msi.wasm-iec-hit/model', 'msi.wasm-iec-hit', 'msi.model');
    rep.addRatio('msi.wasm-iec-miss/model', 'msi.wasm-iec-miss', 'msi.model');
    rep.addRatio('msi.wasm-iec-hit/wasm-iec-miss', 'msi.wasm-iec-hit', 'msi.wasm-iec-miss');
    rep.printSection('msi: interrupt remapping', [
      `${requests.length} remappable MSIs over a ${ENTRIES}-entry table, ${delivered} delivered, the rest faults (not present, source id); same answers in all three`,
    ]);
  },
};
