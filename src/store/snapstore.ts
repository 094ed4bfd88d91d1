import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { CONTENT_KINDS, contentKind, decodeManifest, decodeManifestAsync, encodeManifestAsync, type ContentKind, type ManifestLines } from './manifest.js';
import { DatarootError } from '../formats/errors.js';
import { fsyncDir, writeFileAtomicSync } from '../io/atomic.js';
import { contentThreads, packFiles, zstdDecompress, type FileBatch, type LiveResults, type PackedRun } from '../io/native.js';
import { PackPool, ZSTD_LEVEL, type Piece } from '../io/packpool.js';

/**
 * The snapshot store: a content-addressed, deduplicated store of data-root snapshots.
 *
 *   S/dataroot-store.json                     {"format":"dataroot-snapshot-store","version":2}
 *   S/registry.json                           the registered snapshots (rewritten atomically, last)
 *   S/snapshots/<name>.manifest               a snapshot's manifest (store/manifest.ts; its sha256
 *                                             is kept in the registry)
 *   S/packs/<id>.pack, S/packs/<id>.idx       objects (file contents by sha256), appended to one
 *                                             pack per snapshot run; the .idx, written after the
 *                                             pack is complete, makes them visible
 *
 * One pack per run rather than one file per object: creating files dominates on many
 * filesystems, and a run writes every new object once, sequentially. Each object is stored in
 * chunks (4 MiB of content each), compressed with zstd (brotli without libzstd) when that saves
 * at least a tenth, raw otherwise; small objects may instead be slices of a zstd frame they share
 * (chunk method 3, since store version 2). An object's sha256 is checked whenever it is read back.
 * A version 1 store is read as it is and becomes version 2 when a pack is added to it, so that an
 * older dataroot refuses it plainly instead of failing on a chunk method it does not know.
 */

export const STORE_FORMAT = 'dataroot-snapshot-store';
/** The store version written; versions 1 (no shared frames) and 2 are read. */
export const STORE_VERSION = 2;
const PACK_MAGIC = Buffer.from('DRPACK1\n');
const IDX_MAGIC = Buffer.from('DRIDX1\n\0');
const IDX_ENTRY = 48;
export const CHUNK = 4 << 20;

export const METHOD_RAW = 0;
export const METHOD_ZSTD = 1;
export const METHOD_BROTLI = 2;
/**
 * A slice of a zstd frame that several small objects share: the chunk entry's offset and stored
 * size are the frame's, raw its decompressed size; bytes 25-27 hold the slice's start (u24) and
 * 28-31 its length (u32).
 */
export const METHOD_ZSTD_SLICE = 3;

/** Where an object lives: its pack, the offset of its record, and its content size. */
export interface ObjectLoc {
  pack: string;
  offset: number;
  size: number;
}

export interface RegisteredSnapshot {
  name: string;
  created: string;
  source: string;
  manifest: string;
  manifestSha256: string;
  entries: number;
  /** Bytes of file content the snapshot describes. */
  logicalBytes: number;
  /** Bytes of content that were new to the store (stored by this snapshot). */
  newBytes: number;
  /** Bytes those took in the packs (compressed). */
  storedBytes: number;
  packs: string[];
  options: { exclude: string[]; metadataOnly: string[]; live: boolean };
}

interface Registry {
  format: string;
  version: number;
  snapshots: RegisteredSnapshot[];
}

