import { closeSync, fstatSync, openSync, constants } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import type { ByteSource } from '../formats/bolt/source.js';
import { preadFully } from './pread.js';

export interface FileSourceOptions {
  /** Bytes per cached chunk (default 1 MiB). */
  chunkSize?: number;
  /** Most chunks kept (default 64, so 64 MiB). */
  maxChunks?: number;
  /**
   * Reuse the memory of evicted chunks (no fresh allocation and page faults per chunk). Bytes
   * returned by read() are then only valid until later reads evict their chunk: for walkers that
   * copy whatever they keep across reads.
   */
  recycle?: boolean;
}

/**
 * Positional reads of a file with a bounded LRU of aligned chunks. The file is opened
 * read-only and never locked, so a file held by a running daemon can still be read.
 * Memory stays bounded whatever the file size: reads larger than a chunk bypass the cache.
 */
export class FileSource implements ByteSource {
  readonly size: number;
  private readonly fd: number;
  private readonly chunkSize: number;
  private readonly maxChunks: number;
  private readonly chunks = new Map<number, Buffer>();
  private readonly recycle: boolean;
  private spare: Buffer | undefined;
  private closed = false;

  private constructor(
    readonly path: string,
    fd: number,
    size: number,
    opts: FileSourceOptions,
  ) {
    this.fd = fd;
    this.size = size;
    this.chunkSize = opts.chunkSize ?? 1 << 20;
    this.maxChunks = opts.maxChunks ?? 64;
    this.recycle = opts.recycle ?? false;
  }

  /** Over a file already opened and checked (the confined layer's OpenFile); closes it with close(). */
  static fromFd(path: string, fd: number, size: number, opts: FileSourceOptions = {}): FileSource {
    return new FileSource(path, fd, size, opts);
  }

  /** A file the user named (not evidence inside a root): opened without following a final symlink's FIFO trap. */
  static open(path: string, opts: FileSourceOptions = {}): FileSource {
    let fd: number;
    const flags = constants.O_RDONLY | constants.O_NONBLOCK;
    try {
      fd = openSync(path, flags | constants.O_NOATIME);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'EPERM') {
        try {
          fd = openSync(path, flags);
        } catch (e2) {
          throw ioError(e2 as NodeJS.ErrnoException, path);
        }
      } else throw ioError(err, path);
    }
    const st = fstatSync(fd);
    if (st.isDirectory()) {
      closeSync(fd);
      throw new DatarootError('IO_IS_DIRECTORY', `${path} is a directory, not a file`, { file: path });
    }
    if (!st.isFile()) {
      closeSync(fd);
      throw new DatarootError('IO_NOT_A_FILE', `${path} is not a regular file`, { file: path });
    }
    return new FileSource(path, fd, st.size, opts);
  }

  read(offset: number, length: number): Uint8Array {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new DatarootError('IO_READ_PAST_END', `read of ${length} bytes at ${offset} is outside the file (${this.size} bytes)`, {
        file: this.path,
        offset,
      });
    }
    const cs = this.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + length - 1) / cs);
    if (length > 0 && first === last) {
      const chunk = this.chunk(first);
      // a plain view (Buffer#subarray builds a Buffer through its constructor: slower, per page)
      return new Uint8Array(chunk.buffer, chunk.byteOffset + offset - first * cs, length);
    }
    const out = Buffer.allocUnsafe(length);
    this.readInto(out, offset);
    return out;
  }

  private chunk(index: number): Buffer {
    const hit = this.chunks.get(index);
    if (hit !== undefined) {
      this.chunks.delete(index);
      this.chunks.set(index, hit);
      return hit;
    }
    const start = index * this.chunkSize;
    const len = Math.min(this.chunkSize, this.size - start);
    let buf: Buffer;
    if (this.spare !== undefined && this.spare.length >= len) {
      buf = this.spare.subarray(0, len);
      this.spare = undefined;
    } else buf = Buffer.allocUnsafe(len);
    this.readInto(buf, start);
    this.chunks.set(index, buf);
    if (this.chunks.size > this.maxChunks) {
      const oldest = this.chunks.keys().next().value;
      if (oldest !== undefined) {
        const old = this.chunks.get(oldest);
        this.chunks.delete(oldest);
        if (this.recycle && old !== undefined && old.byteOffset === 0 && old.buffer.byteLength === this.chunkSize) {
          this.spare = Buffer.from(old.buffer, 0, this.chunkSize);
        }
      }
    }
    return buf;
  }

  private readInto(buf: Buffer, position: number): void {
    const done = preadFully(this.fd, buf, position);
    if (done < buf.length) {
      throw new DatarootError('IO_SHORT_READ', `the file ended at ${position + done} while reading (it shrank?)`, {
        file: this.path,
        offset: position + done,
      });
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.chunks.clear();
    closeSync(this.fd);
  }
}

export function ioError(err: NodeJS.ErrnoException, path: string): DatarootError {
  switch (err.code) {
    case 'ENOENT':
      return new DatarootError('IO_NOT_FOUND', `${path} does not exist`, { file: path });
    case 'EACCES':
    case 'EPERM':
      return new DatarootError('IO_PERMISSION', `${path}: permission denied`, { file: path });
    case 'EISDIR':
      return new DatarootError('IO_IS_DIRECTORY', `${path} is a directory, not a file`, { file: path });
    default:
      return new DatarootError('IO_ERROR', `${path}: ${err.message}`, { file: path });
  }
}
