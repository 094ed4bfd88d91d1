import { randomBytes } from 'node:crypto';
import { chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseReference } from '../formats/docker/reference.js';
import { DatarootError } from '../formats/errors.js';
import { parseJsonBounded } from '../formats/json/bounded.js';
import { LIMITS, type Confined } from '../io/confined.js';
import { lutimesNs } from '../io/native.js';
import { LAYOUT as L } from './layout.js';

/**
 * The writes of an offline injector, in the order of the injection recipe (shared/reference:
 * "Injection recipe"): driver directory, layerdb entry, image config, metadata, repositories.json.
 * Every file is written complete under a staging name and renamed into place, so an interruption
 * leaves only staging leftovers and orphans dockerd ignores.
 */

/** Suffix of every staging name dataroot uses (verify reports such names as STAGING_LEFTOVER). */
export const STAGING = '.dataroot-staging';

/** dockerd's cache-id: 32 random bytes as hex. */
export function newCacheId(): string {
  return randomBytes(32).toString('hex');
}

/** overlay2's link id: 17 random bytes, base32 (A-Z2-7), the first 26 characters. */
export function newLinkId(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const bytes = randomBytes(17);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out.slice(0, 26);
}

/** The directories of a driver's store, in creation order, with dockerd's modes. */
function storeDirs(driver: string): [string, number][] {
  const dirs: [string, number][] = [
    [L.imageRoot(driver), 0o700],
    [`${L.imageRoot(driver)}/imagedb`, 0o700],
    [`${L.imageRoot(driver)}/imagedb/content`, 0o700],
    [L.imageContentDir(driver), 0o700],
    [`${L.imageRoot(driver)}/imagedb/metadata`, 0o700],
    [L.imageMetadataDir(driver), 0o700],
    [`${L.imageRoot(driver)}/layerdb`, 0o700],
    [L.layerDbDir(driver), 0o755],
    [L.layerDbTmp(driver), 0o755],
  ];
  const home = L.driverHome(driver);
  switch (driver) {
    case 'overlay2':
    case 'fuse-overlayfs':
      dirs.push([home, 0o710], [`${home}/l`, 0o700]);
      break;
    case 'vfs':
      dirs.push([home, 0o700], [`${home}/dir`, 0o710]);
      break;
    case 'btrfs':
      dirs.push([home, 0o710], [`${home}/subvolumes`, 0o700]);
      break;
    case 'aufs':
      dirs.push([home, 0o710], [`${home}/diff`, 0o700], [`${home}/layers`, 0o700], [`${home}/mnt`, 0o700]);
      break;
    default:
      dirs.push([home, 0o710]);
  }
  dirs.push([L.volumesDir, 0o701]);
  return dirs;
}

/**
 * Refuses a target whose store directories are not plain directories (a symlink there would
 * carry every write out of the root), or whose files dockerd rewrites are not regular files.
 * Runs before the first write.
 */
export function validateTarget(fs: Confined, driver: string): void {
  for (const [rel] of storeDirs(driver)) {
    const k = fs.kind(rel);
    if (k === 'missing' || k === 'dir') {
      if (k === 'missing') continue;
      try {
        fs.requireDir(rel);
        continue;
      } catch (e) {
        if (!(e instanceof DatarootError)) throw e;
        throw new DatarootError('STORE_TARGET_UNSAFE', `${rel}: ${e.message}; refusing to write into this root`, { file: fs.abs(rel) });
      }
    }
    throw new DatarootError(
      'STORE_TARGET_UNSAFE',
      `${rel} is a ${k}, not a directory${k === 'symlink' ? ` (to ${JSON.stringify(fs.readlink(rel) ?? '')})` : ''}: refusing to write into this root`,
      { file: fs.abs(rel) },
    );
  }
  for (const rel of [L.repositories(driver), L.volumesDb]) {
    const k = fs.kind(rel);
    if (k !== 'missing' && k !== 'file')
      throw new DatarootError('STORE_TARGET_UNSAFE', `${rel} is a ${k}, not a regular file: refusing to write into this root`, { file: fs.abs(rel) });
  }
}

