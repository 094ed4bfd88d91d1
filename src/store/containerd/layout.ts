/**
 * Every path of a containerd root in one place (relative to the root): the metadata plugin's
 * meta.db, the local content store, the snapshotters. containerd 1.6 to 2.x use the same names.
 */
export const CD = {
  metaDb: 'io.containerd.metadata.v1.bolt/meta.db',
  content: 'io.containerd.content.v1.content',
  blobsDir: 'io.containerd.content.v1.content/blobs/sha256',
  ingestDir: 'io.containerd.content.v1.content/ingest',
  snapshotterDir: (name: string): string => `io.containerd.snapshotter.v1.${name}`,
  snapshotterDb: (name: string): string => `io.containerd.snapshotter.v1.${name}/metadata.db`,
  /** The directory of a snapshot of the overlayfs or native snapshotter (id already checked). */
  snapshotDir: (name: string, id: string): string => `io.containerd.snapshotter.v1.${name}/snapshots/${id}`,
  snapshotFs: (name: string, id: string): string =>
    name === 'native' ? `io.containerd.snapshotter.v1.${name}/snapshots/${id}` : `io.containerd.snapshotter.v1.${name}/snapshots/${id}/fs`,
  /** `sha256:<hex>` (checked) → its blob file. */
  blob: (digest: string): string => `io.containerd.content.v1.content/blobs/sha256/${digest.slice(7)}`,
} as const;

/** Where dockerd keeps the root of the containerd it starts itself (relative to its data-root). */
export const DOCKER_CONTAINERD_ROOT = 'containerd/daemon';

/** The root of a system containerd (Docker 29 with a system containerd, Kubernetes nodes). */
export const SYSTEM_CONTAINERD_ROOT = '/var/lib/containerd';

/** The meta.db schema versions dataroot reads: 3 is containerd 1.6 and 1.7, 4 is 2.x. */
export const KNOWN_DB_VERSIONS = [1, 2, 3, 4];

/** Snapshotters whose metadata.db and `snapshots/<id>` layout dataroot reads. */
export const FILE_SNAPSHOTTERS = ['overlayfs', 'native'];
