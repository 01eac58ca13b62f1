/**
 * Backends by name: what a caller (the replayer, the CLI) asks for when it
 * shadows a guest's domains, and the factory that builds one backend per
 * domain. The replayer takes a `BackendFactory` and names no concrete
 * backend; `backendFactory` turns the declarative choice ('type1' or
 * 'iommufd' and their options) into one.
 *
 * Browser-safe.
 */
import { DEFAULT_MAX_MAPPINGS, memlockLimitBytes, type Backend, type MemlockAccount } from './backend.js';
import { IommufdBackend, type IommufdOptions } from './iommufd.js';
import { Type1Backend, type Type1Options } from './type1.js';

/** A backend chosen by name, with the options of each kind (only the chosen kind's are read). */
export interface BackendSpec {
  backend: 'type1' | 'iommufd';
  type1?: Type1Options;
  iommufd?: IommufdOptions;
}

/** Builds the backend of one guest domain; all of them share the VMM process's locked-memory account. */
export interface BackendFactory {
  create(did: number, memlock: MemlockAccount): Backend;
  /** Most live mappings of one backend (container or IOAS), or null for none. */
  readonly liveLimit: number | null;
  /** The process's RLIMIT_MEMLOCK in bytes, or null when unlimited. */
  readonly pinnedLimit: bigint | null;
}

/** One container (type1) or IOAS (iommufd) per guest domain, as a VMM has one per vIOMMU address space. */
export function backendFactory(spec: BackendSpec): BackendFactory {
  return {
    create: (did, memlock) => spec.backend === 'type1'
      ? new Type1Backend({ ...spec.type1, memlockAccount: memlock, name: `vfio-type1 domain ${did}` })
      : new IommufdBackend({ ...spec.iommufd, memlockAccount: memlock, name: `iommufd domain ${did}` }),
    liveLimit: spec.backend === 'type1' ? (spec.type1?.dmaEntryLimit ?? 65535) : (spec.iommufd?.maxMappings ?? DEFAULT_MAX_MAPPINGS),
    pinnedLimit: memlockLimitBytes((spec.backend === 'type1' ? spec.type1 : spec.iommufd)?.memlockLimitKiB),
  };
}
