/**
 * `vtd import` and replay of the two real scalable-mode captures in
 * test/fixtures/realtraces-sm (README.md there: Debian's Linux 6.1 on QEMU
 * 10.0's intel-iommu with x-scalable-mode=on, second-stage tables, and with
 * x-flts=on, first-stage tables). Each capture is imported with its QEMU log,
 * replayed in scalable mode, and every translation QEMU logged
 * (`vtd_dmar_translate`) must come out of the replay at the gpa QEMU logged.
 *
 *   node --import tsx --test test/sources/realtraces-sm.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { parseTrace } from '../../src/trace/parse.js';
import { replayTrace } from '../../src/replay/replayer.js';
import { lowerOps } from '../../src/guest/driver.js';
import { formatImport, importFtrace, parseFtrace, textLines } from '../../src/sources/ftrace/index.js';
import { ROOT } from '../helpers.js';

const DIR = join(ROOT, 'test', 'fixtures', 'realtraces-sm');
const xz = (run: string, name: string): string => execFileSync('xz', ['-dc', join(DIR, run, name)], { maxBuffer: 1 << 28 }).toString();

/** One capture, read once: the guest's ftrace and QEMU's log. */
const captures = new Map<string, { ftrace: string; log: string }>();
function capture(run: string): { ftrace: string; log: string } {
  let c = captures.get(run);
  if (c === undefined) captures.set(run, (c = { ftrace: xz(run, 'linux-ftrace.txt.xz'), log: xz(run, 'qemu-vtd.log.xz') }));
  return c;
}

/** QEMU's translations, read straight from its log (not through the importer): `dev BB:DD.FF iova X -> gpa Y`. */
function qemuTranslations(log: string): { sid: string; iova: bigint; gpa: bigint }[] {
  const out: { sid: string; iova: bigint; gpa: bigint }[] = [];
  const re = /:vtd_dmar_translate dev ([0-9a-f]{2}):([0-9a-f]{2})\.0?([0-7]) iova (0x[0-9a-f]+) -> gpa (0x[0-9a-f]+) mask 0xfff$/;
  for (const line of textLines(log)) {
    if (!line.includes(':vtd_dmar_translate ')) continue;
    const m = re.exec(line);
    assert.ok(m, `a vtd_dmar_translate line of an unexpected form: ${line}`);
    out.push({ sid: `${m[1]}:${m[2]}.${m[3]}`, iova: BigInt(m[4]), gpa: BigInt(m[5]) });
  }
  return out;
}

/** The guest's invalidation descriptors by type name (qi_submit), read with the ftrace parser. */
function descriptorsByType(ftrace: string): Record<string, number> {
  const n: Record<string, number> = {};
  for (const ev of parseFtrace(textLines(ftrace))) if (ev.event === 'qi') n[ev.type] = (n[ev.type] ?? 0) + 1;
  return n;
}

interface Expect {
  run: string;
  flts: boolean;
  maps: number;
  unmaps: number;
  /** qi_submit descriptors by type. */
  qi: Record<string, number>;
  translations: number;
}

// Counts from the captures themselves (README.md there).
const RUNS: Expect[] = [
  {
    run: 'second-stage', flts: false, maps: 2509, unmaps: 2494, translations: 12289,
    qi: { iec_inv: 40, cc_inv: 9, pc_inv: 9, p_iotlb_inv: 8, iotlb_inv: 4999 },
  },
  {
    run: 'first-stage', flts: true, maps: 2716, unmaps: 2702, translations: 12646,
    qi: { iec_inv: 40, cc_inv: 9, pc_inv: 9, p_iotlb_inv: 2710, iotlb_inv: 9 },
  },
];

