/**
 * `vtd import` of a scalable-mode capture, on a small hand-written fixture:
 * test/fixtures/ftrace/sm-first-stage-synthetic.txt, in the format of the real
 * captures, with the descriptors a Linux 6.x guest submits in scalable mode
 * with first-stage tables and caching mode (PASID-cache and PASID-based IOTLB
 * invalidations). The real scalable-mode captures are tested in
 * realtraces-sm.test.ts.
 *
 *   node --import tsx --test test/sources/ftrace-sm.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { VtdError } from '../../src/errors.js';
import { importFtrace, formatImport, QemuDmaPlacer } from '../../src/sources/ftrace/index.js';
import { decodeDescriptor } from '../../src/sources/ftrace/descriptor.js';
import { parseTrace } from '../../src/trace/parse.js';
import { lowerOps } from '../../src/guest/driver.js';

const fixture = readFileSync(fileURLToPath(new URL('../fixtures/ftrace/sm-first-stage-synthetic.txt', import.meta.url)), 'utf8');

test('PASID-cache and PASID-based IOTLB descriptors decode to what they name', () => {
  assert.deepEqual(decodeDescriptor(0x10017n, 0n), { kind: 'pasid-cache', did: 1, global: false });
  assert.deepEqual(decodeDescriptor(0x37n, 0n), { kind: 'pasid-cache', did: 0, global: true });
  assert.deepEqual(decodeDescriptor(0x10036n, 0xffffc041n), { kind: 'iotlb-page', did: 1, firstPage: 0xffffc, pages: 2 });
  assert.deepEqual(decodeDescriptor(0x20026n, 0n), { kind: 'iotlb-domain', did: 2 });
});

test('a scalable-mode capture imports with sm and flts in its header and every event in its domain', () => {
  const r = importFtrace(fixture, { audit: true });
  // Caching mode: no flush follows the first-stage maps, but the DID-0 context-cache invalidations after each
  // context entry (and the PASID-cache flushes after each PASID entry) are what Linux does only under caching mode.
  assert.deepEqual(r.header, { aw: 48, cm: true, ram: 0x10000000n, devices: [0x18, 0x20], sm: true, flts: true });
  const text = [...formatImport(r)];
  assert.equal(text[1], '{"vtd-trace":1,"iommu":{"aw":48,"cm":true,"sm":true,"flts":true,"ram":"0x10000000"},"devices":["00:03.0","00:04.0"]}');
  assert.deepEqual(text.slice(2), [
    '{"op":"attach","sid":"00:03.0","domain":1}',
    '{"op":"attach","sid":"00:04.0","domain":2}',
    '{"op":"map","domain":1,"iova":"0xfffff000","gpa":"0x1234000","len":4096,"perm":"rw"}',
    '{"op":"map","domain":1,"iova":"0xffffc000","gpa":"0x1236000","len":8192,"perm":"rw"}',
    '{"op":"unmap","domain":1,"iova":"0xfffff000","len":4096}',
    '{"op":"unmap","domain":1,"iova":"0xffffc000","len":8192}',
    '{"op":"map","domain":2,"iova":"0xfff00000","gpa":"0x2000000","len":65536,"perm":"rw"}',
    '{"op":"unmap","domain":2,"iova":"0xfff00000","len":65536}',
  ]);
  // The invalidations after each PASID entry change belong to the attaches, not to a flush queue:
  // the one domain-wide flush counted is domain 2's (its lazy unmap).
  assert.deepEqual(r.stats.warnings, {});
  assert.deepEqual(r.stats.invalidations, { page: 2, domain: 1, global: 1, other: 10 });
  assert.deepEqual(r.stats.attribution.attach, { flush: 2 });
  assert.deepEqual(r.stats.attribution.unmap, { invalidation: 2, 'only-candidate': 1 });
});

test('the imported trace lowers in scalable mode: first-stage tables, PASID-based invalidations', () => {
  const t = parseTrace([...formatImport(importFtrace(fixture))].join('\n'));
  const lines: string[] = [];
  const d = lowerOps(t.header, t.ops, (l) => lines.push(l), { policy: 'strict' });
  assert.ok(lines.some((l) => l.includes('"reg":"0x20"') && /"val":"0x[0-9a-f]*400"/.test(l)), 'RTADDR with TTM = 01');
  // Under caching mode each attach's new PASID entry is followed by a PASID-cache and an all-of-PASID IOTLB
  // invalidation (pasid_flush_caches), as in the fixture; plus the boot's global PASID-cache invalidation.
  assert.deepEqual([d.stats.invalidations.pasidCache, d.stats.invalidations.pasidIotlbPage, d.stats.invalidations.pasidIotlb], [3, 3, 2]);
});

test('a QEMU 7.2 log, which does not show PASID-based descriptors, anchors on the others instead of aborting', () => {
  const r = importFtrace(fixture);
  const q = (desc: string) => `1@1.0:vtd_inv_desc invalidate desc type ${desc}`;
  const placer = new QemuDmaPlacer(r);
  // QEMU 7.2 logs the guest's cc/iotlb descriptors only: boot (0x11, 0xd2), then each attach's pair.
  for (const l of [
    q('context-cache high 0x0 low 0x11'), q('iotlb high 0x0 low 0xd2'),
    q('context-cache high 0x0 low 0x1800000031'), q('iotlb high 0x0 low 0x100e2'),
    '2@1.0:vtd_dmar_translate dev 00:03.00 iova 0xfffff000 -> gpa 0x1234000 mask 0xfff',
    q('context-cache high 0x0 low 0x2000000031'), q('iotlb high 0x0 low 0x200e2'),
  ]) placer.pushLine(l);
  const st = placer.finish();
  assert.equal(st.anchors, 6);
  assert.equal(st.translations, 1);
  // A legacy descriptor that differs is still the error it was.
  const bad = new QemuDmaPlacer(importFtrace(fixture));
  assert.throws(() => bad.pushLine(q('iotlb high 0x0 low 0x200e2')), (e: unknown) => e instanceof VtdError && /differs from the guest's qi_submit/.test(e.message));
});
