import { createHash } from 'node:crypto';
import { closeSync, constants, lstatSync, openSync, readdirSync, readlinkSync, readSync, realpathSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { listXattrs, nativeAvailable } from '../io/native.js';
import { contentKind, manifestOf, type ContentKind, type EntryType, type ManifestEntry } from '../store/manifest.js';
import { CHUNK, type PackWriter, type RegisteredSnapshot, type SnapshotStore } from '../store/snapstore.js';

export type { ManifestEntry } from '../store/manifest.js';

/** A shell-style glob over relative paths: `*` and `?` within a name, `**` across directories. */
export function globRegex(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
      if (glob[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re.replace(/^\/+/, '')}$`);
}

/** Does a path (or one of its parent directories) match one of the globs? */
export function matchesAny(path: string, globs: RegExp[]): boolean {
  if (globs.length === 0 || path === '') return false;
  const parts = path.split('/');
  for (let i = 1; i <= parts.length; i++) {
    const p = parts.slice(0, i).join('/');
    if (globs.some((g) => g.test(p))) return true;
  }
  return false;
}

function typeOf(st: BigIntStats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

/** dev_t as glibc encodes it: major and minor. */
export function devParts(rdev: bigint): [number, number] {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return [Number(major), Number(minor)];
}

interface Walked {
  entry: ManifestEntry;
  /** Path for fs calls (a Buffer when the name is not UTF-8). */
  abs: string | Buffer;
}

function isUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}

/** Opens a file to read without touching its access time where the kernel allows it. */
function openNoAtime(abs: string | Buffer): number {
  try {
    return openSync(abs, constants.O_RDONLY | constants.O_NOATIME);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EPERM') return openSync(abs, constants.O_RDONLY);
    throw e;
  }
}

/** sha256 of an open file, read through one reused buffer. */
function hashFd(fd: number, buf: Buffer): { hex: string; size: number; kind: ContentKind } {
  const h = createHash('sha256');
  let size = 0;
  let kind: ContentKind = 'empty';
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, size);
    if (n === 0) break;
    if (size === 0) kind = contentKind(buf.subarray(0, Math.min(n, 8192)));
    h.update(buf.subarray(0, n));
    size += n;
  }
  return { hex: h.digest('hex'), size, kind };
}

export interface ScanOptions {
  exclude: string[];
  metadataOnly: string[];
  /** The previous snapshot of the same root: entries whose size, times and inode match are not re-read. */
  previous?: Map<string, ManifestEntry>;
  store?: SnapshotStore;
  pack?: PackWriter;
  onProgress?: (p: { files: number; bytes: number; totalBytes: number }) => void;
  /** Called between the walk and the reading of contents (tests pause there). */
  onWalked?: () => void;
}

export interface ScanStats {
  entries: number;
  files: number;
  logicalBytes: number;
  /** Bytes of content read and hashed (the rest was known from the previous snapshot). */
  hashedBytes: number;
  reused: number;
  warnings: string[];
}

function vanished(abs: string | Buffer, e: unknown): DatarootError {
  const code = (e as NodeJS.ErrnoException).code;
  return new DatarootError('SNAPSHOT_SOURCE_CHANGED', `${abs.toString()} ${code === 'ENOENT' ? 'disappeared' : `cannot be read (${code ?? (e as Error).message})`} while the snapshot was taken`, { file: abs.toString() });
}

/**
 * Walks a tree (depth-first, names in byte order, symlinks never followed) into manifest entries,
 * then reads and hashes the content of every regular file the previous snapshot does not already
 * describe, handing new content to the pack. Hard links are recorded once, with `link` on the
 * others.
 */
export async function scanTree(root: string, o: ScanOptions): Promise<{ entries: ManifestEntry[]; stats: ScanStats }> {
  const exclude = o.exclude.map(globRegex);
  const metaOnly = o.metadataOnly.map(globRegex);
  const xattrs = nativeAvailable();
  const walked: Walked[] = [];
  const stats: ScanStats = { entries: 0, files: 0, logicalBytes: 0, hashedBytes: 0, reused: 0, warnings: [] };
  if (!xattrs) stats.warnings.push('the native addon is not built: extended attributes are not recorded');
  const inodes = new Map<string, string>();
  const visit = (abs: string | Buffer, rel: string, relRaw: Buffer | undefined): void => {
    let st: BigIntStats;
    try {
      st = lstatSync(abs, { bigint: true });
    } catch (e) {
      throw vanished(abs, e);
    }
    const type = typeOf(st);
    const entry: ManifestEntry = {
      path: rel,
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: type === 'file' || type === 'symlink' ? Number(st.size) : 0,
      mtime: st.mtimeNs.toString(),
      atime: st.atimeNs.toString(),
      ctime: st.ctimeNs.toString(),
      ino: st.ino.toString(),
      dev: st.dev.toString(),
      nlink: Number(st.nlink),
    };
    if (relRaw !== undefined) entry.pathBase64 = relRaw.toString('base64');
    if (type === 'char' || type === 'block') entry.rdev = devParts(st.rdev);
    if (type === 'symlink') {
      const t = readlinkSync(abs, { encoding: 'buffer' });
      if (isUtf8(t)) entry.target = t.toString('utf8');
      else {
        entry.target = t.toString('latin1');
        entry.targetBase64 = t.toString('base64');
      }
    }
    if (type !== 'dir' && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = inodes.get(key);
      if (first !== undefined) entry.link = first;
      else inodes.set(key, rel);
    }
    const prev = o.previous?.get(rel);
    const unchanged = prev !== undefined && prev.type === type && prev.size === entry.size && prev.mtime === entry.mtime && prev.ctime === entry.ctime && prev.ino === entry.ino && prev.dev === entry.dev;
    if (unchanged && prev.xattrs !== undefined) entry.xattrs = prev.xattrs;
    else if (xattrs && typeof abs === 'string' && !unchanged) {
      try {
        const x = listXattrs(abs);
        if (x.size > 0) entry.xattrs = Object.fromEntries([...x].map(([k, v]) => [k, v.toString('base64')]));
      } catch (e) {
        if (e instanceof DatarootError && e.code === 'IO_ENOENT') throw vanished(abs, e);
        stats.warnings.push(`${rel}: extended attributes cannot be read (${(e as Error).message})`);
      }
    }
    if (type === 'file' && entry.link === undefined && unchanged && prev.sha256 !== undefined) {
      const storedOk = prev.stored !== true || o.store?.has(prev.sha256) === true || o.store === undefined;
      if (storedOk) {
        entry.sha256 = prev.sha256;
        if (prev.kind !== undefined) entry.kind = prev.kind;
        if (prev.stored !== undefined) entry.stored = prev.stored && !matchesAny(rel, metaOnly);
        stats.reused++;
      }
    }
    walked.push({ entry, abs });
    if (type === 'dir') {
      let names: Buffer[];
      try {
        names = readdirSync(abs, { encoding: 'buffer' });
      } catch (e) {
        throw vanished(abs, e);
      }
      names.sort(Buffer.compare);
      for (const n of names) {
        const utf8 = isUtf8(n);
        const nameText = utf8 ? n.toString('utf8') : n.toString('latin1');
        const childRel = rel === '' ? nameText : `${rel}/${nameText}`;
        if (matchesAny(childRel, exclude)) continue;
        const childRaw = relRaw !== undefined || !utf8 ? Buffer.concat([relRaw ?? Buffer.from(rel, 'utf8'), ...(rel === '' ? [] : [Buffer.from('/')]), n]) : undefined;
        const childAbs = typeof abs === 'string' && utf8 ? join(abs, nameText) : Buffer.concat([Buffer.isBuffer(abs) ? abs : Buffer.from(abs), Buffer.from('/'), n]);
        visit(childAbs, childRel, childRaw);
      }
    }
  };
  visit(root, '', undefined);
  o.onWalked?.();
  // Content: read and hash what is new, store what is not metadata-only.
  let totalBytes = 0;
  for (const w of walked) if (w.entry.type === 'file' && w.entry.link === undefined && w.entry.sha256 === undefined) totalBytes += w.entry.size;
  let bytes = 0;
  const scratch = Buffer.allocUnsafe(CHUNK);
  for (const w of walked) {
    const e = w.entry;
    stats.entries++;
    if (e.type !== 'file') continue;
    stats.files++;
    if (e.link !== undefined) continue;
    stats.logicalBytes += e.size;
    if (e.sha256 !== undefined) continue;
    const store = o.pack !== undefined && !matchesAny(e.path, metaOnly);
    let fd: number;
    try {
      fd = openNoAtime(w.abs);
    } catch (err) {
      throw vanished(w.abs, err);
    }
    try {
      const r = o.pack !== undefined ? await o.pack.file(fd, e.size, store) : hashFd(fd, scratch);
      if (r.size !== e.size) stats.warnings.push(`${e.path} changed size while it was read (${e.size} → ${r.size})`);
      e.sha256 = r.hex;
      e.size = r.size;
      e.kind = r.kind;
    } catch (err) {
      if (err instanceof DatarootError) throw err;
      throw vanished(w.abs, err);
    } finally {
      closeSync(fd);
    }
    if (o.pack !== undefined) e.stored = store;
    stats.hashedBytes += e.size;
    bytes += e.size;
    o.onProgress?.({ files: stats.files, bytes, totalBytes });
  }
  return { entries: walked.map((w) => w.entry), stats };
}

export interface SnapshotOptions {
  name?: string;
  exclude: string[];
  metadataOnly: string[];
  live: boolean;
  onProgress?: ScanOptions['onProgress'];
  onWalked?: () => void;
}

export interface SnapshotResult {
  snapshot: RegisteredSnapshot;
  stats: ScanStats;
  previous: string | undefined;
}

/** The latest snapshot of the same source, to reuse what did not change. */
function previousOf(store: SnapshotStore, source: string): { snap: RegisteredSnapshot; entries: Map<string, ManifestEntry> } | undefined {
  const same = store.snapshots().filter((s) => s.source === source);
  const last = same[same.length - 1];
  if (last === undefined) return undefined;
  try {
    const m = store.readManifest(last);
    return { snap: last, entries: new Map(m.entries().map((e) => [e.path, e])) };
  } catch {
    return undefined; // a damaged previous manifest: hash everything again
  }
}

/**
 * `dataroot snapshot`: scans the root into a manifest, stores the content that is new in one
 * pack, writes the manifest, and registers the snapshot last. On any failure the pack and the
 * manifest are removed and nothing is registered.
 */
export async function takeSnapshot(store: SnapshotStore, rootDir: string, o: SnapshotOptions): Promise<SnapshotResult> {
  const source = realpathSync(rootDir);
  const name = o.name ?? new Date().toISOString().replace(/[:.]/g, '-');
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) throw new DatarootError('USAGE_BAD_SNAPSHOT_NAME', `snapshot name ${JSON.stringify(name)}: use letters, digits, ".", "_" and "-"`);
  if (store.snapshots().some((s) => s.name === name)) throw new DatarootError('SNAPSHOT_EXISTS', `a snapshot named ${name} exists in ${store.dir}`);
  const prev = previousOf(store, source);
  const pack = store.newPack();
  let manifestPath: string | undefined;
  try {
    const { entries, stats } = await scanTree(source, {
      exclude: o.exclude,
      metadataOnly: o.metadataOnly,
      ...(prev !== undefined ? { previous: prev.entries } : {}),
      store,
      pack,
      ...(o.onProgress !== undefined ? { onProgress: o.onProgress } : {}),
      ...(o.onWalked !== undefined ? { onWalked: o.onWalked } : {}),
    });
    await pack.finish();
    const options = { exclude: o.exclude, metadataOnly: o.metadataOnly, live: o.live };
    const manifest = manifestOf({ name, created: new Date().toISOString(), source, options }, entries);
    const m = store.writeManifest(name, manifest);
    manifestPath = m.path;
    const snapshot: RegisteredSnapshot = {
      name,
      created: manifest.header.created,
      source,
      manifest: m.path,
      manifestSha256: m.sha256,
      entries: stats.entries,
      logicalBytes: stats.logicalBytes,
      newBytes: pack.newBytes,
      storedBytes: pack.count === 0 ? 0 : store.packBytes(pack.id),
      packs: pack.count === 0 ? [] : [pack.id],
      options,
    };
    store.register(snapshot);
    return { snapshot, stats, previous: prev?.snap.name };
  } catch (e) {
    await pack.abort();
    if (manifestPath !== undefined) store.removeManifest({ manifest: manifestPath } as RegisteredSnapshot);
    throw e;
  }
}
