// Differences vtd conform found where our core, not QEMU, departs from the
// architecture (as the digest states it). They stay NEW in the comparison
// (they are not QEMU deviations) and are reported for a fix in assembly/;
// each is kept here as its minimal trace, as a regression test once the core
// is fixed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTrace, replayTrace } from '../../src/index.js';

// Found by `vtd conform --qemu --hostile` (seeds 5935 and 6778 of 10,000),
// shrunk, then reduced by hand. A 39-bit unit with device-TLB support
// (ECAP.DT); the top-level (level-3, non-leaf) entry has bit 62 set.
// Digest §4.2: bit 62 is TM only in leaf entries ("meaningful with
// device-TLB"); in non-leaf entries it is reserved. §4.3: QEMU's non-leaf
// masks keep T whatever DT; only the leaf masks (SL-PTE, large pages) drop
// it with DT. assembly/slpte.ts dropped bit 62 from every level's mask when
// DT was set (`const tm = hasFlag(FLAG_DT) ? 0 : ...; common = addrRsvd | tm`
// used for rsvdTable levels 2-5), so the walk went on and translated
// ({"ok":true,"gpa":"0x1000010"}). Architected (and QEMU 7.2): fault 0x0c.
const NONLEAF_TM = `{"vtd-trace": 1, "iommu": {"aw": 39, "dt": true}, "devices": ["00:03.0"]}
{"op":"mem","gpa":"0x100000","q":["0x101001","0x0"]}
{"op":"mem","gpa":"0x101180","q":["0x110001","0x101"]}
{"op":"mem","gpa":"0x110000","q":["0x4000000000111003"]}
{"op":"mem","gpa":"0x111000","q":["0x112003"]}
{"op":"mem","gpa":"0x112000","q":["0x1000003"]}
{"op":"wr","reg":"0x20","size":8,"val":"0x100000"}
{"op":"wr","reg":"0x18","size":4,"val":"0x40000000"}
{"op":"wr","reg":"0x18","size":4,"val":"0x80000000"}
{"op":"dma","sid":"00:03.0","iova":"0x10","len":8,"dir":"r"}
`;

test('core bug (fixed): bit 62 of a non-leaf paging entry is reserved even with ECAP.DT', () => {
  assert.deepEqual(replayTrace(parseTrace(NONLEAF_TM)), ['{"i":8,"op":"dma","ok":false,"fault":"0x0c"}']);
});

test('the same entry without ECAP.DT already faults 0x0c (the bug is only the DT case)', () => {
  assert.deepEqual(replayTrace(parseTrace(NONLEAF_TM.replace('"dt": true', '"dt": false'))), ['{"i":8,"op":"dma","ok":false,"fault":"0x0c"}']);
});