function sha256Hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export class SnapshotStore {
  private index: { pack: string; table: Buffer; count: number }[] | undefined;
  private readonly frames = new Map<string, Buffer>();
  private readonly fds = new Map<string, number>();

  private constructor(
    readonly dir: string,
    private version: number,
    private readonly created: string | undefined,
  ) {}

  /** Opens a store; with create, makes it when the directory is absent or empty. */
  static open(dir: string, opts: { create: boolean }): SnapshotStore {
    const marker = join(dir, 'dataroot-store.json');
    if (!existsSync(marker)) {
      const empty = !existsSync(dir) || readdirSync(dir).length === 0;
      if (!opts.create || !empty) {
        throw new DatarootError(
          'SNAPSHOT_NOT_A_STORE',
          existsSync(dir) ? `${dir} is not a dataroot snapshot store (no dataroot-store.json)${empty ? '' : ' and is not empty'}` : `snapshot store ${dir} does not exist`,
          { file: dir },
        );
      }
      mkdirSync(join(dir, 'packs'), { recursive: true });
      mkdirSync(join(dir, 'snapshots'), { recursive: true });
      writeFileAtomicSync(join(dir, 'registry.json'), JSON.stringify({ format: STORE_FORMAT, version: 1, snapshots: [] }));
      writeFileAtomicSync(marker, `${JSON.stringify({ format: STORE_FORMAT, version: STORE_VERSION, created: new Date().toISOString() })}\n`);
    }
    let m: { format?: string; version?: number; created?: string };
    try {
      m = JSON.parse(readFileSync(marker, 'utf8')) as typeof m;
    } catch {
      throw new DatarootError('SNAPSHOT_NOT_A_STORE', `${marker} is not JSON`, { file: marker });
    }
    if (m.format !== STORE_FORMAT) throw new DatarootError('SNAPSHOT_NOT_A_STORE', `${dir} is not a dataroot snapshot store`, { file: marker });
    if (m.version !== 1 && m.version !== STORE_VERSION) {
      throw new DatarootError('SNAPSHOT_NOT_A_STORE', `${dir} is a version ${String(m.version)} dataroot snapshot store; this dataroot reads versions 1 and ${STORE_VERSION}`, { file: marker });
    }
    return new SnapshotStore(dir, m.version, m.created);
  }

  /** Marks a version 1 store as version 2 (before a pack that may hold shared frames becomes visible). */
  upgrade(): void {
    if (this.version >= STORE_VERSION) return;
    writeFileAtomicSync(join(this.dir, 'dataroot-store.json'), `${JSON.stringify({ format: STORE_FORMAT, version: STORE_VERSION, created: this.created ?? new Date().toISOString() })}\n`);
    this.version = STORE_VERSION;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }

  registry(): Registry {
    const p = join(this.dir, 'registry.json');
    try {
      const r = JSON.parse(readFileSync(p, 'utf8')) as Registry;
      if (!Array.isArray(r.snapshots)) throw new Error('no snapshots list');
      return r;
    } catch (e) {
      throw new DatarootError('SNAPSHOT_STORE_CORRUPT', `${p} is not a snapshot registry (${(e as Error).message})`, { file: p });
    }
  }

  snapshots(): RegisteredSnapshot[] {
    return this.registry().snapshots;
  }

  find(name: string): RegisteredSnapshot {
    const s = this.snapshots().find((x) => x.name === name);
    if (s === undefined) throw new DatarootError('SNAPSHOT_NOT_FOUND', `no snapshot named ${name} in ${this.dir}`, { file: this.dir });
    return s;
  }

  /** Registers a snapshot (the last step of taking one: until then nothing names its manifest). */
  register(s: RegisteredSnapshot): void {
    const r = this.registry();
    if (r.snapshots.some((x) => x.name === s.name)) throw new DatarootError('SNAPSHOT_EXISTS', `a snapshot named ${s.name} exists in ${this.dir}`);
    r.snapshots.push(s);
    writeFileAtomicSync(join(this.dir, 'registry.json'), `${JSON.stringify(r, null, 1)}\n`);
  }

  unregister(name: string): RegisteredSnapshot {
    const r = this.registry();
    const s = r.snapshots.find((x) => x.name === name);
    if (s === undefined) throw new DatarootError('SNAPSHOT_NOT_FOUND', `no snapshot named ${name} in ${this.dir}`, { file: this.dir });
    r.snapshots = r.snapshots.filter((x) => x !== s);
    writeFileAtomicSync(join(this.dir, 'registry.json'), `${JSON.stringify(r, null, 1)}\n`);
    return s;
  }

  /** The manifest of a snapshot, checked against the sha256 the registry recorded. */
  readManifest(s: RegisteredSnapshot): ManifestLines {
    const { bytes, p } = this.manifestBytes(s);
    return this.decoded(p, () => decodeManifest(bytes, s.name));
  }

  /**
   * The same, decompressed on the thread pool: a diff reads its two sides at once; with
   * `withVolatile` the volatile lines are decompressed too, at the same time as the rest.
   */
  async readManifestAsync(s: RegisteredSnapshot, withVolatile = false): Promise<ManifestLines> {
    const { bytes, p } = this.manifestBytes(s);
    return this.decoded(p, () => decodeManifestAsync(bytes, s.name, withVolatile));
  }

  private manifestBytes(s: RegisteredSnapshot): { bytes: Buffer; p: string } {
    const p = join(this.dir, s.manifest);
    let bytes: Buffer;
    try {
      bytes = readFileSync(p);
    } catch {
      throw new DatarootError('SNAPSHOT_MANIFEST_MISSING', `the manifest of ${s.name} (${p}) is missing`, { file: p });
    }
    if (sha256Hex(bytes) !== s.manifestSha256) throw new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', `the manifest of ${s.name} does not match its recorded sha256 (the file was changed or damaged)`, { file: p });
    return { bytes, p };
  }

  /** Runs a decode, naming the manifest file in its error. */
  private decoded<T>(p: string, decode: () => T): T {
    const named = (e: unknown): never => {
      if (e instanceof DatarootError) throw new DatarootError(e.code, e.message, { file: p });
      throw e;
    };
    try {
      const r = decode();
      return r instanceof Promise ? (r.catch(named) as T) : r;
    } catch (e) {
      return named(e);
    }
  }

  /** Writes a manifest (not yet registered); returns its store-relative path and sha256. */
  async writeManifest(name: string, manifest: ManifestLines): Promise<{ path: string; sha256: string }> {
    const rel = `snapshots/${name}.manifest`;
    const bytes = await encodeManifestAsync(manifest);
    writeFileAtomicSync(join(this.dir, rel), bytes);
    return { path: rel, sha256: sha256Hex(bytes) };
  }

  removeManifest(s: RegisteredSnapshot): void {
    rmSync(join(this.dir, s.manifest), { force: true });
  }

  /**
   * The indexes of every complete pack (packs without an .idx are leftovers of interrupted runs):
   * sorted binary tables, searched in place (a store of a million objects loads in milliseconds).
   */
  private indexes(): { pack: string; table: Buffer; count: number }[] {
    if (this.index !== undefined) return this.index;
    const out: { pack: string; table: Buffer; count: number }[] = [];
    const dir = join(this.dir, 'packs');
    for (const n of readdirSync(dir).sort()) {
      if (!n.endsWith('.idx')) continue;
      const b = readFileSync(join(dir, n));
      if (b.length < 16 || !b.subarray(0, 8).equals(IDX_MAGIC) || b.length !== 16 + Number(b.readBigUInt64LE(8)) * IDX_ENTRY) {
        throw new DatarootError('SNAPSHOT_STORE_CORRUPT', `pack index ${n} is damaged`, { file: join(dir, n) });
      }
      out.push({ pack: n.slice(0, -4), table: b.subarray(16), count: Number(b.readBigUInt64LE(8)) });
    }
    this.index = out;
    return out;
  }

  /** Forgets the pack indexes read so far (a pack was added): the next lookup reads them again. */
  reloadIndexes(): void {
    this.index = undefined;
  }

  /** The sorted index tables of the complete packs (48-byte entries: sha256, offset, size). */
  indexTables(): Buffer[] {
    return this.indexes().map((ix) => ix.table.subarray(0, ix.count * IDX_ENTRY));
  }

  /** Where an object is, or undefined. */
  locate(hex: string): ObjectLoc | undefined {
    const key = Buffer.from(hex, 'hex');
    for (const ix of this.indexes()) {
      let lo = 0;
      let hi = ix.count - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        const c = Buffer.compare(ix.table.subarray(mid * IDX_ENTRY, mid * IDX_ENTRY + 32), key);
        if (c === 0) return { pack: ix.pack, offset: Number(ix.table.readBigUInt64LE(mid * IDX_ENTRY + 32)), size: Number(ix.table.readBigUInt64LE(mid * IDX_ENTRY + 40)) };
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
      }
    }
    return undefined;
  }

  /** Every object of every pack. */
  *allObjects(): Generator<[string, ObjectLoc]> {
    for (const ix of this.indexes()) {
      for (let i = 0; i < ix.count; i++) {
        const at = i * IDX_ENTRY;
        yield [ix.table.subarray(at, at + 32).toString('hex'), { pack: ix.pack, offset: Number(ix.table.readBigUInt64LE(at + 32)), size: Number(ix.table.readBigUInt64LE(at + 40)) }];
      }
    }
  }

  has(hex: string): boolean {
    return this.locate(hex) !== undefined;
  }

  private fd(pack: string): number {
    let fd = this.fds.get(pack);
    if (fd === undefined) {
      const p = join(this.dir, 'packs', `${pack}.pack`);
      try {
        fd = openSync(p, 'r');
      } catch {
        throw new DatarootError('SNAPSHOT_OBJECT_MISSING', `pack ${pack} is missing`, { file: p });
      }
      this.fds.set(pack, fd);
    }
    return fd;
  }

  private pread(pack: string, pos: number, len: number): Buffer {
    const b = Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      const n = readSync(this.fd(pack), b, done, len - done, pos + done);
      if (n === 0) throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `pack ${pack} ends inside an object`, { file: join(this.dir, 'packs', `${pack}.pack`) });
      done += n;
    }
    return b;
  }

  /**
   * An object's content, chunk by chunk, its sha256 checked at the end (a coded error naming the
   * object, and `what`: the file it was read for, when it does not match).
   */
  *read(hex: string, what: string): Generator<Buffer> {
    const loc = this.locate(hex);
    if (loc === undefined) throw new DatarootError('SNAPSHOT_OBJECT_MISSING', `object ${hex} (for ${what}) is not in the store`, { file: what });
    const head = this.pread(loc.pack, loc.offset, RECORD_HEAD);
    if (head.subarray(0, 32).toString('hex') !== hex) throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `the record of object ${hex} (for ${what}) is damaged`, { file: what });
    const chunks = head.readUInt32LE(40);
    if (chunks > 1 << 22) throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `the record of object ${hex} (for ${what}) is damaged`, { file: what });
    const table = this.pread(loc.pack, loc.offset + RECORD_HEAD, chunks * CHUNK_ENTRY);
    const h = createHash('sha256');
    for (let i = 0; i < chunks; i++) {
      const e = i * CHUNK_ENTRY;
      const at = Number(table.readBigUInt64LE(e));
      const stored = Number(table.readBigUInt64LE(e + 8));
      const raw = Number(table.readBigUInt64LE(e + 16));
      const method = table[e + 24];
      if (stored > 2 * CHUNK + 1024 || raw > CHUNK) throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `object ${hex} (for ${what}) has an impossible chunk`, { file: what });
      let out: Buffer;
      if (method === METHOD_ZSTD_SLICE) {
        const start = table.readUIntLE(e + 25, 3);
        const len = table.readUInt32LE(e + 28);
        if (start + len > raw) throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `object ${hex} (for ${what}) has an impossible chunk`, { file: what });
        out = this.frame(loc.pack, at, stored, raw, hex, what).subarray(start, start + len);
      } else {
        const data = this.pread(loc.pack, at, stored);
        try {
          if (method !== METHOD_RAW && method !== METHOD_ZSTD && method !== METHOD_BROTLI) throw new Error('unknown method');
          out = method === METHOD_RAW ? data : method === METHOD_ZSTD ? zstdDecompress(data, raw) : brotliDecompressSync(data);
        } catch {
          throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `object ${hex} (for ${what}) does not decompress`, { file: what });
        }
        if (out.length !== raw) throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `object ${hex} (for ${what}) has the wrong size`, { file: what });
      }
      h.update(out);
      yield out;
    }
    if (h.digest('hex') !== hex) throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `object ${hex} does not match its sha256: the stored copy of ${what} is damaged`, { file: what });
  }

  /**
   * A shared frame of small objects, decompressed; the last few are kept, since a restore reads
   * the objects of one frame one after another.
   */
  private frame(pack: string, at: number, stored: number, raw: number, hex: string, what: string): Buffer {
    const key = `${pack}:${at}`;
    const hit = this.frames.get(key);
    if (hit !== undefined) {
      this.frames.delete(key);
      this.frames.set(key, hit);
      return hit;
    }
    let out: Buffer;
    try {
      out = zstdDecompress(this.pread(pack, at, stored), raw);
    } catch (e) {
      if (e instanceof DatarootError && e.code === 'SNAPSHOT_OBJECT_CORRUPT') throw e;
      throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `object ${hex} (for ${what}) does not decompress`, { file: what });
    }
    this.frames.set(key, out);
    if (this.frames.size > FRAME_CACHE) this.frames.delete(this.frames.keys().next().value!);
    return out;
  }

  readAll(hex: string, what: string): Buffer {
    return Buffer.concat([...this.read(hex, what)]);
  }

  /** A new pack for this run's objects. */
  newPack(level = ZSTD_LEVEL): PackWriter {
    return new PackWriter(this, level);
  }

  /** Packs whose objects no registered snapshot uses any more. */
  unusedPacks(used: Set<string>): string[] {
    const packs = new Map<string, boolean>();
    for (const [hex, loc] of this.allObjects()) packs.set(loc.pack, (packs.get(loc.pack) ?? false) || used.has(hex));
    const dir = join(this.dir, 'packs');
    const all = new Set(readdirSync(dir).filter((n) => n.endsWith('.pack')).map((n) => n.slice(0, -5)));
    return [...all].filter((p) => packs.get(p) !== true);
  }

  removePack(pack: string): void {
    const fd = this.fds.get(pack);
    if (fd !== undefined) {
      closeSync(fd);
      this.fds.delete(pack);
    }
    rmSync(join(this.dir, 'packs', `${pack}.idx`), { force: true });
    rmSync(join(this.dir, 'packs', `${pack}.pack`), { force: true });
    this.index = undefined;
  }

  packBytes(pack: string): number {
    try {
      return statSync(join(this.dir, 'packs', `${pack}.pack`)).size;
    } catch {
      return 0;
    }
  }
}

