import {
  chmodSync,
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  symlinkSync,
  type BigIntStats,
  type Dirent,
  type Stats,
} from 'node:fs';
import { basename, dirname } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { ioErrorCode } from '../formats/errorcodes.js';
import { resolveLexically } from '../formats/relpath.js';
import { openBeneath as openBeneathNative } from './native.js';
import { writeNewFileSync } from './atomic.js';
import { preadFully } from './pread.js';

/**
 * The confined access layer. Every read and write of evidence (a data-root, an unpacked archive, a
 * snapshot store, a restore or inject target) goes through a `Confined` base:
 *
 * - a path is relative to the base and checked before use: no absolute path, no `..`, no empty
 *   or NUL component;
 * - it is resolved component by component and never through a symlink: a symlink in the evidence
 *   is data (reported as `SYMLINK_OUT_OF_ROOT` or `SYMLINK_NOT_FOLLOWED`), never a way out;
 * - a file is opened with O_NOFOLLOW | O_NONBLOCK and read only after fstat says it is a regular
 *   file (a FIFO, a device, a socket or a directory never blocks or floods a read), and only up to
 *   a bound for its kind (`FILE_TOO_LARGE` past it);
 * - writes, renames and removals happen only beneath the base, after the same checks.
 *
 * The base itself is what the user named (a symlink to it is followed once, as dockerd follows a
 * symlinked data-root). The evidence is taken as static while it is read: directories verified once
 * are remembered, and forgotten when this process removes or renames them.
 */

export type EntryKind = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'char' | 'block' | 'unknown';

export function kindOfStats(st: Stats | BigIntStats): EntryKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  return 'unknown';
}

const KIND_WORD: Record<EntryKind, string> = {
  file: 'a regular file',
  dir: 'a directory',
  symlink: 'a symlink',
  fifo: 'a FIFO',
  socket: 'a socket',
  char: 'a character device',
  block: 'a block device',
  unknown: 'a file of unknown type',
};

/** Bounds for whole-file reads, by kind of file (bytes). */
export const LIMITS = {
  /** One-line metadata files: diff, size, cache-id, parent, link, lower, mount-id, lastUpdated. */
  meta: 64 << 10,
  /** An image config (imagedb/content). */
  config: 32 << 20,
  /** repositories.json. */
  repositories: 128 << 20,
  /** config.v2.json, hostconfig.json and other per-object JSON. */
  objectJson: 32 << 20,
  /** Anything shown whole by `cat`. */
  cat: 256 << 20,
  /** Head read to classify a file. */
  sniff: 8 << 20,
} as const;

const O_READ = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** Reopening an O_PATH descriptor through its /proc/self/fd magic link (which O_NOFOLLOW would refuse). */
const O_REOPEN = constants.O_RDONLY | constants.O_NONBLOCK;
/** O_PATH: Linux's generic value (x86, arm, riscv, powerpc); a descriptor that names a file without opening it. */
const O_PATH = 0o10000000;

/** Whether openat2 through the addon is usable here (undefined: not tried yet). */
let nativeBeneath: boolean | undefined;

/** Checks a relative path and returns its components. */
export function pathParts(rel: string): string[] {
  if (rel === '' || rel === '.') return [];
  if (rel.includes('\0')) throw new DatarootError('PATH_INVALID', `path ${JSON.stringify(rel)} holds a NUL byte`);
  if (rel.startsWith('/')) throw new DatarootError('PATH_INVALID', `path ${JSON.stringify(rel)} is absolute, where a path inside the base is expected`);
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  for (const p of parts) {
    if (p === '..') throw new DatarootError('PATH_INVALID', `path ${JSON.stringify(rel)} leaves its base ("..")`);
    if (Buffer.byteLength(p) > 255) throw new DatarootError('PATH_INVALID', `path ${JSON.stringify(rel.slice(0, 80))}… has a component longer than 255 bytes`);
  }
  return parts;
}

