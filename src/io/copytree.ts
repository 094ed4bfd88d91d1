import { chmodSync, copyFileSync, lchownSync, linkSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, type BigIntStats } from 'node:fs';
import { DatarootError } from '../formats/errors.js';
import { getXattr, lutimesNs, mknod, setXattr, S_IFBLK, S_IFCHR, S_IFIFO } from './native.js';

/**
 * Copies a directory tree the way a full-tree driver does when it creates a layer from its parent:
 * vfs (copy.DirCopy with content) or overlay's ApplyDiff (copy.DirCopy with hard links: regular
 * files hard-linked, everything else re-created). Every entry keeps its owner, mode and
 * nanosecond times, hard links stay hard links, device nodes and FIFOs are re-created, symlinks
 * copied as links, and the security.capability xattr kept. The destination must not exist.
 * Iterative: a deep tree costs memory, not stack. Returns what it copied (relative paths, true for
 * directories).
 */
export function copyTree(src: string, dst: string, o: { hardlink?: boolean } = {}): Map<string, boolean> {
  const links = new Map<bigint, string>();
  const copied = new Map<string, boolean>();
  const dirs: { s: string; d: string; st: BigIntStats }[] = [];
  const meta = (s: string, d: string, st: BigIntStats): void => {
    lchownSync(d, Number(st.uid), Number(st.gid));
    if (!st.isSymbolicLink()) {
      chmodSync(d, Number(st.mode) & 0o7777);
      const cap = getXattr(s, 'security.capability');
      if (cap !== undefined) setXattr(d, 'security.capability', cap);
    }
    lutimesNs(d, st.atimeNs, st.mtimeNs);
  };
  const stack: { s: string; d: string; st: BigIntStats }[] = [{ s: src, d: dst, st: lstatSync(src, { bigint: true }) }];
  while (stack.length > 0) {
    const { s, d, st } = stack.pop()!;
    if (d !== dst) copied.set(d.slice(dst.length + 1), st.isDirectory());
    if (st.isDirectory()) {
      mkdirSync(d, { mode: 0o700 });
      for (const n of readdirSync(s)) stack.push({ s: `${s}/${n}`, d: `${d}/${n}`, st: lstatSync(`${s}/${n}`, { bigint: true }) });
      dirs.push({ s, d, st });
      continue;
    }
    if (st.isFile() && o.hardlink === true) {
      // The overlay driver's copy: the parent's file itself, linked (owner, mode and times are the inode's).
      linkSync(s, d);
      continue;
    }
    if (!st.isSymbolicLink() && st.nlink > 1n) {
      const first = links.get(st.ino);
      if (first !== undefined) {
        linkSync(first, d);
        continue;
      }
      links.set(st.ino, d);
    }
    if (st.isFile()) copyFileSync(s, d);
    else if (st.isSymbolicLink()) symlinkSync(readlinkSync(s, { encoding: 'buffer' }), d);
    else if (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO()) {
      const kind = st.isCharacterDevice() ? S_IFCHR : st.isBlockDevice() ? S_IFBLK : S_IFIFO;
      const rdev = Number(st.rdev);
      mknod(d, kind | (Number(st.mode) & 0o7777), Math.floor(rdev / 256) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & 0xfff00));
    } else if (st.isSocket())
      continue; // sockets are not copied (DirCopy skips them)
    else throw new DatarootError('IO_UNKNOWN_FILE_TYPE', `cannot copy ${s}: unknown file type`, { file: s });
    meta(s, d, st);
  }
  // Directory metadata last, deepest first: copying into a directory changes its times.
  for (const { s, d, st } of dirs.reverse()) meta(s, d, st);
  return copied;
}