/** Shared frames kept decompressed (about 1 MiB each). */
const FRAME_CACHE = 8;

/** Record head: sha256 (32), content size u64 (8), chunk count u32 (4), reserved (4); then the chunk table. */
const RECORD_HEAD = 48;
/** Chunk table entry: offset u64, stored size u64, raw size u64, method u8, reserved (7). */
const CHUNK_ENTRY = 32;

/**
 * Appends objects to one pack. File contents are read straight into the slots of a PackPool and
 * hashed on this thread while worker threads compress and write the slots; small files share a
 * slot, large ones take one slot per chunk. An object's head and chunk table are written at the
 * end; `finish()` then writes the index that makes the pack's objects visible.
 */
export class PackWriter {
  readonly id = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  readonly path: string;
  private readonly fd: number;
  private readonly pool: PackPool;
  private cur: Buffer | undefined;
  private pos = 0;
  private pieces: Piece[] = [];
  private nextPiece = 0;
  /** Objects written by this run: content size and the piece of each chunk. */
  private readonly pending = new Map<string, { size: number; pieces: number[] }>();
  /** The native run's outcome (files()): its pack is written and synced but for the index. */
  private sealed: PackedRun | undefined;
  private readonly objects: Record<string, [number, number]> = {};
  private readonly scratch = Buffer.allocUnsafe(CHUNK);
  /** Chunks written for content the store turned out to have. */
  private readonly wastedPieces: number[] = [];
  storedBytes = 0;
  newBytes = 0;
  count = 0;

