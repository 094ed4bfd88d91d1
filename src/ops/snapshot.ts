import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, realpathSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { listXattrs, nativeAvailable } from '../io/native.js';
import { CHUNK, type PackWriter, type RegisteredSnapshot, type SnapshotStore } from '../store/snapstore.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

/** One entry of a snapshot manifest: everything `restore` needs to write it back exactly. */
export interface ManifestEntry {
  /** Relative path with `/` ('' is the root itself). */
  path: string;
  /** The name's bytes, base64, when they are not UTF-8 (path then holds a lossy form). */
  pathBase64?: string;
  type: EntryType;
  /** Permission bits with setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Nanoseconds since the epoch, as decimal strings. */
  mtime: string;
  atime: string;
  ctime: string;
  ino: string;
  dev: string;
  nlink: number;
  /** Regular files: sha256 of the content, and whether the store holds it (not with --metadata-only). */
  sha256?: string;
  stored?: boolean;
  target?: string;
  targetBase64?: string;
  /** Devices: major, minor. */
  rdev?: [number, number];
  /** Hard links: the path of the first entry with this inode. */
  link?: string;
  /** Extended attributes, values base64. */
  xattrs?: Record<string, string>;
}

export interface Manifest {
  format: 'dataroot-snapshot';
  version: 1;
  name: string;
  created: string;
  source: string;
  options: { exclude: string[]; metadataOnly: string[]; live: boolean };
  entries: ManifestEntry[];
}

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

/** A file's content in chunks of at most CHUNK bytes (fresh buffers: they may be kept). */
function* fileChunks(abs: string | Buffer): Generator<Buffer> {
  const fd = openNoAtime(abs);
  try {
    const size = fstatSync(fd).size;
    let left = size;
    for (;;) {
      const want = Math.max(1, Math.min(CHUNK, left > 0 ? left : CHUNK));
      const b = Buffer.allocUnsafe(want);
      const n = readSync(fd, b, 0, want, null);
      if (n === 0) break;
      yield n === want ? b : b.subarray(0, n);
      left -= n;
    }
  } finally {
    closeSync(fd);
  }
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
  for (const w of walked) {
    const e = w.entry;
    stats.entries++;
    if (e.type !== 'file') continue;
    stats.files++;
    if (e.link !== undefined) continue;
    stats.logicalBytes += e.size;
    if (e.sha256 !== undefined) continue;
    const store = o.pack !== undefined && !matchesAny(e.path, metaOnly);
    try {
      if (e.size <= 64 << 20) {
        const h = createHash('sha256');
        const chunks: Buffer[] = [];
        for (const c of fileChunks(w.abs)) {
          h.update(c);
          chunks.push(c);
        }
        e.sha256 = h.digest('hex');
        const read = chunks.reduce((a, c) => a + c.length, 0);
        if (read !== e.size) stats.warnings.push(`${e.path} changed size while it was read (${e.size} → ${read})`);
        e.size = read;
        if (store && o.store?.has(e.sha256) !== true) await o.pack!.add(e.sha256, chunks);
      } else {
        // Large files: hash first (one chunk in memory), store in a second pass only when new.
        const h = createHash('sha256');
        let read = 0;
        for (const c of fileChunks(w.abs)) {
          h.update(c);
          read += c.length;
        }
        e.sha256 = h.digest('hex');
        e.size = read;
        if (store && o.store?.has(e.sha256) !== true && !o.pack!.has(e.sha256)) await o.pack!.addStream(e.sha256, fileChunks(w.abs));
      }
    } catch (err) {
      if (err instanceof DatarootError) throw err;
      throw vanished(w.abs, err);
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
    const m = store.readManifest(last) as Manifest;
    return { snap: last, entries: new Map(m.entries.map((e) => [e.path, e])) };
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
    const manifest: Manifest = { format: 'dataroot-snapshot', version: 1, name, created: new Date().toISOString(), source, options: { exclude: o.exclude, metadataOnly: o.metadataOnly, live: o.live }, entries };
    const m = store.writeManifest(name, manifest);
    manifestPath = m.path;
    const snapshot: RegisteredSnapshot = {
      name,
      created: manifest.created,
      source,
      manifest: m.path,
      manifestSha256: m.sha256,
      entries: stats.entries,
      logicalBytes: stats.logicalBytes,
      newBytes: pack.newBytes,
      storedBytes: pack.count === 0 ? 0 : store.packBytes(pack.id),
      packs: pack.count === 0 ? [] : [pack.id],
      options: manifest.options,
    };
    store.register(snapshot);
    return { snapshot, stats, previous: prev?.snap.name };
  } catch (e) {
    await pack.abort();
    if (manifestPath !== undefined) store.removeManifest({ manifest: manifestPath } as RegisteredSnapshot);
    throw e;
  }
}
