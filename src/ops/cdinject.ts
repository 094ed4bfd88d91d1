import { closeSync, fchmodSync, fstatSync, fsyncSync, mkdtempSync, readSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBucketEntry, type BoltFile, type BucketRef } from '../formats/bolt/db.js';
import { EditVisitor, type BoltEdit } from '../formats/bolt/edit.js';
import { PruneVisitor } from '../formats/bolt/prune.js';
import { walkBolt } from '../formats/bolt/walk.js';
import { BoltWriter } from '../formats/bolt/write.js';
import { encodeUtf8 } from '../formats/bytes.js';
import { encodeBinaryTime, s, utcFromMs } from '../formats/containerd/encode.js';
import { isBlobDigest, isIdentifier } from '../formats/containerd/identifiers.js';
import {
  blobRecordEdits,
  contentBlobPath,
  dockerSchema2Manifest,
  imageRecordEdits,
  imagesPath,
  manifestGcLabels,
  MT,
  V1,
} from '../formats/containerd/records.js';
import { chainIds, DIGEST_RE, sha256Digest } from '../formats/digest/digest.js';
import { parseReference } from '../formats/docker/reference.js';
import { DatarootError } from '../formats/errors.js';
import { parseJsonBounded } from '../formats/json/bounded.js';
import { AtomicFile } from '../io/atomic.js';
import { removeOnExit, trackStaging } from '../io/cleanup.js';
import type { Confined } from '../io/confined.js';
import { openBoltIn } from '../store/bolt.js';
import { openLayer, type ArchiveLayer, type ArchiveSource } from '../store/archive.js';
import { boltReadOptions, record, stringMap, sub, type Entry } from '../store/containerd/boltread.js';
import { CD, KNOWN_DB_VERSIONS } from '../store/containerd/layout.js';
import { varintNumber } from '../formats/containerd/values.js';
import { loadInjectable, type InjectOptions, type Planned } from './inject.js';
import { lockForWrite } from './boltwrite.js';
import { extractSnapshot, metaSnapshotEdits, planSnapshots, SNAPSHOTTER, snapdbEdits, type UnpackLayer } from './cdunpack.js';
import { hostPageSize } from '../io/host.js';
import { acquireLock, type HeldLock } from '../io/lock.js';

/**
 * `dataroot inject --store containerd`: puts images into a stopped containerd's store (Docker 29's
 * image store, or any containerd root) as `ctr images import` would, without a containerd:
 *
 * 1. every blob (config, layers, manifest) is written into an ingest directory of the content store
 *    (`ingest/<sha256(ref)>/{ref,data}`, as containerd's local store stages a write), fsynced, its
 *    digest (and a layer's diffID) checked, then renamed to `blobs/sha256/<hex>` (read-only);
 * 2. a new meta.db holding the old tree plus the `content/blob/<digest>` records (with the
 *    `containerd.io/gc.ref.content.*` labels `ctr import` sets) and the `images/<name>` records is
 *    written into an ingest directory too, then renamed over meta.db: the one commit point.
 *
 * A crash before the rename leaves blobs no record names and ingest directories no record names:
 * containerd's garbage collection, which runs at start, deletes both (metadata/content.go
 * garbageCollect). After it, the image is whole. containerd's lock is taken: meta.db flocked by a
 * running containerd is refused, and our own flock is held meanwhile.
 */

export const CD_INJECT_STEPS = ['blob-staged', 'blob-committed', 'snapshot-extracted', 'snapdb-committed', 'metadb-staged', 'metadb-committed'] as const;
export type CdInjectStep = (typeof CD_INJECT_STEPS)[number];

export interface CdInjectOptions extends Omit<InjectOptions, 'onStep'> {
  namespace: string;
  /** Also unpack the layers into the overlayfs snapshotter (as containerd's unpacker would). */
  unpack?: boolean;
  onStep?: (step: CdInjectStep) => void | Promise<void>;
}

export interface CdInjectedBlob {
  digest: string;
  mediaType: string;
  size: number;
  action: 'write' | 'reuse';
}

export interface CdInjectedImage {
  /** What Docker shows as the image ID: the target's digest. */
  id: string;
  configDigest: string;
  mediaType: string;
  names: string[];
  source: string;
  blobs: CdInjectedBlob[];
  warnings: string[];
}

export interface CdInjectResult {
  root: string;
  store: 'containerd';
  namespace: string;
  dryRun: boolean;
  images: CdInjectedImage[];
  blobsWritten: number;
  blobsReused: number;
  bytesWritten: number;
  imagesReplaced: string[];
  /** Snapshots written by --unpack (chainIDs), in order. */
  snapshots: { chainId: string; id: number; name: string; size: number; inodes: number }[];
}

/** A blob to put into the content store. */
interface BlobJob {
  digest: string;
  mediaType: string;
  size: number;
  /** Labels the record gets (merged into an existing record's). */
  labels: Record<string, string>;
  action: 'write' | 'reuse';
  /** Ingest directory (relative to the root) while staged. */
  staged?: string;
}

interface ImagePlan {
  planned: Planned;
  names: string[];
  target: { digest: string; mediaType: string; size: number };
  configDigest: string;
  blobs: BlobJob[];
  /** The layers in order: their blob digests and what unpacking them needs. */
  layers: { digest: string; unpack: UnpackLayer }[];
}

