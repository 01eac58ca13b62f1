// walk4 (translation core): full 4-level walks with every cache off, through the batch path, the single-call
// path, the reference model and the native C walker, on one table image and one request list.

import type { BenchContext, Suite } from '../lib/context.js';
import { toNativeImage } from '../lib/image.js';
import { measure, measureNative } from '../lib/measure.js';
import {
  assertSameOutcomes, BatchRunner, createModel, createWasmUnit, faultSummary, ModelRunner, SingleRunner,
} from '../lib/units.js';

export const NO_CACHES = { iotlbEntries: 0, contextCache: false } as const;

export const walk4: Suite = {
  name: 'walk4',
  about: 'translation core: uncached 4-level walks',
  run(ctx: BenchContext): void {
    const { report: rep, timing } = ctx;
    const img = ctx.walkImage();
    const reqs = img.requests;
    const n = reqs.length;

    ctx.log('walk4: verifying Wasm batch, Wasm single, model and native C on the same requests');
    const expected = ctx.reference();
    const unit = createWasmUnit(img, NO_CACHES);
    const batch = new BatchRunner(unit, reqs);
    const single = new SingleRunner(unit, reqs);
    const model = new ModelRunner(createModel(img), reqs);
    assertSameOutcomes('walk4', reqs, batch.outcomes(), expected, 'wasm batch', 'model');
    assertSameOutcomes('walk4', reqs, single.outcomes(), expected, 'wasm single', 'model');
    const native = toNativeImage(img);
    // measureNative checks the C checksum and fault count against expectedChecksum of these outcomes first.

    ctx.log('walk4: timing');
    const nat = measureNative('walk4 native walk', native, 0, expected, timing);
    rep.add('walk4.native-walk', nat.perSecond, 'translations/s', null,
      { rme: nat.rme, note: `C walker mode 0, median of ${nat.samples} processes` });
    const b = measure('walk4 wasm batch', () => batch.runAll(), n, timing);
    rep.add('walk4.wasm-batch', b.perSecond, 'translations/s', 'walk4.native-walk', { rme: b.rme });
    const s = measure('walk4 wasm single', () => single.runAll(), n, timing);
    rep.add('walk4.wasm-single', s.perSecond, 'translations/s', 'walk4.native-walk', { rme: s.rme });
    const m = measure('walk4 model', () => model.runAll(), n, timing);
    rep.add('walk4.model', m.perSecond, 'translations/s', null, { rme: m.rme, note: 'RefModel.dma (bigint, no caches)' });
    rep.addRatio('walk4.wasm-batch/model', 'walk4.wasm-batch', 'walk4.model');
    rep.addRatio('walk4.wasm-single/model', 'walk4.wasm-single', 'walk4.model');
    rep.addRatio('walk4.wasm-batch/native-walk', 'walk4.wasm-batch', 'walk4.native-walk');
    rep.addRatio('walk4.wasm-single/native-walk', 'walk4.wasm-single', 'walk4.native-walk');

    const c = unit.counters();
    if ((c['iotlb.hit'] ?? 0) !== 0 || (c['ctx.hit'] ?? 0) !== 0) {
      throw new Error(`walk4: caches are off but the core counted ${c['iotlb.hit']} IOTLB and ${c['ctx.hit']} context hits`);
    }
    rep.printSection('walk4: uncached 4-level walks (iotlbEntries 0, contextCache off)', [
      `image: ${img.description}`,
      `outcomes identical in Wasm batch, Wasm single, model and C (checksum); faults: ${faultSummary(expected)}`,
      `one op = all ${n} requests (batch: chunks of ${unit.batch.capacity}, request copy included)`,
    ]);
  },
};
