import { lstatSync, statSync, type Stats } from 'node:fs';
import { BoltFile, isBucketEntry } from '../formats/bolt/db.js';
import { EditVisitor, type BoltEdit } from '../formats/bolt/edit.js';
import { readDumpRecords } from '../formats/bolt/ndjson.js';
import { walkBolt } from '../formats/bolt/walk.js';
import { BoltWriter, checkPageSize, type BoltVisitor, type WriteResult } from '../formats/bolt/write.js';
import { DatarootError } from '../formats/errors.js';
import { toHex } from '../formats/bytes.js';
import { AtomicFile, requireOutputDir } from '../io/atomic.js';
import { hostPageSize } from '../io/host.js';
import { acquireLock, probeLock, type HeldLock } from '../io/lock.js';
import { FileSource } from '../io/pagesource.js';

/**
 * Whole-file BoltDB writes: compact, edit (put/delete) and load. Each reads the old file with the
 * pure reader, streams it through the writer into a temporary file beside the target, and renames
 * that over the target (fsync of file and directory): the old file is never modified, a failure
 * leaves it as it was and removes the temporary file. A target another process holds a flock on
 * (a running daemon: bbolt locks its file for its whole life) is refused, and the lock is held
 * while the new file is written, so a daemon cannot open the old file meanwhile.
 */

const U64_MAX = (1n << 64n) - 1n;

export interface BoltWriteReport extends WriteResult {
  file: string;
  /** The file read (compact's source, the old file of put/delete/load); absent for a new file. */
  source?: string;
  sourceSize?: number;
  sourcePageSize?: number;
}

/** Mode and owner the new file keeps: the source's (its owner only when running as root). */
function keep(st: Stats): { mode: number; uid?: number; gid?: number } {
  const root = typeof process.geteuid === 'function' && process.geteuid() === 0;
  return root ? { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid } : { mode: st.mode & 0o7777 };
}

/** Checks the place a file is written to; returns its lstat when it exists. */
export function checkTarget(path: string, flag: string): Stats | undefined {
  requireOutputDir(path, flag);
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DatarootError('IO_ERROR', `${path}: ${(e as Error).message}`, { file: path });
  }
  if (st.isSymbolicLink()) {
    throw new DatarootError(
      'BOLT_TARGET_SYMLINK',
      `${flag}${path} is a symbolic link; name the file itself (the rename would replace the link, not its target)`,
      { file: path },
    );
  }
  if (st.isDirectory()) throw new DatarootError('USAGE_OUTPUT_IS_DIR', `${flag}${path} is a directory: name the file to write`, { file: path });
  if (!st.isFile()) throw new DatarootError('BOLT_TARGET_NOT_A_FILE', `${flag}${path} is not a regular file`, { file: path });
  return st;
}

function lockedError(path: string): DatarootError {
  return new DatarootError('BOLT_FILE_LOCKED', `${path} is locked (flock) by a running process, a daemon that has it open: stop it before writing the file`, {
    file: path,
  });
}

/** Refuses a file some process holds a flock on; holds one of our own until release(). */
export async function lockForWrite(path: string): Promise<HeldLock> {
  if (probeLock(path) === 'held') throw lockedError(path);
  try {
    return await acquireLock(path);
  } catch (e) {
    if (e instanceof DatarootError && e.code === 'STORE_DAEMON_RUNNING') throw lockedError(path);
    throw e;
  }
}

interface Source {
  db: BoltFile;
  source: FileSource;
  stat: Stats;
}

function openSource(path: string): Source {
  const source = FileSource.open(path);
  try {
    return { db: BoltFile.open(source, { file: path }), source, stat: statSync(path) };
  } catch (e) {
    source.close();
    throw e;
  }
}

/** Runs a walk into a writer on a temporary file and puts the file in place. */
function writeFile(
  path: string,
  keepFrom: { mode: number; uid?: number; gid?: number },
  opts: ConstructorParameters<typeof BoltWriter>[1],
  walk: (w: BoltVisitor) => void,
): WriteResult {
  const out = AtomicFile.create(path, keepFrom);
  try {
    const w = new BoltWriter(out, opts);
    walk(w);
    const r = w.finish();
    out.commit();
    return r;
  } catch (e) {
    out.abort();
    throw e;
  }
}

function nextTxid(t: bigint): bigint {
  return t < U64_MAX ? t + 1n : t;
}

export interface CompactOptions {
  /** Page size of the new file (default: the source's). */
  pageSize?: number;
  /** Replace an existing output file. */
  force?: boolean;
}

