/**
 * Relative paths resolved lexically (no file system: a symlink on the way is not followed), as
 * archive members and symlink targets are checked before anything touches the disk.
 */

/**
 * `dir` (the components of a directory below a top, taken over and changed) with `path`'s
 * components applied: empty ones and `.` skipped, `..` going up one. Undefined when a `..` would
 * leave the top.
 */
export function resolveLexically(dir: string[], path: string): string[] | undefined {
  for (const p of path.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      if (dir.length === 0) return undefined;
      dir.pop();
    } else dir.push(p);
  }
  return dir;
}
