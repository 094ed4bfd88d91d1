import { DatarootError } from '../formats/errors.js';
import type { Confined } from '../io/confined.js';
import { buildCacheOf, type BuildCacheItem, type SizePlan } from '../store/buildkit.js';
import type { Store } from '../store/model.js';
import { problem, type Problem } from '../store/problems.js';
import { buildView } from '../store/rootfs.js';
import { changesBetween } from './containers.js';

/**
 * `dataroot builder du`: the build cache as `docker system df -v` shows it under "Build cache
 * usage", computed offline the way dockerd 20.10 computes it (see store/buildkit.ts), with the
 * sizes dockerd has not cached yet computed as its snapshotter would (GraphDriver.DiffSize).
 */

/** api/types.BuildCache of API v1.41 (dockerd 20.10), field for field. */
export interface ApiBuildCache {
  ID: string;
  Parent: string;
  Type: string;
  Description: string;
  InUse: boolean;
  Shared: boolean;
  Size: number;
  CreatedAt: string;
  LastUsedAt: string | null;
  UsageCount: number;
}

export interface BuilderRow {
  api: ApiBuildCache;
  createdAt: bigint | undefined;
  lastUsedAt: bigint | undefined;
  size: bigint;
  /** Where the size came from: dockerd's cache in metadata_v2.db, the layer, snapshots.db, the directory, or the blob alone. */
  sizeFrom: 'metadata' | 'layer' | 'snapshots.db' | 'directory' | 'blob' | 'unknown';
  dir: string | undefined;
}

