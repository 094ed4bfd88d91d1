import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { fsError, removeDirTree } from './confined.js';
import { mknod, nativeAvailable, setXattr, S_IFIFO } from './native.js';
import { isUtf8, shownPath, type ByteStr } from './rawtree.js';

/**
 * Writes a file tree into a directory that starts empty (made here, or an empty one the user
 * owns), for `export -o DIR`. Every path is a name below a directory this writer made itself, and
 * every object is created exclusively (mkdir, O_CREAT|O_EXCL|O_NOFOLLOW, symlink, link: each fails
 * when something is there), so nothing is written through a symlink or outside the target, even
 * when the tree holds symlinks that point anywhere. Directories stay 0700 while they are filled and
 * get their own mode, owner and times when the walk leaves them. What the process may not do
 * (owners without root, devices, file capabilities) is counted and reported, never faked.
 */

export interface TreeAttrs {
  mode: number;
  uid: number;
  gid: number;
  atimeMs: number;
  mtimeMs: number;
}

export interface NotPreserved {
  /** Entries whose owner could not be set (not root). */
  owners: number;
  /** Character and block devices not made (not root). */
  devices: number;
  /** Sockets (not archivable; docker export leaves them out too). */
  sockets: number;
  /** Files whose setuid/setgid bits were dropped because their owner could not be set. */
  setid: number;
  /** security.capability xattrs not set (not root). */
  capabilities: number;
  /** FIFOs and devices not made because their name is not UTF-8 or the native addon is missing. */
  special: number;
}

export class TreeWriter {
  private readonly root: Buffer;
  private readonly isRoot = process.getuid?.() === 0;
  private readonly made: boolean;
  private readonly origMode: number;
  /** Directories left open (path, attributes), outermost first: finished when the walk leaves them. */
  private readonly open: { path: ByteStr; attrs: TreeAttrs }[] = [];
  readonly skipped: NotPreserved = { owners: 0, devices: 0, sockets: 0, setid: 0, capabilities: 0, special: 0 };
  entries = 0;
  bytes = 0;

  /** Takes the target: absent (made 0700), or an empty directory (not a symlink) this user owns. */
  constructor(readonly target: string) {
    let st;
    try {
      st = lstatSync(target);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(e, target);
    }
    if (st === undefined) {
      try {
        mkdirSync(target, { mode: 0o700 });
      } catch (e) {
        throw fsError(e, target);
      }
      this.made = true;
      this.origMode = 0o755;
    } else {
      if (st.isSymbolicLink())
        throw new DatarootError('OUTPUT_IS_SYMLINK', `${target} is a symlink: export writes only into a real directory`, { file: target });
      if (!st.isDirectory()) throw new DatarootError('OUTPUT_NOT_A_DIRECTORY', `${target} exists and is not a directory`, { file: target });
      if (readdirSync(target).length > 0)
        throw new DatarootError('OUTPUT_NOT_EMPTY', `${target} is not empty: export -o DIR writes only into a new or empty directory`, { file: target });
      if (!this.isRoot && st.uid !== process.getuid?.())
        throw new DatarootError('OUTPUT_NOT_OWNED', `${target} belongs to uid ${st.uid}: export writes only into a directory of its own user`, {
          file: target,
        });
      this.made = false;
      this.origMode = st.mode & 0o7777;
      chmodSync(target, 0o700);
    }
    this.root = Buffer.from(target, 'utf8');
  }

  private abs(path: ByteStr): Buffer {
    return Buffer.concat([this.root, SLASH, Buffer.from(path, 'latin1')]);
  }

  /** Finishes the directories the walk has left (those that are not ancestors of `path`). */
  private leave(path: ByteStr): void {
    while (this.open.length > 0) {
      const d = this.open[this.open.length - 1]!;
      if (path.startsWith(`${d.path}/`)) return;
      this.open.pop();
      this.finishDir(d.path, d.attrs);
    }
  }

  private owner(abs: Buffer, a: TreeAttrs): boolean {
    if (!this.isRoot) {
      this.skipped.owners++;
      return false;
    }
    lchownSync(abs, a.uid, a.gid);
    return true;
  }

  private finishDir(path: ByteStr, a: TreeAttrs): void {
    const abs = this.abs(path);
    const owned = this.owner(abs, a);
    let mode = a.mode & 0o7777;
    if (!owned && (mode & 0o6000) !== 0) {
      mode &= ~0o6000;
      this.skipped.setid++;
    }
    chmodSync(abs, mode);
    lutimesSync(abs, a.atimeMs / 1000, a.mtimeMs / 1000);
  }