  constructor(
    private readonly store: SnapshotStore,
    /** zstd level of the contents (ZSTD_LEVEL unless the user chose). */
    private readonly level = ZSTD_LEVEL,
  ) {
    this.path = join(store.dir, 'packs', `${this.id}.pack`);
    this.fd = openSync(this.path, 'wx+', 0o644);
    writeSync(this.fd, PACK_MAGIC);
    this.pool = new PackPool(this.path, PACK_MAGIC.length, CHUNK, level);
  }

  /** Whether this run already has the object. */
  has(hex: string): boolean {
    return this.pending.has(hex);
  }

  private flush(): void {
    if (this.cur !== undefined) this.pool.submit(this.cur, this.pieces);
    this.cur = undefined;
    this.pieces = [];
    this.pos = 0;
  }

  /**
   * Reads up to max bytes. A short read that brings exactly the size lstat gave is taken as the
   * end of the file (it saves a read per file); any other short read reads on to a 0.
   */
  private readInto(fd: number, buf: Buffer, at: number, max: number, expected: number): number {
    let n = 0;
    while (n < max) {
      const k = readSync(fd, buf, at + n, max - n, null);
      n += k;
      if (k === 0 || (n < max && n === expected)) break;
    }
    return n;
  }

  /**
   * Reads a file, hashes it, and (when `keep` and the store lacks it) adds it to the pack.
   * `fd` is open for reading at offset 0; the caller closes it. Returns the sha256 and the size read.
   */
  async file(fd: number, size: number, keep: boolean): Promise<{ hex: string; size: number; kind: ContentKind }> {
    if (size < CHUNK) {
      if (this.cur === undefined || this.pos + size + 1 > CHUNK) {
        this.flush();
        this.cur = await this.pool.slot();
      }
      // Read one byte more than expected: a file that grew is read again as a large one.
      const n = this.readInto(fd, this.cur, this.pos, Math.min(size + 1, CHUNK - this.pos), size);
      if (n <= size) {
        const content = this.cur.subarray(this.pos, this.pos + n);
        const hex = createHash('sha256').update(content).digest('hex');
        const kind = contentKind(content.subarray(0, 8192));
        if (keep && !this.store.has(hex) && !this.pending.has(hex)) {
          const id = this.nextPiece++;
          if (n > 0) this.pieces.push({ id, off: this.pos, len: n });
          this.pending.set(hex, { size: n, pieces: n > 0 ? [id] : [] });
          this.pos += n;
        }
        return { hex, size: n, kind };
      }
    }
    // Large (or growing) files, when kept: read once, chunk by chunk into slots, hashed on the way.
    // Content that turns out to be in the store already has then been written for nothing; its
    // chunks stay in the pack unreferenced (rare: an unchanged file is not read at all).
    const h = createHash('sha256');
    let total = 0;
    let kind: ContentKind = 'empty';
    const ids: number[] = [];
    for (;;) {
      let buf: Buffer = this.scratch;
      if (keep) {
        this.flush();
        buf = await this.pool.slot();
      }
      const k = readSyncAtInto(fd, buf, total, CHUNK);
      if (k === 0) {
        if (keep) this.pool.release(buf);
        break;
      }
      const data = buf.subarray(0, k);
      if (total === 0) kind = contentKind(data.subarray(0, Math.min(k, 8192)));
      h.update(data);
      total += k;
      if (keep) {
        const id = this.nextPiece++;
        ids.push(id);
        this.pool.submit(buf, [{ id, off: 0, len: k }]);
      }
      if (k < CHUNK) break;
    }
    const hex = h.digest('hex');
    if (keep && !this.store.has(hex) && !this.pending.has(hex)) this.pending.set(hex, { size: total, pieces: ids });
    else if (keep) this.wastedPieces.push(...ids);
    return { hex, size: total, kind };
  }