for (const x of RUNS) {
  test(`real scalable-mode capture ${x.run}: header, counts and domains`, () => {
    const { ftrace, log } = capture(x.run);
    assert.deepEqual(descriptorsByType(ftrace), x.qi);
    const r = importFtrace(ftrace, { qemuLog: textLines(log) });
    const s = r.stats;
    // Caching mode was on in both runs. In the first-stage run no flush follows a map (Linux skips them for
    // first-stage domains); the DID-0 context-cache invalidations after each context entry still show it.
    assert.deepEqual(r.header, { aw: 48, cm: true, ram: 0x80000000n, devices: r.header.devices, sm: true, flts: x.flts });
    assert.equal(r.header.devices.length, 8);
    const qiTotal = Object.values(x.qi).reduce((a, b) => a + b, 0);
    assert.deepEqual([s.read.map, s.read.unmap, s.read.attach, s.read.group, s.read.qi, s.read.mark], [x.maps, x.unmaps, 8, 8, qiTotal, 7]);
    assert.deepEqual([s.written.map, s.written.unmap, s.written.attach, s.written.dma], [x.maps, x.unmaps, 8, x.translations]);
    assert.deepEqual(s.warnings, {});
    const dom = Object.fromEntries(s.domains.map((d) => [d.did, d]));
    assert.deepEqual(dom[3].devices, ['00:03.0']); // the e1000
    assert.deepEqual(dom[7].devices, ['01:00.0']); // the virtio-blk behind the root port
    assert.equal(dom[3].maps + dom[7].maps + dom[6].maps, x.maps);
    // QEMU 10 logs every descriptor but the PASID-cache ones (vtd_inv_desc has no type for them):
    // all the others anchor the guest's sequence to QEMU's.
    assert.equal(s.dma?.anchors, qiTotal - x.qi.pc_inv);
    assert.equal(s.dma?.translations, x.translations);
    assert.equal(s.dma?.placed, x.translations, JSON.stringify(s.dma));
  });

  test(`real scalable-mode capture ${x.run}: the replay puts every DMA QEMU logged at QEMU's gpa`, () => {
    const { ftrace, log } = capture(x.run);
    const qemu = qemuTranslations(log);
    assert.equal(qemu.length, x.translations);
    const r = importFtrace(ftrace, { qemuLog: textLines(log) });
    const trace = parseTrace([...formatImport(r)].join('\n'));
    assert.equal(trace.header.config.sm, true);
    assert.equal(trace.header.config.flts, x.flts);
    const dmaOps = trace.ops.filter((o) => o.op === 'dma');
    // The dma ops are QEMU's translations, in QEMU's order.
    assert.deepEqual(dmaOps.map((o) => o.op === 'dma' && [o.sid, o.iova]), qemu.map((q) => [sidOf(q.sid), q.iova]));
    for (const policy of ['strict', 'lazy'] as const) {
      const dma = replayTrace(trace, { driver: { policy } })
        .map((l) => JSON.parse(l) as { op: string; ok: boolean; gpa?: string })
        .filter((o) => o.op === 'dma');
      assert.equal(dma.length, x.translations);
      const differing = dma.filter((d, i) => !d.ok || BigInt(d.gpa!) !== qemu[i].gpa);
      assert.equal(differing.length, 0, `${x.run} ${policy}: ${differing.length} replayed translations differ from QEMU's, first ${JSON.stringify(differing[0])}`);
    }
  });

  test(`real scalable-mode capture ${x.run}: lowered as Linux did it, with the guest's PASID-based descriptors`, () => {
    const { ftrace } = capture(x.run);
    const r = importFtrace(ftrace);
    const t = parseTrace([...formatImport(r)].join('\n'));
    const d = lowerOps(t.header, t.ops, () => undefined, { policy: 'strict' });
    const inv = d.stats.invalidations;
    // PASID-cache: one global at boot, one per attach (a new PASID entry under caching mode).
    assert.equal(inv.pasidCache, x.qi.pc_inv);
    if (x.flts) {
      // First stage: each unmap invalidates its pages by PASID (the guest's p_iotlb_inv after each unmap),
      // each attach the whole PASID; nothing follows a map.
      assert.deepEqual([inv.pasidIotlbPage, inv.pasidIotlb, inv.iotlbPage], [x.unmaps, 8, 0]);
      assert.equal(inv.pasidIotlbPage + inv.pasidIotlb, x.qi.p_iotlb_inv);
    } else {
      // Second stage: page-selective IOTLB invalidations after every map and unmap (caching mode), the
      // whole PASID only after each attach, as the guest's p_iotlb_inv.
      assert.deepEqual([inv.pasidIotlbPage, inv.pasidIotlb], [0, x.qi.p_iotlb_inv]);
      assert.equal(inv.iotlbPage, x.maps + x.unmaps);
    }
  });
}

/** `BB:DD.F` as a requester id. */
function sidOf(text: string): number {
  const [bus, rest] = text.split(':');
  const [dev, fn] = rest.split('.');
  return (parseInt(bus, 16) << 8) | (parseInt(dev, 16) << 3) | parseInt(fn, 16);
}