/** Where a symlink's target points, lexically, relative to the base; undefined when it leaves it. */
export function symlinkTargetInside(rel: string, target: string): string | undefined {
  if (target.startsWith('/')) return undefined;
  return resolveLexically(pathParts(dirname(`/${rel}`).slice(1)), target)?.join('/');
}

export interface ReadOptions {
  /** Most bytes read; a larger file is FILE_TOO_LARGE. */
  max: number;
  /** What the file is, for messages ("image config", "repositories.json"). */
  what?: string;
}

export interface WalkEntry {
  /** Path relative to the base, with `/` separators. */
  rel: string;
  stat: Stats;
}

/** A walk entry with nanosecond times (`walk(rel, onError, { bigint: true })`). */
export interface WalkEntryBig {
  rel: string;
  stat: BigIntStats;
}

/** An open regular file of the base, for streaming or positional reads. */
export interface OpenFile {
  fd: number;
  size: number;
  stat: Stats;
  close: () => void;
}

export class Confined {
  /** Directories (relative paths) verified as real directories, not symlinks. */
  private readonly dirs = new Set<string>(['']);

  private constructor(readonly base: string) {}

  /**
   * A base for a directory the user named. The directory must exist; `what` names it in errors.
   */
  static open(base: string, what = 'directory'): Confined {
    let st: Stats;
    try {
      st = lstatSync(base);
      if (st.isSymbolicLink()) st = lstatSync(`${base}/.`);
    } catch (e) {
      throw fsError(e, base, `${what} ${base}`);
    }
    if (!st.isDirectory()) throw new DatarootError('PATH_NOT_A_DIRECTORY', `${what} ${base} is ${KIND_WORD[kindOfStats(st)]}, not a directory`, { file: base });
    return new Confined(base);
  }

  /** A base for a directory this process creates or trusts (a temp dir it made). */
  static trusted(base: string): Confined {
    return new Confined(base);
  }

  /** The absolute path of a relative one (checked; for messages and for trusted helpers). */
  abs(rel: string): string {
    const parts = pathParts(rel);
    return parts.length === 0 ? this.base : `${this.base}/${parts.join('/')}`;
  }

  /** The relative path of an absolute path under the base, or undefined. */
  relOf(abs: string): string | undefined {
    if (abs === this.base) return '';
    return abs.startsWith(`${this.base}/`) ? abs.slice(this.base.length + 1) : undefined;
  }

  /**
   * Verifies that every ancestor of the path is a real directory (not a symlink). Returns
   * 'missing' when one does not exist, else undefined; throws a coded error for a symlink or a
   * non-directory on the way.
   */
  private ancestors(parts: readonly string[], upto = parts.length - 1): 'missing' | undefined {
    // Start below the path or its parent when either is verified already (a walk verifies a
    // directory before its entries): two looks instead of one per component, so a tree 1,500
    // directories deep is not read in cubic time (a join and a hash of every prefix, per entry).
    let rel = '';
    let start = 0;
    if (upto > 0) {
      const upper = parts.slice(0, upto).join('/');
      if (this.dirs.has(upper)) return undefined;
      const parent = upto > 1 ? upper.slice(0, upper.length - parts[upto - 1]!.length - 1) : '';
      if (parent !== '' && this.dirs.has(parent)) {
        rel = parent;
        start = upto - 1;
      }
    }
    for (let i = start; i < upto; i++) {
      rel = rel === '' ? parts[i]! : `${rel}/${parts[i]}`;
      if (this.dirs.has(rel)) continue;
      let st: Stats;
      try {
        st = lstatSync(`${this.base}/${rel}`);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return 'missing';
        throw fsError(e, this.abs(rel), rel);
      }
      if (st.isSymbolicLink()) throw this.symlinkError(rel);
      if (!st.isDirectory())
        throw new DatarootError('PATH_NOT_A_DIRECTORY', `${rel} is ${KIND_WORD[kindOfStats(st)]}, where a directory is expected`, { file: this.abs(rel) });
      this.dirs.add(rel);
    }
    return undefined;
  }