  /**
   * The native pipeline (io/native packFiles, when packFilesAvailable()): reads, hashes and adds
   * to the pack a whole batch of files at once, its keep bytes saying which are stored (the others
   * are only hashed). Not mixed with file() in one pack. A file that cannot be read rejects with an
   * error carrying its `index` in the list.
   */
  async files(batch: FileBatch, progress?: Float64Array, live?: LiveResults): Promise<{ hex: string; size: number; kind: ContentKind }[]> {
    if (this.sealed !== undefined || this.nextPiece > 0) throw new Error('PackWriter.files: one native run a pack, not mixed with file()');
    const start = Math.ceil(this.pool.end / 4096) * 4096;
    const r = await packFiles(batch, { path: this.path, start }, this.store.indexTables(), {
      level: this.level,
      threads: contentThreads(),
      ...(progress !== undefined ? { progress } : {}),
      ...(live !== undefined ? { live } : {}),
    });
    this.pool.advanceTo(r.end);
    this.sealed = r;
    return r.results.map((f) => ({ hex: f.sha256, size: f.size, kind: CONTENT_KINDS[f.kind] ?? 'binary' }));
  }

  /** Writes the index of a pack the native run filled and sealed. */
  private finishSealed(r: PackedRun): void {
    closeSync(this.fd);
    this.count = r.objects;
    this.newBytes = r.newBytes;
    this.storedBytes = r.storedBytes;
    if (r.objects === 0) {
      rmSync(this.path, { force: true });
      return;
    }
    this.store.upgrade();
    const head = Buffer.alloc(16);
    IDX_MAGIC.copy(head, 0);
    head.writeBigUInt64LE(BigInt(r.objects), 8);
    writeFileAtomicSync(join(this.store.dir, 'packs', `${this.id}.idx`), Buffer.concat([head, r.index]));
    fsyncDir(join(this.store.dir, 'packs'));
    this.store.reloadIndexes();
  }

