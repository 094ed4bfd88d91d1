import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  lchownSync,
  linkSync,
  mkdirSync,
  statSync,
  openSync,
  readdirSync,
  rmdirSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { entryPathBytes, entryPathProblem, type ManifestEntry } from '../formats/snapstore/manifest.js';
import { probeLock } from '../io/lock.js';
import { lutimesNs, mknod, nativeAvailable, setXattr, S_IFBLK, S_IFCHR, S_IFIFO } from '../io/native.js';
import { undoneUnlessDone } from '../io/cleanup.js';
import { LAYOUT } from '../store/layout.js';
import type { RegisteredSnapshot, SnapshotStore } from '../store/snapshots/store.js';
import { removeTree } from '../io/confined.js';
import type { ErrorCode } from '../formats/errorcodes.js';

export interface RestoreResult {
  snapshot: string;
  to: string;
  entries: number;
  files: number;
  bytes: number;
  skipped: string[];
}

/** An entry with the path it is written to (beneath the target; checked by planRestore). */
interface Planned {
  e: ManifestEntry;
  abs: string | Buffer;
  /** For a hard link: the path of its first entry. */
  first?: string | Buffer;
}

/**
 * `dataroot restore`: writes a snapshot's tree back exactly — types, contents (each checked
 * against its sha256), owners, modes, device numbers, symlinks, hard links, xattrs, and times
 * (directories last, so writing inside them does not change theirs). Nothing is written outside
 * `to`: the whole manifest is checked before the first write (planRestore), and every object's
 * content too. The target is 0700 while it is written; a failure or a signal (SIGINT, SIGTERM,
 * SIGHUP) removes what was written (and the target, when this made it).
 */
export interface RestoreOptions {
  force: boolean;
  /** Called once half the entries are written (tests pause there). */
  onHalfway?: () => void;
}

export async function restoreSnapshot(store: SnapshotStore, snap: RegisteredSnapshot, to: string, o: RestoreOptions): Promise<RestoreResult> {
  if (!nativeAvailable())
    throw new DatarootError('IO_NATIVE_UNAVAILABLE', "restore needs dataroot's native addon (owners, devices, xattrs and times; see dataroot info)");
  const existed = checkTarget(to, o.force);
  const plan = planRestore(store.readManifest(snap).entries(), to);
  checkObjects(store, plan);
  const undo = prepareTarget(to, existed);
  return undoneUnlessDone(undo, () => writeTree(store, snap, to, plan, o.onHalfway));
}

/** The target: a directory no daemon holds, empty unless --force. Whether it exists. */
function checkTarget(to: string, force: boolean): boolean {
  if (!existsSync(to)) return false;
  const st = statSync(to); // the target the user named (a symlink to a directory is followed, as before)
  if (!st.isDirectory()) throw new DatarootError('RESTORE_TARGET_INVALID', `${to} exists and is not a directory`, { file: to });
  if (probeLock(`${to}/${LAYOUT.volumesDb}`) === 'held')
    throw new DatarootError('STORE_DAEMON_RUNNING', `a running daemon holds ${to}: stop it first (restore never writes under a live daemon)`, { file: to });
  if (readdirSync(to).length > 0 && !force)
    throw new DatarootError('RESTORE_TARGET_NOT_EMPTY', `${to} is not empty (--force replaces its content)`, { file: to });
  return true;
}

function unsafe(code: ErrorCode, e: ManifestEntry, why: string): DatarootError {
  return new DatarootError(code, `the manifest entry ${JSON.stringify(e.path)} ${why}: refused before anything was written`, { entry: e.path });
}

/**
 * Checks every entry before anything is written, and says where each goes. A manifest may have
 * been prepared by someone else, so each of these is refused with a coded error:
 *   - a path that is absolute, holds `.` or `..` or an empty component or a NUL (RESTORE_PATH_UNSAFE),
 *     in `path` or in `pathBase64`;
 *   - a path whose parent is not a directory the manifest made earlier: a file or directory "through"
 *     a symlink, or under a file (RESTORE_PARENT_NOT_DIR);
 *   - a path listed twice, or a second root (RESTORE_PATH_DUPLICATE);
 *   - a hard link to an entry that is absent, later, a directory, or itself a link (RESTORE_LINK_INVALID).
 */
export function planRestore(entries: ManifestEntry[], to: string): Planned[] {
  const dirs = new Set<string>(); // raw paths (latin1 of the bytes) of directories made so far
  const seen = new Map<string, Planned>(); // by path as the manifest names it, for hard links
  const raws = new Set<string>();
  const plan: Planned[] = [];
  const toBytes = Buffer.from(to);
  entries.forEach((e, i) => {
    const bytes = entryPathBytes(e);
    const problem = entryPathProblem(bytes);
    if (problem !== undefined) throw unsafe('RESTORE_PATH_UNSAFE', e, problem);
    const raw = Buffer.from(bytes).toString('latin1');
    if (raw === '') {
      if (i !== 0 || e.type !== 'dir') throw unsafe('RESTORE_PATH_DUPLICATE', e, 'is the root, which must come first and be a directory');
    } else {
      if (i === 0) throw unsafe('RESTORE_PATH_UNSAFE', e, 'comes before the root');
      const slash = raw.lastIndexOf('/');
      const parent = slash < 0 ? '' : raw.slice(0, slash);
      if (!dirs.has(parent))
        throw unsafe(
          'RESTORE_PARENT_NOT_DIR',
          e,
          `lies under ${JSON.stringify(parent)}, which is not a directory of the snapshot written before it (a symlink or a file cannot be written through)`,
        );
    }
    if (raws.has(raw)) throw unsafe('RESTORE_PATH_DUPLICATE', e, 'is listed twice');
    raws.add(raw);
    const abs = raw === '' ? to : Buffer.concat([toBytes, Buffer.from('/'), Buffer.from(bytes)]);
    const item: Planned = { e, abs: Buffer.isBuffer(abs) && isUtf8(abs) ? abs.toString('utf8') : abs };
    if (e.link !== undefined && e.type !== 'dir') item.first = firstOfLink(e, seen);
    if (e.type === 'dir') dirs.add(raw);
    if (!seen.has(e.path)) seen.set(e.path, item);
    plan.push(item);
  });
  return plan;
}