/**
 * Creates what a daemon's first start would, for a root that has never been started (or lacks
 * pieces): image/<driver>/{imagedb,layerdb}, the driver home, volumes/metadata.db (empty: bbolt
 * initialises an empty file when dockerd opens it). Existing entries are left as they are.
 * Returns what it created (relative paths).
 */
export function ensureLayout(fs: Confined, driver: string, times?: DirTimes): string[] {
  validateTarget(fs, driver);
  const made: string[] = [];
  for (const [rel, mode] of storeDirs(driver)) {
    if (fs.exists(rel)) continue;
    times?.remember(fs.abs(dirname(rel) === '.' ? '' : dirname(rel)));
    fs.mkdirs(rel, mode);
    chmodSync(fs.abs(rel), mode);
    made.push(rel);
  }
  if (!fs.exists(L.volumesDb)) {
    times?.remember(fs.abs(L.volumesDir));
    fs.writeNewFile(L.volumesDb, new Uint8Array(), 0o600);
    made.push(L.volumesDb);
  }
  return made;
}

/** The metadata files of a layer, as the layer store writes them (no trailing newlines). */
export interface LayerMeta {
  chainId: string;
  diffId: string;
  size: number;
  cacheId: string;
  parent: string | undefined;
  /** The gzipped tar-split stream. */
  tarSplit: Uint8Array;
}

/**
 * Commits a layerdb entry: the files are written into layerdb/tmp/<staging>, fsynced, and the
 * directory renamed to layerdb/sha256/<chainID> (dockerd's write-set commit).
 */
export function commitLayer(fs: Confined, driver: string, m: LayerMeta, hooks?: { staged?: () => void }): void {
  const tmp = `${L.layerDbTmp(driver)}/write-set${STAGING}-${randomBytes(6).toString('hex')}`;
  fs.mkdirs(tmp, 0o700);
  chmodSync(fs.abs(tmp), 0o700);
  const put = (name: string, content: string | Uint8Array): void => fs.writeNewFile(`${tmp}/${name}`, content, 0o644, true);
  put('diff', m.diffId);
  put('size', String(m.size));
  put('cache-id', m.cacheId);
  if (m.parent !== undefined) put('parent', m.parent);
  put('tar-split.json.gz', m.tarSplit);
  fs.fsyncDir(tmp);
  hooks?.staged?.();
  fs.rename(tmp, `${L.layerDbDir(driver)}/${m.chainId.replace(/^sha256:/, '')}`);
  fs.fsyncDir(L.layerDbDir(driver));
}

/** imagedb/content/sha256/<id>: the exact config bytes (0600), written atomically. Returns false when already there. */
export function writeImageConfig(fs: Confined, driver: string, id: string, bytes: Uint8Array): boolean {
  const p = `${L.imageContentDir(driver)}/${id.replace(/^sha256:/, '')}`;
  if (fs.exists(p)) {
    const cur = fs.readFile(p, { max: LIMITS.config, what: 'image config' });
    if (cur !== undefined && Buffer.compare(cur, Buffer.from(bytes)) === 0) return false;
    throw new DatarootError('STORE_IMAGE_CONFLICT', `${p} exists with other content (it does not verify): run dataroot verify`, { file: fs.abs(p) });
  }
  fs.writeFileAtomic(p, bytes, 0o600);
  return true;
}

/** imagedb/metadata/sha256/<id>/lastUpdated, as TagImage writes it (RFC 3339 with fraction, no newline). */
export function writeLastUpdated(fs: Confined, driver: string, id: string, when = new Date()): void {
  const dir = `${L.imageMetadataDir(driver)}/${id.replace(/^sha256:/, '')}`;
  if (!fs.exists(dir)) {
    fs.mkdirs(dir, 0o700);
    chmodSync(fs.abs(dir), 0o700);
  }
  fs.writeFileAtomic(`${dir}/lastUpdated`, when.toISOString().replace(/\.?0+Z$/, 'Z'), 0o600);
}

/** A tag as dockerd stores it: familiar repository and familiar `name:tag` (`latest` when none). */
export function familiarTag(ref: string): { repo: string; key: string } {
  const r = parseReference(ref);
  if (r === undefined || r.digest !== undefined) throw new DatarootError('USAGE_BAD_TAG', `${JSON.stringify(ref)} is not a name:tag reference`);
  const tag = r.tag ?? 'latest';
  return { repo: r.name, key: `${r.name}:${tag}` };
}