const CONTENT_MODE = 0o444;
let refCounter = 0;

/** The ingest directory containerd's local store uses for a ref: sha256 of the ref, hex. */
function ingestDirFor(ref: string): string {
  return `${CD.ingestDir}/${createHash('sha256').update(ref).digest('hex')}`;
}

/** A new ingest directory holding its ref file (so containerd's GC can name and abort it). */
function newIngest(fs: Confined, what: string): string {
  const ref = `dataroot-inject-${process.pid}-${Date.now().toString(36)}-${refCounter++}-${what}`;
  const dir = ingestDirFor(ref);
  fs.mkdirs(CD.ingestDir, 0o755);
  fs.mkdirs(dir, 0o755);
  fs.writeNewFile(`${dir}/ref`, ref, 0o644, true);
  return dir;
}

/** Writes chunks into a new file, hashing them; the file is fsynced and closed. */
class BlobFile {
  private readonly h = createHash('sha256');
  size = 0;
  constructor(private readonly fd: number | undefined) {}
  write(c: Uint8Array): void {
    this.h.update(c);
    this.size += c.length;
    if (this.fd === undefined) return;
    let off = 0;
    while (off < c.length) off += writeSync(this.fd, c, off, c.length - off);
  }
  finish(): string {
    if (this.fd !== undefined) {
      fchmodSync(this.fd, CONTENT_MODE);
      fsyncSync(this.fd);
      closeSync(this.fd);
    }
    return `sha256:${this.h.digest('hex')}`;
  }
  abort(): void {
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        /* closed */
      }
    }
  }
}

/** The image names of a planned image: tags normalized as containerd names them, or moby's dangling name. */
function namesOf(p: Planned, target: string): string[] {
  const out = p.tags.map((t) => {
    const r = parseReference(t);
    if (r === undefined) throw new DatarootError('USAGE_BAD_TAG', `${JSON.stringify(t)} is not a name:tag reference`);
    return r.normalized.includes(':', r.normalized.lastIndexOf('/')) ? r.normalized : `${r.normalized}:latest`;
  });
  return out.length > 0 ? [...new Set(out)] : [`moby-dangling@${target}`];
}

/** The tag part of a normalized name (OCI's ref.name annotation, as containerd's importer sets it). */
function refNameOf(name: string): string | undefined {
  const at = name.indexOf('@');
  const base = at >= 0 ? name.slice(0, at) : name;
  const c = base.lastIndexOf(':');
  return c > base.lastIndexOf('/') ? base.slice(c + 1) : undefined;
}

/** Existing state of a record read from the old meta.db. */
interface OldRecord {
  created?: Uint8Array;
  labels?: Record<string, string>;
}

function lookupBucket(db: BoltFile, from: BucketRef | undefined, names: readonly string[]): BucketRef | undefined {
  return sub(db, from, ...names);
}

function oldRecord(db: BoltFile, path: readonly string[]): OldRecord | undefined {
  const b = lookupBucket(db, db.rootBucket(), path);
  if (b === undefined) return undefined;
  const r: Map<string, Entry> = record(db, b);
  const out: OldRecord = {};
  const c = r.get('createdat')?.value;
  if (c !== undefined) out.created = Uint8Array.from(c);
  const l = stringMap(db, r, 'labels');
  if (l !== undefined) out.labels = l;
  return out;
}

/** Whether a key of the old file is a value rather than a bucket (a record that is not one: refused). */
function isValueAt(db: BoltFile, path: readonly string[], key: string): boolean {
  const b = lookupBucket(db, db.rootBucket(), path);
  if (b === undefined) return false;
  const e = db.lookup(b, encodeUtf8(key));
  return e !== undefined && !isBucketEntry(e);
}

/** Bucket edits for the levels of a path the old file lacks. */
function ensurePath(db: BoltFile, path: readonly string[], made: Set<string>): BoltEdit[] {
  const out: BoltEdit[] = [];
  let cur: BucketRef | undefined = db.rootBucket();
  for (let i = 0; i < path.length; i++) {
    const name = path[i]!;
    const key = path.slice(0, i + 1).join('\u0000');
    if (cur !== undefined) {
      const e = db.lookup(cur, encodeUtf8(name));
      if (e !== undefined && !isBucketEntry(e))
        throw new DatarootError('CONTAINERD_METADB_UNEXPECTED', `meta.db: ${path.slice(0, i + 1).join('/')} is a value where containerd keeps a bucket`);
      cur = e === undefined ? undefined : db.openBucket(e.value, name);
      if (cur !== undefined) continue;
    }
    if (!made.has(key)) {
      made.add(key);
      out.push({ op: 'bucket', path: path.slice(0, i).map(s), key: s(name) });
    }
  }
  return out;
}

