import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { concatBytes } from '../formats/bytes.js';
import { DatarootError } from '../formats/errors.js';
import { ioError } from './pagesource.js';
import { preadFully } from './pread.js';

/**
 * The whole of a regular file given as input (a value to store), at most `max` bytes. Opened
 * non-blocking and checked with fstat, so a FIFO, a device or a directory is refused at once
 * instead of hanging or being read without end.
 */
export function readRegularFile(path: string, max: number, what = 'input file'): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw ioError(e as NodeJS.ErrnoException, path);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      const kind = st.isDirectory()
        ? 'a directory'
        : st.isFIFO()
          ? 'a FIFO'
          : st.isSocket()
            ? 'a socket'
            : st.isCharacterDevice() || st.isBlockDevice()
              ? 'a device'
              : 'not a regular file';
      throw new DatarootError('IO_NOT_A_FILE', `${what} ${path} is ${kind}; give a regular file`, { file: path });
    }
    if (st.size > max) throw new DatarootError('IO_FILE_TOO_LARGE', `${what} ${path} is ${st.size} bytes; the limit is ${max}`, { file: path });
    const out = new Uint8Array(st.size);
    if (preadFully(fd, out, 0) < out.length) throw new DatarootError('IO_SHORT_READ', `${path} shrank while it was read`, { file: path });
    return out;
  } finally {
    closeSync(fd);
  }
}

/** All of a stream (stdin), at most `max` bytes. */
export async function readStreamBounded(input: AsyncIterable<Uint8Array>, max: number, what = 'standard input'): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let len = 0;
  for await (const c of input) {
    len += c.length;
    if (len > max) throw new DatarootError('IO_FILE_TOO_LARGE', `${what} holds more than ${max} bytes`);
    parts.push(c);
  }
  return concatBytes(parts, len);
}
