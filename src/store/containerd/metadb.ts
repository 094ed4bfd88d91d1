import { isBucketEntry, type BoltFile, type BucketRef } from '../../formats/bolt/db.js';
import { encodeUtf8 } from '../../formats/bytes.js';

import { decodeAny, type AnyValue } from '../../formats/containerd/any.js';
import { isBlobDigest, isIdentifier } from '../../formats/containerd/identifiers.js';
import { varintExact } from '../../formats/containerd/values.js';
import { DatarootError } from '../../formats/errors.js';
import type { Confined } from '../../io/confined.js';
import { openBoltIn, type OpenBolt } from '../bolt.js';
import { boltReadOptions } from './boltread.js';
import { problem, type Problem } from '../problems.js';
import { entries, keysOf, record, str, stringMap, sub, time, varint, type Entry, type TimeField } from './boltread.js';
import { CD, KNOWN_DB_VERSIONS } from './layout.js';

/**
 * containerd's metadata database (`io.containerd.metadata.v1.bolt/meta.db`, see containerd's
 * metadata/buckets.go): schema `v1`, then one bucket per namespace holding its labels, images,
 * content records and ingests, snapshot records per snapshotter, containers, leases and (1.7+)
 * sandboxes. Read with dataroot's own B+tree reader, lazily per namespace and kind of object;
 * a damaged record is returned with its problems and the rest is still read.
 */
export interface CdDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface CdImageRecord {
  namespace: string;
  Name: string;
  Labels: Record<string, string> | null;
  Target: CdDescriptor;
  CreatedAt: string;
  UpdatedAt: string;
  updatedMs: number;
  problems: Problem[];
}

export interface CdBlobRecord {
  namespace: string;
  Digest: string;
  Size: number;
  CreatedAt: string;
  UpdatedAt: string;
  createdMs: number;
  Labels: Record<string, string> | null;
  problems: Problem[];
}

export interface CdIngestRecord {
  namespace: string;
  key: string;
  /** The backend ref (the ingest directory is sha256 of it). */
  ref: string;
  expireAt: string | null;
  expireMs: number;
  expected: string | null;
  problems: Problem[];
}

export interface CdSnapshotRecord {
  namespace: string;
  snapshotter: string;
  key: string;
  /** Backend name: `<ns>/<seq>/<key>`. */
  name: string;
  parent: string;
  children: string[];
  labels: Record<string, string> | null;
  created: TimeField;
  updated: TimeField;
  problems: Problem[];
}

export interface CdContainerRecord {
  namespace: string;
  ID: string;
  Labels: Record<string, string> | null;
  Image: string;
  Runtime: { Name: string; Options: AnyValue | null };
  Spec: AnyValue | null;
  SnapshotKey: string;
  Snapshotter: string;
  CreatedAt: string;
  UpdatedAt: string;
  Extensions: Record<string, AnyValue> | null;
  SandboxID: string;
  problems: Problem[];
}

export interface CdLeaseResource {
  ID: string;
  Type: string;
}

export interface CdLeaseRecord {
  namespace: string;
  ID: string;
  CreatedAt: string;
  createdMs: number;
  Labels: Record<string, string> | null;
  resources: CdLeaseResource[];
  problems: Problem[];
}

export interface CdSandboxRecord {
  namespace: string;
  ID: string;
  Labels: Record<string, string> | null;
  Runtime: { Name: string; Options: AnyValue | null };
  Spec: AnyValue | null;
  Sandboxer: string;
  CreatedAt: string;
  UpdatedAt: string;
  Extensions: Record<string, AnyValue> | null;
  problems: Problem[];
}

const nullable = <T extends object>(m: T | undefined): T | null => (m === undefined ? null : m);

function anyOf(v: Uint8Array | undefined, what: string, problems: Problem[]): AnyValue | null {
  if (v === undefined) return null;
  try {
    return decodeAny(v);
  } catch (e) {
    if (!(e instanceof DatarootError)) throw e;
    problems.push(problem(e.code, `${what}: ${e.message}`));
    return null;
  }
}

function timesOf(r: Map<string, Entry>, what: string, problems: Problem[]): { created: TimeField; updated: TimeField } {
  const created = time(r, 'createdat');
  const updated = time(r, 'updatedat');
  if (created.bad === true) problems.push(problem('CONTAINERD_TIME_INVALID', `${what}: createdat is not a Go binary time`));
  if (updated.bad === true) problems.push(problem('CONTAINERD_TIME_INVALID', `${what}: updatedat is not a Go binary time`));
  return { created, updated };
}

export class MetaDb {
  readonly version: number | undefined;
  private readonly v1: BucketRef;
  private readonly cache = new Map<string, unknown>();

