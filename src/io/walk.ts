import { closeSync, lstatSync, openSync, readdirSync, readSync, constants, type Stats } from 'node:fs';
import { join } from 'node:path';

/** dev_t as glibc encodes it: major and minor. */
export function devParts(rdev: bigint): [number, number] {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return [Number(major), Number(minor)];
}

export interface WalkEntry {
  /** Path relative to the walk's root, with `/` separators. */
  rel: string;
  abs: string;
  stat: Stats;
}

/** Depth-first walk in name order; symlinks are reported, never followed. */
export function* walkTree(root: string, rel = ''): Generator<WalkEntry> {
  let names: string[];
  try {
    names = readdirSync(rel === '' ? root : join(root, rel));
  } catch {
    return;
  }
  names.sort();
  for (const name of names) {
    const r = rel === '' ? name : `${rel}/${name}`;
    const abs = join(root, r);
    let stat: Stats;
    try {
      stat = lstatSync(abs);
    } catch {
      continue;
    }
    yield { rel: r, abs, stat };
    if (stat.isDirectory()) yield* walkTree(root, r);
  }
}

/** The first `n` bytes of a file (fewer when it is shorter), read without touching atime where allowed. */
export function readHead(path: string, n: number): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOATIME);
  } catch {
    fd = openSync(path, constants.O_RDONLY);
  }
  try {
    const buf = Buffer.alloc(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}
