import { joinBytes } from '../bytes.js';
import { FRAME_WORD, MAX_RECORD } from './logentry.js';

/**
 * Streaming over the bytes of a log file: lines (json-file) and size-framed records (local). Both
 * take any chunking of the input (a chunk may end anywhere) and hold at most one line or record,
 * whatever the file holds: a line past `maxLine` is reported and skipped, a record past dockerd's
 * 1,000,000 bytes stops the file as it stops dockerd.
 */

export type LineItem =
  /** A line without its newline; `terminated` is false for bytes after the last newline. */
  | { kind: 'line'; offset: number; bytes: Uint8Array; terminated: boolean }
  /** `count` empty lines in a row (one item: a run of newlines costs one step). */
  | { kind: 'blank'; offset: number; count: number }
  /** A line longer than the bound: skipped up to its newline. */
  | { kind: 'too-long'; offset: number; length: number };

/**
 * Lines of a stream, `base` being the offset of its first byte in the file, in batches (the lines
 * each chunk completes: a file of millions of short lines costs one step per chunk, not per line).
 */
export async function* lines(src: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, maxLine: number, base = 0): AsyncGenerator<LineItem[]> {
  let parts: Uint8Array[] = [];
  let pending = 0;
  let start = base;
  let pos = base;
  let skipping = false;
  for await (const chunk of src) {
    const batch: LineItem[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (chunk[i] === 0x0a && pending === 0 && !skipping) {
        let j = i;
        while (j < chunk.length && chunk[j] === 0x0a) j++;
        batch.push({ kind: 'blank', offset: start, count: j - i });
        pos += j - i;
        start = pos;
        i = j;
        continue;
      }
      const nl = chunk.indexOf(0x0a, i);
      const end = nl < 0 ? chunk.length : nl;
      if (!skipping) {
        if (pending + (end - i) > maxLine) {
          skipping = true;
          parts = [];
        } else if (end > i) {
          // Copied: the chunk may be a reused buffer.
          parts.push(chunk.slice(i, end));
        }
      }
      pending += end - i;
      pos += end - i;
      if (nl < 0) break;
      if (skipping) batch.push({ kind: 'too-long', offset: start, length: pending });
      else batch.push({ kind: 'line', offset: start, bytes: joinBytes(parts, pending), terminated: true });
      parts = [];
      pending = 0;
      skipping = false;
      pos += 1;
      start = pos;
      i = nl + 1;
    }
    if (batch.length > 0) yield batch;
  }
  if (pending > 0) {
    if (skipping) yield [{ kind: 'too-long', offset: start, length: pending }];
    else yield [{ kind: 'line', offset: start, bytes: joinBytes(parts, pending), terminated: false }];
  }
}

export type FrameItem =
  | { kind: 'record'; offset: number; message: Uint8Array; /** the size word after the message differs from the one before */ footerMismatch: boolean }
  /** The stream ends inside a frame (`have` of `need` bytes). */
  | { kind: 'truncated'; offset: number; have: number; need: number }
  /** A size word past dockerd's bound: reading stops here, as it stops dockerd. */
  | { kind: 'too-large'; offset: number; size: number };

/** Size-framed records of a stream (local driver), in batches (the records each chunk completes). */
export async function* frames(src: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, base = 0): AsyncGenerator<FrameItem[]> {
  let buf = new Uint8Array(0);
  let have = 0;
  let offset = base;
  let need = FRAME_WORD;
  let size = -1;
  const grow = (n: number): void => {
    if (buf.length >= n) return;
    const nb = new Uint8Array(Math.max(n, Math.min(buf.length * 2, MAX_RECORD + 2 * FRAME_WORD)));
    nb.set(buf.subarray(0, have));
    buf = nb;
  };
  for await (const chunk of src) {
    const batch: FrameItem[] = [];
    let i = 0;
    while (i < chunk.length) {
      grow(need);
      const take = Math.min(need - have, chunk.length - i);
      buf.set(chunk.subarray(i, i + take), have);
      have += take;
      i += take;
      if (have < need) break;
      if (size < 0) {
        size = ((buf[0]! << 24) | (buf[1]! << 16) | (buf[2]! << 8) | buf[3]!) >>> 0;
        if (size > MAX_RECORD) {
          batch.push({ kind: 'too-large', offset, size });
          yield batch;
          return;
        }
        need = size + 2 * FRAME_WORD;
        continue;
      }
      const footer = ((buf[need - 4]! << 24) | (buf[need - 3]! << 16) | (buf[need - 2]! << 8) | buf[need - 1]!) >>> 0;
      batch.push({ kind: 'record', offset, message: buf.slice(FRAME_WORD, FRAME_WORD + size), footerMismatch: footer !== size });
      offset += need;
      have = 0;
      need = FRAME_WORD;
      size = -1;
    }
    if (batch.length > 0) yield batch;
  }
  if (have > 0) yield [{ kind: 'truncated', offset, have, need }];
}
