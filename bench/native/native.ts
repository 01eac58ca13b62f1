// Native C baseline for the benchmarks: builds bench/native/walk.c with gcc, writes table images in the format it
// reads, runs it and parses its one-line JSON report. See walk.c for the image format and the walk rules.

import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeImage {
  aw: 39 | 48 | 57;
  rta: bigint;
  /** gfn -> 4096 bytes of guest memory; frames not in the map read as zero */
  frames: Map<bigint, Uint8Array>;
  requests: { iova: bigint; sid: number; dir: 'r' | 'w' }[];
}

export interface NativeResult {
  nsPerOp: number;
  ops: number;
  checksum: bigint;
  faults: number;
}

export type TranslationResult = { ok: true; gpa: bigint } | { ok: false; fault: number };

const HERE = dirname(fileURLToPath(import.meta.url));
const SRC = join(HERE, 'walk.c');
const OUT_DIR = join(HERE, '..', 'out');
const BIN = join(OUT_DIR, 'walk');

const MAGIC = 0x56544431;
const HEADER_SIZE = 32;
const FRAME_REC_SIZE = 8 + 4096;
const REQ_REC_SIZE = 16;
const U64_MAX = (1n << 64n) - 1n;
export const FAULT_TAG = 0xfa17n << 48n;

/** Compiles walk.c into bench/out/walk unless the binary is newer than the source. Returns the binary path. */
export function buildNative(): string {
  mkdirSync(OUT_DIR, { recursive: true });
  if (existsSync(BIN) && statSync(BIN).mtimeMs >= statSync(SRC).mtimeMs) return BIN;
  // Build under a private name and rename, so a concurrent run never executes a half-written binary.
  const tmp = `${BIN}.tmp-${process.pid}`;
  const r = spawnSync('gcc', ['-O2', '-std=c11', '-o', tmp, SRC], { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run gcc: ${r.error.message}`);
  if (r.status !== 0) {
    try {
      unlinkSync(tmp);
    } catch {
      /* no partial binary */
    }
    throw new Error(`gcc failed building ${SRC} (exit ${r.status ?? r.signal}):\n${r.stderr}`);
  }
  renameSync(tmp, BIN);
  return BIN;
}

/** Writes img in the binary image format of walk.c (mode 0 = walk, 1 = hash lookup). */
export function writeImage(img: NativeImage, mode: 0 | 1, path: string): void {
  if (img.aw !== 39 && img.aw !== 48 && img.aw !== 57) throw new RangeError(`aw must be 39, 48 or 57, not ${img.aw}`);
  if (mode !== 0 && mode !== 1) throw new RangeError(`mode must be 0 or 1, not ${mode}`);
  if (img.rta < 0n || img.rta > U64_MAX) throw new RangeError(`rta out of range: ${img.rta}`);
  const nframes = img.frames.size;
  const nreq = img.requests.length;
  if (nframes > 0xffffffff || nreq > 0xffffffff) throw new RangeError('too many frames or requests for a u32 count');

  const fd = openSync(path, 'w');
  try {
    const head = Buffer.alloc(HEADER_SIZE);
    head.writeUInt32LE(MAGIC, 0);
    head.writeUInt32LE(1, 4);
    head.writeUInt32LE(img.aw, 8);
    head.writeUInt32LE(nframes, 12);
    head.writeUInt32LE(nreq, 16);
    head.writeUInt32LE(mode, 20);
    head.writeBigUInt64LE(img.rta, 24);
    writeSync(fd, head);

    // Frames and requests go out in chunks so that large images never need one huge buffer.
    const FRAMES_PER_CHUNK = 256;
    let chunk = Buffer.alloc(FRAMES_PER_CHUNK * FRAME_REC_SIZE);
    let used = 0;
    for (const [gfn, data] of img.frames) {
      if (gfn < 0n || gfn > U64_MAX) throw new RangeError(`gfn out of range: ${gfn}`);
      if (data.length !== 4096) throw new RangeError(`frame ${gfn.toString(16)} is ${data.length} bytes, not 4096`);
      chunk.writeBigUInt64LE(gfn, used);
      chunk.set(data, used + 8);
      used += FRAME_REC_SIZE;
      if (used === chunk.length) {
        writeSync(fd, chunk, 0, used);
        used = 0;
      }
    }
    if (used) writeSync(fd, chunk, 0, used);

    const REQS_PER_CHUNK = 65536;
    chunk = Buffer.alloc(Math.min(REQS_PER_CHUNK, Math.max(nreq, 1)) * REQ_REC_SIZE);
    used = 0;
    for (const [i, r] of img.requests.entries()) {
      if (r.iova < 0n || r.iova > U64_MAX) throw new RangeError(`request ${i}: iova out of range: ${r.iova}`);
      if (!Number.isInteger(r.sid) || r.sid < 0 || r.sid > 0xffff) throw new RangeError(`request ${i}: bad sid ${r.sid}`);
      if (r.dir !== 'r' && r.dir !== 'w') throw new RangeError(`request ${i}: bad dir ${String(r.dir)}`);
      chunk.writeBigUInt64LE(r.iova, used);
      chunk.writeUInt16LE(r.sid, used + 8);
      chunk.writeUInt8(r.dir === 'w' ? 1 : 0, used + 10);
      chunk.fill(0, used + 11, used + 16);
      used += REQ_REC_SIZE;
      if (used === chunk.length) {
        writeSync(fd, chunk, 0, used);
        used = 0;
      }
    }
    if (used) writeSync(fd, chunk, 0, used);
  } finally {
    closeSync(fd);
  }
}

let tempCounter = 0;

/** Runs the native walker over img: one untimed pass, then `iterations` timed passes of the request list. */
export function runNative(img: NativeImage, mode: 0 | 1, iterations: number): NativeResult {
  if (!Number.isSafeInteger(iterations) || iterations < 0) throw new RangeError(`bad iterations: ${iterations}`);
  const bin = buildNative();
  const path = join(OUT_DIR, `image-${process.pid}-${Date.now()}-${tempCounter++}.bin`);
  try {
    writeImage(img, mode, path);
    let stdout: string;
    try {
      stdout = execFileSync(bin, [path, String(iterations)], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        maxBuffer: 1 << 20,
      });
    } catch (e) {
      const err = e as { status?: number | null; stderr?: string; message: string };
      throw new Error(`native walker failed (exit ${err.status ?? '?'}): ${err.stderr?.trim() || err.message}`);
    }
    const line = stdout.trim().split('\n').pop() ?? '';
    let j: { ns_per_op: number; ops: number; checksum: string; faults: number };
    try {
      j = JSON.parse(line);
    } catch {
      throw new Error(`native walker printed no JSON: ${JSON.stringify(stdout)}`);
    }
    if (typeof j.ns_per_op !== 'number' || typeof j.ops !== 'number' || typeof j.checksum !== 'string' ||
      typeof j.faults !== 'number' || !/^0x[0-9a-f]+$/.test(j.checksum)) {
      throw new Error(`unexpected native walker output: ${line}`);
    }
    return { nsPerOp: j.ns_per_op, ops: j.ops, checksum: BigInt(j.checksum), faults: j.faults };
  } finally {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  }
}

/** XOR over all results of (ok ? gpa : 0xFA17 << 48 | fault code), the checksum walk.c prints for one pass. */
export function expectedChecksum(results: TranslationResult[]): bigint {
  let x = 0n;
  for (const r of results) x ^= r.ok ? r.gpa & U64_MAX : FAULT_TAG | BigInt(r.fault);
  return x;
}
