import { chmodSync, closeSync, existsSync, lchownSync, linkSync, mkdirSync, openSync, readdirSync, rmSync, statSync, symlinkSync, writeSync, constants } from 'node:fs';
import { join } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { probeLock } from '../io/lock.js';
import { lutimesNs, mknod, setXattr, S_IFBLK, S_IFCHR, S_IFIFO } from '../io/native.js';
import { LAYOUT } from '../store/layout.js';
import type { RegisteredSnapshot, SnapshotStore } from '../store/snapstore.js';
import type { ManifestEntry } from '../store/manifest.js';

export interface RestoreResult {
  snapshot: string;
  to: string;
  entries: number;
  files: number;
  bytes: number;
  skipped: string[];
}

function absOf(to: string, e: ManifestEntry): string | Buffer {
  if (e.path === '') return to;
  if (e.pathBase64 !== undefined) return Buffer.concat([Buffer.from(`${to}/`), Buffer.from(e.pathBase64, 'base64')]);
  return join(to, e.path);
}

/**
 * Checks every object a snapshot needs before anything is written: a restore that would fail
 * half-way on a damaged store refuses at the start instead (naming the file whose copy is bad).
 */
function checkObjects(store: SnapshotStore, entries: ManifestEntry[]): void {
  for (const e of entries) {
    if (e.type !== 'file' || e.link !== undefined || e.sha256 === undefined) continue;
    if (e.stored !== true) throw new DatarootError('SNAPSHOT_CONTENT_NOT_STORED', `${e.path} was recorded with --metadata-only: the snapshot cannot be restored`, { file: e.path });
    for (const _ of store.read(e.sha256, e.path)) void _;
  }
}

/**
 * `dataroot restore`: writes a snapshot's tree back exactly — types, contents (each checked
 * against its sha256), owners, modes, device numbers, symlinks, hard links, xattrs, and times
 * (directories last, so writing inside them does not change theirs).
 */
export async function restoreSnapshot(store: SnapshotStore, snap: RegisteredSnapshot, to: string, o: { force: boolean }): Promise<RestoreResult> {
  if (existsSync(to)) {
    if (!statSync(to).isDirectory()) throw new DatarootError('RESTORE_TARGET_INVALID', `${to} exists and is not a directory`, { file: to });
    if (probeLock(`${to}/${LAYOUT.volumesDb}`) === 'held') throw new DatarootError('STORE_DAEMON_RUNNING', `a running daemon holds ${to}: stop it first (restore never writes under a live daemon)`, { file: to });
    const names = readdirSync(to);
    if (names.length > 0) {
      if (!o.force) throw new DatarootError('RESTORE_TARGET_NOT_EMPTY', `${to} is not empty (--force replaces its content)`, { file: to });
    }
  }
  const entries = store.readManifest(snap).entries();
  checkObjects(store, entries);
  if (existsSync(to)) for (const n of readdirSync(to)) rmSync(join(to, n), { recursive: true, force: true });
  else mkdirSync(to, { recursive: true });
  const result: RestoreResult = { snapshot: snap.name, to, entries: 0, files: 0, bytes: 0, skipped: [] };
  const byPath = new Map(entries.map((e) => [e.path, e]));
  const dirs: ManifestEntry[] = [];
  for (const e of entries) {
    const abs = absOf(to, e);
    result.entries++;
    if (e.type !== 'dir' && e.link !== undefined) {
      // A hard link (files, and the whiteouts overlayfs links to one shared inode).
      const first = byPath.get(e.link);
      if (first === undefined) throw new DatarootError('SNAPSHOT_MANIFEST_CORRUPT', `${e.path} is a hard link to ${e.link}, which the manifest lacks`);
      linkSync(absOf(to, first), abs);
      continue; // it shares the inode, and so the metadata, of the first
    }
    switch (e.type) {
      case 'dir':
        if (e.path !== '') mkdirSync(abs, { mode: 0o700 });
        dirs.push(e);
        continue;
      case 'file': {
        const fd = openSync(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        try {
          if (e.sha256 !== undefined && e.size > 0) {
            for (const c of store.read(e.sha256, e.path)) {
              let off = 0;
              while (off < c.length) off += writeSync(fd, c, off, c.length - off);
              result.bytes += c.length;
            }
          }
        } finally {
          closeSync(fd);
        }
        result.files++;
        break;
      }
      case 'symlink':
        symlinkSync(e.targetBase64 !== undefined ? Buffer.from(e.targetBase64, 'base64') : e.target ?? '', abs);
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
  for (const d of dirs.reverse()) meta(absOf(to, d), d);
  return result;
}

function meta(abs: string | Buffer, e: ManifestEntry): void {
  lchownSync(abs, e.uid, e.gid);
  if (e.type !== 'symlink') chmodSync(abs, e.mode);
  if (typeof abs === 'string') for (const [k, v] of Object.entries(e.xattrs ?? {})) setXattr(abs, k, Buffer.from(v, 'base64'));
  if (typeof abs === 'string') lutimesNs(abs, BigInt(e.atime), BigInt(e.mtime));
}
