import { chmodSync, copyFileSync, lchownSync, linkSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';
import { DatarootError } from '../formats/errors.js';
import { getXattr, lutimesNs, mknod, setXattr, S_IFBLK, S_IFCHR, S_IFIFO } from './native.js';

/**
 * Copies a directory tree the way the vfs driver does when it creates a layer from its parent
 * (copy.DirCopy with content): every entry with its owner, mode and nanosecond times, hard links
 * kept as hard links, device nodes and FIFOs re-created, symlinks copied as links, and the
 * security.capability xattr. The destination must not exist. Returns what it copied (relative
 * paths, true for directories).
 */
export function copyTree(src: string, dst: string): Map<string, boolean> {
  const links = new Map<bigint, string>();
  /** What was copied, by path relative to dst (true for directories). */
  const copied = new Map<string, boolean>();
  const dirs: { path: string; st: BigIntStats }[] = [];
  const visit = (s: string, d: string, st: BigIntStats): void => {
    if (d !== dst) copied.set(d.slice(dst.length + 1), st.isDirectory());
    if (st.isDirectory()) {
      mkdirSync(d, { mode: 0o700 });
      for (const n of readdirSync(s)) visit(join(s, n), join(d, n), lstatSync(join(s, n), { bigint: true }));
      dirs.push({ path: d, st });
    } else {
      if (!st.isSymbolicLink() && st.nlink > 1n) {
        const first = links.get(st.ino);
        if (first !== undefined) {
          linkSync(first, d);
          return;
        }
        links.set(st.ino, d);
      }
      if (st.isFile()) copyFileSync(s, d);
      else if (st.isSymbolicLink()) symlinkSync(readlinkSync(s, { encoding: 'buffer' }), d);
      else if (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO()) {
        const kind = st.isCharacterDevice() ? S_IFCHR : st.isBlockDevice() ? S_IFBLK : S_IFIFO;
        const rdev = Number(st.rdev);
        mknod(d, kind | (Number(st.mode) & 0o7777), Math.floor(rdev / 256) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & 0xfff00));
      } else if (st.isSocket()) return; // sockets are not copied (DirCopy skips them)
      else throw new DatarootError('IO_UNKNOWN_FILE_TYPE', `cannot copy ${s}: unknown file type`, { file: s });
      meta(s, d, st);
    }
  };
  const meta = (s: string, d: string, st: BigIntStats): void => {
    lchownSync(d, Number(st.uid), Number(st.gid));
    if (!st.isSymbolicLink()) {
      chmodSync(d, Number(st.mode) & 0o7777);
      const cap = getXattr(s, 'security.capability');
      if (cap !== undefined) setXattr(d, 'security.capability', cap);
    }
    lutimesNs(d, st.atimeNs, st.mtimeNs);
  };
  visit(src, dst, lstatSync(src, { bigint: true }));
  // Directory metadata last: copying into a directory changes its times.
  for (const { path, st } of dirs) meta(src + path.slice(dst.length), path, st);
  return copied;
}
