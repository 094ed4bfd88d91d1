import type { Store } from '../store/model.js';
import type { Problem } from '../store/problems.js';

export interface LayerRow {
  chainId: string;
  diffId: string | null;
  parent: string | null;
  cacheId: string | null;
  size: number | null;
  dir: string | null;
  dirExists: boolean;
  tarSplit: boolean;
  loadable: boolean;
  /** Image IDs whose chain includes this layer. */
  images: string[];
  /** Container IDs whose read-write layer sits on it (directly). */
  containers: string[];
  /** Not part of any image's chain and no container's parent: dockerd keeps it but nothing uses it. */
  orphan: boolean;
  problems: Problem[];
}

export interface LayersResult {
  layers: LayerRow[];
  problems: Problem[];
}

/** Which images (any prefix of their chain) and containers use each layer. */
export function layerUsage(store: Store): { images: Map<string, Set<string>>; containers: Map<string, Set<string>> } {
  const images = new Map<string, Set<string>>();
  for (const img of store.images.values()) {
    for (const c of store.chainOf(img)) {
      const s = images.get(c) ?? new Set<string>();
      s.add(img.id);
      images.set(c, s);
    }
  }
  const containers = new Map<string, Set<string>>();
  for (const m of store.mounts) {
    if (m.parent === undefined) continue;
    const s = containers.get(m.parent) ?? new Set<string>();
    s.add(m.containerId);
    containers.set(m.parent, s);
  }
  return { images, containers };
}

export function listLayers(store: Store): LayersResult {
  const use = layerUsage(store);
  // A layer that is the parent of a used layer is used too.
  const used = new Set<string>([...use.images.keys(), ...use.containers.keys()]);
  for (const id of [...used]) {
    let p = store.layers.get(id)?.parent;
    for (let i = 0; p !== undefined && i < 200 && !used.has(p); i++) {
      used.add(p);
      p = store.layers.get(p)?.parent;
    }
  }
  const layers: LayerRow[] = [...store.layers.values()].map((l) => ({
    chainId: l.chainId,
    diffId: l.diffId ?? null,
    parent: l.parent ?? null,
    cacheId: l.cacheId ?? null,
    size: l.size ?? null,
    dir: l.driverDir !== undefined ? store.shown(l.driverDir) : null,
    dirExists: l.driverDirExists,
    tarSplit: l.tarSplit,
    loadable: store.isLoadable(l.chainId),
    images: [...(use.images.get(l.chainId) ?? [])].sort(),
    containers: [...(use.containers.get(l.chainId) ?? [])].sort(),
    orphan: !used.has(l.chainId),
    problems: l.problems,
  }));
  // Bottom layers first, then by chain.
  const depth = (id: string): number => {
    let d = 0;
    for (let p = store.layers.get(id)?.parent; p !== undefined && d < 200; p = store.layers.get(p)?.parent) d++;
    return d;
  };
  layers.sort((a, b) => depth(a.chainId) - depth(b.chainId) || (a.chainId < b.chainId ? -1 : 1));
  return { layers, problems: layers.flatMap((l) => l.problems) };
}