  dir(path: ByteStr, a: TreeAttrs): void {
    this.leave(path);
    try {
      mkdirSync(this.abs(path), { mode: 0o700 });
    } catch (e) {
      throw fsError(e, shownPath(path));
    }
    this.open.push({ path, attrs: a });
    this.entries++;
  }

  /** A regular file with `size` bytes read from `src` (an fd of the evidence) from offset 0. */
  file(path: ByteStr, a: TreeAttrs, src: number | undefined, size: number, capability?: Buffer): void {
    this.leave(path);
    const abs = this.abs(path);
    let fd: number;
    try {
      fd = openSync(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (e) {
      throw fsError(e, shownPath(path));
    }
    try {
      if (src !== undefined && size > 0) {
        const buf = Buffer.allocUnsafe(Math.min(size, 1 << 20));
        let pos = 0;
        while (pos < size) {
          const n = readSync(src, buf, 0, Math.min(buf.length, size - pos), pos);
          if (n === 0) throw new DatarootError('EXPORT_SOURCE_CHANGED', `${shownPath(path)} ended after ${pos} of ${size} bytes while it was read`);
          let o = 0;
          while (o < n) o += writeSync(fd, buf, o, n - o);
          pos += n;
        }
        this.bytes += size;
      }
      let owned = false;
      if (this.isRoot) {
        fchownSync(fd, a.uid, a.gid);
        owned = true;
      } else this.skipped.owners++;
      let mode = a.mode & 0o7777;
      if (!owned && (mode & 0o6000) !== 0) {
        mode &= ~0o6000;
        this.skipped.setid++;
      }
      fchmodSync(fd, mode);
      if (capability !== undefined) {
        if (this.isRoot && isUtf8(path) && nativeAvailable()) setXattr(abs.toString('utf8'), 'security.capability', capability);
        else this.skipped.capabilities++;
      }
      futimesSync(fd, a.atimeMs / 1000, a.mtimeMs / 1000);
    } finally {
      closeSync(fd);
    }
    this.entries++;
  }

  symlink(path: ByteStr, target: ByteStr, a: TreeAttrs): void {
    this.leave(path);
    const abs = this.abs(path);
    try {
      symlinkSync(Buffer.from(target, 'latin1'), abs);
    } catch (e) {
      throw fsError(e, shownPath(path));
    }
    this.owner(abs, a);
    lutimesSync(abs, a.atimeMs / 1000, a.mtimeMs / 1000);
    this.entries++;
  }

  /** A hard link to an entry written before (`to`, a path of the tree). */
  hardlink(path: ByteStr, to: ByteStr): void {
    this.leave(path);
    try {
      linkSync(this.abs(to), this.abs(path));
    } catch (e) {
      throw fsError(e, shownPath(path));
    }
    this.entries++;
  }

  /** A FIFO or a device (type S_IFIFO, S_IFCHR, S_IFBLK). */
  special(path: ByteStr, type: number, a: TreeAttrs, major: number, minor: number): void {
    this.leave(path);
    if (type !== S_IFIFO && !this.isRoot) {
      this.skipped.devices++;
      return;
    }
    if (!isUtf8(path) || !nativeAvailable()) {
      this.skipped.special++;
      return;
    }
    const abs = this.abs(path);
    mknod(abs.toString('utf8'), type | (a.mode & 0o777), major, minor);
    const owned = this.owner(abs, a);
    let mode = a.mode & 0o7777;
    if (!owned) mode &= ~0o6000;
    chmodSync(abs, mode);
    lutimesSync(abs, a.atimeMs / 1000, a.mtimeMs / 1000);
    this.entries++;
  }

  socket(): void {
    this.skipped.sockets++;
  }

  /** Finishes every open directory and gives the target back its mode. */
  finish(): void {
    this.leave('\0');
    chmodSync(this.root, this.made ? 0o755 : this.origMode);
  }

  /** After a failure: removes what was written (and the target, when this writer made it). */
  abort(): void {
    try {
      if (this.made) removeOwnTree(this.root);
      else for (const n of readdirSync(this.root, { encoding: 'buffer' })) removeOwnTree(Buffer.concat([this.root, SLASH, n]));
      if (!this.made) chmodSync(this.root, this.origMode);
    } catch {
      /* best effort */
    }
  }
}

/**
 * Removes a tree this writer made, without recursion (its depth comes from the evidence) and with
 * names as bytes (they need not be UTF-8). Directories finished with a mode that forbids writing
 * are made 0700 first (the writer owns them).
 */
function removeOwnTree(path: Buffer): void {
  if (!lstatSync(path, { throwIfNoEntry: false })?.isDirectory()) {
    rmSync(path, { force: true });
    return;
  }
  removeDirTree(path, true);
}

export { S_IFIFO };

const SLASH = Buffer.from('/');
