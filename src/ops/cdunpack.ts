import { isBucketEntry, type BoltFile, type BucketRef } from '../formats/bolt/db.js';
import type { BoltEdit } from '../formats/bolt/edit.js';
import { encodeUtf8 } from '../formats/bytes.js';
import { encodeBinaryTime, encodeUvarint, encodeVarint, s, type UtcTime } from '../formats/containerd/encode.js';
import { isSnapshotId } from '../formats/containerd/identifiers.js';
import { uvarintNumber } from '../formats/containerd/values.js';
import { DatarootError } from '../formats/errors.js';
import { TarReader } from '../formats/tar/reader.js';
import type { Confined } from '../io/confined.js';
import { LayerExtractor } from '../io/extract.js';
import { HashingStream } from '../io/streams.js';
import { openLayer, type ArchiveLayer, type ArchiveSource } from '../store/archive.js';
import { record, str, sub } from '../store/containerd/boltread.js';
import { CD } from '../store/containerd/layout.js';

/**
 * `inject --store containerd --unpack`: the image's layers unpacked into the overlayfs snapshotter
 * as containerd's unpacker leaves them (committed snapshots keyed by chainID):
 *
 * - `snapshots/<id>/fs` holds the layer's tree, whiteouts as 0/0 character devices and opaque
 *   directories marked with `trusted.overlay.opaque=y` (the overlay upper-dir convention), and an
 *   empty `work/`;
 * - the snapshotter's `metadata.db` gets `v1/snapshots/<ns>/<seq>/<chainID>` {id, kind committed,
 *   parent, createdat, updatedat, inodes, size} and `v1/parents/<pid>\0<cid>`, ids from the
 *   bucket's sequence (storage/bolt.go);
 * - meta.db gets `v1/<ns>/snapshots/overlayfs/<chainID>` {name, parent, createdat, updatedat,
 *   children/}, seq from that bucket's sequence (metadata/snapshot.go), and the labels the unpacker
 *   sets: `containerd.io/gc.ref.snapshot.overlayfs=<top chainID>` on the config and
 *   `containerd.io/uncompressed=<diffID>` on each layer blob.
 */

export const SNAPSHOTTER = 'overlayfs';
const KIND_COMMITTED = 3;

export interface UnpackLayer {
  chainId: string;
  diffId: string;
  source: ArchiveSource;
  layer: ArchiveLayer;
}

export interface NewSnapshot {
  chainId: string;
  diffId: string;
  /** The chainID of the parent (absent for a base layer). */
  parentKey: string | undefined;
  id: number;
  seq: bigint;
  name: string;
  parentName: string | undefined;
  parentId: number | undefined;
  inodes: number;
  size: number;
  job: UnpackLayer;
}

export interface SnapshotPlan {
  snapshots: NewSnapshot[];
  /** The overlayfs bucket's new sequence in meta.db, the snapshots bucket's in metadata.db. */
  nsSeq: bigint;
  idSeq: bigint;
  /** Whether the namespace already has a `snapshots/overlayfs` bucket in meta.db. */
  nsBucket: boolean;
  /** Existing parent records that get a child (meta.db). */
  reusedParents: string[];
}

function bucketAt(db: BoltFile, names: string[]): BucketRef | undefined {
  return sub(db, db.rootBucket(), ...names);
}

/**
 * Which snapshots to make: the chain of each image from its first layer not already a snapshot in
 * the namespace. Existing ones are named by their meta.db record and found in metadata.db.
 */
