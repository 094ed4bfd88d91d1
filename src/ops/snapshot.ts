import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, realpathSync } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { batchPath, contentThreads, DirListing, fileBatch, LiveResults, listXattrs, nativeAvailable, packFiles, packFilesAvailable, type FileBatch, scanDir, scanTree as scanTreeNative, type TreeScan, type TreeXattrs } from '../io/native.js';
import { devParts } from '../io/walk.js';
import { CONTENT_KINDS, contentKind, identityLine, isCarried, manifestOf, volatileLine, volatileOf, type ManifestLinesAhead, type CarriedEntry, type ContentKind, type EntryType, type ManifestEntry, type ManifestLines } from '../store/manifest.js';
import { ZSTD_LEVELS } from '../io/packpool.js';
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

function typeOf(mode: number): EntryType {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    case 0o020000:
      return 'char';
    case 0o060000:
      return 'block';
    case 0o010000:
      return 'fifo';
    default:
      return 'socket';
  }
}

/** Entry i of a listing: its lstat as the manifest records it. */
function statOf(L: DirListing, i: number): { rawMode: number; type: EntryType; size: number; nlink: number; mtime: string; atime: string; ctime: string; ino: string; dev: string } {
  const rawMode = L.num(i, 0);
  const type = typeOf(rawMode);
  return {
    rawMode,
    type,
    size: type === 'file' || type === 'symlink' ? L.num(i, 3) : 0,
    nlink: L.num(i, 12),
    mtime: L.timeNs(i, 0),
    atime: L.timeNs(i, 1),
    ctime: L.timeNs(i, 2),
    ino: L.ino(i),
    dev: L.dev(i),
  };
}

function lstatOf(abs: string | Buffer, name: Buffer): DirListing {
  try {
    return DirListing.of(name, lstatSync(abs, { bigint: true }));
  } catch (e) {
    throw vanished(abs, e);
  }
}

interface Walked {
  entry: ManifestEntry | CarriedEntry;
  /** A run of carried entries: how many, how many regular files, their bytes. */
  run?: { count: number; files: number; bytes: number };
  /** Path for fs calls (a Buffer when the name is not UTF-8). */
  abs: string | Buffer;
  type: EntryType;
  size: number;
}

