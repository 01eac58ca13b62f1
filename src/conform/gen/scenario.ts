/**
 * The scenario fast-check draws for one conformance trace: a unit
 * configuration, requester ids, set-up choices and a list of abstract
 * actions with small random numbers (driver.ts interprets them; hostile.ts
 * the hostile ones).
 */
import fc from 'fast-check';

export interface GenOptions {
  hostile?: boolean;
  /** Most actions per trace [60]. */
  maxActions?: number;
  /**
   * Draw scalable-mode scenarios (sm, with flts or pasid as QEMU 10 offers
   * them) for about half the traces: for QEMU 10. Driver-like traces only.
   */
  scalable?: boolean;
}

/**
 * Requester ids the generator picks from: slots q35 leaves free; behind a
 * root port (bus > 0) only device 0. A function other than 0 comes with
 * function 0 of its device (PCI finds a device through its function 0).
 */
export const SID_POOL = [0x0018, 0x0020, 0x0019, 0x0028, 0x0100, 0x0201];

function withFunctionZero(sids: number[]): number[] {
  const out = new Set(sids);
  for (const s of sids) out.add(s & ~7);
  return [...out].sort((a, b) => a - b).slice(0, 5);
}

export interface Scenario {
  aw: 39 | 48;
  cm: boolean;
  ir: boolean;
  eim: boolean;
  pt: boolean;
  sc: boolean;
  dt: boolean;
  ram: bigint;
  /** Scalable mode (QEMU 10 only): first-stage tables with flts (aw 48), ECAP.PASID with pasid (not with dt). */
  sm?: boolean;
  flts?: boolean;
  pasid?: boolean;
  sids: number[];
  /** Set-up choices. */
  qiFirst: boolean;
  teAtStart: boolean;
  splitWrites: boolean;
  readCaps: boolean;
  actions: Action[];
}

/** An abstract action: its kind and random numbers the driver interprets. */
export interface Action {
  k: string;
  a: number;
  b: number;
  c: number;
  d: number;
}

const ACTIONS: Array<[string, number]> = [
  ['attach', 6], ['detach', 2], ['map', 14], ['unmap', 4], ['remap', 4], ['dma', 40], ['faults', 5], ['regs', 4],
  ['feRegs', 2], ['te', 2], ['srtp', 1], ['qi', 2], ['waitIf', 2], ['qiError', 1], ['flush', 2],
  ['irte', 8], ['msi', 16], ['irToggle', 2], ['cfi', 1], ['broken', 2],
];
const HOSTILE_ACTIONS: Array<[string, number]> = [
  ['garbageEntry', 6], ['garbageReg', 4], ['garbageDesc', 4], ['garbageIrte', 4], ['garbageMsi', 3], ['garbageDma', 3], ['window', 3],
];

function actionArb(hostile: boolean): fc.Arbitrary<Action> {
  const kinds = hostile ? [...ACTIONS, ...HOSTILE_ACTIONS] : ACTIONS;
  const n = fc.nat({ max: 0xffff });
  return fc.oneof(...kinds.map(([k, weight]) => ({ weight, arbitrary: fc.record({ k: fc.constant(k), a: n, b: n, c: n, d: fc.nat() }) })));
}

export function scenarioArb(opts: GenOptions = {}): fc.Arbitrary<Scenario> {
  const hostile = !!opts.hostile;
  return fc
    .record({
      aw: fc.constantFrom<39 | 48>(39, 48),
      cm: fc.boolean(),
      ir: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 2, arbitrary: fc.constant(false) }),
      eim: fc.boolean(),
      pt: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      sc: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      dt: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      ram: fc.constantFrom(0x10000000n, 0x4000000n, 0x20000000n),
      sids: fc.uniqueArray(fc.constantFrom(...SID_POOL), { minLength: 1, maxLength: 4 }),
      qiFirst: fc.boolean(),
      teAtStart: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      splitWrites: fc.boolean(),
      readCaps: fc.boolean(),
      actions: fc.array(actionArb(hostile), { minLength: 10, maxLength: opts.maxActions ?? 60 }),
    })
    .map((s) => ({ ...s, eim: s.ir && s.eim, sids: withFunctionZero(s.sids) }));
}

/**
 * A scenario that may be in scalable mode: the legacy scenario drawn first
 * (so the configuration and actions are those of the legacy seed), then the
 * scalable-mode keys, within what QEMU 10 runs (no nest, no aw 57; flts only
 * with aw 48; pasid not with dt).
 */
export function scalableScenarioArb(opts: GenOptions = {}): fc.Arbitrary<Scenario> {
  const sm = fc.record({ sm: fc.boolean(), flts: fc.boolean(), pasid: fc.oneof({ weight: 1, arbitrary: fc.constant(true) }, { weight: 2, arbitrary: fc.constant(false) }) });
  return fc.tuple(scenarioArb(opts), sm).map(([s, k]) => (k.sm ? { ...s, sm: true, flts: k.flts && s.aw === 48, pasid: k.pasid && !s.dt } : s));
}
