import type { Stats } from 'node:fs';
import { chainIds } from '../../formats/digest/digest.js';
import { isBlobDigest, isIngestDir, isSnapshotId } from '../../formats/containerd/identifiers.js';
import {
  childrenOf,
  formatPlatform,
  hostPlatform,
  hostRank,
  isConfigType,
  isIndexType,
  isManifestType,
  matchesHost,
  normalizePlatform,
  parseConfig,
  parseManifest,
  type Descriptor,
  type ImageConfigView,
  type Platform,
} from '../../formats/containerd/oci.js';
import { DatarootError } from '../../formats/errors.js';
import { parseJsonBounded } from '../../formats/json/bounded.js';
import { LIMITS, type Confined } from '../../io/confined.js';
import { problem, type Problem } from '../problems.js';
import { CD, FILE_SNAPSHOTTERS } from './layout.js';
import { MetaDb, type CdBlobRecord, type CdImageRecord, type CdSnapshotRecord } from './metadb.js';
import { SnapshotterDb, type BackendSnapshot } from './snapdb.js';

/** Most bytes read of a manifest, index or config blob. */
export const MAX_MANIFEST = 8 << 20;
export const MAX_CONFIG = LIMITS.config;

/** How a containerd root was found (for messages and for Docker's own paths). */
export interface CdLocation {
  /** The directory read (inside an unpacked archive for archive roots). */
  dir: string;
  /** The path as the engine saw it (what absolute paths are shown under). */
  shown: string;
  how: 'flag' | 'docker-daemon' | 'system' | 'root-itself';
}

/** A snapshot as containerd's metadata snapshotter reports it (meta.db record over the backend's). */
export interface CdSnapshot {
  namespace: string;
  snapshotter: string;
  /** snapshots.Info, Go field names. */
  Kind: string;
  Name: string;
  Parent: string;
  Labels: Record<string, string> | null;
  Created: string;
  Updated: string;
  record: CdSnapshotRecord;
  backend: BackendSnapshot | undefined;
  /** `snapshots/<id>` relative to the containerd root, when the backend record has a valid id. */
  dir: string | undefined;
  problems: Problem[];
}

/** The longest parent chain followed (dockerd and containerd stop images at 128 layers; other tools build more). */
export const MAX_SNAPSHOT_CHAIN = 512;

/** A snapshot's parents, nearest first, as far as they resolve; `end` says why the walk stopped early. */
export interface ParentChain {
  parents: CdSnapshot[];
  end?: { kind: 'missing'; of: CdSnapshot; parent: string } | { kind: 'cycle'; at: string } | { kind: 'too-long' };
}

export interface Usage {
  Size: number;
  Inodes: number;
}

/**
 * One containerd root read offline: meta.db, the snapshotters' metadata.db files and
 * directories, the content store. Every read goes through the root's confined layer; digests,
 * snapshot ids and ingest names are checked before they become paths.
 */
export class CdRoot {
  readonly meta: MetaDb;
  private readonly snapDbs = new Map<string, SnapshotterDb | undefined>();
  private readonly cache = new Map<string, unknown>();
  readonly host: Platform = hostPlatform(process.arch);

  constructor(
    readonly fs: Confined,
    readonly location: CdLocation,
  ) {
    this.meta = MetaDb.open(fs);
  }

  close(): void {
    this.meta.close();
  }

  private once<T>(key: string, fn: () => T): T {
    if (!this.cache.has(key)) this.cache.set(key, fn());
    return this.cache.get(key) as T;
  }

  /** An absolute path as the engine saw it. */
  shown(rel: string): string {
    return rel === '' ? this.location.shown : `${this.location.shown}/${rel}`;
  }

  /** Namespaces, all or the one asked for (NAMESPACE_NOT_FOUND when it is not there). */
  namespaceNames(only?: string): string[] {
    const all = this.meta.namespaces().map((n) => n.name);
    if (only === undefined) return all;
    if (!all.includes(only))
      throw new DatarootError('CONTAINERD_NAMESPACE_NOT_FOUND', `namespace ${JSON.stringify(only)} does not exist (namespaces: ${all.join(', ') || 'none'})`);
    return [only];
  }

