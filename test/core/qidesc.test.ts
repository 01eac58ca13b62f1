/**
 * Invalidation descriptors (assembly/qidesc.ts): the core derives each type's
 * reserved bits from its declared fields. Here the reserved bits are written
 * out from the descriptor tables (VT-d spec §6.5.2, digest §7.5) and every one
 * of the 128 bits of each type is tried on its own: a reserved bit must set
 * FSTS.IQE, a bit of a plain field must not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Iommu } from '../../src/index.js';

const GCMD = 0x18, FSTS = 0x34, IQH = 0x80, IQT = 0x88, IQA = 0x90;
const FSTS_IQE = 0x10;
const QUEUE = 0x180000n, STATUS = 0x181000n;
const SLOTS = 256; // IQA.QS = 0

/** Bits hi..lo (inclusive) as a list of bit numbers. */
function bits(hi: number, lo: number): number[] {
  return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
}

interface Layout {
  name: string;
  /** A valid descriptor of the type, [QW0, QW1]. */
  base: [bigint, bigint];
  /** Reserved bits, as numbered in the spec's table (QW1 bits are 64..127). */
  reserved: number[];
  /** Bits of fields whose every value is valid with `base`'s other fields. */
  free: number[];
}

const LAYOUTS: Layout[] = [
  {
    name: 'context-cache (0x1)',
    base: [0x1n | (1n << 4n), 0n], // global
    reserved: [...bits(15, 6), ...bits(63, 50), ...bits(127, 64)],
    free: [...bits(31, 16), ...bits(47, 32), ...bits(49, 48)], // DID, SID, FM
  },
  {
    name: 'IOTLB (0x2)',
    base: [0x2n | (1n << 4n), 0n], // global: AM is not checked
    reserved: [...bits(15, 8), ...bits(63, 32), ...bits(75, 71)],
    free: [6, 7, ...bits(31, 16), ...bits(69, 64), 70, ...bits(127, 76)], // DW, DR, DID, AM, IH, ADDR
  },
  {
    name: 'device-TLB (0x3)',
    base: [0x3n, 0n],
    reserved: [...bits(11, 4), ...bits(31, 21), ...bits(51, 48), ...bits(75, 65)],
    free: [...bits(15, 12), ...bits(20, 16), ...bits(47, 32), ...bits(63, 52), 64, ...bits(127, 76)],
  },
  {
    name: 'interrupt entry cache (0x4)',
    base: [0x4n, 0n], // global: IM is not checked
    reserved: [...bits(26, 5), ...bits(63, 48), ...bits(127, 64)],
    free: [4, ...bits(31, 27), ...bits(47, 32)], // G, IM, IIDX
  },
  {
    name: 'invalidation wait (0x5)',
    base: [0x5n | (1n << 5n), STATUS], // SW = 1 to a status dword in RAM
    // Bit 7 (PD, page-request drain) is reserved here: the unit has no page requests.
    reserved: [...bits(31, 7), 64, 65],
    free: [4, 6, ...bits(63, 32)], // IF, FN, status data
  },
];

function unit(): { u: Iommu; submit(lo: bigint, hi: bigint): boolean } {
  const u = Iommu.create({ aw: 48, ram: 0x4000000 });
  u.mmioWrite(IQA, 8, QUEUE);
  u.mmioWrite(GCMD, 4, 0x04000000); // QIE
  let tail = 0;
  return {
    u,
    /** Queues one descriptor; true when it set IQE (the slot is then replaced by a no-op wait and IQE cleared). */
    submit(lo: bigint, hi: bigint): boolean {
      const slot = QUEUE + BigInt(tail) * 16n;
      u.writeGuestQwords(slot, [lo, hi]);
      tail = (tail + 1) % SLOTS;
      u.mmioWrite(IQT, 8, BigInt(tail) << 4n);
      const iqe = (u.mmioRead32(FSTS) & FSTS_IQE) !== 0;
      if (iqe) {
        assert.equal(u.mmioRead(IQH, 8), slot - QUEUE, 'IQH stays on the descriptor that failed');
        u.writeGuestQwords(slot, [0x5n, 0n]);
        u.mmioWrite(FSTS, 4, FSTS_IQE);
      }
      assert.equal(u.mmioRead(IQH, 8), BigInt(tail) << 4n, 'the queue drained');
      return iqe;
    },
  };
}

for (const l of LAYOUTS) {
  test(`${l.name}: each reserved bit alone sets IQE, each bit of a field does not`, () => {
    const q = unit();
    assert.equal(q.submit(...l.base), false, 'the base descriptor is valid');
    for (const b of [...l.reserved, ...l.free]) {
      const d: [bigint, bigint] = [...l.base];
      d[b >> 6] ^= 1n << BigInt(b & 63);
      const where = b >= 64 ? `QW1 bit ${b - 64}` : `QW0 bit ${b}`;
      assert.equal(q.submit(...d), l.reserved.includes(b), `bit ${b} (${where})`);
    }
  });
}

test('the type extension bits 11:9 are reserved for every type', () => {
  const q = unit();
  for (const l of LAYOUTS) {
    for (const b of [9, 10, 11]) {
      assert.equal(q.submit(l.base[0] | (1n << BigInt(b)), l.base[1]), true, `${l.name}, bit ${b}`);
    }
  }
});
