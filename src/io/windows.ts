import { closeSync, openSync } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { ioError } from './pagesource.js';
import { preadFully } from './pread.js';

/**
 * The first `length` bytes of a file as consecutive windows, read synchronously into one reused
 * buffer (a window is valid until the next one is asked for). On a file in the page cache this
 * measured faster than reading ahead on libuv's thread pool: the copy lands in this core's cache
 * just before the consumer reads it, and no window waits for a hand-off between threads.
 */
export function* readWindowsSync(path: string, length: number, windowSize: number): Generator<Uint8Array> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw ioError(e as NodeJS.ErrnoException, path);
  }
  try {
    const buf = Buffer.allocUnsafe(windowSize);
    const whole = new Uint8Array(buf.buffer, buf.byteOffset, windowSize);
    for (let pos = 0; pos < length;) {
      const len = Math.min(windowSize, length - pos);
      let done: number;
      try {
        done = preadFully(fd, buf.subarray(0, len), pos);
      } catch (e) {
        throw ioError(e as NodeJS.ErrnoException, path);
      }
      if (done < len) throw new DatarootError('IO_SHORT_READ', `the file ended at ${pos + done} (it shrank?)`, { file: path, offset: pos + done });
      yield len === windowSize ? whole : whole.subarray(0, len);
      pos += len;
    }
  } finally {
    closeSync(fd);
  }
}