  /** The snapshotter's metadata.db, or undefined when it is missing (a finding, not an error). */
  snapshotter(name: string): SnapshotterDb | undefined {
    if (!this.snapDbs.has(name)) this.snapDbs.set(name, FILE_SNAPSHOTTERS.includes(name) ? SnapshotterDb.open(this.fs, name) : undefined);
    return this.snapDbs.get(name);
  }

  /** Snapshotters named in meta.db or present as directories. */
  snapshotterNames(): string[] {
    return this.once('snapshotters', () => {
      const names = new Set<string>();
      for (const n of this.fs.names('')) if (n.startsWith('io.containerd.snapshotter.v1.')) names.add(n.slice('io.containerd.snapshotter.v1.'.length));
      for (const ns of this.namespaceNames()) for (const k of this.meta.snapshots(ns).keys()) names.add(k);
      return [...names].sort();
    });
  }

  /** Snapshots of a namespace (all snapshotters, or one), merged as containerd's metadata snapshotter does. */
  snapshots(ns: string, snapshotter?: string): CdSnapshot[] {
    return this.once(`snaps/${ns}/${snapshotter ?? ''}`, () => {
      const out: CdSnapshot[] = [];
      for (const [sn, list] of this.meta.snapshots(ns)) {
        if (snapshotter !== undefined && sn !== snapshotter) continue;
        const db = this.snapshotter(sn);
        for (const r of list) {
          const problems = [...r.problems];
          const b = db?.snapshots.get(r.name);
          if (db === undefined && FILE_SNAPSHOTTERS.includes(sn))
            problems.push(problem('CONTAINERD_SNAPSHOTTER_DB_MISSING', `${CD.snapshotterDb(sn)} does not exist: snapshot ${r.key} has no backend record`));
          else if (db !== undefined && b === undefined)
            problems.push(problem('CONTAINERD_SNAPSHOT_BACKEND_MISSING', `snapshot ${r.key}: the ${sn} snapshotter has no snapshot ${JSON.stringify(r.name)}`));
          if (b !== undefined) problems.push(...b.problems);
          // overlayInfo: backend labels, then the metadata labels over them.
          let labels: Record<string, string> | null = b?.labels ?? null;
          if (labels === null) labels = r.labels;
          else if (r.labels !== null) labels = { ...labels, ...r.labels };
          out.push({
            namespace: ns,
            snapshotter: sn,
            Kind: b?.kind ?? 'Unknown',
            Name: r.key,
            Parent: r.parent,
            Labels: labels,
            Created: r.created.text,
            Updated: r.updated.text,
            record: r,
            backend: b,
            dir: b?.id !== undefined ? CD.snapshotDir(sn, b.id) : undefined,
            problems,
          });
        }
      }
      return out;
    });
  }

  snapshotByKey(ns: string, snapshotter: string, key: string): CdSnapshot | undefined {
    const index = this.once(`snapindex/${ns}/${snapshotter}`, () => new Map(this.snapshots(ns, snapshotter).map((s) => [s.Name, s])));
    return index.get(key);
  }

  /**
   * The parents of a snapshot in its namespace and snapshotter, nearest first. The chain is the
   * evidence's: one that names a missing parent, comes back to a snapshot, or runs past
   * MAX_SNAPSHOT_CHAIN (with the snapshot itself) ends there, and says so.
   */
  parentChain(s: CdSnapshot): ParentChain {
    const parents: CdSnapshot[] = [];
    const seen = new Set([s.Name]);
    for (let cur = s; cur.Parent !== '';) {
      const p = this.snapshotByKey(cur.namespace, cur.snapshotter, cur.Parent);
      if (p === undefined) return { parents, end: { kind: 'missing', of: cur, parent: cur.Parent } };
      if (seen.has(p.Name)) return { parents, end: { kind: 'cycle', at: p.Name } };
      if (parents.length + 2 > MAX_SNAPSHOT_CHAIN) return { parents, end: { kind: 'too-long' } };
      seen.add(p.Name);
      parents.push(p);
      cur = p;
    }
    return { parents };
  }

