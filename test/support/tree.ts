import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * Every entry of a tree with type, mode, owner, size, mtime and content hash: to prove nothing
 * changed. Its own walk (not dataroot's), never following symlinks.
 */
export function fingerprint(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const stack = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    for (const name of readdirSync(rel === '' ? root : `${root}/${rel}`).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const abs = `${root}/${r}`;
      const s = lstatSync(abs);
      let content = '';
      // Large (test-made sparse) files are compared by size, mtime and ctime: hashing them is slow.
      if (s.isFile()) content = s.size > 64 << 20 ? `ctime ${s.ctimeMs}` : createHash('sha256').update(readFileSync(abs)).digest('hex');
      else if (s.isSymbolicLink()) content = readlinkSync(abs);
      out.set(r, `${s.mode.toString(8)} ${s.uid}:${s.gid} ${s.size} ${s.mtimeMs} ${s.rdev} ${content}`);
      if (s.isDirectory()) stack.push(r);
    }
  }
  return out;
}