/** The path of a hard link's first entry: an earlier entry, not a directory, not itself a link. */
function firstOfLink(e: ManifestEntry, seen: Map<string, Planned>): string | Buffer {
  const first = seen.get(e.link!)?.e;
  if (first === undefined) throw unsafe('RESTORE_LINK_INVALID', e, `is a hard link to ${JSON.stringify(e.link)}, which no earlier entry of the snapshot is`);
  if (first.type === 'dir' || first.link !== undefined)
    throw unsafe('RESTORE_LINK_INVALID', e, `is a hard link to ${JSON.stringify(e.link)}, which is ${first.type === 'dir' ? 'a directory' : 'itself a link'}`);
  return seen.get(e.link!)!.abs;
}

/**
 * Checks every object a snapshot needs before anything is written: a restore that would fail
 * half-way on a damaged store refuses at the start instead (naming the file whose copy is bad).
 */
function checkObjects(store: SnapshotStore, plan: Planned[]): void {
  for (const { e } of plan) {
    if (e.type !== 'file' || e.link !== undefined || e.sha256 === undefined) continue;
    if (e.stored !== true)
      throw new DatarootError('SNAPSHOT_CONTENT_NOT_STORED', `${e.path} was recorded with --metadata-only: the snapshot cannot be restored`, { file: e.path });
    for (const _ of store.read(e.sha256, e.path)) void _;
  }
}

/** Makes the target 0700 and empty (creating it when absent); returns how to undo what the restore writes. */
function prepareTarget(to: string, existed: boolean): () => void {
  if (existed) {
    chmodSync(to, 0o700);
    for (const n of readdirSync(to)) removeTree(join(to, n));
  } else mkdirSync(to, { recursive: true, mode: 0o700 });
  return () => {
    try {
      for (const n of readdirSync(to)) removeTree(join(to, n));
      if (!existed) rmdirSync(to);
    } catch {
      /* best effort: the error or signal that brought us here is what is reported */
    }
  };
}

/**
 * Lets the event loop run (a signal's cleanup among it) every 20 ms of writing. `wait`: a turn
 * that polls for I/O before it ends (after the test hook's pause, so that a signal sent during the
 * pause is handled before the writing goes on).
 */
function yielder(): (wait?: number) => Promise<void> | undefined {
  let last = Date.now();
  return (wait) => {
    if (wait === undefined && Date.now() - last < 20) return undefined;
    last = Date.now();
    return new Promise((res) => setTimeout(res, wait ?? 0));
  };
}

async function writeTree(store: SnapshotStore, snap: RegisteredSnapshot, to: string, plan: Planned[], onHalfway?: () => void): Promise<RestoreResult> {
  const breathe = yielder();
  const result: RestoreResult = { snapshot: snap.name, to, entries: 0, files: 0, bytes: 0, skipped: [] };
  const dirs: Planned[] = [];
  for (const p of plan) {
    const { e, abs } = p;
    if (result.entries++ === Math.floor(plan.length / 2) && onHalfway !== undefined) {
      onHalfway();
      await breathe(20);
    } else await breathe();
    if (p.first !== undefined) {
      // A hard link (files, and the whiteouts overlayfs links to one shared inode): it shares the
      // inode, and so the metadata, of the first.
      linkSync(p.first, abs);
      continue;
    }
    switch (e.type) {
      case 'dir':
        if (abs !== to) mkdirSync(abs, { mode: 0o700 });
        dirs.push(p);
        continue;
      case 'file':
        result.bytes += writeFile(store, e, abs);
        result.files++;
        break;
      case 'symlink':
        symlinkSync(e.targetBase64 !== undefined ? Buffer.from(e.targetBase64, 'base64') : (e.target ?? ''), abs);
        break;
      case 'char':
      case 'block':
      case 'fifo': {
        const kind = e.type === 'char' ? S_IFCHR : e.type === 'block' ? S_IFBLK : S_IFIFO;
        mknod(abs.toString(), kind | e.mode, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0);
        break;
      }
      case 'socket':
        result.skipped.push(e.path); // a socket is made by the process that listens on it
        continue;
    }
    meta(abs, e);
  }
  for (const d of dirs.reverse()) meta(d.abs, d.e);
  return result;
}

/** A regular file, created (never through a symlink, never over anything) and filled from the store. */
function writeFile(store: SnapshotStore, e: ManifestEntry, abs: string | Buffer): number {
  const fd = openSync(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  let bytes = 0;
  try {
    if (e.sha256 !== undefined && e.size > 0) {
      for (const c of store.read(e.sha256, e.path)) {
        let off = 0;
        while (off < c.length) off += writeSync(fd, c, off, c.length - off);
        bytes += c.length;
      }
    }
  } finally {
    closeSync(fd);
  }
  return bytes;
}

function meta(abs: string | Buffer, e: ManifestEntry): void {
  lchownSync(abs, e.uid, e.gid);
  if (e.type !== 'symlink') chmodSync(abs, e.mode);
  if (typeof abs === 'string') for (const [k, v] of Object.entries(e.xattrs ?? {})) setXattr(abs, k, Buffer.from(v, 'base64'));
  if (typeof abs === 'string') lutimesNs(abs, BigInt(e.atime), BigInt(e.mtime));
}

function isUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}
