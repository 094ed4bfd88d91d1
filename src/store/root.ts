import { readdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { looksLikeTarArchive, unpackTar } from '../io/archive.js';
import { KNOWN_DRIVERS, Layout, ROOT_ENTRIES, SUPPORTED_DRIVERS } from './layout.js';

export interface OpenedRoot {
  /** What the user named (a directory or an archive). */
  source: string;
  /** The directory read (a private temp dir for archives). */
  dir: string;
  layout: Layout;
  fromArchive: boolean;
  /** Graphdriver names found under image/. */
  drivers: string[];
  close(): void;
}

/**
 * Opens a data-root given as a directory or a `.tar`/`.tar.gz` archive (unpacked into a private
 * temp dir that close() removes). Refuses what is not a data-root.
 */
export function openRoot(source: string): OpenedRoot {
  const abs = resolve(source);
  let st;
  try {
    st = statSync(abs);
  } catch {
    throw new DatarootError('STORE_NOT_FOUND', `data-root ${source} does not exist`, { file: source });
  }
  let dir = abs;
  let close = (): void => {};
  let fromArchive = false;
  if (st.isFile()) {
    if (!looksLikeTarArchive(abs)) {
      throw new DatarootError('STORE_NOT_A_DATAROOT', `${source} is a file, not a data-root directory or a .tar/.tar.gz archive`, { file: source });
    }
    const u = unpackTar(abs);
    dir = u.dir;
    close = u.cleanup;
    fromArchive = true;
  } else if (!st.isDirectory()) {
    throw new DatarootError('STORE_NOT_A_DATAROOT', `${source} is neither a directory nor an archive`, { file: source });
  }
  try {
    const names = readdirSync(dir);
    const known = names.filter((n) => ROOT_ENTRIES.includes(n));
    if (known.length < 2) {
      throw new DatarootError(
        'STORE_NOT_A_DATAROOT',
        `${source} is not a Docker data-root: expected entries such as image/, containers/, volumes/, network/; found ${names.length === 0 ? 'nothing' : names.slice(0, 6).join(', ')}`,
        { file: source },
      );
    }
    let drivers: string[] = [];
    try {
      drivers = readdirSync(new Layout(dir).root + '/image').filter((d) => (KNOWN_DRIVERS as readonly string[]).includes(d));
    } catch {
      drivers = [];
    }
    return { source, dir, layout: new Layout(dir), fromArchive, drivers, close };
  } catch (e) {
    close();
    throw e;
  }
}

export function isSupportedDriver(d: string): boolean {
  return (SUPPORTED_DRIVERS as readonly string[]).includes(d);
}

/** Runs fn on an opened root and always closes it. */
export async function withRoot<T>(source: string, fn: (r: OpenedRoot) => Promise<T> | T): Promise<T> {
  const r = openRoot(source);
  try {
    return await fn(r);
  } finally {
    r.close();
  }
}
