import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { DatarootError } from '../formats/errors.js';
import { alignedWrites, nativePath } from './native.js';

/**
 * Compresses and writes chunks of content into a pack file on worker threads, so that reading
 * and hashing (the main thread) and compressing and writing (the workers) proceed together.
 * Content travels in slots: fixed-size buffers the main thread fills with one or more pieces and
 * hands over (transferred, not copied); a worker compresses each piece (zstd, or brotli without
 * libzstd; kept raw when that saves less than a tenth), reserves room in the pack with an atomic
 * counter shared by every thread, writes it there, and hands the slot back. Slots are reused:
 * reading a gigabyte allocates a few megabytes.
 */

/**
 * The snapshot store's default zstd level: a fast negative level (`snapshot --compress-level`
 * chooses another). Content is read once and stored once; a level that compresses harder costs
 * more than reading the tree.
 */
export const ZSTD_LEVEL = -2;

/** The levels a snapshot may ask for: zstd's fast levels down to -100, up to 19. */
export const ZSTD_LEVELS = { min: -100, max: 19 } as const;

export interface Piece {
  id: number;
  off: number;
  len: number;
}

export interface PieceResult {
  id: number;
  offset: number;
  stored: number;
  raw: number;
  method: number;
}

const WORKER = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const zlib = require('node:zlib');
const addon = workerData.addon ? require(workerData.addon) : undefined;
const zstd = addon && addon.zstdCompressInto ? addon : undefined;
const writeback = addon && addon.startWriteback ? addon.startWriteback : undefined;
// An aligned pool writes with O_DIRECT: the pack goes from this thread's buffer to the disk without
// a copy into the page cache (and without evicting the page cache of the tree being read). Every
// write then starts on a 4096-byte boundary and is padded to one; a file system that refuses a
// direct write gets buffered ones from then on, still padded.
let aligned = workerData.aligned && addon && addon.alignedBuffer;
let direct = false;
let fd;
if (aligned) {
  try {
    fd = fs.openSync(workerData.pack, fs.constants.O_RDWR | fs.constants.O_DIRECT);
    direct = true;
  } catch {
    direct = false;
  }
}
if (!direct) fd = fs.openSync(workerData.pack, 'r+');
const counter = new BigInt64Array(workerData.counter);
// Everything one slot becomes, written with one pwrite: many small writes to one file contend.
// A piece is compressed straight into it (room for zstd's bound of a whole slot).
const outSize = workerData.slotSize + (workerData.slotSize >> 7) + 65536 + 4096;
const out = aligned ? addon.alignedBuffer(outSize) : Buffer.allocUnsafe(outSize);
function writeAt(b, at) {
  let off = 0;
  while (off < b.length) {
    try {
      off += fs.writeSync(fd, b, off, b.length - off, at + off);
    } catch (e) {
      if (!direct || e.code !== 'EINVAL') throw e;
      fs.closeSync(fd);
      fd = fs.openSync(workerData.pack, 'r+');
      direct = false;
    }
  }
}
parentPort.on('message', (m) => {
  const buf = Buffer.from(m.buf);
  const placed = [];
  let used = 0;
  try {
    for (const p of m.pieces) {
      const raw = buf.subarray(p.off, p.off + p.len);
      let stored = raw.length;
      let method = 0;
      if (raw.length >= 64) {
        if (zstd) {
          const n = zstd.zstdCompressInto(raw, out.subarray(used), workerData.level);
          if (n > 0 && n <= raw.length * 0.9) { stored = n; method = 1; }
        } else {
          const c = zlib.brotliCompressSync(raw, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 0 } });
          if (c.length <= raw.length * 0.9) { c.copy(out, used); stored = c.length; method = 2; }
        }
      }
      if (method === 0) raw.copy(out, used);
      placed.push({ id: p.id, at: used, stored, raw: raw.length, method });
      used += stored;
    }
    let len = used;
    if (workerData.aligned) {
      len = (used + 4095) & ~4095;
      out.fill(0, used, len);
    }
    const base = Number(Atomics.add(counter, 0, BigInt(len)));
    writeAt(out.subarray(0, len), base);
    // The disk starts on this range now; the fsync at the end then waits for the last ones only.
    if (writeback && !direct) writeback(fd, base, len);
    const results = placed.map((x) => ({ id: x.id, offset: base + x.at, stored: x.stored, raw: x.raw, method: x.method }));
    parentPort.postMessage({ buf: m.buf, results }, [m.buf]);
  } catch (e) {
    parentPort.postMessage({ buf: m.buf, results: [], error: String((e && e.message) || e) }, [m.buf]);
  }
});
`;

export class PackPool {
  private readonly workers: Worker[] = [];
  private readonly free: ArrayBuffer[] = [];
  private waiting: (() => void)[] = [];
  private outstanding = 0;
  private next = 0;
  private failure: DatarootError | undefined;
  readonly results: PieceResult[] = [];
  private readonly counter: BigInt64Array;

  private readonly shared: SharedArrayBuffer;
  private slotsLeft: number;
  /** Whether every write of the workers starts on a 4096-byte boundary (they then write with O_DIRECT). */
  readonly aligned: boolean;

  /** Workers start with the first slot submitted: a run with nothing new to store starts none. */
  constructor(
    private readonly pack: string,
    start: number,
    readonly slotSize: number,
    private readonly level = ZSTD_LEVEL,
    slots = 8,
    private readonly workerCount = Math.max(2, Math.min(4, availableParallelism() + 1)),
  ) {
    this.shared = new SharedArrayBuffer(8);
    this.counter = new BigInt64Array(this.shared);
    this.aligned = alignedWrites();
    this.counter[0] = BigInt(this.aligned ? Math.ceil(start / 4096) * 4096 : start);
    this.slotsLeft = slots;
  }

  private start(): void {
    const pack = this.pack;
    const shared = this.shared;
    const slotSize = this.slotSize;
    const addon = nativePath();
    for (let i = 0; i < this.workerCount; i++) {
      const w = new Worker(WORKER, { eval: true, workerData: { pack, counter: shared, slotSize, addon, aligned: this.aligned, level: this.level } });
      w.on('message', (m: { buf?: ArrayBuffer; results?: PieceResult[]; error?: string; closed?: boolean }) => {
        if (m.closed === true || m.buf === undefined) return;
        this.results.push(...(m.results ?? []));
        if (m.error !== undefined) this.failure ??= new DatarootError('SNAPSHOT_WRITE_FAILED', `writing the pack failed: ${m.error}`, { file: pack });
        this.free.push(m.buf);
        this.outstanding--;
        const wake = this.waiting;
        this.waiting = [];
        for (const f of wake) f();
      });
      w.on('error', (e) => {
        this.failure ??= new DatarootError('SNAPSHOT_WRITE_FAILED', `a pack worker failed: ${e.message}`, { file: pack });
        const wake = this.waiting;
        this.waiting = [];
        for (const f of wake) f();
      });
      this.workers.push(w);
    }
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** A free slot (waits for one to come back). */
  async slot(): Promise<Buffer> {
    for (;;) {
      this.check();
      const b = this.free.pop();
      if (b !== undefined) return Buffer.from(b);
      if (this.slotsLeft > 0) {
        this.slotsLeft--;
        return Buffer.from(new ArrayBuffer(this.slotSize));
      }
      await new Promise<void>((r) => this.waiting.push(r));
    }
  }

  /** Gives a slot back without writing anything from it. */
  release(slot: Buffer): void {
    this.free.push(slot.buffer as ArrayBuffer);
  }

  /** Hands a filled slot to a worker (the buffer is transferred: do not touch it afterwards). */
  submit(slot: Buffer, pieces: Piece[]): void {
    this.check();
    if (pieces.length === 0) return this.release(slot);
    if (this.workers.length === 0) this.start();
    const w = this.workers[this.next++ % this.workers.length]!;
    this.outstanding++;
    const ab = slot.buffer as ArrayBuffer;
    w.postMessage({ buf: ab, pieces }, [ab]);
  }

  /** Room in the pack for the main thread's own writes (object records). */
  reserve(len: number): number {
    return Number(Atomics.add(this.counter, 0, BigInt(len)));
  }

  /** Moves the pack's end (after the native pipeline wrote up to `end` itself). */
  advanceTo(end: number): void {
    if (end > this.end) Atomics.store(this.counter, 0, BigInt(end));
  }

  /** The pack's size so far (reserved bytes). */
  get end(): number {
    return Number(Atomics.load(this.counter, 0));
  }

  /** Waits until every submitted slot has been written. */
  async drain(): Promise<void> {
    while (this.outstanding > 0) {
      this.check();
      await new Promise<void>((r) => this.waiting.push(r));
    }
    this.check();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
