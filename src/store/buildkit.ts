import { isBucketEntry, type BoltFile, type BucketRef } from '../formats/bolt/db.js';
import { encodeUtf8, utf8 } from '../formats/bytes.js';
import { DIGEST_RE } from '../formats/digest/digest.js';
import { rawMembers } from '../formats/json/raw.js';
import type { Confined } from '../io/confined.js';
import { openBoltIn } from './bolt.js';
import { BUILDKIT_ID, MOUNT_ID } from './ids.js';
import type { Store } from './model.js';
import { problem, problemFrom, type Problem } from './problems.js';

/**
 * BuildKit's build cache in a dockerd root (`<root>/buildkit/`), read as dockerd 20.10's builder
 * (moby/buildkit v0.8 inside moby) reads it:
 *
 * - `metadata_v2.db`: the cache records (bucket `_main`, one sub-bucket per record ID; every value
 *   JSON `{"value": <raw>, "index": "…"}`); `metadata.db` is the v1 store of 18.09/19.03, which
 *   dockerd 20.10 migrates once, when `metadata_v2.db` is absent;
 * - `snapshots.db`: moby's snapshotter, one bucket per snapshot key (`parent`, `committed`,
 *   `iscommitted`, `chainid`, `size`), mapping a key to a graphdriver directory or a layer;
 * - `containerdmeta.db`: the content store of blobs (namespace `buildkit`).
 *
 * At start dockerd loads every record (`cacheManager.init`): one that cannot be loaded (its parent
 * or equal-mutable record is gone, it is marked deleted, its lazy blob is missing) is deleted,
 * with its snapshot. `docker system df` then lists the loaded records minus the duplicates that
 * share data (`cacheManager.DiskUsage`). Everything here follows that code (cache/manager.go,
 * cache/refs.go, cache/metadata.go of buildkit eeeb7b65, builder/builder-next/adapters/snapshot of
 * moby 20.10); nothing of the evidence is ever used as a path before its format is checked.
 */

export const BUILDKIT_DIR = 'buildkit';
export const METADATA_V2 = 'buildkit/metadata_v2.db';
export const METADATA_V1 = 'buildkit/metadata.db';
export const SNAPSHOTS_DB = 'buildkit/snapshots.db';
export const CONTENT_META_DB = 'buildkit/containerdmeta.db';

/** Most bytes of one metadata value decoded (a record's values are a few hundred bytes). */
const MAX_VALUE = 4 << 20;
/** Longest parent or equal-mutable chain followed. */
const MAX_CHAIN = 100_000;

/** Record ID formats: identity.NewID (25 base-36 characters); v1 image-layer records are `sha256:<chainID>`. */
export function isRecordId(id: string): boolean {
  return BUILDKIT_ID.test(id) || DIGEST_RE.test(id);
}

// ---------------------------------------------------------------------------------------------
// Go's decoding of the JSON values

/** A decoded value: absent (key missing or empty), a Go decode error, or the value. */
type Dec<T> = { ok: true; v: T } | { ok: false; absent: boolean };
const ABSENT = { ok: false, absent: true } as const;
const ERROR = { ok: false, absent: false } as const;

/** json.Unmarshal of raw text into a Go string (`null` leaves it ""). */
function decString(raw: string | undefined): Dec<string> {
  if (raw === undefined) return ABSENT;
  if (raw === 'null') return { ok: true, v: '' };
  if (!raw.startsWith('"')) return ERROR;
  try {
    return { ok: true, v: JSON.parse(raw) as string };
  } catch {
    return ERROR;
  }
}

function decBool(raw: string | undefined): Dec<boolean> {
  if (raw === undefined) return ABSENT;
  if (raw === 'true') return { ok: true, v: true };
  if (raw === 'false' || raw === 'null') return { ok: true, v: false };
  return ERROR;
}

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

/** json.Unmarshal into an int64 (or Go's int on 64-bit): an integer literal in range, `null` is 0. */
function decInt(raw: string | undefined): Dec<bigint> {
  if (raw === undefined) return ABSENT;
  if (raw === 'null') return { ok: true, v: 0n };
  if (!/^-?(?:0|[1-9][0-9]*)$/.test(raw) || raw.length > 21) return ERROR;
  const n = BigInt(raw);
  return n < INT64_MIN || n > INT64_MAX ? ERROR : { ok: true, v: n };
}

// ---------------------------------------------------------------------------------------------
// metadata_v2.db items

/** One record of `_main`: its values as the raw text of `value` ('' when a value has none). */
export interface MetaItem {
  id: string;
  values: Map<string, string>;
  /** Why Go's decoder rejects one of its values (metadata.Store.All then fails, and so does dockerd's start). */
  invalid?: string;
}