export async function injectContainerd(fs: Confined, o: CdInjectOptions): Promise<CdInjectResult> {
  checkTarget(fs, o);
  const box: LockBox = { lock: o.dryRun ? undefined : await lockForWrite(fs.abs(CD.metaDb)) };
  let orig: string | undefined;
  let restorable = true;
  const work = mkdtempSync(join(tmpdir(), 'dataroot-cdinject-'));
  const dropWork = removeOnExit(work);
  const stager = new BlobStager(fs, o);
  try {
    const { onStep: _step, namespace: _ns, ...common } = o;
    const planned = await loadInjectable({ ...common, preferOci: true }, work, 'containerd on Linux would not run it');
    // Before anything is staged: the tombstone that makes containerd clean up after a crash.
    // containerd's content GC walks blobs/ and gives up when it is absent (a root that never stored a blob).
    if (!o.dryRun) {
      fs.mkdirs(CD.blobsDir, 0o755);
      // The file as it was, kept by a hard link in an ingest directory (containerd's GC removes it
      // after a crash): a run refused while staging puts it back, so that nothing changed.
      orig = newIngest(fs, 'meta.db.orig');
      fs.link(CD.metaDb, `${orig}/data`);
      box.keep = box.lock;
      await writeTombstone(fs, o.namespace, `dataroot-inject-${process.pid}-${Date.now().toString(36)}`, box, o.unpack === true);
    }
    const plans: ImagePlan[] = [];
    for (const p of planned) plans.push(await planImage(stager, p, o));
    const result = resultOf(fs, o, plans, stager.blobs);
    if (o.dryRun) {
      result.imagesReplaced = replacedNames(fs, o, plans);
      return result;
    }
    // Blobs into place. From here a failure leaves what was committed to containerd's GC (the
    // tombstone makes it run), not to a restore.
    restorable = false;
    await stager.commit();
    // --unpack: the snapshots, then the snapshotter's metadata.db.
    let extra: ((db: BoltFile, ensure: (path: string[]) => BoltEdit[]) => BoltEdit[]) | undefined;
    if (o.unpack === true) extra = await unpackAll(fs, o, plans, stager.blobs, result, stager.staged, stager.untrack);
    // The new meta.db: the old tree, the records of this run replacing any of the same names.
    await rewriteMetaDb(fs, o, plans, stager.blobs, result, box, extra);
    return result;
  } catch (e) {
    stager.dropStaged();
    if (orig !== undefined && restorable && fs.kind(`${orig}/data`) === 'file') {
      fs.rename(`${orig}/data`, CD.metaDb);
      fs.fsyncDir('io.containerd.metadata.v1.bolt');
    }
    throw e;
  } finally {
    for (const u of stager.untrack) u();
    if (orig !== undefined) {
      try {
        fs.remove(orig);
      } catch {
        /* containerd's GC aborts it */
      }
    }
    dropWork();
    await box.lock?.release();
    if (box.keep !== box.lock) await box.keep?.release();
  }
}

/** The target before anything is locked or written: a valid namespace, meta.db a file at a known schema, directories where containerd keeps them. */
function checkTarget(fs: Confined, o: CdInjectOptions): void {
  if (!isIdentifier(o.namespace))
    throw new DatarootError(
      'USAGE_BAD_NAMESPACE',
      `${JSON.stringify(o.namespace)} is not a containerd namespace (letters, digits, single . _ - between them, at most 76)`,
    );
  const metaKind = fs.kind(CD.metaDb);
  if (metaKind !== 'file') {
    throw new DatarootError(
      metaKind === 'missing' ? 'CONTAINERD_NO_METADB' : 'STORE_TARGET_UNSAFE',
      `${fs.abs(CD.metaDb)} ${metaKind === 'missing' ? 'does not exist: not a containerd root (start containerd once on it)' : `is a ${metaKind}, not a regular file`}`,
      { file: fs.abs(CD.metaDb) },
    );
  }
  for (const d of [CD.content, `${CD.content}/blobs`, CD.blobsDir, CD.ingestDir, 'io.containerd.metadata.v1.bolt']) {
    const k = fs.kind(d);
    if (k !== 'missing' && k !== 'dir')
      throw new DatarootError('STORE_TARGET_UNSAFE', `${fs.abs(d)} is a ${k}, where containerd keeps a directory: refused`, { file: fs.abs(d) });
  }
  // The schema: v1, at a version containerd 1.x to 2.x writes (their records are the same).
  const db = openMeta(fs);
  try {
    const v1 = schemaBucket(db, fs);
    const v = record(db, v1).get('version')?.value;
    const n = v === undefined ? undefined : varintNumber(v);
    if (n === undefined || !KNOWN_DB_VERSIONS.includes(n))
      throw new DatarootError(
        'CONTAINERD_SCHEMA_UNKNOWN',
        `${fs.abs(CD.metaDb)} is at schema v1 version ${n ?? '(none)'}; inject writes versions ${KNOWN_DB_VERSIONS.join(', ')} (containerd 1.x to 2.x)`,
        { file: fs.abs(CD.metaDb) },
      );
  } finally {
    closeMeta(db);
  }
}

/**
 * The blobs of one run: each staged in an ingest directory of its own (as containerd's local
 * store writes them), checked against the digest and size it must have, written once however
 * many images share it, and not rewritten when the store has it; then renamed into place.
 */
class BlobStager {
  /** Every blob of this run, by digest (a layer shared by two images is written once). */
  readonly blobs = new Map<string, BlobJob>();
  /** Ingest directories staged and not yet committed (removed on a failure). */
  readonly staged: string[] = [];
  /** Ends the tracking of staged directories (their removal on a signal). */
  readonly untrack: (() => void)[] = [];