  /** Whether snapshotByKey would find the key: one lookup when the namespace's snapshots were not read. */
  hasSnapshot(ns: string, snapshotter: string, key: string): boolean {
    const index = this.cache.get(`snapindex/${ns}/${snapshotter}`) as Map<string, CdSnapshot> | undefined;
    return index !== undefined ? index.has(key) : this.meta.hasSnapshot(ns, snapshotter, key);
  }

  /** The names under a snapshotter's `snapshots/` directory (one listing). */
  snapshotDirIds(snapshotter: string): Set<string> {
    // Snapshotter names come from the evidence: only the ones whose layout is known become paths.
    return this.once(
      `snapdirs/${snapshotter}`,
      () => new Set(FILE_SNAPSHOTTERS.includes(snapshotter) ? this.fs.names(`${CD.snapshotterDir(snapshotter)}/snapshots`) : []),
    );
  }

  /** The tree of a snapshot's files: `snapshots/<id>/fs` (overlayfs) or `snapshots/<id>` (native). */
  snapshotFs(s: CdSnapshot): string | undefined {
    if (s.backend?.id === undefined || !isSnapshotId(s.backend.id)) return undefined;
    return CD.snapshotFs(s.snapshotter, s.backend.id);
  }

  /**
   * snapshotter.Usage: a committed snapshot's stored size and inodes; an active one's disk usage
   * of its upper directory (blocks × 512, each inode once), as containerd's fs.DiskUsage counts it.
   */
  usage(s: CdSnapshot): Usage {
    if (s.backend === undefined) return { Size: 0, Inodes: 0 };
    if (s.backend.kind !== 'Active') return { Size: s.backend.size, Inodes: s.backend.inodes };
    const dir = this.snapshotFs(s);
    return dir === undefined ? { Size: 0, Inodes: 0 } : diskUsage(this.fs, dir);
  }

  // Content

  /** The blob file of a digest (checked first): its stat, or undefined when absent. */
  blobStat(digest: string): Stats | undefined {
    if (!isBlobDigest(digest)) return undefined;
    if (this.statCache.has(digest)) return this.statCache.get(digest);
    // One listing of the blob directory answers "absent" without a system call per digest.
    if (!this.blobFiles().digests.has(digest)) return undefined;
    const st = this.fs.lstat(CD.blob(digest));
    const out = st?.isFile() === true ? st : undefined;
    this.statCache.set(digest, out);
    return out;
  }

  private readonly statCache = new Map<string, Stats | undefined>();
  private readonly jsonCache = new Map<string, ReturnType<CdRoot['readJsonUncached']>>();

  /** Whether a blob file is there (one listing of the blob directory, no system call per digest). */
  blobPresent(digest: string): boolean {
    return this.blobFiles().digests.has(digest);
  }

  /** Digests of every blob file (names that are not 64 hex digits are listed apart). */
  blobFiles(): { digests: Set<string>; other: string[] } {
    return this.once('blobfiles', () => {
      const digests = new Set<string>();
      const other: string[] = [];
      for (const n of this.fs.names(CD.blobsDir)) {
        if (/^[a-f0-9]{64}$/.test(n)) digests.add(`sha256:${n}`);
        else other.push(n);
      }
      return { digests, other };
    });
  }

  /** A whole blob, bounded: undefined when absent. */
  readBlob(digest: string, max: number): Buffer | undefined {
    if (!isBlobDigest(digest)) return undefined;
    return this.fs.readFile(CD.blob(digest), { max, what: `blob ${digest}` });
  }

  /** A manifest, index or config blob as JSON: `missing`, `invalid` (with why) or the value. */
  readJson(digest: string, max = MAX_MANIFEST): { state: 'present'; json: unknown } | { state: 'missing' } | { state: 'invalid'; why: string } {
    const hit = this.jsonCache.get(digest);
    if (hit !== undefined) return hit;
    const r = this.readJsonUncached(digest, max);
    this.jsonCache.set(digest, r);
    return r;
  }

