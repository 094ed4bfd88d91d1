import type { Confined } from '../io/confined.js';
import { buildCacheOf } from '../store/buildkit.js';
import { BUILDKIT_ID, LINK_ID, LINK_TARGET, MOUNT_ID } from '../store/ids.js';
import { HEX64 } from '../store/layout.js';
import type { Store } from '../store/model.js';
import { layerUsage } from './layers.js';

/**
 * What a data-root holds that nothing uses: staging leftovers of interrupted writes (dockerd's and
 * dataroot's) and orphans (layers, driver directories, metadata, container layers nobody refers
 * to). dockerd ignores them all; `verify` reports them and `gc` removes them.
 *
 * Every path named here is relative to the root and built only from names listed in a directory
 * of the root or from IDs that passed their format check: a cache-id of `../../victim` never
 * becomes a path to remove.
 */
export interface Leftover {
  code: 'STAGING_LEFTOVER' | 'ORPHAN_LAYER' | 'ORPHAN_DRIVER_DIR' | 'ORPHAN_IMAGE_METADATA' | 'ORPHAN_CONTAINER_LAYER';
  subject: string;
  message: string;
  /** The path the finding is about (relative to the root). */
  path: string;
  /** What gc removes for it (relative to the root). */
  remove: string[];
}

const isStagingName = (n: string): boolean => n.includes('.dataroot-') || n.startsWith('.tmp');

export function findLeftovers(store: Store): Leftover[] {
  const out: Leftover[] = [];
  const L = store.L;
  const d = store.driver;
  const fs = store.fs;
  const a = store.adapter;
  const add = (code: Leftover['code'], subject: string, message: string, path: string, remove: string[] = [path]): void => {
    out.push({ code, subject, message, path, remove });
  };
  // Image store.
  for (const n of fs.names(L.imageContentDir(d)))
    if (!HEX64.test(n))
      add('STAGING_LEFTOVER', n, `${n} in imagedb/content is not an image ID (an interrupted write?): dockerd ignores it`, `${L.imageContentDir(d)}/${n}`);
  for (const n of fs.names(L.imageMetadataDir(d))) {
    const dir = `${L.imageMetadataDir(d)}/${n}`;
    if (HEX64.test(n) && !store.images.has(`sha256:${n}`))
      add('ORPHAN_IMAGE_METADATA', `sha256:${n}`, 'metadata for an image whose config is gone: nothing reads it', dir);
    else if (fs.isDir(dir))
      for (const f of fs.names(dir)) if (isStagingName(f)) add('STAGING_LEFTOVER', f, `${n}/${f} is left by an interrupted write`, `${dir}/${f}`);
  }
  for (const n of fs.names(L.imageRoot(d))) if (isStagingName(n)) add('STAGING_LEFTOVER', n, `${n} is left by an interrupted write`, `${L.imageRoot(d)}/${n}`);
  // Layer store.
  for (const n of store.layerDb.other)
    add('STAGING_LEFTOVER', n, `layerdb/sha256/${n} is not a layer (a removal or write that did not finish): dockerd ignores it`, `${L.layerDbDir(d)}/${n}`);
  for (const n of fs.names(L.layerDbTmp(d))) add('STAGING_LEFTOVER', n, `layerdb/tmp/${n} is a write-set that was never committed`, `${L.layerDbTmp(d)}/${n}`);
  const use = layerUsage(store);
  // BuildKit's build cache holds layers of its own (an exported result whose image is gone).
  const bk = buildCacheOf(store);
  const used = new Set<string>([...use.images.keys(), ...use.containers.keys(), ...bk.layers]);
  for (const id of [...used]) for (let p = store.layers.get(id)?.parent, i = 0; p !== undefined && i < 200; p = store.layers.get(p)?.parent, i++) used.add(p);
  for (const l of store.layers.values()) {
    if (used.has(l.chainId) || (!bk.complete && BUILDKIT_ID.test(l.cacheId ?? ''))) continue;
    const extra = l.cacheId !== undefined && fs.exists(a.layerDir(l.cacheId)) ? a.ownedPaths(fs, l.cacheId) : [];
    add(
      'ORPHAN_LAYER',
      l.chainId,
      'no image or container uses this layer: dockerd keeps it (graphdriver stores are never garbage-collected) and it only takes space',
      l.dir,
      [l.dir, ...extra],
    );
  }
  // Container layers.
  const containerIds = new Set(store.containers.map((c) => c.id));
  const mountDirs = new Set<string>();
  for (const m of store.mounts) {
    const ids = m.mountId === undefined ? [] : [m.mountId, `${m.mountId}-init`, ...(m.initId !== undefined ? [m.initId] : [])];
    for (const x of ids) mountDirs.add(x);
    if (!containerIds.has(m.containerId)) {
      const paths = ids.filter((x) => MOUNT_ID.test(x) && fs.exists(a.layerDir(x))).flatMap((x) => a.ownedPaths(fs, x));
      const dir = `${L.mountsDir(d)}/${m.containerId}`;
      add('ORPHAN_CONTAINER_LAYER', m.containerId, 'a read-write layer whose container is gone: it only takes space', dir, [dir, ...paths]);
    }
  }
  // Driver directories.
  const cacheIds = new Set([...store.layers.values()].map((l) => l.cacheId).filter((x): x is string => x !== undefined));
  for (const { name, rel } of a.layerDirNames(fs)) {
    if (isStagingName(name)) add('STAGING_LEFTOVER', name, `${name} is a layer directory an interrupted write left`, rel);
    else if (!MOUNT_ID.test(name))
      continue; // not a layer directory of the driver's: never removed
    else if (bk.dirs.has(name) || (!bk.complete && BUILDKIT_ID.test(name)))
      continue; // BuildKit's build cache: see `builder du`
    else if (!cacheIds.has(name) && !mountDirs.has(name)) {
      const why = bk.unloadableDirs.get(name);
      add(
        'ORPHAN_DRIVER_DIR',
        name,
        why !== undefined
          ? `used only by ${why}: it only takes space`
          : 'no layer, container or build-cache record refers to this driver directory: it only takes space',
        rel,
        a.ownedPaths(fs, name),
      );
    }
  }
  if (d === 'overlay2' || d === 'fuse-overlayfs') overlayLinkLeftovers(fs, d, out, add);
  return out;
}

/** l/ links that lead nowhere, or are not links of the driver's form. */
function overlayLinkLeftovers(
  fs: Confined,
  home: string,
  out: Leftover[],
  add: (code: Leftover['code'], subject: string, message: string, path: string) => void,
): void {
  const claimed = new Set(out.flatMap((o) => o.remove));
  for (const n of fs.names(`${home}/l`)) {
    const p = `${home}/l/${n}`;
    if (claimed.has(p)) continue;
    const target = fs.readlink(p);
    if (target === undefined) continue;
    const m = LINK_TARGET.exec(target);
    if (!LINK_ID.test(n) || m === null) continue; // not the driver's: reported by verify, never removed
    if (!fs.isDir(`${home}/${m[1]}/diff`)) add('ORPHAN_DRIVER_DIR', `l/${n}`, `l/${n} points to ${target}, which does not exist: nothing can use it`, p);
  }
}

/** Removes what the leftovers name (deepest paths first), beneath the root only. Returns the paths removed. */
export function removeLeftovers(fs: Confined, items: Leftover[]): string[] {
  const paths = [...new Set(items.flatMap((i) => i.remove))].sort((a, b) => b.length - a.length);
  for (const p of paths) fs.remove(p);
  return paths;
}
