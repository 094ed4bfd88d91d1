import { closeSync, constants, fstatSync, openSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { DEFAULT_UNPACK_LIMITS, looksLikeTarArchive, unpackRoot, type UnpackHooks, type UnpackLimits } from '../io/archive.js';
import { Confined } from '../io/confined.js';
import { isBoltMagic } from './bolt.js';
import { HEX64, isKnownDriver, LAYOUT, ROOT_ENTRIES, type Layout } from './layout.js';

export interface OpenedRoot {
  /** What the user named (a directory or an archive). */
  source: string;
  /** The directory read (a private temp dir for archives). */
  dir: string;
  /** Every read of the root goes through this. */
  fs: Confined;
  layout: Layout;
  fromArchive: boolean;
  /** Names under image/ (graphdriver image stores), known drivers or not. */
  imageStores: string[];
  /**
   * Where a graphdriver image store was tampered with rather than absent: `image` when it is not
   * a real directory (a symlink, a file), `image/<driver>` for a known driver's name there that is
   * not one. The graphdriver store is then read (and reports it), not skipped as if there were none.
   */
  imageTampered: string[];
  /** What could not be reproduced when an archive was unpacked. */
  unpackSkipped: string[];
  close: () => void;
}

export interface OpenRootOptions {
  /** Budget of an archive root (default: 100 × the archive's size, at least 256 MiB, at most 16 GiB). */
  unpackLimit?: number;
  /** Test hooks of the unpacking. */
  unpackHooks?: UnpackHooks;
}

/**
 * What marks a directory as a Docker (or containerd) data-root: one of these must be there. A
 * directory that merely holds a `network/` or `tmp/` (such as /etc) is not one.
 */
function markers(fs: Confined): string[] {
  const found: string[] = [];
  for (const d of fs.names('image')) if (fs.isDir(`image/${d}`)) found.push(`image/${d}/`);
  const head = (rel: string): Buffer | undefined => {
    try {
      return fs.readHead(rel, 64);
    } catch {
      return undefined;
    }
  };
  for (const f of [LAYOUT.volumesDb, LAYOUT.networkDb, 'containerd/daemon/io.containerd.metadata.v1.bolt/meta.db', 'io.containerd.metadata.v1.bolt/meta.db']) {
    const h = head(f);
    if (h !== undefined && (h.length === 0 || isBoltMagic(h))) found.push(f);
  }
  if (fs.names('containers').some((n) => HEX64.test(n))) found.push('containers/<id>/');
  if (fs.isDir('graph') && fs.names('').some((n) => n.startsWith('repositories-'))) found.push('graph/');
  if (fs.isDir('overlay2/l')) found.push('overlay2/l/');
  return found;
}

/** The budget for unpacking an archive of `size` bytes. */
function limitsFor(size: number, o: OpenRootOptions): UnpackLimits {
  if (o.unpackLimit !== undefined) return { maxBytes: o.unpackLimit, maxEntries: Math.max(DEFAULT_UNPACK_LIMITS.maxEntries, Math.floor(o.unpackLimit / 512)) };
  const maxBytes = Math.min(DEFAULT_UNPACK_LIMITS.maxBytes, Math.max(256 << 20, size * 100));
  return { maxBytes, maxEntries: DEFAULT_UNPACK_LIMITS.maxEntries };
}

/**
 * Opens a data-root given as a directory or a `.tar`/`.tar.gz` archive (unpacked by dataroot's
 * own reader into a private temp dir that close() removes). Refuses what is not a data-root.
 */
export async function openRoot(source: string, o: OpenRootOptions = {}): Promise<OpenedRoot> {
  const abs = resolve(source);
  let fd: number;
  try {
    fd = openSync(abs, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new DatarootError('IO_PERMISSION', `data-root ${source}: permission denied`, { file: source });
    throw new DatarootError('STORE_NOT_FOUND', `data-root ${source} does not exist`, { file: source });
  }
  const st = fstatSync(fd);
  closeSync(fd);
  let dir = abs;
  let close = (): void => {};
  let fromArchive = false;
  let unpackSkipped: string[] = [];
  if (st.isFile()) {
    if (!looksLikeTarArchive(abs)) {
      throw new DatarootError('STORE_NOT_A_DATAROOT', `${source} is a file, not a data-root directory or a .tar/.tar.gz archive`, { file: source });
    }
    const u = await unpackRoot(abs, limitsFor(st.size, o), o.unpackHooks);
    dir = u.dir;
    close = u.cleanup;
    fromArchive = true;
    unpackSkipped = u.skipped;
  } else if (!st.isDirectory()) {
    throw new DatarootError('STORE_NOT_A_DATAROOT', `${source} is neither a directory nor an archive`, { file: source });
  }
  try {
    const fs = Confined.open(dir, 'data-root');
    const found = markers(fs);
    if (found.length === 0) {
      const names = fs.names('');
      const known = names.filter((n) => ROOT_ENTRIES.includes(n));
      throw new DatarootError(
        'STORE_NOT_A_DATAROOT',
        `${source} is not a Docker data-root: none of image/<driver>/, containers/<id>/, volumes/metadata.db, network/files/local-kv.db or containerd's meta.db is there${
          known.length > 0 ? ` (it has ${known.join(', ')})` : names.length === 0 ? ' (it is empty)' : ''
        }`,
        { file: source },
      );
    }
    const imageStores = fs.names('image').filter((d) => fs.isDir(`image/${d}`));
    const image = fs.lstat('image');
    const imageTampered =
      image === undefined
        ? []
        : !image.isDirectory()
          ? ['image']
          : fs
              .names('image')
              .filter((d) => isKnownDriver(d) && !imageStores.includes(d))
              .map((d) => `image/${d}`);
    return { source, dir, fs, layout: LAYOUT, fromArchive, imageStores, imageTampered, unpackSkipped, close };
  } catch (e) {
    close();
    throw e;
  }
}

/** Runs fn on an opened root and always closes it. */
export async function withRoot<T>(source: string, fn: (r: OpenedRoot) => Promise<T> | T, o: OpenRootOptions = {}): Promise<T> {
  const r = await openRoot(source, o);
  try {
    return await fn(r);
  } finally {
    r.close();
  }
}

/** The real path of a directory root, as dockerd resolves its data-root. */
export function realDir(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return dir;
  }
}