  private constructor(
    private readonly bolt: OpenBolt,
    readonly file: string,
  ) {
    const db = bolt.db;
    const rootRec = record(db, db.rootBucket());
    const buckets = [...rootRec.values()].filter((e) => e.bucket !== undefined).map((e) => e.key);
    const v = rootRec.get('v1')?.value;
    const versionValue = rootRec.get('version')?.value;
    // containerd stores the version under v1 (db.go); older layouts at the top: read both.
    const v1 = rootRec.get('v1')?.bucket;
    if (v1 === undefined || v !== undefined) {
      const other = buckets.filter((b) => /^v\d+$/.test(b));
      throw new DatarootError(
        'CONTAINERD_SCHEMA_UNKNOWN',
        `${file} has no schema bucket v1${other.length > 0 ? ` (it has ${other.join(', ')}: a schema this reader does not know)` : buckets.length === 0 ? ' (it is empty: containerd never initialised it)' : ` (top-level buckets: ${buckets.slice(0, 8).join(', ')})`}`,
        { file },
      );
    }
    this.v1 = v1;
    const vrec = record(db, v1).get('version')?.value ?? versionValue;
    const n = vrec === undefined ? undefined : varintExact(vrec);
    this.version = n === undefined ? undefined : Number(n);
    if (this.version !== undefined && !KNOWN_DB_VERSIONS.includes(this.version)) {
      throw new DatarootError(
        'CONTAINERD_SCHEMA_UNKNOWN',
        `${file} is at schema v1 version ${this.version}; dataroot reads versions ${KNOWN_DB_VERSIONS.join(', ')} (containerd 1.x to 2.x): a newer containerd wrote it`,
        { file, version: this.version },
      );
    }
  }

  /** Opens the meta.db of a containerd root; CONTAINERD_NO_METADB when it is absent. */
  static open(fs: Confined, rel = CD.metaDb): MetaDb {
    const bolt = openBoltIn(fs, rel, boltReadOptions(fs.lstat(rel)?.size ?? 0));
    if (bolt === undefined) throw new DatarootError('CONTAINERD_NO_METADB', `${fs.abs(rel)} does not exist: not a containerd root`, { file: fs.abs(rel) });
    try {
      return new MetaDb(bolt, fs.abs(rel));
    } catch (e) {
      bolt.close();
      throw e;
    }
  }

  close(): void {
    this.bolt.close();
  }

  private get db(): BoltFile {
    return this.bolt.db;
  }

  private once<T>(key: string, fn: () => T): T {
    if (!this.cache.has(key)) this.cache.set(key, fn());
    return this.cache.get(key) as T;
  }

  /** The namespace buckets under v1, in key order, with their labels and what is wrong with their names. */
  namespaces(): { name: string; labels: Record<string, string> | null; problems: Problem[] }[] {
    return this.once('ns', () =>
      entries(this.db, this.v1)
        .filter((e) => e.bucket !== undefined)
        .map((e) => {
          const problems: Problem[] = [];
          if (!isIdentifier(e.key))
            problems.push(problem('CONTAINERD_NAMESPACE_INVALID', `namespace ${JSON.stringify(e.key)} is not a valid containerd identifier`));
          const lb = sub(this.db, e.bucket, 'labels');
          const labels = lb === undefined ? null : (stringMap(this.db, new Map([['labels', { key: 'labels', bucket: lb }]]), 'labels') ?? null);
          return { name: e.key, labels, problems };
        }),
    );
  }

  /**
   * The records of a namespace's bucket `path` (each a sub-bucket; plain keys are not records), read
   * once and kept: `read` turns one into its object, noting what is wrong in `problems`.
   */
  private records<T>(cacheKey: string, ns: string, path: string[], read: (e: Entry, r: Map<string, Entry>, problems: Problem[]) => T): T[] {
    return this.once(cacheKey, () => {
      const b = this.nsBucket(ns, ...path);
      if (b === undefined) return [];
      const out: T[] = [];
      for (const e of entries(this.db, b)) {
        if (e.bucket === undefined) continue;
        const problems: Problem[] = [];
        out.push(read(e, record(this.db, e.bucket), problems));
      }
      return out;
    });
  }

  /** A container's or sandbox's runtime bucket: its name and options. */
  private runtime(r: Map<string, Entry>, what: string, problems: Problem[]): { Name: string; Options: AnyValue | null } {
    const rt = r.get('runtime')?.bucket;
    const rtr = rt === undefined ? undefined : record(this.db, rt);
    return { Name: rtr === undefined ? '' : (str(rtr, 'name') ?? ''), Options: anyOf(rtr?.get('options')?.value, `${what} runtime options`, problems) };
  }

