import { writeSync } from 'node:fs';

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes all of a chunk to a file descriptor synchronously, whatever it is (file, pipe, tty),
 * waiting briefly when a non-blocking pipe is full. Callers may reuse the chunk afterwards, and
 * a fast producer never queues unbounded output in memory.
 */
export function writeAllSync(fd: number, chunk: string | Uint8Array): void {
  const data = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off, data.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(sleeper, 0, 0, 1);
    }
  }
}
