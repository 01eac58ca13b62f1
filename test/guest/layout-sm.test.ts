/**
 * Guest-side encoders of the scalable-mode structures (src/guest/layout.ts):
 * each checked against words computed by hand from the field tables of the
 * VT-d digest (§3.4-§3.6, §7.5) and Linux's pasid.h bit positions.
 *
 *   node --import tsx --test test/guest/layout-sm.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  smRootEntry, smContextEntry, smContextEntryAddr, pasidDirEntry, pasidEntry, pasidDirEntryAddr, pasidEntryAddr,
  fsEntry, piotlbDesc, pcDesc, wide, ccDesc, iotlbDesc, iecDesc, waitDesc, decodeDesc,
  PGTT_FIRST, PGTT_SECOND, PGTT_NESTED, PGTT_PT, PIOTLB_G_PAGE, PIOTLB_G_PASID, PC_G_PASID, PC_G_GLOBAL, PC_G_DOMAIN,
  G_GLOBAL, G_DOMAIN, IQA_DW, RTADDR_TTM_SM, iqOffset256,
} from '../../src/guest/layout.js';

test('scalable-mode root entry: LP/LCTP in QW0, UP/UCTP in QW1', () => {
  assert.deepEqual(smRootEntry({ lower: 0x1000n, upper: 0x2000n }), [0x1001n, 0x2001n]);
  assert.deepEqual(smRootEntry({ lower: 0x1000n }), [0x1001n, 0n]);
  assert.deepEqual(smRootEntry({ upper: 0xfff000n }), [0n, 0xfff001n]);
  assert.deepEqual(smRootEntry({}), [0n, 0n]);
  assert.throws(() => smRootEntry({ lower: 0x1008n }), /LCTP 0x1008 is not 4 KiB aligned/);
});

test('scalable-mode context entry: 256 bits, PDTS 11:9, RID_PASID in QW1', () => {
  assert.deepEqual(smContextEntry({ pdts: 2, pasidDir: 0x5000n }), [0x5401n, 0n, 0n, 0n]);
  assert.deepEqual(
    smContextEntry({ pdts: 2, pasidDir: 0x5000n, fpd: true, dte: true, paside: true, pre: true, ridPasid: 0x12345, ridPriv: true }),
    [0x541fn, 0x112345n, 0n, 0n],
  );
  assert.deepEqual(smContextEntry({ present: false, pdts: 0, pasidDir: 0n }), [0n, 0n, 0n, 0n]);
  assert.throws(() => smContextEntry({ pdts: 8, pasidDir: 0x5000n }), /does not fit a 3-bit field/);
  assert.throws(() => smContextEntry({ pdts: 0, pasidDir: 0x5000n, ridPasid: 0x100000 }), /does not fit a 20-bit field/);
  // 32 bytes per entry; devfn 128-255 index the upper table from 0.
  assert.equal(smContextEntryAddr(0x8000n, 3), 0x8060n);
  assert.equal(smContextEntryAddr(0x9000n, 0x83), 0x9060n);
});

test('PASID directory entry and its indexing', () => {
  assert.equal(pasidDirEntry({ table: 0x7000n }), 0x7001n);
  assert.equal(pasidDirEntry({ table: 0x7000n, fpd: true }), 0x7003n);
  assert.equal(pasidDirEntry({ table: 0x7000n, present: false }), 0x7000n);
  // PASID 0x1c5: directory index 7 (PASID[19:6]), table index 5 (PASID[5:0]).
  assert.equal(pasidDirEntryAddr(0x10000n, 0x1c5), 0x10038n);
  assert.equal(pasidEntryAddr(0x20000n, 0x1c5), 0x20140n);
});

test('PASID table entry: every PGTT, each field where pasid.h puts it', () => {
  // Second stage (PGTT 010): SSPTPTR, PGTT << 6, AW << 2, P; DID in QW1.
  assert.deepEqual(pasidEntry({ aw: 2, pgtt: PGTT_SECOND, did: 5, ssptptr: 0x9000n }), [0x9089n, 5n, 0n, 0n, 0n, 0n, 0n, 0n]);
  // First stage (PGTT 001): FSPTPTR in QW2.
  assert.deepEqual(pasidEntry({ aw: 2, pgtt: PGTT_FIRST, did: 5, fsptptr: 0xa000n }), [0x49n, 5n, 0xa000n, 0n, 0n, 0n, 0n, 0n]);
  // Nested (PGTT 011): both pointers.
  assert.deepEqual(pasidEntry({ aw: 3, pgtt: PGTT_NESTED, did: 0xffff, ssptptr: 0x9000n, fsptptr: 0xa000n }), [0x90cdn, 0xffffn, 0xa000n, 0n, 0n, 0n, 0n, 0n]);
  // Pass-through (PGTT 100), FPD set.
  assert.deepEqual(pasidEntry({ aw: 2, pgtt: PGTT_PT, did: 1, fpd: true }), [0x10bn, 1n, 0n, 0n, 0n, 0n, 0n, 0n]);
  // The flag bits: SSADE 9; PWSNP 87, PGSNP 88; SRE 128, ERE 129, FSPM 131:130, WPE 132, EAFE 135.
  const all = pasidEntry({ aw: 2, pgtt: PGTT_FIRST, did: 5, fsptptr: 0xa000n, ssade: true, pwsnp: true, pgsnp: true, sre: true, ere: true, fspm: 1, wpe: true, eafe: true });
  assert.deepEqual(all.slice(0, 3), [0x249n, 0x1800005n, 0xa097n]);
  assert.throws(() => pasidEntry({ aw: 2, pgtt: 8, did: 1 }), /3-bit field/);
  assert.throws(() => pasidEntry({ aw: 2, pgtt: 1, did: 0x10000 }), /16-bit field/);
});

test('first-stage paging entry: x86-64 flags and address', () => {
  assert.equal(fsEntry({ addr: 0x123000n, rw: true, us: true, a: true, d: true, xd: true }), 0x8000000000123067n);
  assert.equal(fsEntry({ addr: 0x200000n, ps: true, g: true, pwt: true, pcd: true }), 0x200199n);
  assert.equal(fsEntry({ addr: 0xfffffffff000n }), 0xfffffffff001n);
  assert.equal(fsEntry({ addr: 0x5000n, present: false }), 0x5000n);
  assert.throws(() => fsEntry({ addr: 1n << 52n }), /40-bit field/);
});

test('256-bit descriptors: PASID-based IOTLB (6), PASID cache (7), and types 1, 2, 4, 5 in DW = 1 form', () => {
  assert.deepEqual(piotlbDesc({ g: PIOTLB_G_PAGE, did: 5, pasid: 0, addr: 0x40000n, am: 2, ih: true }), [0x50036n, 0x40042n, 0n, 0n]);
  assert.deepEqual(piotlbDesc({ g: PIOTLB_G_PASID, did: 5, pasid: 0x12345 }), [0x0001234500050026n, 0n, 0n, 0n]);
  assert.deepEqual(pcDesc({ g: PC_G_PASID, did: 5, pasid: 0 }), [0x50017n, 0n, 0n, 0n]);
  assert.deepEqual(pcDesc({ g: PC_G_DOMAIN, did: 7 }), [0x70007n, 0n, 0n, 0n]);
  assert.deepEqual(pcDesc({ g: PC_G_GLOBAL }), [0x37n, 0n, 0n, 0n]);
  assert.deepEqual(wide(ccDesc(G_GLOBAL)), [0x11n, 0n, 0n, 0n]);
  assert.deepEqual(wide(iotlbDesc(G_DOMAIN, 5, 0n, { dr: true, dw: true })), [0x500e2n, 0n, 0n, 0n]);
  assert.deepEqual(wide(iecDesc()), [0x4n, 0n, 0n, 0n]);
  assert.deepEqual(wide(waitDesc({ sw: true, data: 2, addr: 0x3000n })), [0x200000025n, 0x3000n, 0n, 0n]);
  // The decoder reads back what the encoders wrote.
  assert.deepEqual(decodeDesc(0x0001234500050017n, 0n), { type: 7, pcG: 1, did: 5, pasid: 0x12345 });
  const d = decodeDesc(0x0001234500050036n, 0x40042n);
  assert.ok('pasid' in d && 'am' in d);
  assert.deepEqual([d.did, d.pasid, d.g, d.addr, d.am, d.ih], [5, 0x12345, 3, 0x40000n, 2, true]);
});

test('scalable-mode register values: RTADDR.TTM = 01, IQA.DW, 32-byte queue slots', () => {
  assert.equal(RTADDR_TTM_SM, 0x400n);
  assert.equal(IQA_DW, 0x800n);
  assert.equal(iqOffset256(3), 0x60n);
});