function isUtf8(b: Buffer): boolean {
  let ascii = true;
  for (let i = 0; i < b.length; i++) {
    if (b[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return true;
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}

/** Opens a file to read without touching its access time where the kernel allows it. */
function openNoAtime(abs: string | Buffer): number {
  // O_NONBLOCK: a path that became a FIFO since the walk must not block the open.
  let fd: number;
  try {
    fd = openSync(abs, constants.O_RDONLY | constants.O_NOATIME | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
    fd = openSync(abs, constants.O_RDONLY | constants.O_NONBLOCK);
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw Object.assign(new Error(`${abs.toString()} is no longer a regular file`), { code: 'EINVAL' });
  }
  return fd;
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

/** The native tree scan, with the previous snapshot's lines to match against (`identity`: those lines). */
function walkTree(root: string, prevs: Previous | undefined, xattrs: boolean, files: boolean): (TreeScan & { identity?: Buffer }) | undefined {
  try {
    if (prevs === undefined) return scanTreeNative(root, undefined, undefined, false, xattrs, 0, files);
    const [text, vol] = prevs.lines.parts();
    const identity = text.subarray(prevs.lines.idStart, prevs.lines.idEnd);
    const tree = scanTreeNative(root, identity, vol, prevs.carry, xattrs);
    return tree === undefined ? undefined : { ...tree, identity };
  } catch (e) {
    throw vanished((e as DatarootError).details?.['file']?.toString() ?? root, e);
  }
}

export interface ScanOptions {
  exclude: string[];
  metadataOnly: string[];
  /** The previous snapshot of the same root: entries whose size, times and inode match are not re-read. */
  previous?: Previous;
  store?: SnapshotStore;
  pack?: PackWriter;
  onProgress?: (p: { files: number; bytes: number; totalBytes: number }) => void;
  /** Called between the walk and the reading of contents (tests pause there). */
  onWalked?: () => void;
  /**
   * Who reads the contents: the addon's native threads (the default when packFilesAvailable()) or
   * this thread with worker threads compressing (the fallback; tests compare the two).
   */
  pipeline?: 'native' | 'js';
  /** Write the manifest's sections while the contents are read (a first snapshot: see linesAhead). */
  linesAhead?: boolean;
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
  const code = (e as NodeJS.ErrnoException).code?.replace(/^IO_/, '');
  return new DatarootError('SNAPSHOT_SOURCE_CHANGED', `${abs.toString()} ${code === 'ENOENT' ? 'disappeared' : `cannot be read (${code ?? (e as Error).message})`} while the snapshot was taken`, { file: abs.toString() });
}

/**
 * The previous snapshot of a root, looked up by path. An entry whose mtime, ctime, inode, device
 * and link count are what the previous snapshot recorded has not changed since (any change of
 * content, mode, owner, xattrs or type moves the ctime; a new file is a new inode or a new ctime):
 * its identity line is carried over verbatim without being decoded. Only when the scan options
 * are the same, and never for hard links (the first path of an inode may have changed).
 */
export class Previous {
  private byPathMap: Map<string, number> | undefined;

  constructor(
    readonly lines: ManifestLines,
    /** Whether identity lines may be carried (same exclude and metadata-only options). */
    readonly carry: boolean,
  ) {}

  /** Entry indexes by path, built on first use (a scan that finds nothing changed never needs it). */
  private get byPath(): Map<string, number> {
    if (this.byPathMap === undefined) {
      this.byPathMap = new Map();
      for (let i = 0; i < this.lines.count; i++) this.byPathMap.set(this.lines.pathOf(i), i);
    }
    return this.byPathMap;
  }

  index(path: string): number | undefined {
    return this.byPath.get(path);
  }

  /** The decoded entry (for the slower comparison of an entry that moved in time only). */
  entry(path: string): ManifestEntry | undefined {
    const i = this.byPath.get(path);
    return i === undefined ? undefined : this.lines.entry(i);
  }
}

/** A volatile line without its access time (reading a file changes that and nothing else). */
function withoutAtime(line: string): string {
  const a = line.indexOf('","');
  const b = line.indexOf('","', a + 3);
  return a < 0 || b < 0 ? line : line.slice(0, a) + line.slice(b);
}

/**
 * Walks a tree (depth-first, names in byte order, symlinks never followed) into manifest entries,
 * then reads and hashes the content of every regular file the previous snapshot does not already
 * describe, handing new content to the pack. Hard links are recorded once, with `link` on the
 * others.
 */
export async function scanTree(root: string, o: ScanOptions): Promise<{ entries: (ManifestEntry | CarriedEntry)[]; stats: ScanStats; lines?: ManifestLinesAhead }> {
  const exclude = o.exclude.map(globRegex);
  const metaOnly = o.metadataOnly.map(globRegex);
  const xattrs = nativeAvailable();
  const walked: Walked[] = [];
  const stats: ScanStats = { entries: 0, files: 0, logicalBytes: 0, hashedBytes: 0, reused: 0, warnings: [] };
  if (!xattrs) stats.warnings.push('the native addon is not built: extended attributes are not recorded');
  const inodes = new Map<string, string>();
  const prevs = o.previous;
  /** An entry described in full (new or changed since the previous snapshot). */
  const fullEntry = (abs: string | Buffer, rel: string, relRaw: Buffer | undefined, L: DirListing, i: number, listed?: TreeXattrs): Walked => {
    const { rawMode, type, size, nlink, mtime, atime, ctime, ino, dev } = statOf(L, i);
    const entry: ManifestEntry = { path: rel, type, mode: rawMode & 0o7777, uid: L.num(i, 1), gid: L.num(i, 2), size, mtime, atime, ctime, ino, dev, nlink };
    if (relRaw !== undefined) entry.pathBase64 = relRaw.toString('base64');
    if (type === 'char' || type === 'block') entry.rdev = devParts(L.rdev(i));
    if (type === 'symlink') {
      let t: Buffer;
      try {
        t = readlinkSync(abs, { encoding: 'buffer' });
      } catch (e) {
        throw vanished(abs, e);
      }
      if (isUtf8(t)) entry.target = t.toString('utf8');
      else {
        entry.target = t.toString('latin1');
        entry.targetBase64 = t.toString('base64');
      }
    }
    if (type !== 'dir' && nlink > 1) {
      const key = `${dev}:${ino}`;
      const first = inodes.get(key);
      if (first !== undefined) entry.link = first;
      else inodes.set(key, rel);
    }
    const prev = prevs?.entry(rel);
    const unchanged = prev !== undefined && prev.type === type && prev.size === entry.size && prev.mtime === entry.mtime && prev.ctime === entry.ctime && prev.ino === entry.ino && prev.dev === entry.dev;
    // The native scan listed every entry's attributes already: taken in order, used or not.
    const scanned = listed?.next(abs.toString());
    if (unchanged && prev.xattrs !== undefined) entry.xattrs = prev.xattrs;
    else if (xattrs && typeof abs === 'string' && !unchanged) {
      try {
        const x = scanned ?? listXattrs(abs);
        if (x instanceof DatarootError) throw x;
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
    return { entry, abs, type, size };
  };
  const visit = (abs: string | Buffer, rel: string, relRaw: Buffer | undefined, L: DirListing, i: number): void => {
    const { type, size, nlink, mtime, atime, ctime, ino, dev } = statOf(L, i);
    const volatile = volatileOf(mtime, atime, ctime, ino, dev, nlink);
    // The fast path: nothing about the entry changed since the previous snapshot.
    const pi = prevs?.carry === true && (type === 'dir' || nlink === 1) ? prevs.index(rel) : undefined;
    if (pi !== undefined && withoutAtime(prevs!.lines.volatileLine(pi)) === withoutAtime(volatile)) {
      walked.push({ entry: { carried: prevs!.lines.identityBytes(pi), volatile }, abs, type, size });
      if (type === 'file') stats.reused++;
    } else walked.push(fullEntry(abs, rel, relRaw, L, i));
    if (type !== 'dir') return;
    // One native call per directory (names and their lstat, sorted); readdir and lstat without
    // the addon or for paths that are not UTF-8.
    let children: DirListing | undefined;
    let names: Buffer[] | undefined;
    try {
      children = typeof abs === 'string' ? scanDir(abs) : undefined;
      if (children === undefined) names = readdirSync(abs, { encoding: 'buffer' }).sort(Buffer.compare);
    } catch (e) {
      throw vanished(abs, e);
    }
    const count = children !== undefined ? children.length : names!.length;
    const sep = typeof abs === 'string' && !abs.endsWith('/') ? '/' : '';
    for (let k = 0; k < count; k++) {
      let utf8 = true;
      let nameText: string;
      if (children !== undefined) {
        const b = children.buf;
        const s0 = children.nameStart(k);
        const s1 = children.nameEnd(k);
        for (let j = s0; j < s1; j++) {
          if (b[j]! >= 0x80) {
            utf8 = isUtf8(b.subarray(s0, s1));
            break;
          }
        }
        nameText = b.toString(utf8 ? 'utf8' : 'latin1', s0, s1);
      } else {
        utf8 = isUtf8(names![k]!);
        nameText = names![k]!.toString(utf8 ? 'utf8' : 'latin1');
      }
      const childRel = rel === '' ? nameText : `${rel}/${nameText}`;
      if (exclude.length > 0 && matchesAny(childRel, exclude)) continue;
      const n = (): Buffer => (children !== undefined ? children.name(k) : names![k]!);
      const childRaw = relRaw !== undefined || !utf8 ? Buffer.concat([relRaw ?? Buffer.from(rel, 'utf8'), ...(rel === '' ? [] : [Buffer.from('/')]), n()]) : undefined;
      const childAbs = typeof abs === 'string' && utf8 ? `${abs}${sep}${nameText}` : Buffer.concat([Buffer.isBuffer(abs) ? abs : Buffer.from(abs), Buffer.from('/'), n()]);
      if (children !== undefined) visit(childAbs, childRel, childRaw, children, k);
      else visit(childAbs, childRel, childRaw, lstatOf(childAbs, n()), 0);
    }
  };
  // The whole tree in one native call, matched there against the previous manifest (entries that
  // did not change cost no JavaScript beyond a line carried over); without the addon, or with
  // --exclude, a walk here with one native call per directory.
  const native = (o.pipeline ?? (packFilesAvailable() ? 'native' : 'js')) === 'native';
  // A first snapshot starts reading contents as soon as the tree is listed, while the entries are
  // built (not when a test pauses between the walk and the reading, nor with metadata-only paths
  // to sort out): the scan then lists the files to read too.
  const readEarly = native && prevs === undefined && metaOnly.length === 0 && o.onWalked === undefined;
  const tree = exclude.length === 0 ? walkTree(root, prevs, xattrs, readEarly) : undefined;
  let early: { results: Promise<ContentResult[]>; sizes: Buffer; live: LiveResults } | undefined;
  if (tree !== undefined) {
    const { ops, full, volatile: vol, identity } = tree;
    // The scan listed the files to read (of a hard-linked inode the first path, as the walk keeps).
    if (tree.files !== undefined && tree.files.sizes.length > 0) {
      const { paths, sizes } = tree.files;
      const count = sizes.length / 8;
      let total = 0;
      for (let i = 0; i < count; i++) total += u64At(sizes, i);
      const live = new LiveResults(count);
      const results = startNative({ paths, count, keep: Buffer.alloc(count, o.pack !== undefined ? 1 : 0) }, o, total, 0, live);
      results.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
      early = { results, sizes, live };
    }
    const sep = root.endsWith('/') ? '' : '/';
    let at = 0;
    let fi = 0;
    for (let n = 0; n < tree.count; n++) {
      if (ops[at] === 0) {
        const count = ops.readUInt32LE(at + 17);
        const run = { count, files: ops.readUInt32LE(at + 21), bytes: ops.readUInt32LE(at + 25) + ops.readUInt32LE(at + 29) * 0x100000000 };
        const carried = identity!.subarray(ops.readUInt32LE(at + 1), ops.readUInt32LE(at + 5));
        walked.push({ entry: { carried, volatile: vol.subarray(ops.readUInt32LE(at + 9), ops.readUInt32LE(at + 13)), count }, abs: '', type: 'dir', size: 0, run });
        stats.reused += run.files;
        at += 33;
        n += count - 1;
        continue;
      }
      at += 1;
      const s0 = full.nameStart(fi);
      const s1 = full.nameEnd(fi);
      let rel: string;
      let relRaw: Buffer | undefined;
      let abs: string | Buffer;
      // Most paths are ASCII: decoded from the record without a Buffer view of the name.
      let ascii = true;
      for (let k = s0; k < s1; k++) {
        if (full.buf[k]! >= 0x80) {
          ascii = false;
          break;
        }
      }
      const relBytes = ascii ? undefined : full.name(fi);
      if (relBytes === undefined || isUtf8(relBytes)) {
        rel = full.buf.toString('utf8', s0, s1);
        abs = rel === '' ? root : `${root}${sep}${rel}`;
      } else {
        // As the walk below names it: each name as UTF-8 when it is, else as latin1.
        const names: string[] = [];
        for (let p = 0; p <= relBytes.length; ) {
          let q = relBytes.indexOf(0x2f, p);
          if (q < 0) q = relBytes.length;
          const c = relBytes.subarray(p, q);
          names.push(c.toString(isUtf8(c) ? 'utf8' : 'latin1'));
          p = q + 1;
        }
        rel = names.join('/');
        relRaw = Buffer.from(relBytes);
        abs = Buffer.concat([Buffer.from(`${root}${sep}`), relBytes]);
      }
      walked.push(fullEntry(abs, rel, relRaw, full, fi, xattrs ? tree.xattrs : undefined));
      fi++;
    }
  } else visit(root, '', undefined, lstatOf(root, Buffer.alloc(0)), 0);
  o.onWalked?.();
  // Content: read and hash what is new, store what is not metadata-only.
  let totalBytes = 0;
  for (const w of walked) if (!isCarried(w.entry) && w.type === 'file' && w.entry.link === undefined && w.entry.sha256 === undefined) totalBytes += w.size;
  let bytes = 0;
  const scratch = Buffer.allocUnsafe(CHUNK);
  // With the addon, contents are read, hashed and stored on native threads, all at once after
  // this loop; without it, one file at a time here.
  const todo: Walked[] = [];
  const todoAt: number[] = [];
  for (let wi = 0; wi < walked.length; wi++) {
    const w = walked[wi]!;
    if (w.run !== undefined) {
      stats.entries += w.run.count;
      stats.files += w.run.files;
      stats.logicalBytes += w.run.bytes;
      continue;
    }
    stats.entries++;
    if (w.type !== 'file') continue;
    stats.files++;
    const e = w.entry;
    if (isCarried(e)) {
      stats.logicalBytes += w.size;
      continue;
    }
    if (e.link !== undefined) continue;
    stats.logicalBytes += e.size;
    if (e.sha256 !== undefined) continue;
    const store = o.pack !== undefined && !matchesAny(e.path, metaOnly);
    if (native) {
      todo.push(w);
      todoAt.push(wi);
      continue;
    }
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
  let lines: ManifestLinesAhead | undefined;
  if (todo.length > 0) {
    const items = todo.map((w) => ({ abs: w.abs, keep: o.pack !== undefined && !matchesAny((w.entry as ManifestEntry).path, metaOnly) }));
    // The run started early is used when it read exactly these files (it always should).
    const same = early !== undefined && early.sizes.length / 8 === todo.length && todo.every((w, i) => w.size === u64At(early!.sizes, i) && items[i]!.keep === (o.pack !== undefined));
    if (early !== undefined && !same) await early.results.catch(() => undefined);
    if (same && o.linesAhead === true) lines = await linesAhead(walked, todo, todoAt, early!, o.pack !== undefined);
    const results = same ? await early!.results : await startNative(fileBatch(items), o, totalBytes, stats.files - todo.length);
    todo.forEach((w, i) => {
      const e = w.entry as ManifestEntry;
      const r = results[i]!;
      if (r.size !== e.size) stats.warnings.push(`${e.path} changed size while it was read (${e.size} → ${r.size})`);
      e.sha256 = r.hex;
      e.size = r.size;
      e.kind = r.kind;
      if (o.pack !== undefined) e.stored = items[i]!.keep;
      stats.hashedBytes += r.size;
    });
    o.onProgress?.({ files: stats.files, bytes: stats.hashedBytes, totalBytes });
  } else if (early !== undefined) await early.results;
  return { entries: walked.map((w) => w.entry), stats, ...(lines !== undefined ? { lines } : {}) };
}

/**
 * While the native threads read a first snapshot's contents, this thread writes the manifest's
 * two sections: the volatile lines at once, the identity lines of the entries that are not files
 * read at once too, and those of the files as their results come in, put together in walk order
 * as they complete. What is left when the run ends is little, so the manifest is ready soon after
 * the last file. Rejects as the run does. (Empty when some entry is carried from a previous
 * snapshot: then manifestOf writes the lines.)
 */
async function linesAhead(walked: Walked[], todo: Walked[], todoAt: number[], early: { results: Promise<ContentResult[]>; live: LiveResults }, stored: boolean): Promise<ManifestLinesAhead> {
  const identity: (string | undefined)[] = new Array(walked.length);
  const volatile: string[] = [];
  const reading = new Set(todoAt);
  let allFull = true;
  for (let i = 0; i < walked.length; i++) {
    const e = walked[i]!.entry;
    if (isCarried(e)) {
      allFull = false;
      continue;
    }
    volatile.push(`${volatileLine(e)}\n`);
    if (!reading.has(i)) identity[i] = identityLine(e);
  }
  // The identity section is put together in walk order as lines come in, a few thousand at a time.
  const parts: Buffer[] = [];
  let emitted = 0;
  const emit = (all: boolean): void => {
    const from = emitted;
    while (emitted < walked.length && identity[emitted] !== undefined) emitted++;
    if (emitted - from >= 2000 || (all && emitted > from)) {
      parts.push(Buffer.from(`${identity.slice(from, emitted).join('\n')}\n`));
      identity.fill(undefined, from, emitted);
    } else emitted = from;
  };
  const volatileText = allFull ? Buffer.from(volatile.join('')) : undefined;
  let settled = false;
  early.results.then(
    () => (settled = true),
    () => (settled = true),
  );
  let next = 0;
  const take = (): void => {
    for (; next < todo.length && early.live.done(next); next++) {
      const r = early.live.result(next);
      const e = todo[next]!.entry as ManifestEntry;
      e.sha256 = r.sha256;
      e.size = r.size;
      e.kind = CONTENT_KINDS[r.kind] ?? 'binary';
      if (stored) e.stored = true;
      identity[todoAt[next]!] = identityLine(e);
    }
  };
  while (!settled) {
    take();
    if (volatileText !== undefined) emit(false);
    await new Promise<void>((res) => setTimeout(res, 4));
  }
  await early.results;
  take();
  if (volatileText === undefined) return {};
  emit(true);
  if (emitted !== walked.length) return {};
  return { identityText: Buffer.concat(parts), volatileText, count: walked.length };
}

/** Entry i of a buffer of little-endian u64s, as a number. */
function u64At(b: Buffer, i: number): number {
  return b.readUInt32LE(i * 8) + b.readUInt32LE(i * 8 + 4) * 0x100000000;
}

type ContentResult = { hex: string; size: number; kind: ContentKind };

/**
 * Starts reading a batch of files on the addon's native threads: hashed, and stored in the pack
 * (when there is one) where the batch's keep byte says so. Progress is polled from the counters
 * the threads update. A file that cannot be read rejects with SNAPSHOT_SOURCE_CHANGED naming it.
 */
function startNative(batch: FileBatch, o: ScanOptions, totalBytes: number, filesBefore: number, live?: LiveResults): Promise<ContentResult[]> {
  const progress = new Float64Array(2);
  const timer = o.onProgress !== undefined ? setInterval(() => o.onProgress!({ files: filesBefore + progress[0]!, bytes: progress[1]!, totalBytes }), 100) : undefined;
  const run = async (): Promise<ContentResult[]> => {
    try {
      if (o.pack !== undefined) return await o.pack.files(batch, progress, live);
      const r = await packFiles(batch, undefined, [], { level: 1, threads: contentThreads(), progress, ...(live !== undefined ? { live } : {}) });
      return r.results.map((f) => ({ hex: f.sha256, size: f.size, kind: CONTENT_KINDS[f.kind] ?? 'binary' }));
    } catch (err) {
      if (err instanceof DatarootError) throw err;
      const at = (err as { index?: number }).index;
      throw vanished(at !== undefined ? batchPath(batch, at) : '(a file of the tree)', err);
    } finally {
      if (timer !== undefined) clearInterval(timer);
    }
  };
  return run();
}


export interface SnapshotOptions {
  name?: string;
  exclude: string[];
  metadataOnly: string[];
  live: boolean;
  onProgress?: ScanOptions['onProgress'];
  onWalked?: () => void;
  pipeline?: ScanOptions['pipeline'];
  /** zstd level of the stored contents (default ZSTD_LEVEL). */
  level?: number;
}

export interface SnapshotResult {
  snapshot: RegisteredSnapshot;
  stats: ScanStats;
  previous: string | undefined;
}

/** The latest snapshot of the same source, to reuse what did not change. */
async function previousOf(store: SnapshotStore, source: string, o: SnapshotOptions): Promise<{ snap: RegisteredSnapshot; entries: Previous } | undefined> {
  const same = store.snapshots().filter((s) => s.source === source);
  const last = same[same.length - 1];
  if (last === undefined) return undefined;
  try {
    const m = await store.readManifestAsync(last, true);
    const sameOptions = JSON.stringify([last.options.exclude, last.options.metadataOnly]) === JSON.stringify([o.exclude, o.metadataOnly]);
    return { snap: last, entries: new Previous(m, sameOptions) };
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
  const prev = await previousOf(store, source, o);
  if (o.level !== undefined && (!Number.isInteger(o.level) || o.level < ZSTD_LEVELS.min || o.level > ZSTD_LEVELS.max)) {
    throw new DatarootError('USAGE_BAD_LEVEL', `compression level ${o.level}: an integer from ${ZSTD_LEVELS.min} (fastest) to ${ZSTD_LEVELS.max} (smallest)`);
  }
  const pack = store.newPack(o.level);
  let manifestPath: string | undefined;
  try {
    const { entries, stats, lines } = await scanTree(source, {
      exclude: o.exclude,
      metadataOnly: o.metadataOnly,
      ...(prev !== undefined ? { previous: prev.entries } : {}),
      store,
      pack,
      ...(o.onProgress !== undefined ? { onProgress: o.onProgress } : {}),
      ...(o.onWalked !== undefined ? { onWalked: o.onWalked } : {}),
      ...(o.pipeline !== undefined ? { pipeline: o.pipeline } : {}),
      linesAhead: true,
    });
    await pack.finish();
    const options = { exclude: o.exclude, metadataOnly: o.metadataOnly, live: o.live };
    const manifest = manifestOf({ name, created: new Date().toISOString(), source, options }, entries, lines);
    const m = await store.writeManifest(name, manifest);
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