/** `bolt compact SRC -o DST`: the tree of SRC in a new file, packed as `bbolt compact` packs it. */
export async function compactBolt(src: string, dst: string, o: CompactOptions = {}): Promise<BoltWriteReport> {
  if (o.pageSize !== undefined) checkPageSize(o.pageSize);
  const existing = checkTarget(dst, '-o ');
  if (existing !== undefined && !o.force) {
    throw new DatarootError('BOLT_OUTPUT_EXISTS', `-o ${dst} exists; give --force to replace it`, { file: dst });
  }
  const lock = existing !== undefined ? await lockForWrite(dst) : undefined;
  try {
    const s = openSource(src);
    try {
      const r = writeFile(dst, keep(s.stat), { pageSize: o.pageSize ?? s.db.pageSize }, (w) => walkBolt(s.db, w));
      return { file: dst, source: src, sourceSize: s.source.size, sourcePageSize: s.db.pageSize, ...r };
    } finally {
      s.source.close();
    }
  } finally {
    await lock?.release();
  }
}

/** Rewrites FILE with edits applied (put, delete, …), keeping its page size, mode and owner. */
export async function editBolt(
  file: string,
  edits: BoltEdit[] | ((db: BoltFile) => BoltEdit[]),
): Promise<BoltWriteReport & { applied: EditVisitor['applied'] }> {
  const st = checkTarget(file, '');
  if (st === undefined) throw new DatarootError('IO_NOT_FOUND', `${file} does not exist`, { file });
  const lock = await lockForWrite(file);
  try {
    const s = openSource(file);
    try {
      const list = typeof edits === 'function' ? edits(s.db) : edits;
      let applied: EditVisitor['applied'] | undefined;
      const r = writeFile(file, keep(s.stat), { pageSize: s.db.pageSize, txid: nextTxid(s.db.meta.txid), rootSequence: s.db.meta.rootSequence }, (w) => {
        const ev = new EditVisitor(w, list);
        walkBolt(s.db, ev);
        ev.finish();
        applied = ev.applied;
      });
      return { file, source: file, sourceSize: s.source.size, sourcePageSize: s.db.pageSize, ...r, applied: applied! };
    } finally {
      s.source.close();
    }
  } finally {
    await lock.release();
  }
}

export interface LoadOptions {
  /** Page size (default: the existing file's, else this machine's). */
  pageSize?: number;
}

/**
 * `bolt load FILE`: builds FILE from an NDJSON dump. An existing FILE must be a bbolt file; it is
 * replaced (its page size, mode and owner kept); a new one gets this machine's page size and mode 0600.
 */
export async function loadBolt(file: string, input: AsyncIterable<Uint8Array>, o: LoadOptions = {}): Promise<BoltWriteReport & { records: number }> {
  if (o.pageSize !== undefined) checkPageSize(o.pageSize);
  checkTarget(file, '');
  const records = await readDumpRecords(input);
  records.prepare();
  const st = checkTarget(file, '');
  const lock = st !== undefined ? await lockForWrite(file) : undefined;
  try {
    let old: Source | undefined;
    if (st !== undefined) old = openSource(file);
    try {
      const pageSize = o.pageSize ?? old?.db.pageSize ?? hostPageSize();
      const r = writeFile(
        file,
        old !== undefined ? keep(old.stat) : { mode: 0o600 },
        { pageSize, ...(old !== undefined ? { txid: nextTxid(old.db.meta.txid) } : {}) },
        (w) => records.visit(w),
      );
      const base = { file, ...r, records: records.size };
      return old === undefined ? base : { ...base, source: file, sourceSize: old.source.size, sourcePageSize: old.db.pageSize };
    } finally {
      old?.source.close();
    }
  } finally {
    await lock?.release();
  }
}

export type Lookup = { kind: 'absent' } | { kind: 'value'; value: Uint8Array } | { kind: 'bucket' };

/**
 * What a path holds in a file: follows bucket names from the root and looks the last one up.
 * `missing` is the index of the first bucket of the path that does not exist (-1 when all do);
 * `notBucket` the index of one that holds a value.
 */
export function probePath(db: BoltFile, path: readonly Uint8Array[], key: Uint8Array | undefined): { missing: number; notBucket: number; target: Lookup } {
  let b = db.rootBucket();
  for (let i = 0; i < path.length; i++) {
    const e = db.lookup(b, path[i]!);
    if (e === undefined) return { missing: i, notBucket: -1, target: { kind: 'absent' } };
    if (!isBucketEntry(e)) return { missing: -1, notBucket: i, target: { kind: 'absent' } };
    b = db.openBucket(e.value, toHex(path[i]!));
  }
  if (key === undefined) return { missing: -1, notBucket: -1, target: { kind: 'bucket' } };
  const e = db.lookup(b, key);
  const target: Lookup = e === undefined ? { kind: 'absent' } : isBucketEntry(e) ? { kind: 'bucket' } : { kind: 'value', value: e.value };
  return { missing: -1, notBucket: -1, target };
}