export function planSnapshots(fs: Confined, meta: BoltFile, snapdb: BoltFile | undefined, ns: string, chains: UnpackLayer[][]): SnapshotPlan {
  const nsB = bucketAt(meta, ['v1', ns, 'snapshots', SNAPSHOTTER]);
  let nsSeq = nsB?.sequence ?? 0n;
  const snapsB = snapdb === undefined ? undefined : bucketAt(snapdb, ['v1', 'snapshots']);
  let idSeq = snapsB?.sequence ?? 0n;
  // Ids never reuse a directory left under snapshots/ (containerd's cleanup removes those later).
  const dirs = fs
    .names(`${CD.snapshotterDir(SNAPSHOTTER)}/snapshots`)
    .filter(isSnapshotId)
    .map(Number);
  for (const d of dirs) if (BigInt(d) > idSeq) idSeq = BigInt(d);
  const made = new Map<string, NewSnapshot>();
  const out: NewSnapshot[] = [];
  const reusedParents = new Set<string>();
  const existing = (key: string): { name: string; id: number } | undefined => {
    if (nsB === undefined) return undefined;
    const e = meta.lookup(nsB, encodeUtf8(key));
    if (e === undefined || !isBucketEntry(e)) return undefined;
    const name = str(record(meta, meta.openBucket(e.value, key)), 'name');
    if (name === undefined || snapsB === undefined)
      throw new DatarootError(
        'CONTAINERD_SNAPSHOT_BROKEN',
        `snapshot ${key} in ${ns} has no backend name, or the snapshotter has no metadata.db: run dataroot containerd verify`,
      );
    const b = snapdb!.lookup(snapsB, encodeUtf8(name));
    const id =
      b === undefined || !isBucketEntry(b) ? undefined : uvarintNumber(record(snapdb!, snapdb!.openBucket(b.value, name)).get('id')?.value ?? new Uint8Array());
    if (id === undefined)
      throw new DatarootError(
        'CONTAINERD_SNAPSHOT_BROKEN',
        `snapshot ${key} in ${ns} (${name}) is not in the overlayfs snapshotter's metadata.db: run dataroot containerd verify`,
      );
    return { name, id };
  };
  for (const chain of chains) {
    let parent: { key: string; name: string; id: number } | undefined;
    for (const l of chain) {
      const m = made.get(l.chainId);
      if (m !== undefined) {
        parent = { key: m.chainId, name: m.name, id: m.id };
        continue;
      }
      const ex = existing(l.chainId);
      if (ex !== undefined) {
        parent = { key: l.chainId, ...ex };
        continue;
      }
      idSeq++;
      nsSeq++;
      if (idSeq > BigInt(Number.MAX_SAFE_INTEGER)) throw new DatarootError('CONTAINERD_SNAPSHOT_BROKEN', 'snapshot ids beyond 2^53');
      if (parent !== undefined && !made.has(parent.key)) reusedParents.add(parent.key);
      const n: NewSnapshot = {
        chainId: l.chainId,
        diffId: l.diffId,
        parentKey: parent?.key,
        id: Number(idSeq),
        seq: nsSeq,
        name: `${ns}/${nsSeq}/${l.chainId}`,
        parentName: parent?.name,
        parentId: parent?.id,
        inodes: 0,
        size: 0,
        job: l,
      };
      made.set(l.chainId, n);
      out.push(n);
      parent = { key: n.chainId, name: n.name, id: n.id };
    }
  }
  return { snapshots: out, nsSeq, idSeq, nsBucket: nsB !== undefined, reusedParents: [...reusedParents] };
}

/** Extracts one layer into `snapshots/<id>/fs` (made here) and measures it as containerd's fs.DiskUsage does. */
export async function extractSnapshot(fs: Confined, n: NewSnapshot, o: { maxRatio: number; maxBytes: number }): Promise<void> {
  const home = `${CD.snapshotterDir(SNAPSHOTTER)}/snapshots`;
  fs.mkdirs(CD.snapshotterDir(SNAPSHOTTER), 0o700);
  fs.mkdirs(home, 0o700);
  const dir = `${home}/${n.id}`;
  if (fs.kind(dir) !== 'missing') throw new DatarootError('STORE_TARGET_UNSAFE', `${fs.abs(dir)} exists already`, { file: fs.abs(dir) });
  fs.mkdirs(dir, 0o700);
  fs.mkdirs(`${dir}/fs`, 0o755);
  fs.mkdirs(`${dir}/work`, 0o711);
  const { stream } = await openLayer(n.job.source, n.job.layer, { maxRatio: o.maxRatio, maxBytes: o.maxBytes });
  const hashing = new HashingStream(stream);
  const x = new LayerExtractor(fs.abs(`${dir}/fs`), 'overlay');
  const tr = new TarReader(hashing);
  try {
    for (let e = await tr.next(); e !== undefined; e = await tr.next()) await x.apply(e, tr.data());
    await x.finish();
  } catch (e) {
    await x.abort();
    throw e;
  }
  for await (const _ of hashing) void _; // the tar's trailing bytes count in the diffID
  const got = hashing.digest();
  if (got !== n.diffId)
    throw new DatarootError('ARCHIVE_DIFFID_MISMATCH', `layer ${n.job.layer.member} has sha256 ${got}, but the config says ${n.diffId}: refused`);
  // Usage: every inode once (the top directory too), blocks × 512 (continuity's diskUsage).
  const seen = new Set<string>();
  let size = 0;
  const top = fs.lstatBig(`${dir}/fs`)!;
  seen.add(`${top.dev}:${top.ino}`);
  size += Number(top.blocks) * 512;
  const sub = fs.sub(`${dir}/fs`)!;
  for (const e of sub.walk('')) {
    const st = sub.lstatBig(e.rel);
    if (st === undefined) continue;
    const k = `${st.dev}:${st.ino}`;
    if (seen.has(k)) continue;
    seen.add(k);
    size += Number(st.blocks) * 512;
  }
  n.inodes = seen.size;
  n.size = size;
}

