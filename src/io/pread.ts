import { readSync } from 'node:fs';

/**
 * Positional reads into `buf` from `position` until it is full or the file ends (a read returns
 * no bytes); returns how many bytes were read. Whether a short count is an error (the file shrank
 * while it was read) is the caller's to say.
 */
export function preadFully(fd: number, buf: Uint8Array, position: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}
