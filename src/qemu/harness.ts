/**
 * The QEMU side of differential conformance testing: replays a vtd trace
 * (docs/trace-format.md) against QEMU's own intel-iommu and returns
 * QEMU's answers as canonical result lines, to be compared with ours.
 *
 * Method (vtd-digest.md §11.7): qemu-system-x86_64 -qtest stdio on a q35
 * machine with nothing on it but the remapping unit, one QEMU `edu` device per
 * requester id of the trace, and firmware/vtd-fw.bin, which halts the CPU
 * with interrupts, NMI, SMI and INIT blocked and never touches RAM. qtest
 * writes guest RAM and the unit's registers directly; DMAs and MSIs are
 * issued by programming the edu devices, and their outcome is read from the
 * `vtd_*` trace events and guest-error messages QEMU prints while executing
 * the command (see qtest.ts for why they arrive in order).
 *
 * What a result line means here, per op:
 *  - dma: vtd_dmar_fault → {"ok":false,"fault":N}; vtd_fault_disabled (FPD)
 *    → {"ok":false}; vtd_dmar_translate → {"ok":true,"gpa":G|(iova&M)},
 *    unless QEMU then refused the access on an IOTLB hit without a fault
 *    (it does not check rights on hits) → {"ok":false}; no event at all →
 *    not translated (TE off, pass-through fast path) → {"ok":true,"gpa":iova}.
 *  - msi: vtd_ir_remap_msi (...) -> (addr A, data D) → {"ok":true,...};
 *    vtd_frr_new (QEMU 10 records the fault) → {"ok":false,"fault":FR};
 *    neither → dropped → {"ok":false} (QEMU 7.2 never records IR faults).
 *  - rd: the register value under the op's mask; mrd: the bytes read.
 *
 * Two places where edu does more than the format's DMA (which only
 * translates): a 4096-byte DMA is issued as 4095 + 1 bytes (edu 7.2 aborts
 * otherwise), and after a device write the bytes it overwrote are written
 * back from a shadow of what the trace put in RAM (RamShadow), so memory stays
 * as the trace left it. A device write whose translated target is MMIO (a
 * BAR, the unit's own registers) does reach that device: traces avoid it.
 */
import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatRid, parseTrace, type Trace, type TraceConfig, type TraceOp } from '../trace/parse.js';
import { QemuError } from './errors.js';
import { QtestSession, type QtestReply } from './qtest.js';

export { QemuError, type QemuErrorCode } from './errors.js';

/**
 * The QEMU versions the harness drives. 7.2 is Debian 12's, on the PATH;
 * 10 is Debian 13's, run inside a Debian 13 root with chroot (see
 * scripts/install-test-deps.sh), since the two cannot be installed side by side.
 */
export type QemuVersion = '7.2' | '10';
export const QEMU_VERSIONS: readonly QemuVersion[] = ['7.2', '10'];
/** Where scripts/install-test-deps.sh puts the Debian 13 root holding QEMU 10 (env VTD_QEMU10_ROOT overrides). */
export const DEFAULT_QEMU10_ROOT = '/opt/vtd-wasm/qemu10';

export interface QemuRunOptions {
  /** Which QEMU to run ['7.2']. */
  version?: QemuVersion;
  /**
   * QEMU to run directly, without chroot [7.2: env VTD_QEMU, else
   * qemu-system-x86_64 on PATH; 10: none, QEMU 10 runs in `qemu10Root`].
   */
  qemuBinary?: string;
  /** Root directory holding QEMU 10 (version 10 without qemuBinary) [env VTD_QEMU10_ROOT, else /opt/vtd-wasm/qemu10]. */
  qemu10Root?: string;
  /** Limit for the whole run, start-up included; QEMU is killed past it [60000]. */
  timeoutMs?: number;
  /** Firmware image [firmware/out/vtd-fw.bin, built from firmware/ when missing or stale]. */
  firmware?: string;
  /** Echo every qtest command, answer and QEMU output line to stderr, with every vtd_* event enabled. */
  trace?: boolean;
}

