import { DatarootError } from '../../formats/errors.js';
import { Confined } from '../../io/confined.js';
import { realDir, type OpenedRoot } from '../root.js';
import { CD, DOCKER_CONTAINERD_ROOT } from './layout.js';
import type { CdLocation } from './model.js';

/** Whether a base holds containerd's meta.db (a regular file, not followed through a symlink). */
export function hasMetaDb(fs: Confined, base = ''): boolean {
  return fs.kind(base === '' ? CD.metaDb : `${base}/${CD.metaDb}`) === 'file';
}

/**
 * The containerd root inside an opened data-root: `<root>/containerd/daemon` (the containerd
 * dockerd starts itself), or the root itself when it is a containerd root (`/var/lib/containerd`
 * given as --root or --containerd-root, or its archive). Undefined when neither holds a meta.db.
 */
export function containerdIn(r: OpenedRoot, how: 'flag' | 'auto'): { fs: Confined; location: CdLocation } | undefined {
  const shownBase = r.fromArchive ? undefined : realDir(r.dir);
  if (hasMetaDb(r.fs)) {
    return { fs: r.fs, location: { dir: r.dir, shown: shownBase ?? '/var/lib/containerd', how: how === 'flag' ? 'flag' : 'root-itself' } };
  }
  if (hasMetaDb(r.fs, DOCKER_CONTAINERD_ROOT)) {
    const fs = r.fs.sub(DOCKER_CONTAINERD_ROOT);
    if (fs === undefined) return undefined;
    return {
      fs,
      location: {
        dir: `${r.dir}/${DOCKER_CONTAINERD_ROOT}`,
        shown: `${shownBase ?? '/var/lib/docker'}/${DOCKER_CONTAINERD_ROOT}`,
        how: how === 'flag' ? 'flag' : 'docker-daemon',
      },
    };
  }
  return undefined;
}

/** A system containerd root directory (default /var/lib/containerd), when it holds a meta.db. */
export function systemContainerd(dir: string): { fs: Confined; location: CdLocation } | undefined {
  let fs: Confined;
  try {
    fs = Confined.open(dir, 'containerd root');
  } catch (e) {
    if (e instanceof DatarootError) return undefined;
    throw e;
  }
  if (!hasMetaDb(fs)) return undefined;
  return { fs, location: { dir, shown: realDir(dir), how: 'system' } };
}