  private readJsonUncached(digest: string, max: number): { state: 'present'; json: unknown } | { state: 'missing' } | { state: 'invalid'; why: string } {
    if (isBlobDigest(digest) && !this.blobFiles().digests.has(digest)) return { state: 'missing' };
    let b: Buffer | undefined;
    try {
      b = this.readBlob(digest, max);
    } catch (e) {
      if (e instanceof DatarootError) return { state: 'invalid', why: `${e.code}: ${e.message}` };
      throw e;
    }
    if (b === undefined) return { state: 'missing' };
    try {
      return { state: 'present', json: parseJsonBounded(b.toString('utf8')) };
    } catch (e) {
      return { state: 'invalid', why: e instanceof Error ? e.message : String(e) };
    }
  }

  /** Every content record of every namespace, by digest. */
  blobRecords(): Map<string, CdBlobRecord[]> {
    return this.once('blobrecords', () => {
      const m = new Map<string, CdBlobRecord[]>();
      for (const ns of this.namespaceNames()) for (const b of this.meta.blobs(ns)) m.set(b.Digest, [...(m.get(b.Digest) ?? []), b]);
      return m;
    });
  }

  /** The backend ingests (`ingest/<sha256 of ref>/`): ref, sizes and times as the local store keeps them. */
  backendIngests(): BackendIngest[] {
    return this.once('ingests', () => {
      const out: BackendIngest[] = [];
      for (const n of this.fs.names(CD.ingestDir)) {
        const dir = `${CD.ingestDir}/${n}`;
        const problems: Problem[] = [];
        if (!isIngestDir(n)) {
          problems.push(problem('CONTAINERD_INGEST_NAME_INVALID', `${dir} is not named by a sha256 hex digest: it is not read`, dir));
          out.push({ dir, ref: '', offset: 0, total: 0, startedAt: undefined, updatedAt: undefined, problems });
          continue;
        }
        const text = (f: string, max = LIMITS.meta): string | undefined => {
          try {
            return this.fs.readText(`${dir}/${f}`, { max, what: `ingest ${f}` });
          } catch (e) {
            if (e instanceof DatarootError) {
              problems.push(problem(e.code, e.message, `${dir}/${f}`));
              return undefined;
            }
            throw e;
          }
        };
        const ref = text('ref') ?? '';
        const total = Number(text('total') ?? '0');
        const data = this.fs.lstat(`${dir}/data`);
        const startedAt = this.fs.lstat(`${dir}/startedat`)?.mtime;
        const updatedAt = this.fs.lstat(`${dir}/updatedat`)?.mtime;
        out.push({ dir, ref, offset: data?.isFile() === true ? data.size : 0, total: Number.isSafeInteger(total) ? total : 0, startedAt, updatedAt, problems });
      }
      return out;
    });
  }

  // Images

  /** Resolves an image record the way ctr and dockerd walk it: target, platform manifests, config, layers, snapshots. */
  resolve(img: CdImageRecord, snapshotter = 'overlayfs'): ResolvedImage {
    return this.once(`resolve/${img.namespace}/${img.Name}/${snapshotter}`, () => resolveImage(this, img, snapshotter));
  }
}

export interface BackendIngest {
  dir: string;
  ref: string;
  offset: number;
  total: number;
  startedAt: Date | undefined;
  updatedAt: Date | undefined;
  problems: Problem[];
}

/** containerd's fs.DiskUsage over a directory: st_blocks × 512 of each inode once, and the inode count (the directory itself included). */
export function diskUsage(fs: Confined, dir: string): Usage {
  const root = fs.lstat(dir);
  if (root === undefined || !root.isDirectory()) return { Size: 0, Inodes: 0 };
  const seen = new Set<string>();
  let size = 0;
  const add = (st: Stats): void => {
    const k = `${st.dev}:${st.ino}`;
    if (seen.has(k)) return;
    seen.add(k);
    size += st.blocks * 512;
  };
  add(root);
  for (const e of fs.walk(dir)) add(e.stat);
  return { Size: size, Inodes: seen.size };
}

export interface ResolvedManifest {
  desc: Descriptor;
  platform: Platform | undefined;
  state: 'present' | 'missing' | 'invalid';
  why?: string;
  config?: { desc: Descriptor; state: 'present' | 'missing' | 'invalid'; view?: ImageConfigView; why?: string };
  layers: { desc: Descriptor; present: boolean; size: number }[];
  diffIds: string[];
  chainIds: string[];
  /** The image's snapshot (its top chainID) in the snapshotter, when unpacked. */
  unpacked: boolean;
  /** Attestation or unknown/unknown pseudo-manifests dockerd skips. */
  pseudo: boolean;
  matchesHost: boolean;
}