  constructor(
    private readonly fs: Confined,
    private readonly o: CdInjectOptions,
  ) {}

  /** Writes a blob into a new ingest directory (nothing in a dry run); what is already here is checked, not rewritten. */
  readonly stage: Stage = async (what, write, expect) => {
    const { fs, o, blobs } = this;
    if (expect !== undefined && (blobs.has(expect.digest) || fs.kind(CD.blob(expect.digest)) === 'file')) {
      // Already written by this run or present: the stored blob is checked, not rewritten.
      if (!blobs.has(expect.digest)) await checkStored(fs, expect.digest, expect.size);
      return { digest: expect.digest, size: expect.size ?? blobs.get(expect.digest)?.size ?? 0 };
    }
    let dir: string | undefined;
    let fd: number | undefined;
    if (!o.dryRun) {
      dir = newIngest(fs, what);
      this.staged.push(dir);
      const t = trackStaging(fs.abs(dir));
      this.untrack.push(() => t.done());
      fd = fs.createExclusive(`${dir}/data`, 0o644);
    }
    const f = new BlobFile(fd);
    try {
      await write(f);
    } catch (e) {
      f.abort();
      throw e;
    }
    const digest = f.finish();
    if (expect !== undefined && digest !== expect.digest)
      throw new DatarootError('ARCHIVE_BLOB_DIGEST_MISMATCH', `${what}: its sha256 is ${digest}, not ${expect.digest}`);
    if (expect?.size !== undefined && f.size !== expect.size)
      throw new DatarootError('ARCHIVE_BLOB_SIZE_MISMATCH', `${what}: ${f.size} bytes, the descriptor says ${expect.size}`);
    if (dir !== undefined) await o.onStep?.('blob-staged');
    if (expect === undefined && (blobs.has(digest) || fs.kind(CD.blob(digest)) === 'file')) {
      if (!blobs.has(digest)) await checkStored(fs, digest, f.size);
      if (dir !== undefined) fs.remove(dir);
      return { digest, size: f.size };
    }
    return { digest, size: f.size, ...(dir !== undefined ? { dir } : {}) };
  };

  /** A staged (or present) blob as a job of this run, its labels merged into the job's. */
  add(digest: string, mediaType: string, size: number, dir: string | undefined, labels: Record<string, string> = {}): BlobJob {
    let j = this.blobs.get(digest);
    if (j === undefined) {
      j = {
        digest,
        mediaType,
        size,
        labels: {},
        action: dir !== undefined || (this.o.dryRun && this.fs.kind(CD.blob(digest)) !== 'file') ? 'write' : 'reuse',
        ...(dir !== undefined ? { staged: dir } : {}),
      };
      this.blobs.set(digest, j);
    }
    Object.assign(j.labels, labels);
    return j;
  }

  /** Each staged blob renamed from its ingest directory into blobs/sha256, the directory then removed; both directories synced. */
  async commit(): Promise<void> {
    const fs = this.fs;
    for (const j of this.blobs.values()) {
      if (j.staged === undefined) continue;
      fs.mkdirs(CD.blobsDir, 0o755);
      fs.rename(`${j.staged}/data`, CD.blob(j.digest));
      fs.remove(j.staged);
      await this.o.onStep?.('blob-committed');
    }
    fs.fsyncDir(CD.blobsDir);
    fs.fsyncDir(CD.ingestDir);
    for (const u of this.untrack) u();
    this.untrack.length = 0;
    this.staged.length = 0;
  }

  /** After a failure: the ingest directories not committed go (best effort). */
  dropStaged(): void {
    for (const d of this.staged) {
      try {
        this.fs.remove(d);
      } catch {
        /* best effort: containerd's GC aborts ingests no record names */
      }
    }
  }
}

const blobOf =
  (b: Uint8Array) =>
  async (f: BlobFile): Promise<void> =>
    f.write(b);

