import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync, constants as zc, gunzipSync, gzipSync } from 'node:zlib';
import { DatarootError } from '../formats/errors.js';
import { fsyncDir, writeFileAtomicSync } from '../io/atomic.js';
import { zstdAvailable, zstdCompressAsync, zstdDecompress } from '../io/native.js';

/**
 * The snapshot store: a content-addressed, deduplicated store of data-root snapshots.
 *
 *   S/dataroot-store.json                     {"format":"dataroot-snapshot-store","version":1}
 *   S/registry.json                           the registered snapshots (rewritten atomically, last)
 *   S/snapshots/<name>.json.gz                a snapshot's manifest (sha256 kept in the registry)
 *   S/packs/<id>.pack, S/packs/<id>.idx       objects (file contents by sha256), appended to one
 *                                             pack per snapshot run; the .idx, written after the
 *                                             pack is complete, makes them visible
 *
 * One pack per run rather than one file per object: creating files dominates on many
 * filesystems, and a run writes every new object once, sequentially. Each object is stored in
 * chunks (4 MiB of content each), compressed with zstd (brotli without libzstd) when that saves
 * at least a tenth, raw otherwise; its sha256 is checked whenever it is read back.
 */

export const STORE_FORMAT = 'dataroot-snapshot-store';
const PACK_MAGIC = Buffer.from('DRPACK1\n');
export const CHUNK = 4 << 20;