export interface ResolvedImage {
  record: CdImageRecord;
  kind: 'index' | 'manifest' | 'other';
  targetState: 'present' | 'missing' | 'invalid';
  manifests: ResolvedManifest[];
  /** The manifest for this host (platforms.Default), present, preferred by platform order. */
  best: ResolvedManifest | undefined;
  /** ctr images ls SIZE: descriptor sizes along the host's platform, one manifest. */
  ctrSize: number;
  /** ctr images ls PLATFORMS, or undefined when the walk failed ("-"). */
  platforms: string[] | undefined;
  problems: Problem[];
}

function resolveManifest(root: CdRoot, ns: string, desc: Descriptor, snapshotter: string): ResolvedManifest {
  const m: ResolvedManifest = {
    desc,
    platform: desc.platform,
    state: 'missing',
    layers: [],
    diffIds: [],
    chainIds: [],
    unpacked: false,
    pseudo: false,
    matchesHost: false,
  };
  if (desc.annotations?.['vnd.docker.reference.type'] !== undefined) m.pseudo = true;
  if (desc.platform?.os === 'unknown' && desc.platform.architecture === 'unknown') m.pseudo = true;
  const r = root.readJson(desc.digest);
  m.state = r.state;
  if (r.state === 'invalid') m.why = r.why;
  if (r.state !== 'present') {
    m.matchesHost = desc.platform !== undefined && matchesHost(desc.platform, root.host);
    return m;
  }
  const man = parseManifest(r.json);
  for (const l of man?.layers ?? []) m.layers.push({ desc: l, present: root.blobPresent(l.digest), size: l.size });
  if (
    man !== undefined &&
    man.layers.length > 0 &&
    !man.layers.some((l) => l.mediaType.startsWith('application/vnd.oci.image.layer.') || l.mediaType.startsWith('application/vnd.docker.image.rootfs.'))
  )
    m.pseudo = true;
  if (man?.config !== undefined) {
    const c = root.readJson(man.config.digest, MAX_CONFIG);
    m.config = { desc: man.config, state: c.state };
    if (c.state === 'invalid') m.config.why = c.why;
    if (c.state === 'present') {
      const v = parseConfig(c.json);
      if (v !== undefined) {
        m.config.view = v;
        m.diffIds = v.diffIds;
        m.chainIds = chainIds(v.diffIds);
        if (m.platform === undefined) {
          m.platform = { os: v.os, architecture: v.architecture };
          if (v.variant !== undefined) m.platform.variant = v.variant;
        }
      }
    }
  }
  const top = m.chainIds[m.chainIds.length - 1];
  if (top !== undefined) {
    // Unpacked when the top chainID is a snapshot of the namespace in that snapshotter.
    m.unpacked = root.hasSnapshot(ns, snapshotter, top);
  }
  m.matchesHost = m.platform !== undefined && matchesHost(m.platform, root.host);
  return m;
}