/** One image's blobs staged (config, layers, manifest) and what its records and snapshots will be. */
async function planImage(stager: BlobStager, p: Planned, o: CdInjectOptions): Promise<ImagePlan> {
  const img = p.img;
  const jobs: BlobJob[] = [];
  const chains = chainIds(img.diffIds);
  const unpackLayers: ImagePlan['layers'] = [];
  // The config: its exact bytes.
  const cfg = await stager.stage(`config ${img.id}`, blobOf(img.configBytes), { digest: img.id, size: img.configBytes.length });
  let target: ImagePlan['target'];
  if (img.manifestDigest !== undefined) {
    // An OCI layout: its manifest and layers as they are.
    const m = await readManifest(p.source, img.manifestDigest);
    const layerDigests: string[] = [];
    for (const [k, l] of img.layers.entries()) {
      const diffId = img.diffIds[k]!;
      const r = await stageLayer(stager.stage, p.source, l, diffId, o);
      layerDigests.push(r.digest);
      unpackLayers.push({ digest: r.digest, unpack: { chainId: chains[k]!, diffId, source: p.source, layer: l } });
      jobs.push(stager.add(r.digest, l.mediaType ?? MT.dockerLayer, r.size, r.dir));
    }
    const ms = await stager.stage(`manifest ${img.manifestDigest}`, blobOf(m.bytes), { digest: img.manifestDigest, size: m.bytes.length });
    jobs.unshift(stager.add(img.id, m.configMediaType, cfg.size, cfg.dir));
    jobs.unshift(stager.add(ms.digest, m.mediaType, ms.size, ms.dir, manifestGcLabels(img.id, layerDigests)));
    target = { digest: ms.digest, mediaType: m.mediaType, size: ms.size };
  } else {
    // docker save, or --config with --layer: the manifest containerd's importer makes.
    const descs: { mediaType: string; digest: string; size: number }[] = [];
    for (const [k, l] of img.layers.entries()) {
      const r = await stageLayer(stager.stage, p.source, l, img.diffIds[k]!, o);
      unpackLayers.push({ digest: r.digest, unpack: { chainId: chains[k]!, diffId: img.diffIds[k]!, source: p.source, layer: l } });
      const desc = { mediaType: r.compressed ? MT.dockerLayerGzip : MT.dockerLayer, digest: r.digest, size: r.size };
      descs.push(desc);
      jobs.push(stager.add(r.digest, desc.mediaType, r.size, r.dir));
    }
    const manifest = encodeUtf8(dockerSchema2Manifest({ digest: img.id, size: cfg.size }, descs));
    const md = sha256Digest(manifest);
    const ms = await stager.stage(`manifest ${md}`, blobOf(manifest), { digest: md, size: manifest.length });
    jobs.unshift(stager.add(img.id, MT.dockerConfig, cfg.size, cfg.dir));
    jobs.unshift(
      stager.add(
        md,
        MT.dockerManifest,
        ms.size,
        ms.dir,
        manifestGcLabels(
          img.id,
          descs.map((d) => d.digest),
        ),
      ),
    );
    target = { digest: md, mediaType: MT.dockerManifest, size: ms.size };
  }
  return { planned: p, names: namesOf(p, target.digest), target, configDigest: img.id, blobs: jobs, layers: unpackLayers };
}

/** What the run did (or, dry, would do): the images and their blobs, what was written and reused. */
function resultOf(fs: Confined, o: CdInjectOptions, plans: ImagePlan[], blobs: Map<string, BlobJob>): CdInjectResult {
  const result: CdInjectResult = {
    root: fs.base,
    store: 'containerd',
    namespace: o.namespace,
    dryRun: o.dryRun,
    images: [],
    blobsWritten: 0,
    blobsReused: 0,
    bytesWritten: 0,
    imagesReplaced: [],
    snapshots: [],
  };
  for (const j of blobs.values()) {
    if (j.action === 'write') {
      result.blobsWritten++;
      result.bytesWritten += j.size;
    } else result.blobsReused++;
  }
  result.images = plans.map((pl) => ({
    id: pl.target.digest,
    configDigest: pl.configDigest,
    mediaType: pl.target.mediaType,
    names: pl.names,
    source: pl.planned.sourceName,
    blobs: pl.blobs.map((b) => ({ digest: b.digest, mediaType: b.mediaType, size: b.size, action: b.action })),
    warnings: pl.planned.warnings,
  }));
  return result;
}

/** The names of this run that already have an image record in the namespace (a dry run's report). */
function replacedNames(fs: Confined, o: CdInjectOptions, plans: ImagePlan[]): string[] {
  const old = openMeta(fs);
  try {
    return plans.flatMap((pl) => pl.names.filter((n) => lookupBucket(old, old.rootBucket(), [V1, o.namespace, 'images', n]) !== undefined));
  } finally {
    closeMeta(old);
  }
}

const metaSources = new WeakMap<BoltFile, () => void>();

function openMeta(fs: Confined): BoltFile {
  const b = openBoltIn(fs, CD.metaDb, boltReadOptions(fs.lstat(CD.metaDb)?.size ?? 0));
  if (b === undefined) throw new DatarootError('CONTAINERD_NO_METADB', `${fs.abs(CD.metaDb)} does not exist`, { file: fs.abs(CD.metaDb) });
  metaSources.set(b.db, () => b.close());
  return b.db;
}

/** meta.db's schema bucket `v1`; a root where containerd never made it is refused. */
function schemaBucket(db: BoltFile, fs: Confined): BucketRef {
  const v1 = lookupBucket(db, db.rootBucket(), [V1]);
  if (v1 === undefined)
    throw new DatarootError('CONTAINERD_SCHEMA_UNKNOWN', `${fs.abs(CD.metaDb)} has no schema bucket v1: containerd never initialised it`, {
      file: fs.abs(CD.metaDb),
    });
  return v1;
}

function closeMeta(db: BoltFile): void {
  metaSources.get(db)?.();
}