  /** The coded error for a symlink met where a file or directory is expected. */
  symlinkError(rel: string): DatarootError {
    let target = '';
    try {
      target = readlinkSync(`${this.base}/${rel}`, 'utf8');
    } catch {
      /* gone meanwhile */
    }
    const inside = symlinkTargetInside(rel, target);
    if (inside === undefined) {
      return new DatarootError('SYMLINK_OUT_OF_ROOT', `${rel} is a symlink to ${JSON.stringify(target)}, outside the base: it is evidence, not followed`, {
        file: this.abs(rel),
        target,
      });
    }
    return new DatarootError(
      'SYMLINK_NOT_FOLLOWED',
      `${rel} is a symlink (to ${JSON.stringify(target)}) where a file or directory is expected: it is not followed`,
      { file: this.abs(rel), target },
    );
  }

  /** lstat of a path (never following it), or undefined when it does not exist. */
  lstat(rel: string): Stats | undefined {
    const parts = pathParts(rel);
    if (this.ancestors(parts) === 'missing') return undefined;
    try {
      return lstatSync(this.abs(rel));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw fsError(e, this.abs(rel), rel);
    }
  }

  lstatBig(rel: string): BigIntStats | undefined {
    const parts = pathParts(rel);
    if (this.ancestors(parts) === 'missing') return undefined;
    try {
      return lstatSync(this.abs(rel), { bigint: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw fsError(e, this.abs(rel), rel);
    }
  }

  /** What is at the path: a kind, or 'missing'. Never throws for a symlink ancestor: that is 'missing'. */
  kind(rel: string): EntryKind | 'missing' {
    try {
      const st = this.lstat(rel);
      return st === undefined ? 'missing' : kindOfStats(st);
    } catch (e) {
      if (e instanceof DatarootError) return 'missing';
      throw e;
    }
  }

  exists(rel: string): boolean {
    return this.kind(rel) !== 'missing';
  }

  /** Whether the path is a real directory (a symlink to one is not). */
  isDir(rel: string): boolean {
    return this.kind(rel) === 'dir';
  }

  /**
   * Asserts that the path is a real directory and remembers it. Returns false when it does not
   * exist; throws SYMLINK_* or PATH_NOT_A_DIRECTORY when something else is there.
   */
  requireDir(rel: string): boolean {
    const parts = pathParts(rel);
    const joined = parts.join('/');
    if (this.dirs.has(joined)) return true;
    if (this.ancestors(parts, parts.length) === 'missing') return false;
    return true;
  }

  /** The names of a directory, in byte order; undefined when it does not exist. */
  list(rel: string): string[] | undefined {
    if (!this.requireDir(rel)) return undefined;
    try {
      return readdirSync(this.abs(rel)).sort(byteOrder);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw fsError(e, this.abs(rel), rel);
    }
  }

  /** The entries of a directory with their types (d_type), in byte order; undefined when absent. */
  listTyped(rel: string): Dirent[] | undefined {
    if (!this.requireDir(rel)) return undefined;
    try {
      return readdirSync(this.abs(rel), { withFileTypes: true }).sort((a, b) => byteOrder(a.name, b.name));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw fsError(e, this.abs(rel), rel);
    }
  }

  /** The names of a directory, [] when it is absent or is not a real directory (for lenient listings). */
  names(rel: string): string[] {
    try {
      return this.list(rel) ?? [];
    } catch (e) {
      if (e instanceof DatarootError) return [];
      throw e;
    }
  }

  /** A symlink's target, as data; undefined when the path is absent or not a symlink. */
  readlink(rel: string): string | undefined {
    const st = this.lstat(rel);
    if (st === undefined || !st.isSymbolicLink()) return undefined;
    try {
      return readlinkSync(this.abs(rel), 'utf8');
    } catch (e) {
      throw fsError(e, this.abs(rel), rel);
    }
  }

  /**
   * Opens a regular file for reading. Undefined when it does not exist; SYMLINK_*,
   * FILE_NOT_REGULAR (FIFO, device, socket, directory) otherwise.
   */
  openFile(rel: string, what?: string): OpenFile | undefined {
    const parts = pathParts(rel);
    if (parts.length === 0) throw new DatarootError('FILE_NOT_REGULAR', `${what ?? 'the base'} is a directory, where a file is expected`, { file: this.base });
    const beneath = this.openBeneath(parts.join('/'), rel, what);
    if (beneath !== undefined) return this.checkedOpen(beneath, rel, what);
    if (this.ancestors(parts) === 'missing') return undefined;
    const abs = this.abs(rel);
    // Looked at before it is opened: opening a device can act (a tape rewinds, a watchdog arms,
    // a serial line raises DTR), and opening a FIFO wakes a writer waiting on it. The fstat after
    // the open still checks what was opened.
    let pre: Stats;
    try {
      pre = lstatSync(abs);
    } catch (e) {
      return this.openFailed(e, rel, what);
    }
    if (pre.isSymbolicLink()) throw this.symlinkError(rel);
    if (!pre.isFile())
      throw new DatarootError(
        'FILE_NOT_REGULAR',
        `${what !== undefined ? `${what} ` : ''}${rel} is ${KIND_WORD[kindOfStats(pre)]}, where a regular file is expected`,
        { file: abs },
      );
    let fd: number;
    try {
      fd = openSync(abs, O_READ | constants.O_NOATIME);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EPERM') {
        try {
          fd = openSync(abs, O_READ);
        } catch (e2) {
          return this.openFailed(e2, rel, what);
        }
      } else return this.openFailed(e, rel, what);
    }
    return this.checkedOpen(fd, rel, what);
  }

  /**
   * The kernel's own confinement where it has it: openat2 with RESOLVE_BENEATH |
   * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS (through the addon), as O_PATH first: that names
   * the file without opening it, so a FIFO, device or socket is refused by its fstat before any
   * open (opening a device can act, opening a FIFO wakes a writer blocked on it). A regular file
   * is then opened through that same descriptor (/proc/self/fd), not by its path again, so what
   * was checked is what is read. Undefined when that is not available or did not open the file
   * (absent, a symlink on the way): the component-by-component walk then decides, and says
   * precisely why (which symlink, which component is missing).
   */
  private openBeneath(parts: string, rel: string, what: string | undefined): number | undefined {
    if (nativeBeneath === false) return undefined;
    let pathFd: number | undefined;
    try {
      pathFd = openBeneathNative(this.base, parts, O_PATH | constants.O_NOFOLLOW);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOSYS' || code === 'EINVAL' || code === 'E2BIG') nativeBeneath = false;
      return undefined;
    }
    if (pathFd === undefined) {
      nativeBeneath = false;
      return undefined;
    }
    try {
      const st = fstatSync(pathFd);
      if (st.isSymbolicLink()) return undefined;
      if (!st.isFile())
        throw new DatarootError(
          'FILE_NOT_REGULAR',
          `${what !== undefined ? `${what} ` : ''}${rel} is ${KIND_WORD[kindOfStats(st)]}, where a regular file is expected`,
          { file: this.abs(rel) },
        );
      const proc = `/proc/self/fd/${pathFd}`;
      try {
        return openSync(proc, O_REOPEN | constants.O_NOATIME);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
        try {
          return openSync(proc, O_REOPEN);
        } catch {
          return undefined;
        }
      }
    } finally {
      closeSync(pathFd);
    }
  }

  /** Takes an open descriptor only when it is a regular file. */
  private checkedOpen(fd: number, rel: string, what: string | undefined): OpenFile {
    const abs = this.abs(rel);
    const st = fstatSync(fd);
    if (!st.isFile()) {
      closeSync(fd);
      throw new DatarootError(
        'FILE_NOT_REGULAR',
        `${what !== undefined ? `${what} ` : ''}${rel} is ${KIND_WORD[kindOfStats(st)]}, where a regular file is expected`,
        { file: abs },
      );
    }
    let closed = false;
    return {
      fd,
      size: st.size,
      stat: st,
      close: () => {
        if (!closed) closeSync(fd);
        closed = true;
      },
    };
  }

  private openFailed(e: unknown, rel: string, what: string | undefined): undefined {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    if (code === 'ELOOP') throw this.symlinkError(rel);
    if (code === 'ENXIO' || code === 'EISDIR') {
      // O_NONBLOCK open of a FIFO with no writer for reading succeeds; ENXIO is a socket.
      const st = this.lstat(rel);
      const kind = st === undefined ? 'unknown' : kindOfStats(st);
      throw new DatarootError('FILE_NOT_REGULAR', `${what !== undefined ? `${what} ` : ''}${rel} is ${KIND_WORD[kind]}, where a regular file is expected`, {
        file: this.abs(rel),
      });
    }
    throw fsError(e, this.abs(rel), rel);
  }

  /** A whole regular file, up to `o.max` bytes; undefined when absent. */
  readFile(rel: string, o: ReadOptions): Buffer | undefined {
    const f = this.openFile(rel, o.what);
    if (f === undefined) return undefined;
    try {
      if (f.size > o.max) {
        throw new DatarootError('FILE_TOO_LARGE', `${o.what !== undefined ? `${o.what} ` : ''}${rel} is ${f.size} bytes; at most ${o.max} are read for it`, {
          file: this.abs(rel),
          size: f.size,
          max: o.max,
        });
      }
      return readFd(f.fd, f.size, o.max, this.abs(rel));
    } finally {
      f.close();
    }
  }

  readText(rel: string, o: ReadOptions): string | undefined {
    return this.readFile(rel, o)?.toString('utf8');
  }

  /** The first `n` bytes of a regular file (fewer when it is shorter). */
  readHead(rel: string, n: number): Buffer | undefined {
    const f = this.openFile(rel);
    if (f === undefined) return undefined;
    try {
      const buf = Buffer.alloc(Math.min(n, f.size));
      return buf.subarray(0, preadFully(f.fd, buf, 0));
    } finally {
      f.close();
    }
  }

  /**
   * A sub-base at a directory of this one (a layer's diff dir, a volume's _data). Undefined when
   * it does not exist; SYMLINK_* or PATH_NOT_A_DIRECTORY when something else is there.
   */
  sub(rel: string): Confined | undefined {
    if (!this.requireDir(rel)) return undefined;
    return new Confined(this.abs(rel));
  }

  /**
   * Every entry under a directory, depth first with names in byte order, never through a symlink
   * (a symlink is an entry, not a directory). Iterative: depth costs memory, not stack. Entries
   * that vanish meanwhile are skipped; `onError` hears of a directory that cannot be listed.
   */
  walk(rel?: string, onError?: (rel: string, e: DatarootError) => void): Generator<WalkEntry>;
  walk(rel: string, onError: ((rel: string, e: DatarootError) => void) | undefined, o: { bigint: true }): Generator<WalkEntryBig>;
  *walk(rel = '', onError?: (rel: string, e: DatarootError) => void, o: { bigint?: boolean } = {}): Generator<WalkEntry | WalkEntryBig> {
    if (!this.requireDir(rel)) return;
    const stack: { dir: string; names: string[]; i: number }[] = [];
    const open = (dir: string): void => {
      let names: string[] = [];
      try {
        names = readdirSync(this.abs(dir)).sort(byteOrder);
      } catch (e) {
        onError?.(dir, fsError(e, this.abs(dir), dir));
      }
      stack.push({ dir, names, i: 0 });
    };
    open(pathParts(rel).join('/'));
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.i >= top.names.length) {
        stack.pop();
        continue;
      }
      const name = top.names[top.i++]!;
      const r = top.dir === '' ? name : `${top.dir}/${name}`;
      let stat: Stats | BigIntStats;
      try {
        stat = o.bigint === true ? lstatSync(`${this.base}/${r}`, { bigint: true }) : lstatSync(`${this.base}/${r}`);
      } catch {
        continue;
      }
      yield { rel: r, stat } as WalkEntry | WalkEntryBig;
      if (stat.isDirectory()) {
        this.dirs.add(r);
        open(r);
      }
    }
  }

  // Writes. Each checks the path and its ancestors first; nothing is written through a symlink.

  /** Creates a directory and its missing parents (each parent a real directory). */
  mkdirs(rel: string, mode = 0o755): void {
    const parts = pathParts(rel);
    let cur = '';
    for (const p of parts) {
      cur = cur === '' ? p : `${cur}/${p}`;
      if (this.dirs.has(cur)) continue;
      const st = this.lstat(cur);
      if (st === undefined) {
        mkdirSync(this.abs(cur), { mode });
      } else if (st.isSymbolicLink()) throw this.symlinkError(cur);
      else if (!st.isDirectory())
        throw new DatarootError('PATH_NOT_A_DIRECTORY', `${cur} is ${KIND_WORD[kindOfStats(st)]}, where a directory is expected`, { file: this.abs(cur) });
      this.dirs.add(cur);
    }
  }

  /** Checks that a path can be written: its parent a real directory, and the name itself no symlink. */
  private writable(rel: string): string {
    const parts = pathParts(rel);
    if (parts.length === 0) throw new DatarootError('PATH_INVALID', 'the base itself cannot be written as a file');
    if (this.ancestors(parts) === 'missing') throw new DatarootError('PATH_MISSING_PARENT', `the directory of ${rel} does not exist`, { file: this.abs(rel) });
    const st = this.lstat(rel);
    if (st?.isSymbolicLink() === true) throw this.symlinkError(rel);
    return this.abs(rel);
  }

  /**
   * Writes a file atomically: a temp file in the same directory, fsync, rename over the target,
   * fsync of the directory.
   */
  writeFileAtomic(rel: string, content: Uint8Array | string, mode = 0o644): void {
    const abs = this.writable(rel);
    const tmp = `${dirname(abs)}/.${basename(abs)}.dataroot-${process.pid}-${Date.now().toString(36)}`;
    writeNewFileSync(tmp, content, mode, true);
    renameSync(tmp, abs);
    this.fsyncDir(dirname(rel) === '.' ? '' : dirname(rel));
  }

  /** Creates a new file (refused when something is there) and writes it whole, fsynced when asked. */
  writeNewFile(rel: string, content: Uint8Array | string, mode = 0o644, sync = false): void {
    writeNewFileSync(this.writable(rel), content, mode, sync);
  }

  /**
   * Creates a new file (refused when something is there, never through a symlink) and returns its
   * descriptor, open for writing, for a writer that streams into it; the caller closes it.
   */
  createExclusive(rel: string, mode = 0o644): number {
    const abs = this.writable(rel);
    try {
      return openSync(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    } catch (e) {
      throw fsError(e, abs, rel);
    }
  }

  fsyncDir(rel: string): void {
    if (!this.requireDir(rel)) return;
    const fd = openSync(this.abs(rel), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  symlink(target: string, rel: string): void {
    symlinkSync(target, this.writable(rel));
  }

  link(existingRel: string, rel: string): void {
    const from = this.lstat(existingRel);
    if (from === undefined) throw new DatarootError('PATH_MISSING', `${existingRel} does not exist`, { file: this.abs(existingRel) });
    if (from.isDirectory()) throw new DatarootError('PATH_INVALID', `${existingRel} is a directory and cannot be hard-linked`, { file: this.abs(existingRel) });
    linkSync(this.abs(existingRel), this.writable(rel));
  }

  /** Renames within the base (both sides checked). */
  rename(fromRel: string, toRel: string): void {
    const from = this.writable(fromRel);
    const to = this.writable(toRel);
    renameSync(from, to);
    this.forget(fromRel);
    this.forget(toRel);
  }

  /**
   * Removes a path and everything under it, never following a symlink (a symlink is removed as a
   * link). Its ancestors must be real directories inside the base. Absent is not an error.
   */
  remove(rel: string): void {
    const parts = pathParts(rel);
    if (parts.length === 0) throw new DatarootError('PATH_INVALID', 'the base itself is never removed through its Confined');
    if (this.ancestors(parts) === 'missing') return;
    removeTree(this.abs(rel));
    this.forget(rel);
  }

  /** Forgets verified directories at and under a path (after this process changed it). */
  private forget(rel: string): void {
    const p = pathParts(rel).join('/');
    for (const d of this.dirs) if (d === p || d.startsWith(`${p}/`)) this.dirs.delete(d);
  }
}

/**
 * Removes a path and everything under it, never following a symlink (a link is unlinked), depth
 * first with an explicit stack: a tree of any depth an attacker made is removed without recursion
 * (Node's own recursive rm recurses per level). Absent is not an error.
 */
export function removeTree(path: string): void {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isDirectory()) {
    unlinkSync(path);
    return;
  }
  removeDirTree(path);
}

/**
 * Empties and removes a directory, depth first with an explicit stack (no recursion, whatever the
 * depth); whatever is not a directory, a link too, is unlinked. A directory named by bytes has its
 * names read as bytes (they need not be UTF-8). `makeWritable` makes each directory 0700 before
 * it is listed (for a tree the caller made, finished with modes that forbid writing).
 */
export function removeDirTree(dir: string | Buffer, makeWritable = false): void {
  const stack: { dir: string | Buffer; listed: boolean }[] = [{ dir, listed: false }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.listed) {
      rmdirSync(top.dir);
      stack.pop();
      continue;
    }
    top.listed = true;
    if (makeWritable) chmodSync(top.dir, 0o700);
    for (const e of dirEntries(top.dir)) {
      if (e.isDir) stack.push({ dir: e.path, listed: false });
      else unlinkSync(e.path);
    }
  }
}

