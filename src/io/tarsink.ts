import { closeSync, constants, fdatasync, fsyncSync, openSync, read, readSync, renameSync, rmSync, write } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { fsError } from './confined.js';
import { fsyncDir } from './atomic.js';

/** Where an export's tar goes: headers and padding as bytes, file contents from an open file of the evidence. */
export interface TarOut {
  put(b: Uint8Array): Promise<void>;
  /** `size` bytes of `file` from offset 0 and the padding to the next block; the sink closes the file. */
  data(file: { fd: number; close(): void }, size: number, what: string): Promise<void>;
  /** The end of the archive (two zero blocks, as Go's tar.Writer.Close writes), every write done. */
  end(): Promise<void>;
  /** After a failure: waits for every write in flight and closes the files still queued (nothing is written after it returns). */
  settle(): Promise<void>;
  /** Bytes of the archive so far. */
  readonly size: number;
}

const ZEROS = new Uint8Array(1024);

function pad(size: number): number {
  return (512 - (size % 512)) % 512;
}

function sourceChanged(what: string, pos: number, size: number): DatarootError {
  return new DatarootError('EXPORT_SOURCE_CHANGED', `${what} ended after ${pos} of ${size} bytes while it was read`);
}

/** A tar stream handed to a writer (stdout) one full buffer (a copy) at a time; file data read straight into the buffer. */
export class TarStream implements TarOut {
  private readonly buf: Buffer;
  private used = 0;
  size = 0;

  constructor(
    private readonly write: (b: Uint8Array) => void,
    bufferSize = 1 << 20,
  ) {
    this.buf = Buffer.alloc(bufferSize);
  }

  private flush(): void {
    if (this.used > 0) this.write(Buffer.from(this.buf.subarray(0, this.used)));
    this.used = 0;
  }

  async put(b: Uint8Array): Promise<void> {
    this.size += b.length;
    let o = 0;
    while (o < b.length) {
      if (this.used === this.buf.length) this.flush();
      const n = Math.min(b.length - o, this.buf.length - this.used);
      this.buf.set(b.subarray(o, o + n), this.used);
      this.used += n;
      o += n;
    }
  }

  async data(file: { fd: number; close(): void }, size: number, what: string): Promise<void> {
    try {
      let pos = 0;
      while (pos < size) {
        if (this.used === this.buf.length) this.flush();
        const n = readSync(file.fd, this.buf, this.used, Math.min(this.buf.length - this.used, size - pos), pos);
        if (n === 0) throw sourceChanged(what, pos, size);
        this.used += n;
        pos += n;
      }
    } finally {
      file.close();
    }
    this.size += size;
    await this.put(ZEROS.subarray(0, pad(size)));
  }

  async end(): Promise<void> {
    await this.put(ZEROS);
    this.flush();
  }

  async settle(): Promise<void> {
    this.used = 0;
  }
}

/** Files up to this size are read into the run of headers; larger ones by a copier of their own. */
const SMALL = 256 << 10;
/** Copiers at work at once (each with its own buffer), and files queued for them at most. */
const COPIERS = 4;
const QUEUED = 64;
/** The run of headers and small files gathered for one write. */
const RUN = 4 << 20;
/** Small files being read (open) at once. */
const READS = 64;
/** Bytes written between background fdatasyncs. */
const SYNC_EVERY = 64 << 20;

type Job = { fd: number; close(): void; size: number; at: number; what: string };

/**
 * A tar written into a new regular file by position. Every entry's place is known when the walk
 * reaches it (headers and sizes come first), so file contents are read on libuv's thread pool
 * while the walk goes on: small files straight into their place in the current run of headers
 * (the run is written once its reads are in), large files copied to their offsets by several
 * copiers. A background fdatasync every SYNC_EVERY bytes leaves little for the fsync before the
 * rename. Memory stays bounded: a few runs in flight, one buffer per copier, at most QUEUED large
 * and READS small files open.
 */
