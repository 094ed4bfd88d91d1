import { createHash, type Hash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, fsyncSync, openSync, writeSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { createGzip } from 'node:zlib';
import { dataPadding, entryHeader, tarEnd, type WriteEntry } from '../formats/tar/writer.js';

/**
 * A tar file written front to back with the sha256 and size of its bytes: the archives `pack`
 * and `edit` write, and the layers inside them (whose sha256 is the diffID). Writes are
 * synchronous and buffered; nothing here depends on the clock, so equal calls give equal bytes.
 */
export class TarFileWriter {
  private readonly fd: number;
  private readonly hash: Hash = createHash('sha256');
  private buf = Buffer.allocUnsafe(1 << 20);
  private used = 0;
  size = 0;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'w', 0o644);
  }

  private put(b: Uint8Array): void {
    this.hash.update(b);
    this.size += b.length;
    if (b.length >= this.buf.length) {
      this.flush();
      let o = 0;
      while (o < b.length) o += writeSync(this.fd, b, o, b.length - o);
      return;
    }
    if (this.used + b.length > this.buf.length) this.flush();
    this.buf.set(b, this.used);
    this.used += b.length;
  }

  private flush(): void {
    let o = 0;
    while (o < this.used) o += writeSync(this.fd, this.buf, o, this.used - o);
    this.used = 0;
  }

  /** An entry with its data (bytes, or chunks whose total must equal entry.size). */
  async add(entry: WriteEntry, data?: Uint8Array | AsyncIterable<Uint8Array>): Promise<void> {
    this.put(entryHeader(entry));
    if (data === undefined) return;
    let n = 0;
    if (data instanceof Uint8Array) {
      this.put(data);
      n = data.length;
    } else {
      for await (const c of data) {
        n += c.length;
        if (n > entry.size) break;
        this.put(c);
      }
    }
    if (n !== entry.size) throw new Error(`${new TextDecoder().decode(entry.name)}: ${n} bytes of data for a header of ${entry.size}`);
    this.put(dataPadding(n));
  }

  /** Ends the archive (two zero blocks), syncs and closes; returns the sha256 and size. */
  finish(): { digest: string; size: number } {
    this.put(tarEnd());
    this.flush();
    fsyncSync(this.fd);
    closeSync(this.fd);
    return { digest: `sha256:${this.hash.digest('hex')}`, size: this.size };
  }

  /** Closes without finishing (the caller removes the file). */
  abort(): void {
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }
}

/**
 * Gzips a file into another, returning the sha256 and size of the compressed bytes. The gzip
 * header carries no name and no time (zlib's defaults), so equal input gives equal output.
 */
export async function gzipFile(src: string, dst: string): Promise<{ digest: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  await pipeline(createReadStream(src), createGzip({ level: 6 }), tap, createWriteStream(dst, { mode: 0o644 }));
  return { digest: `sha256:${h.digest('hex')}`, size };
}
