import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RegisteredSnapshot } from '../formats/snapstore/registry.js';
import { acquireLock } from '../io/lock.js';
import { LAYOUT } from '../store/layout.js';
import type { SnapshotStore } from '../store/snapshots/store.js';
import { takeSnapshot } from './snapshot.js';
import { removeTree } from '../io/confined.js';

/**
 * `dataroot reset`: snapshots the root into a store, under the daemon's lock, then empties it.
 * Only the root's own entries are removed (a symlink among them is removed, never followed), and
 * only after the snapshot is registered: a failed snapshot leaves the root as it was.
 */
export async function resetRoot(store: SnapshotStore, root: string, o: { name?: string }): Promise<{ backup: RegisteredSnapshot; emptied: string }> {
  const volumesDb = join(root, LAYOUT.volumesDb);
  const lock = existsSync(volumesDb) ? await acquireLock(volumesDb) : undefined;
  try {
    const r = await takeSnapshot(store, root, { ...(o.name !== undefined ? { name: o.name } : {}), exclude: [], metadataOnly: [], live: false });
    for (const n of readdirSync(root)) removeTree(join(root, n));
    return { backup: r.snapshot, emptied: root };
  } finally {
    await lock?.release();
  }
}
