import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { DatarootError } from '../../formats/errors.js';
import { encodeIndex, type IndexEntry } from '../../formats/snapstore/index.js';
import { kindOfSample, type ContentKind } from '../../formats/snapstore/manifest.js';
import { encodeRecordInto, METHOD_RAW, METHOD_ZSTD, METHOD_ZSTD_SLICE, PACK_MAGIC, recordBytes, type Chunk } from '../../formats/snapstore/pack.js';
import { fsyncDir, writeFileAtomicSync } from '../../io/atomic.js';
import { contentThreads, packFiles, type FileBatch, type LiveResults, type PackedChunk, type PackedFile } from '../../io/native.js';
import type { SnapshotStore } from './store.js';

/** zstd level of stored contents unless the user chooses (--compress-level). */
export const ZSTD_LEVEL = -2;
export const ZSTD_LEVELS = { min: -100, max: 19 } as const;

export interface FileContent {
  hex: string;
  size: number;
  kind: ContentKind;
}

/** A native result's kind: the sample of its head, classified by the format's one rule. */
export function kindOf(f: PackedFile): ContentKind {
  return kindOfSample({ length: Math.min(f.size, 8192), first: f.head.first, minByte: f.head.minByte, firstNonSpace: f.head.firstNonSpace });
}

function chunkOf(c: PackedChunk): Chunk {
  if (c.shared !== undefined) return { method: METHOD_ZSTD_SLICE, offset: c.offset, stored: c.stored, raw: c.raw, start: c.shared.start, len: c.shared.len };
  return { method: c.compressed ? METHOD_ZSTD : METHOD_RAW, offset: c.offset, stored: c.stored, raw: c.raw };
}

/**
 * One snapshot run's pack. The contents go in through the addon's content pipeline (packFiles:
 * read, hashed, compressed and written on native threads, content the store has skipped); then
 * this writes each new object's record (formats/snapstore/pack.ts) after the last chunk, syncs
 * the pack, and writes the index (formats/snapstore/index.ts) that makes its objects visible.
 *
 * Until the index exists the pack is invisible: an interrupted run (a crash, a signal) leaves at
 * most a `.pack` without `.idx`, which no lookup reads and `snapshot rm` removes; `abort()`
 * removes it at once on a failure or a signal.
 */
export class PackWriter {
  readonly id = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  readonly path: string;
  private fd: number | undefined;
  private run: { results: PackedFile[]; chunks: PackedChunk[]; end: number } | undefined;
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
  }

  /**
   * Reads, hashes and adds to the pack a whole batch of files at once, its keep bytes saying
   * which are stored (the others are only hashed). One batch a pack. A file that cannot be read
   * rejects with an error carrying its `index` in the list.
   */
  async files(batch: FileBatch, progress?: Float64Array, live?: LiveResults): Promise<FileContent[]> {
    if (this.run !== undefined) throw new Error('PackWriter.files: one batch a pack');
    const r = await packFiles(batch, { path: this.path, start: 4096 }, this.store.indexTables(), {
      level: this.level,
      threads: contentThreads(),
      ...(progress !== undefined ? { progress } : {}),
      ...(live !== undefined ? { live } : {}),
    });
    this.run = r;
    return r.results.map((f) => ({ hex: f.sha256, size: f.size, kind: kindOf(f) }));
  }

  /** Writes the new objects' records after the last chunk, syncs the pack, and writes its index. */
  async finish(): Promise<void> {
    const fd = this.fd!;
    const r = this.run ?? { results: [], chunks: [], end: 4096 };
    const fresh = r.results.filter((f) => f.fresh);
    let bytes = 0;
    for (const f of fresh) bytes += recordBytes(f.chunks);
    const records = new Uint8Array(bytes);
    const entries: IndexEntry[] = [];
    let at = 0;
    let c = 0;
    for (const f of fresh) {
      const chunks = r.chunks.slice(c, c + f.chunks).map(chunkOf);
      c += f.chunks;
      const sha = Buffer.from(f.sha256, 'hex');
      entries.push({ sha256: sha, offset: r.end + at, size: f.size });
      const end = encodeRecordInto(records, at, sha, f.size, chunks);
      this.storedBytes += end - at;
      for (const ch of chunks) if (ch.method !== METHOD_ZSTD_SLICE || ch.start === 0) this.storedBytes += ch.stored; // a shared frame counts once
      at = end;
      this.newBytes += f.size;
    }
    if (c !== r.chunks.length) throw new DatarootError('SNAPSHOT_WRITE_FAILED', `the content pipeline returned ${r.chunks.length} chunks for ${c}`);
    let off = 0;
    while (off < records.length) off += writeSync(fd, records, off, records.length - off, r.end + off);
    fsyncSync(fd);
    closeSync(fd);
    this.fd = undefined;
    this.count = fresh.length;
    if (this.count === 0) {
      rmSync(this.path, { force: true });
      return;
    }
    this.store.upgrade();
    writeFileAtomicSync(join(this.store.dir, 'packs', `${this.id}.idx`), encodeIndex(entries));
    fsyncDir(join(this.store.dir, 'packs'));
    this.store.reloadIndexes();
  }

  /** Drops the pack (a snapshot that failed or was interrupted). Synchronous: it runs in signal handlers. */
  abort(): void {
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        /* closed */
      }
      this.fd = undefined;
    }
    rmSync(this.path, { force: true });
    rmSync(join(this.store.dir, 'packs', `${this.id}.idx`), { force: true });
  }
}
