import { closeSync, constants, fstatSync, mkdtempSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { TarReader } from '../formats/tar/reader.js';
import { removeOnExit } from './cleanup.js';
import { LayerExtractor } from './extract.js';
import { compressionOf, decompress, fileChunks, headOf } from './streams.js';

/** True when the path names a tar archive by its ending. */
export function looksLikeTarArchive(path: string): boolean {
  return /\.(tar|tar\.gz|tgz|tar\.zst|tar\.xz|tar\.bz2)$/i.test(path);
}

export interface Unpacked {
  dir: string;
  /** What could not be reproduced (devices without privileges, file capabilities). */
  skipped: string[];
  cleanup: () => void;
}

export interface UnpackLimits {
  /** Most bytes of file data unpacked. */
  maxBytes: number;
  /** Most entries unpacked. */
  maxEntries: number;
}

/** The default budget of an archive root: a bomb stops here; `--unpack-limit` raises it. */
export const DEFAULT_UNPACK_LIMITS: UnpackLimits = { maxBytes: 16 * 2 ** 30, maxEntries: 4_000_000 };

/** Parses `--unpack-limit`: a size with an optional K/M/G/T suffix (powers of 1024). */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(s.trim());
  if (m === null) throw new DatarootError('USAGE_BAD_SIZE', `${JSON.stringify(s)} is not a size (examples: 500M, 20G)`);
  const mult = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  const n = Math.floor(Number(m[1]) * mult);
  if (!Number.isSafeInteger(n) || n <= 0) throw new DatarootError('USAGE_BAD_SIZE', `${JSON.stringify(s)} is out of range`);
  return n;
}

/**
 * Unpacks a data-root archive with dataroot's own tar reader into a private 0700 temp dir, as
 * evidence to be read, never run: names are kept beneath the dir (an absolute or `..` name refuses
 * the archive), nothing is written through a symlink, setuid and setgid bits are dropped, devices
 * and FIFOs are made with mode 0 (overlay whiteouts, 0/0 character devices, are evidence), file
 * capabilities are not set, and file data and entries are bounded. The dir is removed by
 * `cleanup()`, and on SIGINT, SIGTERM, SIGHUP or exit. A corrupt or hostile archive is a coded
 * error and nothing is left behind.
 */
export interface UnpackHooks {
  /** After each entry (tests stop the process mid-unpack here). */
  entry?: (n: number, dir: string) => Promise<void> | void;
  /** After the last entry. */
  done?: (dir: string) => Promise<void> | void;
}

export async function unpackRoot(file: string, limits: UnpackLimits = DEFAULT_UNPACK_LIMITS, hooks: UnpackHooks = {}): Promise<Unpacked> {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    throw new DatarootError('STORE_NOT_FOUND', `${file} does not exist or cannot be read`, { file });
  }
  const st = fstatSync(fd);
  closeSync(fd);
  if (!st.isFile()) throw new DatarootError('STORE_BAD_ARCHIVE', `${file} is not a regular file`, { file });
  // mkdtemp makes the directory 0700; nothing in the archive changes that.
  const dir = mkdtempSync(join(tmpdir(), 'dataroot-root-'));
  const cleanup = removeOnExit(dir);
  const skipped: string[] = [];
  try {
    const kind = compressionOf(headOf(file, 8));
    const src = decompress(kind, fileChunks(file), { what: file, maxBytes: limits.maxBytes * 2 + (64 << 20) });
    const reader = new TarReader(src);
    const x = new LayerExtractor(dir, 'keep', new Map(), 8, { ...limits, onSkip: (w) => skipped.length < 1000 && skipped.push(w) });
    try {
      let n = 0;
      for (let e = await reader.next(); e !== undefined; e = await reader.next()) {
        await x.apply(e, reader.data());
        await hooks.entry?.(++n, dir);
      }
      await x.finish();
      await hooks.done?.(dir);
    } catch (e) {
      await x.abort();
      throw e;
    }
  } catch (e) {
    cleanup();
    if (e instanceof DatarootError) {
      const code = e.code === 'ARCHIVE_TOO_LARGE' || e.code === 'ARCHIVE_DECOMPRESSION_BOMB' ? 'ARCHIVE_TOO_LARGE' : 'STORE_BAD_ARCHIVE';
      throw new DatarootError(code, `cannot unpack data-root archive: ${e.message}`, { file });
    }
    const err = e as NodeJS.ErrnoException;
    throw new DatarootError('STORE_BAD_ARCHIVE', `cannot unpack data-root archive: ${err.message}`, { file });
  }
  return { dir, skipped, cleanup };
}
