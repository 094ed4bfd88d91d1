import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatarootError } from '../formats/errors.js';

/** True when the path names a tar archive by its ending. */
export function looksLikeTarArchive(path: string): boolean {
  return /\.(tar|tar\.gz|tgz|tar\.zst)$/i.test(path);
}

export interface Unpacked {
  dir: string;
  cleanup(): void;
}

/**
 * Unpacks a data-root archive (numeric owners, modes, device nodes, symlinks, xattrs kept) into a
 * private temp dir. GNU tar detects the compression. A corrupt archive is a coded error and
 * nothing is left behind.
 */
export function unpackTar(file: string): Unpacked {
  let st;
  try {
    st = statSync(file);
  } catch {
    throw new DatarootError('STORE_NOT_FOUND', `${file} does not exist`, { file });
  }
  if (!st.isFile()) throw new DatarootError('STORE_BAD_ARCHIVE', `${file} is not a regular file`, { file });
  const dir = mkdtempSync(join(tmpdir(), 'dataroot-root-'));
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  const r = spawnSync('tar', ['--numeric-owner', '--same-permissions', '--xattrs', '--xattrs-include=*', '-xf', file, '-C', dir], {
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  if (r.error !== undefined || r.status !== 0) {
    cleanup();
    const why = (r.stderr ?? r.error?.message ?? '').trim().split('\n').filter(Boolean).slice(-1)[0] ?? `exit ${r.status}`;
    throw new DatarootError('STORE_BAD_ARCHIVE', `cannot unpack data-root archive: ${why}`, { file });
  }
  return { dir, cleanup };
}
