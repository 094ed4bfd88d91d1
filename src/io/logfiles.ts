import { readSync } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { DatarootError } from '../formats/errors.js';
import { FRAME_WORD } from '../formats/logs/logentry.js';
import type { OpenFile } from './confined.js';
import { preadFully } from './pread.js';

/**
 * Byte access to container log files opened by the confined layer (regular files only, never
 * through a symlink): a range of a plain file as chunks, a gzip rotation decompressed with a bound,
 * and dockerd's two tail readers (`pkg/tailfile` for json-file lines, the local driver's walk over
 * frame footers), which read backwards from the end so that `--tail` on a huge file costs its tail.
 */

const CHUNK = 1 << 20;

/** A range of an open file as chunks (positional reads; the buffer is reused, copy what outlives the next chunk). */
export function* rangeChunks(f: OpenFile, start: number, end: number, size = CHUNK): Generator<Uint8Array> {
  const buf = Buffer.allocUnsafe(Math.max(1, Math.min(size, end - start)));
  for (let pos = start; pos < end;) {
    const n = readSync(f.fd, buf, 0, Math.min(buf.length, end - pos), pos);
    if (n === 0) break;
    pos += n;
    yield buf.subarray(0, n);
  }
}

/**
 * The decompressed bytes of a gzip file (every member, as Go's gzip reader reads them), at most
 * `maxBytes`: past it, LOG_DECOMPRESSED_TOO_LARGE (a decompression bomb costs a bounded time).
 */
export async function* gunzipChunks(f: OpenFile, maxBytes: number, what: string): AsyncGenerator<Uint8Array> {
  const gz = createGunzip();
  let failed: Error | undefined;
  gz.on('error', (e) => {
    failed = e;
  });
  const feed = (async () => {
    try {
      // Small writes: zlib inflates a whole write before it looks at the reader, and 16 KiB of
      // gzip inflates to at most ~16 MiB, so a bomb is stopped soon after its bound.
      for (const c of rangeChunks(f, 0, f.size, 16 << 10)) {
        if (failed !== undefined || gz.destroyed) return;
        // Waits for room, or for the stream to end (destroyed by the reader past its bound).
        if (!gz.write(Buffer.from(c)))
          await new Promise<void>((r) => {
            const done = (): void => {
              gz.off('drain', done);
              gz.off('close', done);
              r();
            };
            gz.once('drain', done);
            gz.once('close', done);
          });
      }
      gz.end();
    } catch (e) {
      gz.destroy(e as Error);
    }
  })();
  let total = 0;
  try {
    for await (const c of gz as AsyncIterable<Buffer>) {
      total += c.length;
      if (total > maxBytes)
        throw new DatarootError('LOG_DECOMPRESSED_TOO_LARGE', `${what} decompresses to more than ${maxBytes} bytes: the rest is not read`, {
          file: what,
          max: maxBytes,
        });
      yield c;
    }
  } catch (e) {
    if (e instanceof DatarootError) throw e;
    throw new DatarootError('LOG_GZIP_CORRUPT', `${what}: gzip data is corrupt (${(e as Error).message})`, { file: what });
  } finally {
    if (!gz.destroyed) gz.destroy();
    await feed.catch(() => {});
  }
}

/**
 * pkg/tailfile.NewTailReader with "\n": the section holding the last `req` newline-terminated
 * lines of [0, size) (bytes after the last newline excluded), and how many lines it holds.
 */
export function tailLines(read: (buf: Uint8Array, pos: number) => number, size: number, req: number): { start: number; end: number; found: number } {
  if (size <= 1) return { start: 0, end: 0, found: 0 };
  const block = Buffer.allocUnsafe(Math.min(64 << 10, size));
  let found = 0;
  let end = size;
  let start = -1;
  let pos = size;
  outer: while (pos > 0) {
    const n = Math.min(block.length, pos);
    const from = pos - n;
    const got = read(block.subarray(0, n), from);
    if (got !== n) throw new DatarootError('LOG_READ_SHORT', `short read at offset ${from}`);
    for (let i = n - 1; i >= 0; i--) {
      if (block[i] !== 0x0a) continue;
      const at = from + i;
      if (found === req) {
        start = at + 1;
        break outer;
      }
      found++;
      if (found === 1) end = at + 1;
    }
    pos = from;
  }
  if (found === 0) return { start: 0, end: 0, found: 0 };
  return { start: start < 0 ? 0 : start, end, found };
}

/**
 * The local driver's getTailReader: walks frames backwards from the end by their footers,
 * checking each against its header. dockerd fails the whole read on a mismatch; so does this
 * (LOG_FRAME_MISMATCH).
 */
export function tailFrames(
  read: (buf: Uint8Array, pos: number) => number,
  size: number,
  req: number,
  what: string,
): { start: number; end: number; found: number } {
  if (size < 2 * FRAME_WORD + 1) return { start: 0, end: 0, found: 0 };
  const w = Buffer.alloc(FRAME_WORD);
  let found = 0;
  let offset = size;
  for (;;) {
    if (offset - FRAME_WORD < 0 || read(w, offset - FRAME_WORD) !== FRAME_WORD) {
      throw new DatarootError('LOG_FRAME_MISMATCH', `${what}: unexpected number of bytes read from a record footer at ${offset - FRAME_WORD}`, {
        file: what,
        offset: offset - FRAME_WORD,
      });
    }
    const len = w.readUInt32BE(0);
    const head = offset - 2 * FRAME_WORD - len;
    if (head < 0 || read(w, head) !== FRAME_WORD) {
      throw new DatarootError(
        'LOG_FRAME_MISMATCH',
        `${what}: the record footer at ${offset - FRAME_WORD} gives ${len} bytes, more than the file holds before it`,
        { file: what, offset: offset - FRAME_WORD },
      );
    }
    if (w.readUInt32BE(0) !== len) {
      throw new DatarootError('LOG_FRAME_MISMATCH', `${what}: record header and footer at ${head} and ${offset - FRAME_WORD} give different sizes`, {
        file: what,
        offset: head,
      });
    }
    found++;
    offset = head;
    if (found === req || offset <= 0) break;
  }
  return { start: offset, end: size, found };
}

/** Positional reads of an open file, for the tail readers. */
export function fileReader(f: OpenFile): (buf: Uint8Array, pos: number) => number {
  return (buf, pos) => preadFully(f.fd, buf, pos);
}
