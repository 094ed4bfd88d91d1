import { closeSync, constants, fstatSync, lstatSync, openSync } from 'node:fs';
import { DatarootError } from '../../formats/errors.js';
import { preadFully } from '../../io/pread.js';

/**
 * How the snapshot store opens its own files: a store may have been copied from elsewhere and
 * prepared by someone else, so a file is opened without following a symlink (O_NOFOLLOW), without
 * blocking on a FIFO (O_NONBLOCK), checked to be a regular file (fstat), and read whole only up
 * to a bound for its kind.
 */
export const LIMITS = {
  marker: 64 << 10,
  registry: 256 << 20,
  index: 1 << 30,
  manifest: 2 ** 31,
} as const;

/** Opens a store file to read: a regular file, never through a symlink, never blocking. */
export function openStoreFile(path: string, missing: () => DatarootError): number {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw missing();
    if (code === 'ELOOP') throw new DatarootError('SNAPSHOT_STORE_SYMLINK', `${path} is a symlink: a store's files are never followed out of it`, { file: path });
    throw new DatarootError('SNAPSHOT_STORE_UNREADABLE', `${path} cannot be opened (${code ?? (e as Error).message})`, { file: path });
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new DatarootError('SNAPSHOT_STORE_NOT_A_FILE', `${path} is not a regular file (a FIFO, device or directory where a store file belongs)`, { file: path });
  }
  return fd;
}

/** A whole store file, at most `max` bytes (SNAPSHOT_STORE_FILE_TOO_LARGE past it). */
export function readStoreFile(path: string, max: number, missing: () => DatarootError): Buffer {
  const fd = openStoreFile(path, missing);
  try {
    const size = fstatSync(fd).size;
    if (size > max) throw new DatarootError('SNAPSHOT_STORE_FILE_TOO_LARGE', `${path} is ${size} bytes, more than the ${max} a file of its kind may have`, { file: path });
    const b = Buffer.allocUnsafe(size);
    const n = preadFully(fd, b, 0);
    return n === size ? b : b.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** Checks that a directory of the store is a real directory, not a symlink out of it. */
export function checkStoreDir(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    throw new DatarootError('SNAPSHOT_STORE_CORRUPT', `${path} is missing`, { file: path });
  }
  if (st.isSymbolicLink()) throw new DatarootError('SNAPSHOT_STORE_SYMLINK', `${path} is a symlink: a store's directories are never followed out of it`, { file: path });
  if (!st.isDirectory()) throw new DatarootError('SNAPSHOT_STORE_CORRUPT', `${path} is not a directory`, { file: path });
}