  private nsBucket(ns: string, ...path: string[]): BucketRef | undefined {
    return sub(this.db, this.v1, ns, ...path);
  }

  images(ns: string): CdImageRecord[] {
    return this.records(`images/${ns}`, ns, ['images'], (e, r, problems) => {
      const { created, updated } = timesOf(r, `image ${e.key}`, problems);
      const t = r.get('target')?.bucket;
      const target: CdDescriptor = { mediaType: '', digest: '', size: 0 };
      if (t === undefined)
        problems.push(problem('CONTAINERD_IMAGE_NO_TARGET', `image ${e.key} has no target bucket (containerd: "unable to read target bucket")`));
      else {
        const tr = record(this.db, t);
        target.mediaType = str(tr, 'mediatype') ?? '';
        target.digest = str(tr, 'digest') ?? '';
        const size = varint(tr, 'size');
        target.size = size === undefined || Number.isNaN(size) ? 0 : size;
        if (Number.isNaN(size)) problems.push(problem('CONTAINERD_VARINT_INVALID', `image ${e.key}: target size is not a varint`));
        if (!isBlobDigest(target.digest))
          problems.push(
            problem('CONTAINERD_DIGEST_INVALID', `image ${e.key}: target digest ${JSON.stringify(target.digest.slice(0, 80))} is not sha256:<64 hex>`),
          );
      }
      const ann = stringMap(this.db, r, 'annotations');
      if (ann !== undefined) target.annotations = ann;
      return {
        namespace: ns,
        Name: e.key,
        Labels: nullable(stringMap(this.db, r, 'labels')),
        Target: target,
        CreatedAt: created.text,
        UpdatedAt: updated.text,
        updatedMs: updated.ms,
        problems,
      };
    });
  }

  blobs(ns: string): CdBlobRecord[] {
    return this.records(`blobs/${ns}`, ns, ['content', 'blob'], (e, r, problems) => {
      const { created, updated } = timesOf(r, `blob ${e.key}`, problems);
      const size = varint(r, 'size');
      if (size === undefined || Number.isNaN(size))
        problems.push(problem('CONTAINERD_VARINT_INVALID', `blob ${e.key}: size is ${size === undefined ? 'missing' : 'not a varint'}`));
      if (!isBlobDigest(e.key))
        problems.push(problem('CONTAINERD_DIGEST_INVALID', `content record ${JSON.stringify(e.key.slice(0, 80))} is not named sha256:<64 hex>`));
      return {
        namespace: ns,
        Digest: e.key,
        Size: size === undefined || Number.isNaN(size) ? 0 : size,
        CreatedAt: created.text,
        UpdatedAt: updated.text,
        createdMs: created.ms,
        Labels: nullable(stringMap(this.db, r, 'labels')),
        problems,
      };
    });
  }

  ingests(ns: string): CdIngestRecord[] {
    return this.records(`ingests/${ns}`, ns, ['content', 'ingests'], (e, r, problems) => {
      const exp = time(r, 'expireat');
      return {
        namespace: ns,
        key: e.key,
        ref: str(r, 'ref') ?? '',
        expireAt: r.has('expireat') ? exp.text : null,
        expireMs: exp.ms,
        expected: str(r, 'expected') ?? null,
        problems,
      };
    });
  }

  /**
   * Whether the namespace has a snapshot record `key` in a snapshotter: one lookup, without reading
   * every record (an image list asks it of each image's top chainID), as containerd's own Stat
   * seeks it. The same answer as snapshots(ns) on a sound file, which it uses when that was read
   * already; on a file whose keys are out of order it answers as bbolt's seek would.
   */
  hasSnapshot(ns: string, snapshotter: string, key: string): boolean {
    const read = this.cache.get(`snapshots/${ns}`) as Map<string, CdSnapshotRecord[]> | undefined;
    // A key that is not ASCII (a config's diffID may hold anything) is compared as snapshots()
    // compares it, as decoded text: bytes that are not UTF-8 decode to U+FFFD there.
    // eslint-disable-next-line no-control-regex
    if (read === undefined && /[^\x00-\x7f]/.test(key))
      return (
        this.snapshots(ns)
          .get(snapshotter)
          ?.some((r) => r.key === key) ?? false
      );
    if (read !== undefined) return read.get(snapshotter)?.some((r) => r.key === key) ?? false;
    const b = this.once(`snapshotbucket/${ns}/${snapshotter}`, () => this.nsBucket(ns, 'snapshots', snapshotter));
    if (b === undefined) return false;
    const e = this.db.lookup(b, encodeUtf8(key));
    return e !== undefined && isBucketEntry(e);
  }

