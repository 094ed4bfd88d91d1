import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { walkTree } from '../../src/io/walk.js';

/** Every entry of a tree with type, mode, owner, size, mtime and content hash: to prove nothing changed. */
export function fingerprint(root: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of walkTree(root)) {
    const s = e.stat;
    let content = '';
    if (s.isFile()) content = createHash('sha256').update(readFileSync(e.abs)).digest('hex');
    else if (s.isSymbolicLink()) content = readlinkSync(e.abs);
    out.set(e.rel, `${s.mode.toString(8)} ${s.uid}:${s.gid} ${s.size} ${s.mtimeMs} ${s.rdev} ${content}`);
  }
  return out;
}