const SLASH = Buffer.from('/');

/** A directory's entries as paths (joined as the directory is named, string or bytes) and whether each is a directory. */
function dirEntries(dir: string | Buffer): { path: string | Buffer; isDir: boolean }[] {
  if (typeof dir === 'string') return readdirSync(dir, { withFileTypes: true }).map((d) => ({ path: `${dir}/${d.name}`, isDir: d.isDirectory() }));
  return readdirSync(dir, { withFileTypes: true, encoding: 'buffer' }).map((d) => ({ path: Buffer.concat([dir, SLASH, d.name]), isDir: d.isDirectory() }));
}

/** Reads up to `size` bytes (at most `max`) from an fd from offset 0. */
function readFd(fd: number, size: number, max: number, file: string): Buffer {
  const want = Math.min(size, max);
  const buf = Buffer.allocUnsafe(want);
  const got = preadFully(fd, buf, 0);
  // A file that grew past its bound while being read is refused too.
  if (got === max && size >= max) {
    const probe = Buffer.allocUnsafe(1);
    if (readSync(fd, probe, 0, 1, got) > 0) throw new DatarootError('FILE_TOO_LARGE', `${file} is larger than the ${max} bytes read for it`, { file, max });
  }
  return got === want ? buf : buf.subarray(0, got);
}

export function byteOrder(a: string, b: string): number {
  if (a === b) return 0;
  // Node's string comparison orders by UTF-16 code units; the kernel and Go order by bytes. They
  // differ only for astral characters against U+E000–U+FFFF, so compare bytes only then.
  const fast = a < b ? -1 : 1;
  if (!/[\ud800-\udfff\ue000-\uffff]/.test(a + b)) return fast;
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** A Node fs error as a coded error. */
export function fsError(e: unknown, file: string, shown: string = file): DatarootError {
  if (e instanceof DatarootError) return e;
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOENT':
      return new DatarootError('IO_NOT_FOUND', `${shown} does not exist`, { file });
    case 'EACCES':
    case 'EPERM':
      return new DatarootError('IO_PERMISSION', `${shown}: permission denied`, { file });
    case 'ELOOP':
      return new DatarootError('SYMLINK_NOT_FOLLOWED', `${shown} is a symlink: it is not followed`, { file });
    case 'ENAMETOOLONG':
      return new DatarootError('PATH_INVALID', `${shown}: name too long`, { file });
    default:
      return new DatarootError(ioErrorCode(err.code), `${shown}: ${err.message ?? String(e)}`, { file });
  }
}
