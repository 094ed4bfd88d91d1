import { closeSync, constants, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { fsError } from './confined.js';
import { fsyncDir } from './atomic.js';

/**
 * A tar stream written front to back through one large buffer: headers are copied in, file data
 * is read straight into the buffer from the source fd (no intermediate copy), and full buffers go
 * to the output. To a file it is written into a temp file beside the target and renamed into
 * place only when complete (a failed export leaves nothing); to a stream it is written as it goes.
 */
export class TarSink {
  private buf: Buffer;
  private used = 0;
  /** Bytes of the archive so far. */
  size = 0;

  private constructor(private readonly out: (b: Buffer) => void, bufferSize: number) {
    this.buf = Buffer.alloc(bufferSize);
  }

  /** A sink that hands each full buffer (a copy) to `write`. */
  static toStream(write: (b: Uint8Array) => void, bufferSize = 1 << 20): TarSink {
    return new TarSink((b) => write(Buffer.from(b)), bufferSize);
  }

  /** A sink into an open fd. */
  static toFd(fd: number, bufferSize = 4 << 20): TarSink {
    return new TarSink((b) => {
      let o = 0;
      while (o < b.length) o += writeSync(fd, b, o, b.length - o);
    }, bufferSize);
  }

  private flush(): void {
    if (this.used > 0) this.out(this.buf.subarray(0, this.used));
    this.used = 0;
  }

  put(b: Uint8Array): void {
    this.size += b.length;
    if (this.used + b.length > this.buf.length) this.flush();
    if (b.length > this.buf.length) {
      this.out(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
      return;
    }
    this.buf.set(b, this.used);
    this.used += b.length;
  }

  /** `size` bytes of a file from offset 0, then the padding to the next 512-byte block. */
  data(fd: number, size: number, what: string): void {
    let pos = 0;
    while (pos < size) {
      if (this.used === this.buf.length) this.flush();
      const want = Math.min(this.buf.length - this.used, size - pos);
      const n = readSync(fd, this.buf, this.used, want, pos);
      if (n === 0) throw new DatarootError('EXPORT_SOURCE_CHANGED', `${what} ended after ${pos} of ${size} bytes while it was read`);
      this.used += n;
      pos += n;
    }
    this.size += size;
    const pad = (512 - (size % 512)) % 512;
    if (pad > 0) this.put(new Uint8Array(pad));
  }

  /** The end of the archive (two zero blocks, as Go's tar.Writer.Close writes), flushed. */
  end(): void {
    this.put(new Uint8Array(1024));
    this.flush();
  }
}

/** An archive written whole or not at all: a temp file in the target's directory (0600), renamed over it at commit. */
export class TarFile {
  readonly fd: number;
  private readonly tmp: string;
  private done = false;

  constructor(readonly path: string, mode = 0o600) {
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
