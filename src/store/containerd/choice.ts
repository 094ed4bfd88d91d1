import type { OpenedRoot } from '../root.js';

/**
 * Which image store dockerd 29 uses on a data-root, with its default configuration
 * (daemon/image_store_choice.go): the containerd store, unless a "prior" graphdriver directory
 * (`<root>/overlay2`, `fuse-overlayfs`, `btrfs` or `zfs`, not `vfs`) holds anything
 * (graphdriver.HasPriorDriver), which keeps an upgraded host on its graphdriver. A daemon.json
 * choice (`features.containerd-snapshotter`, `storage-driver`) is not in the data-root and is not
 * known here.
 */
export interface StoreChoice {
  uses: 'graphdriver' | 'containerd';
  reason: string;
  graphdriver: boolean;
  containerd: boolean;
}

const PRIOR = ['overlay2', 'fuse-overlayfs', 'btrfs', 'zfs', 'aufs', 'devicemapper'];

export function chooseImageStore(r: OpenedRoot, hasContainerd: boolean): StoreChoice {
  const graph = r.imageStores.length > 0 || r.imageTampered.length > 0;
  const prior = PRIOR.filter((d) => r.fs.isDir(d) && r.fs.names(d).length > 0);
  if (prior.length > 0)
    return {
      uses: 'graphdriver',
      reason: `${prior.join(', ')}/ holds a prior graphdriver's layers: dockerd 29 keeps using the graphdriver (daemon/image_store_choice.go, "graphdriver-prior")`,
      graphdriver: graph,
      containerd: hasContainerd,
    };
  if (hasContainerd || !graph)
    return {
      uses: 'containerd',
      reason: 'no prior graphdriver directory: dockerd 29 uses the containerd image store by default',
      graphdriver: graph,
      containerd: hasContainerd,
    };
  return { uses: 'graphdriver', reason: 'only a graphdriver store is present', graphdriver: graph, containerd: hasContainerd };
}
