import type { BoltChange } from './bolt.js';

/**
 * The containerd part of `diff`'s summary in Docker's terms: images, containers, snapshots and
 * blobs of each namespace added, removed or changed, read from the key-level differences of
 * containerd's meta.db (wherever it is: `containerd/daemon/…` of a Docker root or a containerd
 * root itself). An object whose own bucket appears or goes is added or removed; a change inside
 * it is a change of it.
 */
export interface ContainerdSummary {
  images: { added: string[]; removed: string[]; changed: string[] };
  containers: { added: string[]; removed: string[]; changed: string[] };
  snapshots: { added: string[]; removed: string[]; changed: string[] };
  blobs: { added: string[]; removed: string[]; changed: string[] };
}

const OBJECTS: { kind: keyof ContainerdSummary; path: string[] }[] = [
  { kind: 'images', path: ['images'] },
  { kind: 'containers', path: ['containers'] },
  { kind: 'blobs', path: ['content', 'blob'] },
];

export function isMetaDbPath(path: string): boolean {
  return path === 'io.containerd.metadata.v1.bolt/meta.db' || path.endsWith('/io.containerd.metadata.v1.bolt/meta.db');
}

/** Adds the objects a meta.db's changes touch to the summary (created on first use). */
export function containerdSummary(changes: BoltChange[], into: { containerd?: ContainerdSummary }): void {
  const s = (into.containerd ??= {
    images: { added: [], removed: [], changed: [] },
    containers: { added: [], removed: [], changed: [] },
    snapshots: { added: [], removed: [], changed: [] },
    blobs: { added: [], removed: [], changed: [] },
  });
  const own = new Map<string, { kind: keyof ContainerdSummary; change: 'added' | 'removed' | 'changed' }>();
  const touched = new Map<string, keyof ContainerdSummary>();
  for (const c of changes) {
    const full = [...c.path, c.key];
    if (full[0] !== 'v1' || full.length < 4) continue;
    const ns = full[1]!;
    const rest = full.slice(2);
    let kind: keyof ContainerdSummary | undefined;
    let id: string | undefined;
    let depth = 0;
    for (const o of OBJECTS) {
      if (o.path.every((p, i) => rest[i] === p) && rest.length > o.path.length) {
        kind = o.kind;
        id = `${ns}/${rest[o.path.length]}`;
        depth = o.path.length + 1;
      }
    }
    if (kind === undefined && rest[0] === 'snapshots' && rest.length >= 3) {
      kind = 'snapshots';
      id = `${ns}/${rest[1]}/${rest[2]}`;
      depth = 3;
    }
    if (kind === undefined || id === undefined) continue;
    if (rest.length === depth && c.bucket === true && c.change !== 'changed') own.set(id, { kind, change: c.change });
    else touched.set(id, kind);
  }
  for (const [id, o] of own)
    if (!s[o.kind][o.change === 'added' ? 'added' : 'removed'].includes(id)) s[o.kind][o.change === 'added' ? 'added' : 'removed'].push(id);
  for (const [id, kind] of touched) if (!own.has(id) && !s[kind].changed.includes(id)) s[kind].changed.push(id);
}