export class TarFileOut implements TarOut {
  private run: Buffer = Buffer.allocUnsafe(RUN);
  /** Run buffers whose writes are done, for the next runs. */
  private readonly spare: Buffer[] = [];
  private runAt = 0;
  private runUsed = 0;
  private runReads: Promise<void>[] = [];
  private reading = 0;
  private readonly writes = new Set<Promise<void>>();
  private readonly queue: Job[] = [];
  private active = 0;
  private wake: (() => void) | undefined;
  private failed: Error | undefined;
  private unsynced = 0;
  private syncing = false;
  size = 0;

  constructor(private readonly fd: number) {}

  private check(): void {
    if (this.failed !== undefined) throw this.failed;
  }

  private track(p: Promise<void>): void {
    const q = p.catch((e: unknown) => {
      this.failed ??= e instanceof Error ? e : new Error(String(e));
    });
    this.writes.add(q);
    void q.then(() => {
      this.writes.delete(q);
      this.wakeUp();
    });
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Waits until `ready` holds (rechecked whenever a read or copy finishes) or the export failed. */
  private async waitFor(ready: () => boolean): Promise<void> {
    while (!ready() && this.failed === undefined) await new Promise<void>((r) => (this.wake = r));
  }

  /** A positional write; every SYNC_EVERY bytes a background fdatasync starts. */
  private async write(b: Buffer, at: number): Promise<void> {
    await writeAll(this.fd, b, at);
    this.unsynced += b.length;
    if (this.unsynced >= SYNC_EVERY && !this.syncing && this.failed === undefined) {
      this.unsynced = 0;
      this.syncing = true;
      this.track(
        new Promise<void>((resolve, reject) => fdatasync(this.fd, (err) => (err !== null ? reject(err) : resolve()))).finally(() => {
          this.syncing = false;
        }),
      );
    }
  }

  /** Writes the gathered run at its offset (once its reads are in) and starts a new one after it. */
  private flushRun(): void {
    if (this.runUsed > 0) {
      const b = this.run.subarray(0, this.runUsed);
      const at = this.runAt;
      const reads = this.runReads;
      const run = this.run;
      const written = (reads.length === 0 ? this.write(b, at) : Promise.all(reads).then(() => this.write(b, at))).then(() => {
        // Written: the buffer can take another run.
        if (this.spare.length < 4) this.spare.push(run);
      });
      this.track(written);
      this.run = this.spare.pop() ?? Buffer.allocUnsafe(RUN);
    }
    this.runReads = [];
    this.runAt = this.size;
    this.runUsed = 0;
  }

  async put(b: Uint8Array): Promise<void> {
    this.check();
    if (this.runUsed + b.length > this.run.length) this.flushRun();
    if (b.length > this.run.length) {
      this.track(this.write(Buffer.from(b), this.size));
      this.size += b.length;
      this.runAt = this.size;
      return;
    }
    this.run.set(b, this.runUsed);
    this.runUsed += b.length;
    this.size += b.length;
    // Bound the runs in flight: each holds its own buffer. (A wake-up when any write ends, not
    // Promise.race, which would leave a reaction on every pending write at each call.)
    if (this.writes.size > 8) await this.waitFor(() => this.writes.size <= 8);
  }

  private refuse(file: { close(): void }): void {
    if (this.failed === undefined) return;
    file.close();
    throw this.failed;
  }

  async data(file: { fd: number; close(): void }, size: number, what: string): Promise<void> {
    this.refuse(file);
    if (size <= SMALL) {
      await this.waitFor(() => this.reading < READS);
      this.refuse(file);
      if (this.runUsed + size > this.run.length) this.flushRun();
      const p = readInto(file, this.run, this.runUsed, size, what);
      this.reading++;
      const done = (): void => {
        this.reading--;
        this.wakeUp();
      };
      void p.then(done, done);
      this.runReads.push(p);
      this.runUsed += size;
      this.size += size;
      await this.put(ZEROS.subarray(0, pad(size)));
      return;
    }
    // A large file: its place is reserved, a copier fills it; the walk goes on.
    this.flushRun();
    await this.waitFor(() => this.queue.length < QUEUED);
    this.refuse(file);
    this.queue.push({ fd: file.fd, close: () => file.close(), size, at: this.size, what });
    this.size += size + pad(size);
    this.runAt = this.size;
    this.startCopiers();
  }

  private startCopiers(): void {
    while (this.active < COPIERS && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.active++;
      this.track(
        this.copy(job).finally(() => {
          this.active--;
          this.wakeUp();
          this.startCopiers();
        }),
      );
    }
  }

  private async copy(job: Job): Promise<void> {
    const buf = Buffer.allocUnsafe(Math.min(1 << 20, job.size + pad(job.size)));
    try {
      let pos = 0;
      while (pos < job.size) {
        // After a failure elsewhere the export is abandoned: stop copying.
        if (this.failed !== undefined) return;
        const n = await readAt(job.fd, buf, 0, Math.min(buf.length, job.size - pos), pos);
        if (n === 0) throw sourceChanged(job.what, pos, job.size);
        let len = n;
        // The padding goes with the last piece.
        if (pos + n === job.size && n + pad(job.size) <= buf.length) {
          buf.fill(0, n, n + pad(job.size));
          len += pad(job.size);
        } else if (pos + n === job.size && pad(job.size) > 0) await this.write(Buffer.from(ZEROS.subarray(0, pad(job.size))), job.at + job.size);
        await this.write(buf.subarray(0, len), job.at + pos);
        pos += n;
      }
    } finally {
      job.close();
    }
  }

  async end(): Promise<void> {
    this.check();
    await this.put(ZEROS);
    this.flushRun();
    while (this.queue.length > 0 || this.active > 0 || this.writes.size > 0) {
      this.startCopiers();
      await Promise.all([...this.writes]);
    }
    this.check();
  }

  async settle(): Promise<void> {
    this.failed ??= new DatarootError('EXPORT_ABORTED', 'the export was stopped');
    for (const job of this.queue.splice(0)) job.close();
    this.wakeUp();
    // Reads into runs not yet flushed still hold their files and buffers.
    await Promise.allSettled(this.runReads);
    while (this.writes.size > 0) await Promise.all([...this.writes]);
  }
}

/** `size` bytes of a file from offset 0 into `b` at `off`, on the thread pool; the file is closed after. */
async function readInto(file: { fd: number; close(): void }, b: Buffer, off: number, size: number, what: string): Promise<void> {
  try {
    let pos = 0;
    while (pos < size) {
      const n = await readAt(file.fd, b, off + pos, size - pos, pos);
      if (n === 0) throw sourceChanged(what, pos, size);
      pos += n;
    }
  } finally {
    file.close();
  }
}

function readAt(fd: number, b: Buffer, off: number, len: number, at: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, b, off, len, at, (err, n) => (err !== null ? reject(err) : resolve(n))));
}

function writeAll(fd: number, b: Buffer, at: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (off: number): void => {
      write(fd, b, off, b.length - off, at + off, (err, n) => {
        if (err !== null) reject(err);
        else if (off + n < b.length) step(off + n);
        else resolve();
      });
    };
    step(0);
  });
}

/** An archive written whole or not at all: a temp file in the target's directory (0600), renamed over it at commit. */
export class TarFile {
  readonly fd: number;
  private readonly tmp: string;
  private done = false;

  constructor(
    readonly path: string,
    mode = 0o600,
  ) {
    this.tmp = join(dirname(path), `.${basename(path)}.dataroot-${process.pid}-${Date.now().toString(36)}`);
    try {
      this.fd = openSync(this.tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    } catch (e) {
      throw fsError(e, path);
    }
  }

  commit(): void {
    fsyncSync(this.fd);
    closeSync(this.fd);
    renameSync(this.tmp, this.path);
    fsyncDir(dirname(this.path));
    this.done = true;
  }

  abort(): void {
    if (this.done) return;
    try {
      closeSync(this.fd);
    } catch {
      /* closed */
    }
    rmSync(this.tmp, { force: true });
    this.done = true;
  }
}
