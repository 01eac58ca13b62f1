/**
 * Hostile generation (`hostile: true`): malformed values a driver would not
 * write: random bits in table entries, IRTEs and descriptors, random register
 * writes, and changes used without their invalidation (open windows). The
 * comparison (compare.ts, deviations.ts) classifies what these show.
 */
import {
  REG, FSTS_IQE, GCMD_PERSISTENT, GCMD_SIRTP, GCMD_SRTP, GCMD_TE, GSTS_CFIS, GSTS_IRES, GSTS_QIES, GSTS_TES, ADDR_MASK, WAIT_IF, WAIT_SW,
  contextEntryAddr, iqOffset, levelSpan, rootEntryAddr, slAddr, slEntry, slEntryAddr, waitDesc,
} from '../../guest/layout.js';
import { Driver, IR_BASE, QUEUE, STATUS, hx, irteAddr, rid, type Dice, type Domain, type Mapping } from './driver.js';
import type { Scenario } from './scenario.js';

export class HostileDriver extends Driver {
  constructor(sc: Scenario) {
    super(sc, true);
  }

  protected override hostileAction(kind: string, p: Dice): void {
    switch (kind) {
      case 'garbageEntry': return this.garbageEntry(p, true);
      case 'garbageReg': return this.garbageReg(p);
      case 'garbageDesc': return this.garbageDesc(p);
      case 'garbageIrte': return this.garbageIrte(p);
      case 'garbageMsi': return this.garbageMsi(p);
      case 'garbageDma': return this.garbageDma(p);
      case 'window': return this.window(p);
    }
  }

  private randomBits(p: Dice): bigint {
    const x = p.big(64);
    const r = p.int(6);
    if (r === 0) return (1n << 64n) - 1n;
    if (r === 1) return 1n << BigInt(p.int(64));
    return x;
  }

  /** Keeps an address the unit may read: below RAM (mostly) or below 0xb0000000; page-aligned fields only. */
  private tame(v: bigint, p: Dice): bigint {
    if (v === (1n << 64n) - 1n) return v; // all ones: reserved bits, never followed
    const addr = slAddr(v);
    // Below 2 GiB even a 1 GiB page stays clear of MMCONFIG and the devices (0xb0000000 up).
    if (addr < 0x80000000n && !(addr >= 0xa0000n && addr < 0x100000n)) return v;
    const safe = p.chance(0.8) ? (0x800000n + (addr % (this.sc.ram - 0x800000n))) & ~0xfffn : 0x1_0000_0000n + (addr & 0xffff000n);
    return (v & ~ADDR_MASK) | safe;
  }

  garbageEntry(p: Dice, invalidate: boolean): void {
    const cands: Array<[bigint, string, () => void]> = [];
    for (const [bus] of this.ctxTables) cands.push([rootEntryAddr(this.rta, bus), `root entry of bus ${bus}`, () => { this.pending.ctxAll = true; }]);
    for (const [sid, a] of this.attached) {
      cands.push([contextEntryAddr(this.ctxTables.get(sid >> 8)!, sid & 0xff) + (p.chance(0.5) ? 8n : 0n), `context entry of ${rid(sid)}`, () => { this.pending.ctx.push({ sid, did: a.domain.did }); this.pending.iotlbDids.add(a.domain.did); }]);
    }
    for (const d of this.xlateDomains()) {
      for (const m of d.maps.values()) {
        cands.push([this.leafAddr(d, m), `leaf of ${hx(m.iova)} in DID ${d.did}`, () => this.pending.iotlbDids.add(d.did)]);
      }
      cands.push([d.top + 8n * BigInt(p.int(4)), `top-level entry in DID ${d.did}`, () => this.pending.iotlbDids.add(d.did)]);
    }
    if (!cands.length) return;
    const [at, what, inv] = p.of(cands);
    const v = this.tame(this.randomBits(p), p);
    this.note(`HOSTILE: random bits in the ${what}${invalidate ? '' : ' (no invalidation: an open window)'}.`);
    this.memQ(at, [v]);
    if (invalidate) inv();
  }

  private leafAddr(d: Domain, m: Mapping): bigint {
    let table = d.top;
    for (let l = d.levels; l > m.level; l--) {
      table = slAddr(this.q(slEntryAddr(table, m.iova, l)));
      if (!this.tables.has(table)) return d.top; // hostile bits on the path: hit the top-level table instead
    }
    return slEntryAddr(table, m.iova, m.level);
  }

