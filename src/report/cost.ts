/**
 * The cost model: each event kind of a replay times a per-event cost, with
 * defaults from published figures (each parameter names its source) and every
 * one overridable (`vtd replay --cost name=value`). The model is deliberately
 * linear and transparent: it says what a replay's counts cost under stated
 * assumptions, not what a given machine would measure.
 *
 * Browser-safe.
 */
import { VtdError } from '../errors.js';
import type { BackendMetrics, CostItem, CostParam, CostReport, GuestMetrics } from './types.js';

/** Parameter names, their defaults and where each default comes from. */
export const COST_DEFAULTS: Readonly<Record<string, CostParam>> = {
  cpuGHz: {
    value: 3.0, unit: 'GHz',
    source: 'assumed clock used to turn the cycle counts below into time; override to match the machine of interest',
  },
  guestOpCycles: {
    value: 3450, unit: 'cycles per guest map or unmap',
    source: 'half of ~6,900 cycles for one map+unmap of a page on bare metal (Amit et al., "vIOMMU: Efficient IOMMU Emulation", USENIX ATC 2011)',
  },
  trapCycles: {
    value: 28100, unit: 'cycles per trapped guest register write',
    source: 'ATC 2011: ~35,000 cycles per map+unmap under emulation minus ~6,900 on bare metal, attributed to the one trapped invalidation a strict map+unmap issues',
  },
  vfioUnmapNs: {
    value: 14000, unit: 'ns per VFIO unmap ioctl',
    source: '~14 us per VFIO_IOMMU_UNMAP_DMA measured with strace (qemu-devel, 2023)',
  },
  vfioMapNs: {
    value: 14000, unit: 'ns per VFIO map ioctl (before pinning)',
    source: 'assumed equal to the measured unmap ioctl (no published per-call figure without pinning)',
  },
  pinPageNs: {
    value: 2000, unit: 'ns per 4 KiB page pinned',
    source: '~2 us to pin a 4 KiB page (get_user_pages + accounting), as commonly quoted for VFIO type1 pinning',
  },
  walkEntryNs: {
    value: 100, unit: 'ns per guest table entry read by a shadow walk',
    source: "assumed: one guest-memory read through QEMU's address-space API (vtd_get_pte) per entry",
  },
};

export type CostOverrides = Readonly<Record<string, number>>;

/** Parses `name=value` overrides (from the command line); unknown names and bad numbers are errors. */
export function parseCostOverrides(specs: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const spec of specs) {
    const m = /^([A-Za-z]+)=([0-9]+(?:\.[0-9]+)?(?:e[0-9]+)?)$/.exec(spec);
    if (!m) throw new VtdError('ARGUMENT', `--cost takes name=value with a non-negative number, got ${JSON.stringify(spec)}`);
    if (!Object.hasOwn(COST_DEFAULTS, m[1])) {
      throw new VtdError('ARGUMENT', `--cost: unknown parameter ${m[1]} (known: ${Object.keys(COST_DEFAULTS).join(', ')})`);
    }
    out[m[1]] = Number(m[2]);
  }
  if (out.cpuGHz === 0) throw new VtdError('ARGUMENT', '--cost: cpuGHz must be above 0');
  return out;
}

/** The parameters in force: defaults with overrides applied (marked as such). */
export function costParams(overrides: CostOverrides = {}): Record<string, CostParam> {
  const p: Record<string, CostParam> = {};
  for (const [k, v] of Object.entries(COST_DEFAULTS)) {
    p[k] = Object.hasOwn(overrides, k) ? { ...v, value: overrides[k], source: `override (default ${v.value}: ${v.source})` } : { ...v };
  }
  return p;
}

/** The modelled cost of a replay's counts. */
export function modelCost(guest: GuestMetrics, backend: BackendMetrics | null, params: Record<string, CostParam>): CostReport {
  const nsPerCycle = 1 / params.cpuGHz.value;
  const items: CostItem[] = [];
  const add = (event: string, what: string, count: number, unitNs: number): void => {
    items.push({ event, what, count, unitNs, totalNs: count * unitNs });
  };
  add('guestOpCycles', 'guest driver map/unmap work (page-table updates)', guest.maps + guest.unmaps, params.guestOpCycles.value * nsPerCycle);
  add('trapCycles', 'trapped guest register writes (VM exits to the emulated unit)', guest.registerWrites, params.trapCycles.value * nsPerCycle);
  if (backend) {
    add('vfioMapNs', 'backend map calls', backend.maps, params.vfioMapNs.value);
    add('pinPageNs', '4 KiB pages pinned by backend maps', Math.ceil(backend.mapBytes / 4096), params.pinPageNs.value);
    add('vfioUnmapNs', 'backend unmap calls', backend.unmaps, params.vfioUnmapNs.value);
    add('walkEntryNs', 'guest table entries read by shadow walks', backend.syncEntriesRead, params.walkEntryNs.value);
  }
  const totalNs = items.reduce((s, i) => s + i.totalNs, 0);
  const ops = guest.maps + guest.unmaps;
  return { params, items, totalNs, perGuestOpNs: ops ? totalNs / ops : 0 };
}