async function rewriteMetaDb(
  fs: Confined,
  o: CdInjectOptions,
  plans: ImagePlan[],
  blobs: Map<string, BlobJob>,
  result: CdInjectResult,
  box: LockBox,
  extra?: (db: BoltFile, ensure: (path: string[]) => BoltEdit[]) => BoltEdit[],
): Promise<void> {
  const db = openMeta(fs);
  try {
    schemaBucket(db, fs);
    const now = utcFromMs(Date.now());
    const ns = o.namespace;
    const made = new Set<string>();
    const edits: BoltEdit[] = [];
    const drop: Uint8Array[][] = [];
    const blobPath = contentBlobPath(ns).map((b) => new TextDecoder().decode(b));
    const imgPath = imagesPath(ns).map((b) => new TextDecoder().decode(b));
    edits.push(...ensurePath(db, blobPath, made));
    if (plans.length > 0) edits.push(...ensurePath(db, imgPath, made));
    for (const j of blobs.values()) {
      if (isValueAt(db, blobPath, j.digest))
        throw new DatarootError('CONTAINERD_METADB_UNEXPECTED', `meta.db: content/blob/${j.digest} in ${ns} is a value, not a record`);
      const old = oldRecord(db, [...blobPath, j.digest]);
      if (old !== undefined) drop.push([...contentBlobPath(ns), s(j.digest)]);
      const labels = { ...(old?.labels ?? {}), ...j.labels };
      edits.push(...withRawTime(blobRecordEdits(ns, { digest: j.digest, size: j.size, labels, created: now, updated: now }), old?.created));
    }
    for (const pl of plans) {
      for (const name of pl.names) {
        if (isValueAt(db, imgPath, name)) throw new DatarootError('CONTAINERD_METADB_UNEXPECTED', `meta.db: images/${name} in ${ns} is a value, not a record`);
        const old = oldRecord(db, [...imgPath, name]);
        if (old !== undefined) {
          drop.push([...imagesPath(ns), s(name)]);
          result.imagesReplaced.push(name);
        }
        const ref = refNameOf(name);
        const annotations: Record<string, string> = name.startsWith('moby-dangling@')
          ? {}
          : { 'io.containerd.image.name': name, ...(ref !== undefined ? { 'org.opencontainers.image.ref.name': ref } : {}) };
        edits.push(
          ...withRawTime(
            imageRecordEdits(ns, { name, target: { ...pl.target, annotations }, labels: old?.labels ?? {}, created: now, updated: now }),
            old?.created,
          ),
        );
      }
    }
    if (extra !== undefined) edits.push(...extra(db, (path) => ensurePath(db, path, made)));
    await commitMetaDb(fs, db, edits, drop, box, { staged: () => o.onStep?.('metadb-staged'), committed: () => o.onStep?.('metadb-committed') });
  } finally {
    closeMeta(db);
  }
}

/** The meta.db lock: moved to each new file as that is renamed into place. */
interface LockBox {
  lock: HeldLock | undefined;
  /** The first file's lock, kept while that file may be put back. */
  keep?: HeldLock | undefined;
}

/**
 * Writes the old tree with `drop` left out and `edits` applied into a new file staged in an
 * ingest directory, flocks it, renames it over meta.db (fsync of file and directory), then
 * releases the old file's lock: a containerd that starts meanwhile finds the new file locked.
 */
async function commitMetaDb(
  fs: Confined,
  db: BoltFile | undefined,
  edits: BoltEdit[],
  drop: Uint8Array[][],
  box: LockBox,
  hooks: { staged?: () => void | Promise<void>; committed?: () => void | Promise<void> } = {},
  rel: string = CD.metaDb,
): Promise<void> {
  const st = fs.lstat(rel) ?? { mode: 0o600, uid: 0, gid: 0 };
  const root = typeof process.geteuid === 'function' && process.geteuid() === 0;
  const dir = newIngest(fs, 'meta.db');
  const tracked = trackStaging(fs.abs(dir));
  try {
    const out = AtomicFile.create(fs.abs(rel), { mode: st.mode & 0o7777, ...(root ? { uid: st.uid, gid: st.gid } : {}), tmp: fs.abs(`${dir}/data`) });
    let lock: HeldLock | undefined;
    try {
      const w = new BoltWriter(
        out,
        db === undefined ? { pageSize: hostPageSize() } : { pageSize: db.pageSize, txid: db.meta.txid + 1n, rootSequence: db.meta.rootSequence },
      );
      const ev = new EditVisitor(w, edits);
      if (db !== undefined) walkBolt(db, drop.length > 0 ? new PruneVisitor(ev, drop) : ev);
      ev.finish();
      w.finish();
      if (box.lock !== undefined) lock = await acquireLock(out.tmp);
      await hooks.staged?.();
      out.commit();
    } catch (e) {
      out.abort();
      await lock?.release();
      throw e;
    }
    const old = box.lock;
    box.lock = lock;
    if (old !== box.keep) await old?.release();
    await hooks.committed?.();
    fs.remove(dir);
  } finally {
    tracked.done();
  }
}

/**
 * The first write: an ingest record in the namespace that has already expired (a tombstone).
 * containerd's garbage collection, at its next start, removes it, and having removed a content
 * record it then cleans the content store (metadata/db.go: dirtyCS): blobs no record names and
 * ingest directories no record names go. So whatever this run staged before its last write is
 * removed if the run dies; after the last write, everything staged has a record or is gone.
 */
