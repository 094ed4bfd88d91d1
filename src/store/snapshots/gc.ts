import type { SnapshotStore } from './store.js';

export interface RemoveResult {
  removed: string[];
  packsRemoved: string[];
  bytesFreed: number;
}

/**
 * `snapshot rm`: unregisters snapshots and removes their manifests, then the packs no remaining
 * snapshot uses (and packs an interrupted run left without an index). Every name was checked
 * against its format when the registry was read (formats/snapstore/registry.ts), so nothing
 * outside the store's snapshots/ and packs/ is touched whatever the registry says. Every name is
 * looked up before anything is removed.
 */
export function removeSnapshots(store: SnapshotStore, names: string[]): RemoveResult {
  for (const n of names) store.find(n);
  for (const n of names) store.removeManifest(store.unregister(n));
  const used = new Set<string>();
  for (const s of store.snapshots()) for (const e of store.readManifest(s).entries()) if (e.sha256 !== undefined) used.add(e.sha256);
  const packs = store.unusedPacks(used);
  let bytesFreed = 0;
  for (const p of packs) {
    bytesFreed += store.packBytes(p);
    store.removePack(p);
  }
  return { removed: names, packsRemoved: packs, bytesFreed };
}
