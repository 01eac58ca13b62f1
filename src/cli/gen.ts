/**
 * `vtd gen`: writes a seeded synthetic workload (src/sources/gen/,
 * docs/workloads/gen.md) to standard output or a file, streamed: a workload
 * of any length is written as it is generated, never held whole in memory.
 */
import { VtdError } from '../errors.js';
import { openOutput, parseCommandArgs, type OptionSpec } from './util.js';
import { GEN_KINDS, generate, genFlags, genOptionsFromArgs, type GenKind } from '../sources/gen/index.js';

export const usage = `  gen KIND               a seeded synthetic workload (attach/map/unmap/dma, docs/workloads/gen.md), KIND
                         network, storage or accelerator; the leading comment records every option
      --seed S           PRNG seed, 0 to 2^32-1 [1]; a seed always gives the same bytes
      --ops N            packets, requests or DMAs [network 10000, storage 10000, accelerator 100000]
      --out FILE         write to FILE instead of standard output, whole or not at all
      --rate N           device operations per second, recorded as rate=N/s for the cost model
                         [network 100000, storage 50000, accelerator 1000000]
      --device B:D.F     requester id [network 00:03.0, storage 01:00.0, accelerator 02:00.0]
      --domain N         domain id, 1 to 65535 [network 3, storage 7, accelerator 9]
      --cm / --no-cm     header caching mode [--cm]
      --aw 39|48|57      header address width [48]
      --ram BYTES        header guest RAM, e.g. 1G or 0x40000000 [1G]
      --flush-queue N    freed IOVAs wait for N more unmaps before reuse, as Linux's lazy mode
                         [0 with --cm (strict), 256 with --no-cm]; keep it equal to replay's --flush-queue
      --teardown         unmap everything at the end (the driver unloads) [off]
      --no-ring-dma      network, storage: no descriptor rings or queue DMAs [rings on]
    network (an e1000: RX buffer recycling with copybreak, TX cleanup in batches):
      --rx-ring N        RX descriptors, 48 to 4096 [256]
      --tx-ring N        TX descriptors, 48 to 4096 [256]
      --rx-fraction F    share of packets received [0.5]
      --packet-size S    imix (60/590/1514 bytes, 7:4:1), uniform or a fixed frame size [imix]
      --min-packet N     smallest frame, 60 to 1514 [60]
      --max-packet N     largest frame, 60 to 1514 [1514]
      --burst N          most packets per interrupt (NAPI poll), 1 to 64 [8]
      --tx-delay N       a sent packet is unmapped at the first poll N packets after it [16]
      --copybreak N      received frames up to N bytes keep their buffer mapped [256]
    storage (blk-mq with an NVMe-like queue; requests complete out of order):
      --qd N             requests in flight, 1 to 1024 [32]
      --min-size BYTES   smallest request [4K]
      --max-size BYTES   largest request, at most 4M [128K]
      --size-dist D      pow2 (powers of two) or uniform (any page count) [pow2]
      --read-fraction F  share of read requests (the device writes memory) [0.7]
      --contig F         chance that a request's next page physically follows the last [0.25]
    accelerator (few large long-lived buffers, many DMAs, occasional remaps):
      --buffers N        buffers, 1 to 256 [4]
      --min-size BYTES   smallest buffer, a multiple of 2M [64M]
      --max-size BYTES   largest buffer, a multiple of 2M [128M]
      --dma-read-fraction F   share of DMAs that read memory [0.5]
      --dma-len N        bytes per DMA, 1 to 4096 [4096]
      --pattern P        random or stream (sequential per buffer) [random]
      --remap-every N    replace one buffer after every N DMAs; 0 never [10000]
`;

interface Args { kind: GenKind; values: Map<string, string | boolean>; out?: string }

const ALL_FLAGS = new Map(GEN_KINDS.flatMap((k) => genFlags(k)).map((f) => [f.flag, f.bool]));

/** Every option of every kind (the kind checks its own), booleans with their --no- form, and --out. */
const OPTIONS: OptionSpec = { out: { type: 'string' } };
for (const [flag, bool] of ALL_FLAGS) {
  OPTIONS[flag] = { type: bool ? 'boolean' : 'string' };
  if (bool) OPTIONS[`no-${flag}`] = { type: 'boolean' };
}

function parseArgs(args: string[]): Args {
  const parsed = parseCommandArgs('gen', args, OPTIONS);
  const values = new Map<string, string | boolean>();
  for (const [name, v] of Object.entries(parsed.values)) {
    if (name === 'out' || v === undefined || Array.isArray(v)) continue;
    const negated = name.startsWith('no-') && ALL_FLAGS.get(name.slice(3)) === true;
    const flag = negated ? name.slice(3) : name;
    if (values.has(flag)) throw new VtdError('ARGUMENT', `gen: --${flag} given twice`);
    values.set(flag, negated ? false : v);
  }
  const kinds = parsed.positional;
  if (kinds.length !== 1 || !(GEN_KINDS as readonly string[]).includes(kinds[0])) {
    throw new VtdError('ARGUMENT', `gen takes one kind, ${GEN_KINDS.join(', ')}; got ${kinds.length ? kinds.map((k) => JSON.stringify(k)).join(' ') : 'none'}`);
  }
  const out = parsed.values.out;
  return { kind: kinds[0] as GenKind, values, out: typeof out === 'string' ? out : undefined };
}

export function run(args: string[]): number {
  const a = parseArgs(args);
  // Every option is validated here, before a byte is written; then the output is opened (a bad path fails here).
  const lines = generate(a.kind, genOptionsFromArgs(a.kind, a.values));
  const out = openOutput(a.out);
  try {
    let chunk = '';
    for (const line of lines) {
      chunk += line + '\n';
      if (chunk.length >= 1 << 16) {
        out.write(chunk);
        chunk = '';
      }
    }
    if (chunk) out.write(chunk);
    out.commit();
  } catch (e) {
    out.abort();
    throw e;
  }
  return 0;
}