async function writeTombstone(fs: Confined, ns: string, ref: string, box: LockBox, snapshot: boolean): Promise<void> {
  const db = openMeta(fs);
  try {
    schemaBucket(db, fs);
    const path = [V1, ns, 'content', 'ingests'];
    if (isValueAt(db, path.slice(0, -1), 'ingests'))
      throw new DatarootError('CONTAINERD_METADB_UNEXPECTED', `meta.db: ${path.join('/')} is a value, not a bucket`);
    const made = new Set<string>();
    const edits = ensurePath(db, path, made);
    const p = path.map(s);
    edits.push(
      { op: 'bucket', path: p, key: s(ref) },
      { op: 'put', path: [...p, s(ref)], key: s('ref'), value: s(ref) },
      { op: 'put', path: [...p, s(ref)], key: s('expireat'), value: encodeBinaryTime(utcFromMs(Date.now())) },
    );
    if (snapshot) {
      // And a snapshot record nothing references: removing it makes the GC clean the snapshotter
      // (backend snapshots no record names, their directories). Seq 0: containerd never uses it.
      const sp = [V1, ns, 'snapshots', SNAPSHOTTER];
      edits.push(...ensurePath(db, sp, made));
      edits.push({ op: 'bucket', path: sp.map(s), key: s(ref) }, { op: 'put', path: [...sp, ref].map(s), key: s('name'), value: s(`${ns}/0/${ref}`) });
    }
    await commitMetaDb(fs, db, edits, [], box);
  } finally {
    closeMeta(db);
  }
}

/**
 * Unpacks every image's layers as new committed snapshots (those the namespace lacks), writes the
 * snapshotter's metadata.db, and returns the meta.db edits (records, labels) for the last write.
 */
async function unpackAll(
  fs: Confined,
  o: CdInjectOptions,
  plans: ImagePlan[],
  blobs: Map<string, BlobJob>,
  result: CdInjectResult,
  staged: string[],
  untrack: (() => void)[],
): Promise<(db: BoltFile, ensure: (path: string[]) => BoltEdit[]) => BoltEdit[]> {
  const meta = openMeta(fs);
  const dbRel = CD.snapshotterDb(SNAPSHOTTER);
  const snapKind = fs.kind(dbRel);
  if (snapKind !== 'missing' && snapKind !== 'file')
    throw new DatarootError('STORE_TARGET_UNSAFE', `${fs.abs(dbRel)} is a ${snapKind}, not a regular file`, { file: fs.abs(dbRel) });
  let snap = snapKind === 'file' ? openBoltIn(fs, dbRel, boltReadOptions(fs.lstat(dbRel)?.size ?? 0)) : undefined;
  try {
    // The snapshotter's cleanup (which removes snapshots/<id> directories its metadata.db does not
    // name) fails on a metadata.db without v1/snapshots: make those buckets before any directory.
    const init: BoltEdit[] = [];
    const made = new Set<string>();
    if (snap === undefined)
      init.push(
        { op: 'bucket', path: [], key: s('v1') },
        { op: 'bucket', path: [s('v1')], key: s('snapshots') },
        { op: 'bucket', path: [s('v1')], key: s('parents') },
      );
    else for (const b of ['snapshots', 'parents']) init.push(...ensurePath(snap.db, ['v1', b], made));
    if (init.length > 0) {
      fs.mkdirs(CD.snapshotterDir(SNAPSHOTTER), 0o700);
      await commitMetaDb(fs, snap?.db, init, [], { lock: undefined }, {}, dbRel);
      snap?.close();
      snap = openBoltIn(fs, dbRel, boltReadOptions(fs.lstat(dbRel)?.size ?? 0));
    }
    const plan = planSnapshots(
      fs,
      meta,
      snap?.db,
      o.namespace,
      plans.map((pl) => pl.layers.map((l) => l.unpack)),
    );
    for (const n of plan.snapshots) {
      const dir = `${CD.snapshotterDir(SNAPSHOTTER)}/snapshots/${n.id}`;
      staged.push(dir);
      const t = trackStaging(fs.abs(dir));
      untrack.push(() => t.done());
      await extractSnapshot(fs, n, o);
      await o.onStep?.('snapshot-extracted');
    }
    fs.fsyncDir(`${CD.snapshotterDir(SNAPSHOTTER)}/snapshots`);
    const now = utcFromMs(Date.now());
    await commitMetaDb(fs, snap?.db, snapdbEdits(snap?.db, plan, now), [], { lock: undefined }, {}, dbRel);
    await o.onStep?.('snapdb-committed');
    // From here the snapshots are the snapshotter's: a failure leaves them to containerd's GC.
    staged.length = 0;
    for (const u of untrack) u();
    untrack.length = 0;
    for (const pl of plans) {
      const top = pl.layers[pl.layers.length - 1];
      if (top !== undefined) blobs.get(pl.configDigest)!.labels[`containerd.io/gc.ref.snapshot.${SNAPSHOTTER}`] = top.unpack.chainId;
      for (const l of pl.layers) blobs.get(l.digest)!.labels['containerd.io/uncompressed'] = l.unpack.diffId;
    }
    result.snapshots = plan.snapshots.map((n) => ({ chainId: n.chainId, id: n.id, name: n.name, size: n.size, inodes: n.inodes }));
    return (db, ensure) => metaSnapshotEdits(db, o.namespace, plan, now, ensure);
  } finally {
    snap?.close();
    closeMeta(meta);
  }
}

/** Keeps an existing record's creation time (the bytes containerd wrote). */
function withRawTime(edits: BoltEdit[], created: Uint8Array | undefined): BoltEdit[] {
  if (created === undefined) return edits;
  return edits.map((e) =>
    e.op === 'put' && e.path.length > 0 && new TextDecoder().decode(e.key) === 'createdat' && isRecordLevel(e) ? { ...e, value: created } : e,
  );
}

