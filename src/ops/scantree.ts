import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import {
  contentKind,
  identityLine,
  volatileLine,
  volatileOf,
  volatileTemplate,
  type ContentKind,
  type EntryType,
  type ManifestEntry,
} from '../formats/snapstore/manifest.js';
import {
  batchPath,
  contentThreads,
  DirListing,
  fileBatch,
  LiveResults,
  listXattrs,
  nativeAvailable,
  packFiles,
  type FileBatch,
  scanDir,
  scanTree as scanTreeNative,
  type TreeScan,
  type TreeXattrs,
} from '../io/native.js';
import { devParts } from '../io/walk.js';
import { isCarried, type CarriedEntry, type ManifestLines, type ManifestLinesAhead } from '../store/snapshots/manifest.js';
import type { FileContent, PackWriter } from '../store/snapshots/packwriter.js';
import type { SnapshotStore } from '../store/snapshots/store.js';

/**
 * Walking a tree into manifest entries and reading the contents it holds: the first half of a
 * snapshot, and all of a directory side of `diff`. scanTree reads top-down:
 *   walk      the tree, depth-first, names in byte order, symlinks never followed: in one native
 *             call (matched there against the previous snapshot) or, without the addon or with
 *             --exclude, here with one call per directory;
 *   tally     the counts, and the files whose content must be read;
 *   read      their contents: on the addon's threads (hashed, and stored in the pack), or without
 *             the addon hashed here one file at a time (a diff of directories needs no addon).
 */

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

const VOLATILE_TEMPLATE = volatileTemplate();

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

/**
 * Walks a tree into manifest entries, then reads and hashes the content of every regular file
 * the previous snapshot does not already describe, handing new content to the pack. Hard links
 * are recorded once, with `link` on the others.
 */
