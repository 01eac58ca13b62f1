// sm-walk (scalable mode, issue 13): uncached walks of requests without PASID in scalable mode, second-stage
// (PGTT 010) and first-stage (PGTT 001, x86-64 4-level tables mapping the same pages to the same frames), each
// as a ratio to the legacy walk of the same requests in the same run.

import type { BenchContext, Suite } from '../lib/context.js';
import { SID } from '../lib/image.js';
import { measure } from '../lib/measure.js';
import { BatchRunner, createWasmUnit, type Outcome } from '../lib/units.js';
import type { Iommu } from '../../dist/index.js';
import { NO_CACHES } from './walk4.js';

/** Guest-physical areas the walk image does not use (checked): SM structures, then first-stage tables. */
const SM_BASE = 0xf000000, FS_BASE = 0xa000000, FS_END = 0xe000000;

/** Points SID's scalable-mode context at a PASID entry (RID_PASID 0) and switches to TTM = 01. */
function toScalable(u: Iommu, q0: bigint, q2: bigint): void {
  const root = SM_BASE, ctx = SM_BASE + 0x1000, dir = SM_BASE + 0x2000, ptab = SM_BASE + 0x3000;
  u.writeGuestQwords(root + (SID >> 8) * 16, [BigInt(ctx) | 1n, 0n]);
  u.writeGuestQwords(ctx + (SID & 0x7f) * 32, [BigInt(dir) | 1n, 0n, 0n, 0n]); // P, PDTS 0, RID_PASID 0
  u.writeGuestQwords(dir, [BigInt(ptab) | 1n]);
  u.writeGuestQwords(ptab, [q0 | 1n, 1n, q2, 0n, 0n, 0n, 0n, 0n]); // DID 1
  u.mmioWrite(0x20, 8, BigInt(root) | 0x400n);
  u.mmioWrite(0x18, 4, 0x40000000);
  u.mmioWrite(0x18, 4, 0x80000000);
}

function same(a: Outcome[], b: Outcome[], what: string): void {
  for (let i = 0; i < a.length; i++) {
    if (JSON.stringify(a[i], (_, v) => typeof v === 'bigint' ? v.toString(16) : v) !== JSON.stringify(b[i], (_, v) => typeof v === 'bigint' ? v.toString(16) : v)) {
      throw new Error(`sm-walk: ${what} differs at request ${i}`);
    }
  }
}

export const smWalk: Suite = {
  name: 'sm-walk',
  about: 'scalable mode: uncached second- and first-stage 4-level walks against legacy',
  run(ctx: BenchContext): void {
    const { report: rep, timing } = ctx;
    const img = ctx.walkImage();
    for (const gfn of img.frames.keys()) {
      const gpa = Number(gfn) * 4096;
      if ((gpa >= FS_BASE && gpa < FS_END) || (gpa >= SM_BASE && gpa < SM_BASE + 0x4000)) throw new Error('sm-walk: the walk image uses the SM areas');
    }
    const legacy = createWasmUnit(img, NO_CACHES);
    // Only the requests that succeed in legacy mode (the first-stage format cannot express every
    // second-stage fault of the image: write-only pages, the reserved SNP bit), at canonical
    // lower-half addresses (below 2^47: first-stage addresses are sign-extended).
    const all = new BatchRunner(legacy, img.requests).outcomes();
    const reqs = img.requests.filter((r, i) => all[i].ok && r.iova < 2 ** 47);
    const n = reqs.length;

    const ctxInfo = legacy.contextOf(SID);
    if (!ctxInfo.ok) throw new Error('sm-walk: no legacy context');
    const ss = createWasmUnit(img, { ...NO_CACHES, sm: true });
    toScalable(ss, ctxInfo.table | (2n << 2n) | (2n << 6n), 0n); // AW 2, PGTT 010

    const fs = createWasmUnit(img, { ...NO_CACHES, sm: true, flts: true });
    let next = FS_BASE;
    const page = () => { const p = next; next += 0x1000; if (next > FS_END) throw new Error('sm-walk: FS area full'); fs.writeGuest(p, new Uint8Array(0x1000)); return p; };
    const top = page();
    const tables = new Map<number, bigint[]>(); // table page -> entries (written once at the end)
    tables.set(top, new Array(512).fill(0n));
    const map = (iova: number, frame: bigint) => {
      let table = top;
      for (let level = 4; level > 1; level--) {
        const idx = Math.floor(iova / 2 ** (12 + 9 * (level - 1))) % 512;
        const t = tables.get(table)!;
        if (t[idx] === 0n) { const p = page(); tables.set(p, new Array(512).fill(0n)); t[idx] = BigInt(p) | 7n; }
        table = Number(t[idx] & ~0xfffn);
      }
      tables.get(table)![Math.floor(iova / 4096) % 512] = frame | 7n;
    };
    const leafOf = new BatchRunner(legacy, reqs).outcomes();
    reqs.forEach((r, i) => { const o = leafOf[i]; if (o.ok) map(r.iova, (o.gpa! >> 12n) << 12n); });
    for (const [p, entries] of tables) fs.writeGuestQwords(p, entries);
    toScalable(fs, 1n << 6n, BigInt(top)); // PGTT 001, FSPTPTR

    ctx.log('sm-walk: verifying legacy, SM second-stage and SM first-stage give the same outputs');
    const lb = new BatchRunner(legacy, reqs), sb = new BatchRunner(ss, reqs), fb = new BatchRunner(fs, reqs);
    const lo = lb.outcomes();
    same(lo, sb.outcomes(), 'SM second-stage');
    same(lo, fb.outcomes(), 'SM first-stage');

    ctx.log('sm-walk: timing');
    const l = measure('sm-walk legacy', () => lb.runAll(), n, timing);
    rep.add('sm-walk.legacy', l.perSecond, 'translations/s', null, { rme: l.rme, note: 'legacy walk, no caches' });
    const s = measure('sm-walk second-stage', () => sb.runAll(), n, timing);
    rep.add('sm-walk.second-stage', s.perSecond, 'translations/s', 'sm-walk.legacy', { rme: s.rme });
    const f = measure('sm-walk first-stage', () => fb.runAll(), n, timing);
    rep.add('sm-walk.first-stage', f.perSecond, 'translations/s', 'sm-walk.legacy', { rme: f.rme });
    rep.addRatio('sm-walk.second-stage/legacy', 'sm-walk.second-stage', 'sm-walk.legacy');
    rep.addRatio('sm-walk.first-stage/legacy', 'sm-walk.first-stage', 'sm-walk.legacy');
    rep.printSection('sm-walk: uncached scalable-mode walks of requests without PASID (RID_PASID), against legacy', [
      `${n} requests (those of the walk image that succeed, below 2^47), batch path; every request reads root, context (SM: and`,
      'PASID directory and entry) and four paging entries; first-stage walks also write the Accessed flags once',
    ]);
  },
};
