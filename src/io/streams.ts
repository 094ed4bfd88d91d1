import { spawn } from 'node:child_process';
import { createReadStream, fstatSync, openSync, readSync, closeSync } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { createHash, type Hash } from 'node:crypto';
import { DatarootError } from '../formats/errors.js';

/** Compression recognised by its magic bytes. */
export type Compression = 'none' | 'gzip' | 'zstd' | 'bzip2' | 'xz';

export function compressionOf(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  if (head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) return 'bzip2';
  if (head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58 && head[4] === 0x5a && head[5] === 0x00) return 'xz';
  return 'none';
}

export function headOf(path: string, n = 8, start = 0): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(n);
    const got = readSync(fd, b, 0, n, start);
    return b.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/** A file (or a byte range of it) as chunks. */
export function fileChunks(path: string, start = 0, length?: number, highWaterMark = 1 << 20): AsyncIterable<Uint8Array> {
  const opts: { start: number; end?: number; highWaterMark: number } = { start, highWaterMark };
  if (length !== undefined) {
    if (length === 0) return (async function* () {})();
    opts.end = start + length - 1;
  }
  return createReadStream(path, opts) as AsyncIterable<Uint8Array>;
}

/** The same over a file already opened (and checked) by the confined layer; `close` runs at the end. */
export function fdChunksReused(fd: number, close?: () => void, bufferSize = 1 << 20): AsyncIterable<Uint8Array> {
  const done = close ?? ((): void => closeSync(fd));
  return {
    async *[Symbol.asyncIterator]() {
      try {
        // Sized to the file (small files are the many): big buffers per file only feed the GC.
        const buf = Buffer.allocUnsafe(Math.max(1, Math.min(bufferSize, fstatSync(fd).size)));
        for (;;) {
          const n = readSync(fd, buf, 0, buf.length, null);
          if (n === 0) break;
          yield buf.subarray(0, n);
        }
      } finally {
        done();
      }
    },
  };
}

export interface DecompressOptions {
  /** Refuse output beyond this many bytes (decompression bombs). */
  maxBytes?: number;
  /** Refuse output beyond this multiple of the input size (with maxInput known). */
  maxRatio?: number;
  /** The compressed size, for the ratio bound. */
  inputBytes?: number;
  what?: string;
}

/** Counts bytes through a stream and stops with a coded error past the bounds. */
async function* bounded(src: AsyncIterable<Uint8Array>, o: DecompressOptions): AsyncGenerator<Uint8Array> {
  const byRatio = o.maxRatio !== undefined && o.inputBytes !== undefined ? Math.max(o.maxRatio * o.inputBytes, 1 << 20) : Infinity;
  const limit = Math.min(o.maxBytes ?? Infinity, byRatio);
  let n = 0;
  for await (const c of src) {
    n += c.length;
    if (n > limit) {
      throw new DatarootError(
        'ARCHIVE_DECOMPRESSION_BOMB',
        `${o.what ?? 'a layer'} decompresses to more than ${limit} bytes (bound: ${o.maxBytes ?? '∞'} bytes, ratio ${o.maxRatio ?? '∞'})`,
      );
    }
    yield c;
  }
}

/** Pipes chunks through an external decompressor (zstd, bzip2, xz: what Node's zlib lacks). */
async function* viaProcess(cmd: string, args: string[], src: AsyncIterable<Uint8Array>, what: string): AsyncGenerator<Uint8Array> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let spawnError: Error | undefined;
  child.on('error', (e) => {
    spawnError = e;
  });
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const feed = (async () => {
    try {
      for await (const c of src) {
        if (!child.stdin.write(c)) await new Promise((r) => child.stdin.once('drain', r));
      }
    } catch {
      /* the reader side reports */
    } finally {
      child.stdin.end();
    }
  })();
  child.stdin.on('error', () => {});
  try {
    for await (const c of child.stdout as AsyncIterable<Buffer>) yield c;
    const code = await exited;
    await feed;
    if (spawnError !== undefined) throw new DatarootError('IO_DECOMPRESSOR_UNAVAILABLE', `${what}: cannot run ${cmd}: ${spawnError.message}`);
    if (code !== 0) throw new DatarootError('ARCHIVE_CORRUPT', `${what}: ${cmd} failed: ${stderr.trim().split('\n').pop() ?? `exit ${code}`}`);
  } finally {
    if (child.exitCode === null) child.kill();
  }
}

/**
 * The decompressed bytes of a stream whose compression is known (gzip by Node's zlib; zstd,
 * bzip2 and xz by their command-line tools, one process per stream).
 */
export function decompress(kind: Compression, src: AsyncIterable<Uint8Array>, o: DecompressOptions = {}): AsyncIterable<Uint8Array> {
  const what = o.what ?? 'data';
  let out: AsyncIterable<Uint8Array>;
  switch (kind) {
    case 'none':
      out = src;
      break;
    case 'gzip': {
      const gz = createGunzip();
      void (async () => {
        try {
          for await (const c of src) if (!gz.write(c)) await new Promise((r) => gz.once('drain', r));
          gz.end();
        } catch (e) {
          gz.destroy(e as Error);
        }
      })();
      out = (async function* () {
        try {
          for await (const c of gz as AsyncIterable<Buffer>) yield c;
        } catch (e) {
          if (e instanceof DatarootError) throw e;
          throw new DatarootError('ARCHIVE_CORRUPT', `${what}: gzip data is corrupt (${(e as Error).message})`);
        }
      })();
      break;
    }
    case 'zstd':
      out = viaProcess('zstd', ['-d', '-c', '-q'], src, what);
      break;
    case 'bzip2':
      out = viaProcess('bzip2', ['-d', '-c'], src, what);
      break;
    case 'xz':
      out = viaProcess('xz', ['-d', '-c'], src, what);
      break;
  }
  return o.maxBytes !== undefined || o.maxRatio !== undefined ? bounded(out, o) : out;
}

/** Passes chunks through while hashing them; `digest()` once consumed. */
export class HashingStream {
  private readonly h: Hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly src: AsyncIterable<Uint8Array>) {}
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for await (const c of this.src) {
      this.h.update(c);
      this.bytes += c.length;
      yield c;
    }
  }
  digest(): string {
    return `sha256:${this.h.digest('hex')}`;
  }
}
