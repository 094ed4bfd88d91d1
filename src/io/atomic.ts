import { closeSync, constants, fchmodSync, fchownSync, fsyncSync, lstatSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { ioError } from './pagesource.js';

/** fsync of a directory, so a rename in it is durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.dataroot-${process.pid}-${Date.now().toString(36)}`);
}

/**
 * Writes a file atomically: into a temp file in the same directory, fsync, rename over the target,
 * fsync the directory. If the content stream fails, the temp file is removed and the target is
 * untouched.
 */
export async function writeFileAtomic(path: string, content: AsyncIterable<Uint8Array> | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = tempName(path);
  const fh = await open(tmp, 'wx', mode);
  try {
    if (content instanceof Uint8Array) await fh.write(content);
    else for await (const c of content) await fh.write(c);
    await fh.chmod(mode);
    await fh.sync();
    await fh.close();
    renameSync(tmp, path);
    fsyncDir(dirname(path));
  } catch (e) {
    await fh.close().catch(() => {});
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Creates `path` (O_EXCL and O_NOFOLLOW: nothing may be there, no link is followed) and writes
 * `content` whole, fsynced when asked. A failed write removes the file: nothing partial stays.
 */
export function writeNewFileSync(path: string, content: Uint8Array | string, mode: number, sync: boolean): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    const b = typeof content === 'string' ? Buffer.from(content) : content;
    let off = 0;
    while (off < b.length) off += writeSync(fd, b, off, b.length - off);
    if (sync) fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(path, { force: true });
    throw e;
  }
  closeSync(fd);
}

/** The synchronous form for small files (metadata, repositories.json). */
export function writeFileAtomicSync(path: string, content: Uint8Array | string, mode = 0o644): void {
  const tmp = tempName(path);
  writeNewFileSync(tmp, content, mode, true);
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

/** Bytes gathered before a write(2): consecutive pages go out in large writes. */
const ATOMIC_BUFFER = 4 << 20;

export interface AtomicFileOptions {
  /** Permission bits of the file put in place. */
  mode: number;
  /** Owner to give it (chown needs root; left out, the file belongs to the writer). */
  uid?: number;
  gid?: number;
  /**
   * Where the new file is written before the rename (default: a dot-file beside the target); it
   * must not exist and must be on the target's file system.
   */
  tmp?: string;
}

function writeError(e: unknown, path: string): DatarootError {
  const err = e as NodeJS.ErrnoException;
  return new DatarootError('IO_WRITE_FAILED', `writing ${path} failed: ${err.code ?? ''} ${err.message}`.trim(), { file: path });
}

/**
 * A file written by position (a page sink) into a temporary file beside its target, then put in
 * place atomically by commit(): fsync, rename over the target, fsync of the directory. abort()
 * removes the temporary file; the target is never touched until the rename.
 */
export class AtomicFile {
  private buf = Buffer.allocUnsafe(ATOMIC_BUFFER);
  private bufStart = 0;
  private bufLen = 0;
  private open = true;

  private constructor(
    readonly path: string,
    readonly tmp: string,
    private readonly fd: number,
    private readonly opts: AtomicFileOptions,
  ) {}

  static create(path: string, opts: AtomicFileOptions): AtomicFile {
    const tmp = opts.tmp ?? tempName(path);
    let fd: number;
    try {
      fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, opts.mode & 0o7777);
    } catch (e) {
      throw ioError(e as NodeJS.ErrnoException, tmp);
    }
    return new AtomicFile(path, tmp, fd, opts);
  }

  private writeAt(bytes: Uint8Array, offset: number): void {
    let done = 0;
    try {
      while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done, offset + done);
    } catch (e) {
      throw writeError(e, this.tmp);
    }
  }

  private flush(): void {
    if (this.bufLen === 0) return;
    this.writeAt(this.buf.subarray(0, this.bufLen), this.bufStart);
    this.bufLen = 0;
  }

  write(offset: number, bytes: Uint8Array): void {
    if (!this.open) throw new DatarootError('IO_WRITE_FAILED', `${this.tmp} is closed`, { file: this.tmp });
    if (bytes.length === 0) return;
    if (this.bufLen > 0 && offset === this.bufStart + this.bufLen && this.bufLen + bytes.length <= this.buf.length) {
      this.buf.set(bytes, this.bufLen);
      this.bufLen += bytes.length;
      return;
    }
    this.flush();
    if (bytes.length >= this.buf.length) return this.writeAt(bytes, offset);
    this.buf.set(bytes, 0);
    this.bufStart = offset;
    this.bufLen = bytes.length;
  }

  /** Makes the file durable and renames it over the target. */
  commit(): void {
    try {
      this.flush();
      fchmodSync(this.fd, this.opts.mode & 0o7777);
      if (this.opts.uid !== undefined && this.opts.gid !== undefined) fchownSync(this.fd, this.opts.uid, this.opts.gid);
      fsyncSync(this.fd);
    } catch (e) {
      this.abort();
      throw e instanceof DatarootError ? e : writeError(e, this.tmp);
    }
    this.open = false;
    closeSync(this.fd);
    try {
      renameSync(this.tmp, this.path);
    } catch (e) {
      rmSync(this.tmp, { force: true });
      throw writeError(e, this.path);
    }
    fsyncDir(dirname(this.path));
  }

  /** Removes the temporary file (idempotent). */
  abort(): void {
    if (this.open) {
      this.open = false;
      try {
        closeSync(this.fd);
      } catch {
        // already closed
      }
    }
    rmSync(this.tmp, { force: true });
    this.buf = Buffer.alloc(0);
  }
}

/**
 * Refuses an output path (named with `flag`, as `-o `) whose directory does not exist or is not one,
 * or that is a directory itself.
 */
export function requireOutputDir(path: string, flag = '-o '): void {
  const dir = dirname(path);
  let ok: boolean;
  try {
    ok = statSync(dir).isDirectory();
  } catch {
    ok = false;
  }
  if (!ok) throw new DatarootError('USAGE_OUTPUT_DIR_MISSING', `${flag}${path}: the directory ${dir} does not exist`, { file: path });
  let isDir: boolean;
  try {
    isDir = lstatSync(path).isDirectory();
  } catch {
    isDir = false;
  }
  if (isDir) throw new DatarootError('USAGE_OUTPUT_IS_DIR', `${flag}${path} is a directory: name the file to write`, { file: path });
}
