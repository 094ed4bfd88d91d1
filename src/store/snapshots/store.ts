import { createHash } from 'node:crypto';
import { closeSync, existsSync, lstatSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import { DatarootError } from '../../formats/errors.js';
import { CHUNK_ENTRY, decodeChunk, decodeRecordHead, METHOD_RAW, METHOD_ZSTD, METHOD_ZSTD_SLICE, RECORD_HEAD, type Chunk } from '../../formats/snapstore/pack.js';
import { decodeIndex, IDX_ENTRY, indexEntry, searchIndex, type PackIndex } from '../../formats/snapstore/index.js';
import {
  decodeRegistry,
  decodeStoreMarker,
  emptyRegistry,
  encodeRegistry,
  encodeStoreMarker,
  isPackId,
  isSnapshotName,
  manifestPathOf,
  STORE_FORMAT,
  STORE_VERSION,
  type RegisteredSnapshot,
  type Registry,
} from '../../formats/snapstore/registry.js';
import { fsyncDir, writeFileAtomicSync } from '../../io/atomic.js';
import { preadFully } from '../../io/pread.js';
import { zstdDecompress } from '../../io/zstd.js';
import { checkStoreDir, LIMITS, openStoreFile, readStoreFile } from './files.js';
import { decodeManifest, decodeManifestAsync, encodeManifestAsync, type ManifestLines } from './manifest.js';

export type { RegisteredSnapshot } from '../../formats/snapstore/registry.js';

/**
 * The snapshot store: a content-addressed, deduplicated store of data-root snapshots.
 *
 *   S/dataroot-store.json                     {"format":"dataroot-snapshot-store","version":2}
 *   S/registry.json                           the registered snapshots (rewritten atomically, last)
 *   S/snapshots/<name>.manifest               a snapshot's manifest (its sha256 is in the registry)
 *   S/packs/<id>.pack, S/packs/<id>.idx       objects (file contents by sha256), appended to one
 *                                             pack per snapshot run; the .idx, written after the
 *                                             pack is complete, makes them visible
 *
 * The formats are defined in formats/snapstore/ (pack.ts, index.ts, manifest.ts, registry.ts).
 * One pack per run rather than one file per object: creating files dominates on many
 * filesystems, and a run writes every new object once, sequentially. An object's sha256 is
 * checked whenever it is read back. A version 1 store is read as it is and becomes version 2
 * when a pack is added to it, so that an older dataroot refuses it plainly instead of failing on
 * a chunk method it does not know.
 *
 * A store may come from elsewhere: every name read from it is checked against its format before
 * it becomes a path, its files are opened without following symlinks, as regular files only,
 * and read whole only up to a bound (store/snapshots/files.ts).
 */
export class SnapshotStore {
  private index: { pack: string; ix: PackIndex }[] | undefined;
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
    if (existsSync(dir) && !statSync(dir).isDirectory()) throw new DatarootError('SNAPSHOT_NOT_A_STORE', `${dir} is not a directory`, { file: dir });
    if (!existsSync(marker) && lstatOrUndefined(marker) === undefined) {
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
      writeFileAtomicSync(join(dir, 'registry.json'), encodeRegistry(emptyRegistry()));
      writeFileAtomicSync(marker, encodeStoreMarker({ format: STORE_FORMAT, version: STORE_VERSION, created: new Date().toISOString() }));
    }
    const m = decodeStoreMarker(readStoreFile(marker, LIMITS.marker, () => new DatarootError('SNAPSHOT_NOT_A_STORE', `${marker} is missing`, { file: marker })).toString('utf8'), marker);
    checkStoreDir(join(dir, 'packs'));
    checkStoreDir(join(dir, 'snapshots'));
    return new SnapshotStore(dir, m.version, m.created);
  }

  /** Marks a version 1 store as version 2 (before a pack that may hold shared frames becomes visible). */
  upgrade(): void {
    if (this.version >= STORE_VERSION) return;
    writeFileAtomicSync(join(this.dir, 'dataroot-store.json'), encodeStoreMarker({ format: STORE_FORMAT, version: STORE_VERSION, created: this.created ?? new Date().toISOString() }));
    this.version = STORE_VERSION;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }

  registry(): Registry {
    const p = join(this.dir, 'registry.json');
    const text = readStoreFile(p, LIMITS.registry, () => new DatarootError('SNAPSHOT_STORE_CORRUPT', `${p} is missing`, { file: p })).toString('utf8');
    return decodeRegistry(text, p);
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
    writeFileAtomicSync(join(this.dir, 'registry.json'), encodeRegistry(r));
  }

  unregister(name: string): RegisteredSnapshot {
    const r = this.registry();
    const s = r.snapshots.find((x) => x.name === name);
    if (s === undefined) throw new DatarootError('SNAPSHOT_NOT_FOUND', `no snapshot named ${name} in ${this.dir}`, { file: this.dir });
    r.snapshots = r.snapshots.filter((x) => x !== s);
    writeFileAtomicSync(join(this.dir, 'registry.json'), encodeRegistry(r));
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
    // s.manifest was checked to be snapshots/<name>.manifest when the registry was decoded
    const p = join(this.dir, s.manifest);
    const bytes = readStoreFile(p, LIMITS.manifest, () => new DatarootError('SNAPSHOT_MANIFEST_MISSING', `the manifest of ${s.name} (${p}) is missing`, { file: p }));
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
    if (!isSnapshotName(name)) throw new DatarootError('USAGE_BAD_SNAPSHOT_NAME', `snapshot name ${JSON.stringify(name)}: use letters, digits, ".", "_" and "-"`);
    const rel = manifestPathOf(name);
    const bytes = await encodeManifestAsync(manifest);
    writeFileAtomicSync(join(this.dir, rel), bytes);
    return { path: rel, sha256: sha256Hex(bytes) };
  }

  removeManifest(s: Pick<RegisteredSnapshot, 'name'>): void {
    if (!isSnapshotName(s.name)) throw new DatarootError('SNAPSHOT_STORE_CORRUPT', `${JSON.stringify(s.name)} is not a snapshot name`);
    rmSync(join(this.dir, manifestPathOf(s.name)), { force: true });
  }

  /** The pack ids of packs/ that have a file with `ext` (names of another shape are not the store's). */
  packsWith(ext: '.idx' | '.pack'): string[] {
    return readdirSync(join(this.dir, 'packs'))
      .filter((n) => n.endsWith(ext) && isPackId(n.slice(0, -ext.length)))
      .map((n) => n.slice(0, -ext.length))
      .sort();
  }

  /**
   * The indexes of every complete pack (packs without an .idx are leftovers of interrupted runs):
   * sorted binary tables, searched in place (a store of a million objects loads in milliseconds).
   */
  private indexes(): { pack: string; ix: PackIndex }[] {
    if (this.index !== undefined) return this.index;
    this.index = this.packsWith('.idx').map((pack) => {
      const p = join(this.dir, 'packs', `${pack}.idx`);
      const b = readStoreFile(p, LIMITS.index, () => new DatarootError('SNAPSHOT_STORE_CORRUPT', `${p} is missing`, { file: p }));
      try {
        return { pack, ix: decodeIndex(b) };
      } catch (e) {
        throw new DatarootError('SNAPSHOT_STORE_CORRUPT', `pack index ${pack}.idx is damaged: ${(e as Error).message}`, { file: p });
      }
    });
    return this.index;
  }

  /** Forgets the pack indexes read so far (a pack was added): the next lookup reads them again. */
  reloadIndexes(): void {
    this.index = undefined;
  }

  /** The sorted index tables of the complete packs (IDX_ENTRY-byte entries starting with the sha256). */
  indexTables(): { tables: Buffer[]; stride: number } {
    return { tables: this.indexes().map(({ ix }) => Buffer.from(ix.table.buffer, ix.table.byteOffset, ix.count * IDX_ENTRY)), stride: IDX_ENTRY };
  }

  /** Where an object is, or undefined. */
  locate(hex: string): ObjectLoc | undefined {
    const key = Buffer.from(hex, 'hex');
    for (const { pack, ix } of this.indexes()) {
      const i = searchIndex(ix, key);
      if (i >= 0) {
        const e = indexEntry(ix, i);
        return { pack, offset: e.offset, size: e.size };
      }
    }
    return undefined;
  }

  /** Every object of every pack. */
  *allObjects(): Generator<[string, ObjectLoc]> {
    for (const { pack, ix } of this.indexes()) {
      for (let i = 0; i < ix.count; i++) {
        const e = indexEntry(ix, i);
        yield [e.sha256, { pack, offset: e.offset, size: e.size }];
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
      fd = openStoreFile(p, () => new DatarootError('SNAPSHOT_OBJECT_MISSING', `pack ${pack} is missing`, { file: p }));
      this.fds.set(pack, fd);
    }
    return fd;
  }

  private pread(pack: string, pos: number, len: number): Buffer {
    const b = Buffer.allocUnsafe(len);
    if (preadFully(this.fd(pack), b, pos) < len)
      throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `pack ${pack} ends inside an object`, { file: join(this.dir, 'packs', `${pack}.pack`) });
    return b;
  }

  /**
   * An object's content, chunk by chunk, its sha256 checked at the end (a coded error naming the
   * object, and `what`: the file it was read for, when it does not match).
   */
  *read(hex: string, what: string): Generator<Buffer> {
    const loc = this.locate(hex);
    if (loc === undefined) throw new DatarootError('SNAPSHOT_OBJECT_MISSING', `object ${hex} (for ${what}) is not in the store`, { file: what });
    const bad = (why: string): DatarootError => new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `object ${hex} (for ${what}) ${why}`, { file: what });
    let chunks: Chunk[];
    try {
      const head = decodeRecordHead(this.pread(loc.pack, loc.offset, RECORD_HEAD));
      // a record names its own object, the size the index gives, and no more chunks than bytes
      if (head.sha256 !== hex || head.size !== loc.size || head.chunks > Math.max(1, head.size)) throw bad('has a damaged record');
      const table = this.pread(loc.pack, loc.offset + RECORD_HEAD, head.chunks * CHUNK_ENTRY);
      chunks = Array.from({ length: head.chunks }, (_, i) => decodeChunk(table, i));
    } catch (e) {
      if (e instanceof DatarootError && e.message.includes(hex)) throw e;
      throw bad(`has a damaged record (${(e as Error).message})`);
    }
    const h = createHash('sha256');
    for (const c of chunks) {
      let out: Buffer;
      if (c.method === METHOD_ZSTD_SLICE) out = this.frame(loc.pack, c, bad).subarray(c.start, c.start + c.len);
      else {
        const data = this.pread(loc.pack, c.offset, c.stored);
        try {
          out = c.method === METHOD_RAW ? data : c.method === METHOD_ZSTD ? zstdDecompress(data, c.raw) : brotliDecompressSync(data, { maxOutputLength: Math.max(1, c.raw) });
        } catch {
          throw bad('does not decompress');
        }
        if (out.length !== c.raw) throw bad('has the wrong size');
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
  private frame(pack: string, c: Chunk, bad: (why: string) => DatarootError): Buffer {
    const key = `${pack}:${c.offset}`;
    const hit = this.frames.get(key);
    if (hit !== undefined) {
      this.frames.delete(key);
      this.frames.set(key, hit);
      return hit;
    }
    let out: Buffer;
    try {
      out = zstdDecompress(this.pread(pack, c.offset, c.stored), c.raw);
    } catch (e) {
      if (e instanceof DatarootError && e.code === 'SNAPSHOT_OBJECT_CORRUPT') throw e;
      throw bad('does not decompress');
    }
    this.frames.set(key, out);
    if (this.frames.size > FRAME_CACHE) this.frames.delete(this.frames.keys().next().value!);
    return out;
  }

  readAll(hex: string, what: string): Buffer {
    return Buffer.concat([...this.read(hex, what)]);
  }

  /** Packs whose objects no registered snapshot uses any more (and packs an interrupted run left without an index). */
  unusedPacks(used: Set<string>): string[] {
    const packs = new Map<string, boolean>();
    for (const [hex, loc] of this.allObjects()) packs.set(loc.pack, (packs.get(loc.pack) ?? false) || used.has(hex));
    return this.packsWith('.pack').filter((p) => packs.get(p) !== true);
  }

  removePack(pack: string): void {
    if (!isPackId(pack)) throw new DatarootError('SNAPSHOT_STORE_CORRUPT', `${JSON.stringify(pack)} is not a pack id`);
    const fd = this.fds.get(pack);
    if (fd !== undefined) {
      closeSync(fd);
      this.fds.delete(pack);
    }
    rmSync(join(this.dir, 'packs', `${pack}.idx`), { force: true });
    rmSync(join(this.dir, 'packs', `${pack}.pack`), { force: true });
    fsyncDir(join(this.dir, 'packs'));
    this.index = undefined;
  }

  packBytes(pack: string): number {
    if (!isPackId(pack)) return 0;
    return Number(lstatOrUndefined(join(this.dir, 'packs', `${pack}.pack`))?.size ?? 0);
  }
}

/** Where an object lives: its pack, the offset of its record, and its content size. */
export interface ObjectLoc {
  pack: string;
  offset: number;
  size: number;
}

/** Shared frames kept decompressed (about 1 MiB each). */
const FRAME_CACHE = 8;

function sha256Hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

function lstatOrUndefined(p: string): ReturnType<typeof lstatSync> | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