export interface BuilderDuResult {
  /** The API's BuilderSize: every listed record's size. */
  BuilderSize: number;
  /** The records, in the order the CLI prints them (last use, never-used first; then ID). */
  BuildCache: ApiBuildCache[];
  Dataroot: {
    /** The metadata file read, relative to the root (null: no build cache). */
    metadataFile: string | null;
    /** Records stored in it; those listed are fewer (twins that share data are listed once). */
    records: number;
    /** The CLI's totals (docker system df, "Build Cache" row): its size counts records not shared with images. */
    totals: { count: number; active: number; size: number; reclaimable: number };
    /** Per listed record: its graphdriver directory and where its size came from. */
    items: { ID: string; dir: string | null; sizeFrom: BuilderRow['sizeFrom'] }[];
    /** Graphdriver directories the build cache uses (never orphans). */
    directories: string[];
    /** layerdb layers the build cache holds (never orphans, even with no image). */
    layers: string[];
    /** Records dockerd deletes when it starts, and why. */
    deletedAtStart: { ID: string; reason: string }[];
    problems: Problem[];
  };
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const num = (n: bigint): number => (n > MAX_SAFE || n < -MAX_SAFE ? Number(n) : Number(n));

/** directory.Size: Lstat sizes of non-directories of size > 0, each inode once. */
export function directorySize(fs: Confined, rel: string): bigint {
  if (!fs.isDir(rel)) throw new DatarootError('LAYER_DIR_MISSING', `${rel} is not a directory`, { file: fs.abs(rel) });
  let total = 0n;
  const seen = new Set<number>();
  for (const e of fs.walk(rel)) {
    if (e.stat.isDirectory() || e.stat.size === 0) continue;
    if (seen.has(e.stat.ino)) continue;
    seen.add(e.stat.ino);
    total += BigInt(e.stat.size);
  }
  return total;
}

/**
 * GraphDriver.DiffSize(dir, parentDir): overlay2 and aufs count the layer's own directory when it
 * sits right on its parent; every other case (and every other driver) is the naive differ: the
 * changes of the mounted tree against its parent's, each changed non-directory's size once
 * (archive.ChangesSize).
 */
export function diffSize(store: Store, dir: string, parentDir: string | undefined): bigint {
  const a = store.adapter;
  const fs = store.fs;
  if (a.content === 'none')
    throw new DatarootError('STORE_DRIVER_CONTENT_UNSUPPORTED', `the ${a.name} driver keeps layer contents that cannot be read offline`);
  const view = a.viewDirs(fs, dir);
  if (a.name === 'overlay2' || a.name === 'aufs') {
    const lowers = view.dirs.slice(1);
    const onParent =
      view.problems.length === 0 && (parentDir === undefined || parentDir === '' ? lowers.length === 0 : lowers[0] === a.contentDir(fs, parentDir));
    if (onParent) return directorySize(fs, a.contentDir(fs, dir)!);
  }
  if (view.problems.length > 0) throw new DatarootError(view.problems[0]!.code, view.problems[0]!.message);
  const newRoot = buildView(fs, view.dirs, view.whiteouts);
  let oldRoot;
  if (parentDir !== undefined && parentDir !== '') {
    const pv = a.viewDirs(fs, parentDir);
    if (pv.problems.length > 0) throw new DatarootError(pv.problems[0]!.code, pv.problems[0]!.message);
    oldRoot = buildView(fs, pv.dirs, pv.whiteouts);
  }
  let total = 0n;
  const inodes = new Set<bigint>();
  const at = (path: string) => {
    let n: typeof newRoot | undefined = newRoot;
    for (const part of path.split('/').filter(Boolean)) n = n?.children?.get(part);
    return n;
  };
  for (const ch of changesBetween(newRoot, oldRoot)) {
    if (ch.Kind === 2) continue;
    const st = at(ch.Path)?.stat;
    if (st === undefined || st.isDirectory()) continue;
    if (st.nlink > 1n) {
      if (inodes.has(st.ino)) continue;
      inodes.add(st.ino);
    }
    total += st.size;
  }
  return total;
}

/** A computed size, and where it came from; a Usage that dockerd cannot compute is a problem (its df fails). */
function sizeOf(store: Store, it: BuildCacheItem, problems: Problem[]): { size: bigint; from: BuilderRow['sizeFrom'] } {
  const plan: SizePlan = it.plan;
  switch (plan.kind) {
    case 'known':
      return { size: plan.size, from: 'metadata' };
    case 'layer':
      return { size: plan.size + it.blobSize, from: 'layer' };
    case 'snapshots-db':
      return { size: plan.size + it.blobSize, from: 'snapshots.db' };
    case 'blob-only':
      return { size: it.blobSize, from: 'blob' };
    case 'diff':
      try {
        return { size: diffSize(store, plan.dir, plan.parentDir) + it.blobSize, from: 'directory' };
      } catch (e) {
        if (!(e instanceof DatarootError)) throw e;
        problems.push(
          problem(
            'BUILDKIT_SIZE_UNREADABLE',
            `the size of build-cache record ${it.id} cannot be computed (${e.code}: ${e.message}): docker system df fails on it`,
          ),
        );
        return { size: 0n, from: 'unknown' };
      }
    case 'error':
      problems.push(
        problem('BUILDKIT_SIZE_UNREADABLE', `the size of build-cache record ${it.id} cannot be computed (${plan.message}): docker system df fails on it`),
      );
      return { size: 0n, from: 'unknown' };
  }
}

/** Go's time.Time JSON (RFC 3339 with nanoseconds, trailing zeros dropped) of Unix nanoseconds, in the local zone as time.Unix gives it. */
export function goTimeJson(ns: bigint | undefined, problems?: Problem[], what = ''): string {
  if (ns === undefined) return '0001-01-01T00:00:00Z';
  let sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  const ms = Number(sec) * 1000;
  const off = -new Date(Math.max(-8.64e15, Math.min(8.64e15, ms))).getTimezoneOffset();
  const wall = new Date(ms + off * 60_000);
  const y = wall.getUTCFullYear();
  if (Number.isNaN(y) || y < 0 || y > 9999) {
    problems?.push(problem('BUILDKIT_TIME_OUT_OF_RANGE', `${what} is outside the years 0 to 9999: dockerd cannot encode it and docker system df fails`));
    return '0001-01-01T00:00:00Z';
  }
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const frac = nsec === 0n ? '' : `.${String(nsec).padStart(9, '0').replace(/0+$/, '')}`;
  const zone = off === 0 ? 'Z' : `${off < 0 ? '-' : '+'}${p(Math.floor(Math.abs(off) / 60))}:${p(Math.abs(off) % 60)}`;
  return `${p(y, 4)}-${p(wall.getUTCMonth() + 1)}-${p(wall.getUTCDate())}T${p(wall.getUTCHours())}:${p(wall.getUTCMinutes())}:${p(wall.getUTCSeconds())}${frac}${zone}`;
}

/** buildCacheSort of the CLI: last use ascending with never-used first, ties by ID (byte order). */
export function buildCacheOrder(a: { id: string; lastUsedAt: bigint | undefined }, b: { id: string; lastUsedAt: bigint | undefined }): number {
  const byId = a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  if (a.lastUsedAt === undefined && b.lastUsedAt === undefined) return byId;
  if (a.lastUsedAt === undefined) return -1;
  if (b.lastUsedAt === undefined) return 1;
  if (a.lastUsedAt === b.lastUsedAt) return byId;
  return a.lastUsedAt < b.lastUsedAt ? -1 : 1;
}

export function builderDu(store: Store): { result: BuilderDuResult; rows: BuilderRow[]; problems: Problem[] } {
  const bc = buildCacheOf(store);
  const problems: Problem[] = [...bc.problems];
  for (const u of bc.load.unloadable)
    problems.push(problem('BUILDKIT_RECORD_DELETED_AT_START', `build-cache record ${u.id} is deleted by dockerd when it starts: ${u.reason}`, bc.metadataFile));
  const rows: BuilderRow[] = bc.items.map((it) => {
    const s = sizeOf(store, it, problems);
    return {
      api: {
        ID: it.id,
        Parent: it.parent,
        Type: it.recordType,
        Description: it.description,
        InUse: it.inUse,
        Shared: it.shared,
        Size: num(s.size),
        CreatedAt: goTimeJson(it.createdAt, problems, `the creation time of build-cache record ${it.id}`),
        LastUsedAt: it.lastUsedAt === undefined ? null : goTimeJson(it.lastUsedAt, problems, `the last use of build-cache record ${it.id}`),
        UsageCount: num(it.usageCount),
      },
      createdAt: it.createdAt,
      lastUsedAt: it.lastUsedAt,
      size: s.size,
      sizeFrom: s.from,
      dir: it.dir === undefined ? undefined : store.adapter.layerDir(it.dir),
    };
  });
  rows.sort((a, b) => buildCacheOrder({ id: a.api.ID, lastUsedAt: a.lastUsedAt }, { id: b.api.ID, lastUsedAt: b.lastUsedAt }));
  let all = 0n;
  let notShared = 0n;
  let inUsePrivate = 0n;
  for (const r of rows) {
    all += r.size;
    if (!r.api.Shared) notShared += r.size;
    if (r.api.InUse && !r.api.Shared) inUsePrivate += r.size;
  }
  const result: BuilderDuResult = {
    BuilderSize: num(all),
    BuildCache: rows.map((r) => r.api),
    Dataroot: {
      metadataFile: bc.metadataFile ?? null,
      records: bc.itemCount,
      totals: { count: rows.length, active: rows.filter((r) => r.api.InUse).length, size: num(notShared), reclaimable: num(notShared - inUsePrivate) },
      items: rows.map((r) => ({ ID: r.api.ID, dir: r.dir ?? null, sizeFrom: r.sizeFrom })),
      directories: [...bc.dirs.keys()].sort().map((d) => store.adapter.layerDir(d)),
      layers: [...bc.layers].sort(),
      deletedAtStart: bc.load.unloadable.map((u) => ({ ID: u.id, reason: u.reason })),
      problems,
    },
  };
  return { result, rows, problems };
}
