/**
 * Random conformance traces from fast-check arbitraries.
 *
 * fast-check draws a scenario: a unit configuration, a set of requester ids,
 * a few set-up choices and a list of abstract actions ("attach device 2 to a
 * new domain", "map a 2 MiB page", "DMA through a mapping", "change an IRTE",
 * ...), each with small random numbers. A guest-driver model (`Driver`)
 * lowers the actions into raw trace ops the way a driver programs the unit:
 * build the tables, latch them, invalidate, enable; and for every change to
 * a present entry, the covering invalidation before the next request
 * (change -> invalidate -> use), so a driver-like trace never observes an
 * open window (trace-format.md). Actions that do not apply to the current
 * state are interpreted modulo what exists, so every drawn list is a valid
 * trace and fast-check can shrink it freely.
 *
 * The model also keeps traces inside what QEMU 7.2 and the harness can run
 * and what the format defines: aw 39/48, one fault record, RAM below
 * 0xb0000000, devices at slots the q35 machine leaves free, MSIs in
 * 0xfee00000-0xfeeffffc with 16-bit data, DMAs not crossing 4 KiB, device
 * writes only to RAM outside 0xa0000-0xfffff, status writes only to RAM, no
 * wait descriptor with both SW and IF and no 8-byte writes to FECTL/IECTL/
 * IEADDR (QEMU 7.2 aborts on both).
 *
 * Hostile mode (`hostile: true`, labelled in the trace header comment) adds
 * malformed values: random bits in table entries, IRTEs and descriptors,
 * random register writes, and changes used without their invalidation (open
 * windows). The comparison classifies what these show.
 *
 * Modules: scenario.ts (the arbitraries), driver.ts (the driver model),
 * hostile.ts (hostile actions), render.ts (the trace text); this one builds
 * a trace from a scenario.
 */
import fc from 'fast-check';
import type { HeaderOptions } from '../../trace/write.js';
import { REG } from '../../guest/layout.js';
import { Dice, Driver } from './driver.js';
import { HostileDriver } from './hostile.js';
import type { GeneratedTrace } from './render.js';
import { scalableScenarioArb, scenarioArb, type GenOptions, type Scenario } from './scenario.js';
import { SmDriver } from './sm.js';

export { renderTrace, type Unit, type GeneratedTrace } from './render.js';
export { scenarioArb, scalableScenarioArb, type Scenario, type Action, type GenOptions } from './scenario.js';
export { Driver } from './driver.js';

export function traceArbitrary(opts: GenOptions = {}): fc.Arbitrary<GeneratedTrace> {
  const scenarios = opts.scalable && !opts.hostile ? scalableScenarioArb(opts) : scenarioArb(opts);
  return scenarios.map((s) => buildTrace(s, !!opts.hostile));
}

/** The trace of one seed: the same seed always gives the same trace. */
export function traceForSeed(seed: number, opts: GenOptions = {}): GeneratedTrace {
  return fc.sample(traceArbitrary(opts), { seed, numRuns: 1 })[0];
}

export function buildTrace(s: Scenario, hostile: boolean): GeneratedTrace {
  if (hostile && s.sm) throw new Error('conform generator: hostile traces are legacy-mode only');
  const d = hostile ? new HostileDriver(s) : s.sm ? new SmDriver(s) : new Driver(s, false);
  d.preamble();
  for (const a of s.actions) d.run(a);
  // Finish like a driver: whatever is pending gets invalidated, then a last look at the fault state.
  d.flush(new Dice({ k: 'end', a: 1, b: 2, c: 3, d: s.actions.length }));
  d.note('Final fault state.');
  d.rd(REG.FSTS, 4);
  d.rd(REG.GSTS, 4);
  const iommu: HeaderOptions = { aw: s.aw };
  if (s.cm) iommu.cm = true;
  if (s.ir) iommu.ir = true;
  if (s.eim) iommu.eim = true;
  if (!s.pt) iommu.pt = false;
  if (s.sc) iommu.sc = true;
  if (s.dt) iommu.dt = true;
  if (s.sm) iommu.sm = true;
  if (s.flts) iommu.flts = true;
  if (s.pasid) iommu.pasid = true;
  if (s.ram !== 0x10000000n) iommu.ram = s.ram;
  return { header: { iommu, devices: [...s.sids] }, units: d.units, hostile };
}
