import { readlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Layout } from './layout.js';
import { isDir, readText } from './fsread.js';

/**
 * What a graphdriver keeps for a layer (or a container's read-write layer), by cache-id:
 * overlay2: <home>/<id>/{diff,link,lower,work,merged}; vfs: <root>/vfs/dir/<id> (a full rootfs).
 */
export function diffDir(L: Layout, driver: string, cacheId: string): string {
  return driver === 'vfs' ? join(L.driverHome('vfs'), 'dir', cacheId) : join(L.driverHome(driver), cacheId, 'diff');
}

/** overlay2: the lower dirs of a layer, nearest first, resolved through the l/ links as the driver does. */
export function overlayLowerDirs(L: Layout, cacheId: string): { dirs: string[]; broken: string[] } {
  const home = L.driverHome('overlay2');
  const lower = readText(join(home, cacheId, 'lower'));
  const dirs: string[] = [];
  const broken: string[] = [];
  if (lower === undefined || lower === '') return { dirs, broken };
  for (const entry of lower.split(':')) {
    try {
      const target = readlinkSync(join(home, entry));
      dirs.push(resolve(join(home, 'l'), target));
    } catch {
      broken.push(entry);
    }
  }
  return { dirs, broken };
}

/**
 * GraphDriver.Data as `docker inspect` reports it for a layer or a container's RW layer (overlay2:
 * LowerDir/MergedDir/UpperDir/WorkDir; vfs: null). Paths go through `shown` so they read as the
 * daemon printed them. Null when the layer directory does not exist (dockerd fails there).
 */
export function graphDriverData(store: { L: Layout; driver: string; shown(p: string): string }, cacheId: string): Record<string, string> | null {
  const { L, driver } = store;
  if (driver !== 'overlay2') return null;
  const home = L.driverHome('overlay2');
  if (!isDir(join(home, cacheId))) return null;
  const data: Record<string, string> = {};
  const { dirs } = overlayLowerDirs(L, cacheId);
  if (dirs.length > 0) data['LowerDir'] = dirs.map((d) => store.shown(d)).join(':');
  data['MergedDir'] = store.shown(join(home, cacheId, 'merged'));
  data['UpperDir'] = store.shown(join(home, cacheId, 'diff'));
  data['WorkDir'] = store.shown(join(home, cacheId, 'work'));
  return data;
}