/** The `value` member of one stored Value, as Go decodes `{"value":…,"index":"…"}`. */
function storedValue(bytes: Uint8Array): { raw: string } | { error: string } {
  if (bytes.length > MAX_VALUE) return { error: `a value of ${bytes.length} bytes (more than ${MAX_VALUE} are not decoded)` };
  const members = rawMembers(utf8(bytes));
  if (members === undefined) return { error: 'a value that is not a JSON object' };
  if (members === 'null') return { raw: '' };
  let raw = '';
  for (const m of members) {
    // Go matches field names case-insensitively; the last member for a field wins.
    const k = m.key.toLowerCase();
    if (k === 'value') raw = m.raw;
    else if (k === 'index' && m.raw !== 'null' && !m.raw.startsWith('"')) return { error: `an index that is not a string (${m.raw.slice(0, 40)})` };
  }
  return { raw };
}

/** Every record of `_main` in key order (metadata.Store.All); values that are empty are deleted ones. */
export function readMetaItems(db: BoltFile, file: string): { items: MetaItem[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const items: MetaItem[] = [];
  const main = db.bucketAt([encodeUtf8('_main')]);
  if (main === undefined) return { items, problems };
  const subs: { id: string; ref: BucketRef }[] = [];
  db.forEachEntry(main, db.newSeen(), (e) => {
    if (!isBucketEntry(e)) return;
    subs.push({ id: utf8(e.key), ref: db.openBucket(e.value, `_main/${utf8(e.key)}`) });
  });
  for (const { id, ref } of subs) {
    const item: MetaItem = { id, values: new Map() };
    db.forEachEntry(ref, db.newSeen(), (e) => {
      if (isBucketEntry(e) || e.value.length === 0) return;
      const key = utf8(e.key);
      const v = storedValue(e.value);
      if ('error' in v) item.invalid ??= `${key}: ${v.error}`;
      else item.values.set(key, v.raw);
    });
    if (item.invalid !== undefined) {
      problems.push(
        problem(
          'BUILDKIT_METADATA_INVALID',
          `record ${JSON.stringify(id.slice(0, 80))} holds ${item.invalid}: Go's decoder rejects it, so dockerd's builder cannot load the build cache and dockerd does not start`,
          file,
        ),
      );
    }
    items.push(item);
  }
  return { items, problems };
}

// Typed getters, each with the default its Go getter returns (cache/metadata.go).
const raw = (it: MetaItem, k: string): string | undefined => it.values.get(k);
const str = (it: MetaItem, k: string): string => {
  const d = decString(raw(it, k));
  return d.ok ? d.v : '';
};
const flag = (it: MetaItem, k: string): boolean => {
  const d = decBool(raw(it, k));
  return d.ok && d.v;
};

/** getSnapshotID: `cache.snapshot`, the record ID when absent, "" when it does not decode. */
export function snapshotIdOf(it: MetaItem): string {
  const d = decString(raw(it, 'cache.snapshot'));
  return d.ok ? d.v : d.absent ? it.id : '';
}
export const parentOf = (it: MetaItem): string => str(it, 'cache.parent');
export const equalMutableOf = (it: MetaItem): string => str(it, 'cache.equalMutable');
export const committedOf = (it: MetaItem): boolean => flag(it, 'snapshot.committed');
export const deletedOf = (it: MetaItem): boolean => flag(it, 'cache.deleted');
export const blobOnlyOf = (it: MetaItem): boolean => flag(it, 'cache.blobonly');
export const blobOf = (it: MetaItem): string => str(it, 'cache.blob');
export const descriptionOf = (it: MetaItem): string => str(it, 'cache.description');
export const recordTypeOf = (it: MetaItem): string => str(it, 'cache.recordType');

/** getSize: `snapshot.size`, -1 (unknown) when absent or not an int64. */
export function sizeOf(it: MetaItem): bigint {
  const d = decInt(raw(it, 'snapshot.size'));
  return d.ok ? d.v : -1n;
}

/** GetCreatedAt in Unix nanoseconds; undefined is Go's zero time (absent or undecodable). */
export function createdAtOf(it: MetaItem): bigint | undefined {
  const d = decInt(raw(it, 'cache.createdAt'));
  return d.ok ? d.v : undefined;
}

/** getLastUsed: the usage count, and the last use (undefined without a count, or when 0 or undecodable). */
export function lastUsedOf(it: MetaItem): { count: bigint; at: bigint | undefined } {
  const c = decInt(raw(it, 'cache.usageCount'));
  if (!c.ok) return { count: 0n, at: undefined };
  const t = decInt(raw(it, 'cache.lastUsedAt'));
  return { count: c.v, at: t.ok && t.v !== 0n ? t.v : undefined };
}

// ---------------------------------------------------------------------------------------------
// Loading the records as cacheManager.init does

export interface CacheRecord {
  id: string;
  item: MetaItem;
  mutable: boolean;
  parent?: CacheRecord;
  /** For an immutable record not yet finalized: the mutable record whose data it shares. */
  equalMutable?: CacheRecord;
  equalImmutable?: CacheRecord;
  /** References held on it after the start: one per child record (and per equal-immutable's parent ref). */
  refs: number;
}

export interface Unloadable {
  id: string;
  reason: string;
}

export interface LoadResult {
  /** Loaded records, by ID, in the order dockerd loads them. */
  records: Map<string, CacheRecord>;
  /** Records dockerd deletes at start, with why. */
  unloadable: Unloadable[];
  /** What dockerd does at start that changes what it lists (a commit, a creation time set). */
  notes: Problem[];
}

/**
 * cacheManager.init: getRecord for every item in key order. A record depends on one other (its
 * equal-mutable record, else its parent), so the dependencies of an item form a chain, walked
 * iteratively (a chain of any length costs memory, not stack).
 */
export function loadRecords(items: readonly MetaItem[], hasBlob: (digest: string) => boolean): LoadResult {
  const byId = new Map(items.map((it) => [it.id, it]));
  const records = new Map<string, CacheRecord>();
  const failed = new Map<string, string>();
  const unloadable: Unloadable[] = [];
  const notes: Problem[] = [];
  const fail = (id: string, reason: string): void => {
    failed.set(id, reason);
  };

  /** Loads one item whose dependency (if any) is settled. */
  const settle = (it: MetaItem): void => {
    const em = equalMutableOf(it);
    if (em !== '') {
      const m = records.get(em);
      if (m === undefined) return fail(it.id, `its equal mutable record ${em} ${failed.has(em) ? `cannot be loaded (${failed.get(em)})` : 'does not exist'}`);
      const rec: CacheRecord = { id: it.id, item: it, mutable: false, equalMutable: m, refs: 0 };
      if (m.parent !== undefined) {
        rec.parent = m.parent;
        m.parent.refs++;
      }
      m.equalImmutable = rec;
      records.set(it.id, rec);
      return;
    }
    const pid = parentOf(it);
    let parent: CacheRecord | undefined;
    if (pid !== '') {
      const p = records.get(pid);
      if (p === undefined) return fail(it.id, `its parent ${pid} ${failed.has(pid) ? `cannot be loaded (${failed.get(pid)})` : 'does not exist'}`);
      parent = p;
      if (p.mutable) {
        if (p.refs > 0) return fail(it.id, `its parent ${pid} is a mutable record in use`);
        if (p.equalImmutable !== undefined) parent = p.equalImmutable;
        else
          notes.push(
            problem(
              'BUILDKIT_COMMIT_AT_START',
              `record ${it.id} has the mutable record ${pid} as parent: dockerd commits ${pid} at start into a new record (a new ID) and lists that instead`,
            ),
          );
      }
    }
    if (deletedOf(it)) return fail(it.id, 'it is marked deleted (a removal that did not finish)');
    // checkLazyProviders: a blob-only record whose blob is not in the content store. Its
    // ancestors are loaded records, which passed the same check.
    const blob = blobOf(it);
    if (blobOnlyOf(it) && blob !== '' && !hasBlob(blob)) return fail(it.id, `its layer blob ${blob} is not in the content store (a lazy record)`);
    if (parent !== undefined) parent.refs++;
    if (createdAtOf(it) === undefined)
      notes.push(problem('BUILDKIT_CREATED_AT_START', `record ${it.id} has no creation time: dockerd sets it to the time of its start`));
    const rec: CacheRecord = { id: it.id, item: it, mutable: !committedOf(it), refs: 0 };
    if (parent !== undefined) rec.parent = parent;
    records.set(it.id, rec);
  };

  for (const top of items) {
    if (records.has(top.id) || failed.has(top.id)) continue;
    // The chain of unsettled dependencies from this item down.
    const chain: MetaItem[] = [];
    const onChain = new Set<string>();
    let cur: MetaItem | undefined = top;
    while (cur !== undefined) {
      if (onChain.has(cur.id)) {
        for (const c of chain) fail(c.id, `its parent or equal-mutable chain loops back to ${cur.id} (dockerd's loader recurses without end on it)`);
        chain.length = 0;
        break;
      }
      if (chain.length >= MAX_CHAIN) {
        for (const c of chain) fail(c.id, `its parent chain is longer than ${MAX_CHAIN} records`);
        chain.length = 0;
        break;
      }
      chain.push(cur);
      onChain.add(cur.id);
      const dep: string = equalMutableOf(cur) || parentOf(cur);
      if (dep === '' || records.has(dep) || failed.has(dep)) break;
      cur = byId.get(dep);
    }
    for (let i = chain.length - 1; i >= 0; i--) if (!records.has(chain[i]!.id) && !failed.has(chain[i]!.id)) settle(chain[i]!);
  }
  for (const it of items) {
    const why = failed.get(it.id);
    if (why !== undefined) unloadable.push({ id: it.id, reason: why });
  }
  return { records, unloadable, notes };
}

// ---------------------------------------------------------------------------------------------
// What `docker system df` lists (cacheManager.DiskUsage)

export interface UsageEntry {
  rec: CacheRecord;
  id: string;
  parent: string;
  mutable: boolean;
  inUse: boolean;
  /** The listed record's own cached size (-1 unknown), before sizes are computed. */
  size: bigint;
  createdAt: bigint | undefined;
  lastUsedAt: bigint | undefined;
  usageCount: bigint;
  description: string;
  recordType: string;
  shared: boolean;
}

/**
 * The records DiskUsage returns, before sizes and sharing: duplicates that share data are left
 * out (an immutable record that still has its mutable twin lists the twin, unless it has children
 * of its own), and references from children are subtracted so that only live builds keep a record
 * in use: offline, none.
 */
export function usageEntries(records: Map<string, CacheRecord>): UsageEntry[] {
  const m = new Map<string, { e: UsageEntry; refs: number; doubleRef: boolean }>();
  for (const [id, cr] of records) {
    if ((cr.equalImmutable !== undefined && cr.equalImmutable.refs > 0) || (cr.equalMutable !== undefined && cr.refs === 0)) continue;
    const lu = lastUsedOf(cr.item);
    const e: UsageEntry = {
      rec: cr,
      id,
      parent: cr.parent?.id ?? '',
      mutable: cr.mutable,
      inUse: false,
      size: cr.mutable && cr.refs > 0 ? 0n : sizeOf(cr.item),
      createdAt: createdAtOf(cr.item),
      lastUsedAt: lu.at,
      usageCount: lu.count,
      description: descriptionOf(cr.item),
      recordType: recordTypeOf(cr.item) || 'regular',
      shared: false,
    };
    m.set(id, { e, refs: cr.refs, doubleRef: cr.equalImmutable !== undefined });
  }
  // The rescan loop: a record nobody refers to releases its parent (twice for a doubled record).
  const queue = [...m.keys()];
  const queued = new Set(queue);
  for (let head = 0; head < queue.length; head++) {
    const id = queue[head]!;
    queued.delete(id);
    const v = m.get(id)!;
    if (v.refs !== 0 || v.e.parent === '') continue;
    const p = m.get(v.e.parent);
    if (p === undefined) continue;
    p.refs -= v.doubleRef ? 2 : 1;
    if (!queued.has(v.e.parent)) {
      queue.push(v.e.parent);
      queued.add(v.e.parent);
    }
  }
  for (const v of m.values()) v.e.inUse = v.refs > 0;
  return [...m.values()].map((v) => v.e);
}

// ---------------------------------------------------------------------------------------------
// snapshots.db

export interface SnapshotBucket {
  parent?: string | undefined;
  committed?: string | undefined;
  isCommitted: boolean;
  chainId?: string | undefined;
  size?: string | undefined;
}

/** Every top-level bucket of snapshots.db (one per snapshot key), values as Go's string(v). */
export function readSnapshotsDb(db: BoltFile): Map<string, SnapshotBucket> {
  const out = new Map<string, SnapshotBucket>();
  const subs: { key: string; ref: BucketRef }[] = [];
  db.forEachEntry(db.rootBucket(), db.newSeen(), (e) => {
    if (isBucketEntry(e)) subs.push({ key: utf8(e.key), ref: db.openBucket(e.value, utf8(e.key)) });
  });
  for (const { key, ref } of subs) {
    const b: SnapshotBucket = { isCommitted: false };
    db.forEachEntry(ref, db.newSeen(), (e) => {
      if (isBucketEntry(e)) return;
      const k = utf8(e.key);
      const v = e.value.length > 4096 ? undefined : utf8(e.value);
      if (k === 'parent') b.parent = v;
      else if (k === 'committed') b.committed = v;
      else if (k === 'iscommitted') b.isCommitted = true;
      else if (k === 'chainid') b.chainId = v;
      else if (k === 'size') b.size = v;
    });
    out.set(key, b);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The build cache of a root

/** How dockerd finds a record's size when it has none cached (cacheRecord.Size, snapshotter.Usage). */
export type SizePlan =
  | { kind: 'known'; size: bigint }
  /** A layer-backed snapshot: the layer's own size (layerdb `size`). */
  | { kind: 'layer'; size: bigint; chainId: string }
  /** snapshots.db's cached `size`. */
  | { kind: 'snapshots-db'; size: bigint }
  /** GraphDriver.DiffSize(dir, parentDir): directory names of the driver home, checked. */
  | { kind: 'diff'; dir: string; parentDir: string | undefined }
  /** No snapshot usage asked (a blob-only record): only its blob counts. */
  | { kind: 'blob-only' }
  /** dockerd's Usage fails: `docker system df` fails with this message. */
  | { kind: 'error'; message: string };

export interface BuildCacheItem extends UsageEntry {
  plan: SizePlan;
  /** Size of the record's blob in the content store, added to a computed size. */
  blobSize: bigint;
  /** The graphdriver directory that holds its data, when it has one. */
  dir: string | undefined;
}

export interface BuildCache {
  /** `buildkit/` exists. */
  present: boolean;
  /**
   * Everything needed to know what the build cache references was read. When not (a database
   * that cannot be read, a record that does not decode, a `buildkit` that is not a directory),
   * nothing that may be BuildKit's is an orphan.
   */
  complete: boolean;
  /** The metadata file read (metadata_v2.db, or metadata.db as 20.10 migrates it), if any. */
  metadataFile: string | undefined;
  /** Every record of the metadata file. */
  itemCount: number;
  load: LoadResult;
  /** What `docker system df -v` lists under "Build cache usage", sizes still to be computed where plan says so. */
  items: BuildCacheItem[];
  /** Graphdriver directory names that loaded records use, each with a record that uses it. */
  dirs: Map<string, string>;
  /** layerdb chainIDs that loaded records use (BuildKit holds them; no image needs to). */
  layers: Set<string>;
  /** Directories only records that dockerd deletes at start use: the reason, for orphan reports. */
  unloadableDirs: Map<string, string>;
  problems: Problem[];
}

const cache = new WeakMap<Store, BuildCache>();

/** The build cache of a store's root, read once per store. */
export function buildCacheOf(store: Store): BuildCache {
  let bc = cache.get(store);
  if (bc === undefined) {
    bc = readBuildCache(store);
    cache.set(store, bc);
  }
  return bc;
}

function withBolt<T>(fs: Confined, rel: string, problems: Problem[], fn: (db: BoltFile) => T): T | undefined {
  try {
    const b = fs.kind(rel) === 'file' && fs.lstat(rel)?.size === 0 ? undefined : openBoltIn(fs, rel);
    if (b === undefined) return undefined;
    try {
      return fn(b.db);
    } finally {
      b.close();
    }
  } catch (e) {
    problems.push(problemFrom(e, 'BUILDKIT_DB_UNREADABLE', rel));
    return undefined;
  }
}

/** Go's binary.Varint (zig-zag), as containerd stores content sizes. */
function varint(b: Uint8Array): bigint | undefined {
  let x = 0n;
  let s = 0n;
  for (let i = 0; i < b.length && i < 10; i++) {
    const c = BigInt(b[i]!);
    if (c < 0x80n) {
      const ux = x | (c << s);
      return ux & 1n ? -((ux >> 1n) + 1n) : ux >> 1n;
    }
    x |= (c & 0x7fn) << s;
    s += 7n;
  }
  return undefined;
}

/** Content records of the buildkit namespace: digest → size (containerd metadata, v1/buildkit/content/blob). */
function readContentSizes(db: BoltFile): Map<string, bigint> {
  const out = new Map<string, bigint>();
  const blobs = db.bucketAt(['v1', 'buildkit', 'content', 'blob'].map(encodeUtf8));
  if (blobs === undefined) return out;
  const subs: { dgst: string; ref: BucketRef }[] = [];
  db.forEachEntry(blobs, db.newSeen(), (e) => {
    if (isBucketEntry(e)) subs.push({ dgst: utf8(e.key), ref: db.openBucket(e.value, utf8(e.key)) });
  });
  for (const { dgst, ref } of subs) {
    const e = db.lookup(ref, encodeUtf8('size'));
    out.set(dgst, (e !== undefined && !isBucketEntry(e) ? varint(e.value) : undefined) ?? 0n);
  }
  return out;
}

/** The diffIDs of a layer and its parents, bottom first; undefined when a layer of the chain does not load. */
function diffChain(store: Store, chainId: string): string[] | undefined {
  if (!store.isLoadable(chainId)) return undefined;
  const out: string[] = [];
  for (let id: string | undefined = chainId, i = 0; id !== undefined && i < 1000; id = store.layers.get(id)?.parent, i++) {
    const l = store.layers.get(id);
    if (l?.diffId === undefined) return undefined;
    out.push(l.diffId);
  }
  return out.reverse();
}

/** A dir name read from evidence, before it becomes a path: a BuildKit ID or a 64-hex layer ID. */
const isDirName = (s: string): boolean => BUILDKIT_ID.test(s) || MOUNT_ID.test(s);

export function readBuildCache(store: Store): BuildCache {
  const fs = store.fs;
  const problems: Problem[] = [];
  const present = fs.isDir(BUILDKIT_DIR);
  const kind = fs.kind(BUILDKIT_DIR);
  if (kind !== 'dir' && kind !== 'missing')
    problems.push(
      problem(
        kind === 'symlink' ? 'SYMLINK_NOT_FOLLOWED' : 'PATH_NOT_A_DIRECTORY',
        `buildkit is a ${kind}, not a directory: the build cache is not read, and no directory that may be BuildKit's is taken for an orphan`,
        BUILDKIT_DIR,
      ),
    );
  const empty: BuildCache = {
    present,
    complete: kind === 'missing',
    metadataFile: undefined,
    itemCount: 0,
    load: { records: new Map(), unloadable: [], notes: [] },
    items: [],
    dirs: new Map(),
    layers: new Set(),
    unloadableDirs: new Map(),
    problems,
  };
  if (!present) return empty;

  const snaps = withBolt(fs, SNAPSHOTS_DB, problems, readSnapshotsDb) ?? new Map<string, SnapshotBucket>();
  const content = withBolt(fs, CONTENT_META_DB, problems, readContentSizes) ?? new Map<string, bigint>();
  const meta = readMetadata(store, snaps, content, problems);
  if (meta === undefined) return { ...empty, complete: problems.length === 0, problems };
  const { file: metadataFile, items } = meta;

  // Record IDs are bolt keys, never paths; an ID of another form is reported (dockerd loads it all the same).
  for (const it of items)
    if (!isRecordId(it.id))
      problems.push(problem('ID_INVALID', `build-cache record ID ${JSON.stringify(it.id.slice(0, 80))} is not a BuildKit ID`, metadataFile));
  const load = loadRecords(
    items.filter((it) => it.invalid === undefined),
    (d) => content.has(d),
  );
  const keys = new SnapshotKeys(store, snaps, problems);
  const { dirs, layers, unloadableDirs } = referencedDirs(keys, load, items);
  const entries = usageEntries(load.records);
  markShared(store, keys, entries);
  const out = entries.map((e) => sizedItem(keys, content, e));
  const complete = !problems.some((p) => p.code !== 'ID_INVALID') && items.every((it) => it.invalid === undefined);
  return { present, complete, metadataFile, itemCount: items.length, load, items: out, dirs, layers, unloadableDirs, problems: [...problems, ...load.notes] };
}

/** The metadata: v2, else v1 as 20.10 migrates it; undefined when there is neither. */
function readMetadata(
  store: Store,
  snaps: Map<string, SnapshotBucket>,
  content: Map<string, bigint>,
  problems: Problem[],
): { file: string; items: MetaItem[] } | undefined {
  const fs = store.fs;
  if (fs.exists(METADATA_V2)) {
    const r = withBolt(fs, METADATA_V2, problems, (db) => readMetaItems(db, METADATA_V2));
    if (r !== undefined) problems.push(...r.problems);
    return { file: METADATA_V2, items: r?.items ?? [] };
  }
  if (fs.exists(METADATA_V1)) {
    const r = withBolt(fs, METADATA_V1, problems, (db) => readMetaItems(db, METADATA_V1));
    if (r === undefined) return { file: METADATA_V1, items: [] };
    problems.push(...r.problems);
    return { file: METADATA_V1, items: migrateV1(store, r.items, snaps, content, problems) };
  }
  return undefined;
}

/** What a snapshot key of snapshots.db stands for: a layer of layerdb, or a graphdriver directory. */
class SnapshotKeys {
  /** Directory names reported already as not driver IDs. */
  private readonly badIds = new Set<string>();

  constructor(
    private readonly store: Store,
    readonly snaps: Map<string, SnapshotBucket>,
    private readonly problems: Problem[],
  ) {}

  /** getLayer(key, true): the layer a snapshot key stands for, if any (chainID), or an error. */
  layerOf(key: string): { chainId?: string; error?: string } {
    let id: string | undefined;
    if (key.startsWith('sha256:')) id = key;
    else {
      const c = this.snaps.get(key)?.chainId;
      if (c === undefined || c === '') return {};
      id = c;
      if (!c.startsWith('sha256:')) return {};
    }
    if (!DIGEST_RE.test(id)) return {};
    // LayerStore.Get succeeds.
    return this.store.isLoadable(id) ? { chainId: id } : { error: `layer ${id} does not exist in the layer store` };
  }

  /** getGraphDriverID: the `committed` value of the key's bucket, else the key. */
  graphId(key: string): { id: string; committed: boolean } {
    const c = this.snaps.get(key)?.committed;
    return c !== undefined && c !== '' ? { id: c, committed: true } : { id: key, committed: false };
  }

  /** The graphdriver directory of a snapshot key (checked), and the layer it stands for. */
  dirOf(key: string): { dir?: string | undefined; layer?: string } {
    const l = this.layerOf(key);
    if (l.chainId !== undefined) return { dir: this.store.layers.get(l.chainId)?.cacheId, layer: l.chainId };
    if (key.startsWith('sha256:')) return {};
    const g = this.graphId(key).id;
    return isDirName(g) ? { dir: g } : {};
  }

  /**
   * The directories (with `owner`) and layers of a snapshot and the snapshots below it. Keys in
   * `seen` are walked already: a chain shared by many records is walked once per pass.
   */
  collect(key: string, owner: string, seen: Set<string>, into: Map<string, string>, layerInto: Set<string> | undefined): void {
    for (let k: string | undefined = key, i = 0; k !== undefined && k !== '' && !seen.has(k) && i < MAX_CHAIN; i++) {
      seen.add(k);
      const d = this.dirOf(k);
      if (d.layer !== undefined) layerInto?.add(d.layer);
      if (d.dir !== undefined && !into.has(d.dir) && this.store.fs.isDir(this.store.adapter.layerDir(d.dir))) into.set(d.dir, owner);
      if (d.layer !== undefined || k.startsWith('sha256:')) break; // a layer: its parents are layerdb's
      const g: string = this.graphId(k).id;
      if (!isDirName(g) && !this.badIds.has(g)) {
        this.badIds.add(g);
        this.problems.push(
          problem(
            'ID_INVALID',
            `snapshot ${JSON.stringify(k.slice(0, 80))} names ${JSON.stringify(g.slice(0, 80))} as its directory, which is not a driver ID: it is never used as a path`,
            SNAPSHOTS_DB,
          ),
        );
      }
      k = this.snaps.get(g)?.parent;
    }
  }

  /** Snapshotter.Usage(key): how its size is found. */
  usage(key: string): SizePlan {
    const l = this.layerOf(key);
    if (l.error !== undefined) return { kind: 'error', message: l.error };
    if (l.chainId !== undefined) return { kind: 'layer', size: BigInt(this.store.layers.get(l.chainId)?.size ?? 0), chainId: l.chainId };
    const b = this.snaps.get(key);
    if (b?.size !== undefined) {
      // strconv.Atoi: an optional sign and decimal digits, within int64.
      const n = /^[+-]?[0-9]{1,40}$/.test(b.size) ? BigInt(b.size) : undefined;
      if (n === undefined || n < INT64_MIN || n > INT64_MAX)
        return { kind: 'error', message: `snapshots.db: size ${JSON.stringify(b.size.slice(0, 40))} of ${key} is not a number` };
      if (n !== -1n) return { kind: 'snapshots-db', size: n };
    }
    const g = this.graphId(key);
    // Stat: the bucket of the directory must exist.
    const gb = this.snaps.get(g.id);
    if (gb === undefined) return { kind: 'error', message: `snapshot ${key} not found` };
    if (!isDirName(g.id))
      return { kind: 'error', message: `snapshot ${key} names ${JSON.stringify(g.id.slice(0, 80))} as its directory, which is not a driver ID` };
    let parentDir: string | undefined;
    const p = gb.parent ?? '';
    if (p !== '') {
      const pl = p.startsWith('sha256:') ? this.layerOf(p) : {};
      if (pl.error !== undefined) return { kind: 'error', message: pl.error };
      if (pl.chainId !== undefined) parentDir = this.store.layers.get(pl.chainId)?.cacheId;
      else {
        const pg = this.graphId(p).id;
        if (!isDirName(pg)) return { kind: 'error', message: `the parent ${JSON.stringify(p.slice(0, 80))} of snapshot ${key} is not a driver ID` };
        parentDir = pg;
      }
    }
    return { kind: 'diff', dir: g.id, parentDir };
  }
}

/**
 * Directories and layers the loaded records use (each snapshot and the snapshots below it), and
 * those only records dockerd deletes at start use, with the reason.
 */
function referencedDirs(
  keys: SnapshotKeys,
  load: LoadResult,
  items: MetaItem[],
): { dirs: Map<string, string>; layers: Set<string>; unloadableDirs: Map<string, string> } {
  const dirs = new Map<string, string>();
  const layers = new Set<string>();
  let seen = new Set<string>();
  for (const rec of load.records.values()) keys.collect(snapshotIdOf(rec.item), rec.id, seen, dirs, layers);
  const unloadableDirs = new Map<string, string>();
  seen = new Set<string>();
  const byId = new Map(items.map((it) => [it.id, it]));
  for (const u of load.unloadable) {
    const it = byId.get(u.id);
    if (it === undefined || it.invalid !== undefined) continue;
    const tmp = new Map<string, string>();
    keys.collect(snapshotIdOf(it), u.id, seen, tmp, undefined);
    for (const d of tmp.keys())
      if (!dirs.has(d) && !unloadableDirs.has(d)) unloadableDirs.set(d, `build-cache record ${u.id}, which dockerd deletes at start (${u.reason})`);
  }
  return { dirs, layers, unloadableDirs };
}

/** Shared (imagerefchecker): the record's own layer is a prefix of a listed image's layers; so are its ancestors. */
function markShared(store: Store, keys: SnapshotKeys, entries: UsageEntry[]): void {
  const prefixes = new Set<string>();
  for (const img of store.restored) for (let k = 1; k <= img.diffIds.length; k++) prefixes.add(img.diffIds.slice(0, k).join(','));
  const byEntry = new Map(entries.map((e) => [e.id, e]));
  for (const e of entries) {
    if (e.shared) continue;
    const l = keys.layerOf(e.id);
    const chain = l.chainId === undefined ? undefined : diffChain(store, l.chainId);
    if (chain === undefined || !prefixes.has(chain.join(','))) continue;
    // (An ancestor already marked has its own ancestors marked.)
    for (let x: UsageEntry | undefined = e, i = 0; x !== undefined && i < MAX_CHAIN && (x === e || !x.shared); x = byEntry.get(x.parent), i++) x.shared = true;
  }
}

/** One listed record with how its size is found, its blob's size and its directory. */
function sizedItem(keys: SnapshotKeys, content: Map<string, bigint>, e: UsageEntry): BuildCacheItem {
  const rec = e.rec;
  let plan: SizePlan;
  let blobSize = 0n;
  if (e.size !== -1n) plan = { kind: 'known', size: e.size };
  else {
    // cm.Get(id): a mutable record answers with its immutable twin, or is committed into a new
    // immutable record (size unknown, not blob-only, no blob) whose data is the mutable's.
    const twin = rec.mutable ? rec.equalImmutable : rec;
    const it = twin?.item;
    const driverKey = snapshotIdOf(twin === undefined ? rec.item : (twin.equalMutable ?? twin).item);
    const blob = it === undefined ? '' : blobOf(it);
    if (it !== undefined && sizeOf(it) !== -1n) plan = { kind: 'known', size: sizeOf(it) };
    else {
      plan = it !== undefined && blobOnlyOf(it) ? { kind: 'blob-only' } : keys.usage(driverKey);
      if (blob !== '') blobSize = content.get(blob) ?? 0n;
    }
  }
  const d = keys.dirOf(snapshotIdOf((rec.equalMutable ?? rec).item));
  return { ...e, plan, blobSize, dir: d.dir };
}

/**
 * The v1 store (metadata.db of 18.09/19.03) as cache.MigrateV2 turns it into v2 at dockerd 20.10's
 * first start: a record's ID is its snapshot key; committed state and parent come from
 * snapshots.db (Stat); a record with an equal mutable is committed and takes its parent; the blob
 * mapping moves to cache.blob when the blob is in the content store.
 */
function migrateV1(store: Store, items: MetaItem[], snaps: Map<string, SnapshotBucket>, content: Map<string, bigint>, problems: Problem[]): MetaItem[] {
  const out = items.map((it): MetaItem => ({ ...it, values: new Map(it.values) }));
  const byId = new Map(out.map((it) => [it.id, it]));
  const fails = (why: string): void => {
    problems.push(
      problem(
        'BUILDKIT_MIGRATION_FAILS',
        `dockerd 20.10 migrates ${METADATA_V1} to ${METADATA_V2} at start and fails: ${why}; its builder does not start`,
        METADATA_V1,
      ),
    );
  };
  /** snapshotter.Stat(key): committed state and parent, or why it fails. */
  const stat = (key: string): { committed: boolean; parent: string } | { error: string } => {
    const layerParent = (c: string): string => store.layers.get(c)?.parent ?? '';
    if (DIGEST_RE.test(key)) {
      // getLayer(key, false): the layer itself.
      return store.isLoadable(key) ? { committed: true, parent: layerParent(key) } : { error: `layer ${key} does not exist` };
    }
    let layer: string | undefined;
    const c = snaps.get(key)?.chainId;
    if (c !== undefined && DIGEST_RE.test(c)) {
      if (!store.isLoadable(c)) return { error: `layer ${c} of snapshot ${key} does not exist` };
      layer = c;
    }
    const com = snaps.get(key)?.committed;
    const committed = com !== undefined && com !== '';
    const b = snaps.get(committed ? com : key);
    if (b === undefined && layer === undefined) return { error: `snapshot ${key} not found` };
    if (b?.parent !== undefined) return { committed, parent: b.parent };
    return layer !== undefined ? { committed: true, parent: layerParent(layer) } : { committed, parent: '' };
  };
  for (const it of out) {
    if (it.invalid !== undefined) continue;
    if (equalMutableOf(it) === '') {
      const st = stat(it.id);
      if ('error' in st) {
        fails(`record ${it.id}: ${st.error}`);
        continue;
      }
      if (st.committed) it.values.set('snapshot.committed', 'true');
      if (st.parent !== '') it.values.set('cache.parent', JSON.stringify(st.parent));
    } else it.values.set('snapshot.committed', 'true');
    it.values.set('cache.snapshot', JSON.stringify(it.id));
  }
  for (const it of out) {
    const em = equalMutableOf(it);
    if (em === '' || parentOf(it) !== '') continue;
    const m = byId.get(em);
    if (m === undefined) {
      fails(`record ${it.id} names the missing record ${em} as its equal mutable (dockerd's migration crashes on it)`);
      continue;
    }
    const p = parentOf(m);
    if (p !== '') it.values.set('cache.parent', JSON.stringify(p));
  }
  for (const it of out) {
    const bm = it.values.get('blobmapping.blob');
    if (bm === undefined) continue;
    let pair: { Blobsum?: unknown; DiffID?: unknown };
    try {
      pair = JSON.parse(bm) as typeof pair;
    } catch {
      fails(`record ${it.id}: blobmapping.blob does not decode`);
      continue;
    }
    if (typeof pair.Blobsum !== 'string' || !content.has(pair.Blobsum)) continue;
    it.values.set('cache.blob', JSON.stringify(pair.Blobsum));
    if (typeof pair.DiffID === 'string') it.values.set('cache.diffID', JSON.stringify(pair.DiffID));
  }
  return out;
}