/** The snapshotter's metadata.db edits (the file may be new: then every bucket is created). */
export function snapdbEdits(snapdb: BoltFile | undefined, plan: SnapshotPlan, now: UtcTime): BoltEdit[] {
  const edits: BoltEdit[] = [];
  const v1 = snapdb === undefined ? undefined : bucketAt(snapdb, ['v1']);
  const snaps = snapdb === undefined ? undefined : bucketAt(snapdb, ['v1', 'snapshots']);
  const parents = snapdb === undefined ? undefined : bucketAt(snapdb, ['v1', 'parents']);
  if (v1 === undefined) edits.push({ op: 'bucket', path: [], key: s('v1') });
  if (snaps === undefined) edits.push({ op: 'bucket', path: [s('v1')], key: s('snapshots'), sequence: plan.idSeq });
  else edits.push({ op: 'sequence', path: [s('v1')], key: s('snapshots'), sequence: plan.idSeq });
  if (parents === undefined) edits.push({ op: 'bucket', path: [s('v1')], key: s('parents') });
  const t = encodeBinaryTime(now);
  for (const n of plan.snapshots) {
    const p = [s('v1'), s('snapshots'), s(n.name)];
    edits.push(
      { op: 'bucket', path: [s('v1'), s('snapshots')], key: s(n.name) },
      { op: 'put', path: p, key: s('id'), value: encodeUvarint(n.id) },
      { op: 'put', path: p, key: s('kind'), value: Uint8Array.of(KIND_COMMITTED) },
      { op: 'put', path: p, key: s('createdat'), value: t },
      { op: 'put', path: p, key: s('updatedat'), value: t },
      { op: 'put', path: p, key: s('inodes'), value: encodeVarint(n.inodes) },
      { op: 'put', path: p, key: s('size'), value: encodeVarint(n.size) },
    );
    if (n.parentName !== undefined) {
      edits.push({ op: 'put', path: p, key: s('parent'), value: s(n.parentName) });
      const pk = new Uint8Array([...encodeUvarint(n.parentId!), 0, ...encodeUvarint(n.id)]);
      edits.push({ op: 'put', path: [s('v1'), s('parents')], key: pk, value: s(n.name) });
    }
  }
  return edits;
}

/** meta.db edits: the snapshot records of the namespace, the children of their parents. */
export function metaSnapshotEdits(meta: BoltFile, ns: string, plan: SnapshotPlan, now: UtcTime, ensure: (path: string[]) => BoltEdit[]): BoltEdit[] {
  const base = ['v1', ns, 'snapshots'];
  const edits: BoltEdit[] = [...ensure(base)];
  const sp = [...base, SNAPSHOTTER].map(s);
  if (plan.nsBucket) edits.push({ op: 'sequence', path: base.map(s), key: s(SNAPSHOTTER), sequence: plan.nsSeq });
  else edits.push({ op: 'bucket', path: base.map(s), key: s(SNAPSHOTTER), sequence: plan.nsSeq });
  const t = encodeBinaryTime(now);
  const children = new Map<string, string[]>();
  for (const n of plan.snapshots) if (n.parentKey !== undefined) children.set(n.parentKey, [...(children.get(n.parentKey) ?? []), n.chainId]);
  for (const n of plan.snapshots) {
    const p = [...sp, s(n.chainId)];
    edits.push(
      { op: 'bucket', path: sp, key: s(n.chainId) },
      { op: 'put', path: p, key: s('name'), value: s(n.name) },
      { op: 'put', path: p, key: s('createdat'), value: t },
      { op: 'put', path: p, key: s('updatedat'), value: t },
    );
    if (n.parentKey !== undefined) edits.push({ op: 'put', path: p, key: s('parent'), value: s(n.parentKey) });
    const kids = children.get(n.chainId);
    if (kids !== undefined) {
      edits.push({ op: 'bucket', path: p, key: s('children') });
      for (const k of kids) edits.push({ op: 'put', path: [...p, s('children')], key: s(k), value: new Uint8Array() });
    }
  }
  for (const key of plan.reusedParents) {
    const kidsPath = [...base, SNAPSHOTTER, key];
    edits.push(...ensure([...kidsPath, 'children']));
    for (const k of children.get(key) ?? []) edits.push({ op: 'put', path: [...kidsPath, 'children'].map(s), key: s(k), value: new Uint8Array() });
  }
  void meta;
  return edits;
}