  /** Snapshot records of a namespace, by snapshotter name. */
  snapshots(ns: string): Map<string, CdSnapshotRecord[]> {
    return this.once(`snapshots/${ns}`, () => {
      const out = new Map<string, CdSnapshotRecord[]>();
      const b = this.nsBucket(ns, 'snapshots');
      if (b === undefined) return out;
      for (const sn of entries(this.db, b)) {
        if (sn.bucket === undefined) continue;
        const list: CdSnapshotRecord[] = [];
        for (const e of entries(this.db, sn.bucket)) {
          if (e.bucket === undefined) continue;
          const problems: Problem[] = [];
          const r = record(this.db, e.bucket);
          const { created, updated } = timesOf(r, `snapshot ${e.key}`, problems);
          const name = str(r, 'name') ?? '';
          if (name === '') problems.push(problem('CONTAINERD_SNAPSHOT_NO_NAME', `snapshot ${e.key} (${sn.key}) has no backend name`));
          list.push({
            namespace: ns,
            snapshotter: sn.key,
            key: e.key,
            name,
            parent: str(r, 'parent') ?? '',
            children: keysOf(this.db, r.get('children')?.bucket),
            labels: nullable(stringMap(this.db, r, 'labels')),
            created,
            updated,
            problems,
          });
        }
        out.set(sn.key, list);
      }
      return out;
    });
  }

  containers(ns: string): CdContainerRecord[] {
    return this.records(`containers/${ns}`, ns, ['containers'], (e, r, problems) => {
      const { created, updated } = timesOf(r, `container ${e.key}`, problems);
      return {
        namespace: ns,
        ID: e.key,
        Labels: nullable(stringMap(this.db, r, 'labels')),
        Image: str(r, 'image') ?? '',
        Runtime: this.runtime(r, `container ${e.key}`, problems),
        Spec: anyOf(r.get('spec')?.value, `container ${e.key} spec`, problems),
        SnapshotKey: str(r, 'snapshotKey') ?? '',
        Snapshotter: str(r, 'snapshotter') ?? '',
        CreatedAt: created.text,
        UpdatedAt: updated.text,
        Extensions: this.extensions(r, `container ${e.key}`, problems),
        SandboxID: str(r, 'sandboxid') ?? '',
        problems,
      };
    });
  }

  private extensions(r: Map<string, Entry>, what: string, problems: Problem[]): Record<string, AnyValue> | null {
    const b = r.get('extensions')?.bucket;
    if (b === undefined) return null;
    const out: Record<string, AnyValue> = {};
    for (const e of entries(this.db, b)) {
      const a = anyOf(e.value, `${what} extension ${e.key}`, problems);
      if (a !== null) out[e.key] = a;
    }
    return out;
  }

  leases(ns: string): CdLeaseRecord[] {
    return this.records(`leases/${ns}`, ns, ['leases'], (e, r, problems) => {
      const created = time(r, 'createdat');
      const resources: CdLeaseResource[] = [];
      for (const d of keysOf(this.db, r.get('content')?.bucket)) resources.push({ ID: d, Type: 'content' });
      for (const ref of keysOf(this.db, r.get('ingests')?.bucket)) resources.push({ ID: ref, Type: 'ingests' });
      const sb = r.get('snapshots')?.bucket;
      if (sb !== undefined) {
        for (const sn of entries(this.db, sb)) {
          if (sn.bucket === undefined) continue;
          for (const k of keysOf(this.db, sn.bucket)) resources.push({ ID: k, Type: `snapshots/${sn.key}` });
        }
      }
      return {
        namespace: ns,
        ID: e.key,
        CreatedAt: created.text,
        createdMs: created.ms,
        Labels: nullable(stringMap(this.db, r, 'labels')),
        resources,
        problems,
      };
    });
  }

  sandboxes(ns: string): CdSandboxRecord[] {
    return this.records(`sandboxes/${ns}`, ns, ['sandboxes'], (e, r, problems) => {
      const { created, updated } = timesOf(r, `sandbox ${e.key}`, problems);
      return {
        namespace: ns,
        ID: e.key,
        Labels: nullable(stringMap(this.db, r, 'labels')),
        Runtime: this.runtime(r, `sandbox ${e.key}`, problems),
        Spec: anyOf(r.get('spec')?.value, `sandbox ${e.key} spec`, problems),
        Sandboxer: str(r, 'sandboxer') ?? '',
        CreatedAt: created.text,
        UpdatedAt: updated.text,
        Extensions: this.extensions(r, `sandbox ${e.key}`, problems),
        problems,
      };
    });
  }

  /** The bucket sequence of `v1/<ns>/snapshots/<snapshotter>` (the seq of the next backend name). */
  snapshotSequence(ns: string, snapshotter: string): bigint | undefined {
    return this.nsBucket(ns, 'snapshots', snapshotter)?.sequence;
  }
}
