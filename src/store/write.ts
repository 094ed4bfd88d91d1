import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseReference } from '../formats/docker/reference.js';
import { DatarootError } from '../formats/errors.js';
import { fsyncDir, writeFileAtomicSync } from '../io/atomic.js';
import { lutimesNs } from '../io/native.js';
import type { Layout } from './layout.js';

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

/**
 * Creates what a daemon's first start would, for a root that has never been started (or lacks
 * pieces): image/<driver>/{imagedb,layerdb}, the driver home, volumes/metadata.db (empty: bbolt
 * initialises an empty file when dockerd opens it). Existing entries are left as they are.
 */
export function ensureLayout(L: Layout, driver: string, times?: DirTimes): string[] {
  const made: string[] = [];
  const dir = (p: string, mode: number): void => {
    if (existsSync(p)) return;
    times?.remember(dirname(p));
    mkdirSync(p, { recursive: true, mode });
    chmodSync(p, mode);
    made.push(p);
  };
  dir(L.root, 0o710);
  dir(L.imageRoot(driver), 0o700);
  dir(join(L.imageRoot(driver), 'imagedb'), 0o700);
  dir(join(L.imageRoot(driver), 'imagedb', 'content'), 0o700);
  dir(L.imageContentDir(driver), 0o700);
  dir(join(L.imageRoot(driver), 'imagedb', 'metadata'), 0o700);
  dir(L.imageMetadataDir(driver), 0o700);
  dir(join(L.imageRoot(driver), 'layerdb'), 0o700);
  dir(L.layerDbDir(driver), 0o755);
  dir(join(L.imageRoot(driver), 'layerdb', 'tmp'), 0o755);
  if (driver === 'overlay2') {
    dir(L.driverHome('overlay2'), 0o710);
    dir(join(L.driverHome('overlay2'), 'l'), 0o700);
  } else {
    dir(L.driverHome(driver), 0o700);
    dir(join(L.driverHome(driver), 'dir'), 0o710);
  }
  dir(L.volumesDir, 0o701);
  if (!existsSync(L.volumesDb)) {
    times?.remember(L.volumesDir);
    closeSync(openSync(L.volumesDb, 'wx', 0o600));
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
export function commitLayer(L: Layout, driver: string, m: LayerMeta, hooks?: { staged?: () => void }): void {
  const tmp = join(L.imageRoot(driver), 'layerdb', 'tmp', `write-set${STAGING}-${randomBytes(6).toString('hex')}`);
  mkdirSync(tmp, { mode: 0o700 });
  chmodSync(tmp, 0o700);
  const put = (name: string, content: string | Uint8Array): void => {
    const fd = openSync(join(tmp, name), 'wx', 0o644);
    try {
      writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  };
  put('diff', m.diffId);
  put('size', String(m.size));
  put('cache-id', m.cacheId);
  if (m.parent !== undefined) put('parent', m.parent);
  put('tar-split.json.gz', m.tarSplit);
  fsyncDir(tmp);
  hooks?.staged?.();
  renameSync(tmp, join(L.layerDbDir(driver), m.chainId.replace(/^sha256:/, '')));
  fsyncDir(L.layerDbDir(driver));
}

/** imagedb/content/sha256/<id>: the exact config bytes (0600), written atomically. Returns false when already there. */
export function writeImageConfig(L: Layout, driver: string, id: string, bytes: Uint8Array): boolean {
  const p = join(L.imageContentDir(driver), id.replace(/^sha256:/, ''));
  if (existsSync(p)) {
    const cur = readFileSync(p);
    if (Buffer.compare(cur, Buffer.from(bytes)) === 0) return false;
    throw new DatarootError('STORE_IMAGE_CONFLICT', `${p} exists with other content (it does not verify): run dataroot verify`, { file: p });
  }
  writeFileAtomicSync(p, bytes, 0o600);
  return true;
}

/** imagedb/metadata/sha256/<id>/lastUpdated, as TagImage writes it (RFC 3339 with fraction, no newline). */
export function writeLastUpdated(L: Layout, driver: string, id: string, when = new Date()): void {
  const dir = join(L.imageMetadataDir(driver), id.replace(/^sha256:/, ''));
  if (!existsSync(dir)) {
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o700);
  }
  writeFileAtomicSync(join(dir, 'lastUpdated'), when.toISOString().replace(/\.?0+Z$/, 'Z'), 0o600);
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

/**
 * Merges tags into repositories.json (existing entries kept, a tag moved when it pointed
 * elsewhere), rewritten atomically with mode 0600 only when something changed. Returns the tags
 * that changed.
 */
export function mergeTags(L: Layout, driver: string, tags: { ref: string; id: string }[]): string[] {
  const path = L.repositories(driver);
  let doc: { Repositories: Record<string, Record<string, string>> } = { Repositories: {} };
  if (existsSync(path)) {
    try {
      doc = JSON.parse(readFileSync(path, 'utf8')) as typeof doc;
      if (doc === null || typeof doc !== 'object' || typeof doc.Repositories !== 'object' || doc.Repositories === null) throw new Error('no Repositories object');
    } catch (e) {
      throw new DatarootError('REPOSITORIES_INVALID', `${path} is not a valid reference store (${(e as Error).message}); refusing to rewrite it`, { file: path });
    }
  }
  const changed: string[] = [];
  for (const t of tags) {
    const { repo, key } = familiarTag(t.ref);
    const inner = (doc.Repositories[repo] ??= {});
    if (inner[key] === t.id) continue;
    inner[key] = t.id;
    changed.push(key);
  }
  if (changed.length > 0 || !existsSync(path)) writeFileAtomicSync(path, marshalRepositories(doc.Repositories), 0o600);
  return changed;
}

/** overlay2: `l/<link>` → `../<cache-id>/diff`, and the empty `committed` marker in the parent. */
export function linkOverlayLayer(L: Layout, cacheId: string, link: string, parentCacheId: string | undefined): void {
  const home = L.driverHome('overlay2');
  const lp = join(home, 'l', link);
  if (!existsSync(lp)) symlinkSync(`../${cacheId}/diff`, lp);
  if (parentCacheId !== undefined) {
    const c = join(home, parentCacheId, 'committed');
    if (!existsSync(c)) writeFileSync(c, '', { mode: 0o600 });
  }
}

/** Remembers directory times so a refused write can leave the root as it was (mtimes included). */
export class DirTimes {
  private readonly saved = new Map<string, { atime: bigint; mtime: bigint }>();
  remember(...dirs: string[]): void {
    for (const d of dirs) {
      if (this.saved.has(d)) continue;
      try {
        const st = statSync(d, { bigint: true });
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

export function removeStaging(paths: string[]): void {
  for (const p of paths) rmSync(p, { recursive: true, force: true });
}
