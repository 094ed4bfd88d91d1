import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { DatarootError } from '../formats/errors.js';

/**
 * A file named relative to a data-root, resolved without leaving it: no `..` and no NUL in the
 * name, and no symbolic link on the way (every directory from the root down is lstat'ed; a link
 * in the evidence is data, never followed). The last component may be absent (a file to create)
 * or a link (the caller decides: a writer refuses to replace one). Returns the absolute path.
 */
export function beneathRoot(root: string, rel: string): string {
  if (rel.includes('\0')) throw new DatarootError('PATH_INVALID', `path ${JSON.stringify(rel)} holds a NUL byte`);
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) throw new DatarootError('PATH_INVALID', `path ${JSON.stringify(rel)} must name a file inside the data-root, without ".."`);
  let at = root;
  for (const p of parts.slice(0, -1)) {
    at = join(at, p);
    let st;
    try {
      st = lstatSync(at);
    } catch {
      throw new DatarootError('PATH_MISSING', `${at} does not exist`, { file: at });
    }
    if (st.isSymbolicLink()) throw new DatarootError('SYMLINK_NOT_FOLLOWED', `${at} is a symbolic link inside the data-root: not followed`, { file: at });
    if (!st.isDirectory()) throw new DatarootError('PATH_NOT_A_DIRECTORY', `${at} is not a directory`, { file: at });
  }
  return join(at, parts[parts.length - 1]!);
}
