import { DatarootError } from '../formats/errors.js';
import { Confined, pathParts } from './confined.js';

/**
 * A file named relative to a data-root, resolved without leaving it (through the confined layer:
 * no `..`, no NUL, no symbolic link on the way). The last component may be absent (a file to
 * create) or a link (the caller decides: a writer refuses to replace one). Returns the absolute path.
 */
export function beneathRoot(root: string, rel: string): string {
  const parts = pathParts(rel);
  if (parts.length === 0) throw new DatarootError('PATH_INVALID', `path ${JSON.stringify(rel)} must name a file inside the data-root`);
  const fs = Confined.trusted(root);
  const dir = parts.slice(0, -1).join('/');
  if (dir !== '' && !fs.requireDir(dir)) throw new DatarootError('PATH_MISSING', `${fs.abs(dir)} does not exist`, { file: fs.abs(dir) });
  return fs.abs(parts.join('/'));
}