export const METHOD_RAW = 0;
export const METHOD_ZSTD = 1;
export const METHOD_BROTLI = 2;

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
  private index: Map<string, ObjectLoc> | undefined;
  private readonly fds = new Map<string, number>();

  private constructor(readonly dir: string) {}

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
      writeFileAtomicSync(marker, `${JSON.stringify({ format: STORE_FORMAT, version: 1, created: new Date().toISOString() })}\n`);
    }
    let m: { format?: string; version?: number };
    try {
      m = JSON.parse(readFileSync(marker, 'utf8')) as typeof m;
    } catch {
      throw new DatarootError('SNAPSHOT_NOT_A_STORE', `${marker} is not JSON`, { file: marker });
    }
    if (m.format !== STORE_FORMAT || m.version !== 1) throw new DatarootError('SNAPSHOT_NOT_A_STORE', `${dir} is not a version 1 dataroot snapshot store`, { file: marker });
    return new SnapshotStore(dir);
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

  /** The manifest file of a snapshot, checked against the sha256 the registry recorded. */
  readManifest(s: RegisteredSnapshot): unknown {
    const p = join(this.dir, s.manifest);
    let bytes: Buffer;
    try {
      bytes = readFileSync(p);
    } catch {
      throw new DatarootError('SNAPSHOT_MANIFEST_MISSING', `the manifest of ${s.name} (${p}) is missing`, { file: p });
    }
    if (sha256Hex(bytes) !== s.manifestSha256) throw new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', `the manifest of ${s.name} does not match its recorded sha256 (the file was changed or damaged)`, { file: p });
    try {
      return JSON.parse(gunzipSync(bytes).toString('utf8'));
    } catch (e) {
      throw new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', `the manifest of ${s.name} cannot be read (${(e as Error).message})`, { file: p });
    }
  }

  /** Writes a manifest (not yet registered); returns its store-relative path and sha256. */
  writeManifest(name: string, manifest: unknown): { path: string; sha256: string } {
    const rel = `snapshots/${name}.json.gz`;
    const bytes = gzipSync(Buffer.from(JSON.stringify(manifest)));
    writeFileAtomicSync(join(this.dir, rel), bytes);
    return { path: rel, sha256: sha256Hex(bytes) };
  }

  removeManifest(s: RegisteredSnapshot): void {
    rmSync(join(this.dir, s.manifest), { force: true });
  }

  /** Every object of every complete pack (packs without an .idx are leftovers of interrupted runs). */
  objects(): Map<string, ObjectLoc> {
    if (this.index !== undefined) return this.index;
    const idx = new Map<string, ObjectLoc>();
    const dir = join(this.dir, 'packs');
    for (const n of readdirSync(dir)) {
      if (!n.endsWith('.idx')) continue;
      const pack = n.slice(0, -4);
      let doc: { objects?: Record<string, [number, number]> };
      try {
        doc = JSON.parse(readFileSync(join(dir, n), 'utf8')) as typeof doc;
      } catch {
        throw new DatarootError('SNAPSHOT_STORE_CORRUPT', `pack index ${n} is not JSON`, { file: join(dir, n) });
      }
      for (const [hex, [offset, size]] of Object.entries(doc.objects ?? {})) if (!idx.has(hex)) idx.set(hex, { pack, offset, size });
    }
    this.index = idx;
    return idx;
  }

  has(hex: string): boolean {
    return this.objects().has(hex);
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
    const loc = this.objects().get(hex);
    if (loc === undefined) throw new DatarootError('SNAPSHOT_OBJECT_MISSING', `object ${hex} (for ${what}) is not in the store`, { file: what });
    const head = this.pread(loc.pack, loc.offset, RECORD_HEAD);
    if (head.subarray(0, 32).toString('hex') !== hex) throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `the record of object ${hex} (for ${what}) is damaged`, { file: what });
    const chunks = head.readUInt32LE(40);
    if (chunks > 1 << 22) throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `the record of object ${hex} (for ${what}) is damaged`, { file: what });
    const table = this.pread(loc.pack, loc.offset + RECORD_HEAD, chunks * CHUNK_ENTRY);
    const h = createHash('sha256');
    for (let i = 0; i < chunks; i++) {
      const at = Number(table.readBigUInt64LE(i * CHUNK_ENTRY));
      const stored = Number(table.readBigUInt64LE(i * CHUNK_ENTRY + 8));
      const raw = Number(table.readBigUInt64LE(i * CHUNK_ENTRY + 16));
      const method = table[i * CHUNK_ENTRY + 24];
      if (stored > 2 * CHUNK + 1024 || raw > CHUNK) throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `object ${hex} (for ${what}) has an impossible chunk`, { file: what });
      const data = this.pread(loc.pack, at, stored);
      let out: Buffer;
      try {
        out = method === METHOD_RAW ? data : method === METHOD_ZSTD ? zstdDecompress(data, raw) : brotliDecompressSync(data);
      } catch {
        throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `object ${hex} (for ${what}) does not decompress`, { file: what });
      }
      if (out.length !== raw) throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `object ${hex} (for ${what}) has the wrong size`, { file: what });
      h.update(out);
      yield out;
    }
    if (h.digest('hex') !== hex) throw new DatarootError('SNAPSHOT_OBJECT_CORRUPT', `object ${hex} does not match its sha256: the stored copy of ${what} is damaged`, { file: what });
  }

  readAll(hex: string, what: string): Buffer {
    return Buffer.concat([...this.read(hex, what)]);
  }

  /** A new pack for this run's objects. */
  newPack(): PackWriter {
    return new PackWriter(this);
  }

  /** Packs whose objects no registered snapshot uses any more. */
  unusedPacks(used: Set<string>): string[] {
    const packs = new Map<string, boolean>();
    for (const [hex, loc] of this.objects()) packs.set(loc.pack, (packs.get(loc.pack) ?? false) || used.has(hex));
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

/** Record head: sha256 (32), content size u64 (8), chunk count u32 (4), reserved (4); then the chunk table. */
const RECORD_HEAD = 48;
/** Chunk table entry: offset u64, stored size u64, raw size u64, method u8, reserved (7). */
const CHUNK_ENTRY = 32;

interface WrittenChunk {
  offset: number;
  stored: number;
  raw: number;
  method: number;
}

/**
 * Appends objects to one pack. Chunks are compressed on the thread pool (zstd) while the caller
 * goes on hashing and reading, and written as they complete (each chunk's place is in its
 * object's table, so objects need not be contiguous). An object's head and table follow its
 * chunks; `finish()` writes the index that makes the pack's objects visible.
 */
export class PackWriter {
  readonly id = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  private readonly fd: number;
  private pos = PACK_MAGIC.length;
  private readonly objects: Record<string, [number, number]> = {};
  private readonly pending = new Map<string, Promise<void>>();
  private pendingBytes = 0;
  private failure: unknown;
  storedBytes = 0;
  newBytes = 0;
  count = 0;
  readonly path: string;
  private readonly useZstd = zstdAvailable();

  constructor(private readonly store: SnapshotStore) {
    this.path = join(store.dir, 'packs', `${this.id}.pack`);
    this.fd = openSync(this.path, 'wx', 0o644);
    writeSync(this.fd, PACK_MAGIC);
  }

  /** Whether this run already has (or is writing) the object. */
  has(hex: string): boolean {
    return this.objects[hex] !== undefined || this.pending.has(hex);
  }

  private async compress(chunk: Buffer): Promise<{ method: number; data: Buffer }> {
    if (chunk.length < 64) return { method: METHOD_RAW, data: chunk };
    let data: Buffer;
    let method: number;
    if (this.useZstd) {
      data = await zstdCompressAsync(chunk, -1);
      method = METHOD_ZSTD;
    } else {
      data = brotliCompressSync(chunk, { params: { [zc.BROTLI_PARAM_QUALITY]: 0 } });
      method = METHOD_BROTLI;
    }
    return data.length <= chunk.length * 0.9 ? { method, data } : { method: METHOD_RAW, data: chunk };
  }

  private async chunk(raw: Buffer): Promise<WrittenChunk> {
    const c = await this.compress(raw);
    const offset = this.write(c.data);
    this.storedBytes += c.data.length;
    return { offset, stored: c.data.length, raw: raw.length, method: c.method };
  }

  private record(hex: string, size: number, chunks: WrittenChunk[]): void {
    const head = Buffer.alloc(RECORD_HEAD + chunks.length * CHUNK_ENTRY);
    Buffer.from(hex, 'hex').copy(head, 0);
    head.writeBigUInt64LE(BigInt(size), 32);
    head.writeUInt32LE(chunks.length, 40);
    chunks.forEach((c, i) => {
      const at = RECORD_HEAD + i * CHUNK_ENTRY;
      head.writeBigUInt64LE(BigInt(c.offset), at);
      head.writeBigUInt64LE(BigInt(c.stored), at + 8);
      head.writeBigUInt64LE(BigInt(c.raw), at + 16);
      head[at + 24] = c.method;
    });
    const offset = this.write(head);
    this.storedBytes += head.length;
    this.objects[hex] = [offset, size];
    this.newBytes += size;
    this.count++;
  }

  /**
   * Adds an object whose content the caller has in memory (chunks of at most CHUNK bytes, not
   * changed afterwards). Waits only when too much is in flight.
   */
  async add(hex: string, chunks: Buffer[]): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.has(hex)) return;
    const size = chunks.reduce((a, c) => a + c.length, 0);
    while (this.pendingBytes > 128 << 20 || this.pending.size >= 16) await Promise.race(this.pending.values());
    this.pendingBytes += size;
    const job = (async () => this.record(hex, size, await Promise.all(chunks.map((c) => this.chunk(c)))))()
      .catch((e: unknown) => {
        this.failure ??= e;
      })
      .finally(() => {
        this.pending.delete(hex);
        this.pendingBytes -= size;
      });
    this.pending.set(hex, job);
  }

  /** Adds a large object read chunk by chunk (one chunk in memory at a time). */
  async addStream(hex: string, chunks: Iterable<Buffer>): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.has(hex)) return;
    const written: WrittenChunk[] = [];
    let size = 0;
    for (const c of chunks) {
      written.push(await this.chunk(Buffer.from(c)));
      size += c.length;
    }
    this.record(hex, size, written);
  }

  private write(b: Buffer): number {
    const at = this.pos;
    this.pos += b.length;
    let off = 0;
    while (off < b.length) off += writeSync(this.fd, b, off, b.length - off, at + off);
    return at;
  }

  /** Waits for every object, syncs the pack and writes its index (the objects become visible). */
  async finish(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending.values()]);
    if (this.failure !== undefined) throw this.failure;
    fsyncSync(this.fd);
    closeSync(this.fd);
    if (this.count === 0) {
      rmSync(this.path, { force: true });
      return;
    }
    writeFileAtomicSync(join(this.store.dir, 'packs', `${this.id}.idx`), JSON.stringify({ pack: this.id, objects: this.objects }));
    fsyncDir(join(this.store.dir, 'packs'));
  }

  /** Drops the pack (a snapshot that failed). */
  async abort(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending.values()]);
    try {
      closeSync(this.fd);
    } catch {
      /* closed */
    }
    rmSync(this.path, { force: true });
    rmSync(join(this.store.dir, 'packs', `${this.id}.idx`), { force: true });
  }
}