  /** Waits for the workers, writes every object's head and chunk table, syncs, and writes the index. */
  async finish(): Promise<void> {
    if (this.sealed !== undefined) return this.finishSealed(this.sealed);
    this.flush();
    await this.pool.drain();
    await this.pool.close();
    const byId = new Map(this.pool.results.map((r) => [r.id, r]));
    // Every object's head and chunk table, laid out in one buffer and written with one write.
    let headBytes = 0;
    for (const o of this.pending.values()) headBytes += RECORD_HEAD + o.pieces.length * CHUNK_ENTRY;
    const heads = Buffer.alloc(headBytes);
    const base = this.pool.reserve(headBytes);
    let at = 0;
    for (const [hex, o] of this.pending) {
      const start = at;
      heads.write(hex, at, 'hex');
      heads.writeBigUInt64LE(BigInt(o.size), at + 32);
      heads.writeUInt32LE(o.pieces.length, at + 40);
      at += RECORD_HEAD;
      for (const id of o.pieces) {
        const r = byId.get(id);
        if (r === undefined) throw new DatarootError('SNAPSHOT_WRITE_FAILED', `a chunk of ${hex} was not written`);
        heads.writeBigUInt64LE(BigInt(r.offset), at);
        heads.writeBigUInt64LE(BigInt(r.stored), at + 8);
        heads.writeBigUInt64LE(BigInt(r.raw), at + 16);
        heads[at + 24] = r.method;
        this.storedBytes += r.stored;
        at += CHUNK_ENTRY;
      }
      this.storedBytes += at - start;
      this.objects[hex] = [base + start, o.size];
      this.newBytes += o.size;
      this.count++;
    }
    let off = 0;
    while (off < heads.length) off += writeSync(this.fd, heads, off, heads.length - off, base + off);
    fsyncSync(this.fd);
    closeSync(this.fd);
    if (this.count === 0) {
      rmSync(this.path, { force: true });
      return;
    }
    this.store.upgrade();
    // The index: magic, count, then (sha256, offset, size) sorted by sha256.
    const keys = Object.keys(this.objects).sort();
    const idx = Buffer.alloc(16 + keys.length * IDX_ENTRY);
    IDX_MAGIC.copy(idx, 0);
    idx.writeBigUInt64LE(BigInt(keys.length), 8);
    keys.forEach((hex, i) => {
      const at = 16 + i * IDX_ENTRY;
      Buffer.from(hex, 'hex').copy(idx, at);
      idx.writeBigUInt64LE(BigInt(this.objects[hex]![0]), at + 32);
      idx.writeBigUInt64LE(BigInt(this.objects[hex]![1]), at + 40);
    });
    writeFileAtomicSync(join(this.store.dir, 'packs', `${this.id}.idx`), idx);
    fsyncDir(join(this.store.dir, 'packs'));
    this.store.reloadIndexes();
  }

  /** Drops the pack (a snapshot that failed). */
  async abort(): Promise<void> {
    try {
      await this.pool.drain();
    } catch {
      /* failing anyway */
    }
    await this.pool.close();
    try {
      closeSync(this.fd);
    } catch {
      /* closed */
    }
    rmSync(this.path, { force: true });
    rmSync(join(this.store.dir, 'packs', `${this.id}.idx`), { force: true });
  }
}

function readSyncAtInto(fd: number, buf: Buffer, pos: number, len: number): number {
  let n = 0;
  while (n < len) {
    const k = readSync(fd, buf, n, len - n, pos + n);
    if (k === 0) break;
    n += k;
  }
  return n;
}