/** Timings of one run, for measurement. */
export interface QemuRunStats {
  /** Spawn to first answer (QEMU start-up and machine creation). */
  startupMs: number;
  /** PCI set-up of root ports and edu devices. */
  setupMs: number;
  /** All trace operations. */
  opsMs: number;
  totalMs: number;
  ops: number;
  /** qtest commands sent. */
  commands: number;
  /** Time spent per op kind, and how many of each. */
  byOp: Record<string, { count: number; ms: number }>;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Where firmware/build.sh lives and puts its image. */
export const FIRMWARE_DIR = join(REPO_ROOT, 'firmware');
const DEFAULT_FIRMWARE = join(FIRMWARE_DIR, 'out', 'vtd-fw.bin');
const FIRMWARE_SOURCES = ['vtd-fw.S', 'build.sh'].map((f) => join(FIRMWARE_DIR, f));

const VTD_BASE = 0xfed90000n;
/** edu (QEMU72 hw/misc/edu.c): DMA registers, its buffer's bus address, the "raise interrupt" register. */
const EDU_DMA_SRC = 0x80n, EDU_DMA_DST = 0x88n, EDU_DMA_CNT = 0x90n, EDU_DMA_CMD = 0x98n, EDU_RAISE_IRQ = 0x60n;
const EDU_BUFFER = 0x40000n;
const EDU_CMD_RUN = 1n, EDU_CMD_TO_PCI = 2n;
/**
 * edu BARs (1 MiB each) go at 0xfd000000.. below the IOAPIC (0xfec00000):
 * inside q35's PCI hole, away from RAM and from every address the
 * conformance traces use as a DMA target.
 */
const BAR_BASE = 0xfd000000, BAR_SIZE = 0x100000, BAR_END = 0xfec00000;
/** q35 puts RAM above 4 GiB from here on (pc_q35_init: lowmem 0x80000000 when ram >= 0xb0000000). */
const Q35_LOWMEM_LIMIT = 0xb0000000n;

/** Events the results are read from; `trace: true` enables all vtd_* events instead. */
const TRACE_EVENTS = ['vtd_dmar_translate', 'vtd_dmar_fault', 'vtd_fault_disabled', 'vtd_iotlb_page_hit', 'vtd_ir_remap_msi', 'vtd_ir_remap_msi_req', 'vtd_frr_new'];

/**
 * How one QEMU is started: `program` with `prefix` before QEMU's own
 * arguments; `root` when it runs under chroot (files it reads must then be
 * inside that directory, named by their path there).
 */
export interface QemuCommand {
  version: QemuVersion;
  program: string;
  prefix: string[];
  root?: string;
  /** For messages: the command as a user would type it. */
  display: string;
}

export function qemuCommand(opts: QemuRunOptions = {}): QemuCommand {
  const version = opts.version ?? '7.2';
  if (!QEMU_VERSIONS.includes(version)) {
    throw new QemuError('UNSUPPORTED', `QEMU version ${String(version)}: the harness drives ${QEMU_VERSIONS.join(' and ')}`, { version });
  }
  if (version === '7.2' || opts.qemuBinary !== undefined) {
    const bin = opts.qemuBinary ?? process.env.VTD_QEMU ?? 'qemu-system-x86_64';
    return { version, program: bin, prefix: [], display: bin };
  }
  const root = opts.qemu10Root ?? process.env.VTD_QEMU10_ROOT ?? DEFAULT_QEMU10_ROOT;
  return { version, program: 'chroot', prefix: [root, 'qemu-system-x86_64'], root, display: `chroot ${root} qemu-system-x86_64` };
}

/** Does a `--version` string belong to the version asked for (7.2.x; 10.x)? */
function versionMatches(want: QemuVersion, got: string): boolean {
  return want === '7.2' ? /^7\.2(\.|$)/.test(got) : /^10\./.test(got);
}

/**
 * Whether QEMU can be run, and its version ("7.2.22", "10.0.13" ...). A
 * string argument is a binary to run as QEMU 7.2 (as before versions).
 */
export function qemuAvailable(which?: string | QemuRunOptions): { ok: true; version: string } | { ok: false; reason: string } {
  const opts: QemuRunOptions = typeof which === 'string' ? { qemuBinary: which } : which ?? {};
  let cmd: QemuCommand;
  try {
    cmd = qemuCommand(opts);
  } catch (e) {
    return { ok: false, reason: (e as QemuError).summary };
  }
  const install = 'npm test installs it; or run: sudo sh scripts/install-test-deps.sh';
  if (cmd.root !== undefined && !existsSync(join(cmd.root, 'usr', 'bin', 'qemu-system-x86_64'))) {
    return { ok: false, reason: `QEMU 10 is not installed: ${join(cmd.root, 'usr/bin/qemu-system-x86_64')} does not exist (${install}, which creates a Debian 13 root there with debootstrap; VTD_QEMU10_ROOT names another root)` };
  }
  const r = spawnSync(cmd.program, [...cmd.prefix, '--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) {
    const e = r.error as NodeJS.ErrnoException;
    const hint = e.code === 'ENOENT' ? ` (${install}, i.e. apt-get install -y qemu-system-x86)` : '';
    return { ok: false, reason: `cannot run ${cmd.display}: ${e.message}${hint}` };
  }
  const m = /QEMU emulator version (\S+)/.exec(r.stdout);
  if (r.status !== 0 || !m) {
    const why = cmd.root !== undefined && /Operation not permitted/.test(r.stderr) ? ' (chroot needs root: run as root, or give qemuBinary a QEMU 10 that runs directly)' : '';
    return { ok: false, reason: `${cmd.display} --version failed (status ${r.status})${why}: ${(r.stdout + r.stderr).trim().slice(0, 300)}` };
  }
  if (!versionMatches(cmd.version, m[1])) {
    return { ok: false, reason: `${cmd.display} is QEMU ${m[1]}, not QEMU ${cmd.version === '7.2' ? '7.2' : '10.x'} as asked (${cmd.version === '7.2' ? 'VTD_QEMU' : 'VTD_QEMU10_ROOT'} may name another)` };
  }
  return { ok: true, version: m[1] };
}

// ---------------------------------------------------------------- firmware

let firmwareBuild: Promise<string> | undefined;

function mtime(p: string): number {
  return existsSync(p) ? statSync(p).mtimeMs : -1;
}

/**
 * The firmware image to boot: `explicit` if given (it must exist), else the
 * default image, built by firmware/build.sh when missing or older than its
 * sources. The build runs at most once per process.
 */
export function ensureFirmware(explicit?: string): Promise<string> {
  if (explicit !== undefined) {
    if (!existsSync(explicit)) return Promise.reject(new QemuError('FIRMWARE', `firmware image ${explicit} does not exist`, { path: explicit }));
    return Promise.resolve(explicit);
  }
  const built = mtime(DEFAULT_FIRMWARE);
  if (built >= 0 && FIRMWARE_SOURCES.every((s) => mtime(s) <= built)) return Promise.resolve(DEFAULT_FIRMWARE);
  firmwareBuild ??= new Promise<string>((resolve, reject) => {
    execFile('/bin/sh', [join(FIRMWARE_DIR, 'build.sh')], { timeout: 60_000 }, (err, _stdout, stderr) => {
      if (err || !existsSync(DEFAULT_FIRMWARE)) {
        firmwareBuild = undefined;
        reject(new QemuError('FIRMWARE', `building the firmware with firmware/build.sh failed: ${err?.message ?? 'no image produced'}`, { tail: stderr.trim() }));
      } else resolve(DEFAULT_FIRMWARE);
    });
  });
  return firmwareBuild;
}

// ---------------------------------------------------------------- machine

/** One edu device standing for one requester id. */
interface EduPlan {
  sid: number;
  bus: number;
  dev: number;
  fn: number;
  /** BAR0 address. */
  bar: bigint;
  /** Capability offset of MSI, found at set-up. */
  msiCap: number;
}

/** A pcie-root-port on bus 0 whose secondary bus is `bus`. */
interface PortPlan {
  bus: number;
  slot: number;
  windowBase: number;
  windowLimit: number;
}

/** Everything QEMU is started with (but -bios and -trace), and where each device sits. */
export interface MachinePlan {
  args: string[];
  edus: Map<number, EduPlan>;
  ports: PortPlan[];
}

function unsupported(message: string, details: Record<string, unknown> = {}): never {
  throw new QemuError('UNSUPPORTED', message, details);
}

const onOff = (b: boolean): string => (b ? 'on' : 'off');
const hx = (v: bigint | number): string => '0x' + v.toString(16);

/**
 * The header's scalable-mode keys (sm, flts, pasid, nest: trace-format.md
 * "Scalable mode"). Read through this type so the harness works with a
 * trace parser that does not know all of them yet (absent = false).
 */
type SmKeys = { sm: boolean; flts?: boolean; pasid?: boolean; nest?: boolean };

/**
 * The -device intel-iommu option string for `version`, every option explicit
 * (QEMU's defaults differ from the format's). What that QEMU cannot do is
 * refused with the reason (UNSUPPORTED), before anything starts.
 */
export function iommuDevice(c: TraceConfig, version: QemuVersion = '7.2'): string {
  const q = `QEMU ${version}`;
  const k: SmKeys = c as TraceConfig & SmKeys;
  if (c.aw === 57) unsupported(`iommu.aw 57: ${q} supports aw-bits 39 and 48 only (5-level tables${k.sm ? ', 5-level first stage' : ''} are beyond QEMU)`);
  if (c.nfr !== 1) unsupported(`iommu.nfr ${c.nfr}: ${q} always has exactly one fault-recording register`);
  if (k.nest) unsupported(`iommu.nest: ${q} has no nested translation (PGTT 011); traces with nest run on this unit only`);
  if (version === '7.2' && (k.sm || k.flts || k.pasid)) {
    // 7.2's x-scalable-mode reports other CAP/ECAP than the format's table (QEMU 10's) and has no x-flts.
    unsupported(`iommu.${k.flts ? 'flts' : k.pasid ? 'pasid' : 'sm'}: scalable-mode traces run on QEMU 10 only (vtd conform --qemu-version 10); QEMU 7.2's scalable mode reports other capabilities and has no first stage`);
  }
  // The trace parser enforces these; repeated here so a hand-made Trace cannot start QEMU with options it refuses.
  if ((k.flts || k.pasid) && !k.sm) unsupported(`iommu.${k.flts ? 'flts' : 'pasid'} needs iommu.sm`);
  if (k.flts && c.aw !== 48) unsupported(`iommu.flts with aw ${c.aw}: QEMU 10's first stage needs aw-bits 48`);
  if (k.pasid && c.dt) unsupported('iommu.pasid with iommu.dt: QEMU 10 refuses x-pasid-mode with device-iotlb');
  const o = [
    `aw-bits=${c.aw}`,
    `caching-mode=${onOff(c.cm)}`,
    // intremap's default "auto" means on under TCG; the format's default is off.
    `intremap=${onOff(c.ir)}`,
    `eim=${onOff(c.eim)}`,
    // eim=on is refused under TCG unless this lifts the KVM split-irqchip check.
    `x-buggy-eim=${onOff(c.eim)}`,
    `pt=${onOff(c.pt)}`,
    `snoop-control=${onOff(c.sc)}`,
    `device-iotlb=${onOff(c.dt)}`,
    `x-scalable-mode=${onOff(c.sm)}`,
    `x-pasid-mode=${onOff(!!k.pasid)}`,
    ...(version === '10' ? [`x-flts=${onOff(!!k.flts)}`] : []),
    'dma-drain=on',
    'dma-translation=on',
    'version=0',
  ];
  return `intel-iommu,${o.join(',')}`;
}

/**
 * Where each requester id goes. Bus 0: edu at slot.function directly. Other
 * buses: a pcie-root-port on bus 0 whose secondary bus is that number, with
 * the edu at device 0 (a PCIe port has only device 0; more functions are
 * fine). Function 0 of a slot with several functions is multifunction.
 */
export function planMachine(trace: Trace, version: QemuVersion = '7.2'): MachinePlan {
  const c = trace.header.config;
  if (c.ram >= Q35_LOWMEM_LIMIT) {
    unsupported(`iommu.ram 0x${c.ram.toString(16)}: on q35, RAM from 0x80000000 moves above 4 GiB once it reaches 0xb0000000, so guest-physical addresses would not match`);
  }
  const sids = [...new Set(trace.header.devices)].sort((a, b) => a - b);
  const usedSlots0 = new Set<number>();
  for (const sid of sids) {
    const bus = sid >> 8, dev = (sid >> 3) & 0x1f;
    if (bus === 0) {
      // 00:00.0 is q35's host bridge and 00:1f.0 its LPC bridge.
      if (dev === 0 || dev === 0x1f) unsupported(`device ${formatRid(sid)}: slot 0x${dev.toString(16)} of bus 0 is taken by the q35 chipset`);
      usedSlots0.add(dev);
    } else if (dev !== 0) {
      unsupported(`device ${formatRid(sid)}: behind a PCIe root port only device 0 exists (functions 0-7 are fine)`);
    }
  }
  const buses = [...new Set(sids.map((s) => s >> 8))].filter((b) => b !== 0);
  // Root ports take free bus-0 slots from 0x1e down.
  let nextSlot = 0x1e;
  const portSlot = new Map<number, number>();
  for (const bus of buses) {
    while (usedSlots0.has(nextSlot)) nextSlot--;
    if (nextSlot < 1) unsupported('no free slot on bus 0 for another root port');
    portSlot.set(bus, nextSlot);
    usedSlots0.add(nextSlot);
    nextSlot--;
  }
  if (sids.length * BAR_SIZE > BAR_END - BAR_BASE) unsupported(`${sids.length} devices: at most ${(BAR_END - BAR_BASE) / BAR_SIZE} fit the BAR window`);

  // BARs in bus order, so each root port's devices are contiguous for its window.
  const edus = new Map<number, EduPlan>();
  let bar = BAR_BASE;
  for (const sid of sids) {
    edus.set(sid, { sid, bus: sid >> 8, dev: (sid >> 3) & 0x1f, fn: sid & 7, bar: BigInt(bar), msiCap: 0 });
    bar += BAR_SIZE;
  }
  const ports: PortPlan[] = buses.map((bus) => {
    const bars = [...edus.values()].filter((e) => e.bus === bus).map((e) => Number(e.bar));
    return { bus, slot: portSlot.get(bus)!, windowBase: Math.min(...bars), windowLimit: Math.max(...bars) + BAR_SIZE - 1 };
  });

  const devArgs: string[] = [];
  const multi = (e: EduPlan): boolean => e.fn === 0 && sids.some((s) => s !== e.sid && s >> 3 === e.sid >> 3);
  for (const p of ports) {
    devArgs.push('-device', `pcie-root-port,id=rp${p.bus},bus=pcie.0,addr=0x${p.slot.toString(16)}.0,chassis=${p.bus},slot=${p.bus}`);
  }
  for (const e of edus.values()) {
    const where = e.bus === 0 ? `addr=0x${e.dev.toString(16)}.${e.fn}` : `bus=rp${e.bus},addr=0x0.${e.fn}`;
    devArgs.push('-device', `edu,id=edu-${formatRid(e.sid).replace(/[:.]/g, '-')},${where},multifunction=${onOff(multi(e))},dma_mask=0xffffffffffffffff`);
  }

  const ramKiB = c.ram / 1024n;
  const args = [
    '-no-user-config', '-nodefaults', '-no-reboot', '-display', 'none',
    // No SMM, PIT, HPET, AHCI (it DMAs and faults once TE is on) or SMBus.
    '-machine', 'q35,smm=off,pit=off,hpet=off,sata=off,smbus=off',
    '-accel', 'tcg', '-cpu', 'qemu64', '-smp', '1',
    // The virtual clock jumps to the next timer while the CPU halts: edu's
    // 100 ms DMA timer fires at once, deterministically.
    '-icount', 'shift=0,sleep=off',
    '-m', `${ramKiB}K`,
    '-device', iommuDevice(c, version),
    ...devArgs,
    '-qtest', 'stdio', '-qtest-log', 'none',
    // QEMU 10 logs "Invalid read/write at addr" under its own item (7.2: under guest_errors).
    '-d', version === '10' ? 'guest_errors,invalid_mem' : 'guest_errors',
  ];
  return { args, edus, ports };
}

/** The QEMU command line for a trace, for reproducing a run by hand (pipe qtest commands into it). */
/**
 * The QEMU command line for a trace, for reproducing a run by hand (pipe
 * qtest commands into it). Under chroot (QEMU 10) the firmware is copied
 * into the root and left there for that command (ROOT/tmp/vtd-wasm-PID-N).
 */
export async function qemuCommandLine(traceText: string | Trace, opts: QemuRunOptions = {}): Promise<string[]> {
  const trace = typeof traceText === 'string' ? parseTrace(traceText) : traceText;
  const cmd = qemuCommand(opts);
  const plan = planMachine(trace, cmd.version);
  const fw = stageFirmware(cmd, await ensureFirmware(opts.firmware));
  return [cmd.program, ...cmd.prefix, ...plan.args, '-bios', fw.path, ...traceArgs(opts.trace ?? false)];
}

let stagings = 0;

/**
 * The firmware path as QEMU sees it. A QEMU under chroot reads only files
 * inside its root: the image is copied to ROOT/tmp/vtd-wasm-PID-N/, which
 * `cleanup` removes once QEMU is gone.
 */
function stageFirmware(cmd: QemuCommand, firmware: string): { path: string; cleanup(): void } {
  if (cmd.root === undefined) return { path: firmware, cleanup() {} };
  const inRoot = `/tmp/vtd-wasm-${process.pid}-${++stagings}`;
  const dir = join(cmd.root, inRoot);
  try {
    mkdirSync(dir, { recursive: true });
    copyFileSync(firmware, join(dir, 'vtd-fw.bin'));
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw new QemuError('FIRMWARE', `cannot copy the firmware into ${dir} (QEMU ${cmd.version} runs under chroot and reads only files inside ${cmd.root}): ${(e as Error).message}`, { path: dir });
  }
  return { path: `${inRoot}/vtd-fw.bin`, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function traceArgs(all: boolean): string[] {
  return all ? ['-trace', 'vtd_*'] : TRACE_EVENTS.flatMap((e) => ['-trace', e]);
}

// ---------------------------------------------------------------- results

type DmaOutcome = { ok: true; gpa: bigint } | { ok: false; fault?: number };

const RE_FAULT = /vtd_dmar_fault sid 0x[0-9a-f]+ fault (\d+)/;
const RE_TRANSLATE = /vtd_dmar_translate dev \S+ iova 0x([0-9a-f]+) -> gpa 0x([0-9a-f]+) mask 0x([0-9a-f]+)/;
const RE_INVALID = /Invalid (?:read|write) at addr 0x([0-9a-fA-F]+)/;
/** A fault record written (QEMU 10 records interrupt-remapping faults; FR is bits 39:32 of `high`). */
const RE_FRR_NEW = /vtd_frr_new index \d+ high 0x([0-9a-f]+) low 0x[0-9a-f]+/;
const RE_MSI = /vtd_ir_remap_msi \(addr 0x([0-9a-f]+), data 0x([0-9a-f]+)\) -> \(addr 0x([0-9a-f]+), data 0x([0-9a-f]+)\)/;

const inRange = (a: bigint, base: bigint, len: bigint): boolean => a >= base && a < base + len;

/** What the events printed while one edu transfer ran say about it. */
function dmaOutcome(events: string[], iova: bigint, len: number): DmaOutcome {
  let fault: number | undefined;
  let suppressed = false;
  let hit = false;
  let translated: { gpa: bigint; mask: bigint } | undefined;
  const invalid: bigint[] = [];
  for (const e of events) {
    let m: RegExpExecArray | null;
    if ((m = RE_FAULT.exec(e))) fault ??= Number(m[1]);
    else if (e.includes('vtd_fault_disabled')) suppressed = true;
    else if ((m = RE_TRANSLATE.exec(e))) translated ??= { gpa: BigInt('0x' + m[2]), mask: BigInt('0x' + m[3]) };
    else if (e.includes('vtd_iotlb_page_hit')) hit = true;
    else if ((m = RE_INVALID.exec(e))) invalid.push(BigInt('0x' + m[1]));
  }
  // A failed access is retried in 4-byte pieces, each with its own events,
  // all giving the same reason: the first one counts.
  if (fault !== undefined) return { ok: false, fault };
  if (suppressed) return { ok: false };
  if (!translated) return { ok: true, gpa: iova };
  const gpa = translated.gpa | (iova & translated.mask);
  // A refusal on an IOTLB hit: the memory core rejects the access at the
  // IOVA itself. An access rejected at the (different) GPA instead means the
  // translation worked and the target is just not memory: that is still ok.
  const n = BigInt(len);
  const refused = hit && invalid.some((a) => inRange(a, iova, n) && !(gpa !== iova && inRange(a, gpa, n)));
  return refused ? { ok: false } : { ok: true, gpa };
}

// ---------------------------------------------------------------- guest RAM shadow

/**
 * What the trace wrote to (or read from) guest RAM, page by page. QEMU's edu
 * really performs the DMAs, but in the trace format a DMA only translates
 * and leaves memory unchanged; after a device write the harness puts back
 * the bytes known to be there (RAM starts zeroed; the firmware writes none).
 */
class RamShadow {
  private readonly pages = new Map<bigint, Uint8Array>();

  write(gpa: bigint, data: Uint8Array): void {
    for (let i = 0; i < data.length; ) {
      const a = gpa + BigInt(i);
      const page = a >> 12n, off = Number(a & 0xfffn);
      let p = this.pages.get(page);
      if (!p) this.pages.set(page, (p = new Uint8Array(4096)));
      const n = Math.min(4096 - off, data.length - i);
      p.set(data.subarray(i, i + n), off);
      i += n;
    }
  }

  read(gpa: bigint, len: number): Uint8Array {
    const out = new Uint8Array(len);
    for (let i = 0; i < len; ) {
      const a = gpa + BigInt(i);
      const off = Number(a & 0xfffn);
      const n = Math.min(4096 - off, len - i);
      const p = this.pages.get(a >> 12n);
      if (p) out.set(p.subarray(off, off + n), i);
      i += n;
    }
    return out;
  }
}

function bytesHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

function hexBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const faultHex = (f: number): string => '0x' + f.toString(16).padStart(2, '0');

// ---------------------------------------------------------------- the run

class Runner {
  private readonly shadow = new RamShadow();
  private readonly msiState = new Map<number, { addr: bigint; data: bigint }>();

  constructor(private readonly s: QtestSession, private readonly plan: MachinePlan, private readonly ram: bigint) {}

  private async value(command: string): Promise<bigint> {
    const r = await this.s.cmd(command);
    const m = /^OK (0x[0-9a-fA-F]+)$/.exec(r.answer);
    if (!m) throw new QemuError('PROTOCOL', `expected a value for "${command}", got "${r.answer}"`, { command });
    return BigInt(m[1]);
  }

  // PCI configuration space through ports 0xcf8/0xcfc (no firmware set up ECAM).
  private cfgAddr(bus: number, dev: number, fn: number, reg: number): string {
    return hx((0x80000000 | (bus << 16) | (dev << 11) | (fn << 8) | (reg & 0xfc)) >>> 0);
  }

  private async cfgWrite(bus: number, dev: number, fn: number, reg: number, size: 1 | 2 | 4, val: number): Promise<void> {
    await this.s.cmd(`outl 0xcf8 ${this.cfgAddr(bus, dev, fn, reg)}`);
    await this.s.cmd(`out${size === 1 ? 'b' : size === 2 ? 'w' : 'l'} ${hx(0xcfc + (reg & 3))} ${hx(val >>> 0)}`);
  }

  private async cfgRead(bus: number, dev: number, fn: number, reg: number, size: 1 | 2 | 4): Promise<number> {
    await this.s.cmd(`outl 0xcf8 ${this.cfgAddr(bus, dev, fn, reg)}`);
    return Number(await this.value(`in${size === 1 ? 'b' : size === 2 ? 'w' : 'l'} ${hx(0xcfc + (reg & 3))}`));
  }

  /** Root ports: bus numbers, a memory window over their devices' BARs, memory and bus mastering on. */
  async setup(): Promise<void> {
    for (const p of this.plan.ports) {
      const w = (reg: number, size: 1 | 2 | 4, v: number) => this.cfgWrite(0, p.slot, 0, reg, size, v);
      await w(0x18, 1, 0); // primary bus
      await w(0x19, 1, p.bus); // secondary
      await w(0x1a, 1, p.bus); // subordinate
      await w(0x1c, 1, 0xf0); // I/O window off (base > limit)
      await w(0x1d, 1, 0x00);
      await w(0x20, 2, (p.windowBase >>> 16) & 0xfff0);
      await w(0x22, 2, (p.windowLimit >>> 16) & 0xfff0);
      await w(0x24, 2, 0xfff0); // prefetchable window off
      await w(0x26, 2, 0x0000);
      await w(0x04, 2, 0x0006); // memory space, bus master
    }
    for (const e of this.plan.edus.values()) {
      const id = await this.cfgRead(e.bus, e.dev, e.fn, 0x00, 4);
      if (id !== 0x11e81234) {
        throw new QemuError('PROTOCOL', `no edu device answers at ${formatRid(e.sid)} (config id 0x${id.toString(16)})`, { sid: formatRid(e.sid) });
      }
      await this.cfgWrite(e.bus, e.dev, e.fn, 0x10, 4, Number(e.bar));
      await this.cfgWrite(e.bus, e.dev, e.fn, 0x04, 2, 0x0006);
      // Find the MSI capability (ID 5) through the capability list.
      let cap = (await this.cfgRead(e.bus, e.dev, e.fn, 0x34, 1)) & 0xfc;
      for (let guard = 0; cap !== 0 && guard < 48; guard++) {
        if ((await this.cfgRead(e.bus, e.dev, e.fn, cap, 1)) === 0x05) break;
        cap = (await this.cfgRead(e.bus, e.dev, e.fn, cap + 1, 1)) & 0xfc;
      }
      if (cap === 0) throw new QemuError('PROTOCOL', `edu at ${formatRid(e.sid)} has no MSI capability`, {});
      const ctl = await this.cfgRead(e.bus, e.dev, e.fn, cap + 2, 2);
      if (!(ctl & 0x80)) throw new QemuError('PROTOCOL', `edu MSI at ${formatRid(e.sid)} is not 64-bit capable (control 0x${ctl.toString(16)})`, {});
      e.msiCap = cap;
      // Enabled with one vector (MME 0); address and data are set per msi op.
      await this.cfgWrite(e.bus, e.dev, e.fn, cap + 2, 2, (ctl & ~0x70) | 1);
    }
  }

  private edu(sid: number): EduPlan {
    const e = this.plan.edus.get(sid);
    if (!e) throw new QemuError('PROTOCOL', `no device for requester ${formatRid(sid)}`, {});
    return e;
  }

  private async writeRam(gpa: bigint, data: Uint8Array): Promise<void> {
    // qtest's `write ADDR SIZE 0xBYTES` takes the bytes in memory order.
    await this.s.cmd(`write ${hx(gpa)} ${data.length} 0x${bytesHex(data)}`);
  }

  /** One edu transfer of at most 4095 bytes; returns the events it caused. */
  private async transfer(e: EduPlan, iova: bigint, len: number, dir: 'r' | 'w'): Promise<string[]> {
    const bar = e.bar;
    // "r": the device reads memory (guest → edu buffer); "w": edu buffer → guest.
    await this.s.cmd(`writeq ${hx(bar + EDU_DMA_SRC)} ${hx(dir === 'r' ? iova : EDU_BUFFER)}`);
    await this.s.cmd(`writeq ${hx(bar + EDU_DMA_DST)} ${hx(dir === 'r' ? EDU_BUFFER : iova)}`);
    await this.s.cmd(`writeq ${hx(bar + EDU_DMA_CNT)} ${hx(len)}`);
    const events: string[] = [];
    const collect = (r: QtestReply) => events.push(...r.events);
    collect(await this.s.cmd(`writeq ${hx(bar + EDU_DMA_CMD)} ${hx(EDU_CMD_RUN | (dir === 'w' ? EDU_CMD_TO_PCI : 0n))}`));
    // The transfer runs from edu's timer, which fires once QEMU's main loop
    // turns (usually within a few polls). Past 50 polls, wait a
    // little between them; the run's timeout ends a transfer that never ends.
    for (let polls = 0; ; polls++) {
      const r = await this.s.cmd(`readq ${hx(bar + EDU_DMA_CMD)}`);
      collect(r);
      if ((BigInt(r.answer.slice(3)) & EDU_CMD_RUN) === 0n) break;
      if (polls > 50) await new Promise((res) => setTimeout(res, 1));
    }
    return events;
  }

  private async dma(op: Extract<TraceOp, { op: 'dma' }>): Promise<DmaOutcome> {
    const e = this.edu(op.sid);
    // edu 7.2 aborts on a transfer that ends exactly at the end of its 4 KiB
    // buffer (hw_error): a 4096-byte DMA is issued as 4095 + 1 bytes.
    const chunks: Array<[bigint, number]> = op.len === 4096 ? [[op.iova, 4095], [op.iova + 4095n, 1]] : [[op.iova, op.len]];
    let first: DmaOutcome | undefined;
    for (const [iova, len] of chunks) {
      const out = dmaOutcome(await this.transfer(e, iova, len, op.dir), iova, len);
      if (out.ok && op.dir === 'w') await this.restore(out.gpa, len);
      if (!first) first = out;
      if (!out.ok) return first.ok ? out : first;
    }
    return first!;
  }

  /** Puts back what a device write overwrote, where it was RAM. */
  private async restore(gpa: bigint, len: number): Promise<void> {
    const end = gpa + BigInt(len);
    if (end > this.ram) return;
    await this.writeRam(gpa, this.shadow.read(gpa, len));
  }

  private async msi(op: Extract<TraceOp, { op: 'msi' }>): Promise<string> {
    const e = this.edu(op.sid);
    const last = this.msiState.get(op.sid);
    if (!last || last.addr !== op.addr) {
      await this.cfgWrite(e.bus, e.dev, e.fn, e.msiCap + 4, 4, Number(op.addr & 0xffffffffn));
      await this.cfgWrite(e.bus, e.dev, e.fn, e.msiCap + 8, 4, Number(op.addr >> 32n));
    }
    if (!last || last.data !== op.data) await this.cfgWrite(e.bus, e.dev, e.fn, e.msiCap + 12, 2, Number(op.data));
    this.msiState.set(op.sid, { addr: op.addr, data: op.data });
    // edu sends its MSI synchronously while handling this write.
    const r = await this.s.cmd(`writel ${hx(e.bar + EDU_RAISE_IRQ)} 0x1`);
    for (const ev of r.events) {
      const m = RE_MSI.exec(ev);
      if (m && BigInt('0x' + m[1]) === op.addr && BigInt('0x' + m[2]) === op.data) {
        return `"ok":true,"addr":"${hx(BigInt('0x' + m[3]))}","data":"${hx(BigInt('0x' + m[4]))}"`;
      }
    }
    // QEMU logs no event for the reason of a blocked interrupt; QEMU 10 does
    // record it (7.2 never does), and the record names it. A fault it does not
    // record (FPD, a fault already pending) stays without a reason here.
    for (const ev of r.events) {
      const m = RE_FRR_NEW.exec(ev);
      if (m) return `"ok":false,"fault":"${faultHex(Number((BigInt('0x' + m[1]) >> 32n) & 0xffn))}"`;
    }
    return '"ok":false';
  }

  /** Executes one op; returns the fields of its result line, or undefined. */
  async step(op: TraceOp): Promise<string | undefined> {
    switch (op.op) {
      case 'mem':
        this.shadow.write(op.gpa, op.data);
        await this.writeRam(op.gpa, op.data);
        return undefined;
      case 'mrd': {
        const r = await this.s.cmd(`read ${hx(op.gpa)} ${op.len}`);
        const m = /^OK 0x([0-9a-fA-F]*)$/.exec(r.answer);
        if (!m || m[1].length !== op.len * 2) throw new QemuError('PROTOCOL', `read ${hx(op.gpa)} ${op.len}: unexpected answer "${r.answer.slice(0, 80)}"`, {});
        const hex = m[1].toLowerCase();
        this.shadow.write(op.gpa, hexBytes(hex));
        return `"hex":"${hex}"`;
      }
      case 'wr':
        await this.s.cmd(`${op.size === 4 ? 'writel' : 'writeq'} ${hx(VTD_BASE + BigInt(op.reg))} ${hx(op.val)}`);
        return undefined;
      case 'rd': {
        let v = await this.value(`${op.size === 4 ? 'readl' : 'readq'} ${hx(VTD_BASE + BigInt(op.reg))}`);
        if (op.mask !== undefined) v &= op.mask;
        return `"val":"${hx(v)}"`;
      }
      case 'dma': {
        const o = await this.dma(op);
        if (o.ok) return `"ok":true,"gpa":"${hx(o.gpa)}"`;
        return o.fault !== undefined ? `"ok":false,"fault":"${faultHex(o.fault)}"` : '"ok":false';
      }
      case 'msi':
        return this.msi(op);
      case 'attach':
      case 'map':
      case 'unmap':
        return preflightOp(op);
    }
  }
}

/** Rejects, before QEMU starts, ops this harness cannot express with QEMU 7.2. */
function preflightOp(op: TraceOp): undefined {
  const where = { op: op.index, line: op.line };
  switch (op.op) {
    case 'attach':
    case 'map':
    case 'unmap':
      unsupported(`op ${op.index} (trace line ${op.line}): ${op.op}: workload ops must be lowered to raw ops before they can run on QEMU`, where);
    case 'msi':
      // A PCI device's MSI reaches the unit's interrupt window only there, and
      // the MSI address register ignores bits 1:0.
      if (op.addr < 0xfee00000n || op.addr > 0xfeefffffn || (op.addr & 3n) !== 0n) {
        unsupported(`op ${op.index} (trace line ${op.line}): msi address ${hx(op.addr)} is outside 0xfee00000-0xfeeffffc or has bits 1:0 set`, where);
      }
      if (op.data > 0xffffn) unsupported(`op ${op.index} (trace line ${op.line}): msi data ${hx(op.data)} does not fit the 16-bit MSI data register`, where);
      return undefined;
    default:
      return undefined;
  }
}

function preflight(trace: Trace): void {
  for (const op of trace.ops) preflightOp(op);
}

/**
 * Runs a trace through QEMU's intel-iommu; returns the result lines (canonical
 * JSON as trace-format.md: {"i":N,"op":...}) and timings.
 */
export async function runTraceOnQemuWithStats(traceText: string | Trace, opts: QemuRunOptions = {}): Promise<{ results: string[]; stats: QemuRunStats }> {
  const t0 = performance.now();
  const trace = typeof traceText === 'string' ? parseTrace(traceText) : traceText;
  // What QEMU cannot express is refused before anything is started.
  const cmd = qemuCommand(opts);
  const plan = planMachine(trace, cmd.version);
  preflight(trace);
  const avail = qemuAvailable(opts);
  if (!avail.ok) throw new QemuError('QEMU_MISSING', avail.reason, { binary: cmd.display, version: cmd.version });
  const fw = stageFirmware(cmd, await ensureFirmware(opts.firmware));

  const log = opts.trace ? (l: string) => process.stderr.write(`qemu ${l}\n`) : undefined;
  const args = [...cmd.prefix, ...plan.args, '-bios', fw.path, ...traceArgs(opts.trace ?? false)];
  log?.(`$ ${cmd.program} ${args.join(' ')}`);
  const s = new QtestSession(cmd.program, args, log);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let current: TraceOp | undefined;
  const timer = setTimeout(() => {
    const where = current ? ` at op ${current.index} (${current.op}, trace line ${current.line})` : ' during start-up';
    s.abort('TIMEOUT', `QEMU run exceeded ${timeoutMs} ms${where}`, { timeoutMs, op: current?.index, line: current?.line });
  }, timeoutMs);
  const byOp: QemuRunStats['byOp'] = {};
  try {
    // The first answer means QEMU has started and built the machine.
    await s.cmd(`readl ${hx(VTD_BASE)}`);
    const t1 = performance.now();
    const runner = new Runner(s, plan, trace.header.config.ram);
    await runner.setup();
    const t2 = performance.now();
    const results: string[] = [];
    for (const op of trace.ops) {
      current = op;
      const ts = performance.now();
      let fields: string | undefined;
      try {
        fields = await runner.step(op);
      } catch (e) {
        throw e instanceof QemuError ? e.atOp(op.index, op.line) : e;
      }
      const k = (byOp[op.op] ??= { count: 0, ms: 0 });
      k.count++;
      k.ms += performance.now() - ts;
      if (fields !== undefined) results.push(`{"i":${op.index},"op":"${op.op}",${fields}}`);
    }
    const t3 = performance.now();
    return {
      results,
      stats: { startupMs: t1 - t0, setupMs: t2 - t1, opsMs: t3 - t2, totalMs: t3 - t0, ops: trace.ops.length, commands: s.commands, byOp },
    };
  } finally {
    clearTimeout(timer);
    await s.close();
    fw.cleanup();
  }
}

/** Runs a parsed-or-text trace through QEMU's intel-iommu and returns the result lines (same canonical JSON as trace-format.md: {"i":N,"op":...}). */
export async function runTraceOnQemu(traceText: string | Trace, opts?: QemuRunOptions): Promise<string[]> {
  return (await runTraceOnQemuWithStats(traceText, opts)).results;
}