function resolveImage(root: CdRoot, img: CdImageRecord, snapshotter: string): ResolvedImage {
  const problems = [...img.problems];
  const t = img.Target;
  const targetDesc: Descriptor = {
    mediaType: t.mediaType,
    digest: t.digest,
    size: t.size,
    ...(t.annotations !== undefined ? { annotations: t.annotations } : {}),
  };
  const out: ResolvedImage = {
    record: img,
    kind: isIndexType(t.mediaType) ? 'index' : isManifestType(t.mediaType) ? 'manifest' : 'other',
    targetState: 'missing',
    manifests: [],
    best: undefined,
    ctrSize: 0,
    platforms: undefined,
    problems,
  };
  if (!isBlobDigest(t.digest)) {
    out.targetState = 'invalid';
    return out;
  }
  if (out.kind === 'manifest') {
    const m = resolveManifest(root, img.namespace, targetDesc, snapshotter);
    out.targetState = m.state;
    out.manifests.push(m);
  } else if (out.kind === 'index') {
    const r = root.readJson(t.digest);
    out.targetState = r.state;
    if (r.state === 'invalid') problems.push(problem('CONTAINERD_BLOB_INVALID', `image ${img.Name}: index ${t.digest}: ${r.why}`));
    if (r.state === 'present') {
      // Nested indexes are followed one level at a time, breadth first, bounded.
      const queue: Descriptor[] = childrenOf(t.mediaType, r.json);
      let guard = 0;
      while (queue.length > 0 && guard++ < 4096) {
        const d = queue.shift()!;
        if (isManifestType(d.mediaType)) out.manifests.push(resolveManifest(root, img.namespace, d, snapshotter));
        else if (isIndexType(d.mediaType)) {
          const n = root.readJson(d.digest);
          if (n.state === 'present') queue.push(...childrenOf(d.mediaType, n.json));
        }
      }
    }
  } else {
    out.targetState = root.blobStat(t.digest) !== undefined ? 'present' : 'missing';
  }
  // dockerd's best manifest: present, not a pseudo image, matching the host, best ranked.
  for (const m of out.manifests) {
    if (m.state !== 'present' || m.pseudo || m.platform === undefined || !m.matchesHost) continue;
    if (out.best === undefined || hostRank(m.platform, root.host) < hostRank(out.best.platform!, root.host)) out.best = m;
  }
  out.ctrSize = ctrImageSize(root, out, targetDesc);
  out.platforms = ctrPlatforms(root, out, targetDesc);
  return out;
}

/** images.Image.Size with platforms.Default(): the target, then one manifest (FilterPlatforms + LimitManifests), then its config and layers, as recorded in the descriptors. */
function ctrImageSize(root: CdRoot, r: ResolvedImage, target: Descriptor): number {
  let size = target.size;
  const manifestSize = (d: Descriptor): number => {
    const j = root.readJson(d.digest);
    if (j.state !== 'present') return 0; // the walk stops at a blob it cannot read
    let s = 0;
    for (const c of childrenOf(d.mediaType, j.json)) s += c.size;
    return s;
  };
  if (isManifestType(target.mediaType)) return size + manifestSize(target);
  if (!isIndexType(target.mediaType)) return size;
  const visitIndex = (d: Descriptor, depth: number): number => {
    const j = root.readJson(d.digest);
    if (j.state !== 'present' || depth > 8) return 0;
    const kids = childrenOf(d.mediaType, j.json).filter((c) => c.platform === undefined || matchesHost(c.platform, root.host));
    kids.sort((a, b) =>
      a.platform === undefined
        ? b.platform === undefined
          ? 0
          : 1
        : b.platform === undefined
          ? -1
          : hostRank(a.platform, root.host) - hostRank(b.platform, root.host),
    );
    const first = kids[0];
    if (first === undefined) return 0;
    let s = first.size;
    if (isManifestType(first.mediaType)) s += manifestSize(first);
    else if (isIndexType(first.mediaType)) s += visitIndex(first, depth + 1);
    return s;
  };
  size += visitIndex(target, 0);
  return size;
}

/** images.Platforms: descriptor platforms, else each config's normalized os/arch; undefined when a blob on the way cannot be read. */
function ctrPlatforms(root: CdRoot, r: ResolvedImage, target: Descriptor): string[] | undefined {
  const found = new Set<string>();
  const walk = (d: Descriptor, depth: number): boolean => {
    if (d.platform !== undefined) {
      found.add(formatPlatform(d.platform));
      return true;
    }
    if (isConfigType(d.mediaType)) {
      const j = root.readJson(d.digest, MAX_CONFIG);
      if (j.state !== 'present') return false;
      const v = parseConfig(j.json);
      if (v === undefined) return false;
      found.add(formatPlatform(normalizePlatform({ os: v.os, architecture: v.architecture })));
      return true;
    }
    if (isManifestType(d.mediaType) || isIndexType(d.mediaType)) {
      if (depth > 8) return false;
      const j = root.readJson(d.digest);
      if (j.state !== 'present') return false;
      for (const c of childrenOf(d.mediaType, j.json)) if (!walk(c, depth + 1)) return false;
    }
    return true;
  };
  if (!walk(target, 0)) return undefined;
  return [...found].sort();
}
