import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { DatarootError } from '../../formats/errors.js';
import { encodeIndexEntryInto, encodeIndexHeadInto, IDX_ENTRY, IDX_HEAD } from '../../formats/snapstore/index.js';
import type { ContentKind } from '../../formats/snapstore/manifest.js';
import { CHUNK_ENTRY, encodeChunkInto, encodeRecordHeadInto, METHOD_RAW, METHOD_ZSTD, METHOD_ZSTD_SLICE, PACK_MAGIC, RECORD_HEAD, recordBytes } from '../../formats/snapstore/pack.js';
import { writeFileAtomicSync } from '../../io/atomic.js';
import { contentThreads, packFiles, type FileBatch, type LiveResults, type PackedRun } from '../../io/native.js';
import type { SnapshotStore } from './store.js';

/** zstd level of stored contents unless the user chooses (--compress-level). */
export const ZSTD_LEVEL = -2;
export const ZSTD_LEVELS = { min: -100, max: 19 } as const;

export interface FileContent {
  hex: string;
  size: number;
  kind: ContentKind;
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
  private run: PackedRun | undefined;
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
    return r.results.map((f) => ({ hex: f.sha256, size: f.size, kind: f.kind }));
  }

  /** Writes the new objects' records after the last chunk, syncs the pack, and writes its index. */
  async finish(): Promise<void> {
    const fd = this.fd!;
    const r = this.run;
    const fresh: number[] = [];
    let bytes = 0;
    if (r !== undefined) {
      r.results.forEach((f, i) => {
        if (f.fresh) {
          fresh.push(i);
          bytes += recordBytes(f.chunks);
        }
      });
    }
    // The records, laid out in one buffer and written with one write after the last chunk.
    const records = Buffer.alloc(bytes);
    const recordAt: number[] = [];
    let at = 0;
    let k = 0;
    for (const i of fresh) {
      const f = r!.results[i]!;
      r!.copySha(i, records, at);
      encodeRecordHeadInto(records, at, f.size, f.chunks);
      recordAt.push(r!.end + at);
      this.storedBytes += recordBytes(f.chunks);
      for (let c = 0; c < f.chunks; c++, k++) {
        const ch = r!.chunk(k);
        const method = ch.shared !== undefined ? METHOD_ZSTD_SLICE : ch.compressed ? METHOD_ZSTD : METHOD_RAW;
        encodeChunkInto(records, at + RECORD_HEAD + c * CHUNK_ENTRY, method, ch.offset, ch.stored, ch.raw, ch.shared?.start ?? 0, ch.shared?.len ?? 0);
        if (ch.shared === undefined || ch.shared.start === 0) this.storedBytes += ch.stored; // a shared frame counts once
      }
      at += recordBytes(f.chunks);
      this.newBytes += f.size;
    }
    if (r !== undefined && k !== r.chunkCount) throw new DatarootError('SNAPSHOT_WRITE_FAILED', `the content pipeline returned ${r.chunkCount} chunks for ${k}`);
    this.count = fresh.length;
    if (this.count === 0) {
      // nothing new: the pack goes, unsynced (nothing will ever name it)
      closeSync(fd);
      this.fd = undefined;
      rmSync(this.path, { force: true });
      return;
    }
    let off = 0;
    while (off < records.length) off += writeSync(fd, records, off, records.length - off, r!.end + off);
    fsyncSync(fd);
    closeSync(fd);
    this.fd = undefined;
    this.store.upgrade();
    // the index last: written, synced and renamed into place (its directory synced too)
    writeFileAtomicSync(join(this.store.dir, 'packs', `${this.id}.idx`), this.index(r!, fresh, recordAt));
    this.store.reloadIndexes();
  }

  /** The index of the new objects: sorted by sha256 (their hex sorts as their bytes do). */
  private index(r: PackedRun, fresh: number[], recordAt: number[]): Buffer {
    const order = fresh.map((_, n) => n).sort((a, b) => (r.results[fresh[a]!]!.sha256 < r.results[fresh[b]!]!.sha256 ? -1 : 1));
    const idx = Buffer.alloc(IDX_HEAD + order.length * IDX_ENTRY);
    encodeIndexHeadInto(idx, order.length);
    order.forEach((n, pos) => {
      const i = fresh[n]!;
      const at = IDX_HEAD + pos * IDX_ENTRY;
      r.copySha(i, idx, at);
      encodeIndexEntryInto(idx, at, recordAt[n]!, r.results[i]!.size);
    });
    return idx;
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