  garbageReg(p: Dice): void {
    const regs = [0x18, 0x20, 0x24, 0x28, 0x2c, 0x34, 0x38, 0x3c, 0x40, 0x44, 0x64, 0x80, 0x88, 0x90, 0x94, 0x9c, 0xa0, 0xa4, 0xa8, 0xac, 0xb8, 0xbc, 0xf0, 0xf4, 0xf8, 0xfc, 0x220, 0x228, 0x22c, 0x100, 0x230];
    const reg = p.of(regs);
    let v = BigInt(p.next() >>> 0);
    if (p.chance(0.5)) v &= BigInt(p.next() >>> 0);
    // Keep addresses the unit would use inside what the format defines.
    if (reg === REG.RTADDR || reg === REG.IQA || reg === REG.IRTA) v = this.tame(v, p);
    if (reg === REG.RTADDR + 4 || reg === REG.IQA + 4 || reg === REG.IRTA + 4) v = p.chance(0.7) ? 0n : v & 0xffn;
    if (reg === REG.GCMD) v &= ~BigInt(GCMD_SRTP | GCMD_SIRTP) & 0xffffffffn; // latching random tables would leave the model
    this.note(`HOSTILE: register ${hx(reg)} <- ${hx(v)}.`);
    this.wr(reg, 4, v);
    this.rd(reg, 4);
    if (reg === REG.GCMD) {
      // Re-synchronise the model with what the unit now has enabled.
      const gsts = this.core.mmioRead32(REG.GSTS);
      this.gcmd = gsts & GCMD_PERSISTENT;
      this.te = (gsts & GSTS_TES) !== 0;
      this.qi.on = (gsts & GSTS_QIES) !== 0;
      this.ir.on = (gsts & GSTS_IRES) !== 0;
      this.ir.cfi = (gsts & GSTS_CFIS) !== 0;
      this.rd(REG.GSTS, 4);
    }
  }

  garbageDesc(p: Dice): void {
    if (!this.qi.on) this.qiEnable(p);
    this.flush(p);
    let lo = this.randomBits(p), hi = this.randomBits(p);
    // Types 1-5 mostly; 0 and 8 (invalid everywhere); rarely 6 and 7 (QEMU accepts them: the comparison stops there).
    const t = p.of([1, 1, 2, 2, 2, 3, 4, 4, 5, 5, 5, 0, 8, 1, 2, 4, 5, 3, 2, 6, 7].slice(0, p.chance(0.3) ? 21 : 19));
    lo = (lo & ~0xfn) | BigInt(t);
    if (t === 4 && p.chance(0.7)) lo &= 0x0000_ffff_f800_001fn; // QEMU does not check IEC descriptors: mostly valid ones
    if (t === 5) {
      // Never both SW and IF (QEMU 7.2 aborts); a status write only into RAM.
      if ((lo & (WAIT_IF | WAIT_SW)) === (WAIT_IF | WAIT_SW)) lo &= ~WAIT_IF;
      if (lo & WAIT_SW) hi = STATUS + 0x100n + (hi & 0xff8n);
    }
    if (p.chance(0.6)) lo &= 0xffff_ffff_0000_0fffn; // fewer reserved bits, more accepted descriptors
    const bad = this.qi.tail;
    this.note(`HOSTILE: a random descriptor of type ${t} at slot ${bad}.`);
    const size = 256 << this.qi.qs;
    this.memQ(QUEUE + 16n * BigInt(bad), [lo, hi]);
    this.qi.tail = (this.qi.tail + 1) % size;
    this.wr64(REG.IQT, iqOffset(this.qi.tail), false);
    this.qi.lastWait = t === 5;
    this.rd(REG.IQH, 8);
    this.rd(REG.FSTS, 4);
    // Whatever happened, put a wait there and carry on (recovery as in qiError).
    this.note('Recovery: a wait in its place, clear IQE, the tail again.');
    this.memQ(QUEUE + 16n * BigInt(bad), waitDesc({ sw: true, data: this.qi.status++, addr: STATUS + 0x200n }));
    this.wr(REG.FSTS, 4, FSTS_IQE);
    this.wr64(REG.IQT, iqOffset(this.qi.tail), false);
    this.qi.lastWait = true;
  }