function isRecordLevel(e: BoltEdit): boolean {
  // createdat directly in the record (content/blob/<d> or images/<name>), not in a sub-bucket.
  const names = e.path.map((p) => new TextDecoder().decode(p));
  return (names.length === 5 && names[2] === 'content' && names[3] === 'blob') || (names.length === 4 && names[2] === 'images');
}

/** A blob already in the content store: a regular file of the expected size and digest. */
async function checkStored(fs: Confined, digest: string, size: number | undefined): Promise<void> {
  const f = fs.openFile(CD.blob(digest), 'content blob');
  if (f === undefined) throw new DatarootError('CONTAINERD_BLOB_MISSING', `${digest} vanished from the content store`);
  try {
    const st = fstatSync(f.fd);
    if (size !== undefined && st.size !== size)
      throw new DatarootError(
        'CONTAINERD_BLOB_CORRUPT',
        `the content store holds ${digest} with ${st.size} bytes, not ${size}: run dataroot containerd verify`,
        { file: fs.abs(CD.blob(digest)) },
      );
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let off = 0; ;) {
      const n = readSync(f.fd, buf, 0, buf.length, off);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      off += n;
    }
    const got = `sha256:${h.digest('hex')}`;
    if (got !== digest)
      throw new DatarootError('CONTAINERD_BLOB_CORRUPT', `the content store's ${digest} has sha256 ${got}: run dataroot containerd verify`, {
        file: fs.abs(CD.blob(digest)),
      });
  } finally {
    f.close();
  }
}

type Stage = (
  what: string,
  write: (f: BlobFile) => Promise<void>,
  expect?: { digest: string; size?: number },
) => Promise<{ digest: string; size: number; dir?: string }>;

/**
 * A layer blob as it is in the source (compressed or not): staged while its stored bytes are hashed
 * and its uncompressed bytes hashed against the config's diffID (containerd checks that only when
 * it unpacks; an image that could not be unpacked is refused here).
 */
async function stageLayer(
  stage: Stage,
  source: ArchiveSource,
  l: ArchiveLayer,
  diffId: string,
  o: CdInjectOptions,
): Promise<{ digest: string; size: number; dir?: string; compressed: boolean }> {
  let compressed = false;
  const expect = l.digest !== undefined ? { digest: l.digest, ...(l.size !== undefined ? { size: l.size } : {}) } : undefined;
  if (expect !== undefined && !DIGEST_RE.test(expect.digest))
    throw new DatarootError('ARCHIVE_MANIFEST_INVALID', `layer ${l.member}: digest ${JSON.stringify(expect.digest)} is not sha256:<64 hex>`);
  const r = await stage(
    `layer ${l.member}`,
    async (f) => {
      const { compression, stream } = await openLayer(source, l, { maxRatio: o.maxRatio, maxBytes: o.maxBytes, tap: (c) => f.write(c) });
      compressed = compression !== 'none';
      const h = createHash('sha256');
      for await (const c of stream) if (compressed) h.update(c);
      const got = compressed ? `sha256:${h.digest('hex')}` : undefined;
      if (got !== undefined && got !== diffId)
        throw new DatarootError(
          'ARCHIVE_DIFFID_MISMATCH',
          `layer ${l.member} uncompresses to sha256 ${got}, but the config says ${diffId}: refused (unpacking it would fail)`,
        );
    },
    expect,
  );
  if (r.dir === undefined && expect !== undefined) {
    // Not rewritten (present already): its compression from its first bytes.
    compressed = l.mediaType !== undefined ? /gzip|zstd/.test(l.mediaType) : compressed;
  }
  if (!compressed && r.digest !== diffId && (l.mediaType === undefined || !/gzip|zstd/.test(l.mediaType))) {
    throw new DatarootError(
      'ARCHIVE_DIFFID_MISMATCH',
      `layer ${l.member} has sha256 ${r.digest}, but the config says ${diffId}: refused (docker load refuses it too)`,
    );
  }
  return { ...r, compressed };
}

/** An OCI manifest from a layout: bytes (digest checked), its media type and its config's. */
async function readManifest(source: ArchiveSource, digest: string): Promise<{ bytes: Buffer; mediaType: string; configMediaType: string }> {
  if (!isBlobDigest(digest)) throw new DatarootError('ARCHIVE_MANIFEST_INVALID', `manifest digest ${JSON.stringify(digest)} is not sha256:<64 hex>`);
  const bytes = await source.readAll(`blobs/sha256/${digest.slice(7)}`, 4 << 20);
  if (sha256Digest(bytes) !== digest) throw new DatarootError('ARCHIVE_BLOB_DIGEST_MISMATCH', `manifest ${digest}: its sha256 is ${sha256Digest(bytes)}`);
  const m = parseJsonBounded(bytes.toString('utf8')) as { mediaType?: unknown; config?: { mediaType?: unknown } };
  const mediaType = typeof m.mediaType === 'string' ? m.mediaType : MT.ociManifest;
  const configMediaType = typeof m.config?.mediaType === 'string' ? m.config.mediaType : 'application/vnd.oci.image.config.v1+json';
  return { bytes, mediaType, configMediaType };
}
