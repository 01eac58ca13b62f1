/**
 * Seeded synthetic workloads (docs/workloads/gen.md): what a guest driver of
 * a NIC, a disk or an accelerator does to its IOMMU domain, as trace lines
 * (`attach`, `map`, `unmap`, `dma`; docs/trace-format.md).
 *
 * Each generator models the Linux 6.1 DMA path it imitates: the driver's
 * buffer lifetimes (e1000 RX recycling and copybreak, TX cleanup in batches:
 * network.ts; blk-mq requests completing out of order: storage.ts;
 * long-lived accelerator buffers: accelerator.ts), dma-iommu's IOVA
 * allocator (iova.ts), and a page allocator over guest RAM (guest-ram.ts),
 * sharing one line stream (emit.ts). Options are one table (options.ts).
 * A seed gives the same bytes on every run; the output streams (`generate`
 * yields one line at a time).
 *
 * Browser-safe: no Node imports.
 */
import { Accelerator } from './accelerator.js';
import { Emitter } from './emit.js';
import { Network } from './network.js';
import { leadingComment, resolveGenOptions, type AnyOptions, type CommonGenOptions, type GenKind, type GenOptionsByKind } from './options.js';
import { Storage } from './storage.js';

export {
  GEN_VERSION, GEN_KINDS, genFlags, genOptionsFromArgs, resolveGenOptions,
  type GenKind, type CommonGenOptions, type NetworkGenOptions, type StorageGenOptions, type AcceleratorGenOptions, type GenOptionsByKind,
} from './options.js';
export { IovaDomain, q35ReservedIova, type IovaDomainOptions } from './iova.js';

/**
 * A workload as trace lines (no newlines), streamed: the leading comment,
 * the header, `attach`, then the workload. Options are validated before this
 * returns (VtdError('ARGUMENT')); lines are produced as they are pulled.
 */
export function generate<K extends GenKind>(kind: K, options: Partial<GenOptionsByKind[K]> = {}): Generator<string, void, undefined> {
  const o = resolveGenOptions(kind, options);
  return lines(kind, o);
}

function* lines(kind: GenKind, o: CommonGenOptions): Generator<string, void, undefined> {
  yield* leadingComment(kind, o as AnyOptions);
  const e = new Emitter(o);
  e.head();
  yield* e.drain();
  const g = kind === 'network' ? new Network(e) : kind === 'storage' ? new Storage(e) : new Accelerator(e);
  yield* g.run();
}

/** The whole workload as text, one line each, ending with a newline. */
export function generateText<K extends GenKind>(kind: K, options: Partial<GenOptionsByKind[K]> = {}): string {
  let s = '';
  for (const line of generate(kind, options)) s += line + '\n';
  return s;
}