  garbageIrte(p: Dice): void {
    if (!this.sc.ir) return;
    if (!this.ir.latched) this.irSetup(p);
    const index = p.int(this.irtEntries());
    const at = irteAddr(index);
    const v = [this.randomBits(p) | (p.chance(0.7) ? 1n : 0n), this.randomBits(p) & (p.chance(0.6) ? 0xfffffn : (1n << 64n) - 1n)];
    const present = (this.q(at) & 1n) === 1n;
    this.note(`HOSTILE: random bits in IRTE ${index}.`);
    this.memQ(at, v);
    this.ir.irtes.set(index, [v[0], v[1]]);
    if (present) this.pending.iec.push(index);
    this.msiAction(p);
  }

  garbageMsi(p: Dice): void {
    this.flush(p);
    const sid = p.of(this.sc.sids);
    const addr = IR_BASE | (BigInt(p.next()) & 0xffffcn);
    this.note(`HOSTILE: MSI from ${rid(sid)} with random address bits.`);
    this.msi(sid, addr, p.int(0x10000));
  }

  garbageDma(p: Dice): void {
    this.flush(p);
    const sid = p.of(this.sc.sids);
    const dir: 'r' | 'w' = p.chance(0.5) ? 'r' : 'w';
    const iova = (p.big(64) >> BigInt(p.int(40))) & ~0x7n;
    this.note(`HOSTILE: DMA ${dir === 'r' ? 'read' : 'write'} by ${rid(sid)} at a random address.`);
    this.safeDma(sid, iova, 8, dir, p);
  }

  window(p: Dice): void {
    const r = p.int(10);
    if (r < 2 && this.sc.ir && this.ir.on) return this.irteWindow(p);
    // A translation in use changes and is used again before its invalidation: an open window
    // (sometimes with an SRTP or a TE toggle in between, which flush QEMU's caches).
    const doms = this.xlateDomains().filter((d) => d.maps.size && [...this.attached.values()].some((a) => a.domain === d));
    if (!doms.length) return this.garbageEntry(p, false);
    this.flush(p);
    const dom = p.of(doms);
    const sid = p.of([...this.attached].filter(([, a]) => a.domain === dom).map(([s]) => s));
    const m = p.of([...dom.maps.values()]);
    const iova = m.iova + (m.level === 3 && m.frame === 0n ? this.frame(p, 1) : 0n);
    const dir: 'r' | 'w' = p.chance(0.5) ? 'r' : 'w';
    this.note(`HOSTILE: a DMA through the mapping of ${hx(m.iova)} (it may be cached now).`);
    this.safeDma(sid, iova, 8, dir, p);
    const at = this.leafAddr(dom, m);
    const v = p.chance(0.3) ? 0n : p.chance(0.5) ? this.tame(this.randomBits(p), p) : slEntry(this.frame(p, m.level), p.of([1, 2, 3]), m.level > 1);
    this.note(`HOSTILE: its leaf changes with no invalidation yet (an open window), and the same DMA again.`);
    this.memQ(at, [v]);
    if (r >= 8) {
      if (r === 8) this.gcmdWrite(GCMD_SRTP, 'GCMD.SRTP (same root table)');
      else {
        this.setPersistent(GCMD_TE, false, 'GCMD without TE');
        this.setPersistent(GCMD_TE, true, 'GCMD.TE again');
        this.te = true;
      }
    }
    this.safeDma(sid, iova, 8, p.chance(0.7) ? dir : dir === 'r' ? 'w' : 'r', p);
    this.pending.iotlb.push({ did: dom.did, addr: m.iova & ~(levelSpan(m.level) - 1n), am: 9 * (m.level - 1) });
    dom.maps.delete(m.iova);
  }

  /** An IRTE in use changes and is used before its IEC invalidation. */
  private irteWindow(p: Dice): void {
    const known = [...this.ir.irtes.entries()].filter(([, v]) => v[0] & 1n);
    if (!known.length) return;
    this.flush(p);
    const [index] = p.of(known);
    const sid = p.of(this.sc.sids);
    const addr = IR_BASE | (BigInt(index & 0x7fff) << 5n) | 0x10n;
    this.note(`HOSTILE: an MSI through IRTE ${index} (it may be cached now).`);
    this.msi(sid, addr, 0);
    this.setIrte(index, p, p.chance(0.3));
    this.note('HOSTILE: the IRTE changed with no IEC invalidation yet (an open window): the same MSI again.');
    this.msi(sid, addr, 0);
  }
}
