import { lstatSync, readlinkSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { exists, listDir, readText } from '../store/fsread.js';
import { HEX64 } from '../store/layout.js';
import { driverDirOf } from '../store/layers.js';
import type { Store } from '../store/model.js';
import { layerUsage } from './layers.js';

/**
 * What a data-root holds that nothing uses: staging leftovers of interrupted writes (dockerd's and
 * dataroot's) and orphans (layers, driver directories, metadata, container layers nobody refers
 * to). dockerd ignores them all; `verify` reports them and `gc` removes them.
 */
export interface Leftover {
  code: 'STAGING_LEFTOVER' | 'ORPHAN_LAYER' | 'ORPHAN_DRIVER_DIR' | 'ORPHAN_IMAGE_METADATA' | 'ORPHAN_CONTAINER_LAYER';
  subject: string;
  message: string;
  /** The path the finding is about. */
  path: string;
  /** What gc removes for it. */
  remove: string[];
}

const isStagingName = (n: string): boolean => n.includes('.dataroot-') || n.startsWith('.tmp');

/** overlay2: the l/<link> symlink of a layer directory, if it has one. */
function overlayLink(store: Store, dir: string): string[] {
  if (store.driver !== 'overlay2') return [];
  const link = readText(join(dir, 'link'));
  if (link === undefined || !/^[A-Z2-7]{26}$/.test(link)) return [];
  const p = join(store.L.driverHome('overlay2'), 'l', link);
  try {
    lstatSync(p);
    return [p];
  } catch {
    return [];
  }
}

export function findLeftovers(store: Store): Leftover[] {
  const out: Leftover[] = [];
  const L = store.L;
  const d = store.driver;
  const add = (code: Leftover['code'], subject: string, message: string, path: string, remove: string[] = [path]): void => {
    out.push({ code, subject, message, path, remove });
  };
  // Image store.
  for (const n of listDir(L.imageContentDir(d))) if (!HEX64.test(n)) add('STAGING_LEFTOVER', n, `${n} in imagedb/content is not an image ID (an interrupted write?): dockerd ignores it`, join(L.imageContentDir(d), n));
  for (const n of listDir(L.imageMetadataDir(d))) {
    const dir = join(L.imageMetadataDir(d), n);
    if (HEX64.test(n) && !store.images.has(`sha256:${n}`)) add('ORPHAN_IMAGE_METADATA', `sha256:${n}`, 'metadata for an image whose config is gone: nothing reads it', dir);
    else for (const f of listDir(dir)) if (isStagingName(f)) add('STAGING_LEFTOVER', f, `${n}/${f} is left by an interrupted write`, join(dir, f));
  }
  for (const n of listDir(L.imageRoot(d))) if (isStagingName(n)) add('STAGING_LEFTOVER', n, `${n} is left by an interrupted write`, join(L.imageRoot(d), n));
  // Layer store.
  for (const n of store.layerDb.other) add('STAGING_LEFTOVER', n, `layerdb/sha256/${n} is not a layer (a removal or write that did not finish): dockerd ignores it`, join(L.layerDbDir(d), n));
  const tmp = join(L.imageRoot(d), 'layerdb', 'tmp');
  for (const n of listDir(tmp)) add('STAGING_LEFTOVER', n, `layerdb/tmp/${n} is a write-set that was never committed`, join(tmp, n));
  const use = layerUsage(store);
  const used = new Set<string>([...use.images.keys(), ...use.containers.keys()]);
  for (const id of [...used]) for (let p = store.layers.get(id)?.parent, i = 0; p !== undefined && i < 200; p = store.layers.get(p)?.parent, i++) used.add(p);
  for (const l of store.layers.values()) {
    if (used.has(l.chainId)) continue;
    const dir = l.cacheId !== undefined ? driverDirOf(L, d, l.cacheId) : undefined;
    const extra = dir !== undefined && exists(dir) ? [dir, ...overlayLink(store, dir)] : [];
    add('ORPHAN_LAYER', l.chainId, 'no image or container uses this layer: dockerd keeps it (graphdriver stores are never garbage-collected) and it only takes space', l.dir, [l.dir, ...extra]);
  }
  // Container layers.
  const containerIds = new Set(store.containers.map((c) => c.id));
  const mountDirs = new Set<string>();
  for (const m of store.mounts) {
    const dirs = m.mountId === undefined ? [] : [m.mountId, `${m.mountId}-init`, ...(m.initId !== undefined ? [m.initId] : [])];
    for (const x of dirs) mountDirs.add(x);
    if (!containerIds.has(m.containerId)) {
      const paths = dirs.map((x) => driverDirOf(L, d, x)).filter((p) => exists(p));
      add('ORPHAN_CONTAINER_LAYER', m.containerId, 'a read-write layer whose container is gone: it only takes space', join(L.mountsDir(d), m.containerId), [join(L.mountsDir(d), m.containerId), ...paths, ...paths.flatMap((p) => overlayLink(store, p))]);
    }
  }
  // Driver directories.
  const cacheIds = new Set([...store.layers.values()].map((l) => l.cacheId).filter((x): x is string => x !== undefined));
  const home = d === 'vfs' ? join(L.driverHome('vfs'), 'dir') : L.driverHome(d);
  for (const n of listDir(home)) {
    if (d === 'overlay2' && n === 'l') continue;
    const p = join(home, n);
    if (isStagingName(n)) add('STAGING_LEFTOVER', n, `${n} is a layer directory an interrupted write left`, p);
    else if (!cacheIds.has(n) && !mountDirs.has(n)) add('ORPHAN_DRIVER_DIR', n, 'no layer or container refers to this driver directory: it only takes space', p, [p, ...overlayLink(store, p)]);
  }
  if (d === 'overlay2') {
    const ldir = join(home, 'l');
    const claimed = new Set(out.flatMap((o) => o.remove));
    for (const n of listDir(ldir)) {
      const p = join(ldir, n);
      if (claimed.has(p)) continue;
      let target: string;
      try {
        target = readlinkSync(p);
      } catch {
        continue;
      }
      if (!exists(resolve(ldir, target))) add('ORPHAN_DRIVER_DIR', `l/${n}`, `l/${n} points to ${target}, which does not exist: nothing can use it`, p);
    }
  }
  return out;
}

/** Removes what the leftovers name (deepest paths first). Returns the paths removed. */
export function removeLeftovers(items: Leftover[]): string[] {
  const paths = [...new Set(items.flatMap((i) => i.remove))].sort((a, b) => b.length - a.length);
  for (const p of paths) rmSync(p, { recursive: true, force: true });
  return paths;
}
