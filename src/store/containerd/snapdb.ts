import type { BucketRef } from '../../formats/bolt/db.js';
import { isSnapshotId } from '../../formats/containerd/identifiers.js';
import { uvarintAt, uvarintNumber } from '../../formats/containerd/values.js';
import { DatarootError } from '../../formats/errors.js';
import { toHex } from '../../formats/bytes.js';
import type { Confined } from '../../io/confined.js';
import { openBoltIn, type OpenBolt } from '../bolt.js';
import { boltReadOptions } from './boltread.js';
import { problem, type Problem } from '../problems.js';
import { entries, record, str, stringMap, varint } from './boltread.js';
import { CD } from './layout.js';

/**
 * A snapshotter's own metadata.db (containerd's snapshots/storage/bolt.go), shared by the
 * overlayfs and native snapshotters: `v1/snapshots/<backend name>` → id (uvarint, the directory
 * `snapshots/<id>`), kind (1 view, 2 active, 3 committed), parent (a backend name), timestamps,
 * labels, and for committed snapshots inodes and size; `v1/parents` indexes
 * `<uvarint parent id>\0<uvarint child id>` → child name.
 */
export type SnapshotKind = 'Unknown' | 'View' | 'Active' | 'Committed';
const KINDS: SnapshotKind[] = ['Unknown', 'View', 'Active', 'Committed'];

export interface BackendSnapshot {
  name: string;
  /** The on-disk id (checked: digits), or undefined when the stored id is unreadable. */
  id: string | undefined;
  kind: SnapshotKind;
  parent: string;
  labels: Record<string, string> | null;
  inodes: number;
  size: number;
  problems: Problem[];
}

export interface ParentLink {
  parentId: string;
  childId: string;
  child: string;
}

export class SnapshotterDb {
  readonly snapshots = new Map<string, BackendSnapshot>();
  readonly parents: ParentLink[] = [];
  readonly problems: Problem[] = [];
  readonly sequence: bigint;
  private idIndex: Map<string, BackendSnapshot> | undefined;

  private constructor(
    readonly name: string,
    bolt: OpenBolt,
    readonly file: string,
  ) {
    const db = bolt.db;
    const top = record(db, db.rootBucket());
    const v1 = top.get('v1')?.bucket;
    if (v1 === undefined) {
      if (top.size === 0) {
        // Created and never written: a snapshotter with no snapshots yet.
        this.sequence = 0n;
        return;
      }
      throw new DatarootError('CONTAINERD_SCHEMA_UNKNOWN', `${file} has no v1 bucket (top-level: ${[...top.keys()].slice(0, 8).join(', ')})`, { file });
    }
    const v1r = record(db, v1);
    const sb: BucketRef | undefined = v1r.get('snapshots')?.bucket;
    this.sequence = sb?.sequence ?? 0n;
    if (sb !== undefined) {
      for (const e of entries(db, sb)) {
        if (e.bucket === undefined) continue;
        const problems: Problem[] = [];
        const r = record(db, e.bucket);
        const idv = r.get('id')?.value;
        const idn = idv === undefined ? undefined : uvarintNumber(idv);
        let id: string | undefined = idn === undefined ? undefined : String(idn);
        if (id === undefined || !isSnapshotId(id)) {
          problems.push(
            problem(
              'CONTAINERD_SNAPSHOT_ID_INVALID',
              `snapshot ${e.key}: id ${idv === undefined ? 'missing' : toHex(idv)} is not a snapshot number: its directory is not looked at`,
            ),
          );
          id = undefined;
        }
        const kb = r.get('kind')?.value;
        const kind = kb !== undefined && kb.length === 1 && kb[0]! < KINDS.length ? KINDS[kb[0]!]! : 'Unknown';
        const inodes = varint(r, 'inodes');
        const size = varint(r, 'size');
        this.snapshots.set(e.key, {
          name: e.key,
          id,
          kind,
          parent: str(r, 'parent') ?? '',
          labels: r.has('labels') ? (stringMap(db, r, 'labels') ?? null) : null,
          inodes: inodes === undefined || Number.isNaN(inodes) ? 0 : inodes,
          size: size === undefined || Number.isNaN(size) ? 0 : size,
          problems,
        });
      }
    }
    const pb = v1r.get('parents')?.bucket;
    if (pb !== undefined) {
      db.forEachEntry(pb, undefined, (e) => {
        const p = uvarintAt(e.key, 0);
        const c = p !== undefined && e.key[p.next] === 0 ? uvarintAt(e.key, p.next + 1) : undefined;
        if (p === undefined || c === undefined || c.next !== e.key.length) {
          this.problems.push(problem('CONTAINERD_PARENT_KEY_INVALID', `parents index key ${toHex(e.key)} is not <uvarint>\\0<uvarint>`));
          return;
        }
        this.parents.push({ parentId: p.value.toString(), childId: c.value.toString(), child: Buffer.from(e.value).toString('utf8') });
      });
    }
  }

  /** Opens `io.containerd.snapshotter.v1.<name>/metadata.db`; undefined when absent. */
  static open(fs: Confined, name: string): SnapshotterDb | undefined {
    const rel = CD.snapshotterDb(name);
    const bolt = openBoltIn(fs, rel, boltReadOptions(fs.lstat(rel)?.size ?? 0));
    if (bolt === undefined) return undefined;
    try {
      return new SnapshotterDb(name, bolt, fs.abs(rel));
    } finally {
      bolt.close();
    }
  }

  /** The snapshot whose on-disk id is `id`. */
  byId(id: string): BackendSnapshot | undefined {
    if (this.idIndex === undefined) {
      this.idIndex = new Map();
      for (const s of this.snapshots.values()) if (s.id !== undefined) this.idIndex.set(s.id, s);
    }
    return this.idIndex.get(id);
  }
}