export async function scanTree(
  root: string,
  o: ScanOptions,
): Promise<{ entries: (ManifestEntry | CarriedEntry)[]; stats: ScanStats; lines?: ManifestLinesAhead }> {
  if (o.pack !== undefined && !nativeAvailable())
    throw new DatarootError('IO_NATIVE_UNAVAILABLE', "storing contents needs dataroot's native addon (see dataroot info)");
  const scan = new Scan(root, o);
  const early = scan.walk();
  o.onWalked?.();
  const todo = scan.tally();
  const lines = await scan.read(todo, early);
  return { entries: scan.walked.map((w) => w.entry), stats: scan.stats, ...(lines !== undefined ? { lines } : {}) };
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

/** Files whose content is read, and where they are in the walk. */
interface Todo {
  files: Walked[];
  at: number[];
  totalBytes: number;
}

/** A content read started while the entries are still being built (a first snapshot). */
interface EarlyRead {
  results: Promise<FileContent[]>;
  sizes: Buffer;
  live: LiveResults;
}

class Scan {
  readonly stats: ScanStats = { entries: 0, files: 0, logicalBytes: 0, hashedBytes: 0, reused: 0, warnings: [] };
  readonly walked: Walked[] = [];
  private readonly exclude: RegExp[];
  private readonly metaOnly: RegExp[];
  private readonly xattrs = nativeAvailable();
  private readonly inodes = new Map<string, string>();

  constructor(
    private readonly root: string,
    private readonly o: ScanOptions,
  ) {
    this.exclude = o.exclude.map(globRegex);
    this.metaOnly = o.metadataOnly.map(globRegex);
    if (!this.xattrs) this.stats.warnings.push('the native addon is not built: extended attributes are not recorded');
  }

  // ---- walk ----

  /**
   * The whole tree: in one native call when the addon is there and nothing is excluded, else a
   * walk here. A first snapshot starts reading contents as soon as the tree is listed, while the
   * entries are built (not when a test pauses between the walk and the reading, nor with
   * metadata-only paths to sort out): the scan then lists the files to read too.
   */
  walk(): EarlyRead | undefined {
    const prevs = this.o.previous;
    const readEarly = this.xattrs && prevs === undefined && this.metaOnly.length === 0 && this.o.onWalked === undefined;
    const tree = this.exclude.length === 0 ? this.nativeTree(readEarly) : undefined;
    if (tree === undefined) {
      this.visit(this.root, '', undefined, lstatOf(this.root, Buffer.alloc(0)), 0);
      return undefined;
    }
    const early = tree.files !== undefined && tree.files.sizes.length > 0 ? this.startEarly(tree.files) : undefined;
    this.takeTree(tree);
    return early;
  }

  /** The native tree scan, with the previous snapshot's lines to match against (`identity`: those lines). */
  private nativeTree(files: boolean): (TreeScan & { identity?: Buffer }) | undefined {
    const prevs = this.o.previous;
    try {
      if (prevs === undefined) return scanTreeNative(this.root, { xattrs: this.xattrs, files, volatileTemplate: VOLATILE_TEMPLATE });
      const [text, vol] = prevs.lines.parts();
      const identity = text.subarray(prevs.lines.idStart, prevs.lines.idEnd);
      const tree = scanTreeNative(this.root, {
        previous: { identity, volatile: vol, carry: prevs.carry },
        xattrs: this.xattrs,
        volatileTemplate: VOLATILE_TEMPLATE,
      });
      return tree === undefined ? undefined : { ...tree, identity };
    } catch (e) {
      throw vanished((e as DatarootError).details?.['file']?.toString() ?? this.root, e);
    }
  }

  /** Reads the files the native scan listed (of a hard-linked inode the first path, as the walk keeps). */
  private startEarly(files: { paths: Buffer; sizes: Buffer }): EarlyRead {
    const count = files.sizes.length / 8;
    let total = 0;
    for (let i = 0; i < count; i++) total += u64At(files.sizes, i);
    const live = new LiveResults(count);
    const results = this.startNative({ paths: files.paths, count, keep: Buffer.alloc(count, this.o.pack !== undefined ? 1 : 0) }, total, 0, live);
    results.catch(() => undefined); // awaited in read(); not an unhandled rejection meanwhile
    return { results, sizes: files.sizes, live };
  }

  /** The native scan's records into walked entries: runs of carried entries, and entries in full. */
  private takeTree(tree: TreeScan & { identity?: Buffer }): void {
    const { ops, full, volatile: vol, identity } = tree;
    let at = 0;
    let fi = 0;
    for (let n = 0; n < tree.count; n++) {
      if (ops[at] === 0) {
        const count = ops.readUInt32LE(at + 17);
        const run = { count, files: ops.readUInt32LE(at + 21), bytes: ops.readUInt32LE(at + 25) + ops.readUInt32LE(at + 29) * 0x100000000 };
        const carried = identity!.subarray(ops.readUInt32LE(at + 1), ops.readUInt32LE(at + 5));
        this.walked.push({
          entry: { carried, volatile: vol.subarray(ops.readUInt32LE(at + 9), ops.readUInt32LE(at + 13)), count },
          abs: '',
          type: 'dir',
          size: 0,
          run,
        });
        this.stats.reused += run.files;
        at += 33;
        n += count - 1;
        continue;
      }
      at += 1;
      const { rel, relRaw, abs } = this.pathOfRecord(full, fi);
      this.walked.push(this.describe(abs, rel, relRaw, full, fi, this.xattrs ? tree.xattrs : undefined));
      fi++;
    }
  }

  /** Record fi's path: relative as the manifest names it, raw bytes when not UTF-8, and absolute. */
  private pathOfRecord(full: DirListing, fi: number): { rel: string; relRaw: Buffer | undefined; abs: string | Buffer } {
    const sep = this.root.endsWith('/') ? '' : '/';
    const s0 = full.nameStart(fi);
    const s1 = full.nameEnd(fi);
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
      const rel = full.buf.toString('utf8', s0, s1);
      return { rel, relRaw: undefined, abs: rel === '' ? this.root : `${this.root}${sep}${rel}` };
    }
    // As the walk here names it: each name as UTF-8 when it is, else as latin1.
    const names: string[] = [];
    for (let p = 0; p <= relBytes.length;) {
      let q = relBytes.indexOf(0x2f, p);
      if (q < 0) q = relBytes.length;
      const c = relBytes.subarray(p, q);
      names.push(c.toString(isUtf8(c) ? 'utf8' : 'latin1'));
      p = q + 1;
    }
    return { rel: names.join('/'), relRaw: Buffer.from(relBytes), abs: Buffer.concat([Buffer.from(`${this.root}${sep}`), relBytes]) };
  }

  /** The walk here: an entry, then (a directory) its children, with one native call per directory or readdir and lstat. */
  private visit(abs: string | Buffer, rel: string, relRaw: Buffer | undefined, L: DirListing, i: number): void {
    const st = statOf(L, i);
    this.walked.push(this.carriedOrDescribed(abs, rel, relRaw, L, i, st));
    if (st.type !== 'dir') return;
    const children = this.listDir(abs);
    const count = children.listing !== undefined ? children.listing.length : children.names!.length;
    for (let k = 0; k < count; k++) {
      const { name, bytes, utf8 } = childName(children, k);
      const childRel = rel === '' ? name : `${rel}/${name}`;
      if (this.exclude.length > 0 && matchesAny(childRel, this.exclude)) continue;
      const childRaw =
        relRaw !== undefined || !utf8 ? Buffer.concat([relRaw ?? Buffer.from(rel, 'utf8'), ...(rel === '' ? [] : [Buffer.from('/')]), bytes()]) : undefined;
      const sep = typeof abs === 'string' && !abs.endsWith('/') ? '/' : '';
      const childAbs =
        typeof abs === 'string' && utf8 ? `${abs}${sep}${name}` : Buffer.concat([Buffer.isBuffer(abs) ? abs : Buffer.from(abs), Buffer.from('/'), bytes()]);
      if (children.listing !== undefined) this.visit(childAbs, childRel, childRaw, children.listing, k);
      else this.visit(childAbs, childRel, childRaw, lstatOf(childAbs, bytes()), 0);
    }
  }

  /** The fast path: an entry nothing about which changed since the previous snapshot is carried over. */
  private carriedOrDescribed(abs: string | Buffer, rel: string, relRaw: Buffer | undefined, L: DirListing, i: number, st: Stat): Walked {
    const prevs = this.o.previous;
    const volatile = volatileOf(st.mtime, st.atime, st.ctime, st.ino, st.dev, st.nlink);
    const pi = prevs?.carry === true && (st.type === 'dir' || st.nlink === 1) ? prevs.index(rel) : undefined;
    if (pi !== undefined && withoutAtime(prevs!.lines.volatileLine(pi)) === withoutAtime(volatile)) {
      if (st.type === 'file') this.stats.reused++;
      return { entry: { carried: prevs!.lines.identityBytes(pi), volatile }, abs, type: st.type, size: st.size };
    }
    return this.describe(abs, rel, relRaw, L, i);
  }

  /** A directory's children: a native listing (names with their lstat), or names to lstat one by one. */
  private listDir(abs: string | Buffer): { listing?: DirListing; names?: Buffer[] } {
    try {
      const listing = typeof abs === 'string' ? scanDir(abs) : undefined;
      if (listing !== undefined) return { listing };
      return { names: readdirSync(abs, { encoding: 'buffer' }).sort((a, b) => Buffer.compare(a, b)) };
    } catch (e) {
      throw vanished(abs, e);
    }
  }

  /** An entry described in full (new or changed since the previous snapshot). */
  private describe(abs: string | Buffer, rel: string, relRaw: Buffer | undefined, L: DirListing, i: number, listed?: TreeXattrs): Walked {
    const { rawMode, type, size, nlink, mtime, atime, ctime, ino, dev } = statOf(L, i);
    const entry: ManifestEntry = { path: rel, type, mode: rawMode & 0o7777, uid: L.num(i, 1), gid: L.num(i, 2), size, mtime, atime, ctime, ino, dev, nlink };
    if (relRaw !== undefined) entry.pathBase64 = relRaw.toString('base64');
    if (type === 'char' || type === 'block') entry.rdev = devParts(L.rdev(i));
    if (type === 'symlink') this.describeTarget(abs, entry);
    if (type !== 'dir' && nlink > 1) this.describeLink(entry, `${dev}:${ino}`);
    const prev = this.o.previous?.entry(rel);
    const unchanged =
      prev !== undefined &&
      prev.type === type &&
      prev.size === entry.size &&
      prev.mtime === entry.mtime &&
      prev.ctime === entry.ctime &&
      prev.ino === entry.ino &&
      prev.dev === entry.dev;
    // The native scan listed every entry's attributes already: taken in order, used or not.
    const scanned = listed?.next(abs.toString());
    if (unchanged && prev.xattrs !== undefined) entry.xattrs = prev.xattrs;
    else if (!unchanged) this.describeXattrs(abs, entry, scanned);
    if (type === 'file' && entry.link === undefined && unchanged) this.reuseContent(entry, prev);
    return { entry, abs, type, size };
  }

  private describeTarget(abs: string | Buffer, entry: ManifestEntry): void {
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

  /** A hard link: the first path of its inode is recorded in full, the others name it. */
  private describeLink(entry: ManifestEntry, key: string): void {
    const first = this.inodes.get(key);
    if (first !== undefined) entry.link = first;
    else this.inodes.set(key, entry.path);
  }

  private describeXattrs(abs: string | Buffer, entry: ManifestEntry, scanned: ReadonlyMap<string, Buffer> | DatarootError | undefined): void {
    if (!this.xattrs || typeof abs !== 'string') return;
    try {
      const x = scanned ?? listXattrs(abs);
      if (x instanceof DatarootError) throw x;
      if (x.size > 0) entry.xattrs = Object.fromEntries([...x].map(([k, v]) => [k, v.toString('base64')]));
    } catch (e) {
      if (e instanceof DatarootError && e.code === 'IO_ENOENT') throw vanished(abs, e);
      this.stats.warnings.push(`${entry.path}: extended attributes cannot be read (${(e as Error).message})`);
    }
  }

  /** An unchanged file keeps the content the previous snapshot recorded (when the store still has it). */
  private reuseContent(entry: ManifestEntry, prev: ManifestEntry): void {
    if (prev.sha256 === undefined) return;
    const store = this.o.store;
    if (prev.stored === true && store !== undefined && !store.has(prev.sha256)) return;
    entry.sha256 = prev.sha256;
    if (prev.kind !== undefined) entry.kind = prev.kind;
    if (prev.stored !== undefined) entry.stored = prev.stored && !matchesAny(entry.path, this.metaOnly);
    this.stats.reused++;
  }

  // ---- tally ----

  /** Counts entries, files and bytes, and lists the files whose content must be read. */
  tally(): Todo {
    const todo: Todo = { files: [], at: [], totalBytes: 0 };
    const s = this.stats;
    this.walked.forEach((w, wi) => {
      if (w.run !== undefined) {
        s.entries += w.run.count;
        s.files += w.run.files;
        s.logicalBytes += w.run.bytes;
        return;
      }
      s.entries++;
      if (w.type !== 'file') return;
      s.files++;
      const e = w.entry;
      if (isCarried(e)) {
        s.logicalBytes += w.size;
        return;
      }
      if (e.link !== undefined) return;
      s.logicalBytes += e.size;
      if (e.sha256 !== undefined) return;
      todo.files.push(w);
      todo.at.push(wi);
      todo.totalBytes += w.size;
    });
    return todo;
  }

  // ---- read ----

  /** Reads what tally listed: natively (the run started early when it read exactly these files), or hashed here. */
  async read(todo: Todo, early: EarlyRead | undefined): Promise<ManifestLinesAhead | undefined> {
    if (todo.files.length === 0) {
      if (early !== undefined) await early.results;
      return undefined;
    }
    if (!nativeAvailable()) {
      this.hashHere(todo);
      return undefined;
    }
    const keep = todo.files.map((w) => this.o.pack !== undefined && !matchesAny((w.entry as ManifestEntry).path, this.metaOnly));
    const same =
      early !== undefined &&
      early.sizes.length / 8 === todo.files.length &&
      todo.files.every((w, i) => w.size === u64At(early.sizes, i) && keep[i] === (this.o.pack !== undefined));
    if (early !== undefined && !same) await early.results.catch(() => undefined);
    const lines = same && this.o.linesAhead === true ? await linesAhead(this.walked, todo, early, this.o.pack !== undefined) : undefined;
    const results = same
      ? await early.results
      : await this.startNative(fileBatch(todo.files.map((w, i) => ({ abs: w.abs, keep: keep[i]! }))), todo.totalBytes, this.stats.files - todo.files.length);
    todo.files.forEach((w, i) => {
      this.record(w.entry as ManifestEntry, results[i]!);
      if (this.o.pack !== undefined) (w.entry as ManifestEntry).stored = keep[i]!;
    });
    this.o.onProgress?.({ files: this.stats.files, bytes: this.stats.hashedBytes, totalBytes: todo.totalBytes });
    return lines;
  }

  /** A file's content as read into its entry (a size that moved since the walk is a warning). */
  private record(e: ManifestEntry, r: FileContent): void {
    if (r.size !== e.size) this.stats.warnings.push(`${e.path} changed size while it was read (${e.size} → ${r.size})`);
    e.sha256 = r.hex;
    e.size = r.size;
    e.kind = r.kind;
    this.stats.hashedBytes += r.size;
  }

  /** Without the addon (a diff of directories): each file hashed here, one after another. */
  private hashHere(todo: Todo): void {
    const scratch = Buffer.allocUnsafe(4 << 20);
    for (const w of todo.files) {
      let fd: number;
      try {
        fd = openNoAtime(w.abs);
      } catch (err) {
        throw vanished(w.abs, err);
      }
      try {
        this.record(w.entry as ManifestEntry, hashFd(fd, scratch));
      } catch (err) {
        if (err instanceof DatarootError) throw err;
        throw vanished(w.abs, err);
      } finally {
        closeSync(fd);
      }
      this.o.onProgress?.({ files: this.stats.files, bytes: this.stats.hashedBytes, totalBytes: todo.totalBytes });
    }
  }

  /**
   * Starts reading a batch of files on the addon's native threads: hashed, and stored in the pack
   * (when there is one) where the batch's keep byte says so. Progress is polled from the counters
   * the threads update. A file that cannot be read rejects with SNAPSHOT_SOURCE_CHANGED naming it.
   */
  private async startNative(batch: FileBatch, totalBytes: number, filesBefore: number, live?: LiveResults): Promise<FileContent[]> {
    const o = this.o;
    const progress = new Float64Array(2);
    const timer =
      o.onProgress !== undefined ? setInterval(() => o.onProgress!({ files: filesBefore + progress[0]!, bytes: progress[1]!, totalBytes }), 100) : undefined;
    try {
      if (o.pack !== undefined) return await o.pack.files(batch, progress, live);
      const r = await packFiles(
        batch,
        undefined,
        { tables: [], stride: 32 },
        { level: 1, threads: contentThreads(), progress, ...(live !== undefined ? { live } : {}) },
      );
      return r.results.map((f) => ({ hex: f.sha256, size: f.size, kind: f.kind }));
    } catch (err) {
      if (err instanceof DatarootError) throw err;
      const at = (err as { index?: number }).index;
      throw vanished(at !== undefined ? batchPath(batch, at) : '(a file of the tree)', err);
    } finally {
      if (timer !== undefined) clearInterval(timer);
    }
  }
}

/**
 * While the native threads read a first snapshot's contents, this thread writes the manifest's
 * two sections: the volatile lines at once, the identity lines of the entries that are not files
 * read at once too, and those of the files as their results come in, put together in walk order
 * as they complete. What is left when the run ends is little, so the manifest is ready soon after
 * the last file. Rejects as the run does. (Empty when some entry is carried from a previous
 * snapshot: then manifestOf writes the lines.)
 */
async function linesAhead(walked: Walked[], todo: Todo, early: EarlyRead, stored: boolean): Promise<ManifestLinesAhead> {
  const identity = new Array<string | undefined>(walked.length);
  const volatile: string[] = [];
  const reading = new Set(todo.at);
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
  // identity[emitted, ready) are lines not yet put together; ready only moves forward, so each
  // line is looked at once however often the results are polled.
  let emitted = 0;
  let ready = 0;
  const emit = (all: boolean): void => {
    while (ready < walked.length && identity[ready] !== undefined) ready++;
    if (ready - emitted >= 2000 || (all && ready > emitted)) {
      parts.push(Buffer.from(`${identity.slice(emitted, ready).join('\n')}\n`));
      identity.fill(undefined, emitted, ready);
      emitted = ready;
    }
  };
  const volatileText = allFull ? Buffer.from(volatile.join('')) : undefined;
  let settled = false;
  early.results.then(
    () => (settled = true),
    () => (settled = true),
  );
  let next = 0;
  const take = (): void => {
    for (; next < todo.files.length && early.live.done(next); next++) {
      const r = early.live.result(next);
      const e = todo.files[next]!.entry as ManifestEntry;
      e.sha256 = r.sha256;
      e.size = r.size;
      e.kind = r.kind;
      if (stored) e.stored = true;
      identity[todo.at[next]!] = identityLine(e);
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

// ---- small helpers ----

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

interface Stat {
  rawMode: number;
  type: EntryType;
  size: number;
  nlink: number;
  mtime: string;
  atime: string;
  ctime: string;
  ino: string;
  dev: string;
}

/** Entry i of a listing: its lstat as the manifest records it. */
function statOf(L: DirListing, i: number): Stat {
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

/** Child k of a directory listing: its name as the manifest writes it, its bytes, and whether they are UTF-8. */
function childName(c: { listing?: DirListing; names?: Buffer[] }, k: number): { name: string; bytes: () => Buffer; utf8: boolean } {
  if (c.listing === undefined) {
    const b = c.names![k]!;
    const utf8 = isUtf8(b);
    return { name: b.toString(utf8 ? 'utf8' : 'latin1'), bytes: () => b, utf8 };
  }
  const L = c.listing;
  const b = L.buf;
  const s0 = L.nameStart(k);
  const s1 = L.nameEnd(k);
  let utf8 = true;
  for (let j = s0; j < s1; j++) {
    if (b[j]! >= 0x80) {
      utf8 = isUtf8(b.subarray(s0, s1));
      break;
    }
  }
  return { name: b.toString(utf8 ? 'utf8' : 'latin1', s0, s1), bytes: () => L.name(k), utf8 };
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

/** A volatile line without its access time (reading a file changes that and nothing else). */
function withoutAtime(line: string): string {
  const a = line.indexOf('","');
  const b = line.indexOf('","', a + 3);
  return a < 0 || b < 0 ? line : line.slice(0, a) + line.slice(b);
}

/** Opens a file to read without touching its access time where the kernel allows it. */
function openNoAtime(abs: string | Buffer): number {
  // O_NONBLOCK: a path that became a FIFO since the walk must not block the open.
  let fd: number;
  try {
    fd = openSync(abs, constants.O_RDONLY | constants.O_NOATIME | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
    fd = openSync(abs, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
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

/** Entry i of a buffer of little-endian u64s, as a number. */
function u64At(b: Buffer, i: number): number {
  return b.readUInt32LE(i * 8) + b.readUInt32LE(i * 8 + 4) * 0x100000000;
}

function vanished(abs: string | Buffer, e: unknown): DatarootError {
  const code = (e as NodeJS.ErrnoException).code?.replace(/^IO_/, '');
  return new DatarootError(
    'SNAPSHOT_SOURCE_CHANGED',
    `${abs.toString()} ${code === 'ENOENT' ? 'disappeared' : `cannot be read (${code ?? (e as Error).message})`} while the snapshot was taken`,
    { file: abs.toString() },
  );
}