/** Go's json.Marshal of the reference store: keys sorted, compact, no trailing newline. */
function marshalRepositories(repos: Record<string, Record<string, string>>): string {
  const sorted: Record<string, Record<string, string>> = {};
  for (const k of Object.keys(repos).sort()) {
    const inner: Record<string, string> = {};
    for (const t of Object.keys(repos[k]!).sort()) inner[t] = repos[k]![t]!;
    sorted[k] = inner;
  }
  return JSON.stringify({ Repositories: sorted });
}

type RepoDoc = { Repositories: Record<string, Record<string, string>> };

/** The reference store as a writer may rewrite it: refused (before anything is written) when it is not one. */
export function readRepositoriesForWrite(fs: Confined, driver: string): RepoDoc {
  const path = L.repositories(driver);
  let text: string | undefined;
  try {
    text = fs.readText(path, { max: LIMITS.repositories, what: 'repositories.json' });
  } catch (e) {
    if (!(e instanceof DatarootError)) throw e;
    throw new DatarootError('REPOSITORIES_INVALID', `${path}: ${e.message}; refusing to rewrite it`, { file: fs.abs(path) });
  }
  if (text === undefined) return { Repositories: {} };
  try {
    const doc = parseJsonBounded(text) as RepoDoc;
    if (doc === null || typeof doc !== 'object' || typeof doc.Repositories !== 'object' || doc.Repositories === null || Array.isArray(doc.Repositories))
      throw new Error('no Repositories object');
    for (const [k, inner] of Object.entries(doc.Repositories)) {
      if (inner === null || typeof inner !== 'object' || Array.isArray(inner)) throw new Error(`repository ${JSON.stringify(k)} is not an object`);
    }
    return doc;
  } catch (e) {
    throw new DatarootError('REPOSITORIES_INVALID', `${path} is not a valid reference store (${(e as Error).message}); refusing to rewrite it`, {
      file: fs.abs(path),
    });
  }
}

/**
 * Merges tags into repositories.json (existing entries kept, a tag moved when it pointed
 * elsewhere), rewritten atomically with mode 0600 only when something changed. Returns the tags
 * that changed.
 */
export function mergeTags(fs: Confined, driver: string, tags: { ref: string; id: string }[]): string[] {
  const path = L.repositories(driver);
  const doc = readRepositoriesForWrite(fs, driver);
  const changed: string[] = [];
  for (const t of tags) {
    const { repo, key } = familiarTag(t.ref);
    const inner = (doc.Repositories[repo] ??= {});
    if (inner[key] === t.id) continue;
    inner[key] = t.id;
    changed.push(key);
  }
  if (changed.length > 0 || !fs.exists(path)) fs.writeFileAtomic(path, marshalRepositories(doc.Repositories), 0o600);
  return changed;
}

/** Remembers directory times so a refused write can leave the root as it was (mtimes included). */
export class DirTimes {
  private readonly saved = new Map<string, { atime: bigint; mtime: bigint }>();
  constructor(private readonly fs?: Confined) {}
  /** Absolute paths, or paths relative to the Confined given at construction. */
  remember(...dirs: string[]): void {
    for (const d0 of dirs) {
      const d = this.fs !== undefined && !d0.startsWith('/') ? this.fs.abs(d0) : d0;
      if (this.saved.has(d)) continue;
      try {
        const rel = this.fs?.relOf(d);
        const st = rel !== undefined && this.fs !== undefined ? this.fs.lstatBig(rel) : undefined;
        if (st === undefined || !st.isDirectory()) continue;
        this.saved.set(d, { atime: st.atimeNs, mtime: st.mtimeNs });
      } catch {
        /* not there: nothing to restore */
      }
    }
  }
  restore(): void {
    for (const [d, t] of this.saved) {
      try {
        lutimesNs(d, t.atime, t.mtime);
      } catch {
        /* removed meanwhile */
      }
    }
  }
}

/** Removes staging and what a refused write made (relative paths, beneath the root only). */
export function removeStaging(fs: Confined, paths: string[]): void {
  for (const p of paths) fs.remove(p);
}
