import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { fsError, kindOfStats, type Confined } from './confined.js';
import { getXattr } from './native.js';

/**
 * Byte-exact reading of a directory tree of the evidence (a layer's diff, a full-tree layer, a
 * volume's _data), as part of the confined layer: the tree's own directory is checked through its
 * `Confined` root (a real directory, reached through no symlink), and inside it
 *
 * - names are "byte strings" (each character one byte, latin1), so every name the kernel returns
 *   round-trips, including names that are not UTF-8, and byte order is string order;
 * - paths are built only from names a listing returned (never `.`, `..` or a `/`), below
 *   directories an lstat showed to be directories: no symlink is ever followed;
 * - files are opened with O_NOFOLLOW | O_NONBLOCK and used only when fstat says they are regular.
 *
 * The evidence is taken as static while it is read, as `Confined` takes it.
 */
export type ByteStr = string;

const O_READ = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** A byte string as shown to people and in JSON (UTF-8, invalid bytes as U+FFFD). */
export function shownPath(p: ByteStr): string {
  return Buffer.from(p, 'latin1').toString('utf8');
}

/** Whether a byte string is valid UTF-8 (then `shownPath` is exact). */
export function isUtf8(p: ByteStr): boolean {
  // eslint-disable-next-line no-control-regex
  if (/^[\u0000-\u007f]*$/.test(p)) return true;
  const b = Buffer.from(p, 'latin1');
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}

export interface RawFile {
  fd: number;
  size: number;
  stat: Stats;
  close(): void;
}

export class RawTree {
  private readonly baseBuf: Buffer;

  /**
   * The tree at `rel` of the confined root: SYMLINK_* or PATH_NOT_A_DIRECTORY when something
   * other than a real directory is there, LAYER_DIR_MISSING when nothing is.
   */
  constructor(
    readonly fs: Confined,
    readonly rel: string,
  ) {
    if (!fs.requireDir(rel)) throw new DatarootError('LAYER_DIR_MISSING', `${rel} does not exist`, { file: fs.abs(rel) });
    this.baseBuf = Buffer.from(fs.abs(rel), 'utf8');
  }

  /** The absolute path of a path inside the tree ('' is the tree itself). */
  abs(path: ByteStr): Buffer {
    if (path === '') return this.baseBuf;
    return Buffer.concat([this.baseBuf, SLASH, Buffer.from(path, 'latin1')]);
  }

  /** The root-relative path, for messages and records (UTF-8 shown). */
  shown(path: ByteStr): string {
    return path === '' ? this.rel : `${this.rel}/${shownPath(path)}`;
  }

  /** The names of a directory (unsorted), or undefined when it is absent or not a directory. */
  list(dir: ByteStr): ByteStr[] | undefined {
    try {
      return readdirSync(this.abs(dir), { encoding: 'latin1' });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw fsError(e, this.shown(dir));
    }
  }

  /** lstat, or undefined when the path does not exist (or a parent is not a directory). */
  lstat(path: ByteStr): Stats | undefined {
    try {
      return lstatSync(this.abs(path));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw fsError(e, this.shown(path));
    }
  }

  /** The inode of a path as a bigint (exact where a number may not be), for hard-link identity. */
  inode(path: ByteStr): string {
    const st = lstatSync(this.abs(path), { bigint: true });
    return `${st.dev}:${st.ino}`;
  }

  readlink(path: ByteStr): ByteStr {
    try {
      return readlinkSync(this.abs(path), { encoding: 'latin1' });
    } catch (e) {
      throw fsError(e, this.shown(path));
    }
  }

  /** Opens a regular file for reading; FILE_NOT_REGULAR for anything else, IO_NOT_FOUND when gone. */
  open(path: ByteStr): RawFile {
    const abs = this.abs(path);
    let fd: number;
    try {
      fd = openSync(abs, O_READ | constants.O_NOATIME);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw this.openError(e, path);
      try {
        fd = openSync(abs, O_READ);
      } catch (e2) {
        throw this.openError(e2, path);
      }
    }
    const stat = fstatSync(fd);
    if (!stat.isFile()) {
      closeSync(fd);
      throw new DatarootError('FILE_NOT_REGULAR', `${this.shown(path)} is not a regular file (${kindOfStats(stat)}): it is not read`, {
        file: this.shown(path),
      });
    }
    let closed = false;
    return {
      fd,
      size: stat.size,
      stat,
      close: () => {
        if (!closed) closeSync(fd);
        closed = true;
      },
    };
  }

  private openError(e: unknown, path: ByteStr): DatarootError {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return new DatarootError('SYMLINK_NOT_FOLLOWED', `${this.shown(path)} is a symlink: it is not followed`, { file: this.shown(path) });
    if (code === 'ENXIO') return new DatarootError('FILE_NOT_REGULAR', `${this.shown(path)} is not a regular file: it is not read`, { file: this.shown(path) });
    return fsError(e, this.shown(path));
  }

  /**
   * An extended attribute (never through a symlink), or undefined when absent. A path that is not
   * UTF-8 cannot be handed to the addon: `unreadable` is then true.
   */
  xattr(path: ByteStr, name: string): { value?: Buffer; unreadable?: true } {
    if (!isUtf8(path)) return { unreadable: true };
    const p = Buffer.from(this.abs(path)).toString('utf8');
    try {
      const v = getXattr(p, name);
      return v === undefined ? {} : { value: v };
    } catch (e) {
      if (e instanceof DatarootError && (e.code === 'IO_ENOENT' || e.code === 'IO_ENOTDIR' || e.code === 'IO_EACCES' || e.code === 'IO_EPERM')) return {};
      throw e;
    }
  }
}

const SLASH = Buffer.from('/');
